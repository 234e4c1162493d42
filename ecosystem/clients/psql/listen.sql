-- Be told about inbound messages, session status changes and linking codes.
--
--   psql "$PGWA_DATABASE_URL" -X [-v seconds=30] [-v until_inbound=1] -f listen.sql
--
-- psql prints a notification ('Asynchronous notification "wa_inbox" with payload ...')
-- when the statement it is running ends, so this script LISTENs and then waits: the
-- notifications that arrived meanwhile are printed when the wait ends. The wait lasts
-- :seconds, or with until_inbound set, until the first inbound message arrives (at most
-- :seconds). Payloads carry ids only; the messages themselves are read from wa.inbox
-- afterwards.
\set ON_ERROR_STOP on
\set QUIET on
\if :{?seconds}
\else
\set seconds 10
\endif
\if :{?until_inbound}
\set stop_at_inbound on
\else
\set stop_at_inbound off
\endif

LISTEN wa_inbox;
LISTEN wa_session_status;
LISTEN wa_link;
SELECT now() AS started \gset
-- A DO block takes no parameters: it reads them from settings of this connection.
SELECT set_config('pgwa_listen.started', :'started', false),
       set_config('pgwa_listen.seconds', :'seconds', false),
       set_config('pgwa_listen.stop_at_inbound', :'stop_at_inbound', false) \g /dev/null
\if :stop_at_inbound
\echo listening on wa_inbox, wa_session_status, wa_link until an inbound message arrives (at most :seconds s)
\else
\echo listening on wa_inbox, wa_session_status, wa_link for :seconds s
\endif
DO $wait$
DECLARE
  started  timestamptz := current_setting('pgwa_listen.started')::timestamptz;
  deadline timestamptz := clock_timestamp()
                          + make_interval(secs => current_setting('pgwa_listen.seconds')::float8);
  stop_at_inbound boolean := current_setting('pgwa_listen.stop_at_inbound')::boolean;
BEGIN
  -- Each query in the loop takes a new snapshot, so a message committed meanwhile is seen.
  WHILE clock_timestamp() < deadline LOOP
    EXIT WHEN stop_at_inbound AND EXISTS (SELECT 1 FROM wa.inbox WHERE received_at >= started);
    PERFORM pg_sleep(least(0.2, extract(epoch FROM deadline - clock_timestamp())));
  END LOOP;
END
$wait$;

\echo inbound messages received while listening:
SELECT id, session_id AS session, chat, sender, kind, message_id, text
  FROM wa.inbox
 WHERE received_at >= :'started'
 ORDER BY id;
