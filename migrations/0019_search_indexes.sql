-- Search that stays fast as the hub grows: every text condition a search combines with OR must be
-- served by an index, or PostgreSQL reads every repository (and every card) for each search.

-- Trigram indexes (pg_trgm ships with Debian's PostgreSQL) serve `ILIKE '%text%'`.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- `namespace/name`, kept by a trigger so that every way a row is written (the hub, a restore, a
-- test's fixture) fills it; namespaces are never renamed.
ALTER TABLE repositories ADD COLUMN full_name TEXT;

CREATE FUNCTION repositories_full_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.full_name := (SELECT name FROM namespaces WHERE id = NEW.namespace_id) || '/' || NEW.name;
    RETURN NEW;
END $$;

CREATE TRIGGER repositories_full_name
    BEFORE INSERT OR UPDATE OF name, namespace_id ON repositories
    FOR EACH ROW EXECUTE FUNCTION repositories_full_name();

UPDATE repositories r SET full_name = n.name || '/' || r.name FROM namespaces n WHERE n.id = r.namespace_id;
ALTER TABLE repositories ALTER COLUMN full_name SET NOT NULL;

-- Substring matches on the name, and the name sort (keyset on lower(full_name), id).
CREATE INDEX repositories_full_name_trgm ON repositories USING gin (full_name gin_trgm_ops);
CREATE INDEX repositories_name_order ON repositories (lower(full_name), id) WHERE deleted_at IS NULL;
-- The time sorts (keyset on the time and the id, newest first).
CREATE INDEX repositories_updated_order ON repositories (updated_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX repositories_created_order ON repositories (created_at DESC, id DESC) WHERE deleted_at IS NULL;
-- The declared licence filter (case-insensitive), and the effective one of the evaluations.
CREATE INDEX repositories_license_lower ON repositories (lower(license));
CREATE INDEX license_evaluations_effective_lower ON license_evaluations (lower(effective));
