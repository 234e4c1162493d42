-- Session API: apps say what they want (desired state); workers make it so.

-- Creates a session. With pair_phone set, a worker links it by pairing code instead of
-- QR. start => false creates it stopped. Raises WA009 for a malformed id or pair_phone,
-- WA010 if the session exists.
CREATE OR REPLACE FUNCTION wa.add_session(
    id text,
    pair_phone text DEFAULT NULL,
    metadata jsonb DEFAULT '{}',
    start boolean DEFAULT true)
RETURNS wa.sessions
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    row wa.sessions;
    phone text := regexp_replace(pair_phone, '[[:space:]()+.-]', '', 'g');
BEGIN
    IF id IS NULL OR id !~ '^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$' THEN
        RAISE EXCEPTION USING ERRCODE = 'WA009',
            MESSAGE = format('id: %L is not a valid session id (1 to 128 of A-Z a-z 0-9 _ . : @ -, starting with a letter or digit)', id);
    END IF;
    IF phone IS NOT NULL AND phone !~ '^[1-9][0-9]{6,14}$' THEN
        RAISE EXCEPTION USING ERRCODE = 'WA009',
            MESSAGE = format('pair_phone: %L is not a phone number (7 to 15 digits, country code first)', pair_phone);
    END IF;
    IF metadata IS NULL OR jsonb_typeof(metadata) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'WA009', MESSAGE = 'metadata: must be a JSON object';
    END IF;
    INSERT INTO wa.sessions AS s (id, pair_phone, metadata, desired)
    VALUES (id, phone, metadata, CASE WHEN start THEN 'running' ELSE 'stopped' END::wa.desired_state)
    ON CONFLICT ON CONSTRAINT sessions_pkey DO NOTHING
    RETURNING s.* INTO row;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'WA010',
            MESSAGE = format('id: session %L already exists', id),
            HINT = 'Use wa.start_session to run it, or wa.remove_session to start over.';
    END IF;
    RETURN row;
END
$$;

CREATE OR REPLACE FUNCTION wa._session_or_raise(session text)
RETURNS wa.sessions
LANGUAGE plpgsql AS $$
DECLARE
    row wa.sessions;
BEGIN
    SELECT s.* INTO row FROM wa.sessions s WHERE s.id = session FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'WA001',
            MESSAGE = format('session: unknown session %L', session);
    END IF;
    RETURN row;
END
$$;

-- Asks for the session to run. Clears an open circuit or ban hold and a terminal status
-- (conflict, logged_out, failed): the caller decided to try again.
CREATE OR REPLACE FUNCTION wa.start_session(session text)
RETURNS wa.sessions
LANGUAGE plpgsql AS $$
DECLARE
    row wa.sessions;
BEGIN
    PERFORM wa._session_or_raise(session);
    UPDATE wa.sessions s
       SET desired = 'running', status_until = NULL, failed_connect_count = 0,
           status = CASE WHEN s.owner_id IS NULL OR s.status IN ('conflict', 'logged_out', 'failed', 'banned')
                         THEN 'stopped' ELSE s.status END
     WHERE s.id = session
    RETURNING s.* INTO row;
    RETURN row;
END
$$;

-- Asks for the session to stop: its worker closes the connection (without logging out)
-- and releases it. Pending jobs stay queued until the session runs again.
CREATE OR REPLACE FUNCTION wa.stop_session(session text)
RETURNS wa.sessions
LANGUAGE plpgsql AS $$
DECLARE
    row wa.sessions;
BEGIN
    PERFORM wa._session_or_raise(session);
    UPDATE wa.sessions s SET desired = 'stopped' WHERE s.id = session RETURNING s.* INTO row;
    RETURN row;
END
$$;

-- Deletes a session with its jobs, inbox and stored keys. A worker holding it notices at
-- its next lease renewal and drops the connection. To also unlink the device from the
-- phone, run wa.close_session(id, logout => true) first and wait for it to complete.
CREATE OR REPLACE FUNCTION wa.remove_session(session text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM wa._session_or_raise(session);
    DELETE FROM wa.sessions s WHERE s.id = session;
END
$$;
