-- Claims become HOT updates. Taking a job (available -> running) used to write a new
-- version of the row into five indexes, because four of them named `state` in their
-- predicates; that was most of the cost of a claim. Postgres updates a row in place
-- (HOT) only when no indexed column, predicates included, changes. So the indexes now
-- name `phase`, which the claim does not change:
--   0 waiting  (scheduled, retryable)   -- promoted by time
--   1 ready    (available, running)     -- claimable or being run
--   2 finished (completed, dead, cancelled)
-- and nothing indexed changes when a job is taken or handed back. The claim reads
-- `state` from the row itself; the running rows it steps over are the worker's own
-- in-flight jobs, at most worker.max_in_flight.
ALTER TABLE wa.jobs ADD COLUMN phase smallint NOT NULL GENERATED ALWAYS AS (
    CASE WHEN state IN ('scheduled', 'retryable') THEN 0
         WHEN state IN ('available', 'running') THEN 1
         ELSE 2 END) STORED;

-- Room on each page for the claimed versions of its rows: HOT keeps the new version on
-- the same page or falls back to a full update. Rows are ~250 bytes; half a page lets a
-- page's rows all be claimed in one batch. The table is a queue plus recent history
-- (see retention), so the space is the price of cheap claims.
ALTER TABLE wa.jobs SET (fillfactor = 50);

DROP INDEX wa.jobs_claim;
DROP INDEX wa.jobs_chat_fifo;
DROP INDEX wa.jobs_chat_busy;
DROP INDEX wa.jobs_due;
DROP INDEX wa.jobs_running;

-- The claim: per session, control lane first, then priority, then FIFO by id.
CREATE INDEX jobs_claim ON wa.jobs (session_id, lane, priority, id) WHERE phase = 1;
-- Per-chat FIFO: every unfinished send of a chat, in order. A send is claimable only
-- when each earlier send of its chat that is available, running or waiting for a retry
-- is available and claimed with it. (It replaces jobs_chat_fifo, and jobs_chat_busy,
-- which named `state`.)
CREATE INDEX jobs_chat ON wa.jobs (session_id, chat, id) WHERE phase < 2 AND chat IS NOT NULL;
-- Promotion of scheduled and retryable jobs whose time has come.
CREATE INDEX jobs_due ON wa.jobs (run_at) WHERE phase = 0;
