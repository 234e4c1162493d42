-- `pgwa bench-outcomes`, variant message_id_table: the message-id -> job mapping moved
-- out of wa.jobs into an insert-only table kept by triggers, so a completed send no
-- longer writes a `jobs_message` entry (the completion is not a HOT update, so every
-- index of wa.jobs gets an entry for the finished row). Measured and not shipped:
-- BENCHMARKS.md, "The message ids in a table of their own". Only the benchmark's scratch
-- database gets it.
CREATE TABLE wa.message_ids (
    message_id text NOT NULL,
    session_id text NOT NULL,
    job_id bigint NOT NULL,
    PRIMARY KEY (message_id, session_id)
);
-- A session's messages in queued order, which jobs_message gave by its session prefix.
CREATE INDEX message_ids_by_session ON wa.message_ids (session_id, job_id);
DROP INDEX wa.jobs_message;

-- Added after the row is in (a row ON CONFLICT skipped gets none), with the owner's
-- rights (apps insert jobs, not mappings). Of the ways tried this is the cheapest: a
-- statement trigger over a transition table cost more per single-row insert, and a
-- BEFORE ROW insert would leave a mapping behind for a row ON CONFLICT skips.
CREATE FUNCTION wa._message_ids_add()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO wa.message_ids (message_id, session_id, job_id) VALUES (NEW.message_id, NEW.session_id, NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_message_ids_add AFTER INSERT ON wa.job_rows
    FOR EACH ROW WHEN (NEW.message_id IS NOT NULL) EXECUTE FUNCTION wa._message_ids_add();

-- Deleted with their jobs (retention, removed sessions), a statement at a time.
CREATE FUNCTION wa._message_ids_drop()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM wa.message_ids m
     USING old_jobs o
     WHERE m.message_id = o.message_id AND m.session_id = o.session_id AND m.job_id = o.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_message_ids_drop AFTER DELETE ON wa.job_rows
    REFERENCING OLD TABLE AS old_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION wa._message_ids_drop();
