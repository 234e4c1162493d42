-- Schema variant (`pgwa bench --schema-variant`, `pgwa bench-outcomes`): wa.jobs without
-- its BEFORE ROW UPDATE triggers. Both act on apps' writes only (jobs_app_guard turns an
-- app's UPDATE into what wa.cancel_job or wa.retry_job does; jobs_webhook_retry orders a
-- retried webhook delivery), yet while they exist Postgres fetches and locks every row a
-- worker's claim or completion updates before evaluating their WHEN. Measures what that
-- costs the drain; only a benchmark's scratch database gets it.
DROP TRIGGER jobs_app_guard ON wa.jobs;
DROP TRIGGER jobs_webhook_retry ON wa.jobs;
