//! The audit log: who changed what, when, from which request.

use sqlx::PgConnection;

/// One audited change (`domain::event::record` builds it from a typed target).
pub struct NewEvent<'a> {
    pub actor_id: Option<i64>,
    pub action: &'a str,
    /// `repo:ns/name`, `namespace:ns`, `org:ns`, `user:name`, `blob:sha256`, `hub`.
    pub target: &'a str,
    /// The namespace whose admins read the event.
    pub namespace: Option<&'a str>,
    pub details: serde_json::Value,
    pub request_id: Option<&'a str>,
}

pub async fn record(conn: &mut PgConnection, e: &NewEvent<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_events (actor_id, action, target, details, request_id, namespace)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(e.actor_id)
    .bind(e.action)
    .bind(e.target)
    .bind(&e.details)
    .bind(e.request_id)
    .bind(e.namespace)
    .execute(conn)
    .await?;
    Ok(())
}

/// One state-changing HTTP request, recorded after its response.
pub struct RequestRecord<'a> {
    pub actor_id: Option<i64>,
    pub token_id: Option<i64>,
    /// `METHOD route-pattern`.
    pub action: &'a str,
    /// The request path.
    pub target: &'a str,
    pub result: u16,
    pub client_addr: Option<&'a str>,
    pub request_id: &'a str,
    pub namespace: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

pub async fn record_request(conn: &mut PgConnection, r: &RequestRecord<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_events (actor_id, token_id, action, target, result, client_addr, request_id, namespace, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(r.actor_id)
    .bind(r.token_id)
    .bind(r.action)
    .bind(r.target)
    .bind(r.result as i32)
    .bind(r.client_addr)
    .bind(r.request_id)
    .bind(r.namespace)
    .bind(serde_json::json!({"user_agent": r.user_agent}))
    .execute(conn)
    .await?;
    Ok(())
}

/// Filters for a namespace's audit events.
#[derive(Debug, Default)]
pub struct AuditQuery<'a> {
    pub namespace: &'a str,
    /// Exact action, or a prefix ending in `*`.
    pub action: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Only events with a smaller id (the cursor of the previous page).
    pub before: Option<i64>,
    pub limit: i64,
}

#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct NamespaceEvent {
    pub id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor: Option<String>,
    pub token_id: Option<i64>,
    pub action: String,
    pub target: String,
    pub result: Option<i32>,
    pub client_addr: Option<String>,
    pub details: serde_json::Value,
    pub request_id: Option<String>,
}

/// Newest first.
pub async fn query(
    conn: &mut PgConnection,
    q: &AuditQuery<'_>,
) -> sqlx::Result<Vec<NamespaceEvent>> {
    let action_prefix = q.action.and_then(|a| a.strip_suffix('*'));
    sqlx::query_as(
        "SELECT a.id, a.at, n.name AS actor, a.token_id, a.action, a.target, a.result, a.client_addr, a.details, a.request_id
         FROM audit_events a LEFT JOIN namespaces n ON n.id = a.actor_id
         WHERE lower(a.namespace) = lower($1)
           AND ($2::TEXT IS NULL OR a.action = $2)
           AND ($3::TEXT IS NULL OR starts_with(a.action, $3))
           AND ($4::TEXT IS NULL OR lower(n.name) = lower($4))
           AND ($5::TIMESTAMPTZ IS NULL OR a.at >= $5)
           AND ($6::TIMESTAMPTZ IS NULL OR a.at < $6)
           AND ($7::BIGINT IS NULL OR a.id < $7)
         ORDER BY a.id DESC LIMIT $8",
    )
    .bind(q.namespace)
    .bind(if action_prefix.is_some() { None } else { q.action })
    .bind(action_prefix)
    .bind(q.actor)
    .bind(q.since)
    .bind(q.until)
    .bind(q.before)
    .bind(q.limit)
    .fetch_all(conn)
    .await
}

#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct AuditEvent {
    pub id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor: Option<String>,
    pub action: String,
    pub target: String,
    pub details: serde_json::Value,
    pub request_id: Option<String>,
}

pub async fn list_for_target(
    conn: &mut PgConnection,
    target: &str,
) -> sqlx::Result<Vec<AuditEvent>> {
    sqlx::query_as(
        "SELECT a.id, a.at, n.name AS actor, a.action, a.target, a.details, a.request_id
         FROM audit_events a LEFT JOIN namespaces n ON n.id = a.actor_id
         WHERE a.target = $1 ORDER BY a.id",
    )
    .bind(target)
    .fetch_all(conn)
    .await
}

/// Who pushed a commit: the commit's author, and the token, client and request of the
/// request that created it (from its `commit.create` event and that request's record).
#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct PushRecord {
    pub author: String,
    pub pushed_at: chrono::DateTime<chrono::Utc>,
    pub parent: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
    pub token_id: Option<i64>,
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
}

pub async fn push_record(
    conn: &mut PgConnection,
    repository_id: i64,
    target: &str,
    commit_id: &str,
) -> sqlx::Result<Option<PushRecord>> {
    sqlx::query_as(
        "SELECT c.author_name AS author, c.created_at AS pushed_at, c.parent_id AS parent, c.message,
                e.request_id, r.token_id, r.client_addr, r.details->>'user_agent' AS user_agent
         FROM commits c
         LEFT JOIN audit_events e ON e.target = $2 AND e.action = 'commit.create' AND e.details->>'commit' = c.id
         LEFT JOIN audit_events r ON r.request_id = e.request_id AND r.result IS NOT NULL
         WHERE c.repository_id = $1 AND c.id = $3
         LIMIT 1",
    )
    .bind(repository_id)
    .bind(target)
    .bind(commit_id)
    .fetch_optional(conn)
    .await
}
