-- Promotion (pgwa_pg::jobs::promote_due, about once a second on every worker) moves the
-- due jobs of the sessions the worker holds. jobs_due was by run_at alone, so each
-- promotion stepped over every due job of sessions nobody holds (stopped, logged out,
-- waiting for a worker with room), a heap visit each: a stopped session with a backlog
-- of scheduled sends cost every worker that backlog every second. By session first, a
-- promotion reads the due jobs of its own sessions only (and the session-less ones:
-- maintenance ticks; a webhook's queued deliveries wait at run_at infinity, past any
-- range a promotion reads).
CREATE INDEX jobs_due_by_session ON wa.job_rows (session_id, run_at) WHERE phase = 0;
DROP INDEX wa.jobs_due;
ALTER INDEX wa.jobs_due_by_session RENAME TO jobs_due;
