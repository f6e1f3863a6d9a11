-- Mirror mode: repositories fetched from an upstream hub, and which upstream commit each local
-- mirrored commit holds (clients ask by the upstream's commit ids).
CREATE TABLE mirrored_repos (
    repository_id BIGINT PRIMARY KEY REFERENCES repositories (id),
    upstream      TEXT NOT NULL,
    upstream_repo TEXT NOT NULL,
    synced_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE mirrored_commits (
    repository_id   BIGINT NOT NULL REFERENCES repositories (id),
    upstream_commit TEXT NOT NULL,
    commit_id       TEXT NOT NULL,
    fetched_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, upstream_commit)
);

-- Why the mirror refuses to serve a mirrored commit (the organisation's licence policy denies
-- it), or null: served.
ALTER TABLE mirrored_commits ADD COLUMN refusal TEXT;
