-- Reactions are kept on the message they react to, as well as in the reaction's own
-- wa.inbox row: one entry per person, {"<sender JID>": {"emoji", "at", "id"}} (the
-- reaction's own message id), replaced by their later reaction and removed when they
-- take it back. On wa.inbox for messages received, on wa.jobs (wa.outbound) for
-- messages this session sent. Kept by a trigger on wa.inbox (sql/02_triggers.sql).
ALTER TABLE wa.inbox ADD COLUMN reactions jsonb NOT NULL DEFAULT '{}';
ALTER TABLE wa.jobs ADD COLUMN reactions jsonb NOT NULL DEFAULT '{}';
