-- Every `serve` and `worker` process registers here and renews a heartbeat; the collector treats
-- staging objects of a process whose heartbeat stopped as crash leftovers and removes them.
CREATE TABLE hub_processes (
    id            TEXT PRIMARY KEY,
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
