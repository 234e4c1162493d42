-- Tenant isolation: Row Level Security on every table an app reads, keyed by the
-- session's tenant. Workers (owner of schema wa) bypass it; every role granted pgwa_api
-- (pgwa_app and each tenant's role) sees only the tenants whose role it has.
-- LISTEN/NOTIFY cannot be restricted by Postgres: payloads carry ids only, which mean
-- nothing without a read that these policies check (docs/security.md).

-- The tenants the current role belongs to (RLS on wa.tenants filters the rows).
CREATE OR REPLACE FUNCTION wa._my_tenants()
RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(t.name ORDER BY t.name), '{}') FROM wa.tenants t
$$;

-- The tenant a new session gets when the inserting role does not name one: its only
-- tenant; 'default' for workers and the CLI.
CREATE OR REPLACE FUNCTION wa._my_tenant()
RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    mine text[];
BEGIN
    IF wa._caller_is_worker() THEN
        RETURN 'default';
    END IF;
    mine := wa._my_tenants();
    IF cardinality(mine) = 1 THEN
        RETURN mine[1];
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'WA011',
        MESSAGE = CASE WHEN cardinality(mine) = 0
                       THEN format('tenant: role %I belongs to no tenant', current_user)
                       ELSE format('tenant: role %I belongs to several tenants (%s); name one', current_user,
                                   array_to_string(mine, ', ')) END,
        HINT = 'Grant the login one tenant''s role (pgwa tenant add NAME prints it), or INSERT INTO wa.sessions (id, tenant).';
END
$$;
ALTER TABLE wa.sessions ALTER COLUMN tenant SET DEFAULT wa._my_tenant();

-- Adds a tenant and its role (pgwa_t_<name>, no login: grant it to the app's login).
-- Returns the role's name. Needs a caller that may create roles (the owner).
-- Roles are cluster-wide: a role this function made carries a comment naming its tenant
-- and database (wa._tenant_role_mark), and an existing role is taken only when it
-- carries this database's mark. Otherwise a second pgwa database on the cluster adding
-- a tenant of the same name would share the role, and a login granted it for one
-- database would be that tenant in the other too.
CREATE OR REPLACE FUNCTION wa._tenant_role_mark(name text)
RETURNS text
LANGUAGE sql STABLE
RETURN format('pgwa tenant %s of database %s', name, current_database());

CREATE OR REPLACE FUNCTION wa.add_tenant(name text)
RETURNS name
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    r name := 'pgwa_t_' || name;
    mark text := wa._tenant_role_mark(name);
    role_oid oid;
    existing text;
BEGIN
    IF name IS NULL OR name !~ '^[a-z][a-z0-9_]{0,39}$' THEN
        RAISE EXCEPTION USING ERRCODE = 'WA012',
            MESSAGE = format('name: %s is not a valid tenant name (1 to 40 of a-z 0-9 _, starting with a letter)', wa._q(name));
    END IF;
    IF EXISTS (SELECT 1 FROM wa.tenants t WHERE t.name = name) THEN
        RAISE EXCEPTION USING ERRCODE = 'WA010', MESSAGE = format('name: tenant %L already exists', name);
    END IF;
    SELECT oid INTO role_oid FROM pg_catalog.pg_roles WHERE rolname = r;
    IF FOUND THEN
        existing := pg_catalog.shobj_description(role_oid, 'pg_authid');
        IF existing IS DISTINCT FROM mark THEN
            RAISE EXCEPTION USING ERRCODE = 'WA010',
                MESSAGE = format('name: role %s already exists in this cluster and is not the role of tenant %L in this database', r, name),
                DETAIL = coalesce(format('The role''s comment says: %s.', existing), 'wa.add_tenant did not make it.'),
                HINT = 'Roles are shared by every database of the cluster, so one role cannot be two tenants: choose another tenant name.';
        END IF;
    ELSE
        EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXECUTE format('COMMENT ON ROLE %I IS %L', r, mark);
    END IF;
    EXECUTE format('GRANT pgwa_api TO %I', r);
    INSERT INTO wa.tenants (name, role) VALUES (name, r);
    RETURN r;
END
$$;

ALTER TABLE wa.tenants ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS own_tenants ON wa.tenants;
CREATE POLICY own_tenants ON wa.tenants FOR SELECT TO pgwa_api
    USING (EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = role AND pg_has_role(r.oid, 'USAGE')));

ALTER TABLE wa.sessions ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS own_sessions ON wa.sessions;
-- A sub-SELECT, so the tenant list is computed once per statement, not once per row.
CREATE POLICY own_sessions ON wa.sessions FOR ALL TO pgwa_api
    USING (tenant IN (SELECT unnest(wa._my_tenants())))
    WITH CHECK (tenant IN (SELECT unnest(wa._my_tenants())));

-- Jobs and inbox rows are visible through their session (whose own policy applies to
-- the sub-SELECT), through wa.jobs too (it reads wa.job_rows as the caller). Maintenance
-- jobs (no session) are the workers' alone.
ALTER TABLE wa.job_rows ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS own_jobs ON wa.job_rows;
CREATE POLICY own_jobs ON wa.job_rows FOR ALL TO pgwa_api
    USING (session_id IN (SELECT s.id FROM wa.sessions s))
    WITH CHECK (session_id IN (SELECT s.id FROM wa.sessions s));

ALTER TABLE wa.inbox ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS own_inbox ON wa.inbox;
CREATE POLICY own_inbox ON wa.inbox FOR SELECT TO pgwa_api
    USING (session_id IN (SELECT s.id FROM wa.sessions s));

ALTER TABLE wa.contacts ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS own_contacts ON wa.contacts;
CREATE POLICY own_contacts ON wa.contacts FOR SELECT TO pgwa_api
    USING (session_id IN (SELECT s.id FROM wa.sessions s));

ALTER TABLE wa.chat_states ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS own_chat_states ON wa.chat_states;
CREATE POLICY own_chat_states ON wa.chat_states FOR SELECT TO pgwa_api
    USING (session_id IN (SELECT s.id FROM wa.sessions s));

ALTER TABLE wa.calls ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS own_calls ON wa.calls;
CREATE POLICY own_calls ON wa.calls FOR SELECT TO pgwa_api
    USING (session_id IN (SELECT s.id FROM wa.sessions s));

ALTER TABLE wa.media ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS own_media ON wa.media;
CREATE POLICY own_media ON wa.media FOR SELECT TO pgwa_api
    USING (session_id IN (SELECT s.id FROM wa.sessions s));

ALTER TABLE wa.groups ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS own_groups ON wa.groups;
CREATE POLICY own_groups ON wa.groups FOR SELECT TO pgwa_api
    USING (session_id IN (SELECT s.id FROM wa.sessions s));

-- Views read their tables as the caller, so the policies above apply through them.
ALTER VIEW wa.outbound SET (security_invoker = true);
ALTER VIEW wa.session_health SET (security_invoker = true);
ALTER VIEW wa.queue_stats SET (security_invoker = true);
ALTER VIEW wa.poll_results SET (security_invoker = true);

GRANT SELECT ON wa.tenants TO pgwa_api;
GRANT INSERT (tenant) ON wa.sessions TO pgwa_api;
GRANT EXECUTE ON FUNCTION wa._my_tenants(), wa._my_tenant() TO pgwa_api;
REVOKE ALL ON FUNCTION wa.add_tenant(text) FROM PUBLIC;

-- Tenants added before roles were marked get their mark, so re-adding one after removing
-- it by hand still works. A migrating role that may not comment on roles leaves them be.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT tn.name, tn.role FROM wa.tenants tn JOIN pg_catalog.pg_roles r ON r.rolname = tn.role
              WHERE tn.role LIKE 'pgwa\_t\_%' AND pg_catalog.shobj_description(r.oid, 'pg_authid') IS NULL LOOP
        BEGIN
            EXECUTE format('COMMENT ON ROLE %I IS %L', t.role, wa._tenant_role_mark(t.name));
        EXCEPTION WHEN insufficient_privilege THEN
            NULL;
        END;
    END LOOP;
END
$$;
