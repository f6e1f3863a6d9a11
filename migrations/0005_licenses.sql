-- Licence compliance: one policy per namespace (organisation or user) and the stored
-- evaluation of each commit, re-done when the catalog version or the policy changes.
CREATE TABLE license_policies (
    namespace_id  BIGINT PRIMARY KEY REFERENCES namespaces (id) ON DELETE CASCADE,
    document      JSONB NOT NULL,
    version       INT NOT NULL DEFAULT 1,
    updated_by    BIGINT REFERENCES namespaces (id),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE license_evaluations (
    repository_id    BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    commit_id        TEXT NOT NULL,
    catalog_version  TEXT NOT NULL,
    policy_version   INT NOT NULL,
    decision         TEXT NOT NULL CHECK (decision IN ('allow', 'allow_with_obligations', 'flag_review', 'deny')),
    effective        TEXT,
    report           JSONB NOT NULL,
    evaluated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, commit_id)
);
CREATE INDEX license_evaluations_decision ON license_evaluations (decision);

-- Acceptances of licences that require one before download (Llama, Gemma, research
-- licences): exactly which licence version a user accepted, and when.
CREATE TABLE license_acceptances (
    repository_id    BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    user_id          BIGINT NOT NULL REFERENCES namespaces (id),
    license_id       TEXT NOT NULL,
    license_version  TEXT NOT NULL,
    accepted_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, user_id, license_id, license_version)
);
