//! Watchers, in-app notifications, webhooks and their deliveries.

use crate::db::types::DeliveryState;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

pub const WEBHOOK_DELIVER: &str = crate::domain::task::Task::WEBHOOK_DELIVER;

pub async fn watch(
    conn: &mut PgConnection,
    repository_id: i64,
    user_id: i64,
    on: bool,
) -> sqlx::Result<()> {
    let sql = if on {
        "INSERT INTO watchers (repository_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM watchers WHERE repository_id = $1 AND user_id = $2"
    };
    sqlx::query(sql)
        .bind(repository_id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Owners (the user, or an organisation's admins and owners) and, when `watchers`, the
/// repository's watchers.
pub async fn recipients(
    conn: &mut PgConnection,
    repository_id: i64,
    watchers: bool,
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        "SELECT DISTINCT user_id FROM (
             SELECT r.namespace_id AS user_id FROM repositories r JOIN namespaces n ON n.id = r.namespace_id
             WHERE r.id = $1 AND n.kind = 'user'
             UNION
             SELECT m.user_id FROM repositories r JOIN memberships m ON m.org_id = r.namespace_id
             WHERE r.id = $1 AND m.role IN ('admin', 'owner')
             UNION
             SELECT user_id FROM watchers WHERE repository_id = $1 AND $2
         ) x ORDER BY user_id",
    )
    .bind(repository_id)
    .bind(watchers)
    .fetch_all(conn)
    .await
}

pub async fn add(
    conn: &mut PgConnection,
    user_id: i64,
    repository_id: i64,
    kind: &str,
    payload: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO notifications (user_id, repository_id, kind, payload) VALUES ($1, $2, $3, $4)",
    )
    .bind(user_id)
    .bind(repository_id)
    .bind(kind)
    .bind(payload)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct Notification {
    pub id: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

pub async fn list(
    conn: &mut PgConnection,
    user_id: i64,
    unread_only: bool,
) -> sqlx::Result<Vec<Notification>> {
    sqlx::query_as(
        "SELECT id, kind, payload, created_at, read_at FROM notifications
         WHERE user_id = $1 AND (NOT $2 OR read_at IS NULL) ORDER BY id DESC LIMIT 500",
    )
    .bind(user_id)
    .bind(unread_only)
    .fetch_all(conn)
    .await
}

pub async fn mark_read(conn: &mut PgConnection, user_id: i64, id: i64) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE notifications SET read_at = now() WHERE id = $1 AND user_id = $2 AND read_at IS NULL")
        .bind(id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    #[serde(skip)]
    pub secret: String,
    pub created_at: DateTime<Utc>,
}

pub async fn add_webhook(
    conn: &mut PgConnection,
    namespace_id: i64,
    url: &str,
    secret: &str,
    by: i64,
) -> sqlx::Result<Webhook> {
    sqlx::query_as("INSERT INTO webhooks (namespace_id, url, secret, created_by) VALUES ($1, $2, $3, $4) RETURNING id, url, secret, created_at")
        .bind(namespace_id)
        .bind(url)
        .bind(secret)
        .bind(by)
        .fetch_one(conn)
        .await
}

pub async fn webhooks(conn: &mut PgConnection, namespace_id: i64) -> sqlx::Result<Vec<Webhook>> {
    sqlx::query_as("SELECT id, url, secret, created_at FROM webhooks WHERE namespace_id = $1 AND deleted_at IS NULL ORDER BY id")
        .bind(namespace_id)
        .fetch_all(conn)
        .await
}

pub async fn delete_webhook(
    conn: &mut PgConnection,
    namespace_id: i64,
    id: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE webhooks SET deleted_at = now() WHERE namespace_id = $1 AND id = $2 AND deleted_at IS NULL")
        .bind(namespace_id)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn add_delivery(
    conn: &mut PgConnection,
    webhook_id: i64,
    event: &serde_json::Value,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO webhook_deliveries (webhook_id, event) VALUES ($1, $2) RETURNING id",
    )
    .bind(webhook_id)
    .bind(event)
    .fetch_one(conn)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Delivery {
    pub id: i64,
    #[serde(skip)]
    pub webhook_id: i64,
    pub event: serde_json::Value,
    pub state: DeliveryState,
    pub attempts: i32,
    pub response_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

pub async fn delivery(
    conn: &mut PgConnection,
    id: i64,
) -> sqlx::Result<Option<(Delivery, Webhook)>> {
    let Some(d): Option<Delivery> = sqlx::query_as(
        "SELECT id, webhook_id, event, state, attempts, response_status, last_error, created_at, delivered_at FROM webhook_deliveries WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let w: Option<Webhook> = sqlx::query_as(
        "SELECT id, url, secret, created_at FROM webhooks WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(d.webhook_id)
    .fetch_optional(conn)
    .await?;
    Ok(w.map(|w| (d, w)))
}

pub async fn record_attempt(
    conn: &mut PgConnection,
    id: i64,
    status: Option<i32>,
    error: Option<&str>,
    delivered: bool,
    give_up: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, response_status = $2, last_error = $3,
             state = CASE WHEN $4 THEN 'delivered' WHEN $5 THEN 'failed' ELSE state END,
             delivered_at = CASE WHEN $4 THEN now() ELSE delivered_at END
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(error)
    .bind(delivered)
    .bind(give_up)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn deliveries(conn: &mut PgConnection, webhook_id: i64) -> sqlx::Result<Vec<Delivery>> {
    sqlx::query_as(
        "SELECT id, webhook_id, event, state, attempts, response_status, last_error, created_at, delivered_at
         FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY id DESC LIMIT 500",
    )
    .bind(webhook_id)
    .fetch_all(conn)
    .await
}

/// The live repositories whose `main` holds the blob.
pub async fn repositories_holding(
    conn: &mut PgConnection,
    sha256: &[u8],
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        "SELECT DISTINCT r.id FROM commit_files c
         JOIN refs f ON f.repository_id = c.repository_id AND f.name = 'main' AND f.commit_id = c.commit_id
         JOIN repositories r ON r.id = c.repository_id AND r.deleted_at IS NULL
         WHERE c.sha256 = $1",
    )
    .bind(sha256)
    .fetch_all(conn)
    .await
}

/// The live repositories whose `main` holds the blob, with that commit and the first path.
pub async fn heads_holding(
    conn: &mut PgConnection,
    sha256: &[u8],
) -> sqlx::Result<Vec<(i64, String, String)>> {
    sqlx::query_as(
        "SELECT DISTINCT c.repository_id, c.commit_id, min(c.path) FROM commit_files c
         JOIN refs f ON f.repository_id = c.repository_id AND f.name = 'main' AND f.commit_id = c.commit_id
         JOIN repositories r ON r.id = c.repository_id AND r.deleted_at IS NULL
         WHERE c.sha256 = $1 GROUP BY c.repository_id, c.commit_id",
    )
    .bind(sha256)
    .fetch_all(conn)
    .await
}
