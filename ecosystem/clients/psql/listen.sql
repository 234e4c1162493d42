-- Be told about inbound messages, session status changes and linking codes.
--
--   psql "$PGWA_DATABASE_URL" -X [-v seconds=30] -f listen.sql
--
-- psql prints a notification ('Asynchronous notification "wa_inbox" with payload ...')
-- when the statement it is running ends, so this script LISTENs and then sleeps: the
-- notifications that arrived meanwhile are printed when the sleep ends. Payloads carry
-- ids only; the messages themselves are read from wa.inbox afterwards.
\set ON_ERROR_STOP on
\set QUIET on
\if :{?seconds}
\else
\set seconds 10
\endif

LISTEN wa_inbox;
LISTEN wa_session_status;
LISTEN wa_link;
SELECT now() AS started \gset
\echo listening on wa_inbox, wa_session_status, wa_link for :seconds s
SELECT pg_sleep(:seconds) \g /dev/null

\echo inbound messages received while listening:
SELECT id, session_id AS session, chat, sender, kind, message_id, text
  FROM wa.inbox
 WHERE received_at >= :'started'
 ORDER BY id;
