-- The fence (pgwa_core::fence), written once in SQL. Every statement a worker runs to
-- write or delete session state, keys, job outcomes or inbox rows tests one of these on
-- the session's row, in the same statement. They used to be text pasted into each
-- statement by a Rust macro, which kept those statements from being checked at compile
-- time (sqlx::query! takes literal SQL only).
--
-- They are SQL-standard bodies on purpose: parsed once here (a caller's search_path
-- cannot redirect now() or the operators), and inlined by the planner like the text
-- they replace, so claim and outcome plans do not change (tests/queue_plans.rs). The
-- row argument's fields become plain column references when inlined.
-- Internal (wa._*): sql/06_roles.sql revokes them from apps.

-- Held by `worker` at epoch `at_epoch` with an unexpired lease. NULL when the session has
-- no owner, which a WHERE reads as false.
CREATE FUNCTION wa._holds(s wa.sessions, worker uuid, at_epoch bigint) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN s.owner_id = worker AND s.epoch = at_epoch AND s.lease_expires_at > pg_catalog.now();

-- No live holder: offline writers (the importer, tests, benchmarks) may write keys only
-- then, so they can never change what a running session uses.
CREATE FUNCTION wa._unheld(s wa.sessions) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN s.owner_id IS NULL OR coalesce(s.lease_expires_at <= pg_catalog.now(), true);

-- A key write's fence: with a worker (a running session), while it holds; without one
-- (NULL: offline), while nobody does.
CREATE FUNCTION wa._may_write(s wa.sessions, worker uuid, at_epoch bigint) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN CASE WHEN worker IS NULL THEN wa._unheld(s) ELSE wa._holds(s, worker, at_epoch) END;
