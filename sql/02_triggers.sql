-- Triggers: validation on insert, worker wake-ups, status announcements.
-- NOTIFY payloads carry ids and kinds only: never message text, never key material.

DROP TRIGGER IF EXISTS jobs_before_insert ON wa.jobs;
CREATE TRIGGER jobs_before_insert BEFORE INSERT ON wa.jobs
    FOR EACH ROW EXECUTE FUNCTION wa._jobs_before_insert();

-- Wake-ups: channel wa_jobs, payload {"sessions": ["s1"]} ("" for maintenance jobs),
-- one per session and transaction that inserted jobs ready to run now (future-scheduled
-- rows are promoted by the workers' poll). Sent by wa._jobs_before_insert, which replaced
-- a statement trigger whose transition table cost a sixth of a single-row insert.
DROP TRIGGER IF EXISTS jobs_notify_insert ON wa.jobs;
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
    EXECUTE FUNCTION wa._sessions_notify_desired();

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
