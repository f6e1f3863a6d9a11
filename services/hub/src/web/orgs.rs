//! Organisations in the browser: creating one, and its admins managing members (the same
//! operations as the API's `/api/v1/orgs` routes), with the policy editor one link away.

use actix_web::web;
use serde::Deserialize;
use serde_json::json;

use super::render::{WebError, WebResult, render};
use super::session::{check_csrf, redirect};
use crate::auth::Caller;
use crate::db::accounts::Role;
use crate::error::ApiError;
use crate::error_code as code;
use crate::state::AppState;

pub async fn new_org_form(caller: Caller) -> WebResult {
    if caller.user.is_none() {
        return Ok(redirect("/sign-in"));
    }
    render(
        &caller,
        "new_org.html",
        "New organisation",
        json!({"error": null}),
    )
}

#[derive(Deserialize)]
pub struct NewOrg {
    csrf: String,
    name: String,
}

/// Creates the organisation (its creator is its owner), then opens its page.
pub async fn create_org(
    state: web::Data<AppState>,
    caller: Caller,
    form: web::Form<NewOrg>,
) -> WebResult {
    check_csrf(&caller, &form.csrf)?;
    let user = caller.require_writer()?.clone();
    match crate::domain::accounts::create_org(&state.db, &caller, user.id, form.name.trim()).await {
        Ok(name) => Ok(redirect(&format!("/{name}"))),
        Err(e) => {
            let e = ApiError::from(e);
            if !e.status.is_client_error() {
                return Err(WebError(e));
            }
            // A taken or invalid name is said beside the form.
            let mut page = render(
                &caller,
                "new_org.html",
                "New organisation",
                json!({"error": e.message, "name": form.name}),
            )?;
            *page.status_mut() = e.status;
            Ok(page)
        }
    }
}

#[derive(Deserialize)]
pub struct MemberForm {
    csrf: String,
    user: String,
    role: String,
}

/// Adds a member or changes their role, then returns to the organisation.
pub async fn set_member(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    form: web::Form<MemberForm>,
) -> WebResult {
    check_csrf(&caller, &form.csrf)?;
    let org = path.into_inner();
    let role = Role::parse(&form.role).ok_or_else(|| {
        ApiError::unprocessable(
            code::INVALID_ROLE,
            format!("role `{}`: expected owner, admin, write or read", form.role),
        )
    })?;
    crate::routes::accounts::set_role(&state, &caller, &org, form.user.trim(), role).await?;
    Ok(redirect(&format!("/{org}")))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// Removes a member (or lets one leave), then returns to the organisation.
pub async fn remove_member(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> WebResult {
    check_csrf(&caller, &form.csrf)?;
    let (org, member) = path.into_inner();
    crate::routes::accounts::remove(&state, &caller, &org, &member).await?;
    Ok(redirect(&format!("/{org}")))
}
