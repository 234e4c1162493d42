-- Apps keep writing wa.jobs; the workers write the table under it, now wa.job_rows.
--
-- While wa.jobs had BEFORE ROW UPDATE triggers (jobs_app_guard, jobs_webhook_retry),
-- Postgres fetched and locked every row a claim or a completion updated before their
-- WHEN skipped it, and ten CHECK constraints were evaluated on every UPDATE (BENCHMARKS.md
-- has what they cost the drain: 15 % on one host, about 1 % on another). Both triggers
-- police apps' writes only. So wa.jobs becomes a view
-- of the table, reading it as the caller (Row Level Security of wa.job_rows applies to
-- apps as before), whose INSTEAD OF UPDATE trigger (sql/02_triggers.sql) does what the
-- two triggers did; INSERT and DELETE go through the view to the table unchanged, and
-- the table's own insert trigger still validates every row.
--
-- The CHECKs that re-state the insert trigger's validation go (priority, max_attempts,
-- payload, idempotency key, sessionless kinds, a send's message): no UPDATE of apps or
-- workers writes those columns. The four that guard the worker's state machine stay.
--
-- The functions typed by the table's row are dropped here and made again by the SQL
-- API over the view's row type (same columns): a replaced function cannot change its
-- types.
DROP FUNCTION IF EXISTS wa.enqueue(text, text, jsonb, timestamptz, integer, text, integer);
DROP FUNCTION IF EXISTS wa._same_request(wa.jobs, wa.job_kind);

DROP TRIGGER IF EXISTS jobs_app_guard ON wa.jobs;
DROP TRIGGER IF EXISTS jobs_webhook_retry ON wa.jobs;

ALTER TABLE wa.jobs
    DROP CONSTRAINT priority_range,
    DROP CONSTRAINT max_attempts_range,
    DROP CONSTRAINT payload_is_object,
    DROP CONSTRAINT idempotency_key_length,
    DROP CONSTRAINT sessionless_kinds,
    DROP CONSTRAINT send_has_message;

ALTER TABLE wa.jobs RENAME TO job_rows;

-- Every column, in the table's order. A column added to wa.job_rows later must be
-- added here too (CREATE OR REPLACE VIEW may append columns).
CREATE VIEW wa.jobs WITH (security_invoker = true) AS SELECT * FROM wa.job_rows;
