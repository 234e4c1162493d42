-- Enqueue a WhatsApp message inside the app's own transaction.
--
--   psql "$PGWA_DATABASE_URL" -X -v session=salon-42 -v to=+5511999998888 \
--        -v text='See you at 10' [-v latitude=-23.5617 -v longitude=-46.6559 -v place='Salon 42'] \
--        [-v voice=/path/to/note.ogg] [-v rollback=true] -f send_in_transaction.sql
--
-- The booking row and the message commit or roll back together: with rollback=true
-- nothing is queued, so no worker ever sees the message. With latitude and longitude,
-- the place is sent too, as a location pin after the text; with voice, a voice note (an
-- Ogg Opus file, as WhatsApp records them, read by psql from the client's disk).
\set ON_ERROR_STOP on
\set QUIET on

-- The app's own table; created here only so that the example runs on its own.
SET client_min_messages = warning;  -- no "already exists" notice on the second run
CREATE TABLE IF NOT EXISTS app_bookings (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now());

BEGIN;
INSERT INTO app_bookings (customer) VALUES (:'to') RETURNING id AS booking_id \gset
-- The idempotency key ties the message to the booking: the same booking never
-- produces a second message.
SELECT job_id, message_id
  FROM wa.send_text(:'session', :'to', :'text', idempotency_key => 'booking-' || :booking_id) \gset
\echo in transaction: booking :booking_id, queued job :job_id message :message_id
\if :{?latitude}
\if :{?place}
\else
\set place ''
\endif
SELECT job_id AS pin_job, message_id AS pin_message
  FROM wa.send_location(:'session', :'to', :'latitude'::float8, :'longitude'::float8, name => nullif(:'place', ''),
                        idempotency_key => 'booking-' || :booking_id || '-location') \gset
\echo in transaction: queued location job :pin_job message :pin_message
\endif
\if :{?voice}
\set voice_base64 `base64 -w0 :'voice'`
SELECT job_id AS note_job, message_id AS note_message
  FROM wa.send_media(:'session', :'to', 'voice', data => decode(:'voice_base64', 'base64'),
                     idempotency_key => 'booking-' || :booking_id || '-voice') \gset
\echo in transaction: queued voice job :note_job message :note_message
\endif

\if :{?rollback}
\else
\set rollback false
\endif
\if :rollback
ROLLBACK;
\echo rolled back: the booking and the message are gone, nothing will be sent
\else
COMMIT;
\echo committed: job :job_id message :message_id is queued for :session
\endif
