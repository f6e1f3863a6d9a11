//! Provenance over HTTP: the keys and certificate anchors a namespace trusts, each
//! revision's signature status, the hub's attestation of a revision, and the hub's
//! attestation keys at a well-known URL.

use crate::domain::{
    self,
    event::{Event, Target},
};
use crate::error_code as code;
use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use kaiyuan_provenance::keys::PublicKey;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::db;
use crate::db::accounts::Role;
use crate::db::types::KeyKind;
use crate::error::{ApiError, ApiResult};
use crate::signatures;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(add_key)
        .service(list_keys)
        .service(revoke_key)
        .service(signature)
        .service(attestation)
        .service(provenance_record)
        .service(attestation_keys)
        .service(rotate_attestation_key)
        .service(attestation_key_pem);
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// A label shown as the signer's identity.
    pub name: String,
    /// A PEM public key (ECDSA P-256, P-384 or P-521) ...
    #[serde(default)]
    pub public_key: Option<String>,
    /// ... or a PEM CA certificate trusted for certificate-signed bundles.
    #[serde(default)]
    pub certificate: Option<String>,
}

/// Registers a signing key or a certificate anchor for a namespace (admins; audited). The
/// namespace's repositories are re-verified in the background.
#[utoipa::path(post, path = "/api/v1/orgs/{namespace}/signing-keys",
    params(super::openapi_responses::NamespacePath), request_body = NewKey, security(("bearer" = [])),
    responses((status = 201, description = "the registered key or anchor"), super::openapi_responses::JsonWriteErrors))]
#[post("/api/v1/orgs/{namespace}/signing-keys")]
pub async fn add_key(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<NewKey>,
) -> ApiResult<HttpResponse> {
    let user = caller.require_writer()?.clone();
    let mut tx = state.db.begin().await?;
    let ns = super::load_namespace(&mut tx, &caller, &path.into_inner(), Role::Admin).await?;
    let body = body.into_inner();
    if body.name.trim().is_empty() || body.name.len() > 100 {
        return Err(ApiError::unprocessable(
            code::INVALID_NAME,
            "a key needs a name of 1 to 100 characters",
        ));
    }
    let (kind, pem, fingerprint) = match (&body.public_key, &body.certificate) {
        (Some(pem), None) => {
            let key = PublicKey::from_pem(pem)
                .map_err(|e| ApiError::unprocessable(code::INVALID_KEY, e.0))?;
            (KeyKind::Key, key.to_pem(), key.fingerprint())
        }
        (None, Some(pem)) => {
            let certs = kaiyuan_provenance::cert::certificates_from_pem(pem)
                .map_err(|e| ApiError::unprocessable(code::INVALID_CERTIFICATE, e))?;
            use sha2::Digest;
            (
                KeyKind::Anchor,
                pem.clone(),
                format!("sha256:{}", hex::encode(sha2::Sha256::digest(&certs[0]))),
            )
        }
        _ => {
            return Err(ApiError::unprocessable(
                code::INVALID_KEY,
                "give exactly one of `public_key` and `certificate` (PEM)",
            ));
        }
    };
    let Some(row) = db::provenance::add_key(
        &mut tx,
        ns.id,
        body.name.trim(),
        kind,
        &pem,
        &fingerprint,
        user.id,
    )
    .await?
    else {
        return Err(ApiError::conflict(
            code::KEY_EXISTS,
            format!("`{}` already has the key {fingerprint}", ns.name),
        ));
    };
    db::provenance::enqueue_heads(&mut tx, ns.id).await?;
    domain::event::record(
        &mut tx,
        &caller,
        Event::new(
            "signing-key.add",
            Target::Namespace(&ns.name),
            json!({"id": row.id, "kind": kind, "fingerprint": fingerprint}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(super::created(&row))
}

/// The keys and anchors a namespace trusts (members), revoked ones included.
#[utoipa::path(get, path = "/api/v1/orgs/{namespace}/signing-keys",
    params(super::openapi_responses::NamespacePath), security(("bearer" = [])),
    responses((status = 200, description = "the keys and anchors"), super::openapi_responses::AuthErrors))]
#[get("/api/v1/orgs/{namespace}/signing-keys")]
pub async fn list_keys(
    state: web::Data<AppState>,
    super::NamespaceMember(ns): super::NamespaceMember,
) -> ApiResult<HttpResponse> {
    let mut conn = state.db.acquire().await?;
    Ok(HttpResponse::Ok().json(
        json!({"namespace": ns.name, "keys": db::provenance::keys(&mut conn, ns.id, true).await?}),
    ))
}

/// Revokes a key or anchor (admins; audited): signatures made with it no longer verify.
#[utoipa::path(delete, path = "/api/v1/orgs/{namespace}/signing-keys/{id}",
    params(super::openapi_responses::NamespacePath, ("id" = i64, Path, description = "The key's id")),
    security(("bearer" = [])),
    responses((status = 204, description = "revoked"), super::openapi_responses::AuthErrors))]
#[delete("/api/v1/orgs/{namespace}/signing-keys/{id}")]
pub async fn revoke_key(
    state: web::Data<AppState>,
    caller: Caller,
    super::NamespaceAdmin(ns): super::NamespaceAdmin,
    path: web::Path<(String, i64)>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner().1;
    let mut tx = state.db.begin().await?;
    if !db::provenance::revoke_key(&mut tx, ns.id, id).await? {
        return Err(ApiError::not_found(
            code::KEY_NOT_FOUND,
            format!("`{}` has no active key {id}", ns.name),
        ));
    }
    db::provenance::enqueue_heads(&mut tx, ns.id).await?;
    domain::event::record(
        &mut tx,
        &caller,
        Event::new(
            "signing-key.revoke",
            Target::Namespace(&ns.name),
            json!({"id": id}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevisionQuery {
    revision: Option<String>,
}

impl RevisionQuery {
    pub fn revision(&self) -> Option<&str> {
        self.revision.as_deref()
    }
}

/// The revision's publisher signature: `verified` (with the signer), `invalid` (with the
/// reason and the files that differ), `unsigned` or `unverifiable-offline`.
#[utoipa::path(get, path = "/api/v1/repos/{namespace}/{name}/signature",
    params(super::openapi_responses::RepoPath, RevisionQuery), security((), ("bearer" = [])),
    responses((status = 200, description = "the signature status"), super::openapi_responses::ReadErrors))]
#[get("/api/v1/repos/{namespace}/{name}/signature")]
pub async fn signature(state: web::Data<AppState>, at: super::RepoAt) -> ApiResult<HttpResponse> {
    let super::RepoAt { repo, commit } = at;
    let mut conn = state.db.acquire().await?;
    let result =
        signatures::verify_commit(&mut conn, &state.store, &state.settings, &repo, &commit).await?;
    let mut body =
        serde_json::to_value(&result).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    body["repository"] = json!(repo.full_name());
    body["revision"] = json!(commit);
    body["signature_file"] = json!(state.settings.provenance.signature_file);
    Ok(HttpResponse::Ok().json(body))
}

/// The hub's attestation of a revision: a model-signing bundle over its files (git metadata
/// aside) signed with the hub's key, with scan, licence and signature results inside the
/// signed predicate. `model_signing verify key DIR --signature FILE --public_key KEY.pem`
/// checks it against a download.
#[utoipa::path(get, path = "/api/v1/repos/{namespace}/{name}/attestation",
    params(super::openapi_responses::RepoPath, RevisionQuery), security((), ("bearer" = [])),
    responses((status = 200, description = "the hub's signed attestation bundle"), super::openapi_responses::ReadErrors))]
#[get("/api/v1/repos/{namespace}/{name}/attestation")]
pub async fn attestation(state: web::Data<AppState>, at: super::RepoAt) -> ApiResult<HttpResponse> {
    let super::RepoAt { repo, commit } = at;
    let mut conn = state.db.acquire().await?;
    let publisher =
        signatures::verify_commit(&mut conn, &state.store, &state.settings, &repo, &commit).await?;
    let license = db::licenses::evaluation(&mut conn, repo.id, &commit).await?;
    let mut scans = std::collections::BTreeMap::<String, usize>::new();
    for f in db::scans::files_of_commit(&mut conn, repo.id, &commit).await? {
        let status = crate::domain::scan::file_status(f.verdict);
        *scans.entry(status.to_string()).or_default() += 1;
    }
    let kaiyuan = json!({
        "repository": repo.full_name(),
        "commit": commit,
        "scan_verdicts": scans,
        "license": license.map(|l| json!({"decision": l.decision, "effective": l.effective, "catalog_version": l.catalog_version})),
        "publisher_signature": {"status": publisher.status.as_str(), "signer": publisher.signer},
    });
    let bytes = signatures::attestation(&mut conn, &repo, &commit, kaiyuan).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(bytes))
}

/// Every attestation key the hub has used (current and retired), for verifiers.
#[get("/.well-known/kaiyuan/attestation-keys")]
pub async fn attestation_keys(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut conn = state.db.acquire().await?;
    if db::provenance::attestation_keys(&mut conn)
        .await?
        .is_empty()
    {
        signatures::attestation_key(&mut conn).await?;
    }
    Ok(
        HttpResponse::Ok()
            .json(json!({"keys": db::provenance::attestation_keys(&mut conn).await?})),
    )
}

/// The current attestation key as PEM (what `model_signing verify key --public_key` takes).
#[get("/.well-known/kaiyuan/attestation-key.pem")]
pub async fn attestation_key_pem(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut conn = state.db.acquire().await?;
    let (key, _) = signatures::attestation_key(&mut conn).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/x-pem-file")
        .body(key.public_key().to_pem()))
}

/// The provenance record of a revision: who pushed it (user, token, client), when, from which
/// declared source, its base models, teachers and datasets (the licence engine's lineage),
/// its signature status, and an in-toto statement with an SLSA v1 provenance predicate whose
/// subject is the model-signing root digest of its files.
#[utoipa::path(get, path = "/api/v1/repos/{namespace}/{name}/provenance",
    params(super::openapi_responses::RepoPath, RevisionQuery), security((), ("bearer" = [])),
    responses((status = 200, description = "the provenance record"), super::openapi_responses::ReadErrors))]
#[get("/api/v1/repos/{namespace}/{name}/provenance")]
pub async fn provenance_record(
    state: web::Data<AppState>,
    at: super::RepoAt,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    use kaiyuan_provenance::manifest::{self, GIT_PATHS, Resource};
    let super::RepoAt { repo, commit } = at;
    let mut conn = state.db.acquire().await?;
    let push = db::audit::push_record(
        &mut conn,
        repo.id,
        &format!("repo:{}", repo.full_name()),
        &commit,
    )
    .await?
    .ok_or_else(|| ApiError::internal(anyhow::anyhow!("commit vanished")))?;
    let facts = crate::licensing::facts_at(&mut conn, &state.store, &repo, &commit).await?;
    let license = crate::licensing::evaluate_commit(
        &mut conn,
        &state.store,
        &repo,
        &commit,
        None,
        &kaiyuan_license::UseContext::default(),
    )
    .await?;
    let publisher =
        signatures::verify_commit(&mut conn, &state.store, &state.settings, &repo, &commit).await?;
    let git: Vec<String> = GIT_PATHS.iter().map(|s| s.to_string()).collect();
    let mut resources: Vec<Resource> = Vec::new();
    for f in db::commits::files(&mut conn, repo.id, &commit).await? {
        if !manifest::is_ignored(&f.path, &git)
            && let Ok(digest) = <[u8; 32]>::try_from(&f.sha256[..])
        {
            resources.push(Resource {
                name: f.path,
                digest,
            });
        }
    }
    manifest::sort(&mut resources);
    let root = hex::encode(manifest::root_digest(&resources));
    let base = super::hf::endpoint(&req);
    let source = facts
        .card
        .source_repository
        .as_ref()
        .map(|r| json!({"repository": r, "commit": facts.card.source_commit}));
    let dependencies: Vec<serde_json::Value> = license
        .lineage
        .iter()
        .map(|n| {
            let uri = if n.source == "hub" { format!("{base}/{}", n.id) } else { format!("https://huggingface.co/{}", n.id) };
            json!({"name": n.id, "uri": uri, "annotations": {"kind": n.kind, "relation": n.relation, "license": n.license, "license_source": n.source}})
        })
        .collect();
    let mut external =
        json!({"repository": repo.full_name(), "revision": commit, "message": push.message});
    if let Some(s) = &source {
        external["source"] = s.clone();
    }
    let slsa = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": repo.full_name(), "digest": {"sha256": root}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://kaiyuan.dev/publish/v1",
                "externalParameters": external,
                "internalParameters": {"pushed_by": push.author, "token_id": push.token_id, "client": push.user_agent, "client_addr": push.client_addr},
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": format!("{base}/")},
                "metadata": {"invocationId": push.request_id.clone().unwrap_or_else(|| commit.clone()), "startedOn": push.pushed_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)},
            },
        },
    });
    let lineage = |kind: &str| {
        license
            .lineage
            .iter()
            .filter(|n| n.kind == kind)
            .collect::<Vec<_>>()
    };
    Ok(HttpResponse::Ok().json(json!({
        "repository": repo.full_name(),
        "commit": commit,
        "parent": push.parent,
        "pushed_by": {"user": push.author, "token_id": push.token_id, "client": push.user_agent, "client_addr": push.client_addr, "request_id": push.request_id},
        "pushed_at": push.pushed_at,
        "source": source,
        "base_models": lineage("base"),
        "teachers": lineage("teacher"),
        "datasets": lineage("dataset"),
        "manifest_digest": format!("sha256:{root}"),
        "signature": {"status": publisher.status.as_str(), "signer": publisher.signer},
        "slsa": slsa,
    })))
}

/// Starts signing attestations with a new key (hub admins; audited). Older keys stay listed,
/// retired, so earlier attestations remain verifiable.
#[utoipa::path(post, path = "/api/v1/admin/attestation-keys/rotate", security(("bearer" = [])),
    responses((status = 200, description = "the new key's fingerprint"), super::openapi_responses::Unauthorized,
              super::openapi_responses::Forbidden, super::openapi_responses::Unavailable))]
#[post("/api/v1/admin/attestation-keys/rotate")]
pub async fn rotate_attestation_key(
    state: web::Data<AppState>,
    caller: Caller,
) -> ApiResult<HttpResponse> {
    caller.require_admin()?;
    let mut tx = state.db.begin().await?;
    let (_, fingerprint) = signatures::rotate_attestation_key(&mut tx).await?;
    domain::event::record(
        &mut tx,
        &caller,
        Event::new(
            "attestation-key.rotate",
            Target::Hub,
            json!({"fingerprint": fingerprint}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(json!({"fingerprint": fingerprint})))
}
