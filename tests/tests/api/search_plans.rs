//! Search at scale: on a seeded database, every text search, filter and sort of the one search
//! behind the API, Hugging Face's `list_models` and the web page is served by an index. The plans
//! are read with sequential scans priced out (`enable_seqscan = off`): a search that can use its
//! index then does, and one that cannot still reads the whole table, which these tests refuse.

use kaiyuan_hub::db::repos::{Cursor, SearchQuery, SortKey, explain_search};
use sqlx::{Connection, PgPool};

/// Runs `tests/sql/scale-seed.sql` (the benchmark's seed) for `n` repositories.
pub async fn seed(pool: &PgPool, n: i64) {
    run_script(pool, include_str!("../../sql/scale-seed.sql"), n).await;
}

/// Runs each statement of `script` (separated by `;` at a line's end, `--` comments skipped),
/// binding `n` to those that take `$1`.
async fn run_script(pool: &PgPool, script: &str, n: i64) {
    let mut conn = pool.acquire().await.unwrap();
    for statement in script.split(";\n").map(str::trim) {
        let code: String = statement
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        if code.trim().is_empty() {
            continue;
        }
        let query = sqlx::query(sqlx::AssertSqlSafe(code.clone()));
        let query = if code.contains("$1") {
            query.bind(n)
        } else {
            query
        };
        query.execute(&mut *conn).await.unwrap();
    }
}

async fn plan(pool: &PgPool, q: &SearchQuery<'_>) -> String {
    let mut conn = pool.acquire().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SET LOCAL enable_seqscan = off")
        .execute(&mut *tx)
        .await
        .unwrap();
    explain_search(&mut tx, q).await.unwrap()
}

fn query<'a>() -> SearchQuery<'a> {
    SearchQuery {
        limit: 21,
        viewer_id: None,
        ..Default::default()
    }
}

/// The plan walks the newest-first index to a full page, without sorting every match.
fn assert_walks_the_updated_order(plan: &str) {
    assert_no_full_scan(plan);
    assert!(plan.contains("repositories_updated_order"), "{plan}");
    assert!(!plan.contains("Sort Key"), "every match sorted:\n{plan}");
}

fn assert_no_full_scan(plan: &str) {
    assert!(
        !plan.contains("Seq Scan on repositories"),
        "the search reads every repository:\n{plan}"
    );
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn text_search_uses_the_name_and_full_text_indexes(pool: PgPool) {
    seed(&pool, 5000).await;
    let plan = plan(
        &pool,
        &SearchQuery {
            text: Some("word4242"),
            ..query()
        },
    )
    .await;
    assert_no_full_scan(&plan);
    assert!(plan.contains("repositories_full_name_trgm"), "{plan}");
    assert!(plan.contains("repositories_search_words"), "{plan}");
    // The page is made from the collected ids, by primary key: neither index is read twice.
    let page = &plan[plan.rfind("Limit").unwrap()..];
    assert!(page.contains("repositories_pkey"), "{plan}");
    assert!(!page.contains("repositories_search_words"), "{plan}");
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn every_sort_pages_through_its_index(pool: PgPool) {
    seed(&pool, 5000).await;
    let cases = [
        (SortKey::Updated, None, "repositories_updated_order"),
        (SortKey::Created, None, "repositories_created_order"),
        (SortKey::Name, None, "repositories_name_order"),
        (
            SortKey::Name,
            Some(Cursor::Name("scale-org-3/model-1".into(), 1)),
            "repositories_name_order",
        ),
        (
            SortKey::Updated,
            Some(Cursor::Time(chrono::Utc::now(), 1)),
            "repositories_updated_order",
        ),
    ];
    for (sort, after, index) in cases {
        let plan = plan(
            &pool,
            &SearchQuery {
                sort,
                after: after.clone(),
                ..query()
            },
        )
        .await;
        assert_no_full_scan(&plan);
        assert!(plan.contains(index), "{sort:?} after {after:?}:\n{plan}");
    }
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn the_licence_filter_reads_its_indexes(pool: PgPool) {
    seed(&pool, 5000).await;
    let plan = plan(
        &pool,
        &SearchQuery {
            license: Some("Apache-2.0"),
            ..query()
        },
    )
    .await;
    assert_no_full_scan(&plan);
    assert!(plan.contains("repositories_license_lower"), "{plan}");
    assert!(
        plan.contains("license_evaluations_effective_lower"),
        "{plan}"
    );
}

/// A filter on a rare value of the head's facts starts from the few repositories that hold it
/// (an index each), and still finds exactly the heads that have it: one repository in a
/// thousand of the seed holds each rare value.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn rare_head_facts_start_from_their_indexes(pool: PgPool) {
    seed(&pool, 5000).await;
    let cases: [(SearchQuery, &str, i64); 5] = [
        (
            SearchQuery {
                verification: Some("failed"),
                ..query()
            },
            "model_verifications_status",
            17,
        ),
        (
            SearchQuery {
                commercial: Some(false),
                ..query()
            },
            "repositories_head_decision",
            5,
        ),
        (
            SearchQuery {
                category: Some("non-commercial"),
                ..query()
            },
            "license_evaluations_terms",
            5,
        ),
        (
            SearchQuery {
                scan: Some("quarantined"),
                ..query()
            },
            "blobs_not_clean",
            3,
        ),
        (
            SearchQuery {
                scan: Some("malicious"),
                ..query()
            },
            "blobs_not_clean",
            3,
        ),
    ];
    for (q, index, residue) in cases {
        let plan = plan(&pool, &q).await;
        assert_no_full_scan(&plan);
        assert!(plan.contains(index), "{index}:\n{plan}");
        let mut conn = pool.acquire().await.unwrap();
        let mut found: Vec<i64> = kaiyuan_hub::db::repos::search(&mut conn, &q)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        found.sort_unstable();
        let expected: Vec<i64> = (0..5).map(|k| k * 1000 + residue).collect();
        assert_eq!(found, expected, "{index}");
    }
    // A common value walks the sort's index, reading each repository's head decision from its
    // row, and fills the page (not a hash of every evaluation, then a sort of every match).
    // Every head allowed: more than the 2,000 that make a value rare.
    for statement in [
        "INSERT INTO license_evaluations (repository_id, commit_id, catalog_version, policy_version, decision, report)
         SELECT f.repository_id, f.commit_id, 'seed', 0, 'allow', '{}' FROM refs f
         WHERE f.name = 'main' ON CONFLICT DO NOTHING",
        "VACUUM ANALYZE repositories",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let q = SearchQuery {
        commercial: Some(true),
        ..query()
    };
    let common = plan(&pool, &q).await;
    assert!(common.contains("repositories_updated_order"), "{common}");
    assert!(!common.contains("Sort Key"), "{common}");
    assert!(!common.contains("license_evaluations"), "{common}");
    let mut conn = pool.acquire().await.unwrap();
    let found = kaiyuan_hub::db::repos::search(&mut conn, &q).await.unwrap();
    assert_eq!(found.len(), 21);
}

/// The indexes change how a search runs, not what it finds: the seeded search answers as the
/// rule says (declared or effective licence, public or the viewer's own).
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn the_seeded_searches_find_what_the_rules_say(pool: PgPool) {
    seed(&pool, 1000).await;
    let mut conn = pool.acquire().await.unwrap();
    let found = kaiyuan_hub::db::repos::search(
        &mut conn,
        &SearchQuery {
            text: Some("model-10"),
            limit: 100,
            ..query()
        },
    )
    .await
    .unwrap();
    let mut names: Vec<String> = found.iter().map(|r| r.full_name()).collect();
    names.sort();
    // model-10, model-100 and model-1000 are private (every tenth); model-10x lives in
    // scale-org-(x+1).
    let mut expected: Vec<String> = (1..10)
        .map(|x| format!("scale-org-{}/model-10{x}", x + 1))
        .collect();
    expected.sort();
    assert_eq!(names, expected);
    let by_licence = kaiyuan_hub::db::repos::search(
        &mut conn,
        &SearchQuery {
            license: Some("llama3"),
            limit: 2000,
            ..query()
        },
    )
    .await
    .unwrap();
    // Declared `llama3` is every g with g % 4 == 2 (250); those with g % 20 == 10 are private
    // (50). No effective licence is spelt `llama3`.
    assert_eq!(by_licence.len(), 200);
    let apache = kaiyuan_hub::db::repos::search(
        &mut conn,
        &SearchQuery {
            license: Some("apache-2.0"),
            limit: 2000,
            ..query()
        },
    )
    .await
    .unwrap();
    // Declared `apache-2.0`: g % 4 == 1 (250, none private: odd). Effective `Apache-2.0`: every
    // fifth repository id with id % 3 == 1, counted once when both apply.
    assert!(apache.len() > 250, "{}", apache.len());
    assert!(apache.iter().all(|r| r.is_public()));
}

/// A word or a licence that many repositories match is served by walking the sort's index and
/// stopping at a full page, not by collecting every match and sorting them.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn common_words_and_licences_walk_the_sort_index(pool: PgPool) {
    seed(&pool, 10000).await;
    for q in [
        SearchQuery {
            text: Some("model"),
            ..query()
        },
        SearchQuery {
            license: Some("apache-2.0"),
            ..query()
        },
    ] {
        assert_walks_the_updated_order(&plan(&pool, &q).await);
    }
    // And they still find exactly what the rule says: every public repository has the word.
    let mut conn = pool.acquire().await.unwrap();
    let all = kaiyuan_hub::db::repos::search(
        &mut conn,
        &SearchQuery {
            text: Some("model"),
            limit: 20000,
            ..query()
        },
    )
    .await
    .unwrap();
    assert_eq!(all.len(), 9000);
}

/// A ranked text search reads each tier from the newest repositories when they fill the page,
/// and from the tier's index when they do not; it never reads every repository.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn a_ranked_search_reads_each_tier_from_an_index(pool: PgPool) {
    seed(&pool, 10000).await;
    let ranked_plan = |text| {
        let pool = pool.clone();
        async move {
            let q = SearchQuery {
                text: Some(text),
                sort: SortKey::Relevance,
                ..query()
            };
            plan(&pool, &q).await
        }
    };
    // A rare word: every tier asks its index; the card's tier finds it, by primary key.
    let rare = ranked_plan("word4242").await;
    assert_no_full_scan(&rare);
    for index in [
        "repositories_name_lower",
        "repositories_full_name_trgm",
        "repositories_description_trgm",
        "repositories_search_words",
        "repositories_pkey",
    ] {
        assert!(rare.contains(index), "{index}:\n{rare}");
    }
    // In a quarter of the descriptions (2,500): the newest repositories fill the page.
    let common = ranked_plan("vision").await;
    assert_no_full_scan(&common);
    assert!(common.contains("repositories_updated_order"), "{common}");
    assert!(!common.contains("repositories_search_words"), "{common}");
    assert!(
        !common.contains("repositories_description_trgm"),
        "{common}"
    );
    // In every name: the name's tier fills the page from the newest.
    let names = ranked_plan("model").await;
    assert_no_full_scan(&names);
    assert!(!names.contains("repositories_full_name_trgm"), "{names}");
}

async fn ranked(pool: &PgPool, text: &str, limit: i64, after: Option<i64>) -> Vec<String> {
    let q = SearchQuery {
        text: Some(text),
        sort: SortKey::Relevance,
        limit,
        after: after.map(Cursor::Offset),
        ..query()
    };
    full_names(pool, &q).await
}

/// The `namespace/name` of each repository `q` finds, in order.
async fn full_names(pool: &PgPool, q: &SearchQuery<'_>) -> Vec<String> {
    let mut conn = pool.acquire().await.unwrap();
    let rows = kaiyuan_hub::db::repos::search(&mut conn, q).await.unwrap();
    rows.iter().map(|r| r.full_name()).collect()
}

/// The ranking's rule, exactly, at a size where its tiers hold thousands: the name that is the
/// text, then names holding it, then descriptions (newest first, wherever the row sits in the
/// table), then cards; and page two continues where page one ended.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn a_ranking_orders_every_tier_newest_first(pool: PgPool) {
    seed(&pool, 12000).await;
    let script = "
        INSERT INTO repositories (namespace_id, name, visibility, description, card, updated_at)
        SELECT min(id), v.name, 'public', v.description, v.card, now() + v.age
        FROM namespaces, (VALUES
            ('vision', 'old, named the text', '', interval '-30 days'),
            ('vision-encoder', 'old, its name holds the text', '', interval '-29 days'),
            ('newest-card', 'describes nothing', 'a card about vision', interval '1 day'),
            ('private-vision', 'private, never listed', '', interval '2 days')
        ) AS v(name, description, card, age)
        WHERE namespaces.name LIKE 'scale-org-%' GROUP BY v.name, v.description, v.card, v.age;
        UPDATE repositories SET visibility = 'private' WHERE name = 'private-vision';
        -- An old repository updated last: its new row version sits at the end of the table.
        UPDATE repositories SET updated_at = now() + interval '1 hour' WHERE name = 'model-9001';
    ";
    run_script(&pool, script, 0).await;
    sqlx::query("ANALYZE repositories")
        .execute(&pool)
        .await
        .unwrap();
    // The rule, by brute force: every public repository whose description holds "vision".
    let descriptions: Vec<String> = sqlx::query_scalar(
        "SELECT r.full_name FROM repositories r
         WHERE r.visibility = 'public' AND r.description ILIKE '%vision%'
           AND r.full_name NOT ILIKE '%vision%'
         ORDER BY r.updated_at DESC, r.id DESC LIMIT 60",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(descriptions[0].ends_with("/model-9001"), "{descriptions:?}");
    let first = ranked(&pool, "vision", 30, None).await;
    assert!(first[0].ends_with("/vision"), "{first:?}");
    assert!(first[1].ends_with("/vision-encoder"), "{first:?}");
    assert_eq!(first[2..], descriptions[..28], "{first:?}");
    let second = ranked(&pool, "vision", 30, Some(30)).await;
    assert_eq!(second, descriptions[28..58], "{second:?}");
    // Past the descriptions' thousands, the card's tier; never the private one.
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM repositories WHERE visibility = 'public'
         AND (full_name ILIKE '%vision%' OR search_words @@ plainto_tsquery('simple', 'vision'))",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let last = ranked(&pool, "vision", 10, Some(total - 1)).await;
    assert_eq!(last.len(), 1, "{last:?}");
    assert!(last[0].ends_with("/newest-card"), "{last:?}");
    // With a rare filter (its candidates first), the same rule over what the filter admits.
    let q = SearchQuery {
        text: Some("vision"),
        sort: SortKey::Relevance,
        commercial: Some(false),
        limit: 50,
        ..query()
    };
    let filtered = full_names(&pool, &q).await;
    let denied: Vec<String> = sqlx::query_scalar(
        "SELECT full_name FROM repositories WHERE visibility = 'public'
           AND description ILIKE '%vision%' AND head_decision IN ('flag_review', 'deny')
         ORDER BY updated_at DESC, id DESC",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(!denied.is_empty());
    assert_eq!(filtered, denied);
    // And within a namespace (tested on its repositories only).
    let q = SearchQuery {
        text: Some("vision"),
        sort: SortKey::Relevance,
        namespace: Some("scale-org-2"),
        limit: 500,
        ..query()
    };
    let in_namespace = full_names(&pool, &q).await;
    let expected: Vec<String> = sqlx::query_scalar(
        "SELECT full_name FROM repositories WHERE visibility = 'public'
           AND full_name LIKE 'scale-org-2/%'
           AND (full_name ILIKE '%vision%' OR search_words @@ plainto_tsquery('simple', 'vision'))
         ORDER BY full_name ILIKE '%vision%' DESC, description ILIKE '%vision%' DESC,
                  updated_at DESC, id DESC",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(expected.len() > 20, "{expected:?}");
    assert_eq!(in_namespace, expected);
    // A position past the ranking's depth is an empty page, not a walk of every repository.
    let deep = ranked(
        &pool,
        "vision",
        10,
        Some(kaiyuan_hub::db::repos::RANKED_DEPTH),
    )
    .await;
    assert!(deep.is_empty(), "{deep:?}");
}

/// A text without three letters or digits in a row ("7b") gives the trigram indexes nothing to
/// look up: it matches words, through the full-text index, in every search and every tier,
/// instead of testing every name and description for the substring.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn a_short_text_matches_words_through_their_index(pool: PgPool) {
    seed(&pool, 5000).await;
    sqlx::query(
        "INSERT INTO repositories (namespace_id, name, visibility, description, card, updated_at)
         SELECT (SELECT min(id) FROM namespaces), v.name, 'public', v.description, v.card, now() + v.age
         FROM (VALUES ('llama-7b', '', '', interval '-1 day'),
                      ('described', 'a 7b model', '', interval '1 day'),
                      ('carded', '', 'weights for 7b', interval '2 days'),
                      ('x7b-chat', 'its name holds the text inside a word', '', interval '3 days'))
              AS v(name, description, card, age)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE repositories")
        .execute(&pool)
        .await
        .unwrap();
    for sort in [SortKey::Relevance, SortKey::Updated] {
        let q = SearchQuery {
            text: Some("7b"),
            sort,
            ..query()
        };
        let plan = plan(&pool, &q).await;
        assert_no_full_scan(&plan);
        assert!(!plan.contains("_trgm"), "{sort:?}:\n{plan}");
        assert!(
            plan.contains("repositories_search_words"),
            "{sort:?}:\n{plan}"
        );
    }
    let names = |sort| {
        let pool = pool.clone();
        async move {
            let mut conn = pool.acquire().await.unwrap();
            let q = SearchQuery {
                text: Some("7b"),
                sort,
                ..query()
            };
            let rows = kaiyuan_hub::db::repos::search(&mut conn, &q).await.unwrap();
            rows.into_iter().map(|r| r.name).collect::<Vec<_>>()
        }
    };
    // Ranked: the name's words, then the description's, then the card's; by date otherwise.
    // "x7b-chat" holds "7b" only inside a word: not a match.
    assert_eq!(
        names(SortKey::Relevance).await,
        ["llama-7b", "described", "carded"]
    );
    assert_eq!(
        names(SortKey::Updated).await,
        ["carded", "described", "llama-7b"]
    );
}

/// The hub's sessions never JIT-compile: a misjudged estimate would otherwise cost ~100 ms of
/// compilation before a 7 ms query (the effective-licence filter at a million repositories).
#[tokio::test]
async fn the_hubs_sessions_do_not_compile_queries() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let pool = kaiyuan_hub::db::connect(&url, 1).await.unwrap();
    let jit: String = sqlx::query_scalar("SHOW jit")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(jit, "off");
}

/// The tag filter reads the cards' tags from their index (migration 0026), not every card; and
/// finds what the card says, task and list items alike, in any case.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn the_tag_filter_reads_its_index(pool: PgPool) {
    seed(&pool, 5000).await;
    let rare = plan(
        &pool,
        &SearchQuery {
            tags: vec!["tag42"],
            ..query()
        },
    )
    .await;
    assert_no_full_scan(&rare);
    assert!(rare.contains("repositories_card_tags"), "{rare}");
    let common = plan(
        &pool,
        &SearchQuery {
            tags: vec!["translation"],
            ..query()
        },
    )
    .await;
    assert_no_full_scan(&common);
    let mut conn = pool.acquire().await.unwrap();
    let found = kaiyuan_hub::db::repos::search(
        &mut conn,
        &SearchQuery {
            tags: vec!["TAG42", "object-detection"],
            limit: 100,
            ..query()
        },
    )
    .await
    .unwrap();
    // tag42: g % 1000 == 42 (5 of 5000); object-detection: g % 4 == 1, which 42, 1042, ... are
    // not (even): nothing has both. tag41 and object-detection: g = 41, 1041, ..., 4041, public.
    assert!(found.is_empty(), "{found:?}");
    let both = kaiyuan_hub::db::repos::search(
        &mut conn,
        &SearchQuery {
            tags: vec!["tag41", "Object-Detection"],
            limit: 100,
            ..query()
        },
    )
    .await
    .unwrap();
    let mut names: Vec<String> = both.iter().map(|r| r.name.clone()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "model-1041",
            "model-2041",
            "model-3041",
            "model-4041",
            "model-41"
        ]
    );
}

/// Counting a text's or a licence's matches reads the index's bitmap of every match (25–40 ms
/// for a quarter of a million at 1M), so a single word or a licence that the statistics call
/// common by a wide margin (20,000 rows) skips the count and walks the sort's index; rarer
/// values, values near the margin and several words are still counted. The answers are the same.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn only_values_the_statistics_call_common_skip_the_count(pool: PgPool) {
    use kaiyuan_hub::db::repos::{license_is_common, word_is_common};
    seed(&pool, 25000).await;
    let mut conn = pool.acquire().await.unwrap();
    // Every description says "model"; a quarter say "vision" (6,250: near the margin).
    assert!(word_is_common(&mut conn, "model").await.unwrap());
    assert!(word_is_common(&mut conn, "MODEL").await.unwrap());
    for text in [
        "vision",
        "word4242",
        "nosuchword",
        "model vision",
        "a model",
        "",
    ] {
        assert!(
            !word_is_common(&mut conn, text).await.unwrap(),
            "{text:?} must be counted"
        );
    }
    assert!(!license_is_common(&mut conn, "apache-2.0").await.unwrap());
    sqlx::query("UPDATE repositories SET license = 'MIT'")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("ANALYZE repositories")
        .execute(&mut *conn)
        .await
        .unwrap();
    assert!(license_is_common(&mut conn, "mit").await.unwrap());
    assert!(!license_is_common(&mut conn, "apache-2.0").await.unwrap());
    drop(conn);
    for q in [
        SearchQuery {
            text: Some("model"),
            sort: SortKey::Updated,
            ..query()
        },
        SearchQuery {
            license: Some("mit"),
            ..query()
        },
    ] {
        assert_walks_the_updated_order(&plan(&pool, &q).await);
        // The page is the newest public repositories, as the rule says.
        let mut conn = pool.acquire().await.unwrap();
        let page = kaiyuan_hub::db::repos::search(&mut conn, &q).await.unwrap();
        let newest: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM repositories WHERE visibility = 'public' AND deleted_at IS NULL
             ORDER BY updated_at DESC, id DESC LIMIT 21",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        assert_eq!(
            page.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
            newest
        );
    }
}

/// The collector's purge of long-deleted repositories reads only the deleted ones (migration
/// 0031's partial index), not every repository once per statement (0.4 s each at a million).
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn the_purge_reads_only_deleted_repositories(pool: PgPool) {
    seed(&pool, 5000).await;
    sqlx::query(
        "UPDATE repositories SET deleted_at = now() - interval '40 days' WHERE name IN ('model-7', 'model-8')",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE repositories SET deleted_at = now() - interval '1 day' WHERE name = 'model-9'",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE repositories")
        .execute(&pool)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SET LOCAL enable_seqscan = off")
        .execute(&mut *tx)
        .await
        .unwrap();
    let plan = kaiyuan_hub::db::repos::explain_purgeable(&mut tx, 30)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_no_full_scan(&plan);
    assert!(plan.contains("repositories_deleted"), "{plan}");
    let purged = kaiyuan_hub::db::repos::purge_deleted(&mut conn, 30)
        .await
        .unwrap();
    assert_eq!(
        purged, 2,
        "the two past the grace period lose their commits"
    );
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM commits c JOIN repositories r ON r.id = c.repository_id
         WHERE r.name IN ('model-7', 'model-8', 'model-9')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(left, 1, "the one within the grace period keeps its commit");
}
