-- Cron-like schedules for maintenance, editable with SQL. Every worker runs every
-- enabled schedule (apalis-cron); a tick becomes one maintenance job through the job
-- table's idempotency key 'schedule:<name>:<tick>', so however many workers fire it, it
-- runs once, and as long as one worker is alive no tick is skipped.
CREATE TABLE wa.schedules (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    -- Standard 5-field cron (min hour dom mon dow), or 6/7 fields with seconds (and
    -- year) first; evaluated in UTC.
    cron        text NOT NULL CHECK (cron ~ '^\s*\S+(\s+\S+){4,6}\s*$'),
    -- The maintenance task the tick enqueues (see README "Maintenance").
    task        text NOT NULL CHECK (task ~ '^[a-z_]{1,64}$'),
    payload     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(payload) = 'object'),
    enabled     boolean NOT NULL DEFAULT true,
    last_run_at timestamptz,
    last_job_id bigint,
    next_run_at timestamptz,
    -- Why the workers cannot run this schedule (a cron expression they cannot parse).
    last_error  text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO wa.schedules (name, cron, task) VALUES
    ('retention',    '*/10 * * * *', 'retention'),
    ('sweep_keys',   '*/15 * * * *', 'sweep_keys'),
    ('reap_workers', '17 * * * *',   'reap_workers');
