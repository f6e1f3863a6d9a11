//! The relevance ranking (`SortKey::Relevance`), tier by tier: repositories named the text, then
//! those whose name holds it, then those whose description does, then those whose card does;
//! newest first within each. Each tier is read only as far as the page needs, from whichever
//! side is cheap: the newest repositories (a common text fills the page there) or the tier's
//! own index (a rare one), so that the ranking is exact at any size.

use super::{
    FEW_MATCHES, Plan, Repo, Runner, SearchQuery, SortKey, estimated_rows, like_pattern,
    push_license_matches, search_license, substring_searchable, text_document,
};
use sqlx::{PgConnection, Postgres, QueryBuilder};

/// How deep a ranking reads. Positions past this are not ranked (an empty page); sorting by
/// date pages through every match. Without a bound, one request could walk every repository.
pub const RANKED_DEPTH: i64 = 10_000;

/// Newest repositories a tier reads before it asks its index instead. A tier that many
/// repositories are in fills a page well within them.
const NEWEST_WINDOW: i64 = 2_000;

/// The tiers of a ranking, best first; each excludes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tier {
    /// The name (or `namespace/name`) is the text.
    Exact,
    /// The name holds the text.
    Name,
    /// The description holds the text, and the words hold its words.
    Description,
    /// Only the card holds its words.
    Card,
}

impl Tier {
    const BEST_FIRST: [Tier; 4] = [Tier::Exact, Tier::Name, Tier::Description, Tier::Card];

    /// The tier's rule, as a condition on the repository `r`.
    pub(super) fn push_condition(self, sql: &mut QueryBuilder<Postgres>, text: &str) {
        let pattern = like_pattern(text);
        let push_words = |sql: &mut QueryBuilder<Postgres>, table: &str| {
            sql.push(format!(
                " AND {} @@ plainto_tsquery('simple', ",
                text_document(table)
            ))
            .push_bind(text.to_string())
            .push(")");
        };
        let push_exact = |sql: &mut QueryBuilder<Postgres>| {
            sql.push("(lower(r.name) = lower(")
                .push_bind(text.to_string())
                .push(") OR lower(r.full_name) = lower(")
                .push_bind(text.to_string())
                .push("))");
        };
        sql.push(" AND ");
        match self {
            Tier::Exact => push_exact(sql),
            Tier::Name => {
                sql.push("r.full_name ILIKE ")
                    .push_bind(pattern)
                    .push(" AND NOT ");
                push_exact(sql);
                if !substring_searchable(text) {
                    // A short text matches words only (see `substring_searchable`).
                    push_words(sql, "r.");
                }
            }
            Tier::Description | Tier::Card => {
                sql.push("NOT r.full_name ILIKE ")
                    .push_bind(pattern.clone())
                    .push(if self == Tier::Description {
                        " AND r.description ILIKE "
                    } else {
                        " AND NOT r.description ILIKE "
                    })
                    .push_bind(pattern);
                push_words(sql, "r.");
            }
        }
    }

    /// The condition on `repositories` that the tier's index answers: a superset of the tier,
    /// which the page then tests.
    fn push_index_condition(self, sql: &mut QueryBuilder<Postgres>, text: &str) {
        match self {
            Tier::Exact => {
                sql.push("deleted_at IS NULL AND (lower(name) = lower(")
                    .push_bind(text.to_string())
                    .push(") OR lower(full_name) = lower(")
                    .push_bind(text.to_string())
                    .push("))");
            }
            Tier::Name if substring_searchable(text) => {
                sql.push("full_name ILIKE ").push_bind(like_pattern(text));
            }
            Tier::Description if substring_searchable(text) => {
                sql.push("description ILIKE ").push_bind(like_pattern(text));
            }
            // A short text's tiers are all within its word matches.
            Tier::Name | Tier::Description | Tier::Card => {
                sql.push(format!(
                    "{} @@ plainto_tsquery('simple', ",
                    text_document("")
                ))
                .push_bind(text.to_string())
                .push(")");
            }
        }
    }

    /// Up to [`FEW_MATCHES`] ids of repositories that may be in the tier, from its index.
    fn candidates_sql(self, explain: bool, text: &str) -> QueryBuilder<Postgres> {
        let mut sql = QueryBuilder::new(if explain { "EXPLAIN " } else { "" });
        sql.push("SELECT id FROM repositories WHERE ");
        self.push_index_condition(&mut sql, text);
        sql.push(" LIMIT ").push_bind(FEW_MATCHES);
        sql
    }

    /// Whether PostgreSQL's statistics expect the tier's index to list many repositories, so
    /// that the newest repositories are read first. Only a guess (a trigram's estimate is
    /// coarse): either order finds the same rows, one of them at more cost.
    async fn looks_common(self, conn: &mut PgConnection, text: &str) -> sqlx::Result<bool> {
        let mut explain =
            QueryBuilder::new("EXPLAIN (FORMAT JSON) SELECT 1 FROM repositories WHERE ");
        self.push_index_condition(&mut explain, text);
        Ok(estimated_rows(conn, explain).await? >= FEW_MATCHES as f64)
    }
}

/// The page of a ranked search for `text`: the tiers in order, each read up to the page's end.
pub(super) async fn ranked(
    runner: &mut Runner<'_>,
    q: &SearchQuery<'_>,
    plan: &Plan,
    text: &str,
) -> sqlx::Result<Vec<Repo>> {
    let position = match q.after {
        Some(super::Cursor::Offset(n)) => n.max(0),
        _ => 0,
    };
    let skip = q.offset.max(0).saturating_add(position);
    let end = skip.saturating_add(q.limit).min(RANKED_DEPTH);
    // A narrow filter's candidates are collected once, rather than again by every tier.
    let mut plan = plan.clone();
    if let Some(fact) = plan.fact_first.take() {
        let ids = runner
            .ids(|explain| {
                let mut sql = QueryBuilder::new(if explain { "EXPLAIN " } else { "" });
                fact.push_candidates(&mut sql, q);
                sql
            })
            .await?;
        plan.text_matches = Some(ids);
    } else if let (Some(license), true) = (search_license(q), plan.license_first) {
        let ids = runner
            .ids(|explain| {
                let mut sql = QueryBuilder::new(if explain { "EXPLAIN " } else { "" });
                push_license_matches(&mut sql, license, "UNION");
                sql
            })
            .await?;
        // The page still tests each candidate's licence (`search_sql`).
        plan.license_first = false;
        plan.text_matches = Some(ids);
    }
    if plan.text_matches.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Vec::new());
    }
    let mut rows: Vec<Repo> = Vec::new();
    for tier in Tier::BEST_FIRST {
        let want = end - rows.len() as i64;
        if want <= 0 {
            break;
        }
        rows.extend(tier_page(runner, q, &plan, tier, text, want).await?);
    }
    Ok(rows
        .into_iter()
        .skip(skip as usize)
        .take(q.limit.max(0) as usize)
        .collect())
}

/// The newest `want` repositories of `tier` that `q`'s filters admit, from two sides: the
/// newest repositories (when they hold `want` of the tier, no older one can precede them) and
/// the tier's index (when it lists fewer than `FEW_MATCHES`, they are all the tier's). The side
/// the statistics favour goes first. Only a tier that is common overall yet rare among the
/// newest is walked through the whole date order.
async fn tier_page(
    runner: &mut Runner<'_>,
    q: &SearchQuery<'_>,
    plan: &Plan,
    tier: Tier,
    text: &str,
    want: i64,
) -> sqlx::Result<Vec<Repo>> {
    let by_date = SearchQuery {
        sort: SortKey::Updated,
        after: None,
        offset: 0,
        limit: want,
        ..q.clone()
    };
    let mut tier_plan = Plan {
        tier: Some(tier),
        ..plan.clone()
    };
    // A narrow filter (a namespace, or a fact or licence that few repositories hold, collected
    // by `ranked`) already names few candidates: the tier is tested on those.
    if q.namespace.is_some_and(|n| !n.trim().is_empty()) || plan.text_matches.is_some() {
        return runner.page(&by_date, &tier_plan).await;
    }
    let newest = Plan {
        newest: Some(NEWEST_WINDOW),
        ..tier_plan.clone()
    };
    let newest_first = tier != Tier::Exact && tier.looks_common(runner.conn, text).await?;
    if newest_first {
        let rows = runner.page(&by_date, &newest).await?;
        if rows.len() as i64 == want {
            return Ok(rows);
        }
    }
    let text_owned = text.to_string();
    let ids = runner
        .ids(move |explain| tier.candidates_sql(explain, &text_owned))
        .await?;
    if (ids.len() as i64) < FEW_MATCHES {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        tier_plan.text_matches = Some(ids);
        return runner.page(&by_date, &tier_plan).await;
    }
    if !newest_first {
        let rows = runner.page(&by_date, &newest).await?;
        if rows.len() as i64 == want {
            return Ok(rows);
        }
    }
    runner.page(&by_date, &tier_plan).await
}
