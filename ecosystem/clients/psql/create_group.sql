-- Creates a WhatsApp group of a session's number and the people named (a group job),
-- waits up to :timeout seconds (default 60) for the server's answer, and shows the
-- group from wa.groups: its JID (the recipient for messages to it) and its members.
--
--   psql "$PGWA_DATABASE_URL" -X -v session=salon-42 -v subject='Saturday team' \
--        -v phones='+5511999998888,+5511977776666' [-v timeout=30] -f create_group.sql
\set ON_ERROR_STOP on
\set QUIET on
\if :{?timeout}
\else
\set timeout 60
\endif

SELECT wa.create_group(:'session', :'subject', string_to_array(:'phones', ',')) AS job \gset
\echo queued job :job

-- Each statement of the loop sees what committed before it, so it sees the worker's
-- answer; the wait is a loop because psql cannot wait for a notification.
SELECT set_config('pgwa.job', :'job', false) AS _job, set_config('pgwa.timeout', :'timeout', false) AS _timeout \gset
DO $$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => current_setting('pgwa.timeout')::float8);
    s text;
BEGIN
    LOOP
        SELECT state INTO s FROM wa.jobs WHERE id = current_setting('pgwa.job')::bigint;
        EXIT WHEN s IN ('completed', 'dead', 'cancelled') OR clock_timestamp() > deadline;
        PERFORM pg_sleep(0.2);
    END LOOP;
END
$$;

SELECT j.state AS job_state, j.errors->-1->>'error' AS last_error, j.result->>'group' AS group_jid
  FROM wa.jobs j WHERE j.id = :job \gx

SELECT m->>'phone' AS phone, m->>'admin' AS admin
  FROM wa.jobs j
  JOIN wa.groups g ON g.session_id = j.session_id AND g.jid = j.result->>'group'
  CROSS JOIN LATERAL jsonb_array_elements(g.participants) m
 WHERE j.id = :job
 ORDER BY 1;
