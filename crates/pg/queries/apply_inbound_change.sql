-- An inbound edit or delete for everyone, applied to the inbox row of the message it
-- changes (same session, chat and sender; its message id): the row's content before
-- the change goes to its history, once (the change's own message id is kept in the
-- history entry, so a redelivery changes nothing). When the target is not in the inbox
-- (sent before the session was linked, or removed), the change is stored as a row of
-- its own: kind edit or revoke, quoted_id the target. Fenced like every inbox write.
-- $1 session, $2 worker, $3 epoch, $4 chat, $5 sender, $6 the change's message id,
-- $7 'edit' or 'revoke', $8 the target's message id, $9 the new text, $10 sent at,
-- $11 raw.
WITH held AS (
    SELECT 1 FROM wa.sessions s WHERE s.id = $1 AND wa._holds(s, $2, $3)
), target AS (
    SELECT i.id FROM wa.inbox i
     WHERE i.session_id = $1 AND i.chat = $4 AND i.sender = $5 AND i.message_id = $8
       AND EXISTS (SELECT 1 FROM held)
       FOR UPDATE
), changed AS (
    UPDATE wa.inbox i
       SET history = i.history || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
               'kind', $7::text, 'id', $6::text, 'at', coalesce($10::timestamptz, now()),
               'text', i.text, 'media', i.media, 'data', i.data))),
           text = CASE WHEN $7 = 'edit' THEN $9::text END,
           media = CASE WHEN $7 = 'edit' THEN i.media END,
           data = CASE WHEN $7 = 'edit' THEN i.data END,
           edited_at = CASE WHEN $7 = 'edit' THEN coalesce($10, now()) ELSE i.edited_at END,
           revoked_at = CASE WHEN $7 = 'revoke' THEN coalesce($10, now()) ELSE i.revoked_at END
      FROM target t
     WHERE i.id = t.id
       AND NOT i.history @> jsonb_build_array(jsonb_build_object('id', $6::text))
    RETURNING i.id
), own_row AS (
    INSERT INTO wa.inbox (session_id, chat, sender, message_id, kind, text, quoted_id, raw, sent_at)
    SELECT $1, $4, $5, $6, $7, $9, $8, $11, $10
     WHERE EXISTS (SELECT 1 FROM held) AND NOT EXISTS (SELECT 1 FROM target)
    ON CONFLICT ON CONSTRAINT inbox_unique DO NOTHING
    RETURNING id
)
SELECT (SELECT id FROM changed) AS changed, (SELECT id FROM own_row) AS stored
