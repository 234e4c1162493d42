-- The claim's per-chat FIFO rule (pgwa_pg::jobs::claim), written once: the sends of a
-- chat queued before a given send and not finished yet. The claim asks it three times
-- (a chat's first candidate, each later candidate, and the recheck after locking), each
-- time with its own exclusions. A SQL-standard body in a set-returning function is
-- inlined by the planner into each caller, so the plans stay index probes on the chat
-- (tests/queue_plans.rs checks they still do). Internal (wa._*): not callable by apps.
CREATE FUNCTION wa._chat_unfinished_before(in_session text, in_chat text, before_id bigint)
    RETURNS TABLE (job_id bigint)
    LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT k.id FROM wa.jobs k
     WHERE k.session_id = in_session AND k.chat = in_chat AND k.id < before_id
       AND k.phase < 2 AND k.chat IS NOT NULL
       AND k.state IN ('available', 'running', 'retryable');
END;
