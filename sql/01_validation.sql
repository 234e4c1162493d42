-- Input validation shared by the SQL API and by plain INSERTs into wa.jobs.
-- Every error raised here carries a SQLSTATE of class WA (see README "Errors") and a
-- message that starts with the name of the argument or field at fault.

-- Quotes a bad input for an error message, in part: errors reach logs and screens, and
-- an app that passed a megabyte by mistake should not get it back in every log line.
CREATE OR REPLACE FUNCTION wa._q(v text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN v IS NULL THEN 'NULL'
                WHEN char_length(v) <= 40 THEN quote_literal(v)
                ELSE quote_literal(left(v, 40)) || format('... (%s characters)', char_length(v)) END
$$;

-- A JSON number that is a whole number from low to high, as a bigint; NULL for anything
-- else (a string, a fraction, out of range, absent), so each caller raises its own error
-- naming the field. Parsed once, and a bigint, so a comparison with a key can use its index.
CREATE OR REPLACE FUNCTION wa._json_int(v jsonb, low bigint, high bigint)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT n::bigint
      FROM (SELECT CASE WHEN jsonb_typeof(v) = 'number' THEN v::numeric END AS n) x
     WHERE n BETWEEN low AND high AND n = trunc(n)
$$;

-- True when the current role is a worker's: the owner of schema wa (the role that runs
-- `pgwa migrate` and the workers) or a member of it; superusers count too. Anything else
-- is an app, which reaches only what the API allows (docs/security.md).
CREATE OR REPLACE FUNCTION wa._caller_is_worker()
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT pg_has_role(n.nspowner, 'USAGE') FROM pg_namespace n WHERE n.nspname = 'wa'
$$;

-- Normalizes a recipient to the JID the worker sends to.
-- Accepts a phone number (country code first; spaces, dashes, dots, parentheses and a
-- leading + are ignored), a user JID (@s.whatsapp.net, legacy @c.us), a LID (@lid), a
-- group (@g.us) or a channel (@newsletter). Raises WA002 for anything else.
-- Every send runs this, twice: lengths are tested apart from the patterns because a
-- bounded repeat such as [0-9]{6,14} costs Postgres's regex engine several times an
-- unbounded one (BENCHMARKS.md, "What an enqueue spends").
CREATE OR REPLACE FUNCTION wa.normalize_jid(recipient text, arg text DEFAULT 'recipient')
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    v text := lower(btrim(recipient));
    digits text;
    usr text;
BEGIN
    IF v IS NULL OR v = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'WA002',
            MESSAGE = format('%s: recipient is empty', arg),
            HINT = 'Pass a phone number with country code, e.g. +5511999998888, or a JID.';
    END IF;
    IF position('@' IN v) = 0 THEN
        digits := regexp_replace(v, '[[:space:]().-]', '', 'g');
        IF digits ~ '^\+?[1-9][0-9]*$' THEN
            digits := ltrim(digits, '+');
            IF length(digits) BETWEEN 7 AND 15 THEN
                RETURN digits || '@s.whatsapp.net';
            END IF;
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'WA002',
            MESSAGE = format('%s: %s is not a phone number (7 to 15 digits, country code first) nor a JID', arg, wa._q(recipient)),
            HINT = 'Examples: +5511999998888, 5511999998888@s.whatsapp.net, 1203630xxxxx@g.us.';
    END IF;
    usr := split_part(v, '@', 1);
    IF v ~ '^[1-9][0-9]*@(s\.whatsapp\.net|c\.us)$' AND length(usr) BETWEEN 7 AND 15 THEN
        RETURN usr || '@s.whatsapp.net';
    ELSIF (v ~ '^[0-9]+@lid$' AND length(usr) <= 24)
       OR (v ~ '^[0-9]+(-[0-9]+)?@g\.us$' AND length(split_part(usr, '-', 1)) BETWEEN 5 AND 24
           AND (position('-' IN usr) = 0 OR length(split_part(usr, '-', 2)) BETWEEN 5 AND 24))
       OR (v ~ '^[0-9]+@newsletter$' AND length(usr) BETWEEN 5 AND 24) THEN
        RETURN v;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'WA002',
        MESSAGE = format('%s: %s is not a valid JID (user@s.whatsapp.net, user@lid, group@g.us or channel@newsletter; no device part)', arg, wa._q(recipient));
END
$$;

-- A fresh WhatsApp message id, fixed at enqueue so that a retried send can never become
-- a second message. Same shape as the ids WhatsApp Web clients generate.
CREATE OR REPLACE FUNCTION wa.new_message_id()
RETURNS text
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT '3EB0' || upper(substr(replace(gen_random_uuid()::text, '-', ''), 1, 18))
$$;

-- A message id as pgwa accepts one: 8 to 64 letters or digits. The length is tested
-- apart from the pattern, as in wa.normalize_jid: '^[A-Za-z0-9]{8,64}$' took 7 to 11 µs
-- a call on a 2-vCPU host, this under 1 µs.
CREATE OR REPLACE FUNCTION wa._is_message_id(v text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN v ~ '^[A-Za-z0-9]+$' AND length(v) BETWEEN 8 AND 64;

-- A text's mentions: people named by phone number or user JID, stored as JIDs.
CREATE OR REPLACE FUNCTION wa._mentions(v jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    item jsonb;
    jid text;
    out jsonb := '[]';
BEGIN
    IF jsonb_typeof(v) IS DISTINCT FROM 'array' OR jsonb_array_length(v) > 1024 THEN
        RAISE EXCEPTION USING ERRCODE = 'WA006',
            MESSAGE = 'mentions: must be a list of at most 1024 phone numbers or user JIDs';
    END IF;
    FOR item IN SELECT e FROM jsonb_array_elements(v) e LOOP
        IF jsonb_typeof(item) <> 'string' THEN
            RAISE EXCEPTION USING ERRCODE = 'WA006', MESSAGE = 'mentions: every item must be a string';
        END IF;
        jid := wa.normalize_jid(item #>> '{}', 'mentions');
        IF jid !~ '@(s\.whatsapp\.net|lid)$' THEN
            RAISE EXCEPTION USING ERRCODE = 'WA002',
                MESSAGE = format('mentions: %s is not a person (a phone number, user@s.whatsapp.net or user@lid)',
                                 wa._q(item #>> '{}'));
        END IF;
        out := out || to_jsonb(jid);
    END LOOP;
    RETURN out;
END
$$;

-- A location's coordinates and optional place name and address.
CREATE OR REPLACE FUNCTION wa._check_location(p jsonb)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF jsonb_typeof(p->'latitude') IS DISTINCT FROM 'number' OR (p->>'latitude')::float8 NOT BETWEEN -90 AND 90 THEN
        RAISE EXCEPTION USING ERRCODE = 'WA006',
            MESSAGE = format('latitude: %s is not a latitude (a number from -90 to 90)', wa._q(p->>'latitude'));
    END IF;
    IF jsonb_typeof(p->'longitude') IS DISTINCT FROM 'number' OR (p->>'longitude')::float8 NOT BETWEEN -180 AND 180 THEN
        RAISE EXCEPTION USING ERRCODE = 'WA006',
            MESSAGE = format('longitude: %s is not a longitude (a number from -180 to 180)', wa._q(p->>'longitude'));
    END IF;
    IF p ? 'name' AND (jsonb_typeof(p->'name') <> 'string' OR char_length(p->>'name') > 1000) THEN
        RAISE EXCEPTION USING ERRCODE = 'WA006', MESSAGE = 'name: must be a string of at most 1000 characters';
    END IF;
    IF p ? 'address' AND (jsonb_typeof(p->'address') <> 'string' OR char_length(p->>'address') > 1000) THEN
        RAISE EXCEPTION USING ERRCODE = 'WA006', MESSAGE = 'address: must be a string of at most 1000 characters';
    END IF;
END
$$;

-- A list of 1 to max phone numbers (argument arg), as digits without repeats.
CREATE OR REPLACE FUNCTION wa._phone_list(v jsonb, arg text, max integer)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    item jsonb;
    jid text;
    digits text[] := '{}';
BEGIN
    IF jsonb_typeof(v) IS DISTINCT FROM 'array' OR jsonb_array_length(v) NOT BETWEEN 1 AND max THEN
        RAISE EXCEPTION USING ERRCODE = 'WA006', MESSAGE = format('%s: a list of 1 to %s phone numbers', arg, max);
    END IF;
    FOR item IN SELECT e FROM jsonb_array_elements(v) e LOOP
        IF jsonb_typeof(item) <> 'string' THEN
            RAISE EXCEPTION USING ERRCODE = 'WA006', MESSAGE = format('%s: every item must be a string', arg);
        END IF;
        jid := wa.normalize_jid(item #>> '{}', arg);
        IF jid !~ '@s\.whatsapp\.net$' THEN
            RAISE EXCEPTION USING ERRCODE = 'WA002',
                MESSAGE = format('%s: %s is not a phone number (7 to 15 digits, country code first)', arg, wa._q(item #>> '{}'));
        END IF;
        IF NOT split_part(jid, '@', 1) = ANY(digits) THEN
            digits := digits || split_part(jid, '@', 1);
        END IF;
    END LOOP;
    RETURN to_jsonb(digits);
END
$$;

-- A group job's payload: action, group (a group JID, except to create one), subject (to
-- create), participants (phone numbers, stored as digits). Returns it normalized.
CREATE OR REPLACE FUNCTION wa._check_group(p jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    action text := p->>'action';
    jid text;
    out jsonb;
BEGIN
    IF jsonb_typeof(p->'action') IS DISTINCT FROM 'string'
       OR action NOT IN ('create', 'add', 'remove', 'promote', 'demote', 'invite_link', 'leave') THEN
        RAISE EXCEPTION USING ERRCODE = 'WA006',
            MESSAGE = format('action: %s is not a group action (accepted: create, add, remove, promote, demote, invite_link, leave)',
                             wa._q(p->>'action'));
    END IF;
    out := jsonb_build_object('action', action);
    IF action = 'create' THEN
        IF jsonb_typeof(p->'subject') IS DISTINCT FROM 'string' OR btrim(p->>'subject', E' \t\r\n') = ''
           OR char_length(p->>'subject') > 100 THEN
            RAISE EXCEPTION USING ERRCODE = 'WA006',
                MESSAGE = 'subject: a group needs a name of 1 to 100 characters';
        END IF;
        out := out || jsonb_build_object('subject', p->>'subject');
    ELSE
        IF jsonb_typeof(p->'group') = 'string' THEN
            jid := wa.normalize_jid(p->>'group', 'group_jid');
        END IF;
        IF jid IS NULL OR jid !~ '@g\.us$' THEN
            RAISE EXCEPTION USING ERRCODE = 'WA002',
                MESSAGE = format('group_jid: %s is not a group JID (digits@g.us, as wa.groups.jid shows it)', wa._q(p->>'group'));
        END IF;
        out := out || jsonb_build_object('group', jid);
    END IF;
    IF action IN ('create', 'add', 'remove', 'promote', 'demote') THEN
        -- A group holds at most 1024 people, its creator among them.
        out := out || jsonb_build_object('participants', wa._phone_list(p->'participants', 'participants', 1023));
    END IF;
    RETURN out;
END
$$;

-- A contact card's name and numbers; returns the payload with the numbers as digits.
CREATE OR REPLACE FUNCTION wa._check_contact(p jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF jsonb_typeof(p->'display_name') IS DISTINCT FROM 'string'
       OR btrim(p->>'display_name') = '' OR char_length(p->>'display_name') > 255 THEN
        RAISE EXCEPTION USING ERRCODE = 'WA006', MESSAGE = 'display_name: the name to show, 1 to 255 characters';
    END IF;
    RETURN jsonb_set(p, '{phones}', wa._phone_list(p->'phones', 'phones', 10));
END
$$;

-- A poll's question, 2 to 12 distinct options and how many a voter may pick (1 to the
-- number of options; 0 lets them pick any number).
CREATE OR REPLACE FUNCTION wa._check_poll(p jsonb)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    n integer;
BEGIN
    IF jsonb_typeof(p->'question') IS DISTINCT FROM 'string' OR btrim(p->>'question') = ''
       OR char_length(p->>'question') > 255 THEN
        RAISE EXCEPTION USING ERRCODE = 'WA006', MESSAGE = 'question: the poll''s question, 1 to 255 characters';
    END IF;
    IF jsonb_typeof(p->'options') IS DISTINCT FROM 'array' OR jsonb_array_length(p->'options') NOT BETWEEN 2 AND 12 THEN
        RAISE EXCEPTION USING ERRCODE = 'WA006', MESSAGE = 'options: a poll has 2 to 12 options';
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(p->'options') o
                WHERE jsonb_typeof(o) <> 'string' OR btrim(o #>> '{}') = '' OR char_length(o #>> '{}') > 100) THEN
        RAISE EXCEPTION USING ERRCODE = 'WA006', MESSAGE = 'options: each option is a text of 1 to 100 characters';
    END IF;
    IF (SELECT count(DISTINCT o) FROM jsonb_array_elements_text(p->'options') o) < jsonb_array_length(p->'options') THEN
        RAISE EXCEPTION USING ERRCODE = 'WA006',
            MESSAGE = 'options: the same option twice (votes name options by their text, so each must differ)';
    END IF;
    n := jsonb_array_length(p->'options');
    IF wa._json_int(p->'selectable_count', 0, n) IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'WA006',
            MESSAGE = format('selectable_count: %s is not from 1 to %s (the number of options), or 0 for any number',
                             wa._q(p->>'selectable_count'), n);
    END IF;
END
$$;

-- An edit or a delete for everyone names a message the session sent to that chat
-- (WA013 otherwise); an edit, a text within WhatsApp's 15 minutes.
CREATE OR REPLACE FUNCTION wa._check_change(session text, chat text, change text, p jsonb)
RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
    target text := p->>'message_id';
    orig record;
BEGIN
    IF jsonb_typeof(p->'message_id') IS DISTINCT FROM 'string' OR NOT wa._is_message_id(target) THEN
        RAISE EXCEPTION USING ERRCODE = 'WA006',
            MESSAGE = format('message_id: %s is not a message id (8 to 64 letters or digits)', wa._q(target));
    END IF;
    SELECT o.id, o.chat, o.state, o.sent_at, coalesce(o.payload->>'type', 'text') AS type INTO orig
      FROM wa.jobs o
     WHERE o.session_id = _check_change.session AND o.message_id = target AND o.kind = 'send';
    IF NOT FOUND OR orig.chat IS DISTINCT FROM _check_change.chat THEN
        RAISE EXCEPTION USING ERRCODE = 'WA013',
            MESSAGE = format('message_id: %s is not a message session %s sent to %s', wa._q(target), wa._q(session), chat),
            HINT = 'Only messages sent through pgwa and still in wa.jobs can be edited or deleted.';
    ELSIF orig.type IN ('reaction', 'edit', 'revoke') THEN
        RAISE EXCEPTION USING ERRCODE = 'WA013',
            MESSAGE = format('message_id: %s is a %s, not a message (a reaction is removed by sending an empty emoji)',
                             target, orig.type);
    ELSIF orig.state IN ('dead', 'cancelled') THEN
        RAISE EXCEPTION USING ERRCODE = 'WA013',
            MESSAGE = format('message_id: %s was never sent (job %s is %s)', target, orig.id, orig.state);
    END IF;
    IF change = 'edit' AND orig.type <> 'text' THEN
        RAISE EXCEPTION USING ERRCODE = 'WA013',
            MESSAGE = format('message_id: %s is a %s; only text messages can be edited', target, orig.type);
    ELSIF change = 'edit' AND orig.sent_at < now() - interval '15 minutes' THEN
        RAISE EXCEPTION USING ERRCODE = 'WA013',
            MESSAGE = format('message_id: %s was sent at %s; WhatsApp allows edits for 15 minutes after sending',
                             target, orig.sent_at);
    END IF;
END
$$;

-- wa.mark_read's messages: 1 to 1000 ids of messages this session received in chat
-- (WA013 for one it did not: an id of a message it sent, of another chat, unknown).
-- Returns the ids without repeats.
CREATE OR REPLACE FUNCTION wa._check_mark_read(session text, chat text, p jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    ids text[];
    bad text;
BEGIN
    IF jsonb_typeof(p->'message_ids') IS DISTINCT FROM 'array' OR jsonb_array_length(p->'message_ids') NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION USING ERRCODE = 'WA006', MESSAGE = 'message_ids: a list of 1 to 1000 message ids';
    END IF;
    SELECT e INTO bad FROM jsonb_array_elements(p->'message_ids') e
     WHERE jsonb_typeof(e) <> 'string' OR NOT wa._is_message_id(e #>> '{}') LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'WA006',
            MESSAGE = format('message_ids: %s is not a message id (8 to 64 letters or digits)', wa._q(bad));
    END IF;
    SELECT array_agg(DISTINCT x) INTO ids FROM jsonb_array_elements_text(p->'message_ids') x;
    SELECT x INTO bad FROM unnest(ids) x
     WHERE NOT EXISTS (SELECT 1 FROM wa.inbox i
                        WHERE i.session_id = _check_mark_read.session AND i.message_id = x AND i.chat = _check_mark_read.chat)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'WA013',
            MESSAGE = format('message_ids: %s is not a message session %s received in %s', wa._q(bad), wa._q(session), chat),
            HINT = 'Read receipts are for messages in wa.inbox of that session and chat.';
    END IF;
    RETURN to_jsonb(ids);
END
$$;

-- wa.send_presence's state.
CREATE OR REPLACE FUNCTION wa._check_chat_state(p jsonb)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF jsonb_typeof(p->'state') IS DISTINCT FROM 'string' OR p->>'state' NOT IN ('composing', 'recording', 'paused') THEN
        RAISE EXCEPTION USING ERRCODE = 'WA006',
            MESSAGE = format('state: %s is not a chat state (accepted: composing, recording, paused)', wa._q(p->>'state'));
    END IF;
END
$$;

-- What one media kind asks beyond any file: its MIME type family, a length in seconds
-- (video, audio, voice), a waveform (voice notes only).
CREATE OR REPLACE FUNCTION wa._check_media_kind(kind text, p jsonb)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    family text := CASE kind WHEN 'image' THEN 'image/' WHEN 'video' THEN 'video/' WHEN 'audio' THEN 'audio/'
                             WHEN 'voice' THEN 'audio/ogg' WHEN 'sticker' THEN 'image/webp' END;
    wave bytea;
BEGIN
    IF family IS NOT NULL AND jsonb_typeof(p->'mimetype') = 'string' AND lower(p->>'mimetype') NOT LIKE family || '%' THEN
        RAISE EXCEPTION USING ERRCODE = 'WA006',
            MESSAGE = format('payload.mimetype: %s does not fit kind %s (%s...)', wa._q(p->>'mimetype'), kind, family);
    END IF;
    IF p ? 'seconds' AND (kind NOT IN ('video', 'audio', 'voice') OR wa._json_int(p->'seconds', 0, 86400) IS NULL) THEN
        RAISE EXCEPTION USING ERRCODE = 'WA006',
            MESSAGE = 'payload.seconds: the length of a video, audio or voice note, a whole number from 0 to 86400';
    END IF;
    IF p ? 'waveform' THEN
        IF kind = 'voice' AND jsonb_typeof(p->'waveform') = 'string' AND octet_length(p->>'waveform') <= 88 THEN
            BEGIN
                wave := decode(p->>'waveform', 'base64');
            EXCEPTION WHEN invalid_parameter_value OR data_exception THEN
                wave := NULL;
            END;
        END IF;
        IF wave IS NULL OR length(wave) > 64
           OR EXISTS (SELECT 1 FROM generate_series(0, length(wave) - 1) i WHERE get_byte(wave, i) > 100) THEN
            RAISE EXCEPTION USING ERRCODE = 'WA006',
                MESSAGE = 'payload.waveform: a voice note''s loudness, at most 64 samples from 0 to 100 (base64 in a payload)';
        END IF;
    END IF;
END
$$;

-- Validates a job row before it is inserted, whoever inserts it (the SQL API or a plain
-- INSERT), fills in what follows from the payload, and refuses what cannot be valid.
CREATE OR REPLACE FUNCTION wa._jobs_before_insert()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    msg_type text;
    body text;
    max_chars integer;
    scope text;
BEGIN
    IF NEW.kind IN ('maintenance', 'webhook') THEN
        IF NEW.session_id IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'WA005',
                MESSAGE = format('session: %s jobs belong to no session; pass NULL', NEW.kind);
        END IF;
    ELSIF NEW.session_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'WA001',
            MESSAGE = format('session: a %s job needs a session', NEW.kind);
    ELSIF NOT EXISTS (SELECT 1 FROM wa.sessions s WHERE s.id = NEW.session_id) THEN
        RAISE EXCEPTION USING ERRCODE = 'WA001',
            MESSAGE = format('session: unknown session %s', wa._q(NEW.session_id)),
            HINT = 'Create it first with wa.add_session(id).';
    END IF;
    IF NEW.priority IS NULL OR NEW.priority < 0 OR NEW.priority > 1000 THEN
        RAISE EXCEPTION USING ERRCODE = 'WA005',
            MESSAGE = format('priority: %s is out of range (0 to 1000, lower runs first)', coalesce(NEW.priority::text, 'NULL'));
    END IF;
    IF NEW.max_attempts IS NULL OR NEW.max_attempts < 1 OR NEW.max_attempts > 1000 THEN
        RAISE EXCEPTION USING ERRCODE = 'WA005',
            MESSAGE = format('max_attempts: %s is out of range (1 to 1000)', coalesce(NEW.max_attempts::text, 'NULL'));
    END IF;
    IF NEW.payload IS NULL OR jsonb_typeof(NEW.payload) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'WA006', MESSAGE = 'payload: must be a JSON object';
    END IF;
    IF NEW.run_at IS NULL THEN
        NEW.run_at := now();
    ELSIF (NOT isfinite(NEW.run_at) OR NEW.run_at > now() + interval '1 year')
          -- A webhook delivery queued behind another waits at infinity until released.
          AND NOT (NEW.kind = 'webhook' AND NEW.run_at = 'infinity') THEN
        -- A job that can never run holds its idempotency key and its chat's FIFO forever.
        RAISE EXCEPTION USING ERRCODE = 'WA005',
            MESSAGE = format('run_at: %s is not a time within a year from now', NEW.run_at),
            HINT = 'Pass NULL to run now, or a time in the next 12 months.';
    END IF;
    IF NEW.state NOT IN ('available', 'scheduled') THEN
        RAISE EXCEPTION USING ERRCODE = 'WA005',
            MESSAGE = format('state: a new job starts as available or scheduled, not %s', NEW.state);
    END IF;

    -- Internal bookkeeping always starts clean, whatever a plain INSERT said.
    -- Control kinds are claimed first and while disconnected (lane 0); every other kind
    -- acts through the connection (lane 1, see migration 0021).
    -- Webhook deliveries share the session-less claim with maintenance jobs: one lane
    -- keeps that claim an ordered scan of jobs_claim.
    NEW.lane := CASE WHEN NEW.kind IN ('reconnect', 'key_cleanup', 'close_session', 'maintenance', 'webhook') THEN 0 ELSE 1 END;
    NEW.state := CASE WHEN NEW.run_at > now() THEN 'scheduled' ELSE 'available' END;
    NEW.attempts := 0;
    NEW.errors := '[]';
    NEW.result := NULL;
    NEW.worker_id := NULL;
    NEW.epoch := NULL;
    NEW.cancel_requested_at := NULL;
    NEW.attempted_at := NULL;
    NEW.finished_at := NULL;
    NEW.sent_at := NULL;
    NEW.delivered_at := NULL;
    NEW.read_at := NULL;

    CASE NEW.kind
    WHEN 'send' THEN
        NEW.chat := wa.normalize_jid(coalesce(NEW.chat, NEW.payload->>'to'), 'to');
        -- An id pgwa makes has the right shape; only a caller's own is tested.
        IF NEW.message_id IS NULL THEN
            NEW.message_id := wa.new_message_id();
        ELSIF NOT wa._is_message_id(NEW.message_id) THEN
            RAISE EXCEPTION USING ERRCODE = 'WA005',
                MESSAGE = format('message_id: %s must be 8 to 64 letters or digits', wa._q(NEW.message_id));
        END IF;
        NEW.delivery := 'queued';
        msg_type := coalesce(NEW.payload->>'type', 'text');
        NEW.payload := NEW.payload || jsonb_build_object('to', NEW.chat, 'type', msg_type);
        SELECT p.max_text_chars INTO max_chars FROM wa.policy p;
        IF msg_type IN ('text', 'edit') THEN
            IF jsonb_typeof(NEW.payload->'text') IS DISTINCT FROM 'string' THEN
                RAISE EXCEPTION USING ERRCODE = 'WA003', MESSAGE = 'text: missing; a text message needs payload.text as a string';
            END IF;
            body := NEW.payload->>'text';
            IF btrim(body, E' \t\r\n') = '' THEN
                RAISE EXCEPTION USING ERRCODE = 'WA003', MESSAGE = 'text: is empty';
            ELSIF char_length(body) > max_chars THEN
                RAISE EXCEPTION USING ERRCODE = 'WA003',
                    MESSAGE = format('text: %s characters is over the limit of %s', char_length(body), max_chars);
            END IF;
            IF msg_type = 'edit' THEN
                PERFORM wa._check_change(NEW.session_id, NEW.chat, msg_type, NEW.payload);
            ELSIF NEW.payload ? 'mentions' THEN
                NEW.payload := jsonb_set(NEW.payload, '{mentions}', wa._mentions(NEW.payload->'mentions'));
            END IF;
        ELSIF msg_type = 'revoke' THEN
            PERFORM wa._check_change(NEW.session_id, NEW.chat, msg_type, NEW.payload);
        ELSIF msg_type = 'location' THEN
            PERFORM wa._check_location(NEW.payload);
        ELSIF msg_type = 'contact' THEN
            NEW.payload := wa._check_contact(NEW.payload);
        ELSIF msg_type = 'poll' THEN
            NEW.payload := NEW.payload || jsonb_build_object('selectable_count', coalesce(nullif(NEW.payload->'selectable_count', 'null'), '1'));
            PERFORM wa._check_poll(NEW.payload);
        ELSIF msg_type = 'reaction' THEN
            IF jsonb_typeof(NEW.payload->'message_id') IS DISTINCT FROM 'string'
               OR NOT wa._is_message_id(NEW.payload->>'message_id') THEN
                RAISE EXCEPTION USING ERRCODE = 'WA006',
                    MESSAGE = 'payload.message_id: a reaction names the message it reacts to (8 to 64 letters or digits)';
            END IF;
            IF jsonb_typeof(NEW.payload->'emoji') IS DISTINCT FROM 'string' OR char_length(NEW.payload->>'emoji') > 16 THEN
                RAISE EXCEPTION USING ERRCODE = 'WA006',
                    MESSAGE = 'payload.emoji: a string of at most 16 characters (empty removes the reaction)';
            END IF;
        ELSIF msg_type IN ('image', 'document', 'video', 'audio', 'voice', 'sticker') THEN
            PERFORM wa._check_media_kind(msg_type, NEW.payload);
            IF (NEW.payload ? 'data') = (NEW.payload ? 'url') THEN
                RAISE EXCEPTION USING ERRCODE = 'WA006',
                    MESSAGE = format('payload.data: a %s needs exactly one of payload.data (base64) and payload.url', msg_type);
            END IF;
            IF NEW.payload ? 'url' AND (jsonb_typeof(NEW.payload->'url') <> 'string' OR NEW.payload->>'url' !~ '^https?://\S+$'
                                        OR char_length(NEW.payload->>'url') > 2048) THEN
                RAISE EXCEPTION USING ERRCODE = 'WA006', MESSAGE = 'payload.url: must be an http or https URL of at most 2048 characters';
            END IF;
            IF NEW.payload ? 'caption' AND jsonb_typeof(NEW.payload->'caption') <> 'string' THEN
                RAISE EXCEPTION USING ERRCODE = 'WA006', MESSAGE = 'payload.caption: must be a string';
            END IF;
            IF NEW.payload ? 'file_name' AND (jsonb_typeof(NEW.payload->'file_name') <> 'string'
                                              OR char_length(NEW.payload->>'file_name') NOT BETWEEN 1 AND 255) THEN
                RAISE EXCEPTION USING ERRCODE = 'WA006', MESSAGE = 'payload.file_name: must be a string of 1 to 255 characters';
            END IF;
            IF NEW.payload ? 'mimetype' AND (jsonb_typeof(NEW.payload->'mimetype') <> 'string'
                                             OR char_length(NEW.payload->>'mimetype') > 127
                                             OR NEW.payload->>'mimetype' !~* '^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*( *;[ -~]*)?$') THEN
                RAISE EXCEPTION USING ERRCODE = 'WA006',
                    MESSAGE = 'payload.mimetype: must be a MIME type such as image/jpeg or application/pdf (at most 127 characters)';
            END IF;
            IF NEW.payload ? 'data' AND (jsonb_typeof(NEW.payload->'data') <> 'string'
                                         OR octet_length(NEW.payload->>'data') > 22369622
                                         OR NEW.payload->>'data' !~ '^[A-Za-z0-9+/=_-]+$') THEN
                RAISE EXCEPTION USING ERRCODE = 'WA006',
                    MESSAGE = 'payload.data: must be base64 of at most 16 MiB';
            END IF;
            IF char_length(coalesce(NEW.payload->>'caption', '')) > max_chars THEN
                RAISE EXCEPTION USING ERRCODE = 'WA003',
                    MESSAGE = format('caption: over the limit of %s characters', max_chars);
            END IF;
        ELSE
            RAISE EXCEPTION USING ERRCODE = 'WA006',
                MESSAGE = format('payload.type: unknown message type %s (accepted: text, reaction, image, document, video, audio, voice, sticker, location, contact, poll, edit, revoke)', wa._q(msg_type));
        END IF;
        IF NEW.payload ? 'reply_to' AND (jsonb_typeof(NEW.payload->'reply_to') <> 'string'
                                         OR NOT wa._is_message_id(NEW.payload->>'reply_to')) THEN
            RAISE EXCEPTION USING ERRCODE = 'WA006',
                MESSAGE = 'payload.reply_to: must be the message id (8 to 64 letters or digits) of the quoted message';
        END IF;
    WHEN 'key_cleanup' THEN
        scope := coalesce(NEW.payload->>'scope', 'app_state');
        IF scope NOT IN ('app_state', 'peer', 'all') THEN
            RAISE EXCEPTION USING ERRCODE = 'WA006',
                MESSAGE = format('payload.scope: %s is not one of app_state, peer, all', wa._q(scope));
        END IF;
        IF scope = 'peer' THEN
            NEW.payload := jsonb_set(NEW.payload, '{peer}',
                to_jsonb(wa.normalize_jid(NEW.payload->>'peer', 'payload.peer')));
        END IF;
        NEW.payload := jsonb_set(NEW.payload, '{scope}', to_jsonb(scope));
    WHEN 'close_session' THEN
        IF NEW.payload ? 'logout' AND jsonb_typeof(NEW.payload->'logout') <> 'boolean' THEN
            RAISE EXCEPTION USING ERRCODE = 'WA006', MESSAGE = 'payload.logout: must be true or false';
        END IF;
        IF NEW.payload ? 'wipe' AND jsonb_typeof(NEW.payload->'wipe') <> 'boolean' THEN
            RAISE EXCEPTION USING ERRCODE = 'WA006', MESSAGE = 'payload.wipe: must be true or false';
        END IF;
        IF NEW.payload ? 'reason' AND (jsonb_typeof(NEW.payload->'reason') <> 'string'
                                       OR char_length(NEW.payload->>'reason') > 500) THEN
            RAISE EXCEPTION USING ERRCODE = 'WA006', MESSAGE = 'payload.reason: must be a string of at most 500 characters';
        END IF;
    WHEN 'mark_read' THEN
        NEW.payload := jsonb_set(NEW.payload, '{chat}', to_jsonb(wa.normalize_jid(NEW.payload->>'chat', 'chat')));
        NEW.payload := jsonb_set(NEW.payload, '{message_ids}',
            wa._check_mark_read(NEW.session_id, NEW.payload->>'chat', NEW.payload));
    WHEN 'presence' THEN
        NEW.payload := jsonb_set(NEW.payload, '{chat}', to_jsonb(wa.normalize_jid(NEW.payload->>'chat', 'chat')));
        PERFORM wa._check_chat_state(NEW.payload);
        -- Shown late, a chat state would be a lie ("typing..." an hour after the fact):
        -- the worker drops it after this.
        NEW.payload := NEW.payload || jsonb_build_object('expires_at', NEW.run_at + interval '1 minute');
    WHEN 'media_download' THEN
        -- The id is compared as a bigint, one probe of the inbox's primary key; compared
        -- as numeric it read every message the session had kept, for each file received.
        IF NOT EXISTS (
               SELECT 1 FROM wa.inbox i
                WHERE i.id = wa._json_int(NEW.payload->'inbox_id', 1, 9223372036854775807)
                  AND i.session_id = NEW.session_id AND i.media ? 'direct_path') THEN
            RAISE EXCEPTION USING ERRCODE = 'WA013',
                MESSAGE = format('inbox_id: %s is not a message with a file that session %s received',
                                 wa._q(NEW.payload->>'inbox_id'), wa._q(NEW.session_id));
        END IF;
    WHEN 'group' THEN
        NEW.payload := wa._check_group(NEW.payload);
    WHEN 'check_numbers' THEN
        NEW.payload := jsonb_set(NEW.payload, '{phones}', wa._phone_list(NEW.payload->'phones', 'phones', 1000));
    WHEN 'maintenance' THEN
        -- Schedules dedupe their ticks by a predictable idempotency key: a job planted
        -- under the next tick's key (never running, unknown task) would stop the sweep.
        IF NOT wa._caller_is_worker() THEN
            RAISE EXCEPTION USING ERRCODE = '42501',
                MESSAGE = 'kind: maintenance jobs are enqueued by the workers'' schedules only',
                HINT = 'Change a schedule with `pgwa` as the owner role, or ask the operator.';
        END IF;
        IF jsonb_typeof(NEW.payload->'task') IS DISTINCT FROM 'string'
           OR NEW.payload->>'task' NOT IN ('retention', 'reap_workers', 'sweep_keys', 'release_webhooks') THEN
            RAISE EXCEPTION USING ERRCODE = 'WA006',
                MESSAGE = format('payload.task: %s is not a maintenance task (accepted: retention, reap_workers, sweep_keys, release_webhooks)',
                                 wa._q(NEW.payload->>'task'));
        END IF;
    WHEN 'webhook' THEN
        -- Deliveries come from the outbox triggers (sql/08_webhooks.sql), which run as
        -- the owner; an app could otherwise post anything, signed, to a tenant's URL.
        IF NOT wa._caller_is_worker() THEN
            RAISE EXCEPTION USING ERRCODE = '42501',
                MESSAGE = 'kind: webhook deliveries are queued by pgwa''s triggers only, for the changes they announce',
                HINT = 'Add a webhook with wa.add_webhook; retry a delivery with wa.retry_job.';
        END IF;
        IF jsonb_typeof(NEW.payload->'webhook') IS DISTINCT FROM 'number' OR jsonb_typeof(NEW.payload->'data') IS DISTINCT FROM 'object'
           OR jsonb_typeof(NEW.payload->'type') IS DISTINCT FROM 'string' OR jsonb_typeof(NEW.payload->'event_id') IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION USING ERRCODE = 'WA006',
                MESSAGE = 'payload: a webhook delivery is {"webhook", "event_id", "type", "timestamp", "data"}';
        END IF;
        -- The FIFO key (migration 0029): released now, or waiting behind another.
        NEW.chat := 'webhook:' || (NEW.payload->>'webhook')::bigint
                    || CASE WHEN NEW.run_at = 'infinity' THEN ':waiting' ELSE '' END;
    ELSE
        NULL;  -- reconnect takes no arguments
    END CASE;
    IF NEW.kind <> 'send' THEN
        NEW.chat := CASE WHEN NEW.kind = 'webhook' THEN NEW.chat END;
        NEW.message_id := NULL;
        NEW.delivery := NULL;
    END IF;
    -- The workers' wake-up (channel wa_jobs, see 02_triggers.sql), sent from here because
    -- this trigger runs anyway. Postgres folds identical payloads within a transaction,
    -- so a bulk insert sends one per session; a rolled-back insert sends none.
    IF NEW.state = 'available' THEN
        PERFORM pg_notify('wa_jobs', json_build_object('sessions', json_build_array(coalesce(NEW.session_id, '')))::text);
    END IF;
    RETURN NEW;
END
$$;
