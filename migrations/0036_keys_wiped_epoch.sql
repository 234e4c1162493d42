-- A wipe of a session's keys (close_session with wipe, key_cleanup scope all, a logout
-- by the server, Bad MAC at the limit) is the last key write of the lease it runs under.
-- whatsapp-rust writes some keys from detached tasks (sent copies, message secrets) that
-- the worker's key store group-commits up to 10 ms later, with the lease still valid:
-- such a write could land after the wipe and leave rows of the wiped device behind. The
-- wipe's transaction now sets keys_wiped_epoch to its epoch first (a row update, so it
-- waits for key writes in flight, which share-lock the row, and the wipe deletes what
-- they wrote); every key write at that epoch after it is refused by its fence. The next
-- lease (a new epoch) writes keys again, for the new link.
ALTER TABLE wa.sessions ADD COLUMN keys_wiped_epoch bigint;

-- Key writes at `at_epoch` are allowed: no wipe ended them.
CREATE FUNCTION wa._keys_open(s wa.sessions, at_epoch bigint) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN s.keys_wiped_epoch IS NULL OR s.keys_wiped_epoch < at_epoch;

-- A key write's fence (migrations/0019), now also closed by a wipe at its epoch.
CREATE OR REPLACE FUNCTION wa._may_write(s wa.sessions, worker uuid, at_epoch bigint) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN CASE WHEN worker IS NULL THEN wa._unheld(s) ELSE wa._holds(s, worker, at_epoch) AND wa._keys_open(s, at_epoch) END;

REVOKE ALL ON FUNCTION wa._keys_open(wa.sessions, bigint) FROM PUBLIC;
