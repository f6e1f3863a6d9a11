-- Xet storage. Xorbs (containers of compressed chunks) are objects in the store under their
-- hash; what is known about them, and the files rebuilt from them, lives here.

-- One row per stored xorb. `chunk_table` is kaiyuan_xet::xorb::pack_chunk_table: every chunk's
-- hash, frame offset, frame length and unpacked length, computed by the hub while the upload
-- streamed in (never taken from the client's footer).
CREATE TABLE xet_xorbs (
    hash          BYTEA PRIMARY KEY CHECK (length(hash) = 32),
    stored_size   BIGINT NOT NULL,
    unpacked_size BIGINT NOT NULL,
    chunk_count   INTEGER NOT NULL,
    chunk_table   BYTEA NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Refreshed by each upload of the same xorb: the collector's grace period starts here.
    last_seen_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The global-dedupe index: only the chunks clients ask about (see
-- MerkleHash::is_global_dedupe_eligible) and each xorb's first chunk.
CREATE TABLE xet_chunks (
    chunk_hash BYTEA NOT NULL,
    xorb_hash  BYTEA NOT NULL REFERENCES xet_xorbs (hash) ON DELETE CASCADE,
    PRIMARY KEY (chunk_hash, xorb_hash)
);
CREATE INDEX xet_chunks_xorb_idx ON xet_chunks (xorb_hash);

-- A file registered by a shard upload, after the hub rebuilt it and checked its sha256. The
-- blob row of that sha256 is what commits reference; deleting it (the collector) deletes this.
CREATE TABLE xet_files (
    file_hash BYTEA PRIMARY KEY CHECK (length(file_hash) = 32),
    sha256    BYTEA NOT NULL REFERENCES blobs (sha256) ON DELETE CASCADE,
    size      BIGINT NOT NULL,
    -- kaiyuan_xet::shard terms, packed: xorb hash, chunk start, chunk end, unpacked length.
    terms     BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX xet_files_sha256_idx ON xet_files (sha256);

-- Which xorbs each file needs: keeps them from the collector and answers "who may see this
-- xorb" for the global-dedupe query.
CREATE TABLE xet_file_xorbs (
    file_hash BYTEA NOT NULL REFERENCES xet_files (file_hash) ON DELETE CASCADE,
    xorb_hash BYTEA NOT NULL REFERENCES xet_xorbs (hash),
    PRIMARY KEY (file_hash, xorb_hash)
);
CREATE INDEX xet_file_xorbs_xorb_idx ON xet_file_xorbs (xorb_hash);
