-- Worker processes register here and heartbeat. A worker whose heartbeat is older than
-- the lease TTL is dead for everyone else: its sessions and jobs are taken over.
CREATE TABLE wa.workers (
    id           uuid PRIMARY KEY,
    host         text NOT NULL,
    pid          integer NOT NULL,
    version      text NOT NULL,
    max_sessions integer NOT NULL CHECK (max_sessions > 0),
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    -- Set when a graceful shutdown begins, so the others stop counting it when they
    -- compute their fair share and pick its sessions up at once.
    stopping_at  timestamptz
);

CREATE TABLE wa.sessions (
    -- The tenant's own id: readable in logs and URLs, so restricted to a safe alphabet.
    id                text PRIMARY KEY
                      CONSTRAINT session_id_format CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$'),
    desired           wa.desired_state NOT NULL DEFAULT 'running',
    status            wa.session_status NOT NULL DEFAULT 'stopped',
    status_reason     text,
    status_changed_at timestamptz NOT NULL DEFAULT now(),
    -- Until when a ban or an open circuit holds the session back.
    status_until      timestamptz,

    -- Lease: one live owner at a time. epoch is the fencing token: bumped on every
    -- takeover, checked by every write a worker makes on behalf of the session.
    owner_id          uuid,
    lease_expires_at  timestamptz,
    epoch             bigint NOT NULL DEFAULT 0 CHECK (epoch >= 0),

    -- Linking by pairing code instead of QR when set (digits only, country code first).
    pair_phone        text CONSTRAINT pair_phone_format CHECK (pair_phone ~ '^[0-9]{7,15}$'),
    phone             text,
    jid               text,
    lid               text,
    push_name         text,

    last_error        text,
    last_error_at     timestamptz,
    -- Decryption-failure and connection-failure counters live here, not in memory, so a
    -- restart does not hide a storm. Reset when the session connects.
    bad_mac_count        integer NOT NULL DEFAULT 0 CHECK (bad_mac_count >= 0),
    bad_decrypt_count    integer NOT NULL DEFAULT 0 CHECK (bad_decrypt_count >= 0),
    failed_connect_count integer NOT NULL DEFAULT 0 CHECK (failed_connect_count >= 0),

    metadata          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    connected_at      timestamptz,

    -- A dead worker's row may be reaped; its sessions become claimable at once (a lease
    -- without an owner counts for nothing).
    CONSTRAINT sessions_owner_fk FOREIGN KEY (owner_id) REFERENCES wa.workers (id)
        ON DELETE SET NULL
);

-- The lease manager's claim: sessions that should run whose lease is missing or expired.
CREATE INDEX sessions_claimable ON wa.sessions (lease_expires_at NULLS FIRST) WHERE desired = 'running';
CREATE INDEX sessions_by_owner ON wa.sessions (owner_id) WHERE owner_id IS NOT NULL;

-- Session policies shared by every worker (the seeds' limits), editable with SQL so all
-- workers and the health view agree on them. Exactly one row.
CREATE TABLE wa.policy (
    singleton             boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    bad_mac_limit         integer NOT NULL DEFAULT 3 CHECK (bad_mac_limit > 0),
    bad_decrypt_limit     integer NOT NULL DEFAULT 5 CHECK (bad_decrypt_limit > 0),
    connect_failure_limit integer NOT NULL DEFAULT 5 CHECK (connect_failure_limit > 0),
    circuit_cooldown      interval NOT NULL DEFAULT '5 minutes' CHECK (circuit_cooldown > '0'),
    max_text_chars        integer NOT NULL DEFAULT 65536 CHECK (max_text_chars BETWEEN 1 AND 65536)
);
INSERT INTO wa.policy DEFAULT VALUES;
