-- Schema variant (`pgwa bench --schema-variant`): wa.job_rows's indexes and constraints
-- as they were before migrations 0033-0035: one index of every finished job by
-- finished_at (instead of one for sends and one for the rest), no jobs_dead index and no
-- dead_has_no_result CHECK, jobs_due by run_at alone. Measures what those changes cost
-- the drain against the same build in the same hour; only a benchmark's scratch
-- database gets it.
ALTER TABLE wa.job_rows DROP CONSTRAINT dead_has_no_result;
DROP INDEX wa.jobs_dead;
DROP INDEX wa.jobs_finished_sends;
DROP INDEX wa.jobs_finished_other;
CREATE INDEX jobs_finished ON wa.job_rows (finished_at) WHERE finished_at IS NOT NULL;
DROP INDEX wa.jobs_due;
CREATE INDEX jobs_due ON wa.job_rows (run_at) WHERE phase = 0;
