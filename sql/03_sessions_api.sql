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

-- HMAC-SHA256 (RFC 2104) over the built-in sha256: connect links need no extension.
CREATE OR REPLACE FUNCTION wa._hmac_sha256(key bytea, msg bytea)
RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    k bytea := CASE WHEN octet_length(key) > 64 THEN sha256(key) ELSE key END;
    inner_pad bytea;
    outer_pad bytea;
BEGIN
    k := k || decode(repeat('00', 64 - octet_length(k)), 'hex');
    inner_pad := k;
    outer_pad := k;
    FOR i IN 0..63 LOOP
        inner_pad := set_byte(inner_pad, i, get_byte(k, i) # 54);  -- 0x36
        outer_pad := set_byte(outer_pad, i, get_byte(k, i) # 92);  -- 0x5c
    END LOOP;
    RETURN sha256(outer_pad || sha256(inner_pad || msg));
END
$$;

-- base64url without padding (RFC 4648 section 5), as URLs carry it.
CREATE OR REPLACE FUNCTION wa._b64url(b bytea)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT rtrim(translate(encode(b, 'base64'), E'+/\n', '-_'), '=')
$$;

-- A link to the connect page of a session, for its end customer: the page shows the
-- session's QR code as it refreshes, offers a pairing code instead, and says when the
-- number is connected. The link works for ttl (1 minute to 7 days) and for that session
-- only; it lets its holder link the number (and start the session to do so), nothing
-- else. Any worker with http enabled serves it, at wa.policy.public_url.
--
-- It runs as its definer to sign with the key in wa.secrets, which apps cannot read.
-- A definer sees every session, so the caller's right to this one is checked here, for
-- the login (session_user): its tenants' sessions, or all for the workers' role. A
-- login could reach those roles with SET ROLE anyway, so nothing is widened.
CREATE OR REPLACE FUNCTION wa.connect_link(session text, ttl interval DEFAULT '15 minutes')
RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    base text;
    payload text;
    visible boolean;
BEGIN
    IF ttl IS NULL OR ttl < interval '1 minute' OR ttl > interval '7 days' THEN
        RAISE EXCEPTION USING ERRCODE = 'WA005',
            MESSAGE = format('ttl: %s is out of range (1 minute to 7 days)', coalesce(ttl::text, 'NULL'));
    END IF;
    SELECT EXISTS (
        SELECT 1 FROM wa.sessions s
         WHERE s.id = session
           AND (EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = 'wa' AND pg_has_role(session_user, n.nspowner, 'MEMBER'))
                OR EXISTS (SELECT 1 FROM wa.tenants t WHERE t.name = s.tenant AND pg_has_role(session_user, t.role, 'MEMBER'))))
      INTO visible;
    IF NOT visible THEN
        RAISE EXCEPTION USING ERRCODE = 'WA001',
            MESSAGE = format('session: unknown session %s', wa._q(session));
    END IF;
    SELECT p.public_url INTO base FROM wa.policy p;
    IF base IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'WA014',
            MESSAGE = 'public_url: wa.policy.public_url is not set, so a link would point nowhere',
            HINT = 'As the owner: UPDATE wa.policy SET public_url = ''https://wa.example.com'' (where the workers'' http.listen is reached).';
    END IF;
    payload := floor(extract(epoch FROM now() + ttl))::bigint || ':' || session;
    RETURN rtrim(base, '/') || '/connect/' || wa._b64url(convert_to(payload, 'UTF8')) || '.'
        || wa._b64url(wa._hmac_sha256((SELECT value FROM wa.secrets WHERE name = 'connect_link'),
                                      convert_to('pgwa-connect:' || payload, 'UTF8')));
END
$$;

-- Voids every connect link handed out (a link leaked); new ones work at once. Owner only.
CREATE OR REPLACE FUNCTION wa.rotate_connect_key()
RETURNS void
LANGUAGE sql AS $$
    UPDATE wa.secrets
       SET value = decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'), created_at = now()
     WHERE name = 'connect_link'
$$;
