-- The role apps use (grant it to the login role of each app: GRANT pgwa_app TO myapp).
-- It can call the SQL API, enqueue with plain INSERTs, and read statuses, inbox and
-- outbound rows. It cannot read the auth documents or any key material (wa.auth_state,
-- wa.signal_*, wa.app_state_*, wa.sent_messages, ...): those tables are granted to no
-- one but their owner, the role that runs `pgwa migrate` and the workers.
DO $$
BEGIN
    CREATE ROLE pgwa_app NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- already there (roles are cluster-wide; several databases may share it)
END
$$;

GRANT USAGE ON SCHEMA wa TO pgwa_app;

-- Sessions: add, start, stop, remove through the API, read all. Only the columns the
-- API writes are updatable: an app cannot touch owner, lease or epoch (fencing).
GRANT SELECT, INSERT, DELETE ON wa.sessions TO pgwa_app;
GRANT UPDATE (desired, status, status_until, failed_connect_count, pair_phone, metadata) ON wa.sessions TO pgwa_app;
-- Jobs: enqueue (API or plain INSERT), cancel and retry, read results. The worker's
-- bookkeeping columns (worker_id, epoch, attempts, errors) are not updatable.
GRANT SELECT, INSERT ON wa.jobs TO pgwa_app;
GRANT UPDATE (state, run_at, finished_at, delivery, result, cancel_requested_at, max_attempts) ON wa.jobs TO pgwa_app;
GRANT SELECT ON wa.inbox, wa.policy, wa.workers, wa.schedules TO pgwa_app;
GRANT SELECT ON wa.outbound, wa.session_health, wa.queue_stats TO pgwa_app;

GRANT EXECUTE ON FUNCTION
    wa.add_session(text, text, jsonb, boolean),
    wa.start_session(text),
    wa.stop_session(text),
    wa.remove_session(text),
    wa.enqueue(text, text, jsonb, timestamptz, integer, text, integer),
    wa.send_text(text, text, text, text, timestamptz, integer, text, integer),
    wa.send_reaction(text, text, text, text, text),
    wa.send_media(text, text, text, bytea, text, text, text, text, text, text),
    wa.reconnect(text),
    wa.close_session(text, text, boolean, boolean),
    wa.cancel_job(bigint),
    wa.retry_job(bigint),
    wa.normalize_jid(text, text),
    wa.new_message_id()
TO pgwa_app;
