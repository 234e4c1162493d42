-- Webhooks, for apps that cannot hold a LISTEN connection (a serverless function, PHP,
-- a SaaS platform's callback URL): pgwa POSTs each event to a URL, signed as Standard
-- Webhooks does (webhook-id, webhook-timestamp, webhook-signature: HMAC-SHA256 under the
-- webhook's secret). Unlike a NOTIFY, the body carries the event itself (the message
-- received, the status reached), so the receiver needs no access to the database.
--
-- Each event becomes a delivery job in the transaction of the change it announces (an
-- outbox; the triggers are in sql/08_webhooks.sql): an event goes out if and only if its
-- change committed, and pgwa's own queue gives deliveries their retries with backoff,
-- their dead state, and retries from SQL and the console.
CREATE TABLE wa.webhooks (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Whose events it receives. The default becomes wa._my_tenant() (the inserting
    -- role's tenant) in sql/08_webhooks.sql, as for wa.sessions: functions live in sql/,
    -- which is applied after the migrations.
    tenant      text NOT NULL DEFAULT 'default' REFERENCES wa.tenants (name) ON DELETE CASCADE,
    url         text NOT NULL,
    -- Standard Webhooks' form: whsec_ and the base64 of 24 to 64 random bytes, the HMAC
    -- key. Apps cannot read this column (sql/08_webhooks.sql grants them every column
    -- but this one): an app sees a secret once, from wa.add_webhook or
    -- wa.rotate_webhook_secret.
    secret      text NOT NULL,
    events      text[] NOT NULL DEFAULT '{inbox,outbound,session,codes}',
    -- Only this session's events; NULL: every session of the tenant. The session is the
    -- tenant's own (the validation trigger checks it, and a session cannot move to
    -- another tenant while a webhook names it). A filter on a removed session goes with
    -- the session: left behind as NULL it would widen to every session.
    session_id  text REFERENCES wa.sessions (id) ON DELETE CASCADE,
    -- Off: no new deliveries; those already queued still go (wa.remove_webhook cancels).
    enabled     boolean NOT NULL DEFAULT true,
    description text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- Backstops. The validation trigger refuses the same input first, with a WA015 that
    -- names the argument; a constraint's own error prints the whole row, secret
    -- included, to the owner and to the server's log.
    CONSTRAINT webhook_url_format CHECK (
        char_length(url) <= 2048 AND url ~* '^https?://[^/?#@[:space:]:][^/?#@[:space:]]*([/?][^#[:space:]]*)?$'),
    CONSTRAINT webhook_secret_format CHECK (secret ~ '^whsec_[A-Za-z0-9+/]{32,88}={0,2}$'),
    CONSTRAINT webhook_events_known CHECK (
        cardinality(events) >= 1 AND events <@ '{inbox,outbound,session,codes}' AND array_position(events, NULL) IS NULL),
    CONSTRAINT webhook_description_length CHECK (char_length(description) <= 500)
);
-- The outbox's question on every event: does the session's tenant have a webhook on?
-- With no webhook at all it is one probe of an empty index.
CREATE INDEX webhooks_tenant ON wa.webhooks (tenant) WHERE enabled;
-- Removing a session finds the webhooks that filter on it.
CREATE INDEX webhooks_session ON wa.webhooks (session_id) WHERE session_id IS NOT NULL;

-- A delivery is a job of kind webhook. Like a maintenance job it belongs to no session:
-- any worker runs it, through the claim's session-less branch, and a session's removal
-- or takeover does not touch it. The old constraint implies the new one for every row.
ALTER TABLE wa.jobs DROP CONSTRAINT maintenance_has_no_session,
    ADD CONSTRAINT sessionless_kinds CHECK ((kind IN ('maintenance', 'webhook')) = (session_id IS NULL));

-- FIFO per webhook, with the webhook's key in `chat` (free outside sends: the
-- send_has_message constraint wants chat, message_id and delivery together only for
-- sends, and the insert trigger now keeps chat for webhook jobs). Two keys:
--   'webhook:<id>'          released: available, running or retryable; at most one
--   'webhook:<id>:waiting'  queued behind it: state scheduled, run_at 'infinity'
-- A new delivery is released only when its webhook has nothing released or waiting;
-- when the released one ends (completed, dead, cancelled) a trigger releases the oldest
-- waiting one. So:
-- * the claim never sees a backlog: a waiting row is in phase 0 with run_at infinity,
--   past the end of jobs_due's range scan, and out of jobs_claim (phase 1);
-- * "is anything released?" and "the oldest waiting" are each one probe of jobs_chat
--   (session_id IS NULL, chat, id), whatever the backlog, because the two kinds of rows
--   are under two keys: under one key, finding the released row behind a backlog of
--   waiting ones (or learning there is none) would walk the backlog on each completion;
-- * no new column on wa.jobs (a wider row is what broke the claim's plans before).
-- The keys are set by the insert trigger and by the release (sql/08_webhooks.sql).
--
-- Deliveries of one webhook, finished ones included, for wa.webhook_deliveries and
-- retries. Partial: other jobs never enter it, and since neither kind nor chat changes
-- when a job is claimed, claims stay HOT updates (migration 0015).
CREATE INDEX jobs_webhook ON wa.jobs (chat, id) WHERE kind = 'webhook';
