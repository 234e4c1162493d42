-- Link a WhatsApp number: create the session if needed, wait for its QR code or
-- pairing code, and print it.
--
--   psql "$PGWA_DATABASE_URL" -X -v session=salon-43 [-v seconds=20] -f link.sql
--
-- The worker publishes the code in wa.sessions and announces it on wa_link (the payload
-- has no code in it). psql cannot draw a QR code: print the text and render it with,
-- for example, Debian's qrencode:
--   psql "$PGWA_DATABASE_URL" -XAtc "SELECT qr_code FROM wa.sessions WHERE id = 'salon-43'" | qrencode -t ansiutf8
\set ON_ERROR_STOP on
\set QUIET on
\if :{?seconds}
\else
\set seconds 20
\endif

LISTEN wa_link;
-- Adds the session only if it does not exist yet (wa.add_session refuses a duplicate).
SELECT count(*) AS added FROM (SELECT wa.add_session(:'session') WHERE NOT EXISTS (SELECT 1 FROM wa.sessions WHERE id = :'session')) a \gset
\if :added
\echo added session :session: a worker will claim it and publish a code
\endif

-- Wait until a current code is there (or the session is connected), checking every
-- 200 ms for at most :seconds seconds. A plain SELECT would not do: it sees the table
-- as of its start. Each statement of a PL/pgSQL loop takes a fresh snapshot, so it sees
-- what the worker commits meanwhile. pg_temp: the function lasts as long as this
-- connection and needs no rights beyond the session's own.
CREATE FUNCTION pg_temp.wait_for_code(sid text, seconds numeric) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + seconds * interval '1 second';
BEGIN
    LOOP
        IF EXISTS (SELECT 1 FROM wa.sessions
                    WHERE id = sid
                      AND (status = 'connected'
                           OR (qr_code IS NOT NULL AND coalesce(qr_expires_at > clock_timestamp(), true))
                           OR (pair_code IS NOT NULL AND coalesce(pair_code_expires_at > clock_timestamp(), true)))) THEN
            RETURN true;
        END IF;
        EXIT WHEN clock_timestamp() >= deadline;
        PERFORM pg_sleep(0.2);
    END LOOP;
    RETURN false;
END
$$;
SELECT pg_temp.wait_for_code(:'session', :seconds) AS ready \gset

-- coalesce: \gset leaves a variable unset for a NULL, and \echo would print its name.
SELECT status, coalesce(qr_code, '-') AS qr_code, coalesce(qr_expires_at::text, '-') AS qr_expires_at,
       qr_count, coalesce(pair_code, '-') AS pair_code, coalesce(pair_code_expires_at::text, '-') AS pair_code_expires_at
  FROM wa.sessions WHERE id = :'session' \gset
\if :ready
\echo session :session is :status
\else
\echo no code within :seconds s: session :session is :status
\endif
\echo qr_code (#:qr_count): :qr_code
\echo qr_expires_at: :qr_expires_at
\echo pair_code: :pair_code
\echo pair_code_expires_at: :pair_code_expires_at
