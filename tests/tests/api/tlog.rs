//! The transparency log: what is appended, signed checkpoints, inclusion and consistency
//! proofs, append-only storage, and that altering, removing or reordering stored entries is
//! caught by the proofs.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kaiyuan_provenance::checkpoint::{Checkpoint, parse_verifier_key};
use kaiyuan_provenance::merkle::{self, Hash};
use kaiyuan_tests::{TestApp, expect_error, expect_status, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

struct Log {
    name: String,
    key: ed25519_dalek::VerifyingKey,
}

impl Log {
    async fn open(app: &TestApp) -> Log {
        let text = app
            .get("/.well-known/kaiyuan/log-key", None)
            .await
            .text()
            .await
            .unwrap();
        let (name, key) = parse_verifier_key(&text).unwrap();
        Log { name, key }
    }

    async fn checkpoint(&self, app: &TestApp) -> Checkpoint {
        let note = app
            .get("/api/v1/log/checkpoint", None)
            .await
            .text()
            .await
            .unwrap();
        Checkpoint::verify(&note, &self.name, &self.key).unwrap()
    }
}

fn hashes(proof: &Value) -> Vec<Hash> {
    proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            STANDARD
                .decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect()
}

async fn entries(app: &TestApp, start: u64, end: u64) -> Vec<Value> {
    let body = expect_status(
        app.get(
            &format!("/api/v1/log/entries?start={start}&end={end}"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    body["entries"].as_array().unwrap().clone()
}

/// Every entry of the checkpoint's tree is included, as the log serves it now.
async fn all_included(app: &TestApp, cp: &Checkpoint) -> bool {
    let list = entries(app, 0, cp.size).await;
    if list.len() as u64 != cp.size {
        return false;
    }
    for e in &list {
        let index = e["index"].as_u64().unwrap();
        let body = STANDARD.decode(e["body"].as_str().unwrap()).unwrap();
        let proof = expect_status(
            app.get(
                &format!(
                    "/api/v1/log/proof/inclusion?index={index}&tree_size={}",
                    cp.size
                ),
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        if !merkle::verify_inclusion(
            index,
            cp.size,
            &merkle::leaf_hash(&body),
            &hashes(&proof),
            &cp.root,
        ) {
            return false;
        }
    }
    true
}

async fn consistent(app: &TestApp, old: &Checkpoint, new: &Checkpoint) -> bool {
    let res = app
        .get(
            &format!(
                "/api/v1/log/proof/consistency?first={}&second={}",
                old.size, new.size
            ),
            None,
        )
        .await;
    if res.status() != StatusCode::OK {
        return false;
    }
    let proof = res.json::<Value>().await.unwrap();
    merkle::verify_consistency(old.size, new.size, &old.root, &new.root, &hashes(&proof))
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn publishes_ref_moves_and_decisions_are_logged_and_provable(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let alice = app.create_user("alice").await;
    let log = Log::open(&app).await;
    assert_eq!(log.checkpoint(&app).await.size, 0);

    app.create_repo(&alice, "alice", "open-model", "public")
        .await;
    app.commit_files(
        &alice,
        "alice/open-model",
        &[
            ("README.md", b"---\nlicense: mit\n---\n"),
            ("w.bin", b"weights"),
        ],
    )
    .await;
    let tag = app
        .send_json(
            Method::PUT,
            "/api/v1/repos/alice/open-model/tags/v1",
            Some(&alice),
            &json!({"target": "main"}),
        )
        .await;
    assert!(tag.status().is_success(), "{}", tag.text().await.unwrap());
    app.create_repo(&alice, "alice", "secret-model", "private")
        .await;
    app.commit_files(
        &alice,
        "alice/secret-model",
        &[("w.bin", b"secret weights")],
    )
    .await;
    app.run_jobs().await;

    let cp1 = log.checkpoint(&app).await;
    let events: Vec<Value> = entries(&app, 0, cp1.size)
        .await
        .into_iter()
        .map(|e| e["event"].clone())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for kind in ["publish", "ref-set", "license-decision", "signature"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let publish = events
        .iter()
        .find(|e| {
            e["kind"] == "publish" && e["repository"] == "alice/open-model" && e["files"] == 2
        })
        .unwrap();
    assert!(publish["manifest"].as_str().unwrap().starts_with("sha256:"));
    // A private repository's events are sealed: no name, no pseudonym, only a commitment.
    let raw = serde_json::to_string(&events).unwrap();
    assert!(
        !raw.contains("secret-model") && !raw.contains("private:"),
        "a private repository shows in the public log"
    );
    let sealed: Vec<&Value> = events.iter().filter(|e| e["kind"] == "sealed").collect();
    assert!(!sealed.is_empty());
    assert!(sealed.iter().all(|e| e.as_object().unwrap().len() == 3
        && e["commitment"].as_str().unwrap().starts_with("sha256:")));
    assert!(all_included(&app, &cp1).await);

    // More history: the old checkpoint is a prefix of the new one.
    app.commit_files(&alice, "alice/open-model", &[("w.bin", b"weights v2")])
        .await;
    let deleted = app
        .request(
            Method::DELETE,
            "/api/v1/repos/alice/open-model/tags/v1",
            Some(&alice),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let cp2 = log.checkpoint(&app).await;
    assert!(cp2.size > cp1.size);
    assert!(consistent(&app, &cp1, &cp2).await);
    assert!(all_included(&app, &cp2).await);
    expect_error(
        app.get(
            &format!(
                "/api/v1/log/proof/inclusion?index=0&tree_size={}",
                cp2.size + 5
            ),
            None,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid-tree-size",
    )
    .await;
    expect_error(
        app.get("/api/v1/log/entries?start=5&end=2", None).await,
        StatusCode::BAD_REQUEST,
        "invalid-range",
    )
    .await;

    // The storage refuses changes.
    let err = sqlx::query("UPDATE log_entries SET body = 'x' WHERE idx = 0")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert!(
        sqlx::query("DELETE FROM log_entries WHERE idx = 0")
            .execute(&pool)
            .await
            .is_err()
    );
}

/// Runs `sql` with the append-only triggers off, as an attacker with the table owner's rights.
async fn tamper(pool: &PgPool, sql: &str) {
    let mut tx = pool.begin().await.unwrap();
    for off in [
        "ALTER TABLE log_entries DISABLE TRIGGER log_entries_append_only",
        "ALTER TABLE log_tree DISABLE TRIGGER log_tree_append_only",
    ] {
        sqlx::query(off).execute(&mut *tx).await.unwrap();
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut *tx)
        .await
        .unwrap();
    for on in [
        "ALTER TABLE log_entries ENABLE TRIGGER log_entries_append_only",
        "ALTER TABLE log_tree ENABLE TRIGGER log_tree_append_only",
    ] {
        sqlx::query(on).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// A thorough attacker also rewrites the stored interior hashes from the (changed) leaves and
/// drops the cached signed head, so that the hub signs the rewritten tree.
const REHASH: &str =
    "; DELETE FROM log_tree; SELECT log_tree_backfill(); DELETE FROM log_checkpoint";

async fn history(app: &TestApp, token: &str) {
    app.create_repo(token, "alice", "m", "public").await;
    for i in 0..4u8 {
        app.commit_files(token, "alice/m", &[("w.bin", &[i; 8])])
            .await;
    }
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn altered_removed_or_reordered_entries_are_detected(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let alice = app.create_user("alice").await;
    let log = Log::open(&app).await;
    history(&app, &alice).await;
    let cp = log.checkpoint(&app).await;
    assert!(cp.size >= 5);
    assert!(all_included(&app, &cp).await);
    let snapshot = "CREATE TABLE saved AS SELECT * FROM log_entries";
    tamper(&pool, snapshot).await;
    let restore =
        &format!("DELETE FROM log_entries; INSERT INTO log_entries SELECT * FROM saved{REHASH}");

    // Altered body, stored leaf hash kept: the served body no longer matches its proof.
    tamper(&pool, "UPDATE log_entries SET body = convert_to('{\"kind\":\"publish\",\"forged\":true}', 'UTF8') WHERE idx = 2").await;
    assert!(
        !all_included(&app, &cp).await,
        "an altered body was not detected"
    );
    // Altered body and leaf hash: the stored tree and the signed head do not follow.
    tamper(
        &pool,
        "UPDATE log_entries SET leaf_hash = sha256('\\x00'::bytea || body) WHERE idx = 2",
    )
    .await;
    assert_eq!(log.checkpoint(&app).await, cp);
    assert!(!all_included(&app, &cp).await);
    // With the tree rewritten too, the log's new head is no longer an extension of the old.
    tamper(&pool, &REHASH[2..]).await;
    let forged = log.checkpoint(&app).await;
    assert_eq!(forged.size, cp.size);
    assert_ne!(forged.root, cp.root);
    assert!(!all_included(&app, &cp).await);
    tamper(&pool, restore).await;
    assert!(
        all_included(&app, &cp).await,
        "restored history verifies again"
    );

    // Reordered entries.
    tamper(&pool, "UPDATE log_entries SET idx = idx + 1000000 WHERE idx IN (1, 2); UPDATE log_entries SET idx = 2 WHERE idx = 1000001; UPDATE log_entries SET idx = 1 WHERE idx = 1000002").await;
    assert!(
        !all_included(&app, &cp).await,
        "reordering was not detected"
    );
    tamper(&pool, restore).await;

    // A removed entry (the later ones renumbered), then new appends to reach the old size.
    tamper(
        &pool,
        &format!("DELETE FROM log_entries WHERE idx = 1; UPDATE log_entries SET idx = idx - 1 WHERE idx > 1{REHASH}"),
    )
    .await;
    app.commit_files(&alice, "alice/m", &[("w.bin", b"after")])
        .await;
    let later = log.checkpoint(&app).await;
    assert!(later.size >= cp.size);
    assert!(
        !consistent(&app, &cp, &later).await,
        "a removed entry was not detected"
    );
    tamper(&pool, restore).await;
}

/// Roots and proofs served from the stored interior hashes equal a recomputation from every
/// leaf, for random sizes, indices and prefixes; the migration's backfill stores the same tree
/// as the appends; a checkpoint is signed once per size and cached.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn stored_hashes_give_the_roots_and_proofs_of_all_leaves(pool: PgPool) {
    use rand::{Rng, SeedableRng};
    let seed: u64 = rand::random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let app = spawn_app(pool.clone()).await;
    let log = Log::open(&app).await;
    let mut conn = pool.acquire().await.unwrap();

    let total = rng.random_range(300..700u64);
    let mut tx = pool.begin().await.unwrap();
    for i in 0..total {
        let body = format!("{{\"kind\":\"test\",\"n\":{i},\"seed\":{seed}}}");
        let index = kaiyuan_hub::tlog::append_leaf(&mut tx, body.as_bytes())
            .await
            .unwrap();
        assert_eq!(index as u64, i);
        if rng.random_range(0..50) == 0 {
            tx.commit().await.unwrap();
            tx = pool.begin().await.unwrap();
        }
    }
    tx.commit().await.unwrap();
    let leaves = kaiyuan_hub::tlog::leaves(&mut conn, total as i64)
        .await
        .unwrap();
    assert_eq!(leaves.len() as u64, total);

    let mut sizes: Vec<u64> = (0..40).map(|_| rng.random_range(1..=total)).collect();
    sizes.extend([1, 2, 3, 4, 255, 256, 257, total - 1, total]);
    for size in sizes {
        let all = &leaves[..size as usize];
        let root = kaiyuan_hub::tlog::root(&mut conn, size).await.unwrap();
        assert_eq!(root, merkle::root(all), "root of {size} (seed {seed})");
        for _ in 0..5 {
            let index = rng.random_range(0..size);
            let (leaf, proof) = kaiyuan_hub::tlog::inclusion_proof(&mut conn, index, size)
                .await
                .unwrap();
            assert_eq!(leaf, all[index as usize]);
            assert_eq!(
                proof,
                merkle::inclusion_proof(index as usize, all),
                "inclusion {index} in {size} (seed {seed})"
            );
            let first = rng.random_range(1..=size);
            let proof = kaiyuan_hub::tlog::consistency_proof(&mut conn, first, size)
                .await
                .unwrap();
            assert_eq!(
                proof,
                merkle::consistency_proof(first as usize, all),
                "consistency {first} -> {size} (seed {seed})"
            );
        }
    }

    // Served over HTTP: the checkpoint signs the recomputed root, once, and is cached.
    let cp = log.checkpoint(&app).await;
    assert_eq!((cp.size, cp.root), (total, merkle::root(&leaves)));
    let cached: (i64, String) = sqlx::query_as("SELECT tree_size, note FROM log_checkpoint")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(cached.0 as u64, total);
    let again = app
        .get("/api/v1/log/checkpoint", None)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(again, cached.1);
    let index = rng.random_range(0..total);
    let proof = expect_status(
        app.get(
            &format!("/api/v1/log/proof/inclusion?index={index}&tree_size={total}"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(proof["leaf_hash"], hex::encode(leaves[index as usize]));
    assert!(merkle::verify_inclusion(
        index,
        total,
        &leaves[index as usize],
        &hashes(&proof),
        &cp.root
    ));
    kaiyuan_hub::tlog::append_leaf(&mut conn, b"{\"kind\":\"test\"}")
        .await
        .unwrap();
    let next = log.checkpoint(&app).await;
    assert_eq!(next.size, total + 1);
    assert!(consistent(&app, &cp, &next).await);

    // The migration's backfill, run over the same entries, stores exactly the appended tree.
    let tree = "SELECT level, idx, hash FROM log_tree ORDER BY level, idx";
    let appended: Vec<(i16, i64, Vec<u8>)> = sqlx::query_as(tree).fetch_all(&pool).await.unwrap();
    // One full subtree of level 1 and up per leaf, less one per one bit of the size.
    let size = total + 1;
    assert_eq!(appended.len() as u64, size - u64::from(size.count_ones()));
    tamper(&pool, &REHASH[2..]).await;
    let backfilled: Vec<(i16, i64, Vec<u8>)> = sqlx::query_as(tree).fetch_all(&pool).await.unwrap();
    assert_eq!(appended, backfilled, "seed {seed}");
}

/// The log as C2SP tlog-tiles: hash tiles and entry bundles hold what the entries and the stored
/// tree hold, a client rebuilds the signed root from the level-0 tiles alone, a level-1 tile
/// holds the roots of full 256-leaf subtrees, and tiles the log does not hold yet, or paths not
/// in C2SP's canonical form, are 404.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn the_log_is_served_as_c2sp_tiles(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let log = Log::open(&app).await;
    let mut conn = pool.acquire().await.unwrap();
    let mut bodies = Vec::new();
    for i in 0..300 {
        let body = format!("{{\"kind\":\"test\",\"n\":{i}}}");
        kaiyuan_hub::tlog::append_leaf(&mut conn, body.as_bytes())
            .await
            .unwrap();
        bodies.push(body.into_bytes());
    }
    let leaves: Vec<Hash> = bodies.iter().map(|b| merkle::leaf_hash(b)).collect();
    let tile = async |path: &str| {
        let res = app.get(&format!("/api/v1/log/tile/{path}"), None).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        res.bytes().await.unwrap().to_vec()
    };
    let as_hashes = |bytes: Vec<u8>| -> Vec<Hash> {
        assert_eq!(bytes.len() % 32, 0);
        bytes.chunks(32).map(|c| c.try_into().unwrap()).collect()
    };

    let mut level0 = as_hashes(tile("0/000").await);
    assert_eq!(level0.len(), 256);
    level0.extend(as_hashes(tile("0/001.p/44").await));
    assert_eq!(level0, leaves);
    let cp = log.checkpoint(&app).await;
    assert_eq!(cp.size, 300);
    assert_eq!(
        merkle::root(&level0),
        cp.root,
        "the signed root, from the tiles alone"
    );
    assert_eq!(
        as_hashes(tile("1/000.p/1").await),
        vec![merkle::root(&leaves[..256])]
    );
    assert_eq!(as_hashes(tile("0/000.p/10").await), leaves[..10].to_vec());

    let bundle = tile("entries/001.p/44").await;
    let mut parsed = Vec::new();
    let mut rest = bundle.as_slice();
    while !rest.is_empty() {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        parsed.push(rest[2..2 + len].to_vec());
        rest = &rest[2 + len..];
    }
    assert_eq!(parsed, bodies[256..].to_vec());

    for missing in [
        "0/001",
        "0/001.p/45",
        "1/000",
        "0/002.p/1",
        "entries/001",
        "0/1",
        "00/000",
        "8/000",
        "0/x000/001",
        "0/000.p/0",
        "0/000.p/256",
        "0/000.p/010",
    ] {
        let res = app.get(&format!("/api/v1/log/tile/{missing}"), None).await;
        expect_error(res, StatusCode::NOT_FOUND, "tile-not-found").await;
    }
}
