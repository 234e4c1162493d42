-- One table for every job kind, by choice:
-- * a session's control jobs (close, reconnect, key cleanup) must be ordered against its
--   sends, and one claim statement over one set of indexes orders them (lane, below);
-- * a send job IS the outbound message: its WhatsApp message id (fixed at enqueue) and
--   its delivery status live on the row, so completing a send on the server ack is one
--   row write, and an app reads a message's fate from one place (view wa.outbound);
-- * one retention sweep, one set of partial indexes to keep lean under a backlog.
CREATE TABLE wa.jobs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- NULL only for maintenance jobs, which belong to no session and run on any worker.
    session_id      text REFERENCES wa.sessions (id) ON DELETE CASCADE,
    kind            wa.job_kind NOT NULL,
    -- Control jobs (lane 0) are claimed before sends (lane 1), whatever their priority.
    lane            smallint NOT NULL GENERATED ALWAYS AS (CASE WHEN kind = 'send' THEN 1 ELSE 0 END) STORED,
    payload         jsonb NOT NULL DEFAULT '{}',
    state           wa.job_state NOT NULL DEFAULT 'available',
    -- Lower runs first within a lane.
    priority        smallint NOT NULL DEFAULT 100,
    run_at          timestamptz NOT NULL DEFAULT now(),
    attempts        smallint NOT NULL DEFAULT 0,
    max_attempts    smallint NOT NULL DEFAULT 10,
    -- One entry per failed attempt: {"attempt", "at", "error"}; kept when the job dies.
    errors          jsonb NOT NULL DEFAULT '[]',
    idempotency_key text,
    result          jsonb,

    -- Fencing: the worker that claimed the job and the session epoch it held then. A
    -- completion is accepted only while that worker still holds that epoch.
    worker_id       uuid,
    epoch           bigint,
    cancel_requested_at timestamptz,

    -- Sends only. chat is the normalized recipient JID: the FIFO lane of the message.
    chat            text,
    message_id      text,
    delivery        wa.delivery_status,
    sent_at         timestamptz,
    delivered_at    timestamptz,
    read_at         timestamptz,

    created_at      timestamptz NOT NULL DEFAULT now(),
    attempted_at    timestamptz,
    finished_at     timestamptz,

    CONSTRAINT priority_range CHECK (priority BETWEEN 0 AND 1000),
    CONSTRAINT max_attempts_range CHECK (max_attempts BETWEEN 1 AND 1000),
    CONSTRAINT attempts_range CHECK (attempts >= 0 AND attempts <= max_attempts),
    CONSTRAINT payload_is_object CHECK (jsonb_typeof(payload) = 'object'),
    CONSTRAINT errors_is_array CHECK (jsonb_typeof(errors) = 'array'),
    CONSTRAINT idempotency_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    CONSTRAINT maintenance_has_no_session CHECK ((kind = 'maintenance') = (session_id IS NULL)),
    CONSTRAINT send_has_message CHECK (
        (kind = 'send') = (chat IS NOT NULL AND message_id IS NOT NULL AND delivery IS NOT NULL)),
    CONSTRAINT running_has_worker CHECK (state <> 'running' OR worker_id IS NOT NULL),
    CONSTRAINT finished_when_final CHECK (
        (state IN ('completed', 'dead', 'cancelled')) = (finished_at IS NOT NULL))
);

-- The claim: per session, control lane first, then priority, then FIFO by id.
CREATE INDEX jobs_claim ON wa.jobs (session_id, lane, priority, id) WHERE state = 'available';
-- Per-chat FIFO: a send is claimable only when no earlier unfinished send of its chat is
-- outside the claimed batch. Small: only unfinished sends.
CREATE INDEX jobs_chat_fifo ON wa.jobs (session_id, chat, id)
    WHERE state IN ('available', 'running', 'retryable') AND chat IS NOT NULL;
-- Promotion of scheduled and retryable jobs whose time has come.
CREATE INDEX jobs_due ON wa.jobs (run_at) WHERE state IN ('scheduled', 'retryable');
-- Recovery of jobs held by a worker that died or lost the session.
CREATE INDEX jobs_running ON wa.jobs (session_id, worker_id) WHERE state = 'running';
-- Retention sweeps.
CREATE INDEX jobs_finished ON wa.jobs (finished_at) WHERE finished_at IS NOT NULL;
-- Idempotent enqueue: the same key twice in a session gives the first job back.
CREATE UNIQUE INDEX jobs_idempotency ON wa.jobs (session_id, idempotency_key) NULLS NOT DISTINCT
    WHERE idempotency_key IS NOT NULL;
-- Receipts find their message; a message id is never reused within a session.
CREATE UNIQUE INDEX jobs_message ON wa.jobs (session_id, message_id) WHERE message_id IS NOT NULL;
