-- When a mirrored repository was last read (refreshed at most once a minute): the mirror's
-- storage budget evicts the least recently used first.
ALTER TABLE mirrored_repos ADD COLUMN last_used_at TIMESTAMPTZ NOT NULL DEFAULT now();
