-- Sample-inference verification: one row per verified commit with each ONNX model's report,
-- and a capability a job needs from its worker (`gpu`: only workers started with `--ep cuda`
-- claim it).
ALTER TABLE jobs ADD COLUMN requires TEXT;

CREATE TABLE model_verifications (
    repository_id  BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    commit_id      TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'running', 'passed', 'failed', 'error')),
    -- `any`, `cpu` or `cuda`: what the last request asked for.
    requested_ep   TEXT NOT NULL DEFAULT 'any',
    -- [{path, status, report}] per ONNX model, in path order.
    files          JSONB NOT NULL DEFAULT '[]',
    worker         TEXT,
    -- Runs started for this commit (a worker that died mid-run leaves a second start).
    runs_started   INT NOT NULL DEFAULT 0,
    queued_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at     TIMESTAMPTZ,
    finished_at    TIMESTAMPTZ,
    PRIMARY KEY (repository_id, commit_id)
);
