//! Accounts: users and organisations, created the same way by the API and the CLI.

use serde::Serialize;
use sqlx::PgPool;

use super::actor::{Actor, Scope, new_token};
use super::event::{self, Event, Target};
use crate::db;
use crate::db::accounts::Role;
use crate::db::types::NamespaceKind;
use crate::names::NamespaceName;

/// Why an account operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    InvalidName(String),
    #[error("the name `{0}` is already taken by a user or organisation")]
    NameTaken(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedUser {
    pub name: String,
    pub is_admin: bool,
    /// A write token for the new user, shown only in this response.
    pub token: String,
}

/// Creates a user and a first write token in one transaction (audited as `actor`'s act).
pub async fn create_user(
    db: &PgPool,
    actor: &Actor,
    name: &str,
    is_admin: bool,
) -> Result<CreatedUser, AccountError> {
    let name = NamespaceName::parse(name).map_err(|e| AccountError::InvalidName(e.to_string()))?;
    let mut tx = db.begin().await?;
    let id = create_namespace(&mut tx, &name, NamespaceKind::User, is_admin).await?;
    let (secret, hash) = new_token();
    db::accounts::insert_token(&mut tx, id, "initial", &hash, Scope::Write, None).await?;
    let details = serde_json::json!({"admin": is_admin});
    event::record(
        &mut tx,
        actor,
        Event::new("user.create", Target::User(name.as_str()), details),
    )
    .await?;
    tx.commit().await?;
    Ok(CreatedUser {
        name: name.to_string(),
        is_admin,
        token: secret,
    })
}

/// Creates an organisation owned by the signed-in `actor`; returns its name.
pub async fn create_org(
    db: &PgPool,
    actor: &Actor,
    owner_id: i64,
    name: &str,
) -> Result<NamespaceName, AccountError> {
    let name = NamespaceName::parse(name).map_err(|e| AccountError::InvalidName(e.to_string()))?;
    let mut tx = db.begin().await?;
    let org_id = create_namespace(&mut tx, &name, NamespaceKind::Org, false).await?;
    db::accounts::set_membership(&mut tx, org_id, owner_id, Role::Owner).await?;
    let change = Event::new(
        "org.create",
        Target::Org(name.as_str()),
        serde_json::json!({}),
    );
    event::record(&mut tx, actor, change).await?;
    tx.commit().await?;
    Ok(name)
}

async fn create_namespace(
    conn: &mut sqlx::PgConnection,
    name: &NamespaceName,
    kind: NamespaceKind,
    is_admin: bool,
) -> Result<i64, AccountError> {
    db::accounts::create_namespace(conn, name.as_str(), kind, is_admin)
        .await
        .map_err(|e| {
            if db::is_unique_violation(&e, "namespaces_name_key") {
                AccountError::NameTaken(name.to_string())
            } else {
                e.into()
            }
        })
}
