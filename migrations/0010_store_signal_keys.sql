-- whatsapp-rust's Signal state (SignalStore), one set of rows per session, so any worker
-- can continue a session's ratchets after a crash. Records are the opaque protobuf bytes
-- whatsapp-rust serializes; only the keys are columns, because they are what we look up.
-- Every table cascades from wa.sessions: deleting a session deletes its keys.

-- Fencing in one statement: the store's writes lock the session row FOR SHARE and check
-- owner and epoch in the same statement, so a takeover (which updates the row) either
-- waits for an in-flight write or makes it fail; a paused worker can never write after
-- losing its lease. This sequence orders "latest written" lookups (sync keys, LID
-- mappings) without trusting wall clocks of different workers.
CREATE SEQUENCE wa.store_write_seq;

CREATE TABLE wa.signal_identities (
    session_id text NOT NULL REFERENCES wa.sessions (id) ON DELETE CASCADE,
    address    text NOT NULL,
    identity   bytea NOT NULL CHECK (length(identity) = 32),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, address)
);

CREATE TABLE wa.signal_sessions (
    session_id text NOT NULL REFERENCES wa.sessions (id) ON DELETE CASCADE,
    address    text NOT NULL,
    record     bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, address)
);

CREATE TABLE wa.signal_prekeys (
    session_id text NOT NULL REFERENCES wa.sessions (id) ON DELETE CASCADE,
    -- u32 in whatsapp-rust; bigint so the whole range fits.
    prekey_id  bigint NOT NULL CHECK (prekey_id BETWEEN 0 AND 4294967295),
    record     bytea NOT NULL,
    uploaded   boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, prekey_id)
);

CREATE TABLE wa.signal_signed_prekeys (
    session_id text NOT NULL REFERENCES wa.sessions (id) ON DELETE CASCADE,
    prekey_id  bigint NOT NULL CHECK (prekey_id BETWEEN 0 AND 4294967295),
    record     bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, prekey_id)
);

-- Sender keys are named "group:sender-address"; the name is opaque to us.
CREATE TABLE wa.signal_sender_keys (
    session_id text NOT NULL REFERENCES wa.sessions (id) ON DELETE CASCADE,
    address    text NOT NULL,
    record     bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, address)
);
