-- Secrets the hub generates for itself, shared by every replica (e.g. the key that signs
-- short-lived upload URLs handed to Hugging Face clients).
CREATE TABLE hub_secrets (
    name        TEXT PRIMARY KEY,
    value       BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
