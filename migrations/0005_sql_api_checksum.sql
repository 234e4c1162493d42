-- The SQL API (functions, triggers, views, grants) is code, kept in sql/ and re-applied
-- by `pgwa migrate` whenever its checksum changes, like a repeatable migration. This row
-- remembers which version is installed so an unchanged API is not re-applied (re-creating
-- triggers takes a brief exclusive lock on the hot tables).
CREATE TABLE wa.sql_api (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
