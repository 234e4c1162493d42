-- Read models for apps and operators.

-- Per session: status, error counters next to their limits, and a healthy flag (the
-- seeds' getSessionErrorStats). healthy = connected, held by a live worker, and every
-- counter below its limit. backend is the WhatsApp side of the worker holding it:
-- 'simulated' means nothing this session sends reaches anyone.
CREATE OR REPLACE VIEW wa.session_health AS
SELECT s.id AS session,
       s.desired,
       s.status,
       s.status_reason,
       s.status_changed_at,
       s.status_until,
       s.owner_id AS worker_id,
       (s.owner_id IS NOT NULL AND s.lease_expires_at > now()) AS held,
       s.bad_mac_count,
       p.bad_mac_limit,
       s.bad_decrypt_count,
       p.bad_decrypt_limit,
       s.failed_connect_count,
       p.connect_failure_limit,
       s.last_error,
       s.last_error_at,
       s.connected_at,
       (s.status = 'connected'
        AND s.owner_id IS NOT NULL AND s.lease_expires_at > now()
        AND s.bad_mac_count < p.bad_mac_limit
        AND s.bad_decrypt_count < p.bad_decrypt_limit
        AND s.failed_connect_count < p.connect_failure_limit) AS healthy,
       w.backend
  FROM wa.sessions s CROSS JOIN wa.policy p
  LEFT JOIN wa.workers w ON w.id = s.owner_id AND s.lease_expires_at > now();

-- True for a job in one of `states`. Beside the state it names what the partial indexes
-- see: the phase (migration 0015) of each state, and for dead jobs no result (jobs_dead,
-- migration 0034), so a reader reads the indexes holding those jobs, not the history
-- kept for weeks. With constant states the planner inlines it and folds it to those
-- indexes' predicates (for the console's job list, under a custom plan); the state to
-- phase mapping is written here alone. STABLE as the enum's text is: declared
-- IMMUTABLE, it would not be inlined.
CREATE OR REPLACE FUNCTION wa._job_in_states(states text[], state wa.job_state, phase smallint, result jsonb)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT state::text = ANY (states)
       AND ((states && '{scheduled,retryable}' AND phase = 0)
            OR (states && '{available,running}' AND phase = 1)
            OR (states && '{completed,cancelled}' AND phase = 2)
            OR ('dead' = ANY (states) AND phase = 2 AND result IS NULL))
$$;

-- Per session and kind: jobs waiting, running and dead, and how long the oldest ready
-- job has waited. Completed jobs are not counted (see wa.jobs for history).
CREATE OR REPLACE VIEW wa.queue_stats AS
SELECT j.session_id AS session,
       j.kind,
       count(*) FILTER (WHERE j.state = 'available') AS available,
       count(*) FILTER (WHERE j.state = 'scheduled') AS scheduled,
       count(*) FILTER (WHERE j.state = 'running') AS running,
       count(*) FILTER (WHERE j.state = 'retryable') AS retryable,
       count(*) FILTER (WHERE j.state = 'dead') AS dead,
       max(now() - j.run_at) FILTER (WHERE j.state = 'available') AS oldest_available_age
  FROM wa.jobs j
 WHERE wa._job_in_states('{available,scheduled,running,retryable,dead}', j.state, j.phase, j.result)
 GROUP BY j.session_id, j.kind;
-- Its predecessor (SQL API version 15), no longer read once the view above is replaced.
DROP FUNCTION IF EXISTS wa._job_states_where(text[], smallint, jsonb);

-- Outbound messages: one row per send job, with the message's delivery status.
CREATE OR REPLACE VIEW wa.outbound AS
SELECT j.id AS job_id,
       j.session_id AS session,
       j.chat,
       j.message_id,
       j.payload->>'type' AS type,
       j.delivery AS status,
       j.state AS job_state,
       j.attempts,
       j.errors->-1->>'error' AS last_error,
       j.created_at AS queued_at,
       j.sent_at,
       j.delivered_at,
       j.read_at,
       -- Who reacted: each sender's latest reaction in the message's chat (reaction rows
       -- of wa.inbox naming it; an empty emoji took it back).
       coalesce((SELECT jsonb_object_agg(r.sender, jsonb_build_object('emoji', r.text, 'at', r.at, 'id', r.message_id))
                   FROM (SELECT DISTINCT ON (i.sender) i.sender, i.text, coalesce(i.sent_at, i.received_at) AS at, i.message_id
                           FROM wa.inbox i
                          WHERE i.session_id = j.session_id AND i.message_id IS NOT NULL AND i.kind = 'reaction'
                            AND i.quoted_id = j.message_id
                            AND (i.chat = j.chat OR i.chat IN (SELECT c.lid FROM wa.contacts c
                                                                WHERE c.session_id = j.session_id AND c.jid = j.chat))
                          ORDER BY i.sender, coalesce(i.sent_at, i.received_at) DESC, i.id DESC) r
                  WHERE coalesce(r.text, '') <> ''), '{}') AS reactions
  FROM wa.jobs j
 WHERE j.kind = 'send';

-- The votes on this session's polls, per option: each voter's latest vote counts (a
-- vote replaces the voter's earlier one; an empty vote withdraws it). Votes are the
-- wa.inbox rows of kind poll_vote, opened by the worker with the poll's secret (one it
-- could not open has data.error instead of data.options and does not count).
CREATE OR REPLACE VIEW wa.poll_results AS
WITH latest AS (
    SELECT DISTINCT ON (v.session_id, v.quoted_id, v.sender)
           v.session_id, v.quoted_id AS poll_id, v.sender, v.data->'options' AS options
      FROM wa.inbox v
     WHERE v.kind = 'poll_vote' AND v.quoted_id IS NOT NULL AND v.data ? 'options'
     ORDER BY v.session_id, v.quoted_id, v.sender, v.sent_at DESC, v.id DESC
)
SELECT j.session_id AS session,
       j.message_id AS poll_id,
       j.chat,
       j.payload->>'question' AS question,
       o.position::integer AS position,
       o.option,
       count(l.sender) AS votes,
       coalesce(array_agg(l.sender ORDER BY l.sender) FILTER (WHERE l.sender IS NOT NULL), '{}') AS voters
  FROM wa.jobs j
 CROSS JOIN LATERAL jsonb_array_elements_text(j.payload->'options') WITH ORDINALITY AS o(option, position)
  LEFT JOIN latest l ON l.session_id = j.session_id AND l.poll_id = j.message_id AND l.options ? o.option
 WHERE j.kind = 'send' AND j.payload->>'type' = 'poll'
 GROUP BY j.session_id, j.message_id, j.chat, j.payload->>'question', o.position, o.option;
