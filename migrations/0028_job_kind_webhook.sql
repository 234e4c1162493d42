-- Webhook deliveries are jobs (migration 0029). A new enum label cannot be used in the
-- transaction that adds it, and each migration runs in one transaction: so it is added
-- alone, here, before the migration that uses it.
ALTER TYPE wa.job_kind ADD VALUE 'webhook';
