-- Received files can also go to S3-compatible storage: wa.policy.media_download = 's3'
-- has the workers put each file in the object store their configuration names
-- ([media.s3]: bucket, endpoint, credentials; never in Postgres, where apps can read).
-- wa.media then keeps where the file is instead of its bytes.
ALTER TABLE wa.policy DROP CONSTRAINT policy_media_download_check;
ALTER TABLE wa.policy ADD CONSTRAINT policy_media_download_check CHECK (media_download IN ('off', 'postgres', 's3'));

ALTER TABLE wa.media
    ALTER COLUMN data DROP NOT NULL,
    -- postgres: the bytes are in data; s3: at location (s3://bucket/key).
    ADD COLUMN storage text NOT NULL DEFAULT 'postgres' CHECK (storage IN ('postgres', 's3')),
    ADD COLUMN location text,
    ADD CONSTRAINT media_bytes_or_location
        CHECK ((storage = 'postgres' AND data IS NOT NULL AND location IS NULL)
            OR (storage = 's3' AND data IS NULL AND location IS NOT NULL));
