//! Events for repository owners and watchers: an in-app notification each, and one signed
//! webhook delivery per namespace webhook, queued in the transaction of the change.

use serde_json::{Value, json};
use sqlx::PgConnection;

use crate::db;
use crate::db::repos::Repo;

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
        db::jobs::enqueue(
            conn,
            db::notifications::WEBHOOK_DELIVER,
            &json!({"delivery_id": delivery}),
            None,
        )
        .await?;
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
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT r.id FROM commit_files c
         JOIN refs f ON f.repository_id = c.repository_id AND f.name = 'main' AND f.commit_id = c.commit_id
         JOIN repositories r ON r.id = c.repository_id AND r.deleted_at IS NULL
         WHERE c.sha256 = $1",
    )
    .bind(sha256)
    .fetch_all(&mut *conn)
    .await?;
    for id in ids.into_iter().filter(|id| Some(*id) != except) {
        if let Some(repo) = db::repos::find_by_id(conn, id).await? {
            emit(conn, &repo, kind, payload.clone(), true).await?;
        }
    }
    Ok(())
}
