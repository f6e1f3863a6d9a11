-- Gated repositories: files are downloadable only by members and by users whose access request
-- was accepted (automatically for `auto`, by an admin of the repository for `manual`).
ALTER TABLE repositories ADD COLUMN gated TEXT NOT NULL DEFAULT 'none' CHECK (gated IN ('none', 'auto', 'manual'));

CREATE TABLE access_requests (
    repository_id  BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    user_id        BIGINT NOT NULL REFERENCES namespaces (id),
    status         TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected')),
    requested_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    decided_at     TIMESTAMPTZ,
    decided_by     BIGINT REFERENCES namespaces (id),
    PRIMARY KEY (repository_id, user_id)
);
