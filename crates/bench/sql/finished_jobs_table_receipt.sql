-- The receipts of variant finished_jobs_table (finished_jobs_table.sql): the worker's
-- receipt statement (pgwa_pg::receipts::apply), same parameters, rule and answer, over
-- both tables, since a receipt may come before its send's completion is recorded.
-- $1 sessions, $2 workers, $3 epochs, $4 message ids, $5 statuses, $6 delivered, $7 read.
WITH r AS (
    SELECT r.*, wa._holds(s, r.worker, r.epoch) AS held
      FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[])
             AS r(session_id, worker, epoch, message_id, status, delivered_at, read_at)
      JOIN wa.sessions s ON s.id = r.session_id),
unfinished AS (
    UPDATE wa.job_rows j
       SET delivery = r.status::wa.delivery_status,
           delivered_at = coalesce(j.delivered_at, r.delivered_at),
           read_at = coalesce(j.read_at, r.read_at)
      FROM r
     WHERE j.session_id = r.session_id AND j.message_id = r.message_id AND j.message_id IS NOT NULL
       AND j.delivery < r.status::wa.delivery_status AND r.held
    RETURNING j.id),
finished AS (
    UPDATE wa.finished_jobs j
       SET delivery = r.status::wa.delivery_status,
           delivered_at = coalesce(j.delivered_at, r.delivered_at),
           read_at = coalesce(j.read_at, r.read_at)
      FROM r
     WHERE j.session_id = r.session_id AND j.message_id = r.message_id AND j.message_id IS NOT NULL
       AND j.delivery < r.status::wa.delivery_status AND r.held
    RETURNING j.id)
SELECT id FROM unfinished UNION ALL SELECT id FROM finished
