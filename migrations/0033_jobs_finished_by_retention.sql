-- Retention deletes finished jobs by rule: other kinds after hours, sends (the message
-- history) and dead jobs after days. One index of every finished job by finished_at made
-- the hourly rule step over the whole message history, tens of millions of rows on a
-- busy install, in each sweep. Two indexes split it by what never changes, the kind: a
-- finished job gets one entry either way, so recording an outcome costs what it did, and
-- `phase`, which claims do not change, keeps them HOT (see migration 0015).
CREATE INDEX jobs_finished_sends ON wa.job_rows (finished_at) WHERE phase = 2 AND kind = 'send';
CREATE INDEX jobs_finished_other ON wa.job_rows (finished_at) WHERE phase = 2 AND kind <> 'send';
DROP INDEX wa.jobs_finished;
