-- Chats with a send in flight or waiting for a retry. The claim skips sends queued
-- behind such a chat while it picks candidates (a cheap probe in this small index),
-- instead of taking them as candidates and dropping them afterwards, which left claims
-- half empty under a deep backlog.
CREATE INDEX jobs_chat_busy ON wa.jobs (session_id, chat, id)
    WHERE state IN ('running', 'retryable') AND chat IS NOT NULL;
