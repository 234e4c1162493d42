-- Inbound media downloaded by the worker into Postgres, when wa.policy.media_download
-- says so ('postgres'; default 'off': the inbox keeps what downloading needs, and apps
-- fetch the files themselves). Each file is a media_download job (it needs the
-- session's connection for WhatsApp's media hosts), checked against the SHA-256 the
-- message named, and refused above media_max_bytes.
ALTER TYPE wa.job_kind ADD VALUE IF NOT EXISTS 'media_download';

ALTER TABLE wa.policy
    ADD COLUMN media_download text NOT NULL DEFAULT 'off' CHECK (media_download IN ('off', 'postgres')),
    ADD COLUMN media_max_bytes bigint NOT NULL DEFAULT 16777216 CHECK (media_max_bytes BETWEEN 1 AND 104857600);

-- What became of a message's file: stored (in wa.media), too_large (over
-- media_max_bytes when it came), failed (the job's last error says why). NULL: not
-- downloaded (policy off, or no file).
ALTER TABLE wa.inbox ADD COLUMN media_status text CHECK (media_status IN ('stored', 'too_large', 'failed'));

CREATE TABLE wa.media (
    inbox_id   bigint PRIMARY KEY REFERENCES wa.inbox (id) ON DELETE CASCADE,
    session_id text NOT NULL REFERENCES wa.sessions (id) ON DELETE CASCADE,
    mimetype   text,
    size       bigint NOT NULL,
    sha256     bytea NOT NULL,
    data       bytea NOT NULL,
    stored_at  timestamptz NOT NULL DEFAULT now()
);
-- Media is compressed already: no compression attempt, stored out of line.
ALTER TABLE wa.media ALTER COLUMN data SET STORAGE EXTERNAL;
