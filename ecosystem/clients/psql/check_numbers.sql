-- Which phone numbers are on WhatsApp: asks through a connected session (a
-- check_numbers job), waits up to :timeout seconds (default 60) for the answers, and
-- shows them from wa.contacts, with the LID WhatsApp uses for each number.
--
--   psql "$PGWA_DATABASE_URL" -X -v session=salon-42 -v phones='+5511999998888,+5511977776666' \
--        [-v timeout=30] -f check_numbers.sql
\set ON_ERROR_STOP on
\set QUIET on
\if :{?timeout}
\else
\set timeout 60
\endif

SELECT wa.check_numbers(:'session', string_to_array(:'phones', ',')) AS job \gset
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

SELECT j.state AS job_state, j.errors->-1->>'error' AS last_error, j.result
  FROM wa.jobs j WHERE j.id = :job \gx

SELECT c.phone, c.on_whatsapp, c.jid, c.lid, c.checked_at
  FROM wa.jobs j CROSS JOIN LATERAL jsonb_array_elements_text(j.payload->'phones') p
  JOIN wa.contacts c ON c.session_id = j.session_id AND c.phone = p
 WHERE j.id = :job
 ORDER BY c.phone;
