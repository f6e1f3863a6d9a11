-- Blobs that may have lost their last reference: every new blob (it may never be committed) and
-- the blob of every removed commit file, upload grant and report attachment. The collector
-- looks only at these, so a run with nothing to collect costs nothing per stored blob.
-- `touches` counts how often the blob became a candidate again: the collector drops a
-- candidate only if no one touched it since it looked (a reference removed while it looked
-- locks and bumps the row, so the blob is looked at again).
CREATE TABLE blob_gc_candidates (
    sha256   BYTEA PRIMARY KEY,
    touches  BIGINT NOT NULL DEFAULT 0
);

-- Everything is a candidate once: the first collection after this migration walks every blob.
INSERT INTO blob_gc_candidates (sha256) SELECT sha256 FROM blobs;

CREATE FUNCTION note_new_blobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO blob_gc_candidates (sha256) SELECT DISTINCT sha256 FROM changed
    ON CONFLICT (sha256) DO UPDATE SET touches = blob_gc_candidates.touches + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER blobs_are_gc_candidates AFTER INSERT ON blobs
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION note_new_blobs();
CREATE TRIGGER commit_files_leave_gc_candidates AFTER DELETE ON commit_files
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION note_new_blobs();
CREATE TRIGGER repository_uploads_leave_gc_candidates AFTER DELETE ON repository_uploads
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION note_new_blobs();
CREATE TRIGGER report_attachments_leave_gc_candidates AFTER DELETE ON report_attachments
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION note_new_blobs();
