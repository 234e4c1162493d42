-- Incoming calls. A gateway's number cannot take a call, and a caller left ringing
-- thinks the business is ignoring them: by default each call is rejected at once
-- (wa.policy.reject_calls) and recorded here, so an app can write back.
ALTER TABLE wa.policy ADD COLUMN reject_calls boolean NOT NULL DEFAULT true;

CREATE TABLE wa.calls (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id  text NOT NULL REFERENCES wa.sessions (id) ON DELETE CASCADE,
    call_id     text NOT NULL,
    -- Who called (their JID, phone number or LID) and, for a group call, the group.
    caller      text NOT NULL,
    group_jid   text,
    video       boolean NOT NULL,
    offered_at  timestamptz NOT NULL,
    -- offered (left ringing: reject_calls is off), rejected, or failed (the reject did
    -- not go out; reason says why).
    status      text NOT NULL CHECK (status IN ('offered', 'rejected', 'failed')),
    reason      text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT calls_unique UNIQUE (session_id, call_id)
);
CREATE INDEX calls_by_session ON wa.calls (session_id, id);
