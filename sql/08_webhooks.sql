-- Webhooks (table: migration 0029): the API that manages them, the outbox triggers
-- that queue a delivery job for each event in the transaction of its change, and the
-- FIFO of each webhook's deliveries. The worker POSTs a delivery's payload without its
-- "webhook" and "event_id" keys ({"type", "timestamp", "data"}, Standard Webhooks'
-- shape), with webhook-id = event_id, and signs it with the webhook's secret.
--
-- Events and their payloads' "data":
--   inbox     inbox.received   a message stored in wa.inbox: the row (id, session, chat,
--                              sender, message_id, kind, text, quoted_id, media without
--                              its download keys, data, mentions, sent_at, received_at)
--             inbox.changed    its sender edited or deleted it: the row as it is now,
--                              with change (edit | revoke), edited_at, revoked_at
--   outbound  outbound.status  a sent message's delivery status changed: job, session,
--                              chat, message_id, type, status, previous, job_state,
--                              error (when failed), queued_at, sent_at, delivered_at, read_at
--   session   session.status   a session's status changed: session, status, previous,
--                              reason, until, phone, jid, push_name, changed_at
--   codes     session.qr       a new QR code to show: session, qr, expires_at, count
--             session.pair_code  a new pairing code: session, pair_code, phone, expires_at
-- One event_id per event: a change announced to two webhooks has the same id at both.
-- The secret is never read here: it appears in no job, no NOTIFY and no error.

ALTER TABLE wa.webhooks ALTER COLUMN tenant SET DEFAULT wa._my_tenant();

-- A fresh secret: whsec_ and the base64 of 32 bytes from two gen_random_uuid() (244
-- random bits from the server's strong source; pgcrypto is not installed).
CREATE OR REPLACE FUNCTION wa._webhook_secret()
RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT 'whsec_' || encode(decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'), 'base64')
$$;

-- Timestamps in payloads: ISO 8601 in UTC with a Z, whatever the session's TimeZone.
CREATE OR REPLACE FUNCTION wa._iso(t timestamptz)
RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- Checks a webhook whoever writes it (the API or a plain INSERT/UPDATE) and fills in a
-- secret when none was given. Errors (WA015, WA001 for the session) name the column,
-- which is the API's argument of the same name, and never quote a secret, nor a URL
-- that carries credentials.
CREATE OR REPLACE FUNCTION wa._webhooks_validate()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    key bytea;
    bad text;
BEGIN
    IF NEW.url IS NULL OR btrim(NEW.url) = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'WA015', MESSAGE = 'url: missing; a webhook needs the http or https URL to POST to';
    ELSIF char_length(NEW.url) > 2048 THEN
        RAISE EXCEPTION USING ERRCODE = 'WA015',
            MESSAGE = format('url: %s characters is over the limit of 2048', char_length(NEW.url));
    ELSIF NEW.url ~ '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@' THEN
        RAISE EXCEPTION USING ERRCODE = 'WA015',
            MESSAGE = 'url: must not carry credentials (user:password@); the signature authenticates pgwa to the receiver';
    ELSIF NEW.url !~* '^https?://[^/?#@[:space:]:][^/?#@[:space:]]*([/?][^#[:space:]]*)?$' THEN
        RAISE EXCEPTION USING ERRCODE = 'WA015',
            MESSAGE = format('url: %s is not an http or https URL (scheme, host, optional port, path and query; no spaces, no #fragment)',
                             wa._q(NEW.url));
    END IF;
    IF NEW.events IS NULL OR cardinality(NEW.events) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'WA015',
            MESSAGE = 'events: name at least one of inbox, outbound, session, codes';
    END IF;
    SELECT e INTO bad FROM unnest(NEW.events) e
     WHERE e IS NULL OR e NOT IN ('inbox', 'outbound', 'session', 'codes') LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'WA015',
            MESSAGE = format('events: %s is not an event (accepted: inbox, outbound, session, codes)', wa._q(bad));
    END IF;
    -- Stored without repeats, in one order, so that equal sets compare equal.
    NEW.events := ARRAY(SELECT e FROM unnest(ARRAY['inbox', 'outbound', 'session', 'codes']) e WHERE e = ANY (NEW.events));
    IF NEW.secret IS NULL THEN
        NEW.secret := wa._webhook_secret();
    ELSE
        IF NEW.secret ~ '^whsec_[A-Za-z0-9+/]+={0,2}$' AND octet_length(NEW.secret) <= 100 THEN
            BEGIN
                key := decode(substr(NEW.secret, 7), 'base64');
            EXCEPTION WHEN invalid_parameter_value OR data_exception THEN
                key := NULL;
            END;
        END IF;
        IF key IS NULL OR length(key) NOT BETWEEN 24 AND 64 THEN
            RAISE EXCEPTION USING ERRCODE = 'WA015',
                MESSAGE = 'secret: must be whsec_ followed by the base64 of 24 to 64 random bytes (or NULL to have one made)';
        END IF;
    END IF;
    IF NEW.enabled IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'WA015', MESSAGE = 'enabled: must be true or false';
    END IF;
    IF char_length(NEW.description) > 500 THEN
        RAISE EXCEPTION USING ERRCODE = 'WA015',
            MESSAGE = format('description: %s characters is over the limit of 500', char_length(NEW.description));
    END IF;
    -- The writer's own view of wa.sessions (Row Level Security): another tenant's
    -- session does not exist for it, and it must be the webhook's tenant's.
    IF NEW.session_id IS NOT NULL AND NOT EXISTS (
           SELECT 1 FROM wa.sessions s WHERE s.id = NEW.session_id AND s.tenant = NEW.tenant) THEN
        RAISE EXCEPTION USING ERRCODE = 'WA001',
            MESSAGE = format('session: unknown session %s', wa._q(NEW.session_id)),
            HINT = 'A webhook filters on a session of its own tenant; NULL means all of them.';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS webhooks_validate ON wa.webhooks;
CREATE TRIGGER webhooks_validate BEFORE INSERT OR UPDATE ON wa.webhooks
    FOR EACH ROW EXECUTE FUNCTION wa._webhooks_validate();

-- A session named by a webhook's filter stays in the webhook's tenant: moved, it would
-- send its events to another tenant's URL.
CREATE OR REPLACE FUNCTION wa._sessions_keep_webhooks()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    w bigint;
BEGIN
    SELECT h.id INTO w FROM wa.webhooks h WHERE h.session_id = NEW.id AND h.tenant <> NEW.tenant LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'WA015',
            MESSAGE = format('tenant: webhook %s of tenant %s filters on session %s; remove it or change its session first',
                             w, OLD.tenant, NEW.id);
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS sessions_keep_webhooks ON wa.sessions;
CREATE TRIGGER sessions_keep_webhooks BEFORE UPDATE OF tenant ON wa.sessions
    FOR EACH ROW WHEN (OLD.tenant IS DISTINCT FROM NEW.tenant)
    EXECUTE FUNCTION wa._sessions_keep_webhooks();

-- FIFO per webhook (migration 0029 has the why): one delivery released at a time under
-- the key 'webhook:<id>', the rest waiting under 'webhook:<id>:waiting' at run_at
-- infinity, where no claim and no promotion by time looks.

-- Releases the webhook's oldest waiting delivery; returns its id (NULL: none waits).
-- The caller has checked that nothing of the webhook is released.
CREATE OR REPLACE FUNCTION wa._webhook_release(webhook bigint)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    released bigint;
BEGIN
    UPDATE wa.job_rows j
       SET state = 'available', run_at = now(), chat = 'webhook:' || webhook
     WHERE j.id = (SELECT k.id FROM wa.job_rows k
                    WHERE k.session_id IS NULL AND k.chat = 'webhook:' || webhook || ':waiting' AND k.phase < 2
                    -- In jobs_chat's order, so the plan reads its first entry: ORDER BY
                    -- id alone is sorted (IS NULL is no equality to the planner).
                    ORDER BY k.session_id, k.chat, k.id LIMIT 1 FOR UPDATE)
       AND j.state = 'scheduled'
    RETURNING j.id INTO released;
    IF released IS NOT NULL THEN
        PERFORM pg_notify('wa_jobs', '{"sessions": [""]}');
    END IF;
    RETURN released;
END
$$;

-- Queues one delivery of an event to each enabled webhook of the tenant that takes
-- its kind of event (and the session, when it filters on one); returns how many. A
-- delivery is released when its webhook has nothing released or waiting, else it
-- waits. A webhook found with deliveries waiting and none released (two transactions
-- crossed: one queued behind a delivery that the other finished without seeing it) is
-- set going again here, before the new one queues behind.
CREATE OR REPLACE FUNCTION wa._webhook_emit(tenant text, session text, event text, type text, data jsonb)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    body jsonb := jsonb_build_object('event_id', 'msg_' || replace(gen_random_uuid()::text, '-', ''),
                                     'type', type, 'timestamp', wa._iso(now()), 'data', data);
    w bigint;
    released boolean;
    waiting boolean;
    n integer := 0;
BEGIN
    FOR w IN SELECT h.id FROM wa.webhooks h
              WHERE h.tenant = _webhook_emit.tenant AND h.enabled AND event = ANY (h.events)
                AND (h.session_id IS NULL OR h.session_id = _webhook_emit.session)
              ORDER BY h.id LOOP
        released := EXISTS (SELECT 1 FROM wa.job_rows k
                             WHERE k.session_id IS NULL AND k.chat = 'webhook:' || w AND k.phase < 2);
        waiting := EXISTS (SELECT 1 FROM wa.job_rows k
                            WHERE k.session_id IS NULL AND k.chat = 'webhook:' || w || ':waiting' AND k.phase < 2);
        IF waiting AND NOT released THEN
            PERFORM wa._webhook_release(w);
        END IF;
        INSERT INTO wa.job_rows (session_id, kind, payload, run_at)
        VALUES (NULL, 'webhook', body || jsonb_build_object('webhook', w),
                CASE WHEN released OR waiting THEN 'infinity'::timestamptz ELSE now() END);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

-- The same repair for every webhook, run once a minute by the maintenance task
-- release_webhooks: a stall otherwise waits for the webhook's next event.
-- Two probes of jobs_chat per webhook. Returns how many deliveries it released.
CREATE OR REPLACE FUNCTION wa._webhooks_release_stalled()
RETURNS integer
LANGUAGE sql AS $$
    SELECT count(wa._webhook_release(h.id))::integer
      FROM wa.webhooks h
     WHERE EXISTS (SELECT 1 FROM wa.job_rows k
                    WHERE k.session_id IS NULL AND k.chat = 'webhook:' || h.id || ':waiting' AND k.phase < 2)
       AND NOT EXISTS (SELECT 1 FROM wa.job_rows k
                        WHERE k.session_id IS NULL AND k.chat = 'webhook:' || h.id AND k.phase < 2)
$$;

-- When a delivery ends (completed, dead, cancelled), the next one of its webhook goes.
-- The trigger's WHEN keeps every other job update (claims, sends, receipts) from
-- calling anything.
CREATE OR REPLACE FUNCTION wa._webhook_next()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    w bigint := (NEW.payload->>'webhook')::bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM wa.job_rows k
                    WHERE k.session_id IS NULL AND k.chat = 'webhook:' || w AND k.phase < 2) THEN
        PERFORM wa._webhook_release(w);
    END IF;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS jobs_webhook_next ON wa.job_rows;
CREATE TRIGGER jobs_webhook_next AFTER UPDATE OF state ON wa.job_rows
    FOR EACH ROW WHEN (NEW.kind = 'webhook' AND NEW.finished_at IS NOT NULL AND OLD.finished_at IS NULL)
    EXECUTE FUNCTION wa._webhook_next();

-- A retry (wa.retry_job, wa.retry_jobs, or the same UPDATE of wa.jobs) of a dead or
-- cancelled delivery, or of a waiting one, keeps the webhook's order as far as it still
-- can: the delivery goes at once only when nothing of its webhook is released and no
-- older one waits; otherwise it waits, and being older than the rest of the waiting
-- ones, goes next after the delivery in flight. (Deliveries after it went out while it
-- was dead; its payload's timestamp tells the receiver when it happened.) Called by
-- wa.jobs' INSTEAD OF UPDATE trigger (wa._jobs_view_update) with the state and run_at
-- the retry would give; returns what the delivery gets, with its key. A release
-- (_webhook_release) changes the key and is not a retry.
CREATE OR REPLACE FUNCTION wa._webhook_retry_key(job wa.job_rows, retry_state wa.job_state, retry_at timestamptz,
                                                 OUT state wa.job_state, OUT run_at timestamptz, OUT chat text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    w bigint := (job.payload->>'webhook')::bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM wa.job_rows k
                WHERE k.session_id IS NULL AND k.chat = 'webhook:' || w AND k.phase < 2 AND k.id <> job.id)
       OR EXISTS (SELECT 1 FROM wa.job_rows k
                   WHERE k.session_id IS NULL AND k.chat = 'webhook:' || w || ':waiting' AND k.phase < 2 AND k.id < job.id) THEN
        state := 'scheduled';
        run_at := 'infinity';
        chat := 'webhook:' || w || ':waiting';
    ELSE
        state := retry_state;
        run_at := retry_at;
        chat := 'webhook:' || w;
    END IF;
END
$$;
DROP TRIGGER IF EXISTS jobs_webhook_retry ON wa.job_rows;
DROP FUNCTION IF EXISTS wa._webhook_retry();

-- A removed webhook's deliveries not yet made are cancelled; a running one is asked to
-- stop (its worker also finds the webhook gone). As the owner: the delete may come from
-- an app, or from the removal of the session the webhook filtered on.
CREATE OR REPLACE FUNCTION wa._webhooks_removed()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    j bigint;
BEGIN
    UPDATE wa.job_rows k
       SET state = 'cancelled', finished_at = now(), result = jsonb_build_object('cancelled', true, 'reason', 'webhook removed')
     WHERE k.session_id IS NULL AND k.chat IN ('webhook:' || OLD.id, 'webhook:' || OLD.id || ':waiting')
       AND k.phase < 2 AND k.state <> 'running';
    FOR j IN UPDATE wa.job_rows k SET cancel_requested_at = coalesce(k.cancel_requested_at, now())
              WHERE k.session_id IS NULL AND k.chat = 'webhook:' || OLD.id AND k.phase < 2 AND k.state = 'running'
             RETURNING k.id LOOP
        PERFORM pg_notify('wa_job_cancel', json_build_object('job', j, 'session', NULL)::text);
    END LOOP;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS webhooks_removed ON wa.webhooks;
CREATE TRIGGER webhooks_removed AFTER DELETE ON wa.webhooks
    FOR EACH ROW EXECUTE FUNCTION wa._webhooks_removed();

-- The outbox. Each trigger asks first whether any webhook takes the event at all: with
-- none, a change costs one probe of the empty webhooks_tenant index. The functions that
-- apps' writes reach (a cancel moves a send's delivery, wa.start_session a status) run
-- as the owner: a delivery is the owner's to insert, and wa._webhook_emit must not be
-- callable by apps (an app could post forged events, signed, to any tenant's URL).
-- Measured with no webhook (10,000 single-row statements in a loop, on an idle
-- server): an inbound message's insert took 1 to 2 us more than without the trigger
-- (of about 30), a single-row delivery change 7 us more (of about 38; see below for
-- a thousand in one statement). Calling the owner's function for every row instead
-- (SECURITY DEFINER with its search_path, the session's tenant looked up) cost 17 us,
-- and an SQL function in the trigger's WHEN 25 us (it is planned again for every
-- statement).

-- inbox.received, inbox.changed. Media go without their download keys (media_key,
-- direct_path, url): a webhook body is not where key material goes; wa.inbox has them.
-- Only the workers write wa.inbox, so this runs as its caller (the owner), sparing
-- each inbound message the switch to the definer.
CREATE OR REPLACE FUNCTION wa._webhooks_inbox()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    t text;
    data jsonb;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM wa.webhooks h WHERE h.enabled AND 'inbox' = ANY (h.events)) THEN
        RETURN NULL;
    END IF;
    SELECT s.tenant INTO t FROM wa.sessions s WHERE s.id = NEW.session_id;
    IF NOT EXISTS (SELECT 1 FROM wa.webhooks h WHERE h.tenant = t AND h.enabled AND 'inbox' = ANY (h.events)) THEN
        RETURN NULL;
    END IF;
    data := jsonb_build_object(
        'id', NEW.id, 'session', NEW.session_id, 'chat', NEW.chat, 'sender', NEW.sender,
        'message_id', NEW.message_id, 'kind', NEW.kind, 'text', NEW.text, 'quoted_id', NEW.quoted_id,
        'media', NEW.media - ARRAY['media_key', 'direct_path', 'url', 'file_enc_sha256', 'media_key_timestamp'],
        'data', NEW.data, 'mentions', to_jsonb(NEW.mentions),
        'sent_at', wa._iso(NEW.sent_at), 'received_at', wa._iso(NEW.received_at));
    IF TG_OP = 'INSERT' THEN
        PERFORM wa._webhook_emit(t, NEW.session_id, 'inbox', 'inbox.received', data);
    ELSE
        PERFORM wa._webhook_emit(t, NEW.session_id, 'inbox', 'inbox.changed', data || jsonb_build_object(
            'change', NEW.history->-1->>'kind', 'edited_at', wa._iso(NEW.edited_at), 'revoked_at', wa._iso(NEW.revoked_at)));
    END IF;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS inbox_webhooks ON wa.inbox;
CREATE TRIGGER inbox_webhooks AFTER INSERT ON wa.inbox
    FOR EACH ROW EXECUTE FUNCTION wa._webhooks_inbox();
-- The same change inbox_notify_change announces on wa_inbox.
DROP TRIGGER IF EXISTS inbox_webhooks_change ON wa.inbox;
CREATE TRIGGER inbox_webhooks_change AFTER UPDATE OF history ON wa.inbox
    FOR EACH ROW WHEN (OLD.history IS DISTINCT FROM NEW.history)
    EXECUTE FUNCTION wa._webhooks_inbox();

-- outbound.status: a send's delivery moved (queued, sent, delivered, read, failed),
-- whoever moved it: the worker's outcomes and receipts, a cancel or retry. The
-- outcomes move a thousand sends in one statement, so the question "any webhook for
-- outbound?" is asked once per statement (jobs_webhooks_outbound_gate) and its answer
-- left in a transaction-local setting that the row trigger's WHEN reads: with no
-- webhook, a row costs a current_setting() (measured: 20,000 delivery changes in one
-- UPDATE took the same time as without the triggers, 35% longer with the probe made
-- for every row). A statement that changed the setting itself while it ran would
-- only hide its own tenant's events from its own webhooks.
CREATE OR REPLACE FUNCTION wa._webhooks_outbound_gate()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- As the writer: an app sees its own tenants' webhooks, the only ones its rows reach.
    PERFORM set_config('pgwa.outbound_webhooks',
        CASE WHEN EXISTS (SELECT 1 FROM wa.webhooks h WHERE h.enabled AND 'outbound' = ANY (h.events))
             THEN 'on' ELSE 'off' END, true);
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS jobs_webhooks_outbound_gate ON wa.job_rows;
CREATE TRIGGER jobs_webhooks_outbound_gate BEFORE UPDATE OF delivery ON wa.job_rows
    FOR EACH STATEMENT EXECUTE FUNCTION wa._webhooks_outbound_gate();

CREATE OR REPLACE FUNCTION wa._webhooks_outbound()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t text;
BEGIN
    SELECT s.tenant INTO t FROM wa.sessions s WHERE s.id = NEW.session_id;
    IF NOT EXISTS (SELECT 1 FROM wa.webhooks h WHERE h.tenant = t AND h.enabled AND 'outbound' = ANY (h.events)) THEN
        RETURN NULL;
    END IF;
    PERFORM wa._webhook_emit(t, NEW.session_id, 'outbound', 'outbound.status', jsonb_build_object(
        'job', NEW.id, 'session', NEW.session_id, 'chat', NEW.chat, 'message_id', NEW.message_id,
        'type', NEW.payload->>'type', 'status', NEW.delivery, 'previous', OLD.delivery, 'job_state', NEW.state,
        'error', CASE WHEN NEW.delivery = 'failed' THEN left(NEW.errors->-1->>'error', 500) END,
        'queued_at', wa._iso(NEW.created_at), 'sent_at', wa._iso(NEW.sent_at),
        'delivered_at', wa._iso(NEW.delivered_at), 'read_at', wa._iso(NEW.read_at)));
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS jobs_webhooks_outbound ON wa.job_rows;
CREATE TRIGGER jobs_webhooks_outbound AFTER UPDATE OF delivery ON wa.job_rows
    FOR EACH ROW WHEN (OLD.delivery IS DISTINCT FROM NEW.delivery AND current_setting('pgwa.outbound_webhooks', true) = 'on')
    EXECUTE FUNCTION wa._webhooks_outbound();

-- session.status, session.qr, session.pair_code: the changes wa_session_status and
-- wa_link announce. A status change comes first when one UPDATE brings both (the first
-- QR code moves the session to awaiting_qr).
-- Status changes are rare (a heartbeat changes none of these columns, and the WHEN
-- skips it without a call), so the gate is inside.
CREATE OR REPLACE FUNCTION wa._webhooks_session()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM wa.webhooks h
                    WHERE h.tenant = NEW.tenant AND h.enabled AND h.events && ARRAY['session', 'codes']) THEN
        RETURN NULL;
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        PERFORM wa._webhook_emit(NEW.tenant, NEW.id, 'session', 'session.status', jsonb_build_object(
            'session', NEW.id, 'status', NEW.status, 'previous', OLD.status, 'reason', left(NEW.status_reason, 500),
            'until', wa._iso(NEW.status_until), 'phone', NEW.phone, 'jid', NEW.jid, 'push_name', NEW.push_name,
            'changed_at', wa._iso(NEW.status_changed_at)));
    END IF;
    IF NEW.qr_code IS NOT NULL AND NEW.qr_code IS DISTINCT FROM OLD.qr_code THEN
        PERFORM wa._webhook_emit(NEW.tenant, NEW.id, 'codes', 'session.qr', jsonb_build_object(
            'session', NEW.id, 'qr', NEW.qr_code, 'expires_at', wa._iso(NEW.qr_expires_at), 'count', NEW.qr_count));
    END IF;
    IF NEW.pair_code IS NOT NULL AND NEW.pair_code IS DISTINCT FROM OLD.pair_code THEN
        PERFORM wa._webhook_emit(NEW.tenant, NEW.id, 'codes', 'session.pair_code', jsonb_build_object(
            'session', NEW.id, 'pair_code', NEW.pair_code, 'phone', NEW.pair_phone,
            'expires_at', wa._iso(NEW.pair_code_expires_at)));
    END IF;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS sessions_webhooks ON wa.sessions;
CREATE TRIGGER sessions_webhooks AFTER UPDATE OF status, qr_code, pair_code ON wa.sessions
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                    OR (NEW.qr_code IS NOT NULL AND NEW.qr_code IS DISTINCT FROM OLD.qr_code)
                    OR (NEW.pair_code IS NOT NULL AND NEW.pair_code IS DISTINCT FROM OLD.pair_code))
    EXECUTE FUNCTION wa._webhooks_session();

-- The API. Each function runs as its caller, so Row Level Security scopes it to the
-- caller's tenants; errors name the argument (WA015 malformed, WA016 no such webhook,
-- WA001 unknown session, WA011 unknown tenant).

-- The webhook's row as the API returns it: every column, the secret only when given.
CREATE OR REPLACE FUNCTION wa._webhook_row(webhook bigint, secret text)
RETURNS wa.webhooks
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r wa.webhooks;
BEGIN
    SELECT h.id, h.tenant, h.url, h.events, h.session_id, h.enabled, h.description, h.created_at, h.updated_at
      INTO r.id, r.tenant, r.url, r.events, r.session_id, r.enabled, r.description, r.created_at, r.updated_at
      FROM wa.webhooks h WHERE h.id = webhook;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'WA016', MESSAGE = format('webhook: no webhook with id %s', coalesce(webhook::text, 'NULL'));
    END IF;
    r.secret := secret;
    RETURN r;
END
$$;

-- Adds a webhook: POSTs of the events named (default all four: inbox, outbound,
-- session, codes) of one session or, by default, every session of the tenant, to url.
-- Returns the row with its secret (whsec_..., made here unless given): the only time it
-- is shown, so keep it to check signatures (wa.rotate_webhook_secret makes a new one).
-- The tenant is the session's, else the caller's only tenant; a role in several
-- tenants names one.
CREATE OR REPLACE FUNCTION wa.add_webhook(
    url text,
    events text[] DEFAULT '{inbox,outbound,session,codes}',
    session text DEFAULT NULL,
    secret text DEFAULT NULL,
    description text DEFAULT NULL,
    tenant text DEFAULT NULL)
RETURNS wa.webhooks
LANGUAGE plpgsql AS $$
DECLARE
    t text := add_webhook.tenant;
    s text := coalesce(add_webhook.secret, wa._webhook_secret());
    id bigint;
BEGIN
    IF t IS NOT NULL AND NOT EXISTS (SELECT 1 FROM wa.tenants x WHERE x.name = t) THEN
        RAISE EXCEPTION USING ERRCODE = 'WA011', MESSAGE = format('tenant: unknown tenant %s', wa._q(t));
    END IF;
    IF t IS NULL AND add_webhook.session IS NOT NULL THEN
        SELECT x.tenant INTO t FROM wa.sessions x WHERE x.id = add_webhook.session;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'WA001',
                MESSAGE = format('session: unknown session %s', wa._q(add_webhook.session));
        END IF;
    END IF;
    INSERT INTO wa.webhooks AS h (tenant, url, secret, events, session_id, description)
    VALUES (coalesce(t, wa._my_tenant()), add_webhook.url, s, add_webhook.events, add_webhook.session, add_webhook.description)
    RETURNING h.id INTO id;
    RETURN wa._webhook_row(id, s);
END
$$;

-- Changes a webhook: each argument not NULL replaces its column; all_sessions => true
-- drops the session filter; description => '' clears it. Returns the row (secret NULL:
-- see wa.rotate_webhook_secret).
CREATE OR REPLACE FUNCTION wa.update_webhook(
    webhook bigint,
    url text DEFAULT NULL,
    events text[] DEFAULT NULL,
    session text DEFAULT NULL,
    enabled boolean DEFAULT NULL,
    description text DEFAULT NULL,
    all_sessions boolean DEFAULT false)
RETURNS wa.webhooks
LANGUAGE plpgsql AS $$
BEGIN
    IF update_webhook.session IS NOT NULL AND coalesce(update_webhook.all_sessions, false) THEN
        RAISE EXCEPTION USING ERRCODE = 'WA015',
            MESSAGE = 'session: pass a session or all_sessions => true, not both';
    END IF;
    UPDATE wa.webhooks h
       SET url = coalesce(update_webhook.url, h.url),
           events = coalesce(update_webhook.events, h.events),
           session_id = CASE WHEN coalesce(update_webhook.all_sessions, false) THEN NULL
                             ELSE coalesce(update_webhook.session, h.session_id) END,
           enabled = coalesce(update_webhook.enabled, h.enabled),
           description = CASE WHEN update_webhook.description = '' THEN NULL
                              ELSE coalesce(update_webhook.description, h.description) END
     WHERE h.id = webhook;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'WA016', MESSAGE = format('webhook: no webhook with id %s', coalesce(webhook::text, 'NULL'));
    END IF;
    RETURN wa._webhook_row(webhook, NULL);
END
$$;

-- Removes a webhook. Its deliveries not yet made are cancelled (a running one is asked
-- to stop); returns how many.
CREATE OR REPLACE FUNCTION wa.remove_webhook(webhook bigint)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    pending integer;
BEGIN
    PERFORM 1 FROM wa.webhooks h WHERE h.id = webhook FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'WA016', MESSAGE = format('webhook: no webhook with id %s', coalesce(webhook::text, 'NULL'));
    END IF;
    SELECT count(*) INTO pending FROM wa.webhook_deliveries d
     WHERE d.webhook = remove_webhook.webhook AND d.state IN ('available', 'scheduled', 'retryable', 'running');
    DELETE FROM wa.webhooks h WHERE h.id = webhook;
    RETURN pending;
END
$$;

-- A new secret for a webhook (made here unless given), returned: the only time it is
-- shown. Deliveries signed from now on use it, retries of earlier ones included.
CREATE OR REPLACE FUNCTION wa.rotate_webhook_secret(webhook bigint, secret text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    s text := coalesce(rotate_webhook_secret.secret, wa._webhook_secret());
BEGIN
    UPDATE wa.webhooks h SET secret = s WHERE h.id = webhook;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'WA016', MESSAGE = format('webhook: no webhook with id %s', coalesce(webhook::text, 'NULL'));
    END IF;
    RETURN s;
END
$$;

-- Deliveries, one row per event and webhook: what happened to each. Retry a dead one
-- with wa.retry_job(id) (or many with wa.retry_jobs(kind => 'webhook')), stop one with
-- wa.cancel_job(id).
CREATE OR REPLACE VIEW wa.webhook_deliveries AS
SELECT j.id,
       h.id AS webhook,
       j.payload->>'type' AS type,
       j.payload->>'event_id' AS event_id,
       j.state,
       j.chat = 'webhook:' || h.id || ':waiting' AS waiting,
       j.attempts,
       j.max_attempts,
       j.errors->-1->>'error' AS last_error,
       j.run_at,
       j.created_at,
       j.attempted_at,
       j.finished_at
  FROM wa.webhooks h
  JOIN wa.jobs j ON j.kind = 'webhook' AND j.chat IN ('webhook:' || h.id, 'webhook:' || h.id || ':waiting');
ALTER VIEW wa.webhook_deliveries SET (security_invoker = true);

-- Tenants: a role sees and changes only its tenants' webhooks, and sees (and may cancel
-- or retry through wa.jobs, as its trigger allows) their deliveries. No one but the
-- owner reads a stored secret.
ALTER TABLE wa.webhooks ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS own_webhooks ON wa.webhooks;
CREATE POLICY own_webhooks ON wa.webhooks FOR ALL TO pgwa_api
    USING (tenant IN (SELECT unnest(wa._my_tenants())))
    WITH CHECK (tenant IN (SELECT unnest(wa._my_tenants())));
-- Deliveries have no session, so own_jobs does not show them: these do, by webhook.
-- No INSERT policy: deliveries come from the outbox alone (and _jobs_before_insert
-- refuses an app's). The key is matched as text, never cast, so a row's content cannot
-- make the policy fail for other readers.
DROP POLICY IF EXISTS own_webhook_deliveries ON wa.job_rows;
CREATE POLICY own_webhook_deliveries ON wa.job_rows FOR SELECT TO pgwa_api
    USING (kind = 'webhook' AND chat IN (SELECT k FROM wa.webhooks h,
                                         LATERAL (VALUES ('webhook:' || h.id), ('webhook:' || h.id || ':waiting')) v(k)));
-- Apps update jobs through wa.jobs, whose INSTEAD OF trigger writes as the owner the
-- rows the app could read: no UPDATE of the table itself, and no policy for one.
DROP POLICY IF EXISTS own_webhook_deliveries_update ON wa.job_rows;

GRANT SELECT (id, tenant, url, events, session_id, enabled, description, created_at, updated_at) ON wa.webhooks TO pgwa_api;
GRANT INSERT (tenant, url, secret, events, session_id, enabled, description) ON wa.webhooks TO pgwa_api;
GRANT UPDATE (url, secret, events, session_id, enabled, description) ON wa.webhooks TO pgwa_api;
GRANT DELETE ON wa.webhooks TO pgwa_api;
GRANT SELECT ON wa.webhook_deliveries TO pgwa_api;
-- As sql/06_roles.sql does for the files before this one (functions are executable by
-- PUBLIC when made, and on a first install these are made after it ran): above all
-- wa._webhook_emit and wa._webhook_release, which run as the owner.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA wa FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    wa.add_webhook(text, text[], text, text, text, text),
    wa.update_webhook(bigint, text, text[], text, boolean, text, boolean),
    wa.remove_webhook(bigint),
    wa.rotate_webhook_secret(bigint, text),
    -- Called by the functions above, which run as the app.
    wa._webhook_secret(),
    wa._webhook_row(bigint, text),
    wa._iso(timestamptz)
TO pgwa_api;
