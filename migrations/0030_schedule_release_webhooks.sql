-- The repair of stalled webhook deliveries (wa._webhooks_release_stalled, sql/08) runs
-- once a minute across all workers as a maintenance task, instead of from every
-- worker's lease loop, where each worker scanned every webhook.
INSERT INTO wa.schedules (name, cron, task) VALUES ('release_webhooks', '* * * * *', 'release_webhooks')
ON CONFLICT (name) DO NOTHING;
