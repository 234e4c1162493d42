-- The SQL API gets a version number (SQL_API_VERSION in src/db/migrate.rs) beside its
-- checksum. During a rolling deploy every `pgwa run` migrates first, and an older pgwa
-- used to see only "checksum differs" and put its older functions back over the newer
-- ones. With the version it leaves an API of a higher version alone. Rows from before
-- versions existed read as 0, which any versioned pgwa replaces.
ALTER TABLE wa.sql_api ADD COLUMN version integer NOT NULL DEFAULT 0;
