-- whatsapp-rust's protocol bookkeeping (ProtocolStore): who has our group sender keys,
-- LID<->phone mappings, retry base keys, device lists, group metadata, trusted-contact
-- tokens, the sent-message store used to answer retry receipts, and the inbound
-- durability buffer. Timestamps that whatsapp-rust passes as cutoffs are unix seconds,
-- so they are stored as unix seconds (bigint) and compared as such.

CREATE TABLE wa.sender_key_devices (
    session_id text NOT NULL REFERENCES wa.sessions (id) ON DELETE CASCADE,
    group_jid  text NOT NULL,
    device_jid text NOT NULL,
    has_key    boolean NOT NULL,
    PRIMARY KEY (session_id, group_jid, device_jid)
);
-- delete_sender_key_device_rows removes a device across all groups.
CREATE INDEX sender_key_devices_by_device ON wa.sender_key_devices (session_id, device_jid);

CREATE TABLE wa.lid_mappings (
    session_id      text NOT NULL REFERENCES wa.sessions (id) ON DELETE CASCADE,
    lid             text NOT NULL,
    phone_number    text NOT NULL,
    created_at      bigint NOT NULL,
    updated_at      bigint NOT NULL,
    learning_source text NOT NULL,
    -- When this row was last written here; the TTL sweep uses it (the seeds keep LID
    -- mappings 7 days) and get_pn_mapping returns the most recently written LID.
    write_seq       bigint NOT NULL DEFAULT nextval('wa.store_write_seq'),
    stored_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, lid)
);
CREATE INDEX lid_mappings_by_phone ON wa.lid_mappings (session_id, phone_number, write_seq DESC);
CREATE INDEX lid_mappings_stored_at ON wa.lid_mappings (stored_at);

CREATE TABLE wa.base_keys (
    session_id text NOT NULL REFERENCES wa.sessions (id) ON DELETE CASCADE,
    address    text NOT NULL,
    message_id text NOT NULL,
    base_key   bytea NOT NULL,
    -- whatsapp-rust defines no TTL for these; the sweep drops them after a day (retries
    -- of one message happen within the 2 h sent-message window).
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, address, message_id)
);
CREATE INDEX base_keys_created_at ON wa.base_keys (created_at);

CREATE TABLE wa.device_lists (
    session_id text NOT NULL REFERENCES wa.sessions (id) ON DELETE CASCADE,
    user_id    text NOT NULL,
    record     jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, user_id)
);

CREATE TABLE wa.group_metadata (
    session_id text NOT NULL REFERENCES wa.sessions (id) ON DELETE CASCADE,
    group_jid  text NOT NULL,
    blob       bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, group_jid)
);

CREATE TABLE wa.tc_tokens (
    session_id       text NOT NULL REFERENCES wa.sessions (id) ON DELETE CASCADE,
    jid              text NOT NULL,
    -- Empty when only our sender timestamp is known (whatsapp-rust's placeholder).
    token            bytea NOT NULL,
    token_ts         bigint NOT NULL,
    sender_ts        bigint,
    PRIMARY KEY (session_id, jid)
);

CREATE TABLE wa.sent_messages (
    session_id text NOT NULL REFERENCES wa.sessions (id) ON DELETE CASCADE,
    chat_jid   text NOT NULL,
    message_id text NOT NULL,
    payload    bytea NOT NULL,
    stored_at  bigint NOT NULL DEFAULT extract(epoch FROM now())::bigint,
    PRIMARY KEY (session_id, chat_jid, message_id)
);
CREATE INDEX sent_messages_stored_at ON wa.sent_messages (stored_at);

CREATE TABLE wa.pending_inbound (
    session_id text NOT NULL REFERENCES wa.sessions (id) ON DELETE CASCADE,
    chat       text NOT NULL,
    sender     text NOT NULL,
    stanza_id  text NOT NULL,
    message    bytea NOT NULL,
    stored_at  bigint NOT NULL DEFAULT extract(epoch FROM now())::bigint,
    PRIMARY KEY (session_id, chat, sender, stanza_id)
);
CREATE INDEX pending_inbound_stored_at ON wa.pending_inbound (stored_at);

-- MsgSecretStore: the 32-byte secrets of messages, to decrypt later poll votes,
-- reactions and edits. expires_at = 0 means never.
CREATE TABLE wa.msg_secrets (
    session_id text NOT NULL REFERENCES wa.sessions (id) ON DELETE CASCADE,
    chat       text NOT NULL,
    sender     text NOT NULL,
    msg_id     text NOT NULL,
    secret     bytea NOT NULL CHECK (length(secret) = 32),
    expires_at bigint NOT NULL,
    message_ts bigint NOT NULL,
    PRIMARY KEY (session_id, chat, sender, msg_id)
);
CREATE INDEX msg_secrets_expiring ON wa.msg_secrets (expires_at) WHERE expires_at <> 0;
