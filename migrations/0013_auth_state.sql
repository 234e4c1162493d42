-- The device credentials of a session (DeviceStore) as one JSONB document a person can
-- read in psql: named keys, bytes as base64 strings. See docs/storage.md for the format.
-- Kept apart from wa.sessions so the hot lease row stays small and the keys can be
-- wiped (logout) without touching the session's status and history.
CREATE TABLE wa.auth_state (
    session_id text PRIMARY KEY REFERENCES wa.sessions (id) ON DELETE CASCADE,
    creds      jsonb NOT NULL CHECK (jsonb_typeof(creds) = 'object'),
    updated_at timestamptz NOT NULL DEFAULT now()
);
