//! The model page's forms without JavaScript: each posts here as an ordinary form (with the
//! session's CSRF token), runs the same operation as the API route its script would call, and
//! redirects to where the result shows. With JavaScript the page calls the API instead.

use actix_web::web;
use serde::Deserialize;

use super::render::WebResult;
use super::session::{check_csrf, redirect};
use crate::auth::Caller;
use crate::domain;
use crate::routes::licenses::AcceptanceRequest;
use crate::routes::reviews::NewReport;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct ReportForm {
    csrf: String,
    category: String,
    description: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    revision: Option<String>,
}

/// Files a report, then shows it.
pub async fn report(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    form: web::Form<ReportForm>,
) -> WebResult {
    check_csrf(&caller, &form.csrf)?;
    let (namespace, name) = path.into_inner();
    let form = form.into_inner();
    let body = NewReport {
        category: form.category,
        description: form.description,
        evidence: String::new(),
        revision: form.revision.filter(|r| !r.is_empty()),
        path: form.path.filter(|p| !p.is_empty()),
    };
    let report =
        crate::routes::reviews::new_report(&state, &caller, &namespace, &name, &body).await?;
    Ok(redirect(&format!("/reports/{}", report.id)))
}

#[derive(Deserialize)]
pub struct AcceptForm {
    csrf: String,
    license: String,
    version: String,
}

/// Accepts a licence, then returns to the model.
pub async fn accept(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    form: web::Form<AcceptForm>,
) -> WebResult {
    check_csrf(&caller, &form.csrf)?;
    let (namespace, name) = path.into_inner();
    let form = form.into_inner();
    let body = AcceptanceRequest {
        license: form.license,
        version: form.version,
    };
    crate::routes::licenses::accept(&state, &caller, &namespace, &name, &body).await?;
    Ok(redirect(&format!("/{namespace}/{name}")))
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

/// Asks for access to a gated model, then returns to it.
pub async fn access_request(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfOnly>,
) -> WebResult {
    check_csrf(&caller, &form.csrf)?;
    let (namespace, name) = path.into_inner();
    crate::routes::access::ask_access(&state, &caller, &namespace, &name).await?;
    Ok(redirect(&format!("/{namespace}/{name}")))
}

#[derive(Deserialize)]
pub struct VerifyForm {
    csrf: String,
    #[serde(default)]
    ep: Option<String>,
    revision: String,
}

/// Queues another verification run, then shows the panel.
pub async fn verify(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    form: web::Form<VerifyForm>,
) -> WebResult {
    check_csrf(&caller, &form.csrf)?;
    let (namespace, name) = path.into_inner();
    let ep = form.ep.as_deref().unwrap_or("any");
    crate::routes::verification::queue_rerun(
        &state,
        &caller,
        &namespace,
        &name,
        &form.revision,
        ep,
    )
    .await?;
    let rev: String = url::form_urlencoded::byte_serialize(form.revision.as_bytes()).collect();
    Ok(redirect(&format!(
        "/{namespace}/{name}?rev={rev}#verification"
    )))
}

#[derive(Deserialize)]
pub struct CommentForm {
    csrf: String,
    body: String,
}

/// Adds to a report's discussion, then shows it.
pub async fn comment(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<i64>,
    form: web::Form<CommentForm>,
) -> WebResult {
    check_csrf(&caller, &form.csrf)?;
    let id = path.into_inner();
    domain::reviews::comment(&state.db, &caller, id, &form.body).await?;
    Ok(redirect(&format!("/reports/{id}")))
}

#[derive(Deserialize)]
pub struct TriageForm {
    csrf: String,
    action: String,
    #[serde(default)]
    reason: Option<String>,
}

/// Triages a report (reviewers), then shows it.
pub async fn triage(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<i64>,
    form: web::Form<TriageForm>,
) -> WebResult {
    check_csrf(&caller, &form.csrf)?;
    let id = path.into_inner();
    let reason = form.reason.as_deref();
    domain::reviews::triage(&state.db, &caller, id, &form.action, reason).await?;
    Ok(redirect(&format!("/reports/{id}")))
}

#[derive(Deserialize)]
pub struct AdvisoryForm {
    csrf: String,
    severity: String,
    summary: String,
    details: String,
    remediation: String,
}

/// Drafts an advisory from a confirmed report (reviewers), then shows the report.
pub async fn draft_advisory(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<i64>,
    form: web::Form<AdvisoryForm>,
) -> WebResult {
    check_csrf(&caller, &form.csrf)?;
    let id = path.into_inner();
    let text = domain::reviews::AdvisoryText {
        severity: &form.severity,
        summary: &form.summary,
        details: &form.details,
        remediation: &form.remediation,
    };
    domain::reviews::draft_advisory(&state.db, &caller, id, text).await?;
    Ok(redirect(&format!("/reports/{id}")))
}

#[derive(Deserialize)]
pub struct PublishForm {
    csrf: String,
    /// The report page to return to.
    report: i64,
}

/// Publishes an advisory (reviewers), then returns to its report.
pub async fn publish_advisory(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    form: web::Form<PublishForm>,
) -> WebResult {
    check_csrf(&caller, &form.csrf)?;
    domain::reviews::publish_advisory(&state.db, &caller, &path.into_inner()).await?;
    Ok(redirect(&format!("/reports/{}", form.report)))
}
