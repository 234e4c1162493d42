-- Triggers: validation on insert, worker wake-ups, status announcements.
-- NOTIFY payloads carry ids and kinds only: never message text, never key material.

DROP TRIGGER IF EXISTS jobs_before_insert ON wa.job_rows;
CREATE TRIGGER jobs_before_insert BEFORE INSERT ON wa.job_rows
    FOR EACH ROW EXECUTE FUNCTION wa._jobs_before_insert();

-- Wake-ups: channel wa_jobs, payload {"sessions": ["s1"]} ("" for maintenance jobs),
-- one per session and transaction that inserted jobs ready to run now (future-scheduled
-- rows are promoted by the workers' poll). Sent by wa._jobs_before_insert, which replaced
-- a statement trigger whose transition table cost a sixth of a single-row insert.
DROP TRIGGER IF EXISTS jobs_notify_insert ON wa.job_rows;
DROP FUNCTION IF EXISTS wa._jobs_notify_insert();

-- Keeps updated_at and status_changed_at honest whoever writes the row.
CREATE OR REPLACE FUNCTION wa._sessions_touch()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        NEW.status_changed_at := now();
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS sessions_touch ON wa.sessions;
CREATE TRIGGER sessions_touch BEFORE UPDATE ON wa.sessions
    FOR EACH ROW EXECUTE FUNCTION wa._sessions_touch();

-- Channel wa_session_status: {"session", "status", "previous", "reason"}; one per change.
CREATE OR REPLACE FUNCTION wa._sessions_notify_status()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('wa_session_status', json_build_object(
        'session', NEW.id,
        'status', NEW.status,
        'previous', CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END,
        'reason', left(NEW.status_reason, 200))::text);
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS sessions_notify_status ON wa.sessions;
CREATE TRIGGER sessions_notify_status AFTER UPDATE OF status ON wa.sessions
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION wa._sessions_notify_status();

-- Channel wa_inbox: {"session", "id", "kind"} for each stored inbound message. The app
-- reads the message itself from wa.inbox by id.
CREATE OR REPLACE FUNCTION wa._inbox_notify()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('wa_inbox', json_build_object(
        'session', NEW.session_id, 'id', NEW.id, 'kind', NEW.kind)::text);
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS inbox_notify ON wa.inbox;
CREATE TRIGGER inbox_notify AFTER INSERT ON wa.inbox
    FOR EACH ROW EXECUTE FUNCTION wa._inbox_notify();

-- Also on wa_inbox: {"session", "id", "kind", "change": "edit" | "revoke"} when the
-- sender edits or deletes a stored message (the row's history grew).
CREATE OR REPLACE FUNCTION wa._inbox_notify_change()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('wa_inbox', json_build_object(
        'session', NEW.session_id, 'id', NEW.id, 'kind', NEW.kind, 'change', NEW.history->-1->>'kind')::text);
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS inbox_notify_change ON wa.inbox;
CREATE TRIGGER inbox_notify_change AFTER UPDATE OF history ON wa.inbox
    FOR EACH ROW WHEN (OLD.history IS DISTINCT FROM NEW.history)
    EXECUTE FUNCTION wa._inbox_notify_change();

-- Channel wa_schedules: workers reload the schedules when they change.
CREATE OR REPLACE FUNCTION wa._schedules_notify()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('wa_schedules', '{}');
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS schedules_notify ON wa.schedules;
CREATE TRIGGER schedules_notify AFTER INSERT OR DELETE OR UPDATE OF cron, enabled, task, payload ON wa.schedules
    FOR EACH STATEMENT EXECUTE FUNCTION wa._schedules_notify();

-- Channel wa_sessions: a session was added or its desired state changed; workers
-- re-run their lease tick at once instead of at the next heartbeat.
CREATE OR REPLACE FUNCTION wa._sessions_notify_desired()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('wa_sessions', json_build_object('session', NEW.id, 'desired', NEW.desired)::text);
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS sessions_notify_desired ON wa.sessions;
CREATE TRIGGER sessions_notify_desired AFTER INSERT OR UPDATE OF desired ON wa.sessions
    FOR EACH ROW EXECUTE FUNCTION wa._sessions_notify_desired();

-- Channel wa_link: a new QR code or pairing code was published for a session. The code
-- itself is read from wa.sessions (qr_code, pair_code), never sent in the payload.
CREATE OR REPLACE FUNCTION wa._sessions_notify_link()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('wa_link', json_build_object(
        'session', NEW.id,
        'kind', CASE WHEN NEW.qr_code IS DISTINCT FROM OLD.qr_code THEN 'qr' ELSE 'pair_code' END,
        'expires_at', CASE WHEN NEW.qr_code IS DISTINCT FROM OLD.qr_code THEN NEW.qr_expires_at
                           ELSE NEW.pair_code_expires_at END)::text);
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS sessions_notify_link ON wa.sessions;
CREATE TRIGGER sessions_notify_link AFTER UPDATE OF qr_code, pair_code ON wa.sessions
    FOR EACH ROW WHEN ((NEW.qr_code IS NOT NULL AND NEW.qr_code IS DISTINCT FROM OLD.qr_code)
                    OR (NEW.pair_code IS NOT NULL AND NEW.pair_code IS DISTINCT FROM OLD.pair_code))
    EXECUTE FUNCTION wa._sessions_notify_link();

-- Checks a session's id, pair_phone and metadata, whoever writes them (wa.add_session or
-- a plain INSERT/UPDATE), and normalizes pair_phone to digits.
CREATE OR REPLACE FUNCTION wa._sessions_validate()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    phone text := regexp_replace(NEW.pair_phone, '[[:space:]()+.-]', '', 'g');
BEGIN
    IF NEW.id IS NULL OR NEW.id !~ '^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$' THEN
        RAISE EXCEPTION USING ERRCODE = 'WA009',
            MESSAGE = format('id: %s is not a valid session id (1 to 128 of A-Z a-z 0-9 _ . : @ -, starting with a letter or digit)', wa._q(NEW.id));
    END IF;
    IF phone IS NOT NULL AND phone !~ '^[1-9][0-9]{6,14}$' THEN
        RAISE EXCEPTION USING ERRCODE = 'WA009',
            MESSAGE = format('pair_phone: %s is not a phone number (7 to 15 digits, country code first)', wa._q(NEW.pair_phone));
    END IF;
    NEW.pair_phone := phone;
    IF NEW.metadata IS NULL OR jsonb_typeof(NEW.metadata) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'WA009', MESSAGE = 'metadata: must be a JSON object';
    ELSIF octet_length(NEW.metadata::text) > 16384 THEN
        RAISE EXCEPTION USING ERRCODE = 'WA009',
            MESSAGE = format('metadata: %s bytes is over the limit of 16384', octet_length(NEW.metadata::text));
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS sessions_validate ON wa.sessions;
CREATE TRIGGER sessions_validate BEFORE INSERT OR UPDATE OF id, pair_phone, metadata ON wa.sessions
    FOR EACH ROW EXECUTE FUNCTION wa._sessions_validate();

-- Setting desired = running is wa.start_session, whoever does it: the caller decided to
-- try again, so a ban or circuit hold and a terminal status are cleared. Apps can update
-- desired but not status, so this is the only way they reach those columns.
CREATE OR REPLACE FUNCTION wa._sessions_desired()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.desired = 'running' THEN
        NEW.status_until := NULL;
        NEW.failed_connect_count := 0;
        IF NEW.owner_id IS NULL OR NEW.status IN ('conflict', 'logged_out', 'failed', 'banned') THEN
            NEW.status := 'stopped';
        END IF;
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS sessions_desired ON wa.sessions;
CREATE TRIGGER sessions_desired BEFORE UPDATE OF desired ON wa.sessions
    FOR EACH ROW EXECUTE FUNCTION wa._sessions_desired();

-- wa.jobs is a view of wa.job_rows (migration 0032): apps write jobs through it, the
-- workers write the table, which has no BEFORE ROW UPDATE trigger (while it had one,
-- Postgres fetched and locked every row a claim or completion updated). An UPDATE of
-- the view comes here, one row at a time, in two steps: the first runs as the writer
-- and notes whether it is a worker (the owner, or a member of it), the second runs as
-- the owner and writes the table. Nothing runs between the two (the writer's own
-- setting of pgwa.jobs_writer is overwritten), and the first resolves nothing through
-- the writer's search_path.
CREATE OR REPLACE FUNCTION wa._jobs_view_writer()
RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_catalog.set_config('pgwa.jobs_writer',
        CASE WHEN wa._caller_is_worker() THEN 'worker' ELSE 'app' END, true);
    RETURN NEW;
END
$$;

-- The second step. A worker's UPDATE of the view (an older pgwa during a rolling
-- deploy, an operator's SQL) writes the columns it changed onto the row as it is once
-- locked, as an UPDATE of the table would. An app may change
-- a job only as wa.cancel_job and wa.retry_job do: whatever its UPDATE said, the row
-- becomes exactly what those functions make of it (tests/security_contract.rs checks
-- that both agree); any other move (a completed send back to available would be sent
-- twice) is refused. The row is locked and read again here: when it moved since the
-- app's statement read it (a worker claimed or finished it), a cancel of a job just
-- claimed asks its worker to drop it, and any other change is skipped (the app's WHERE
-- may no longer hold), as Postgres skips a row that no longer matches.
-- A webhook delivery made available again keeps its webhook's order
-- (wa._webhook_retry_key).
CREATE OR REPLACE FUNCTION wa._jobs_view_update()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cur wa.job_rows;
    moved boolean;
    changed text;
    st wa.job_state;
    at timestamptz;
    key text;
BEGIN
    SELECT * INTO cur FROM wa.job_rows j WHERE j.id = OLD.id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    moved := cur.state IS DISTINCT FROM OLD.state;
    IF current_setting('pgwa.jobs_writer', true) = 'worker' THEN
        -- A statement that moves the state was written against the state it read; when
        -- that moved meanwhile (an operator's wa.cancel_job meeting a claim), Postgres
        -- would have checked its WHERE again, which a trigger cannot: skip the row.
        IF moved AND NEW.state IS DISTINCT FROM OLD.state THEN
            RETURN NULL;
        END IF;
        IF cur.kind = 'webhook' AND NEW.state = 'available' AND cur.state IN ('dead', 'cancelled', 'scheduled')
           AND NEW.chat IS NOT DISTINCT FROM OLD.chat THEN
            SELECT r.state, r.run_at, r.chat INTO NEW.state, NEW.run_at, NEW.chat
              FROM wa._webhook_retry_key(cur, NEW.state, NEW.run_at) r;
        END IF;
        -- The columns the statement changed (whatever columns wa.job_rows has).
        SELECT string_agg(format('%I = ($1).%I', n.key, n.key), ', ') INTO changed
          FROM jsonb_each(to_jsonb(NEW)) n
         WHERE n.value IS DISTINCT FROM to_jsonb(OLD)->n.key AND n.key NOT IN ('id', 'phase');
        IF changed IS NOT NULL THEN
            EXECUTE format('UPDATE wa.job_rows j SET %s WHERE j.id = $2 RETURNING *', changed) INTO cur USING NEW, cur.id;
        END IF;
        RETURN cur;
    END IF;

    IF (NEW.state, NEW.run_at, NEW.finished_at, NEW.delivery, NEW.result, NEW.cancel_requested_at, NEW.max_attempts)
       IS NOT DISTINCT FROM
       (OLD.state, OLD.run_at, OLD.finished_at, OLD.delivery, OLD.result, OLD.cancel_requested_at, OLD.max_attempts) THEN
        RETURN cur;
    ELSIF NEW.state = 'cancelled' AND cur.state IN ('available', 'scheduled', 'retryable') THEN
        UPDATE wa.job_rows j
           SET state = 'cancelled', finished_at = now(),
               delivery = CASE WHEN j.kind = 'send' THEN 'failed'::wa.delivery_status END,
               result = jsonb_build_object('cancelled', true)
         WHERE j.id = cur.id
        RETURNING * INTO cur;
        RETURN cur;
    ELSIF cur.state = 'running' AND ((NEW.state = 'running' AND NEW.cancel_requested_at IS NOT NULL)
                                     OR (NEW.state = 'cancelled' AND moved)) THEN
        UPDATE wa.job_rows j SET cancel_requested_at = coalesce(j.cancel_requested_at, now())
         WHERE j.id = cur.id
        RETURNING * INTO cur;
        PERFORM pg_notify('wa_job_cancel', json_build_object('job', cur.id, 'session', cur.session_id)::text);
        RETURN cur;
    ELSIF NEW.state = 'available' AND cur.state IN ('dead', 'cancelled', 'retryable', 'scheduled') AND cur.attempts < 1000 THEN
        st := 'available';
        at := now();
        key := cur.chat;
        IF cur.kind = 'webhook' AND cur.state <> 'retryable' THEN
            SELECT r.state, r.run_at, r.chat INTO st, at, key FROM wa._webhook_retry_key(cur, st, at) r;
        END IF;
        UPDATE wa.job_rows j
           SET state = st, run_at = at, chat = key, finished_at = NULL, result = NULL,
               cancel_requested_at = NULL,
               max_attempts = greatest(j.max_attempts, least(j.attempts + 1, 1000)),
               delivery = CASE WHEN j.kind = 'send' THEN 'queued'::wa.delivery_status END
         WHERE j.id = cur.id
        RETURNING * INTO cur;
        PERFORM pg_notify('wa_jobs', json_build_object('sessions', json_build_array(coalesce(cur.session_id, '')))::text);
        RETURN cur;
    ELSIF moved THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'WA008',
        MESSAGE = format('job: job %s is %s; an app changes jobs only by cancelling or retrying them', cur.id, cur.state),
        HINT = 'Apps change jobs with wa.cancel_job and wa.retry_job (or the same UPDATE of state they do).';
END
$$;
DROP TRIGGER IF EXISTS jobs_app_guard ON wa.job_rows;
DROP FUNCTION IF EXISTS wa._jobs_app_update();
DROP TRIGGER IF EXISTS jobs_update_1_writer ON wa.jobs;
CREATE TRIGGER jobs_update_1_writer INSTEAD OF UPDATE ON wa.jobs
    FOR EACH ROW EXECUTE FUNCTION wa._jobs_view_writer();
DROP TRIGGER IF EXISTS jobs_update_2_apply ON wa.jobs;
CREATE TRIGGER jobs_update_2_apply INSTEAD OF UPDATE ON wa.jobs
    FOR EACH ROW EXECUTE FUNCTION wa._jobs_view_update();

-- The LID mappings whatsapp-rust learns (wa.lid_mappings, the store's table, which apps
-- cannot read) are copied to wa.contacts, where apps see each number's LID. Only a new
-- or changed mapping costs a write: the store re-writes known mappings often, and an
-- unchanged one does not call this (the triggers' WHEN).
CREATE OR REPLACE FUNCTION wa._lid_mappings_to_contacts()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO wa.contacts AS c (session_id, phone, jid, lid, lid_learned_at)
    VALUES (NEW.session_id, NEW.phone_number, NEW.phone_number || '@s.whatsapp.net', NEW.lid || '@lid', now())
    ON CONFLICT (session_id, phone) DO UPDATE
       SET lid = EXCLUDED.lid, jid = coalesce(c.jid, EXCLUDED.jid), lid_learned_at = now(), updated_at = now()
     WHERE c.lid IS DISTINCT FROM EXCLUDED.lid;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS lid_mappings_to_contacts ON wa.lid_mappings;
CREATE TRIGGER lid_mappings_to_contacts AFTER INSERT ON wa.lid_mappings
    FOR EACH ROW EXECUTE FUNCTION wa._lid_mappings_to_contacts();
DROP TRIGGER IF EXISTS lid_mappings_to_contacts_changed ON wa.lid_mappings;
CREATE TRIGGER lid_mappings_to_contacts_changed AFTER UPDATE ON wa.lid_mappings
    FOR EACH ROW WHEN (OLD.phone_number IS DISTINCT FROM NEW.phone_number OR OLD.lid IS DISTINCT FROM NEW.lid)
    EXECUTE FUNCTION wa._lid_mappings_to_contacts();

-- {"session", "id", <column>: its value} on channel TG_ARGV[0], for tables whose rows an
-- app reads by id: the row's id and state only, never a JID (a JID is a phone number,
-- and any role can LISTEN).
CREATE OR REPLACE FUNCTION wa._notify_row()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], json_build_object(
        'session', NEW.session_id, 'id', NEW.id, TG_ARGV[1], to_jsonb(NEW)->>TG_ARGV[1])::text);
    RETURN NULL;
END
$$;

-- Channel wa_chat_state: {"session", "id", "state"} when someone shows a chat that they
-- are typing, recording or stopped (chat and sender: wa.chat_states by id).
DROP FUNCTION IF EXISTS wa._chat_states_notify() CASCADE;
DROP TRIGGER IF EXISTS chat_states_notify ON wa.chat_states;
CREATE TRIGGER chat_states_notify AFTER INSERT OR UPDATE ON wa.chat_states
    FOR EACH ROW EXECUTE FUNCTION wa._notify_row('wa_chat_state', 'state');

-- Channel wa_groups: {"session", "id", "left_at"} when a group's row changes (what it
-- is now: wa.groups by id).
DROP TRIGGER IF EXISTS groups_notify ON wa.groups;
CREATE TRIGGER groups_notify AFTER INSERT OR UPDATE ON wa.groups
    FOR EACH ROW EXECUTE FUNCTION wa._notify_row('wa_groups', 'left_at');

-- A reaction stored in wa.inbox is also applied to the message it reacts to, when that
-- is a message received (wa.outbound computes the reactions of messages sent), in
-- the same chat (under its phone JID or its LID, as wa.contacts maps them): a reaction
-- naming a message of another chat changes nothing. One entry per sender; a reaction
-- replaces an earlier one unless that one was sent later (a redelivered old reaction
-- does not undo a newer one), an empty emoji removes it. Runs inside the worker's
-- fenced insert: a refused insert applies nothing.
CREATE OR REPLACE FUNCTION wa._inbox_reaction_to_target()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    at timestamptz := coalesce(NEW.sent_at, NEW.received_at);
    entry jsonb := jsonb_build_object('emoji', NEW.text, 'at', coalesce(NEW.sent_at, NEW.received_at), 'id', NEW.message_id);
    removed boolean := coalesce(NEW.text, '') = '';
    chats text[] := ARRAY[NEW.chat];
    known text[];
BEGIN
    SELECT array_remove(ARRAY[c.jid, c.lid], NULL) INTO known
      FROM wa.contacts c
     WHERE c.session_id = NEW.session_id
       AND (c.lid = NEW.chat OR (NEW.chat LIKE '%@s.whatsapp.net' AND c.phone = split_part(NEW.chat, '@', 1)))
     LIMIT 1;
    IF FOUND THEN
        chats := chats || known;
    END IF;
    UPDATE wa.inbox i
       SET reactions = CASE WHEN removed THEN i.reactions - NEW.sender ELSE i.reactions || jsonb_build_object(NEW.sender, entry) END
     WHERE i.session_id = NEW.session_id AND i.message_id = NEW.quoted_id AND i.chat = ANY(chats) AND i.kind <> 'reaction'
       AND coalesce((i.reactions->NEW.sender->>'at')::timestamptz <= at, true);
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS inbox_reaction_to_target ON wa.inbox;
CREATE TRIGGER inbox_reaction_to_target AFTER INSERT ON wa.inbox
    FOR EACH ROW WHEN (NEW.kind = 'reaction' AND NEW.quoted_id IS NOT NULL)
    EXECUTE FUNCTION wa._inbox_reaction_to_target();

-- Channel wa_calls: {"session", "id", "status"} when a call comes in and when it is
-- rejected (the caller: wa.calls by id).
DROP TRIGGER IF EXISTS calls_notify ON wa.calls;
CREATE TRIGGER calls_notify AFTER INSERT OR UPDATE OF status ON wa.calls
    FOR EACH ROW EXECUTE FUNCTION wa._notify_row('wa_calls', 'status');

-- With wa.policy.media_download = 'postgres' or 's3', each inbound message with a file
-- gets a media_download job, in the transaction that stores the message (only for rows
-- really inserted: a redelivery inserts nothing and enqueues nothing).
CREATE OR REPLACE FUNCTION wa._inbox_media_download()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT p.media_download FROM wa.policy p) IN ('postgres', 's3') THEN
        INSERT INTO wa.job_rows (session_id, kind, payload) VALUES (NEW.session_id, 'media_download', jsonb_build_object('inbox_id', NEW.id));
    END IF;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS inbox_media_download ON wa.inbox;
CREATE TRIGGER inbox_media_download AFTER INSERT ON wa.inbox
    FOR EACH ROW WHEN (NEW.media ? 'direct_path')
    EXECUTE FUNCTION wa._inbox_media_download();
