-- Fills a hub's database with $1 repositories in the shapes the API writes (for the search-plan
-- tests and scripts/bench-scale.sh): a namespace per 100 repositories, a tenth of them private,
-- a card (with a task and one of a thousand tags) and a description that mention a kind and a
-- number, a head commit on `main`, a licence evaluation for every fifth one, a verification for
-- every tenth, a file for one in a hundred, and rare values of each. Cheap enough for a million
-- rows.
INSERT INTO namespaces (name, kind)
SELECT 'scale-org-' || g, 'org' FROM generate_series(1, greatest($1 / 100, 1)) g;

INSERT INTO repositories (namespace_id, name, visibility, description, card, license, created_at, updated_at)
SELECT (SELECT min(id) FROM namespaces WHERE name LIKE 'scale-org-%') + g % greatest($1 / 100, 1),
       'model-' || g,
       CASE WHEN g % 10 = 0 THEN 'private' ELSE 'public' END,
       'a ' || (ARRAY['text', 'vision', 'speech', 'tabular'])[1 + g % 4] || ' model, number ' || g,
       E'---\nlicense: ' || (ARRAY['mit', 'apache-2.0', 'llama3', 'other'])[1 + g % 4]
           || E'\npipeline_tag: ' || (ARRAY['translation', 'object-detection', 'automatic-speech-recognition', 'time-series-forecasting'])[1 + g % 4]
           || E'\ntags:\n- tag' || (g % 1000)
           || E'\n---\n# Model ' || g || ' for ' || (ARRAY['translation', 'detection', 'transcription', 'forecasting'])[1 + g % 4]
           || ' with vocabulary word' || (g % 5000),
       (ARRAY['mit', 'apache-2.0', 'llama3', 'other'])[1 + g % 4],
       now() - g * interval '2 seconds',
       now() - g * interval '1 second'
FROM generate_series(1, $1) g;

INSERT INTO commits (repository_id, id, parent_id, author_id, author_name, message, created_at, file_count, total_size)
SELECT r.id, lpad(to_hex(r.id), 40, '0'), NULL, r.namespace_id, 'seed', 'Initial commit', r.created_at, 0, 0
FROM repositories r JOIN namespaces n ON n.id = r.namespace_id WHERE n.name LIKE 'scale-org-%';

INSERT INTO refs (repository_id, name, kind, commit_id)
SELECT c.repository_id, 'main', 'branch', c.id
FROM commits c JOIN repositories r ON r.id = c.repository_id JOIN namespaces n ON n.id = r.namespace_id
WHERE n.name LIKE 'scale-org-%';

-- One evaluation in a thousand denies (a rare decision, with a rare category); the others allow.
INSERT INTO license_evaluations (repository_id, commit_id, catalog_version, policy_version, decision, effective, report)
SELECT c.repository_id, c.id, 'seed', 0,
       CASE WHEN c.repository_id % 1000 = 5 THEN 'deny' ELSE 'allow' END,
       (ARRAY['MIT', 'Apache-2.0', 'LicenseRef-scancode-llama-3-license'])[1 + c.repository_id % 3],
       jsonb_build_object('terms', jsonb_build_array(jsonb_build_object('categories',
           CASE WHEN c.repository_id % 1000 = 5 THEN '["non-commercial"]'::jsonb
                ELSE '["permissive"]'::jsonb END)))
FROM commits c JOIN repositories r ON r.id = c.repository_id JOIN namespaces n ON n.id = r.namespace_id
WHERE n.name LIKE 'scale-org-%' AND c.repository_id % 5 = 0;

-- Every tenth head was verified; one in a thousand failed.
INSERT INTO model_verifications (repository_id, commit_id, status)
SELECT c.repository_id, c.id, CASE WHEN c.repository_id % 1000 = 17 THEN 'failed' ELSE 'passed' END
FROM commits c JOIN repositories r ON r.id = c.repository_id JOIN namespaces n ON n.id = r.namespace_id
WHERE n.name LIKE 'scale-org-%' AND c.repository_id % 10 = 7;

-- One head in a thousand holds a malicious file (quarantined); one in a hundred a clean one.
INSERT INTO blobs (sha256, size, scan_verdict)
VALUES (sha256('scale-seed malicious'), 1, 'malicious'), (sha256('scale-seed clean'), 1, 'clean');
INSERT INTO commit_files (repository_id, commit_id, path, sha256, size)
SELECT c.repository_id, c.id, 'model.pkl',
       CASE WHEN c.repository_id % 1000 = 3 THEN sha256('scale-seed malicious') ELSE sha256('scale-seed clean') END, 1
FROM commits c JOIN repositories r ON r.id = c.repository_id JOIN namespaces n ON n.id = r.namespace_id
WHERE n.name LIKE 'scale-org-%' AND (c.repository_id % 1000 = 3 OR c.repository_id % 100 = 1);

-- The triggers of migration 0030 rewrote the evaluated repositories' rows: vacuumed, as
-- autovacuum would leave a live hub.
VACUUM ANALYZE;
