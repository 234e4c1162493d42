-- whatsapp-rust passes cutoffs as whole unix seconds, truncated (now_secs()). A bigint
-- cast of extract(epoch ...) rounds instead, which could date a row half a second into
-- the future and keep it one sweep longer than its TTL. Truncate like whatsapp-rust.
ALTER TABLE wa.sent_messages ALTER COLUMN stored_at SET DEFAULT floor(extract(epoch FROM now()))::bigint;
ALTER TABLE wa.pending_inbound ALTER COLUMN stored_at SET DEFAULT floor(extract(epoch FROM now()))::bigint;
