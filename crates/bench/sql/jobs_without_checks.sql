-- Schema variant (`pgwa bench --schema-variant`): wa.jobs without its CHECK constraints.
-- Postgres evaluates every one on every UPDATE, whatever columns it changed, so each
-- claim and each completion pays for ten checks of what the insert trigger
-- (wa._jobs_before_insert) already validated. Measures what that costs the drain; only
-- a benchmark's scratch database gets it.
ALTER TABLE wa.jobs
    DROP CONSTRAINT attempts_range,
    DROP CONSTRAINT errors_is_array,
    DROP CONSTRAINT finished_when_final,
    DROP CONSTRAINT idempotency_key_length,
    DROP CONSTRAINT max_attempts_range,
    DROP CONSTRAINT payload_is_object,
    DROP CONSTRAINT priority_range,
    DROP CONSTRAINT running_has_worker,
    DROP CONSTRAINT send_has_message,
    DROP CONSTRAINT sessionless_kinds;
