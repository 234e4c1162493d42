-- Job API. Every function validates its arguments (through the insert trigger for new
-- jobs) and raises a WA-class SQLSTATE naming the argument; nothing is inserted then.

-- The job an idempotency key already names, if it is of the kind asked for: a key
-- reused for another kind of job is a bug in the caller (it would get, say, a reconnect
-- job back from wa.send_text), so it is refused rather than answered.
CREATE OR REPLACE FUNCTION wa._same_request(existing wa.jobs, kind wa.job_kind)
RETURNS wa.jobs
LANGUAGE plpgsql AS $$
BEGIN
    IF existing.kind <> kind THEN
        RAISE EXCEPTION USING ERRCODE = 'WA005',
            MESSAGE = format('idempotency_key: already used by job %s of this session, a %s job, not %s',
                             existing.id, existing.kind, kind),
            HINT = 'Use one key per request; the same key returns the same job only for the same kind.';
    END IF;
    RETURN existing;
END
$$;

-- Enqueues a job of any kind and returns the row. kind is one of send, reconnect,
-- key_cleanup, close_session, maintenance, mark_read, presence, check_numbers,
-- media_download, group (WA004 otherwise). run_at NULL means now;
-- priority 0..1000, lower first (default 100); max_attempts 1..1000 (default 10).
-- The job a session's idempotency key names (session NULL: a session-less job's key,
-- such as a schedule's tick), or a row of NULLs. One statement per case: `session_id IS
-- NOT DISTINCT FROM session` is no index condition, and keyed jobs are kept as long as
-- the message history.
CREATE OR REPLACE FUNCTION wa._job_by_key(session text, key text)
RETURNS wa.jobs
LANGUAGE plpgsql AS $$
DECLARE
    row wa.jobs;
BEGIN
    IF session IS NULL THEN
        SELECT j.* INTO row FROM wa.jobs j WHERE j.session_id IS NULL AND j.idempotency_key = key;
    ELSE
        SELECT j.* INTO row FROM wa.jobs j WHERE j.session_id = session AND j.idempotency_key = key;
    END IF;
    RETURN row;
END
$$;

-- The same idempotency_key twice for a session returns the first job unchanged.
CREATE OR REPLACE FUNCTION wa.enqueue(
    session text,
    kind text,
    payload jsonb DEFAULT '{}',
    run_at timestamptz DEFAULT NULL,
    priority integer DEFAULT NULL,
    idempotency_key text DEFAULT NULL,
    max_attempts integer DEFAULT NULL)
RETURNS wa.jobs
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    row wa.jobs;
    k wa.job_kind;
BEGIN
    IF kind IS NULL OR kind NOT IN ('send', 'reconnect', 'key_cleanup', 'close_session', 'maintenance',
                                    'mark_read', 'presence', 'check_numbers', 'media_download', 'group') THEN
        RAISE EXCEPTION USING ERRCODE = 'WA004',
            MESSAGE = format('kind: unknown job kind %s (accepted: send, reconnect, key_cleanup, close_session, maintenance, mark_read, presence, check_numbers, media_download, group)', wa._q(kind));
    END IF;
    k := kind::wa.job_kind;
    IF priority IS NOT NULL AND (priority < 0 OR priority > 1000) THEN
        RAISE EXCEPTION USING ERRCODE = 'WA005',
            MESSAGE = format('priority: %s is out of range (0 to 1000, lower runs first)', priority);
    END IF;
    IF max_attempts IS NOT NULL AND (max_attempts < 1 OR max_attempts > 1000) THEN
        RAISE EXCEPTION USING ERRCODE = 'WA005',
            MESSAGE = format('max_attempts: %s is out of range (1 to 1000)', max_attempts);
    END IF;
    IF idempotency_key IS NOT NULL THEN
        IF length(idempotency_key) NOT BETWEEN 1 AND 255 THEN
            RAISE EXCEPTION USING ERRCODE = 'WA005',
                MESSAGE = 'idempotency_key: must be 1 to 255 characters';
        END IF;
        row := wa._job_by_key(session, enqueue.idempotency_key);
        IF row.id IS NOT NULL THEN
            RETURN wa._same_request(row, k);
        END IF;
    END IF;
    INSERT INTO wa.jobs AS j (session_id, kind, payload, run_at, priority, idempotency_key, max_attempts)
    VALUES (session, k, coalesce(payload, '{}'), coalesce(run_at, now()),
            coalesce(priority, 100), idempotency_key, coalesce(max_attempts, 10))
    ON CONFLICT (session_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING j.* INTO row;
    IF NOT FOUND THEN
        -- A concurrent transaction inserted the same key first and committed.
        row := wa._same_request(wa._job_by_key(session, enqueue.idempotency_key), k);
    END IF;
    RETURN row;
END
$$;

-- Sends a text message. Returns the job id and the WhatsApp message id (fixed now, so a
-- retry never makes a second message). reply_to quotes an earlier message by its id;
-- mentions lists the people the text's @<number> tokens name (phone numbers or JIDs).
-- Inserts directly rather than through wa.enqueue: it is the hot path of every app.
DROP FUNCTION IF EXISTS wa.send_text(text, text, text, text, timestamptz, integer, text, integer);
CREATE OR REPLACE FUNCTION wa.send_text(
    session text,
    recipient text,
    body text,
    reply_to text DEFAULT NULL,
    run_at timestamptz DEFAULT NULL,
    priority integer DEFAULT NULL,
    idempotency_key text DEFAULT NULL,
    max_attempts integer DEFAULT NULL,
    mentions text[] DEFAULT NULL,
    OUT job_id bigint,
    OUT message_id text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    payload jsonb;
BEGIN
    IF body IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'WA003', MESSAGE = 'body: the text is NULL';
    END IF;
    payload := jsonb_build_object('type', 'text', 'to', recipient, 'text', body);
    IF reply_to IS NOT NULL THEN
        payload := payload || jsonb_build_object('reply_to', reply_to);
    END IF;
    IF mentions IS NOT NULL THEN
        payload := payload || jsonb_build_object('mentions', to_jsonb(mentions));
    END IF;
    IF idempotency_key IS NOT NULL OR priority IS NOT NULL OR max_attempts IS NOT NULL THEN
        SELECT j.id, j.message_id INTO job_id, message_id
          FROM wa.enqueue(session, 'send', payload, run_at, priority, idempotency_key, max_attempts) j;
        RETURN;
    END IF;
    INSERT INTO wa.jobs AS j (session_id, kind, payload, run_at, chat)
    VALUES (session, 'send', payload, coalesce(run_at, now()), wa.normalize_jid(recipient, 'recipient'))
    RETURNING j.id, j.message_id INTO job_id, message_id;
END
$$;

-- Reacts to a message (by its WhatsApp id) with an emoji; an empty emoji removes the
-- reaction. Returns the job id and the reaction's own message id.
CREATE OR REPLACE FUNCTION wa.send_reaction(
    session text,
    recipient text,
    target_message_id text,
    emoji text,
    idempotency_key text DEFAULT NULL,
    OUT job_id bigint,
    OUT message_id text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    SELECT j.id, j.message_id INTO job_id, message_id
      FROM wa.enqueue(session, 'send',
             jsonb_build_object('type', 'reaction', 'to', recipient, 'message_id', target_message_id, 'emoji', emoji),
             idempotency_key => idempotency_key) j;
END
$$;

-- Sends a file, from bytes or from an http(s) URL the worker fetches (exactly one of
-- them): an image, a document, a video (MP4), an audio file, a voice note (Ogg Opus,
-- shown as recorded, with its length in seconds and a waveform of up to 64 samples 0 to
-- 100; the length is read from the file when not given) or a sticker (WebP). Optional
-- caption (images, videos, documents), MIME type and file name (documents).
DROP FUNCTION IF EXISTS wa.send_media(text, text, text, bytea, text, text, text, text, text, text);
CREATE OR REPLACE FUNCTION wa.send_media(
    session text,
    recipient text,
    kind text,
    data bytea DEFAULT NULL,
    url text DEFAULT NULL,
    caption text DEFAULT NULL,
    mimetype text DEFAULT NULL,
    file_name text DEFAULT NULL,
    reply_to text DEFAULT NULL,
    idempotency_key text DEFAULT NULL,
    seconds integer DEFAULT NULL,
    waveform bytea DEFAULT NULL,
    OUT job_id bigint,
    OUT message_id text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    IF kind IS NULL OR kind NOT IN ('image', 'document', 'video', 'audio', 'voice', 'sticker') THEN
        RAISE EXCEPTION USING ERRCODE = 'WA006',
            MESSAGE = format('kind: %s is not a media kind (accepted: image, document, video, audio, voice, sticker)', wa._q(kind));
    END IF;
    SELECT j.id, j.message_id INTO job_id, message_id
      FROM wa.enqueue(session, 'send',
             jsonb_strip_nulls(jsonb_build_object('type', kind, 'to', recipient,
                 'data', translate(encode(data, 'base64'), E'\n', ''), 'url', url, 'caption', caption,
                 'mimetype', mimetype, 'file_name', file_name, 'reply_to', reply_to, 'seconds', seconds,
                 'waveform', translate(encode(waveform, 'base64'), E'\n', ''))),
             idempotency_key => idempotency_key) j;
END
$$;

-- Sends a location pin: latitude -90..90, longitude -180..180, with an optional place
-- name and address.
CREATE OR REPLACE FUNCTION wa.send_location(
    session text,
    recipient text,
    latitude double precision,
    longitude double precision,
    name text DEFAULT NULL,
    address text DEFAULT NULL,
    reply_to text DEFAULT NULL,
    idempotency_key text DEFAULT NULL,
    OUT job_id bigint,
    OUT message_id text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    SELECT j.id, j.message_id INTO job_id, message_id
      FROM wa.enqueue(session, 'send',
             jsonb_strip_nulls(jsonb_build_object('type', 'location', 'to', recipient,
                 'latitude', latitude, 'longitude', longitude, 'name', name, 'address', address,
                 'reply_to', reply_to)),
             idempotency_key => idempotency_key) j;
END
$$;

-- Sends a contact card: the name shown and the person's phone numbers (1 to 10); the
-- vCard is built by the worker, each number marked as a WhatsApp account.
CREATE OR REPLACE FUNCTION wa.send_contact(
    session text,
    recipient text,
    display_name text,
    phones text[],
    reply_to text DEFAULT NULL,
    idempotency_key text DEFAULT NULL,
    OUT job_id bigint,
    OUT message_id text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    SELECT j.id, j.message_id INTO job_id, message_id
      FROM wa.enqueue(session, 'send',
             jsonb_strip_nulls(jsonb_build_object('type', 'contact', 'to', recipient,
                 'display_name', display_name, 'phones', to_jsonb(phones), 'reply_to', reply_to)),
             idempotency_key => idempotency_key) j;
END
$$;

-- Sends a poll: a question with 2 to 12 distinct options, of which a voter may pick up
-- to selectable_count (default 1; 0 for any number). Votes come back encrypted; the
-- worker opens them into wa.inbox (kind poll_vote) and wa.poll_results counts them.
CREATE OR REPLACE FUNCTION wa.send_poll(
    session text,
    recipient text,
    question text,
    options text[],
    selectable_count integer DEFAULT 1,
    idempotency_key text DEFAULT NULL,
    OUT job_id bigint,
    OUT message_id text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    SELECT j.id, j.message_id INTO job_id, message_id
      FROM wa.enqueue(session, 'send',
             jsonb_build_object('type', 'poll', 'to', recipient, 'question', question,
                 'options', to_jsonb(options), 'selectable_count', selectable_count),
             idempotency_key => idempotency_key) j;
END
$$;

-- Edits a text message this session sent to chat, within WhatsApp's 15 minutes: the
-- recipient sees the new text marked as edited. Returns the job id (the edit goes out
-- after everything queued before it in that chat).
CREATE OR REPLACE FUNCTION wa.edit_message(
    session text,
    chat text,
    message_id text,
    body text,
    idempotency_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE sql AS $$
    SELECT j.id FROM wa.enqueue(edit_message.session, 'send',
        jsonb_build_object('type', 'edit', 'to', edit_message.chat, 'message_id', edit_message.message_id,
                           'text', edit_message.body),
        idempotency_key => edit_message.idempotency_key) j
$$;

-- Deletes a message this session sent to chat for everyone. Returns the job id.
CREATE OR REPLACE FUNCTION wa.revoke_message(
    session text,
    chat text,
    message_id text,
    idempotency_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE sql AS $$
    SELECT j.id FROM wa.enqueue(revoke_message.session, 'send',
        jsonb_build_object('type', 'revoke', 'to', revoke_message.chat, 'message_id', revoke_message.message_id),
        idempotency_key => revoke_message.idempotency_key) j
$$;

-- Sends read receipts (blue ticks) for messages this session received in chat (1 to
-- 1000 ids from wa.inbox; WA013 for any other). Their wa.inbox rows get read_at once
-- the receipts are out. Returns the job id.
CREATE OR REPLACE FUNCTION wa.mark_read(
    session text,
    chat text,
    message_ids text[],
    idempotency_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE sql AS $$
    SELECT j.id FROM wa.enqueue(mark_read.session, 'mark_read',
        jsonb_build_object('chat', mark_read.chat, 'message_ids', to_jsonb(mark_read.message_ids)),
        idempotency_key => mark_read.idempotency_key) j
$$;

-- Shows chat that this number is typing (composing), recording a voice note
-- (recording) or has stopped (paused). Dropped, not shown late, when the session cannot
-- send it within a minute. Returns the job id.
CREATE OR REPLACE FUNCTION wa.send_presence(
    session text,
    chat text,
    state text)
RETURNS bigint
LANGUAGE sql AS $$
    SELECT j.id FROM wa.enqueue(send_presence.session, 'presence',
        jsonb_build_object('chat', send_presence.chat, 'state', send_presence.state), priority => 50) j
$$;

-- Asks WhatsApp which of 1 to 1000 phone numbers have an account. The answers fill
-- wa.contacts (phone, jid, lid, on_whatsapp, is_business, checked_at) when the job
-- completes; its result counts them. Returns the job id.
CREATE OR REPLACE FUNCTION wa.check_numbers(
    session text,
    phones text[],
    idempotency_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE sql AS $$
    SELECT j.id FROM wa.enqueue(check_numbers.session, 'check_numbers',
        jsonb_build_object('phones', to_jsonb(check_numbers.phones)),
        idempotency_key => check_numbers.idempotency_key) j
$$;

-- Creates a group named subject (1 to 100 characters) of this number, its admin, and
-- 1 to 1023 participants (phone numbers). When the job completes, its result names the
-- group ({"group": "…@g.us", …}) and wa.groups has it. Returns the job id. A create the
-- server did not answer is not retried (it may have made the group): the job fails
-- saying so, and wa.groups shows whether it exists.
CREATE OR REPLACE FUNCTION wa.create_group(
    session text,
    subject text,
    participants text[],
    idempotency_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE sql AS $$
    SELECT j.id FROM wa.enqueue(create_group.session, 'group',
        jsonb_build_object('action', 'create', 'subject', create_group.subject,
                           'participants', to_jsonb(create_group.participants)),
        idempotency_key => create_group.idempotency_key) j
$$;

-- Adds, removes, promotes (to admin) or demotes 1 to 1023 participants (phone numbers)
-- of a group this number is an admin of. The job's result lists who changed and who
-- was refused, each with the server's code and what to do ({"changed": [...],
-- "refused": [{"participant", "error", "reason"}]}); wa.groups shows the group after.
-- Returns the job id.
CREATE OR REPLACE FUNCTION wa.group_participants(
    session text,
    group_jid text,
    action text,
    participants text[],
    idempotency_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    IF action IS NULL OR action NOT IN ('add', 'remove', 'promote', 'demote') THEN
        RAISE EXCEPTION USING ERRCODE = 'WA006',
            MESSAGE = format('action: %s is not a participant action (accepted: add, remove, promote, demote)', wa._q(action));
    END IF;
    RETURN (SELECT j.id FROM wa.enqueue(group_participants.session, 'group',
        jsonb_build_object('action', action, 'group', group_jid, 'participants', to_jsonb(participants)),
        idempotency_key => group_participants.idempotency_key) j);
END
$$;

-- Fetches the invite link of a group this number is an admin of: the job's result has
-- it ({"invite_link": "https://chat.whatsapp.com/…"}), and so does wa.groups.invite_link.
-- Returns the job id.
CREATE OR REPLACE FUNCTION wa.group_invite_link(session text, group_jid text)
RETURNS bigint
LANGUAGE sql AS $$
    SELECT j.id FROM wa.enqueue(group_invite_link.session, 'group',
        jsonb_build_object('action', 'invite_link', 'group', group_invite_link.group_jid)) j
$$;

-- Leaves a group; its wa.groups row stays, with left_at. Returns the job id.
CREATE OR REPLACE FUNCTION wa.leave_group(session text, group_jid text)
RETURNS bigint
LANGUAGE sql AS $$
    SELECT j.id FROM wa.enqueue(leave_group.session, 'group',
        jsonb_build_object('action', 'leave', 'group', leave_group.group_jid)) j
$$;

-- Downloads the file of a message this session received into wa.media, or into the
-- object store when wa.policy.media_download = 's3' (as the worker does for every file
-- when the policy is 'postgres' or 's3'). WA013 for a row that
-- is not this session's or has no file. Returns the job id.
CREATE OR REPLACE FUNCTION wa.download_media(session text, inbox_id bigint)
RETURNS bigint
LANGUAGE sql AS $$
    SELECT j.id FROM wa.enqueue(download_media.session, 'media_download',
        jsonb_build_object('inbox_id', download_media.inbox_id)) j
$$;

-- Restarts a session's connection now (resets its backoff). Returns the job id.
CREATE OR REPLACE FUNCTION wa.reconnect(session text)
RETURNS bigint
LANGUAGE sql AS $$
    SELECT (wa.enqueue(session, 'reconnect', '{}', priority => 0)).id
$$;

-- Closes a session cleanly: ends the socket, optionally logs the device out of the
-- phone, optionally wipes its stored keys; then the session is stopped (desired =
-- stopped) until wa.start_session. Runs before any queued send. Returns the job id.
CREATE OR REPLACE FUNCTION wa.close_session(
    session text,
    reason text DEFAULT NULL,
    logout boolean DEFAULT false,
    wipe boolean DEFAULT false)
RETURNS bigint
LANGUAGE sql AS $$
    SELECT (wa.enqueue(session, 'close_session',
        jsonb_build_object('reason', coalesce(reason, 'closed by request'),
                           'logout', coalesce(logout, false), 'wipe', coalesce(wipe, false)),
        priority => 0)).id
$$;

-- Cancels a job. A job that has not started is cancelled at once and will never run
-- (returns 'cancelled'). A running job cannot be taken back from the network: its worker
-- is asked to drop it if it has not started it yet (returns 'running'). Raises WA007 for
-- an unknown job and WA008 for a job that already completed or died.
CREATE OR REPLACE FUNCTION wa.cancel_job(job bigint)
RETURNS wa.job_state
LANGUAGE plpgsql AS $$
DECLARE
    row wa.jobs;
BEGIN
    -- Through wa.jobs, whose trigger locks the row and reads it again: a job that moved
    -- meanwhile (claimed, finished) is not updated, or (an app's cancel of a job just
    -- claimed) comes back running with its worker asked to drop it; either way it is
    -- looked at again.
    FOR attempt IN 1..10 LOOP
        UPDATE wa.jobs j
           SET state = 'cancelled', finished_at = now(),
               delivery = CASE WHEN j.kind = 'send' THEN 'failed'::wa.delivery_status END,
               result = jsonb_build_object('cancelled', true)
         WHERE j.id = job AND j.state IN ('available', 'scheduled', 'retryable')
        RETURNING j.* INTO row;
        IF FOUND THEN
            RETURN row.state;
        END IF;
        SELECT j.* INTO row FROM wa.jobs j WHERE j.id = job;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'WA007', MESSAGE = format('job: no job with id %s', job);
        END IF;
        CASE row.state
        WHEN 'cancelled' THEN
            RETURN row.state;
        WHEN 'running' THEN
            UPDATE wa.jobs j SET cancel_requested_at = now() WHERE j.id = job AND j.state = 'running'
            RETURNING j.* INTO row;
            IF FOUND THEN
                PERFORM pg_notify('wa_job_cancel', json_build_object('job', job, 'session', row.session_id)::text);
                RETURN row.state;
            END IF;
        WHEN 'available', 'scheduled', 'retryable' THEN
            NULL;  -- moved back since the UPDATE above: again
        ELSE
            RAISE EXCEPTION USING ERRCODE = 'WA008',
                MESSAGE = format('job: job %s is already %s and cannot be cancelled', job, row.state);
        END CASE;
    END LOOP;
    RAISE EXCEPTION USING ERRCODE = '40001',
        MESSAGE = format('job: job %s changed state ten times while being cancelled; try again', job);
END
$$;

-- Runs a dead, cancelled, retryable or scheduled job again now, with at least one more
-- attempt allowed. Raises WA007 for an unknown job, WA008 for a running or completed one
-- (retrying a completed send would send the message twice).
CREATE OR REPLACE FUNCTION wa.retry_job(job bigint)
RETURNS wa.job_state
LANGUAGE plpgsql AS $$
DECLARE
    row wa.jobs;
BEGIN
    UPDATE wa.jobs j
       SET state = 'available', run_at = now(), finished_at = NULL, result = NULL,
           cancel_requested_at = NULL,
           max_attempts = greatest(j.max_attempts, least(j.attempts + 1, 1000)),
           delivery = CASE WHEN j.kind = 'send' THEN 'queued'::wa.delivery_status END
     WHERE j.id = job AND j.state IN ('dead', 'cancelled', 'retryable', 'scheduled')
       AND j.attempts < 1000
    RETURNING j.* INTO row;
    IF FOUND THEN
        PERFORM pg_notify('wa_jobs', json_build_object('sessions', json_build_array(coalesce(row.session_id, '')))::text);
        RETURN row.state;
    END IF;
    SELECT j.* INTO row FROM wa.jobs j WHERE j.id = job;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'WA007', MESSAGE = format('job: no job with id %s', job);
    ELSIF row.state = 'available' THEN
        RETURN row.state;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'WA008',
        MESSAGE = format('job: job %s is %s and cannot be retried', job, row.state);
END
$$;

-- The filter wa.retry_jobs and wa.cancel_jobs share: kind known (WA004), state one the
-- operation moves (WA005), max_jobs 1 to 100000 (WA005).
CREATE OR REPLACE FUNCTION wa._check_job_filter(kind text, state wa.job_state, max_jobs integer, movable wa.job_state[], verb text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF kind IS NOT NULL AND NOT kind = ANY (enum_range(NULL::wa.job_kind)::text[]) THEN
        RAISE EXCEPTION USING ERRCODE = 'WA004',
            MESSAGE = format('kind: unknown job kind %s (accepted: %s)', wa._q(kind), array_to_string(enum_range(NULL::wa.job_kind)::text[], ', '));
    END IF;
    IF state IS NOT NULL AND NOT state = ANY (movable) THEN
        RAISE EXCEPTION USING ERRCODE = 'WA005',
            MESSAGE = format('state: %s jobs cannot be %s (%s)', state, verb, array_to_string(movable::text[], ', '));
    END IF;
    IF max_jobs IS NULL OR max_jobs NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION USING ERRCODE = 'WA005',
            MESSAGE = format('max_jobs: %s is out of range (1 to 100000)', coalesce(max_jobs::text, 'NULL'));
    END IF;
END
$$;

-- Runs again, at once, every job the filter picks, as wa.retry_job runs one: by default
-- the dead ones (of one session, one kind, whose last error contains a text, queued
-- before a time), at most max_jobs, oldest first. One statement: all or none. Returns
-- how many. Completed and running jobs are never picked (a completed send would go twice).
CREATE OR REPLACE FUNCTION wa.retry_jobs(
    session text DEFAULT NULL,
    kind text DEFAULT NULL,
    state wa.job_state DEFAULT 'dead',
    error_contains text DEFAULT NULL,
    created_before timestamptz DEFAULT NULL,
    max_jobs integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
    sessions text[];
BEGIN
    PERFORM wa._check_job_filter(retry_jobs.kind, coalesce(retry_jobs.state, 'dead'), retry_jobs.max_jobs,
                                 '{dead,cancelled,retryable,scheduled}', 'retried');
    WITH picked AS (
        SELECT j.id FROM wa.jobs j
         WHERE j.state = coalesce(retry_jobs.state, 'dead')
           AND (retry_jobs.session IS NULL OR j.session_id = retry_jobs.session)
           AND (retry_jobs.kind IS NULL OR j.kind::text = retry_jobs.kind)
           AND (retry_jobs.error_contains IS NULL
                OR strpos(lower(j.errors->-1->>'error'), lower(retry_jobs.error_contains)) > 0)
           AND (retry_jobs.created_before IS NULL OR j.created_at < retry_jobs.created_before)
           AND j.attempts < 1000
         ORDER BY j.id
         LIMIT retry_jobs.max_jobs),
    moved AS (
        UPDATE wa.jobs j
           SET state = 'available', run_at = now(), finished_at = NULL, result = NULL,
               cancel_requested_at = NULL,
               max_attempts = greatest(j.max_attempts, least(j.attempts + 1, 1000)),
               delivery = CASE WHEN j.kind = 'send' THEN 'queued'::wa.delivery_status END
          FROM picked p WHERE j.id = p.id
        RETURNING coalesce(j.session_id, '') AS session_id)
    SELECT count(*), array_agg(DISTINCT m.session_id) INTO n, sessions FROM moved m;
    IF n > 0 THEN
        -- A payload holds 8000 bytes: past 100 sessions, null tells workers to look at all.
        PERFORM pg_notify('wa_jobs', json_build_object(
            'sessions', CASE WHEN cardinality(sessions) <= 100 THEN to_json(sessions) END)::text);
    END IF;
    RETURN n;
END
$$;

-- Cancels every job the filter picks, as wa.cancel_job cancels one: queued ones at once,
-- running ones at their worker's next check. Without a state, every job that can be
-- cancelled (available, scheduled, retryable, running). Some filter is required: a bare
-- call would cancel the whole queue (WA005). Returns how many.
CREATE OR REPLACE FUNCTION wa.cancel_jobs(
    session text DEFAULT NULL,
    kind text DEFAULT NULL,
    state wa.job_state DEFAULT NULL,
    error_contains text DEFAULT NULL,
    created_before timestamptz DEFAULT NULL,
    max_jobs integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    cancelled integer;
    running jsonb;
    r jsonb;
BEGIN
    PERFORM wa._check_job_filter(cancel_jobs.kind, cancel_jobs.state, cancel_jobs.max_jobs,
                                 '{available,scheduled,retryable,running}', 'cancelled');
    IF num_nulls(cancel_jobs.session, cancel_jobs.kind, cancel_jobs.state, cancel_jobs.error_contains, cancel_jobs.created_before) = 5 THEN
        RAISE EXCEPTION USING ERRCODE = 'WA005',
            MESSAGE = 'filter: name a session, kind, state, error_contains or created_before',
            HINT = 'A call without one would cancel every job of every session; wa.cancel_jobs(state => ''available'') says so on purpose.';
    END IF;
    WITH picked AS (
        SELECT j.id, j.state FROM wa.jobs j
         WHERE j.state = ANY (CASE WHEN cancel_jobs.state IS NULL
                                   THEN '{available,scheduled,retryable,running}'::wa.job_state[]
                                   ELSE ARRAY[cancel_jobs.state] END)
           AND (cancel_jobs.session IS NULL OR j.session_id = cancel_jobs.session)
           AND (cancel_jobs.kind IS NULL OR j.kind::text = cancel_jobs.kind)
           AND (cancel_jobs.error_contains IS NULL
                OR strpos(lower(j.errors->-1->>'error'), lower(cancel_jobs.error_contains)) > 0)
           AND (cancel_jobs.created_before IS NULL OR j.created_at < cancel_jobs.created_before)
         ORDER BY j.id
         LIMIT cancel_jobs.max_jobs),
    queued AS (
        UPDATE wa.jobs j
           SET state = 'cancelled', finished_at = now(),
               delivery = CASE WHEN j.kind = 'send' THEN 'failed'::wa.delivery_status END,
               result = jsonb_build_object('cancelled', true)
          FROM picked p WHERE j.id = p.id AND p.state <> 'running'
        RETURNING j.id),
    asked AS (
        UPDATE wa.jobs j SET cancel_requested_at = now()
          FROM picked p WHERE j.id = p.id AND p.state = 'running'
        RETURNING j.id, j.session_id)
    SELECT (SELECT count(*) FROM queued),
           (SELECT coalesce(jsonb_agg(jsonb_build_object('job', a.id, 'session', a.session_id)), '[]') FROM asked a)
      INTO cancelled, running;
    -- As wa.cancel_job: the worker running each one re-reads its row.
    FOR r IN SELECT * FROM jsonb_array_elements(running) LOOP
        PERFORM pg_notify('wa_job_cancel', r::text);
    END LOOP;
    RETURN cancelled + jsonb_array_length(running);
END
$$;
