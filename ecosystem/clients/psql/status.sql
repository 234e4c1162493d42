-- Read a message's delivery status: queued -> sent (server ack) -> delivered -> read,
-- or failed; with the job behind it and the last error if any.
--
--   psql "$PGWA_DATABASE_URL" -X -v message_id=3EB0C2A1F9D8E7B6A5C4D3 -f status.sql
\set ON_ERROR_STOP on
\set QUIET on

SELECT job_id, session, chat, status, job_state, attempts, last_error, sent_at, delivered_at, read_at
  FROM wa.outbound
 WHERE message_id = :'message_id' \gx

-- The same for a whole session: how many messages are at each status.
SELECT status, count(*)
  FROM wa.outbound
 WHERE session = (SELECT session FROM wa.outbound WHERE message_id = :'message_id')
 GROUP BY status
 ORDER BY status;
