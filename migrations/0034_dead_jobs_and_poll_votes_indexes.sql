-- What operators and apps look at often was found by reading what is kept for weeks.
--
-- Dead jobs: the console's job list (dead by default, polled every 5 s) and
-- wa.queue_stats read every job kept, finished sends included (30 days of them). This
-- index holds the dead ones alone. It cannot name `state` (claims are HOT updates,
-- migration 0015), so it names what only a dead job lacks among finished ones: a
-- result (a completion writes one, a cancel writes {"cancelled": true}). The CHECK makes
-- that a rule, so the index holds every dead job; readers still test `state`. A finished
-- job gets no entry unless it is dead: recording outcomes costs what it did.
ALTER TABLE wa.job_rows ADD CONSTRAINT dead_has_no_result CHECK (state <> 'dead' OR result IS NULL);
CREATE INDEX jobs_dead ON wa.job_rows (session_id, id) WHERE phase = 2 AND result IS NULL;

-- A poll's votes (wa.poll_results): looked up by the poll's message id, they were found
-- by reading the session's whole inbox. Only votes get an entry.
CREATE INDEX inbox_poll_votes ON wa.inbox (session_id, quoted_id) WHERE kind = 'poll_vote';
