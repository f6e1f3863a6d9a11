-- Upload security scanning: one stored result per (blob, scanner version); the blob row carries
-- the current verdict and the quarantine state that downloads obey.

CREATE TABLE blob_scans (
    sha256           BYTEA NOT NULL REFERENCES blobs (sha256) ON DELETE CASCADE,
    scanner_version  TEXT NOT NULL,
    verdict          TEXT NOT NULL CHECK (verdict IN ('clean', 'suspicious', 'error', 'malformed', 'malicious')),
    format           TEXT NOT NULL,
    findings         JSONB NOT NULL,
    scanned_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (sha256, scanner_version)
);

-- The verdict of the newest stored scan; it changes only when a new result is stored.
ALTER TABLE blobs ADD COLUMN scan_verdict TEXT;
ALTER TABLE blobs ADD COLUMN scan_version TEXT;
-- An admin's release of a malicious blob (audited): downloads are allowed again.
ALTER TABLE blobs ADD COLUMN released_at TIMESTAMPTZ;
ALTER TABLE blobs ADD COLUMN released_by BIGINT REFERENCES namespaces (id);
ALTER TABLE blobs ADD COLUMN release_reason TEXT;

-- Lower runs first, so background rescans never delay the scans of new uploads.
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
DROP INDEX jobs_claimable_idx;
CREATE INDEX jobs_claimable_idx ON jobs (priority, run_after, id) WHERE state = 'queued';
-- At most one pending scan per blob.
CREATE UNIQUE INDEX jobs_pending_scan_key ON jobs ((payload ->> 'sha256'))
    WHERE kind = 'scan-blob' AND state IN ('queued', 'running');
