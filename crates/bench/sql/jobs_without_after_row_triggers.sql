-- Schema variant (`pgwa bench --schema-variant`): wa.job_rows without AFTER ROW UPDATE
-- triggers: the webhook ones (jobs_webhook_next, jobs_webhooks_outbound and the
-- statement-level gate of the latter) and the foreign key to wa.sessions, whose check
-- trigger is one too. While any AFTER ROW UPDATE trigger exists, Postgres fetches the old
-- version of every updated row to evaluate them, though a claim or a completion changes
-- no session_id and the webhooks' WHEN skips them. Measures what that costs the drain;
-- only a benchmark's scratch database gets it.
DROP TRIGGER jobs_webhook_next ON wa.job_rows;
DROP TRIGGER jobs_webhooks_outbound ON wa.job_rows;
DROP TRIGGER jobs_webhooks_outbound_gate ON wa.job_rows;
ALTER TABLE wa.job_rows DROP CONSTRAINT jobs_session_id_fkey;
