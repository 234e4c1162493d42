-- Connect links: a URL an operator sends an end customer (a salon owner) to link their
-- WhatsApp number from a page any worker serves. The link carries a token signed with
-- HMAC-SHA256 under a key kept here, where workers (the schema owner) read it and apps
-- cannot: wa.connect_link signs with it as its definer. Rotating the key
-- (wa.rotate_connect_key) voids every link handed out.
CREATE TABLE wa.secrets (
    name       text PRIMARY KEY,
    value      bytea NOT NULL CHECK (octet_length(value) >= 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON wa.secrets FROM PUBLIC;
-- gen_random_uuid draws from the server's strong random source: two give 244 random bits.
INSERT INTO wa.secrets (name, value)
VALUES ('connect_link', decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));

-- Where the workers' HTTP side is reached from outside (a proxy's address): links are
-- <public_url>/connect/<token>. No default: a link to 127.0.0.1 would reach no customer.
ALTER TABLE wa.policy ADD COLUMN public_url text
    CHECK (public_url ~ '^https?://[^/?#[:space:]]+(/[^?#[:space:]]*)?$');
