-- Linking a number: the worker publishes each QR code (and each refresh) or pairing
-- code here with its expiry, so an app can show it in its own UI. Cleared when linked.
ALTER TABLE wa.sessions
    ADD COLUMN qr_code              text,
    ADD COLUMN qr_expires_at        timestamptz,
    ADD COLUMN pair_code            text,
    ADD COLUMN pair_code_expires_at timestamptz,
    ADD COLUMN qr_count             integer NOT NULL DEFAULT 0 CHECK (qr_count >= 0);
