-- Which WhatsApp side each worker runs. A session held by a simulated worker "connects"
-- and "sends" without reaching anyone: apps and operators must be able to see that in
-- the session's status (wa.session_health.backend), not only in a worker's log.
CREATE TYPE wa.whatsapp_backend AS ENUM ('whatsapp', 'simulated');
ALTER TABLE wa.workers ADD COLUMN backend wa.whatsapp_backend NOT NULL DEFAULT 'whatsapp';
