-- Inbound messages, committed before the server is acknowledged. The unique key makes a
-- redelivery (after a crash between commit and ack) a no-op instead of a duplicate.
CREATE TABLE wa.inbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id  text NOT NULL REFERENCES wa.sessions (id) ON DELETE CASCADE,
    chat        text NOT NULL,
    sender      text NOT NULL,
    message_id  text NOT NULL,
    kind        text NOT NULL,
    text        text,
    quoted_id   text,
    media       jsonb,
    raw         jsonb,
    sent_at     timestamptz,
    received_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT inbox_unique UNIQUE (session_id, chat, sender, message_id)
);
CREATE INDEX inbox_by_session ON wa.inbox (session_id, id);
