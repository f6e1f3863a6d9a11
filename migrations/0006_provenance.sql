-- Provenance: keys and certificate anchors namespaces trust for publisher signatures, the
-- verification result of each commit, and the hub's own attestation keys.
CREATE TABLE signing_keys (
    id            BIGSERIAL PRIMARY KEY,
    namespace_id  BIGINT NOT NULL REFERENCES namespaces (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('key', 'anchor')),
    pem           TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    created_by    BIGINT REFERENCES namespaces (id),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at    TIMESTAMPTZ,
    UNIQUE (namespace_id, fingerprint)
);

CREATE TABLE signature_verifications (
    repository_id  BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    commit_id      TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('verified', 'invalid', 'unsigned', 'unverifiable-offline')),
    result         JSONB NOT NULL,
    verified_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, commit_id)
);

-- The hub signs commit attestations with the newest unretired key. Private keys cannot be
-- hashed; they stay in the database, readable only by the hub's role.
CREATE TABLE attestation_keys (
    id           BIGSERIAL PRIMARY KEY,
    private_pem  TEXT NOT NULL,
    public_pem   TEXT NOT NULL,
    fingerprint  TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    retired_at   TIMESTAMPTZ
);
