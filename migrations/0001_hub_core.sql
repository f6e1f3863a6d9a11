-- Hub core: accounts, repositories, content-addressed commits, the job queue and the audit log.
-- Applied migrations are never edited: add a new file instead (see migrations/README.md).

-- A namespace is a user or an organisation; both own repositories under `namespace/name`.
-- Names are unique case-insensitively and never reused, so links cannot be hijacked.
CREATE TABLE namespaces (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('user', 'org')),
    is_admin    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX namespaces_name_key ON namespaces (lower(name));

CREATE TABLE memberships (
    org_id      BIGINT NOT NULL REFERENCES namespaces (id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL REFERENCES namespaces (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'write', 'read')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

-- Tokens are stored as the sha256 of the secret: a leaked table grants nothing.
CREATE TABLE api_tokens (
    id            BIGSERIAL PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES namespaces (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    token_hash    BYTEA NOT NULL UNIQUE,
    scope         TEXT NOT NULL CHECK (scope IN ('read', 'write')),
    expires_at    TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    last_used_at  TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

CREATE TABLE repositories (
    id            BIGSERIAL PRIMARY KEY,
    namespace_id  BIGINT NOT NULL REFERENCES namespaces (id),
    name          TEXT NOT NULL,
    visibility    TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
    description   TEXT NOT NULL DEFAULT '',
    -- README.md of the default branch (truncated), kept for search and display.
    card          TEXT NOT NULL DEFAULT '',
    -- The license declared by the card's front matter or the API (raw; the license engine
    -- normalises it).
    license       TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at    TIMESTAMPTZ,
    deleted_by    BIGINT REFERENCES namespaces (id)
);
-- One live repository per name; deleted ones keep their row so that the name stays reserved for
-- the grace period.
CREATE UNIQUE INDEX repositories_live_name_key
    ON repositories (namespace_id, lower(name)) WHERE deleted_at IS NULL;
CREATE INDEX repositories_search_idx
    ON repositories USING gin (to_tsvector('simple', name || ' ' || description || ' ' || card));

-- Every distinct blob the hub holds. `last_seen_at` is refreshed by each upload of the bytes, so
-- the garbage collector never removes a blob that an upload in progress is about to reference.
CREATE TABLE blobs (
    sha256        BYTEA PRIMARY KEY CHECK (length(sha256) = 32),
    size          BIGINT NOT NULL CHECK (size >= 0),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Proof of possession: a commit may reference a blob only if it is already in the repository's
-- history or was uploaded to this repository. Knowing a digest is not enough to obtain its bytes.
CREATE TABLE repository_uploads (
    repository_id  BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    sha256         BYTEA NOT NULL REFERENCES blobs (sha256),
    uploaded_by    BIGINT NOT NULL REFERENCES namespaces (id),
    uploaded_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, sha256)
);

CREATE TABLE commits (
    repository_id  BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    id             TEXT NOT NULL CHECK (id ~ '^[0-9a-f]{40}$'),
    parent_id      TEXT,
    author_id      BIGINT NOT NULL REFERENCES namespaces (id),
    author_name    TEXT NOT NULL,
    message        TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    file_count     INTEGER NOT NULL,
    total_size     BIGINT NOT NULL,
    PRIMARY KEY (repository_id, id)
);

-- The full snapshot of each commit: path -> blob. Commits are immutable, so are these rows.
CREATE TABLE commit_files (
    repository_id  BIGINT NOT NULL,
    commit_id      TEXT NOT NULL,
    path           TEXT NOT NULL,
    sha256         BYTEA NOT NULL REFERENCES blobs (sha256),
    size           BIGINT NOT NULL,
    PRIMARY KEY (repository_id, commit_id, path),
    FOREIGN KEY (repository_id, commit_id) REFERENCES commits (repository_id, id) ON DELETE CASCADE
);
CREATE INDEX commit_files_sha256_idx ON commit_files (sha256);

CREATE TABLE refs (
    repository_id  BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('branch', 'tag')),
    commit_id      TEXT NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, name),
    FOREIGN KEY (repository_id, commit_id) REFERENCES commits (repository_id, id)
);

-- The background job queue. Workers claim with FOR UPDATE SKIP LOCKED and hold a lease that a
-- heartbeat renews; a job whose lease ran out is claimable again.
CREATE TABLE jobs (
    id            BIGSERIAL PRIMARY KEY,
    kind          TEXT NOT NULL,
    payload       JSONB NOT NULL,
    state         TEXT NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL DEFAULT 5,
    run_after     TIMESTAMPTZ NOT NULL DEFAULT now(),
    locked_by     TEXT,
    lease_until   TIMESTAMPTZ,
    last_error    TEXT,
    request_id    TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at   TIMESTAMPTZ
);
CREATE INDEX jobs_claimable_idx ON jobs (run_after, id) WHERE state = 'queued';
CREATE INDEX jobs_running_idx ON jobs (lease_until) WHERE state = 'running';

CREATE TABLE audit_events (
    id          BIGSERIAL PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor_id    BIGINT REFERENCES namespaces (id),
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    details     JSONB NOT NULL DEFAULT '{}',
    request_id  TEXT
);
CREATE INDEX audit_events_target_idx ON audit_events (target, at);
