-- Community security review: reports on repositories, revisions or files, visible only to
-- their reporter, the repository's admins and reviewers until published; reviewer roles;
-- advisories whose affected blobs flag every repository that holds the same bytes.
ALTER TABLE namespaces ADD COLUMN is_reviewer BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE org_reviewers (
    org_id   BIGINT NOT NULL REFERENCES namespaces (id) ON DELETE CASCADE,
    user_id  BIGINT NOT NULL REFERENCES namespaces (id) ON DELETE CASCADE,
    PRIMARY KEY (org_id, user_id)
);

CREATE TABLE reports (
    id             BIGSERIAL PRIMARY KEY,
    repository_id  BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    commit_id      TEXT,
    path           TEXT,
    sha256         BYTEA,
    reporter_id    BIGINT NOT NULL REFERENCES namespaces (id),
    category       TEXT NOT NULL CHECK (category IN ('malicious-code', 'backdoor', 'license-violation', 'leaked-data', 'unsafe-format', 'other')),
    description    TEXT NOT NULL,
    evidence       TEXT NOT NULL DEFAULT '',
    status         TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'needs-info', 'confirmed', 'dismissed', 'published')),
    resolution     TEXT,
    disclosure_at  TIMESTAMPTZ NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX reports_repository_idx ON reports (repository_id, id);

CREATE TABLE report_comments (
    id          BIGSERIAL PRIMARY KEY,
    report_id   BIGINT NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    author_id   BIGINT NOT NULL REFERENCES namespaces (id),
    body        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE advisories (
    id            TEXT PRIMARY KEY,
    report_id     BIGINT NOT NULL REFERENCES reports (id),
    severity      TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    summary       TEXT NOT NULL,
    details       TEXT NOT NULL,
    remediation   TEXT NOT NULL,
    created_by    BIGINT NOT NULL REFERENCES namespaces (id),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    modified_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at  TIMESTAMPTZ
);

CREATE TABLE advisory_affected (
    advisory_id    TEXT NOT NULL REFERENCES advisories (id) ON DELETE CASCADE,
    repository_id  BIGINT REFERENCES repositories (id) ON DELETE SET NULL,
    repository     TEXT NOT NULL,
    commit_id      TEXT,
    path           TEXT,
    sha256         BYTEA NOT NULL,
    PRIMARY KEY (advisory_id, sha256, repository)
);
CREATE INDEX advisory_affected_sha256_idx ON advisory_affected (sha256);
