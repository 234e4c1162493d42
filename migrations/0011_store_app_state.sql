-- whatsapp-rust's app-state sync (AppSyncStore): the sync keys the primary phone shares,
-- the per-collection hash state, and the mutation MACs that the ltHash is checked against.
-- Clearing the sync keys alone is the first recovery step on repeated bad decrypts.

CREATE TABLE wa.app_state_sync_keys (
    session_id  text NOT NULL REFERENCES wa.sessions (id) ON DELETE CASCADE,
    key_id      bytea NOT NULL,
    key_data    bytea NOT NULL,
    fingerprint bytea NOT NULL,
    key_ts      bigint NOT NULL,
    -- Bumped on every set: get_latest_sync_key_id means "most recently set".
    write_seq   bigint NOT NULL DEFAULT nextval('wa.store_write_seq'),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, key_id)
);
CREATE INDEX app_state_sync_keys_latest ON wa.app_state_sync_keys (session_id, write_seq DESC);

-- HashState as JSON (version, 128-byte hash, index->value map): read and written whole.
CREATE TABLE wa.app_state_versions (
    session_id text NOT NULL REFERENCES wa.sessions (id) ON DELETE CASCADE,
    collection text NOT NULL,
    version    bigint NOT NULL,
    state      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, collection)
);

CREATE TABLE wa.app_state_mutation_macs (
    session_id text NOT NULL REFERENCES wa.sessions (id) ON DELETE CASCADE,
    collection text NOT NULL,
    index_mac  bytea NOT NULL,
    value_mac  bytea NOT NULL,
    version    bigint NOT NULL,
    PRIMARY KEY (session_id, collection, index_mac)
);
