-- `pgwa bench-outcomes`, variant finished_jobs_table: a finished job leaves wa.job_rows
-- for a table of its own (as Graphile Worker deletes a finished job, but kept), so the
-- completion is a delete and an insert into an append-only table instead of a non-HOT
-- update of the hot table. Its completion and receipt statements are
-- finished_jobs_table_complete.sql and finished_jobs_table_receipt.sql.
-- Measured and not shipped: the receipts, no longer HOT, cost more than the completion
-- saves (BENCHMARKS.md, "Finished jobs stay in wa.job_rows").
-- Only the benchmark's scratch database gets it.
CREATE TABLE wa.finished_jobs (LIKE wa.job_rows INCLUDING DEFAULTS);
-- LIKE copies the generated `phase` as a plain column; every row here is finished.
ALTER TABLE wa.finished_jobs ADD PRIMARY KEY (id);
-- The finished-phase indexes of wa.job_rows, here without the phase in their predicates.
CREATE UNIQUE INDEX finished_message ON wa.finished_jobs (session_id, message_id) WHERE message_id IS NOT NULL;
CREATE UNIQUE INDEX finished_idempotency ON wa.finished_jobs (session_id, idempotency_key) NULLS NOT DISTINCT
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX finished_sends ON wa.finished_jobs (finished_at) WHERE kind = 'send';
CREATE INDEX finished_other ON wa.finished_jobs (finished_at) WHERE kind <> 'send';
CREATE INDEX finished_dead ON wa.finished_jobs (session_id, id) WHERE state = 'dead' AND result IS NULL;
-- No foreign key to wa.sessions: rows come only from wa.job_rows, which has one, and a
-- removed session's rows would be deleted by its removal. Checked per inserted row (a
-- row lock on wa.sessions each), it made the completion 22.7-23.5 us instead of
-- 16.5-16.7 in two trials with psql (2026-11-28, without the fence, a build running).
-- wa.job_rows no longer holds finished rows, so its finished-phase indexes go.
DROP INDEX wa.jobs_finished_sends;
DROP INDEX wa.jobs_finished_other;
DROP INDEX wa.jobs_dead;
