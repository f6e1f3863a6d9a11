//! Events for repository owners and watchers: an in-app notification each, and one signed
//! webhook delivery per namespace webhook, queued in the transaction of the change.

use serde_json::{Value, json};
use sqlx::PgConnection;

use crate::db;
use crate::db::repos::Repo;
use crate::domain::task::{Task, WebhookDelivery};

/// Emits `kind` about `repo`. Events about unpublished reports (`public == false`) reach only
/// the owners, never watchers, so that a report's existence does not leak.
pub async fn emit(
    conn: &mut PgConnection,
    repo: &Repo,
    kind: &str,
    payload: Value,
    public: bool,
) -> sqlx::Result<()> {
    let event = json!({"kind": kind, "repository": repo.full_name(), "data": payload, "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)});
    for user in db::notifications::recipients(conn, repo.id, public).await? {
        db::notifications::add(conn, user, repo.id, kind, &event).await?;
    }
    for hook in db::notifications::webhooks(conn, repo.namespace_id).await? {
        let delivery = db::notifications::add_delivery(conn, hook.id, &event).await?;
        let task = Task::WebhookDeliver(WebhookDelivery {
            delivery_id: delivery,
        });
        db::jobs::enqueue(conn, &task, None).await?;
    }
    Ok(())
}

/// Emits `kind` to every live repository whose `main` holds the blob (but `except`, already
/// told).
pub async fn emit_for_blob(
    conn: &mut PgConnection,
    sha256: &[u8],
    kind: &str,
    payload: Value,
    except: Option<i64>,
) -> sqlx::Result<()> {
    let ids = db::notifications::repositories_holding(conn, sha256).await?;
    for id in ids.into_iter().filter(|id| Some(*id) != except) {
        if let Some(repo) = db::repos::find_by_id(conn, id).await? {
            emit(conn, &repo, kind, payload.clone(), true).await?;
        }
    }
    Ok(())
}

/// A community rule matched a blob: every repository whose `main` holds it gets a report
/// from the rule set's author, once per rule set version, and its owners are told.
pub async fn open_rule_reports(
    conn: &mut PgConnection,
    sha256: &[u8],
    rules: &db::rules::RuleSet,
    report: &kaiyuan_scanner::Report,
) -> sqlx::Result<()> {
    let hits: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.rule == "pickle-community-rule" || f.rule == "yara-community-rule")
        .map(|f| f.message.clone())
        .collect();
    let held = db::notifications::heads_holding(conn, sha256).await?;
    let tag = format!("community rule set {}", rules.version);
    for (repo_id, commit, path) in held {
        if db::reviews::has_report_tagged(conn, repo_id, sha256, &tag).await? {
            continue;
        }
        let id = db::reviews::insert(
            conn,
            &db::reviews::NewReport {
                repository_id: repo_id,
                commit_id: Some(&commit),
                path: Some(&path),
                sha256: Some(sha256),
                reporter_id: rules.created_by,
                category: crate::db::types::ReportCategory::MaliciousCode,
                description: &format!("{path} matched community scan rules: {}", hits.join("; ")),
                evidence: &format!("{tag}: {}", hits.join("; ")),
                disclosure_at: chrono::Utc::now() + chrono::Duration::days(90),
            },
        )
        .await?;
        if let Some(repo) = db::repos::find_by_id(conn, repo_id).await? {
            emit(
                conn,
                &repo,
                "report.filed",
                json!({"report": id, "category": "malicious-code", "automatic": true}),
                false,
            )
            .await?;
        }
    }
    Ok(())
}
