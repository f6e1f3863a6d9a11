-- Reviewers can hold a reported file pending review (its bytes are not served, like a
-- malicious scan verdict), and attest that they reviewed a revision and found no issues.
ALTER TABLE blobs
    ADD COLUMN held_at      TIMESTAMPTZ,
    ADD COLUMN held_reason  TEXT;

CREATE TABLE review_attestations (
    id             BIGSERIAL PRIMARY KEY,
    repository_id  BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    commit_id      TEXT NOT NULL,
    reviewer_id    BIGINT NOT NULL REFERENCES namespaces (id),
    scope          TEXT NOT NULL,
    notes          TEXT NOT NULL DEFAULT '',
    bundle         BYTEA NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX review_attestations_commit_idx ON review_attestations (repository_id, commit_id);
