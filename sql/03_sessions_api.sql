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
BEGIN
    -- id, pair_phone and metadata are checked (and pair_phone normalized) by the
    -- sessions_validate trigger, which plain INSERTs go through too.
    INSERT INTO wa.sessions AS s (id, pair_phone, metadata, desired)
    VALUES (id, pair_phone, metadata, CASE WHEN start THEN 'running' ELSE 'stopped' END::wa.desired_state)
    ON CONFLICT ON CONSTRAINT sessions_pkey DO NOTHING
    RETURNING s.* INTO row;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'WA010',
            MESSAGE = format('id: session %s already exists', wa._q(id)),
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
            MESSAGE = format('session: unknown session %s', wa._q(session));
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
    -- The sessions_desired trigger clears the holds whenever desired is set to running,
    -- so a plain UPDATE of desired means exactly this.
    UPDATE wa.sessions s SET desired = 'running' WHERE s.id = session RETURNING s.* INTO row;
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
