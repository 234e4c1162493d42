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
CREATE OR REPLACE FUNCTION wa.normalize_jid(recipient text, arg text DEFAULT 'recipient')
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    v text := lower(btrim(recipient));
    digits text;
BEGIN
    IF v IS NULL OR v = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'WA002',
            MESSAGE = format('%s: recipient is empty', arg),
            HINT = 'Pass a phone number with country code, e.g. +5511999998888, or a JID.';
    END IF;
    IF position('@' IN v) = 0 THEN
        digits := regexp_replace(v, '[[:space:]().-]', '', 'g');
        IF digits ~ '^\+?[1-9][0-9]{6,14}$' THEN
            RETURN ltrim(digits, '+') || '@s.whatsapp.net';
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'WA002',
            MESSAGE = format('%s: %s is not a phone number (7 to 15 digits, country code first) nor a JID', arg, wa._q(recipient)),
            HINT = 'Examples: +5511999998888, 5511999998888@s.whatsapp.net, 1203630xxxxx@g.us.';
    END IF;
    IF v ~ '^[1-9][0-9]{6,14}@(s\.whatsapp\.net|c\.us)$' THEN
        RETURN split_part(v, '@', 1) || '@s.whatsapp.net';
    ELSIF v ~ '^[0-9]{1,24}@lid$'
       OR v ~ '^[0-9]{5,24}(-[0-9]{5,24})?@g\.us$'
       OR v ~ '^[0-9]{5,24}@newsletter$' THEN
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
    IF NEW.kind = 'maintenance' THEN
        IF NEW.session_id IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'WA005',
                MESSAGE = 'session: maintenance jobs belong to no session; pass NULL';
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
    ELSIF NOT isfinite(NEW.run_at) OR NEW.run_at > now() + interval '1 year' THEN
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
        NEW.message_id := coalesce(NEW.message_id, wa.new_message_id());
        IF NEW.message_id !~ '^[A-Za-z0-9]{8,64}$' THEN
            RAISE EXCEPTION USING ERRCODE = 'WA005',
                MESSAGE = format('message_id: %s must be 8 to 64 letters or digits', wa._q(NEW.message_id));
        END IF;
        NEW.delivery := 'queued';
        msg_type := coalesce(NEW.payload->>'type', 'text');
        NEW.payload := NEW.payload || jsonb_build_object('to', NEW.chat, 'type', msg_type);
        SELECT p.max_text_chars INTO max_chars FROM wa.policy p;
        IF msg_type = 'text' THEN
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
        ELSIF msg_type = 'reaction' THEN
            IF jsonb_typeof(NEW.payload->'message_id') IS DISTINCT FROM 'string'
               OR NEW.payload->>'message_id' !~ '^[A-Za-z0-9]{8,64}$' THEN
                RAISE EXCEPTION USING ERRCODE = 'WA006',
                    MESSAGE = 'payload.message_id: a reaction names the message it reacts to (8 to 64 letters or digits)';
            END IF;
            IF jsonb_typeof(NEW.payload->'emoji') IS DISTINCT FROM 'string' OR char_length(NEW.payload->>'emoji') > 16 THEN
                RAISE EXCEPTION USING ERRCODE = 'WA006',
                    MESSAGE = 'payload.emoji: a string of at most 16 characters (empty removes the reaction)';
            END IF;
        ELSIF msg_type IN ('image', 'document') THEN
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
                MESSAGE = format('payload.type: unknown message type %s (accepted: text, reaction, image, document)', wa._q(msg_type));
        END IF;
        IF NEW.payload ? 'reply_to' AND (jsonb_typeof(NEW.payload->'reply_to') <> 'string'
                                         OR NEW.payload->>'reply_to' !~ '^[A-Za-z0-9]{8,64}$') THEN
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
    WHEN 'maintenance' THEN
        -- Schedules dedupe their ticks by a predictable idempotency key: a job planted
        -- under the next tick's key (never running, unknown task) would stop the sweep.
        IF NOT wa._caller_is_worker() THEN
            RAISE EXCEPTION USING ERRCODE = '42501',
                MESSAGE = 'kind: maintenance jobs are enqueued by the workers'' schedules only',
                HINT = 'Change a schedule with `pgwa` as the owner role, or ask the operator.';
        END IF;
        IF jsonb_typeof(NEW.payload->'task') IS DISTINCT FROM 'string'
           OR NEW.payload->>'task' NOT IN ('retention', 'reap_workers', 'sweep_keys') THEN
            RAISE EXCEPTION USING ERRCODE = 'WA006',
                MESSAGE = format('payload.task: %s is not a maintenance task (accepted: retention, reap_workers, sweep_keys)',
                                 wa._q(NEW.payload->>'task'));
        END IF;
    ELSE
        NULL;  -- reconnect takes no arguments
    END CASE;
    IF NEW.kind <> 'send' THEN
        NEW.chat := NULL;
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
