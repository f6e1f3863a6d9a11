//! Reads that grow with content stay flat: tree listings, history, a namespace's licence report
//! and the garbage collector's walk are served by their indexes (plans read on a seeded database
//! with sequential scans priced out, as in `search_plans`), and their pages, walked to the end,
//! answer what one unpaged read did.

use kaiyuan_hub::db::{blobs, commits, licenses};
use kaiyuan_tests::spawn_app;
use serde_json::Value;
use sqlx::{Connection, PgPool};

/// A user `owner` with `owner/files` (one commit of 4000 files, half in 40 folders), `owner/history`
/// (2000 commits in a chain) and 3000 more repositories with a head and, for every other one, a
/// stored licence evaluation; 20,000 blobs in all. Returns the repositories' ids and head commits.
async fn seed(pool: &PgPool) -> (i64, String, i64, String) {
    let statements = [
        "INSERT INTO namespaces (name, kind) VALUES ('owner', 'user')",
        "INSERT INTO repositories (namespace_id, name, visibility)
         SELECT id, r, 'public' FROM namespaces, unnest(ARRAY['files', 'history']) r WHERE name = 'owner'",
        "INSERT INTO repositories (namespace_id, name, visibility)
         SELECT id, 'model-' || lpad(g::text, 5, '0'), 'public' FROM namespaces, generate_series(1, 3000) g
         WHERE name = 'owner'",
        "INSERT INTO blobs (sha256, size) SELECT sha256(convert_to('b' || g, 'UTF8')), g
         FROM generate_series(1, 20000) g",
        "INSERT INTO commits (repository_id, id, parent_id, author_id, author_name, message, created_at, file_count, total_size)
         SELECT r.id, substr(encode(sha256(convert_to('c' || r.id || '-' || g, 'UTF8')), 'hex'), 1, 40),
                CASE WHEN g > 1 THEN substr(encode(sha256(convert_to('c' || r.id || '-' || (g - 1), 'UTF8')), 'hex'), 1, 40) END,
                r.namespace_id, 'seed', 'Commit ' || g, now(), 0, 0
         FROM repositories r, generate_series(1, CASE r.name WHEN 'history' THEN 2000 ELSE 1 END) g",
        "INSERT INTO commit_files (repository_id, commit_id, path, sha256, size)
         SELECT r.id, substr(encode(sha256(convert_to('c' || r.id || '-1', 'UTF8')), 'hex'), 1, 40),
                CASE WHEN g % 2 = 0 THEN 'layers/' || (g % 40) || '/w' || g ELSE 'f' || g END,
                sha256(convert_to('b' || g, 'UTF8')), g
         FROM repositories r, generate_series(1, 4000) g WHERE r.name = 'files'",
        "INSERT INTO refs (repository_id, name, kind, commit_id)
         SELECT repository_id, 'main', 'branch', (array_agg(id ORDER BY length(message) DESC, message DESC))[1]
         FROM commits GROUP BY repository_id",
        "INSERT INTO license_evaluations (repository_id, commit_id, catalog_version, policy_version, decision, effective, report)
         SELECT repository_id, commit_id, 'seed', 0, 'deny', 'MIT', '{}'::jsonb FROM refs WHERE repository_id % 2 = 0",
        "ANALYZE",
    ];
    for statement in statements {
        sqlx::query(statement).execute(pool).await.unwrap();
    }
    let head = |name: &'static str| async move {
        sqlx::query_as::<_, (i64, String)>(
            "SELECT r.id, f.commit_id FROM repositories r JOIN refs f ON f.repository_id = r.id
             WHERE r.name = $1",
        )
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap()
    };
    let (files, files_head) = head("files").await;
    let (history, history_head) = head("history").await;
    (files, files_head, history, history_head)
}

/// Runs `explain` with sequential scans priced out and checks the plan names `index` and reads
/// none of `tables` whole.
async fn assert_plan<F>(pool: &PgPool, index: &str, tables: &[&str], explain: F)
where
    F: for<'c> AsyncFnOnce(&'c mut sqlx::PgConnection) -> String,
{
    assert_plan_any(pool, &[index], tables, explain).await;
}

/// [`assert_plan`] where any one of `indexes` serves (PostgreSQL may pick either).
async fn assert_plan_any<F>(pool: &PgPool, indexes: &[&str], tables: &[&str], explain: F)
where
    F: for<'c> AsyncFnOnce(&'c mut sqlx::PgConnection) -> String,
{
    let mut conn = pool.acquire().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SET LOCAL enable_seqscan = off")
        .execute(&mut *tx)
        .await
        .unwrap();
    let plan = explain(&mut *tx).await;
    assert!(
        indexes.iter().any(|i| plan.contains(i)),
        "expected one of {indexes:?}:\n{plan}"
    );
    for table in tables {
        assert!(
            !plan.contains(&format!("Seq Scan on {table}")),
            "reads every row of {table}:\n{plan}"
        );
    }
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn tree_listings_walk_the_path_index(pool: PgPool) {
    let (files, head, _, _) = seed(&pool).await;
    let ranges = [
        commits::FileRange::new(files, &head, "", None),
        commits::FileRange::new(files, &head, "", Some("f2001")),
        commits::FileRange::new(files, &head, "layers/", Some("layers/12/")),
    ];
    for range in &ranges {
        for listing in [
            commits::Listing::Files,
            commits::Listing::FileScans,
            commits::Listing::Children,
        ] {
            assert_plan(
                &pool,
                "commit_files_path_order",
                &["commit_files"],
                async |c| {
                    commits::explain_listing(c, listing, range, 101)
                        .await
                        .unwrap()
                },
            )
            .await;
        }
    }
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn history_follows_parents_by_primary_key(pool: PgPool) {
    let (_, _, history, head) = seed(&pool).await;
    assert_plan(&pool, "commits_pkey", &["commits"], async |c| {
        commits::explain_history(c, history, &head, 50)
            .await
            .unwrap()
    })
    .await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn licence_reports_page_through_the_name_index(pool: PgPool) {
    seed(&pool).await;
    // A rare decision: 30 of the 3002 repositories.
    sqlx::query(
        "UPDATE license_evaluations SET decision = 'flag_review' WHERE repository_id % 100 = 0",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    let owner: i64 = sqlx::query_scalar("SELECT id FROM namespaces WHERE name = 'owner'")
        .fetch_one(&pool)
        .await
        .unwrap();
    // The whole report walks the name index; a rare decision an index of that decision's
    // repositories (the namespace's or the hub's: either reads only those). A common one (`deny` and `pending`, half each) may
    // take either: both stop after a page.
    for (after, decision, indexes) in [
        (None, None, &["repositories_namespace_name_order"][..]),
        (
            Some("model-01500"),
            None,
            &["repositories_namespace_name_order"],
        ),
        (
            None,
            Some("flag_review"),
            &[
                "repositories_namespace_head_decision",
                "repositories_head_decision",
            ],
        ),
        (
            Some("model-01500"),
            Some("flag_review"),
            &[
                "repositories_namespace_head_decision",
                "repositories_head_decision",
            ],
        ),
        (
            Some("model-01500"),
            Some("deny"),
            &[
                "repositories_namespace_head_decision",
                "repositories_namespace_name_order",
            ],
        ),
        (
            None,
            Some("pending"),
            &[
                "repositories_namespace_head_decision",
                "repositories_namespace_name_order",
            ],
        ),
    ] {
        let page = licenses::ReportPage {
            namespace_id: owner,
            after,
            decision,
            limit: 101,
        };
        assert_plan_any(
            &pool,
            indexes,
            &["repositories", "refs", "license_evaluations"],
            async |c| licenses::explain_namespace_report(c, &page).await.unwrap(),
        )
        .await;
    }
}

/// Repositories whose kept head decision differs from the join it stands for (none, always).
async fn stale_head_decisions(pool: &PgPool) -> Vec<(String, Option<String>, Option<String>)> {
    sqlx::query_as(
        "SELECT r.name, r.head_decision, e.decision FROM repositories r
         LEFT JOIN refs f ON f.repository_id = r.id AND f.name = 'main'
         LEFT JOIN license_evaluations e ON e.repository_id = r.id AND e.commit_id = f.commit_id
         WHERE r.head_decision IS DISTINCT FROM e.decision",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The head decision kept on each repository equals the evaluation of its `main` head after
/// every kind of change: evaluations stored, replaced and deleted, `main` moved to a commit
/// with and without one, other refs moved, `main` deleted, many rows in one statement.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn head_decisions_follow_refs_and_evaluations(pool: PgPool) {
    seed(&pool).await;
    assert_eq!(stale_head_decisions(&pool).await, []);
    let one = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query(sql).execute(&pool).await.unwrap();
            assert_eq!(stale_head_decisions(&pool).await, [], "after: {sql}");
        }
    };
    // `history` has 2000 commits; its head is evaluated, then `main` moves back and forth.
    one("INSERT INTO license_evaluations (repository_id, commit_id, catalog_version, policy_version, decision, report)
         SELECT repository_id, commit_id, 'x', 0, 'flag_review', '{}' FROM refs f JOIN repositories r ON r.id = f.repository_id WHERE r.name = 'history'
         ON CONFLICT (repository_id, commit_id) DO UPDATE SET decision = EXCLUDED.decision").await;
    one("UPDATE refs SET commit_id = (SELECT parent_id FROM commits c WHERE c.repository_id = refs.repository_id AND c.id = refs.commit_id)
         WHERE repository_id = (SELECT id FROM repositories WHERE name = 'history')").await;
    one("INSERT INTO license_evaluations (repository_id, commit_id, catalog_version, policy_version, decision, report)
         SELECT repository_id, commit_id, 'x', 0, 'allow', '{}' FROM refs f JOIN repositories r ON r.id = f.repository_id WHERE r.name = 'history'
         ON CONFLICT (repository_id, commit_id) DO UPDATE SET decision = EXCLUDED.decision").await;
    one("UPDATE license_evaluations SET decision = 'deny' WHERE decision = 'allow'").await;
    // Every evaluated model at once: replaced, then half deleted.
    one("UPDATE license_evaluations SET decision = 'allow_with_obligations' WHERE decision = 'deny'").await;
    one("DELETE FROM license_evaluations WHERE repository_id % 4 = 0").await;
    // A tag beside `main`, and `main` itself deleted and recreated.
    one("INSERT INTO refs (repository_id, name, kind, commit_id) SELECT repository_id, 'v1', 'tag', commit_id FROM refs WHERE name = 'main'").await;
    one("DELETE FROM refs WHERE name = 'main' AND repository_id % 3 = 0").await;
    one("INSERT INTO refs (repository_id, name, kind, commit_id) SELECT repository_id, 'main', 'branch', commit_id FROM refs r WHERE name = 'v1'
         ON CONFLICT (repository_id, name) DO UPDATE SET commit_id = EXCLUDED.commit_id").await;
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM repositories WHERE head_decision IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(kept > 500, "{kept}");
}

/// An evaluation stored while another transaction moves `main` to its commit: whichever commits
/// last computes from both, so the kept decision is never left behind.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn a_concurrent_ref_move_and_evaluation_leave_the_right_head_decision(pool: PgPool) {
    let (_, _, history, head) = seed(&pool).await;
    let parent: String =
        sqlx::query_scalar("SELECT parent_id FROM commits WHERE repository_id = $1 AND id = $2")
            .bind(history)
            .bind(&head)
            .fetch_one(&pool)
            .await
            .unwrap();
    let mut moving = pool.acquire().await.unwrap();
    let mut tx = moving.begin().await.unwrap();
    sqlx::query("UPDATE refs SET commit_id = $2 WHERE repository_id = $1 AND name = 'main'")
        .bind(history)
        .bind(&parent)
        .execute(&mut *tx)
        .await
        .unwrap();
    // The evaluation of the new head, stored while the move is not committed yet.
    let evaluating = tokio::spawn({
        let pool = pool.clone();
        let parent = parent.clone();
        async move {
            sqlx::query(
                "INSERT INTO license_evaluations (repository_id, commit_id, catalog_version, policy_version, decision, report)
                 VALUES ($1, $2, 'x', 0, 'flag_review', '{}')",
            )
            .bind(history)
            .bind(&parent)
            .execute(&pool)
            .await
            .unwrap();
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    tx.commit().await.unwrap();
    evaluating.await.unwrap();
    let kept: Option<String> =
        sqlx::query_scalar("SELECT head_decision FROM repositories WHERE id = $1")
            .bind(history)
            .fetch_one(&pool)
            .await
            .unwrap();
    // (The old head's seeded decision is `deny`: a stale snapshot would have kept that.)
    assert_eq!(kept.as_deref(), Some("flag_review"));
    assert_eq!(stale_head_decisions(&pool).await, []);
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn the_collector_walks_blobs_in_batches_through_indexes(pool: PgPool) {
    seed(&pool).await;
    for index in [
        "blob_gc_candidates_pkey",
        "blobs_pkey",
        "commit_files_sha256_idx",
        "repository_uploads_sha256_idx",
        "report_attachments_sha256_idx",
    ] {
        assert_plan(
            &pool,
            index,
            &["blobs", "commit_files", "repository_uploads"],
            async |c| blobs::explain_collect_batch(c, 1000).await.unwrap(),
        )
        .await;
    }
}

/// A commit's licence facts are read from two partial indexes, not from all of its files.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn licence_facts_read_only_their_candidate_files(pool: PgPool) {
    let (files, head, _, _) = seed(&pool).await;
    for (index, which) in [
        ("commit_files_licence_facts", commits::FactFiles::Licences),
        ("commit_files_gguf", commits::FactFiles::Gguf(3)),
    ] {
        assert_plan(&pool, index, &["commit_files"], async |c| {
            commits::explain_fact_files(c, files, &head, which)
                .await
                .unwrap()
        })
        .await;
    }
}

/// The candidate rows are a superset of what the licence engine's rules read (so the partial
/// index never hides a licence), on names that differ only in case, depth, alphabet or suffix.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn licence_fact_candidates_hold_every_file_the_rules_read(pool: PgPool) {
    use kaiyuan_license::folder::{is_license_path, is_notice_file};
    let (files, head, _, _) = seed(&pool).await;
    let paths = [
        "LICENSE",
        "license.txt",
        "LICENCE.md",
        "Licence",
        "COPYING",
        "copying.lesser",
        "USE_POLICY.md",
        "use-policy.txt",
        "NOTICE",
        "notice.txt",
        "README.md",
        "readme.MD",
        "LICENSE-MODEL",
        "LICENSE_CODE",
        "text_encoder/LICENSE",
        "vae/license.md",
        "LICENSES/Apache-2.0.txt",
        "licences/MIT",
        "LICENSES/.hidden",
        "a/b/LICENSE",
        "docs/README.md",
        "sub/NOTICE",
        "lıcense",
        "ſicense",
        "LİCENSE",
        "modèle/LICENSE",
        "model.gguf",
        "q/model-Q4.GGUF",
        "a/b/c/deep.gguf",
        "LICENSE.gguf",
        "weights.bin",
        "licensed-weights.bin",
        "config.json",
        "MyLICENSE",
        "layers/9/licence",
    ];
    for (i, path) in paths.iter().enumerate() {
        sqlx::query(
            "INSERT INTO commit_files (repository_id, commit_id, path, sha256, size)
             VALUES ($1, $2, $3, sha256(convert_to('b' || $4::int, 'UTF8')), 1)",
        )
        .bind(files)
        .bind(&head)
        .bind(path)
        .bind(i as i32 + 1)
        .execute(&pool)
        .await
        .unwrap();
    }
    let mut conn = pool.acquire().await.unwrap();
    let candidates: Vec<String> =
        commits::fact_files(&mut conn, files, &head, commits::FactFiles::Licences)
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
    let gguf: Vec<String> =
        commits::fact_files(&mut conn, files, &head, commits::FactFiles::Gguf(100))
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
    for path in paths {
        let top = !path.contains('/');
        let read = is_license_path(path)
            || (top && (path.eq_ignore_ascii_case("README.md") || is_notice_file(path)));
        if read {
            assert!(
                candidates.iter().any(|c| c == path),
                "{path} not a candidate"
            );
        }
        if path.to_lowercase().ends_with(".gguf") {
            assert!(
                gguf.iter().any(|c| c == path),
                "{path} not a GGUF candidate"
            );
        }
    }
    // And the seed's 4000 plain files are not candidates: the index holds what it should.
    assert!(candidates.len() < paths.len(), "{candidates:?}");
    assert!(
        !candidates
            .iter()
            .any(|c| c == "weights.bin" || c == "a/b/LICENSE")
    );
    assert_eq!(gguf.len(), 4, "{gguf:?}");
}

/// The collector's walk, batch after batch, removes exactly the stale unreferenced blobs, with
/// more of them than one batch holds.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn the_collector_walk_removes_exactly_the_stale_unreferenced_blobs(pool: PgPool) {
    seed(&pool).await;
    sqlx::query(
        "INSERT INTO blobs (sha256, size, last_seen_at)
         SELECT sha256(convert_to('stale' || g, 'UTF8')), 1,
                now() - CASE WHEN g % 4 = 0 THEN interval '1 minute' ELSE interval '2 days' END
         FROM generate_series(1, 3000) g",
    )
    .execute(&pool)
    .await
    .unwrap();
    // Old but referenced: the seeded files' blobs.
    sqlx::query("UPDATE blobs SET last_seen_at = now() - interval '2 days' WHERE sha256 IN (SELECT sha256 FROM commit_files)")
        .execute(&pool)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let (mut after, mut removed, mut batches) = (Vec::new(), 0, 0);
    loop {
        let batch = blobs::collect_batch(&mut conn, &after, 1000, 3600)
            .await
            .unwrap();
        removed += batch.removed.len();
        batches += 1;
        match batch.last {
            Some(last) => after = last,
            None => break,
        }
    }
    assert_eq!(removed, 2250, "the stale, unreferenced blobs");
    assert!(batches > 20, "{batches} batches over 23,000 blobs");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM blobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 20_000 + 750);

    // The next run looks only at what may still go: the young unreferenced blobs (the 750, and
    // the seed's blobs that no file holds), not the referenced ones.
    let young_unreferenced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM commit_files f WHERE f.sha256 = b.sha256)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(young_unreferenced < 20_000, "{young_unreferenced}");
    let walk = async |conn: &mut sqlx::PgConnection| {
        let (mut after, mut removed, mut looked_at) = (Vec::new(), 0, 0);
        loop {
            let before: i64 =
                sqlx::query_scalar("SELECT count(*) FROM blob_gc_candidates WHERE sha256 > $1")
                    .bind(&after)
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
            let batch = blobs::collect_batch(conn, &after, 1000, 3600)
                .await
                .unwrap();
            looked_at += before.min(1000);
            removed += batch.removed.len();
            match batch.last {
                Some(last) => after = last,
                None => return (removed, looked_at),
            }
        }
    };
    assert_eq!(walk(&mut conn).await, (0, young_unreferenced));
    // A blob that loses its last reference is looked at again, and goes once it is stale.
    sqlx::query(
        "DELETE FROM commit_files WHERE sha256 IN
           (SELECT DISTINCT sha256 FROM commit_files ORDER BY sha256 LIMIT 10)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (removed, looked_at) = walk(&mut conn).await;
    assert_eq!(
        looked_at,
        young_unreferenced + 10,
        "the young ones and the ten unreferenced now"
    );
    let unreferenced_stale: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM blobs b WHERE last_seen_at < now() - interval '1 hour'
           AND NOT EXISTS (SELECT 1 FROM commit_files f WHERE f.sha256 = b.sha256)
           AND NOT EXISTS (SELECT 1 FROM repository_uploads u WHERE u.sha256 = b.sha256)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(unreferenced_stale, 0, "every stale unreferenced blob went");
    assert_eq!(removed, 10, "the ten blobs no file holds any more");
}

/// Every page of a native listing followed through `next_cursor`.
async fn native_pages(app: &kaiyuan_tests::TestApp, first: &str, key: &str) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{first}&cursor={}", urlencoding(c)),
            None => first.to_string(),
        };
        let res = app.get(&url, None).await;
        assert_eq!(res.status(), 200, "{url}");
        let body: Value = res.json().await.unwrap();
        pages.push(body[key].as_array().unwrap().clone());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return pages,
        }
    }
}

/// Every page of a Hugging Face listing followed through `Link`.
async fn follow_links(app: &kaiyuan_tests::TestApp, first: String) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut url = Some(first);
    while let Some(current) = url {
        let res = app.http.get(&current).send().await.unwrap();
        assert_eq!(res.status(), 200, "{current}");
        url = res.headers().get("link").map(|l| {
            let l = l.to_str().unwrap();
            l.trim_start_matches('<')
                .split('>')
                .next()
                .unwrap()
                .to_string()
        });
        pages.push(res.json().await.unwrap());
    }
    pages
}

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn paths(pages: &[Vec<Value>], field: &str) -> Vec<String> {
    pages
        .iter()
        .flatten()
        .map(|e| e[field].as_str().unwrap().to_string())
        .collect()
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn paged_listings_answer_what_one_read_did(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    let files: [(&str, &[u8]); 8] = [
        ("a", b"1"),
        ("b.txt", b"2"),
        ("b/c", b"3"),
        ("b/d/e", b"4"),
        ("b/d/f", b"5"),
        ("b0", b"6"),
        ("é/x", b"7"),
        ("z", b"8"),
    ];
    app.commit_files(&alice, "alice/m", &files).await;
    let mut all: Vec<String> = files.iter().map(|(p, _)| p.to_string()).collect();
    all.sort(); // byte order: `é` after `z`

    // Native: every limit pages to the same files, in byte order, and a folder stays inside.
    for limit in [1, 2, 3, 1000] {
        let pages = native_pages(
            &app,
            &format!("/api/v1/repos/alice/m/tree/main?limit={limit}"),
            "files",
        )
        .await;
        assert!(pages.iter().all(|p| p.len() <= limit));
        assert_eq!(paths(&pages, "path"), all, "limit {limit}");
        let pages = native_pages(
            &app,
            &format!("/api/v1/repos/alice/m/tree/main?path=b&limit={limit}"),
            "files",
        )
        .await;
        assert_eq!(paths(&pages, "path"), ["b/c", "b/d/e", "b/d/f"]);
    }
    let res = app
        .get("/api/v1/repos/alice/m/tree/main?limit=0", None)
        .await;
    assert_eq!(res.status(), 400);

    // Hugging Face: recursive and folder listings, each page followed through `Link`.
    for limit in [1, 2, 3, 1000] {
        let hf = |path: &str| app.url(&format!("/api/models/alice/m/tree/main{path}limit={limit}"));
        let recursive = follow_links(&app, hf("?recursive=true&")).await;
        assert!(recursive.iter().all(|p| p.len() <= limit));
        let mut typed: Vec<String> = recursive
            .iter()
            .flatten()
            .map(|e| {
                format!(
                    "{}:{}",
                    e["type"].as_str().unwrap(),
                    e["path"].as_str().unwrap()
                )
            })
            .collect();
        typed.sort();
        let mut expected: Vec<String> = all.iter().map(|p| format!("file:{p}")).collect();
        expected.extend(["directory:b", "directory:b/d", "directory:é"].map(String::from));
        expected.sort();
        assert_eq!(typed, expected, "recursive, limit {limit}");
        let top = follow_links(&app, hf("?")).await;
        assert_eq!(
            paths(&top, "path"),
            ["a", "b.txt", "b", "b0", "z", "é"],
            "top level, limit {limit}"
        );
        let sub = follow_links(&app, hf("/b?")).await;
        assert_eq!(paths(&sub, "path"), ["b/c", "b/d"], "in b, limit {limit}");
    }

    // paths-info answers files and folders from probes.
    let res = app
        .request(
            reqwest::Method::POST,
            "/api/models/alice/m/paths-info/main",
            None,
        )
        .body("paths=b/d&paths=b.txt&paths=nope&paths=b/d/e")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    let body: Vec<Value> = res.json().await.unwrap();
    let got: Vec<String> = body
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["type"].as_str().unwrap(),
                e["path"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(got, ["directory:b/d", "file:b.txt", "file:b/d/e"]);
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn licence_report_pages_answer_what_one_read_did(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    for name in ["m1", "m2", "m3", "m4", "m5"] {
        app.create_repo(&alice, "alice", name, "public").await;
    }
    let whole: Value = app
        .get("/api/v1/orgs/alice/license-report", Some(&alice))
        .await
        .json()
        .await
        .unwrap();
    let whole = paths(
        &[whole["repositories"].as_array().unwrap().clone()],
        "repository",
    );
    assert_eq!(whole.len(), 5);
    for limit in [1, 2, 5] {
        let mut got = Vec::new();
        let mut cursor = String::new();
        loop {
            let body: Value = app
                .get(
                    &format!(
                        "/api/v1/orgs/alice/license-report?decision=pending&limit={limit}&cursor={cursor}"
                    ),
                    Some(&alice),
                )
                .await
                .json()
                .await
                .unwrap();
            let page = body["repositories"].as_array().unwrap();
            assert!(page.len() <= limit);
            got.extend(paths(std::slice::from_ref(page), "repository"));
            match body["next_cursor"].as_str() {
                Some(c) => cursor = c.to_string(),
                None => break,
            }
        }
        assert_eq!(got, whole, "limit {limit}");
    }
}
