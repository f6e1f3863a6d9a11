-- Evidence files attached to security reports: stored like any blob, scanned, kept alive by
-- the garbage collector while the report exists, and visible only to those who see the report.
CREATE TABLE report_attachments (
    id           BIGSERIAL PRIMARY KEY,
    report_id    BIGINT NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    sha256       BYTEA NOT NULL,
    size         BIGINT NOT NULL,
    uploaded_by  BIGINT NOT NULL REFERENCES namespaces (id),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX report_attachments_sha256_idx ON report_attachments (sha256);
