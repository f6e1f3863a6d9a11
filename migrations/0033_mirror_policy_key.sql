-- The licence gate a mirrored commit's refusal was decided under: a digest of the policy
-- namespace, its policy document and the licence catalog's version (null: no licence gate).
-- A commit whose key is not the gate in force is evaluated again before it is served, so a
-- policy change reaches what was mirrored before it.
ALTER TABLE mirrored_commits ADD COLUMN policy_key TEXT;
