-- The claim (pgwa_pg::jobs::claim explains its shape). $1 worker, $2 held sessions,
-- $3 connected sessions, $4 jobs per session, $5 session-less jobs (maintenance, webhook deliveries), $6 the job kinds this
-- worker can run (a newer pgwa's kinds stay queued for the newer workers).
WITH held AS (
     SELECT s.id, s.epoch, s.id = ANY($3) AS sendable
       FROM wa.sessions s
      WHERE s.id = ANY($2) AND s.owner_id = $1 AND s.lease_expires_at > now()
 ),
 cand AS (
     SELECT c.id, c.at, c.session_id, c.chat, h.epoch
       FROM held h CROSS JOIN LATERAL (
            SELECT j.id, j.ctid AS at, j.session_id, j.chat FROM wa.job_rows j
             WHERE j.session_id = h.id AND j.phase = 1 AND j.lane = 0 AND j.state = 'available'
               AND j.kind::text = ANY($6)
             ORDER BY j.priority, j.id LIMIT $4) c
     UNION ALL
     SELECT c.id, c.at, c.session_id, c.chat, h.epoch
       FROM held h CROSS JOIN LATERAL (
            SELECT j.id, j.ctid AS at, j.session_id, j.chat FROM wa.job_rows j
             WHERE j.session_id = h.id AND j.phase = 1 AND j.lane = 1 AND j.state = 'available' AND h.sendable
               AND j.kind::text = ANY($6)
             ORDER BY j.priority, j.id LIMIT $4) c
 ),
 heads AS (
     SELECT c.session_id, c.chat, min(c.id) AS id, max(c.id) AS last
       FROM cand c WHERE c.chat IS NOT NULL GROUP BY c.session_id, c.chat
 ),
 blocked AS (
     SELECT h.session_id, h.chat
       FROM heads h CROSS JOIN LATERAL (
            SELECT 1 FROM wa._chat_unfinished_before(h.session_id, h.chat, h.id) LIMIT 1) b
 ),
 stops AS (
     SELECT h.session_id, h.chat, k.id
       FROM heads h CROSS JOIN LATERAL (
            SELECT u.job_id AS id FROM wa._chat_unfinished_before(h.session_id, h.chat, h.last) u
             WHERE u.job_id > h.id AND u.job_id NOT IN (SELECT id FROM cand) OFFSET 0) k
      WHERE h.last > h.id AND (h.session_id, h.chat) NOT IN (SELECT b.session_id, b.chat FROM blocked b)
 ),
 free AS (
     SELECT c.id, c.at, c.epoch FROM cand c WHERE c.chat IS NULL
     UNION ALL
     SELECT x.id, x.at, x.epoch FROM (
            SELECT y.id, y.at, y.epoch,
                   bool_or(y.stop) OVER (PARTITION BY y.session_id, y.chat ORDER BY y.id) AS behind
              FROM (SELECT c.id, c.at, c.epoch, c.session_id, c.chat, false AS stop FROM cand c
                     WHERE c.chat IS NOT NULL AND (c.session_id, c.chat) NOT IN (SELECT b.session_id, b.chat FROM blocked b)
                    UNION ALL
                    SELECT s.id, NULL, NULL, s.session_id, s.chat, true FROM stops s) y) x
      WHERE NOT x.behind
 ),
 locked AS (
     SELECT l.id, l.at, f.epoch
       FROM free f CROSS JOIN LATERAL (
            SELECT j.id, j.ctid AS at FROM wa.job_rows j
             WHERE j.ctid = f.at AND j.id = f.id AND j.state = 'available' FOR UPDATE SKIP LOCKED) l
 ),
 loose AS (
     SELECT j.id, j.ctid AS at, NULL::bigint AS epoch FROM wa.job_rows j
      WHERE j.session_id IS NULL AND j.phase = 1 AND j.state = 'available'
        AND j.kind::text = ANY($6)
      ORDER BY j.priority, j.id LIMIT $5 FOR UPDATE SKIP LOCKED
 ),
 taken AS (
     SELECT * FROM locked UNION ALL SELECT * FROM loose
 )
 UPDATE wa.job_rows j
    SET state = 'running', attempts = j.attempts + 1, attempted_at = now(),
        worker_id = $1, epoch = c.epoch
   FROM unnest(ARRAY(SELECT t FROM taken t)) AS c(id bigint, at tid, epoch bigint)
  WHERE j.ctid = c.at AND j.state = 'available'
    AND (j.chat IS NULL OR (SELECT count(*) FROM locked) = (SELECT count(*) FROM free) OR NOT EXISTS (
         SELECT 1 FROM wa._chat_unfinished_before(j.session_id, j.chat, j.id) k
          WHERE k.job_id NOT IN (SELECT id FROM taken)))
 RETURNING j.id, j.session_id, j.kind::text AS "kind!", j.payload, j.chat, j.message_id,
           j.attempts, j.max_attempts, j.epoch
