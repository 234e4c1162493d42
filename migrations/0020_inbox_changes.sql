-- Inbound messages carry more than text and media: the fields of other kinds (a
-- location's coordinates, a contact's card and numbers) in `data`, the JIDs a text
-- mentions, and the changes their senders make later. An edit or a delete for everyone
-- is applied to the row it changes: edited_at or revoked_at is set, and the row's
-- content before the change is appended to `history` (oldest first), each entry
-- {kind: edit|revoke, id: the change's own message id, at, text, media, data}.
ALTER TABLE wa.inbox
    ADD COLUMN data       jsonb,
    ADD COLUMN mentions   text[],
    ADD COLUMN edited_at  timestamptz,
    ADD COLUMN revoked_at timestamptz,
    ADD COLUMN history    jsonb NOT NULL DEFAULT '[]';

-- Locations and contacts kept their fields in `media`, which now holds download
-- metadata only.
UPDATE wa.inbox SET data = media, media = NULL WHERE kind IN ('location', 'contact');
