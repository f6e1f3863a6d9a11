-- Events about private repositories enter the public transparency log sealed: the public leaf
-- holds only a commitment sha256(nonce || body). The body and its nonce stay here, readable by
-- those who may read the repository, who can open the commitment and prove inclusion.
CREATE TABLE log_sealed (
    idx            BIGINT PRIMARY KEY REFERENCES log_entries (idx),
    repository_id  BIGINT NOT NULL REFERENCES repositories (id),
    nonce          BYTEA NOT NULL CHECK (length(nonce) = 32),
    body           BYTEA NOT NULL
);
CREATE INDEX log_sealed_by_repository ON log_sealed (repository_id, idx);
