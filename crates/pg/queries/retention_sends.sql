-- Retention, completed and cancelled sends: the message history (pgwa_pg::maintenance).
-- $1 seconds kept, $2 batch. Oldest first through jobs_finished_sends.
DELETE FROM wa.job_rows WHERE id IN (
    SELECT id FROM wa.job_rows
     WHERE phase = 2 AND kind = 'send' AND finished_at < now() - make_interval(secs => $1)
       AND state IN ('completed', 'cancelled')
     ORDER BY finished_at
     LIMIT $2)
