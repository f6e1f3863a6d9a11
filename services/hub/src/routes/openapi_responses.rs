//! Reusable pieces of the OpenAPI document, so that `#[utoipa::path]` attributes stay short:
//! the error responses operations share (each with an [`ErrorBody`](crate::error::ErrorBody)
//! body), and the path parameters most operations take.
//!
//! Use them as `responses((status = 200, ...), super::openapi_responses::ReadErrors)` and
//! `params(super::openapi_responses::RepoPath)`.

use std::collections::BTreeMap;

use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};

/// What each error status means across the API (the `code` in the body says exactly which).
fn describe(status: u16) -> &'static str {
    match status {
        400 => {
            "Invalid path parameter, query string, header or body \
             (`invalid-path`, `invalid-query`, `invalid-body`, ...)"
        }
        401 => {
            "A token is required and missing, or the token is unknown, expired or revoked \
             (`authentication-required`, `invalid-token`, `invalid-authorization`)"
        }
        403 => {
            "The token is read-only, the caller's role is too weak, or a session request lacks \
             its CSRF token (`token-read-only`, `insufficient-role`, `admin-required`, \
             `csrf-token-required`)"
        }
        404 => {
            "No such resource, or one the caller may not see: private resources answer as \
             missing"
        }
        408 => {
            "The request body paused too long or arrived too slowly; the connection is closed \
             (`body-timeout`)"
        }
        409 => "The request conflicts with the current state (already exists, wrong state, ...)",
        413 => "The body is larger than the hub accepts (`request-too-large`, `file-too-large`)",
        415 => {
            "The body's media type is not accepted; send `Content-Type: application/json` \
             (`unsupported-media-type`)"
        }
        422 => {
            "The body is not valid JSON, does not fit the schema, or fails validation \
             (`invalid-json`, ...)"
        }
        503 => {
            "A backing service (database or object store) is unavailable; retry shortly \
             (`service-unavailable`)"
        }
        _ => "Error",
    }
}

/// The documented error response of `status`, with the shared error body.
pub(crate) fn error_response(status: u16) -> (String, RefOr<Response>) {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorBody")))
        .build();
    let response = ResponseBuilder::new()
        .description(describe(status))
        .content("application/json", content)
        .build();
    (status.to_string(), RefOr::T(response))
}

macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident => [$($status:literal),+ $(,)?];)+) => {$(
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                [$($status),+].into_iter().map(error_response).collect()
            }
        }
    )+};
}

error_responses! {
    /// 400: an invalid path parameter, query string, header or body.
    BadRequest => [400];
    /// 401: a token is required, or the one sent is not valid.
    Unauthorized => [401];
    /// 403: a read-only token, a role too weak, or a session without its CSRF token.
    Forbidden => [403];
    /// 404: missing, or not visible to the caller.
    NotFound => [404];
    /// 409: conflicts with the current state.
    Conflict => [409];
    /// 413: the body is too large.
    TooLarge => [413];
    /// 415: the body's media type is not accepted.
    UnsupportedMediaType => [415];
    /// 422: the body does not validate.
    Unprocessable => [422];
    /// 503: the database or object store is unavailable (every operation).
    Unavailable => [503];
    /// The errors of an operation without a caller (no token is read): 400 and 503.
    PublicErrors => [400, 503];
    /// The errors of a read where a token is optional (a bad token is still refused):
    /// 400, 401, 404 and 503.
    ReadErrors => [400, 401, 404, 503];
    /// The errors of an operation that needs a token, a write scope or a role:
    /// 400, 401, 403, 404 and 503.
    AuthErrors => [400, 401, 403, 404, 503];
    /// The errors of a JSON request body: 400, 413, 415 and 422.
    JsonErrors => [400, 413, 415, 422];
    /// A JSON body to an operation that needs a token, a write scope or a role:
    /// `JsonErrors` and `AuthErrors`.
    JsonAuthErrors => [400, 401, 403, 404, 413, 415, 422, 503];
    /// The same, where the change can conflict with the current state (409).
    JsonWriteErrors => [400, 401, 403, 404, 409, 413, 415, 422, 503];
    /// `AuthErrors` where the change can conflict with the current state (409).
    AuthConflictErrors => [400, 401, 403, 404, 409, 503];
}

/// The path parameters of a repository.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RepoPath {
    /// The namespace (user or organisation) that owns the repository.
    pub namespace: String,
    /// The repository's name within its namespace.
    pub name: String,
}

/// The path parameter of a namespace (user or organisation).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct NamespacePath {
    /// The namespace: a user or an organisation.
    pub namespace: String,
}

/// The path parameter of a security report.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ReportPath {
    /// The report's numeric id.
    pub id: i64,
}

/// The path parameter of an advisory.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AdvisoryPath {
    /// The advisory's id, `KYSA-<year>-<nnnn>`.
    pub id: String,
}
