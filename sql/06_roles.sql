-- The role apps use (grant it to the login role of each app: GRANT pgwa_app TO myapp).
-- It can call the SQL API, enqueue with plain INSERTs, and read statuses, inbox and
-- outbound rows. It cannot read the auth documents or any key material (wa.auth_state,
-- wa.signal_*, wa.app_state_*, wa.sent_messages, ...): those tables are granted to no
-- one but their owner, the role that runs `pgwa migrate` and the workers.
-- pgwa_api holds the grants; pgwa_app (the default tenant's role) and every tenant's
-- role are members of it. Which rows a member sees is its tenant's business
-- (sql/07_tenants.sql): pgwa_api itself belongs to no tenant and sees none.
DO $$
BEGIN
    CREATE ROLE pgwa_api NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- already there (roles are cluster-wide; several databases may share it)
END
$$;
DO $$
BEGIN
    CREATE ROLE pgwa_app NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
GRANT pgwa_api TO pgwa_app;

-- Start from nothing on every re-apply, so a grant removed here is removed from existing
-- databases too. Functions are executable by PUBLIC unless revoked: the internal ones
-- (wa._*) must not be callable by apps.
REVOKE ALL ON ALL TABLES IN SCHEMA wa FROM pgwa_api, pgwa_app, PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA wa FROM pgwa_api, pgwa_app, PUBLIC;
ALTER DEFAULT PRIVILEGES IN SCHEMA wa REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

GRANT USAGE ON SCHEMA wa TO pgwa_api;

-- Sessions: add (API or plain INSERT of these columns, checked by sessions_validate),
-- start and stop (desired; setting it to running is wa.start_session, see
-- sessions_desired), remove, read all. Status, lease, epoch, identity and codes are the
-- workers' alone: an app cannot forge a connected session or ban one until infinity.
GRANT SELECT, DELETE ON wa.sessions TO pgwa_api;
GRANT INSERT (id, pair_phone, metadata, desired) ON wa.sessions TO pgwa_api;
GRANT UPDATE (desired, pair_phone, metadata) ON wa.sessions TO pgwa_api;
-- Jobs: enqueue (API or plain INSERT of the request's columns; the id, the state and the
-- bookkeeping are not insertable), cancel and retry (the columns wa.cancel_job and
-- wa.retry_job write, which run as the app; wa.jobs' INSTEAD OF trigger lets them move a
-- job only as those functions do), read results. wa.jobs reads and inserts into
-- wa.job_rows as the app, so the app needs the same rights there; never UPDATE, which
-- would pass the view's trigger by.
GRANT SELECT ON wa.jobs, wa.job_rows TO pgwa_api;
GRANT INSERT (session_id, kind, payload, run_at, priority, idempotency_key, max_attempts, chat, message_id) ON wa.jobs, wa.job_rows TO pgwa_api;
REVOKE UPDATE ON wa.job_rows FROM pgwa_api;
GRANT UPDATE (state, run_at, finished_at, delivery, result, cancel_requested_at, max_attempts) ON wa.jobs TO pgwa_api;
GRANT SELECT ON wa.inbox, wa.policy, wa.workers, wa.schedules, wa.contacts, wa.chat_states, wa.calls, wa.media, wa.groups TO pgwa_api;
GRANT SELECT ON wa.outbound, wa.session_health, wa.queue_stats, wa.poll_results TO pgwa_api;

GRANT EXECUTE ON FUNCTION
    wa.add_session(text, text, jsonb, boolean),
    wa.start_session(text),
    wa.stop_session(text),
    wa.remove_session(text),
    wa.enqueue(text, text, jsonb, timestamptz, integer, text, integer),
    wa.send_text(text, text, text, text, timestamptz, integer, text, integer, text[]),
    wa.send_reaction(text, text, text, text, text),
    wa.send_media(text, text, text, bytea, text, text, text, text, text, text, integer, bytea),
    wa.send_location(text, text, double precision, double precision, text, text, text, text),
    wa.send_contact(text, text, text, text[], text, text),
    wa.send_poll(text, text, text, text[], integer, text),
    wa.edit_message(text, text, text, text, text),
    wa.revoke_message(text, text, text, text),
    wa.mark_read(text, text, text[], text),
    wa.send_presence(text, text, text),
    wa.check_numbers(text, text[], text),
    wa.create_group(text, text, text[], text),
    wa.group_participants(text, text, text, text[], text),
    wa.group_invite_link(text, text),
    wa.leave_group(text, text),
    wa.download_media(text, bigint),
    wa.reconnect(text),
    wa.connect_link(text, interval),
    wa.close_session(text, text, boolean, boolean),
    wa.cancel_job(bigint),
    wa.retry_job(bigint),
    wa.retry_jobs(text, text, wa.job_state, text, timestamptz, integer),
    wa.cancel_jobs(text, text, wa.job_state, text, timestamptz, integer),
    wa._check_job_filter(text, wa.job_state, integer, wa.job_state[], text),
    wa.normalize_jid(text, text),
    wa.new_message_id(),
    -- Called by the checks above, which run as the app.
    wa._q(text),
    wa._json_int(jsonb, bigint, bigint),
    wa._is_message_id(text),
    -- Read by wa.queue_stats, which runs as the app.
    wa._job_in_states(text[], wa.job_state, smallint, jsonb),
    wa._mentions(jsonb),
    wa._check_location(jsonb),
    wa._check_contact(jsonb),
    wa._check_poll(jsonb),
    wa._check_media_kind(text, jsonb),
    wa._check_change(text, text, text, jsonb),
    wa._check_mark_read(text, text, jsonb),
    wa._check_chat_state(jsonb),
    wa._check_group(jsonb),
    wa._phone_list(jsonb, text, integer),
    wa._caller_is_worker(),
    wa._same_request(wa.jobs, wa.job_kind),
    wa._job_by_key(text, text),
    wa._session_or_raise(text)  -- locks a row the app may update anyway
TO pgwa_api;
