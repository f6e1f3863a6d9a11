-- The stored licence decision of each repository's `main` head, kept on the repository row so
-- that an organisation's licence report filtered by a decision walks an index of exactly the
-- matching repositories (a rare decision no longer reads the whole organisation). NULL: no
-- evaluation of the head yet ("pending"). Triggers on `refs` and `license_evaluations` keep it
-- equal to the join it replaces; a test checks the two after every kind of change.
ALTER TABLE repositories ADD COLUMN head_decision TEXT;

UPDATE repositories r SET head_decision = e.decision
FROM refs f JOIN license_evaluations e ON e.repository_id = f.repository_id AND e.commit_id = f.commit_id
WHERE f.repository_id = r.id AND f.name = 'main';

CREATE INDEX repositories_namespace_head_decision ON repositories (namespace_id, head_decision, name)
    WHERE deleted_at IS NULL;
-- The search's commercial-use filter: the few repositories whose head denies or needs review
-- are found here, and a common answer is read from the row itself while the sort's index is
-- walked (no lookup of the head's evaluation).
CREATE INDEX repositories_head_decision ON repositories (head_decision) WHERE deleted_at IS NULL;

-- Recomputes the column for the repositories in `changed`. Their rows are locked first, in id
-- order, by one statement; the UPDATE after it takes a fresh snapshot (READ COMMITTED), so it
-- sees a ref move or evaluation that a concurrent transaction committed while this one waited
-- for the lock: the last writer always computes from both.
CREATE FUNCTION refresh_head_decisions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM repositories
    WHERE id IN (SELECT repository_id FROM changed) ORDER BY id FOR UPDATE;
    -- Only rows whose decision changes are written (a ref move without an evaluation, the usual
    -- case, leaves no dead row version behind).
    UPDATE repositories r SET head_decision = h.decision
    FROM (SELECT c.repository_id AS id,
                 (SELECT e.decision FROM refs f
                  JOIN license_evaluations e ON e.repository_id = f.repository_id AND e.commit_id = f.commit_id
                  WHERE f.repository_id = c.repository_id AND f.name = 'main') AS decision
          FROM (SELECT DISTINCT repository_id FROM changed) c) h
    WHERE r.id = h.id AND r.head_decision IS DISTINCT FROM h.decision;
    RETURN NULL;
END $$;

-- Transition tables allow one event per trigger.
CREATE TRIGGER refs_insert_head_decision AFTER INSERT ON refs
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION refresh_head_decisions();
CREATE TRIGGER refs_update_head_decision AFTER UPDATE ON refs
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION refresh_head_decisions();
CREATE TRIGGER refs_delete_head_decision AFTER DELETE ON refs
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION refresh_head_decisions();
CREATE TRIGGER evaluations_insert_head_decision AFTER INSERT ON license_evaluations
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION refresh_head_decisions();
CREATE TRIGGER evaluations_update_head_decision AFTER UPDATE ON license_evaluations
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION refresh_head_decisions();
CREATE TRIGGER evaluations_delete_head_decision AFTER DELETE ON license_evaluations
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION refresh_head_decisions();
