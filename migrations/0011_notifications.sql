-- Notifications: repository watchers, an in-app list per user, and webhooks per namespace
-- with a delivery log (deliveries are retried with backoff by the job queue).
CREATE TABLE watchers (
    repository_id  BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    user_id        BIGINT NOT NULL REFERENCES namespaces (id) ON DELETE CASCADE,
    PRIMARY KEY (repository_id, user_id)
);

CREATE TABLE notifications (
    id             BIGSERIAL PRIMARY KEY,
    user_id        BIGINT NOT NULL REFERENCES namespaces (id) ON DELETE CASCADE,
    repository_id  BIGINT REFERENCES repositories (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL,
    payload        JSONB NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    read_at        TIMESTAMPTZ
);
CREATE INDEX notifications_user_idx ON notifications (user_id, id);

-- The secret signs deliveries, so it is kept (it cannot be hashed); it is shown once.
CREATE TABLE webhooks (
    id            BIGSERIAL PRIMARY KEY,
    namespace_id  BIGINT NOT NULL REFERENCES namespaces (id) ON DELETE CASCADE,
    url           TEXT NOT NULL,
    secret        TEXT NOT NULL,
    created_by    BIGINT REFERENCES namespaces (id),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at    TIMESTAMPTZ
);

CREATE TABLE webhook_deliveries (
    id               BIGSERIAL PRIMARY KEY,
    webhook_id       BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event            JSONB NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         INT NOT NULL DEFAULT 0,
    response_status  INT,
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at     TIMESTAMPTZ
);
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, id);
