-- Schema variant (`pgwa bench --schema-variant`, `pgwa bench-outcomes`): wa.job_rows with
-- the row machinery it had before migration 0032, when it was the table wa.jobs: two
-- BEFORE ROW UPDATE triggers whose WHEN skips the workers' statements (jobs_app_guard
-- and jobs_webhook_retry, here with a function that does nothing: what they cost a claim
-- or a completion is the row fetch and lock Postgres makes before evaluating their WHEN)
-- and the six CHECK constraints that re-stated the insert trigger's validation. Measures
-- what 0032 saved the drain against the same build in the same hour; only a benchmark's
-- scratch database gets it.
CREATE FUNCTION wa._bench_noop_before() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
DO $$
BEGIN
    EXECUTE format(
        'CREATE TRIGGER jobs_app_guard BEFORE UPDATE ON wa.job_rows FOR EACH ROW
           WHEN (NOT pg_has_role(%L::name, ''USAGE'')) EXECUTE FUNCTION wa._bench_noop_before()',
        (SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'wa'));
END
$$;
CREATE TRIGGER jobs_webhook_retry BEFORE UPDATE OF state ON wa.job_rows
    FOR EACH ROW WHEN (OLD.kind = 'webhook' AND NEW.state = 'available' AND OLD.state IN ('dead', 'cancelled', 'scheduled')
                       AND NEW.chat IS NOT DISTINCT FROM OLD.chat)
    EXECUTE FUNCTION wa._bench_noop_before();
ALTER TABLE wa.job_rows
    ADD CONSTRAINT priority_range CHECK (priority BETWEEN 0 AND 1000),
    ADD CONSTRAINT max_attempts_range CHECK (max_attempts BETWEEN 1 AND 1000),
    ADD CONSTRAINT payload_is_object CHECK (jsonb_typeof(payload) = 'object'),
    ADD CONSTRAINT idempotency_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    ADD CONSTRAINT sessionless_kinds CHECK ((kind IN ('maintenance', 'webhook')) = (session_id IS NULL)),
    ADD CONSTRAINT send_has_message CHECK (
        (kind = 'send') = (chat IS NOT NULL AND message_id IS NOT NULL AND delivery IS NOT NULL));
