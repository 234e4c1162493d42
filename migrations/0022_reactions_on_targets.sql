-- Reactions are kept on the message they react to, as well as in the reaction's own
-- wa.inbox row: one entry per person, {"<sender JID>": {"emoji", "at", "id"}} (the
-- reaction's own message id), replaced by their later reaction and removed when they
-- take it back. On wa.inbox for messages received, kept by a trigger on wa.inbox
-- (sql/02_triggers.sql); for messages this session sent, wa.outbound computes them from
-- the reaction rows (a column on wa.jobs would widen the queue's rows, and with them the
-- planner's view of an empty queue: tests/queue_plans.rs).
ALTER TABLE wa.inbox ADD COLUMN reactions jsonb NOT NULL DEFAULT '{}';
-- wa.outbound finds the reactions to a message by the id they name.
CREATE INDEX inbox_reactions ON wa.inbox (session_id, quoted_id) WHERE kind = 'reaction';
