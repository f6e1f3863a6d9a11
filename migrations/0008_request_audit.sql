-- Every state-changing request is audited with its token, client address and result, and
-- every event is tied to the namespace it concerns so that organisation admins can query it.
ALTER TABLE audit_events
    ADD COLUMN token_id     BIGINT,
    ADD COLUMN client_addr  TEXT,
    ADD COLUMN result       INT,
    ADD COLUMN namespace    TEXT;
UPDATE audit_events SET namespace = split_part(split_part(target, ':', 2), '/', 1)
    WHERE target LIKE 'repo:%' OR target LIKE 'namespace:%' OR target LIKE 'org:%';
CREATE INDEX audit_events_namespace_idx ON audit_events (lower(namespace), id);
