-- The licence engine reads, of a commit, only its card, licence texts, notices and a few GGUF
-- headers (kaiyuan_license::folder's rules). These partial indexes hold exactly the candidate
-- rows, so reading a commit's licence facts costs the same at ten files or a hundred thousand.
-- The predicates are written once more, byte for byte, in db/commits.rs (LICENCE_FACT_PATHS,
-- GGUF_PATHS): PostgreSQL uses a partial index only for a query that repeats its predicate, and
-- a plan test fails if the two drift apart. The candidate test is a superset of the engine's
-- rules (letters matched case by case, so no locale changes it; any non-ASCII path is a
-- candidate, since Rust's Unicode case mapping may turn it into a licence name); the hub applies
-- the exact rules to the rows.
CREATE INDEX commit_files_licence_facts ON commit_files (repository_id, commit_id, path COLLATE "C")
  WHERE path !~ '/.*/' AND (path ~ '(^|/)([Ll][Ii][Cc][Ee][Nn][CcSs][Ee]|[Cc][Oo][Pp][Yy][Ii][Nn][Gg]|[Uu][Ss][Ee][_-][Pp][Oo][Ll][Ii][Cc][Yy]|[Nn][Oo][Tt][Ii][Cc][Ee]|[Rr][Ee][Aa][Dd][Mm][Ee]\.[Mm][Dd])[^/]*$' OR path ~ '^[Ll][Ii][Cc][Ee][Nn][CcSs][Ee][Ss]/' OR path ~ '[^\x01-\x7f]');
CREATE INDEX commit_files_gguf ON commit_files (repository_id, commit_id, path COLLATE "C")
  WHERE path ~ '\.[Gg][Gg][Uu][Ff]$';
