-- Browser sessions of the web UI. A session is opened by signing in with an API token and lives
-- no longer than that token: revoking the token ends its sessions. The cookie's secret is stored
-- as sha256 only; the CSRF token is per session.
CREATE TABLE web_sessions (
    id_hash     BYTEA PRIMARY KEY CHECK (length(id_hash) = 32),
    token_id    BIGINT NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    csrf        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX web_sessions_token ON web_sessions (token_id);
