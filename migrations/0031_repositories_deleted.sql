-- The collector purges the content of repositories deleted longer ago than the grace period.
-- Without this index each run read every repository three times (0.4 s per statement at a
-- million); with it, only the deleted ones, which this partial index holds.
CREATE INDEX repositories_deleted ON repositories (deleted_at) WHERE deleted_at IS NOT NULL;
