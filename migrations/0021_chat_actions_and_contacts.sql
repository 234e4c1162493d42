-- Jobs that act through a session's connection without being messages: read receipts
-- (mark_read), chat states (presence) and number checks (check_numbers). Like sends,
-- they need the connection, so they are claimed only while their session is connected.

ALTER TYPE wa.job_kind ADD VALUE IF NOT EXISTS 'mark_read';
ALTER TYPE wa.job_kind ADD VALUE IF NOT EXISTS 'presence';
ALTER TYPE wa.job_kind ADD VALUE IF NOT EXISTS 'check_numbers';

-- The claim's lane was "1 for sends, 0 for the rest": a new kind would have joined the
-- control lane, claimed while disconnected and handed back in a loop. The lane now
-- names the control kinds (which manage the session itself and run first) and puts
-- every other kind, today's and future ones, in the connected lane. It is set by the
-- insert trigger (sql/01_validation.sql) rather than generated: changing a generated
-- column's expression rewrites wa.jobs, and a rewritten empty table is known empty to
-- the planner, which then plans claims as scans (tests/queue_plans.rs).
DROP INDEX wa.jobs_claim;
ALTER TABLE wa.jobs DROP COLUMN lane;
ALTER TABLE wa.jobs ADD COLUMN lane smallint NOT NULL DEFAULT 1;
UPDATE wa.jobs SET lane = 0 WHERE kind IN ('reconnect', 'key_cleanup', 'close_session', 'maintenance');
CREATE INDEX jobs_claim ON wa.jobs (session_id, lane, priority, id) WHERE phase = 1;

-- When this session sent read receipts for the message (wa.mark_read).
ALTER TABLE wa.inbox ADD COLUMN read_at timestamptz;
-- Messages found by id alone: wa.mark_read's check and the worker's lookups of what a
-- reply or reaction points at (which scanned the session's inbox before).
CREATE INDEX inbox_by_message ON wa.inbox (session_id, message_id);

-- What a session knows of phone numbers: whether each is on WhatsApp (wa.check_numbers)
-- and the LID WhatsApp uses for it, whether a check or whatsapp-rust learned it (from
-- the store's LID mappings, copied here by trigger; see sql/02_triggers.sql).
CREATE TABLE wa.contacts (
    session_id     text NOT NULL REFERENCES wa.sessions (id) ON DELETE CASCADE,
    -- Digits, country code first.
    phone          text NOT NULL,
    -- The account's JID (phone@s.whatsapp.net) when it is on WhatsApp.
    jid            text,
    -- Its LID (digits@lid), when known.
    lid            text,
    -- NULL: never checked (known from a LID mapping only).
    on_whatsapp    boolean,
    is_business    boolean,
    checked_at     timestamptz,
    lid_learned_at timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, phone)
);
CREATE INDEX contacts_by_lid ON wa.contacts (session_id, lid) WHERE lid IS NOT NULL;

-- The mappings learned before this table existed.
INSERT INTO wa.contacts (session_id, phone, jid, lid, lid_learned_at)
SELECT DISTINCT ON (session_id, phone_number)
       session_id, phone_number, phone_number || '@s.whatsapp.net', lid || '@lid', stored_at
  FROM wa.lid_mappings
 ORDER BY session_id, phone_number, write_seq DESC;

-- The last chat state each person showed each chat ("typing...", "recording...",
-- paused): one row per (session, chat, sender), updated in place. `id` names the row in
-- NOTIFY payloads (channel wa_chat_state), which carry no JIDs.
CREATE TABLE wa.chat_states (
    id         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    session_id text NOT NULL REFERENCES wa.sessions (id) ON DELETE CASCADE,
    chat       text NOT NULL,
    sender     text NOT NULL,
    state      text NOT NULL CHECK (state IN ('composing', 'recording', 'paused')),
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, chat, sender)
);
