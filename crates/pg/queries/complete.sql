-- Completed jobs (pgwa_pg::jobs::complete). $1 worker, $2 job ids, $3 results, $4 server
-- ack times. The fence: the job still runs under this worker and, for session jobs, the
-- worker holds the session at the claim's epoch. The statement joins the jobs to the
-- arrays and nothing else (see jobs::complete for why).
UPDATE wa.job_rows j
   SET state = 'completed', finished_at = now(), result = u.result,
       delivery = CASE WHEN j.kind = 'send'
                       THEN CASE WHEN j.delivery IN ('delivered', 'read') THEN j.delivery
                                 ELSE 'sent'::wa.delivery_status END END,
       sent_at = CASE WHEN j.kind = 'send' THEN coalesce(u.acked_at, now()) END
  FROM unnest($2::bigint[], $3::jsonb[], $4::timestamptz[]) AS u(id, result, acked_at)
 WHERE j.id = u.id
   AND j.state = 'running' AND j.worker_id = $1
   AND (j.session_id IS NULL OR EXISTS (
        SELECT 1 FROM wa.sessions s WHERE s.id = j.session_id AND wa._holds(s, $1, j.epoch)))
RETURNING j.id, j.session_id, j.message_id, j.delivery::text AS delivery, false AS "dead!"
