-- Tenants: every session belongs to one, and each tenant has its own Postgres role whose
-- members see and change only that tenant's sessions, jobs, inbox and codes (Row Level
-- Security, sql/07_tenants.sql). The default tenant's role is pgwa_app, so a single-app
-- setup keeps working with no extra step. Roles are cluster-wide, so `role` is a name.
CREATE TABLE wa.tenants (
    name       text PRIMARY KEY CONSTRAINT tenant_name_format CHECK (name ~ '^[a-z][a-z0-9_]{0,39}$'),
    role       name NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO wa.tenants (name, role) VALUES ('default', 'pgwa_app');

-- The default becomes wa._my_tenant() (the inserting role's tenant) in sql/07_tenants.sql.
ALTER TABLE wa.sessions ADD COLUMN tenant text NOT NULL DEFAULT 'default' REFERENCES wa.tenants (name);
CREATE INDEX sessions_tenant ON wa.sessions (tenant);
