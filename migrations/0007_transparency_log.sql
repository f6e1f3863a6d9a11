-- The transparency log: every publish, ref move, deletion, quarantine, release, licence
-- decision and signature verification, as verbatim JSON bodies whose RFC 6962 leaf hashes
-- form a Merkle tree. Append-only: no code path updates or deletes, and the trigger refuses it.
CREATE TABLE log_entries (
    idx          BIGINT PRIMARY KEY CHECK (idx >= 0),
    body         BYTEA NOT NULL,
    leaf_hash    BYTEA NOT NULL CHECK (length(leaf_hash) = 32),
    appended_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE FUNCTION log_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the transparency log is append-only';
END
$$;

CREATE TRIGGER log_entries_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON log_entries
    FOR EACH STATEMENT EXECUTE FUNCTION log_entries_append_only();
