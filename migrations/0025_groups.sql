-- Groups: one job kind for every group action (create, add, remove, promote, demote,
-- invite_link, leave; payload.action), and wa.groups, what the session knows of the
-- groups it is in, kept current by its holder from group jobs and the server's group
-- notifications.
ALTER TYPE wa.job_kind ADD VALUE IF NOT EXISTS 'group';

CREATE TABLE wa.groups (
    -- Names the row in NOTIFY payloads (channel wa_groups), which carry no JIDs.
    id           bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    session_id   text NOT NULL REFERENCES wa.sessions (id) ON DELETE CASCADE,
    -- digits@g.us
    jid          text NOT NULL,
    subject      text NOT NULL,
    -- [{"jid": "…@s.whatsapp.net", "phone": "digits", "admin": "admin" | "superadmin" | null}]
    participants jsonb NOT NULL DEFAULT '[]',
    creator      text,
    created_at   timestamptz,
    -- https://chat.whatsapp.com/…, once wa.group_invite_link fetched it.
    invite_link  text,
    -- Set when this number left the group or was removed from it.
    left_at      timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, jid)
);
