-- Schema variant (`pgwa bench --schema-variant`): wa.job_rows without its CHECK
-- constraints: the four left after migration 0032 and 0034's dead_has_no_result. They
-- guard the workers' state machine (attempts within max_attempts, a running job has a
-- worker, finished_at set exactly in the final states, errors an array, a dead job has
-- no result); Postgres evaluates every one on every UPDATE, whatever columns it changed.
-- Measures what they cost the drain; only a benchmark's scratch database gets it.
ALTER TABLE wa.job_rows
    DROP CONSTRAINT attempts_range,
    DROP CONSTRAINT errors_is_array,
    DROP CONSTRAINT finished_when_final,
    DROP CONSTRAINT running_has_worker,
    DROP CONSTRAINT IF EXISTS dead_has_no_result;
