-- Failed attempts (pgwa_pg::jobs::fail). $1 worker, $2 job ids, $3 errors, $4 backoff in
-- ms, $5 dead now. Fenced as complete.sql is.
WITH u AS (SELECT * FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::bool[]) AS u(id, error, backoff_ms, dead))
UPDATE wa.job_rows j
   SET state = CASE WHEN u.dead OR j.attempts >= j.max_attempts THEN 'dead' ELSE 'retryable' END::wa.job_state,
       run_at = CASE WHEN u.dead OR j.attempts >= j.max_attempts THEN j.run_at
                     ELSE now() + make_interval(secs => u.backoff_ms / 1000.0) END,
       finished_at = CASE WHEN u.dead OR j.attempts >= j.max_attempts THEN now() END,
       delivery = CASE WHEN j.kind = 'send' AND (u.dead OR j.attempts >= j.max_attempts)
                       THEN 'failed'::wa.delivery_status ELSE j.delivery END,
       errors = j.errors || jsonb_build_object('attempt', j.attempts, 'at', now(), 'error', u.error, 'worker', $1::uuid),
       worker_id = NULL, epoch = NULL
  FROM u
 WHERE j.id = u.id
   AND j.state = 'running' AND j.worker_id = $1
   AND (j.session_id IS NULL OR EXISTS (
        SELECT 1 FROM wa.sessions s WHERE s.id = j.session_id AND wa._holds(s, $1, j.epoch)))
RETURNING j.id, j.session_id, j.message_id,
          CASE WHEN j.delivery = 'failed' THEN 'failed' END AS delivery,
          j.state = 'dead' AS "dead!"
