-- Everything pgwa owns lives in schema "wa", so it never collides with an app's own
-- tables and one GRANT USAGE decides what an app role can see.
CREATE SCHEMA IF NOT EXISTS wa;

-- States are enums, not free text: a typo in an app's WHERE clause or a worker's UPDATE
-- fails loudly instead of matching nothing.

-- What the app wants a session to be. Workers converge on it (reconciler), never the
-- other way round.
CREATE TYPE wa.desired_state AS ENUM ('running', 'stopped');

-- What a worker observed. See README "Session states" for the transitions.
CREATE TYPE wa.session_status AS ENUM (
    'stopped',            -- nobody holds it, on purpose (desired = stopped)
    'starting',           -- a worker took the lease and is connecting
    'awaiting_qr',        -- linking: a QR code is waiting to be scanned
    'awaiting_pair_code', -- linking: a pairing code is waiting to be typed on the phone
    'connected',
    'reconnecting',       -- connection lost or session handed over; a worker will retry
    'conflict',           -- another client took the number (stream replaced): no reconnect
    'logged_out',         -- the phone removed this device: re-link needed
    'banned',             -- temporary ban, until status_until
    'failed'              -- circuit breaker open, or an error that needs a person
);

CREATE TYPE wa.job_kind AS ENUM ('send', 'reconnect', 'key_cleanup', 'close_session', 'maintenance');

-- available -> running -> completed
--                      -> retryable -> available (when run_at passes) ... -> dead
-- scheduled -> available (when run_at passes); any not-running state -> cancelled
CREATE TYPE wa.job_state AS ENUM (
    'available', 'scheduled', 'running', 'retryable', 'completed', 'dead', 'cancelled'
);

-- An outbound message's fate, independent of the job's: the job completes at "sent"
-- (server ack); delivered and read arrive later as receipts.
CREATE TYPE wa.delivery_status AS ENUM ('queued', 'sent', 'delivered', 'read', 'failed');
