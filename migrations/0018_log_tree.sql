-- The transparency log's interior hashes, stored as entries are appended so that a checkpoint,
-- an inclusion proof and a consistency proof read O(log n) hashes instead of every leaf.
-- A row is the hash of a full subtree: the 2^level leaves from idx * 2^level (the coordinates
-- of C2SP tlog-tiles' hashes). Level 0 is log_entries.leaf_hash and is not repeated here.
-- Written in the transaction of the append that completes the subtree; append-only like the log.
CREATE TABLE log_tree (
    level  SMALLINT NOT NULL CHECK (level BETWEEN 1 AND 63),
    idx    BIGINT NOT NULL CHECK (idx >= 0),
    hash   BYTEA NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
);

CREATE TRIGGER log_tree_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON log_tree
    FOR EACH STATEMENT EXECUTE FUNCTION log_entries_append_only();

-- The latest signed checkpoint, signed once per tree size and shared by every replica.
-- The signature is deterministic (Ed25519), so replicas that race to sign agree.
CREATE TABLE log_checkpoint (
    one        BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    tree_size  BIGINT NOT NULL CHECK (tree_size >= 0),
    note       TEXT NOT NULL,
    signed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Fills log_tree from log_entries' leaf hashes (contiguous from 0), level by level: RFC 6962
-- nodes, SHA-256(0x01 || left || right). Used once here for the entries that exist already.
CREATE FUNCTION log_tree_backfill() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    lvl SMALLINT := 1;
    made BIGINT;
BEGIN
    INSERT INTO log_tree (level, idx, hash)
    SELECT 1, l.idx / 2, sha256('\x01'::bytea || l.leaf_hash || r.leaf_hash)
    FROM log_entries l JOIN log_entries r ON r.idx = l.idx + 1
    WHERE l.idx % 2 = 0;
    GET DIAGNOSTICS made = ROW_COUNT;
    WHILE made > 1 LOOP
        lvl := lvl + 1;
        INSERT INTO log_tree (level, idx, hash)
        SELECT lvl, l.idx / 2, sha256('\x01'::bytea || l.hash || r.hash)
        FROM log_tree l JOIN log_tree r ON r.level = l.level AND r.idx = l.idx + 1
        WHERE l.level = lvl - 1 AND l.idx % 2 = 0;
        GET DIAGNOSTICS made = ROW_COUNT;
    END LOOP;
END
$$;

SELECT log_tree_backfill();
