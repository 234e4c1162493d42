-- The completion of variant finished_jobs_table (finished_jobs_table.sql): the same
-- fence, values and answer as crates/pg/queries/complete.sql, but the finished row is
-- moved to wa.finished_jobs. $1 worker, $2 job ids, $3 results, $4 server ack times.
WITH done AS (
    DELETE FROM wa.job_rows j
     USING unnest($2::bigint[], $3::jsonb[], $4::timestamptz[]) AS u(id, result, acked_at)
     WHERE j.id = u.id
       AND j.state = 'running' AND j.worker_id = $1
       AND (j.session_id IS NULL OR EXISTS (
            SELECT 1 FROM wa.sessions s WHERE s.id = j.session_id AND wa._holds(s, $1, j.epoch)))
    RETURNING j.*, u.result AS new_result, u.acked_at)
INSERT INTO wa.finished_jobs (id, session_id, kind, payload, state, priority, run_at, attempts, max_attempts, errors,
       idempotency_key, result, worker_id, epoch, cancel_requested_at, chat, message_id, delivery, sent_at,
       delivered_at, read_at, created_at, attempted_at, finished_at, phase, lane)
SELECT d.id, d.session_id, d.kind, d.payload, 'completed', d.priority, d.run_at, d.attempts, d.max_attempts, d.errors,
       d.idempotency_key, d.new_result, d.worker_id, d.epoch, d.cancel_requested_at, d.chat, d.message_id,
       CASE WHEN d.kind = 'send'
            THEN CASE WHEN d.delivery IN ('delivered', 'read') THEN d.delivery ELSE 'sent'::wa.delivery_status END END,
       CASE WHEN d.kind = 'send' THEN coalesce(d.acked_at, now()) END,
       d.delivered_at, d.read_at, d.created_at, d.attempted_at, now(), 2, d.lane
  FROM done d
RETURNING id, session_id, message_id, delivery::text AS delivery, false AS dead
