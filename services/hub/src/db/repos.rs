//! Repositories: creation, lookup, search, settings and soft deletion.

use crate::db::types::LicenseDecision;
use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection, Postgres, QueryBuilder};

mod ranking;
pub use ranking::RANKED_DEPTH;
use ranking::Tier;

pub use super::types::{AccessStatus, Gated, NamespaceKind, Visibility};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Repo {
    pub id: i64,
    pub namespace_id: i64,
    pub namespace: String,
    pub namespace_kind: NamespaceKind,
    pub name: String,
    pub visibility: Visibility,
    /// Whether downloads need an accepted access request.
    pub gated: Gated,
    pub description: String,
    pub card: String,
    pub license: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Repo {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn is_public(&self) -> bool {
        self.visibility == Visibility::Public
    }
}

macro_rules! repo_columns {
    () => {
        "SELECT r.id, r.namespace_id, n.name AS namespace, n.kind AS namespace_kind,
            r.name, r.visibility, r.gated, r.description, r.card, r.license, r.created_at, r.updated_at"
    };
}

const SELECT_REPO: &str = concat!(
    repo_columns!(),
    " FROM repositories r JOIN namespaces n ON n.id = r.namespace_id"
);

pub async fn insert(
    conn: &mut PgConnection,
    namespace_id: i64,
    name: &str,
    visibility: Visibility,
    description: &str,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO repositories (namespace_id, name, visibility, description)
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(namespace_id)
    .bind(name)
    .bind(visibility)
    .bind(description)
    .fetch_one(conn)
    .await
}

/// The live repository `namespace/name` (names compare case-insensitively).
pub async fn find_live(
    conn: &mut PgConnection,
    namespace: &str,
    name: &str,
) -> sqlx::Result<Option<Repo>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_REPO} WHERE lower(n.name) = lower($1) AND lower(r.name) = lower($2)
         AND r.deleted_at IS NULL"
    )))
    .bind(namespace)
    .bind(name)
    .fetch_optional(conn)
    .await
}

pub async fn find_by_id(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<Repo>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_REPO} WHERE r.id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Until when a recently deleted repository keeps its name reserved, if one does.
pub async fn name_reserved_until(
    conn: &mut PgConnection,
    namespace_id: i64,
    name: &str,
    grace_days: u32,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(
        "SELECT max(deleted_at) + make_interval(days => $3) FROM repositories
         WHERE namespace_id = $1 AND lower(name) = lower($2) AND deleted_at IS NOT NULL
         HAVING max(deleted_at) + make_interval(days => $3) > now()",
    )
    .bind(namespace_id)
    .bind(name)
    .bind(grace_days as i32)
    .fetch_optional(conn)
    .await
}

pub async fn update_settings(
    conn: &mut PgConnection,
    id: i64,
    visibility: Option<Visibility>,
    description: Option<&str>,
    gated: Option<Gated>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE repositories SET visibility = coalesce($2, visibility),
                description = coalesce($3, description), gated = coalesce($4, gated), updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(visibility)
    .bind(description)
    .bind(gated)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the model card (README.md) and its declared license after a commit to the default
/// branch. NUL characters are dropped: the file keeps its bytes, but PostgreSQL text cannot hold
/// them, and a card is searchable text.
pub async fn update_card(
    conn: &mut PgConnection,
    id: i64,
    card: &str,
    license: Option<&str>,
) -> sqlx::Result<()> {
    let without_nul = |t: &str| t.replace('\0', "");
    sqlx::query("UPDATE repositories SET card = $2, license = $3 WHERE id = $1")
        .bind(id)
        .bind(without_nul(card))
        .bind(license.map(without_nul))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn touch(conn: &mut PgConnection, id: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE repositories SET updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn soft_delete(conn: &mut PgConnection, id: i64, by: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE repositories SET deleted_at = now(), deleted_by = $2 WHERE id = $1")
        .bind(id)
        .bind(by)
        .execute(conn)
        .await?;
    Ok(())
}

/// Repositories deleted more than `$1` days ago, read from the partial index of deleted ones
/// (migration 0031), not by reading every repository.
const PURGEABLE: &str =
    "SELECT id FROM repositories WHERE deleted_at < now() - make_interval(days => $1)";

/// Permanently removes repositories deleted more than `grace_days` ago (their commits go with
/// them; blobs become unreferenced and are collected later). Returns how many commits went.
pub async fn purge_deleted(conn: &mut PgConnection, grace_days: u32) -> sqlx::Result<u64> {
    let ids: Vec<i64> = sqlx::query_scalar(PURGEABLE)
        .bind(grace_days as i32)
        .fetch_all(&mut *conn)
        .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    sqlx::query("DELETE FROM refs WHERE repository_id = ANY($1)")
        .bind(&ids)
        .execute(&mut *conn)
        .await?;
    // Keep the row (name reservation history and audit); drop the content.
    let done = sqlx::query("DELETE FROM commits WHERE repository_id = ANY($1)")
        .bind(&ids)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM repository_uploads WHERE repository_id = ANY($1)")
        .bind(&ids)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// PostgreSQL's plan for finding what [`purge_deleted`] removes, for the plan tests.
pub async fn explain_purgeable(conn: &mut PgConnection, grace_days: u32) -> sqlx::Result<String> {
    let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN {PURGEABLE}")))
        .bind(grace_days as i32)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(|(line,)| line + "\n").collect())
}

/// How search results are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Most recently updated first.
    #[default]
    Updated,
    /// Most recently created first.
    Created,
    /// `namespace/name` alphabetically.
    Name,
    /// With a text: repositories whose name is the text first, then those whose name holds
    /// it, then those whose description does, then those whose card does; most recently
    /// updated first within each; paged by position, up to `RANKED_DEPTH`. Without a text,
    /// as `Updated`.
    Relevance,
}

/// Where the previous page ended: the sort key's value and the repository id.
#[derive(Debug, Clone, PartialEq)]
pub enum Cursor {
    Time(DateTime<Utc>, i64),
    Name(String, i64),
    /// A position in a relevance ranking.
    Offset(i64),
}

/// One search for every surface (the API, Hugging Face's `list_models`, the web page), so that
/// a filter means the same everywhere and visibility is decided once.
#[derive(Default, Clone)]
pub struct SearchQuery<'a> {
    pub text: Option<&'a str>,
    pub namespace: Option<&'a str>,
    /// The declared licence or the effective one the licence engine found (case-insensitive).
    pub license: Option<&'a str>,
    /// Every tag must be on the card (`tags:` items or `pipeline_tag:`).
    pub tags: Vec<&'a str>,
    /// A licence category (`commercial-use-restricted`, ...) of the head's terms.
    pub category: Option<&'a str>,
    /// Whether the head's licence decision allows commercial use (`allow`,
    /// `allow_with_obligations`) or not (`flag_review`, `deny`).
    pub commercial: Option<bool>,
    /// The head's overall scan status (`domain::scan::STATUSES`) or `quarantined`.
    pub scan: Option<&'a str>,
    /// The head's verification status, or `none` for a head without one.
    pub verification: Option<&'a str>,
    pub sort: SortKey,
    pub after: Option<Cursor>,
    pub offset: i64,
    pub limit: i64,
    /// The viewer: private repositories are visible to their namespace's members only.
    pub viewer_id: Option<i64>,
    pub viewer_is_admin: bool,
}

/// The visibility rule in SQL: public repositories, and private ones to members of their
/// namespace and hub admins.
fn push_visible(sql: &mut QueryBuilder<Postgres>, viewer_id: Option<i64>, admin: bool) {
    if admin {
        return;
    }
    sql.push(" AND (r.visibility = 'public'");
    if let Some(viewer) = viewer_id {
        sql.push(" OR r.namespace_id = ").push_bind(viewer);
        sql.push(" OR EXISTS (SELECT 1 FROM memberships m WHERE m.org_id = r.namespace_id AND m.user_id = ")
            .push_bind(viewer)
            .push(")");
    }
    sql.push(")");
}

/// The head's scan status and quarantined files, by the rules of `domain::scan`, as columns
/// `s.statuses` and `s.quarantined` of a lateral join on `hf` (the head, `HEAD_JOINS`).
fn scan_join() -> String {
    format!(
        " LEFT JOIN LATERAL (
             SELECT array_agg(DISTINCT {status}) AS statuses,
                    count(*) FILTER (WHERE {quarantined}) AS quarantined
             FROM commit_files cf JOIN blobs b ON b.sha256 = cf.sha256
             WHERE cf.repository_id = r.id AND cf.commit_id = hf.commit_id) s ON true",
        status = crate::domain::scan::FILE_STATUS_SQL,
        quarantined = crate::domain::scan::QUARANTINED_SQL,
    )
}

/// The head's overall scan status as an SQL expression over `scan_join`.
fn scan_overall() -> String {
    crate::domain::scan::overall_sql("COALESCE(s.statuses, '{}')")
}

/// The head's facts as columns of `hf`, looked up per repository. A lateral subquery with a
/// `LIMIT` (one `main` ref per repository) is never flattened into the join: as plain joins,
/// PostgreSQL estimates the ref-to-evaluation join at one row and hashes every evaluation
/// before sorting (1.1 s for `commercial=yes` at a million repositories), where walking the
/// sort's index and probing each repository's head fills a page in milliseconds.
const HEAD_JOINS: &str = " LEFT JOIN LATERAL (
         SELECT h.commit_id, le.decision, le.effective, le.report, mv.status AS verification
         FROM refs h
         LEFT JOIN license_evaluations le ON le.repository_id = h.repository_id AND le.commit_id = h.commit_id
         LEFT JOIN model_verifications mv ON mv.repository_id = h.repository_id AND mv.commit_id = h.commit_id
         WHERE h.repository_id = r.id AND h.name = 'main' LIMIT 1) hf ON true";

pub async fn search(conn: &mut PgConnection, q: &SearchQuery<'_>) -> sqlx::Result<Vec<Repo>> {
    let plan = Plan::for_query(conn, q).await?;
    let mut runner = Runner { conn, plans: None };
    run(&mut runner, q, &plan).await
}

/// PostgreSQL's plan for `q` (`EXPLAIN`), for the tests that hold every search to its indexes:
/// the collection of a text's few matches, when the search starts there, then the page; for a
/// ranking, each statement it ran, in order.
pub async fn explain_search(conn: &mut PgConnection, q: &SearchQuery<'_>) -> sqlx::Result<String> {
    let plan = Plan::for_query(conn, q).await?;
    let mut runner = Runner {
        conn,
        plans: Some(Vec::new()),
    };
    if let (Some(text), Some(_)) = (search_text(q), &plan.text_matches) {
        runner
            .record(&|explain| text_candidates_sql(explain, text))
            .await?;
    }
    run(&mut runner, q, &plan).await?;
    Ok(runner.plans.unwrap_or_default().concat())
}

async fn run(runner: &mut Runner<'_>, q: &SearchQuery<'_>, plan: &Plan) -> sqlx::Result<Vec<Repo>> {
    match ranked_text(q) {
        Some(text) => ranking::ranked(runner, q, plan, text).await,
        None => runner.page(q, plan).await,
    }
}

/// Runs a search's statements; for `explain_search`, records each one's plan as it goes (the
/// statements a ranking runs depend on what the earlier ones found).
struct Runner<'c> {
    conn: &'c mut PgConnection,
    plans: Option<Vec<String>>,
}

impl Runner<'_> {
    async fn ids(
        &mut self,
        statement: impl Fn(bool) -> QueryBuilder<Postgres>,
    ) -> sqlx::Result<Vec<i64>> {
        self.record(&statement).await?;
        let mut sql = statement(false);
        let mut ids: Vec<i64> = sql
            .build_query_scalar()
            .persistent(false)
            .fetch_all(&mut *self.conn)
            .await?;
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// A page of the search `q` under `plan` (see [`search_sql`]).
    async fn page(&mut self, q: &SearchQuery<'_>, plan: &Plan) -> sqlx::Result<Vec<Repo>> {
        let mut tx = self.conn.begin().await?;
        probe_candidates(&mut tx, plan).await?;
        if let Some(plans) = &mut self.plans {
            let lines: Vec<(String,)> = search_sql(true, q, plan)
                .build_query_as()
                .fetch_all(&mut *tx)
                .await?;
            plans.extend(lines.into_iter().map(|(line,)| line + "\n"));
        }
        // Planned for its values every time: matches differ by orders of magnitude from one
        // text, namespace or tier to the next, which a generic plan of a prepared statement
        // cannot know (after five runs PostgreSQL may switch to one, and it walked the date
        // index: 60-90 ms at a million repositories).
        let rows = search_sql(false, q, plan)
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn record(
        &mut self,
        statement: &impl Fn(bool) -> QueryBuilder<Postgres>,
    ) -> sqlx::Result<()> {
        if let Some(plans) = &mut self.plans {
            let mut sql = statement(true);
            let lines: Vec<(String,)> = sql
                .build_query_as()
                .persistent(false)
                .fetch_all(&mut *self.conn)
                .await?;
            plans.extend(lines.into_iter().map(|(line,)| line + "\n"));
        }
        Ok(())
    }
}

/// The text of a ranked search (`SortKey::Relevance` with a text).
fn ranked_text<'a>(q: &SearchQuery<'a>) -> Option<&'a str> {
    search_text(q).filter(|_| q.sort == SortKey::Relevance)
}

/// A search from collected candidates (a text's or a ranking tier's few matches: at most
/// [`FEW_MATCHES`]) reads them by primary key. Where the hub holds only a few thousand
/// repositories PostgreSQL may instead hash every one of them, and its choice flips with the
/// table's physical order (rows rewritten by updates); at scale that hash reads the whole
/// table. Probes are cheap at every size, so they are forced.
async fn probe_candidates(conn: &mut PgConnection, plan: &Plan) -> sqlx::Result<()> {
    if plan.text_matches.is_some() {
        sqlx::query("SET LOCAL enable_hashjoin = off")
            .execute(&mut *conn)
            .await?;
        sqlx::query("SET LOCAL enable_mergejoin = off")
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Fewer matching repositories than this: collect them first, then page. More: walk the sort's
/// index and test each repository, which fills a page after a few rows.
const FEW_MATCHES: i64 = 2000;

/// How a search finds its rows. A text or a licence that few repositories match is best served
/// by collecting them from their indexes first; one that many match, by walking the sort's
/// index and stopping at a full page. PostgreSQL's estimates for full-text and trigram matches
/// are too coarse to choose (a rare word is estimated at hundreds of rows, so it walks every
/// repository), so the hub counts, up to `FEW_MATCHES`, and chooses; only a match the
/// statistics call common by a wide margin skips the count (`COMMON_ESTIMATE`).
#[derive(Debug, Clone, Default)]
struct Plan {
    /// A text's (or a ranking tier's) matches when they are fewer than [`FEW_MATCHES`],
    /// collected first.
    text_matches: Option<Vec<i64>>,
    /// A ranking's tier: its rule replaces the text's (see `ranking`).
    tier: Option<Tier>,
    /// Read only this many of the newest repositories (a ranking tier's first look).
    newest: Option<i64>,
    license_first: bool,
    /// A filter on the head's facts that few repositories match: its candidates come first.
    fact_first: Option<Fact>,
}

/// A filter on a head's facts whose rare values an index finds: the repositories that hold
/// the value on some commit (a superset; the search still tests the head).
#[derive(Debug, Clone, Copy)]
enum Fact {
    Verification,
    Commercial,
    Category,
    Scan,
}

impl Fact {
    /// The facts `q` filters on that have candidates (`verification=none` and `scan=clean`
    /// are an absence, which no index lists).
    fn asked(q: &SearchQuery<'_>) -> Vec<Fact> {
        let mut facts = Vec::new();
        if q.verification.is_some_and(|v| v != "none") {
            facts.push(Fact::Verification);
        }
        if q.commercial.is_some() {
            facts.push(Fact::Commercial);
        }
        if q.category.is_some_and(|c| !c.trim().is_empty()) {
            facts.push(Fact::Category);
        }
        if q.scan.is_some_and(|s| s != crate::domain::scan::CLEAN) {
            facts.push(Fact::Scan);
        }
        facts
    }

    /// The ids of repositories holding the fact's value on some commit, from its index.
    fn push_candidates(self, sql: &mut QueryBuilder<Postgres>, q: &SearchQuery<'_>) {
        match self {
            Fact::Verification => {
                sql.push("SELECT repository_id FROM model_verifications WHERE status = ")
                    .push_bind(q.verification.unwrap_or_default().to_string());
            }
            Fact::Commercial => {
                // The head's decision as kept on the row (migration 0030): exactly the heads.
                sql.push(
                    "SELECT id AS repository_id FROM repositories
                     WHERE deleted_at IS NULL AND head_decision = ANY(",
                )
                .push_bind(commercial_decisions(q.commercial.unwrap_or_default()))
                .push(")");
            }
            Fact::Category => {
                let category = q.category.unwrap_or_default().trim();
                sql.push("SELECT repository_id FROM license_evaluations WHERE report->'terms' @> ")
                    .push_bind(serde_json::json!([{ "categories": [category] }]));
            }
            Fact::Scan => {
                // Every status but clean, and every quarantined file, is in `blobs_not_clean`.
                let status = q.scan.unwrap_or_default();
                sql.push(
                    "SELECT cf.repository_id FROM blobs b JOIN commit_files cf ON cf.sha256 = b.sha256
                     WHERE (b.scan_verdict IS NULL OR b.scan_verdict <> 'clean' OR b.held_reason IS NOT NULL)",
                );
                if status == "quarantined" {
                    sql.push(format!(" AND {}", crate::domain::scan::QUARANTINED_SQL));
                } else {
                    sql.push(format!(" AND {} = ", crate::domain::scan::FILE_STATUS_SQL))
                        .push_bind(status.to_string());
                }
            }
        }
    }
}

impl Plan {
    async fn for_query(conn: &mut PgConnection, q: &SearchQuery<'_>) -> sqlx::Result<Plan> {
        let mut plan = Plan::default();
        // A ranking reads its text tier by tier (`ranking`), each with its own plan.
        if let Some(text) = search_text(q).filter(|_| ranked_text(q).is_none())
            && !word_is_common(conn, text).await?
        {
            // Collected once: when they are few, the page is made from these ids, and the
            // indexes (and each card's words) are not read a second time.
            let mut few = text_candidates_sql(false, text);
            let few = few.build_query_scalar().persistent(false);
            let mut ids: Vec<i64> = few.fetch_all(&mut *conn).await?;
            if (ids.len() as i64) < FEW_MATCHES {
                ids.sort_unstable();
                ids.dedup();
                plan.text_matches = Some(ids);
            }
        }
        if let Some(license) = search_license(q)
            && !license_is_common(conn, license).await?
        {
            let mut count = QueryBuilder::new("SELECT count(*) FROM (");
            push_license_matches(&mut count, license, "UNION ALL");
            count.push(" LIMIT ").push_bind(FEW_MATCHES).push(") m");
            let count = count.build_query_as().persistent(false);
            let (n,): (i64,) = count.fetch_one(&mut *conn).await?;
            plan.license_first = n < FEW_MATCHES;
        }
        for fact in Fact::asked(q) {
            let mut count = QueryBuilder::new("SELECT count(*) FROM (");
            fact.push_candidates(&mut count, q);
            count.push(" LIMIT ").push_bind(FEW_MATCHES).push(") m");
            let count = count.build_query_as().persistent(false);
            let (n,): (i64,) = count.fetch_one(&mut *conn).await?;
            if n < FEW_MATCHES {
                plan.fact_first = Some(fact);
                break;
            }
        }
        Ok(plan)
    }
}

/// Rows PostgreSQL's statistics must expect before a match is taken as common without counting.
/// Counting up to [`FEW_MATCHES`] reads the index's bitmap of every match (a quarter of a million
/// repositories: 25–40 ms at 1M); the statistics of a single word (the most common elements of
/// the full-text index) or of a licence (the most common values) are sampled from 30,000 rows,
/// so an estimate ten times over the threshold does not come from a rare value.
const COMMON_ESTIMATE: f64 = 10.0 * FEW_MATCHES as f64;

/// Whether `text` is one word that the statistics say many repositories' names, descriptions or
/// cards hold. Several words are always counted: their estimate multiplies the words'
/// frequencies, which is far off for words that rarely occur together.
pub async fn word_is_common(conn: &mut PgConnection, text: &str) -> sqlx::Result<bool> {
    let words: i32 = sqlx::query_scalar("SELECT numnode(plainto_tsquery('simple', $1))")
        .bind(text)
        .fetch_one(&mut *conn)
        .await?;
    if words != 1 {
        return Ok(false);
    }
    let mut explain = QueryBuilder::new(format!(
        "EXPLAIN (FORMAT JSON) SELECT 1 FROM repositories WHERE {} @@ plainto_tsquery('simple', ",
        text_document("")
    ));
    explain.push_bind(text.to_string()).push(")");
    Ok(estimated_rows(conn, explain).await? >= COMMON_ESTIMATE)
}

/// Whether the statistics say many repositories declare `license`.
pub async fn license_is_common(conn: &mut PgConnection, license: &str) -> sqlx::Result<bool> {
    let mut explain = QueryBuilder::new(
        "EXPLAIN (FORMAT JSON) SELECT 1 FROM repositories WHERE lower(license) = lower(",
    );
    explain.push_bind(license.to_string()).push(")");
    Ok(estimated_rows(conn, explain).await? >= COMMON_ESTIMATE)
}

/// The row count at the top of the plan of an `EXPLAIN (FORMAT JSON)` statement.
async fn estimated_rows(
    conn: &mut PgConnection,
    mut explain: QueryBuilder<Postgres>,
) -> sqlx::Result<f64> {
    let (plan,): (serde_json::Value,) = explain
        .build_query_as()
        .persistent(false)
        .fetch_one(conn)
        .await?;
    Ok(plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0))
}

/// The head decisions that answer "may I use this commercially?" with yes, or with no (a
/// denial, or a person must decide).
fn commercial_decisions(commercial: bool) -> Vec<&'static str> {
    if commercial {
        vec!["allow", "allow_with_obligations"]
    } else {
        vec!["flag_review", "deny"]
    }
}

fn search_text<'a>(q: &SearchQuery<'a>) -> Option<&'a str> {
    q.text.map(str::trim).filter(|t| !t.is_empty())
}

fn search_license<'a>(q: &SearchQuery<'a>) -> Option<&'a str> {
    q.license.map(str::trim).filter(|l| !l.is_empty())
}

/// The ids of repositories whose name contains `text` (trigram index) or whose name,
/// description or card hold its words (full-text index), joined by `union` (`UNION` for a set,
/// `UNION ALL` to count cheaply).
/// Up to [`FEW_MATCHES`] ids of repositories whose name or words hold `text` (with repeats).
fn text_candidates_sql(explain: bool, text: &str) -> QueryBuilder<Postgres> {
    let mut sql = QueryBuilder::new(if explain { "EXPLAIN " } else { "" });
    sql.push("SELECT id FROM (");
    push_text_matches(&mut sql, text, "UNION ALL");
    sql.push(" LIMIT ").push_bind(FEW_MATCHES).push(") m");
    sql
}

fn push_text_matches(sql: &mut QueryBuilder<Postgres>, text: &str, union: &str) {
    if substring_searchable(text) {
        sql.push("SELECT id FROM repositories WHERE full_name ILIKE ")
            .push_bind(like_pattern(text))
            .push(format!(" {union} "));
    }
    sql.push(format!(
        "SELECT id FROM repositories WHERE {} @@ plainto_tsquery('simple', ",
        text_document("")
    ))
    .push_bind(text.to_string())
    .push(")");
}

/// Whether a name can match `text` as a substring: only when the text holds three letters or
/// digits in a row, the trigram index's unit. A shorter text ("7b", "ai") gives the index no
/// trigram, so finding it inside names would read every repository (a second per search at a
/// million); such a text matches the words of names, descriptions and cards only.
fn substring_searchable(text: &str) -> bool {
    let mut run = 0;
    text.chars().any(|c| {
        run = if c.is_alphanumeric() { run + 1 } else { 0 };
        run >= 3
    })
}

/// The ids of repositories whose declared licence, or whose head's effective licence, is
/// `license` (case-insensitive indexes on both). Each evaluation's head is looked up by the
/// refs' primary key (a scalar subquery): as a join, PostgreSQL estimated one row and hashed
/// every evaluation of the licence and every ref, 78 ms at a million repositories where the
/// count stops after 2,000 probes.
fn push_license_matches(sql: &mut QueryBuilder<Postgres>, license: &str, union: &str) {
    sql.push("SELECT id FROM repositories WHERE lower(license) = lower(")
        .push_bind(license.to_string())
        .push(format!(
            ") {union} SELECT e.repository_id FROM license_evaluations e
             WHERE e.commit_id = (SELECT eh.commit_id FROM refs eh
                                  WHERE eh.repository_id = e.repository_id AND eh.name = 'main')
               AND lower(e.effective) = lower("
        ))
        .push_bind(license.to_string())
        .push(")");
}

/// The words of a repository's name, description and card, stored on the row and indexed
/// (migration 0032's `search_words`), qualified by `table` (`r.` or nothing).
fn text_document(table: &str) -> String {
    format!("{table}search_words")
}

fn like_pattern(text: &str) -> String {
    format!(
        "%{}%",
        text.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

fn search_sql(explain: bool, q: &SearchQuery<'_>, plan: &Plan) -> QueryBuilder<Postgres> {
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(if explain { "EXPLAIN " } else { "" });
    let text = search_text(q);
    // A rare fact's candidates are collected first (materialized, so that PostgreSQL cannot
    // turn them into a probe while it walks the sort's index instead), then sorted and paged.
    if let Some(fact) = plan.fact_first {
        sql.push("WITH facts AS MATERIALIZED (");
        fact.push_candidates(&mut sql, q);
        sql.push(") ");
    }
    match plan.newest {
        // A ranking tier's first look: only the newest repositories, from the date index.
        Some(newest) => {
            sql.push(concat!(
                repo_columns!(),
                " FROM (SELECT * FROM repositories WHERE deleted_at IS NULL
                   ORDER BY updated_at DESC, id DESC LIMIT "
            ))
            .push_bind(newest)
            .push(") r JOIN namespaces n ON n.id = r.namespace_id");
        }
        None => {
            sql.push(SELECT_REPO);
        }
    }
    if plan.fact_first.is_some() {
        sql.push(" JOIN (SELECT DISTINCT repository_id AS id FROM facts) facts ON facts.id = r.id");
    }
    // A text's few matches, or a ranking tier's, collected beforehand.
    if let Some(ids) = &plan.text_matches {
        sql.push(" JOIN unnest(")
            .push_bind(ids.clone())
            .push("::BIGINT[]) AS matches(id) ON matches.id = r.id");
    }
    // The head's facts only when a filter reads them: the plain search stays on one table
    // (commercial use reads the head's decision from the row itself).
    let needs_head = q.category.is_some() || q.scan.is_some() || q.verification.is_some();
    if needs_head {
        sql.push(HEAD_JOINS);
    }
    if q.scan.is_some() {
        sql.push(scan_join());
    }
    sql.push(" WHERE r.deleted_at IS NULL");
    push_visible(&mut sql, q.viewer_id, q.viewer_is_admin);
    if let Some(namespace) = q.namespace.map(str::trim).filter(|n| !n.is_empty()) {
        sql.push(" AND lower(n.name) = lower(")
            .push_bind(namespace.to_string())
            .push(")");
    }
    if let (Some(text), Some(tier)) = (text, plan.tier) {
        tier.push_condition(&mut sql, text);
    } else if let (Some(text), None) = (text, &plan.text_matches) {
        // Many matches: a test per repository while the sort's index is walked.
        sql.push(" AND (");
        if substring_searchable(text) {
            sql.push("r.full_name ILIKE ")
                .push_bind(like_pattern(text))
                .push(" OR ");
        }
        sql.push(format!(
            "{} @@ plainto_tsquery('simple', ",
            text_document("r.")
        ))
        .push_bind(text.to_string())
        .push("))");
    }
    match (search_license(q), plan.license_first) {
        (Some(license), true) => {
            sql.push(" AND r.id IN (");
            push_license_matches(&mut sql, license, "UNION");
            sql.push(")");
        }
        (Some(license), false) => {
            sql.push(" AND (lower(r.license) = lower(")
                .push_bind(license.to_string())
                // A scalar subquery per repository (two primary-key probes): as an EXISTS,
                // PostgreSQL would hash every evaluation's head first, reading all refs.
                .push(") OR lower((SELECT e.effective FROM refs eh JOIN license_evaluations e ON e.repository_id = eh.repository_id AND e.commit_id = eh.commit_id WHERE eh.repository_id = r.id AND eh.name = 'main')) = lower(")
                .push_bind(license.to_string())
                .push("))");
        }
        (None, _) => {}
    }
    if !q.tags.is_empty() {
        // Tags are letters, digits and `-_.` only: anything else cannot match a card's tag.
        let tags: Vec<String> = q
            .tags
            .iter()
            .map(|tag| {
                tag.trim()
                    .chars()
                    .filter(|c| c.is_alphanumeric() || "-_.".contains(*c))
                    .collect::<String>()
                    .to_lowercase()
            })
            .collect();
        // `card_tags` (migration 0026) is the card's tags, lowercased, under a GIN index.
        sql.push(" AND r.card_tags @> ").push_bind(tags);
    }
    if let Some(category) = q.category.map(str::trim).filter(|c| !c.is_empty()) {
        sql.push(" AND EXISTS (SELECT 1 FROM jsonb_array_elements(hf.report->'terms') t WHERE t->'categories' ? ")
            .push_bind(category.to_string())
            .push(")");
    }
    if let Some(commercial) = q.commercial {
        sql.push(" AND r.head_decision = ANY(")
            .push_bind(commercial_decisions(commercial))
            .push(")");
    }
    match q.scan {
        Some("quarantined") => {
            sql.push(" AND s.quarantined > 0");
        }
        Some(status) => {
            sql.push(format!(" AND {} = ", scan_overall()))
                .push_bind(status.to_string());
        }
        None => {}
    }
    match q.verification {
        Some("none") => {
            sql.push(" AND hf.verification IS NULL");
        }
        Some(status) => {
            sql.push(" AND hf.verification = ")
                .push_bind(status.to_string());
        }
        None => {}
    }
    let (key, order) = match q.sort {
        SortKey::Updated | SortKey::Relevance => ("r.updated_at", "DESC"),
        SortKey::Created => ("r.created_at", "DESC"),
        SortKey::Name => ("lower(r.full_name)", "ASC"),
    };
    match &q.after {
        Some(Cursor::Time(t, id)) if q.sort != SortKey::Name => {
            sql.push(format!(" AND ({key}, r.id) < ("))
                .push_bind(*t)
                .push(", ")
                .push_bind(*id)
                .push(")");
        }
        Some(Cursor::Name(name, id)) if q.sort == SortKey::Name => {
            sql.push(format!(" AND ({key}, r.id) > ("))
                .push_bind(name.clone())
                .push(", ")
                .push_bind(*id)
                .push(")");
        }
        _ => {}
    }
    sql.push(format!(" ORDER BY {key} {order}, r.id {order} LIMIT "))
        .push_bind(q.limit)
        .push(" OFFSET ")
        .push_bind(q.offset);
    sql
}

/// What a search result shows beyond the repository: its head's licence decision, effective
/// licence, verification and scan status (by `domain::scan`), and quarantined files.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HeadFacts {
    pub id: i64,
    pub decision: Option<LicenseDecision>,
    pub effective: Option<String>,
    pub verification: Option<String>,
    pub scan: String,
    pub quarantined: i64,
}

pub async fn head_facts(conn: &mut PgConnection, ids: &[i64]) -> sqlx::Result<Vec<HeadFacts>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT r.id, hf.decision, hf.effective, hf.verification,
                {overall} AS scan, COALESCE(s.quarantined, 0) AS quarantined
         FROM repositories r {HEAD_JOINS} {scan}
         WHERE r.id = ANY($1)",
        overall = scan_overall(),
        scan = scan_join(),
    )))
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// The caller's access request to a gated repository: its status, if any.
pub async fn access_status(
    conn: &mut PgConnection,
    repository_id: i64,
    user_id: i64,
) -> sqlx::Result<Option<AccessStatus>> {
    sqlx::query_scalar(
        "SELECT status FROM access_requests WHERE repository_id = $1 AND user_id = $2",
    )
    .bind(repository_id)
    .bind(user_id)
    .fetch_optional(conn)
    .await
}

/// Records a request (accepted at once when `status` says so); an existing decision stands.
pub async fn request_access(
    conn: &mut PgConnection,
    repository_id: i64,
    user_id: i64,
    status: AccessStatus,
) -> sqlx::Result<AccessStatus> {
    sqlx::query_scalar(
        "INSERT INTO access_requests (repository_id, user_id, status, decided_at)
         VALUES ($1, $2, $3, CASE WHEN $3 = 'pending' THEN NULL ELSE now() END)
         ON CONFLICT (repository_id, user_id) DO UPDATE SET status = access_requests.status
         RETURNING status",
    )
    .bind(repository_id)
    .bind(user_id)
    .bind(status)
    .fetch_one(conn)
    .await
}

pub async fn decide_access(
    conn: &mut PgConnection,
    repository_id: i64,
    user_id: i64,
    status: AccessStatus,
    by: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO access_requests (repository_id, user_id, status, decided_at, decided_by) VALUES ($1, $2, $3, now(), $4)
         ON CONFLICT (repository_id, user_id) DO UPDATE SET status = $3, decided_at = now(), decided_by = $4",
    )
    .bind(repository_id)
    .bind(user_id)
    .bind(status)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct AccessRequest {
    pub user: String,
    pub status: AccessStatus,
    pub requested_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

pub async fn access_requests(
    conn: &mut PgConnection,
    repository_id: i64,
) -> sqlx::Result<Vec<AccessRequest>> {
    sqlx::query_as(
        "SELECT n.name AS user, a.status, a.requested_at, a.decided_at FROM access_requests a
         JOIN namespaces n ON n.id = a.user_id WHERE a.repository_id = $1 ORDER BY a.requested_at",
    )
    .bind(repository_id)
    .fetch_all(conn)
    .await
}
