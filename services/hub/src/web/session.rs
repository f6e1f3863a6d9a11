//! Browser sessions: signing in with an API token sets an HttpOnly, SameSite=Lax, Secure cookie
//! whose sha256 is stored; forms carry the session's CSRF token (checked in constant time).

use actix_web::HttpRequest;
use actix_web::http::header;
use chrono::{Duration, Utc};
use rand::Rng;

use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::error_code as code;

/// How long a session lasts (never longer than its token).
pub const SESSION_DAYS: i64 = 14;
/// The pre-session CSRF cookie of the sign-in form (double submit).
pub const SIGN_IN_CSRF_COOKIE: &str = "kaiyuan_sign_in";

pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

/// `Set-Cookie` for a cookie the page scripts never read.
pub fn cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}")
}

/// Whether cookies get `Secure`: over HTTPS, and on loopback (browsers accept it there), which
/// leaves only plain-HTTP deployments on other hosts without it.
pub fn secure_cookies(req: &HttpRequest) -> bool {
    let info = req.connection_info();
    let host = info
        .host()
        .rsplit_once(':')
        .map_or(info.host(), |(h, _)| h)
        .to_string();
    info.scheme() == "https" || matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]")
}

/// Opens a session for the token `secret`; returns the cookie header value.
pub async fn open(
    conn: &mut sqlx::PgConnection,
    req: &HttpRequest,
    secret: &str,
) -> Result<(String, String), ApiError> {
    let owner = crate::db::accounts::token_owner(conn, &auth::hash_token(secret.trim()))
        .await?
        .filter(|o| o.revoked_at.is_none() && o.expires_at.is_none_or(|at| at > Utc::now()))
        .ok_or_else(|| {
            ApiError::unauthorized(
                code::INVALID_TOKEN,
                "that token is unknown, expired or revoked",
            )
        })?;
    let session = random_secret();
    let csrf = random_secret();
    let mut expires = Utc::now() + Duration::days(SESSION_DAYS);
    if let Some(at) = owner.expires_at {
        expires = expires.min(at);
    }
    crate::db::sessions::create(
        conn,
        &auth::hash_token(&session),
        owner.token_id,
        &csrf,
        expires,
    )
    .await?;
    let max_age = (expires - Utc::now()).num_seconds().max(0);
    Ok((
        cookie(auth::SESSION_COOKIE, &session, max_age, secure_cookies(req)),
        owner.user_name,
    ))
}

/// Ends the request's session, if any; returns the clearing cookie header value.
pub async fn close(conn: &mut sqlx::PgConnection, req: &HttpRequest) -> Result<String, ApiError> {
    if let Some(session) = auth::cookie_value(req, auth::SESSION_COOKIE) {
        crate::db::sessions::delete(conn, &auth::hash_token(&session)).await?;
    }
    Ok(cookie(auth::SESSION_COOKIE, "", 0, secure_cookies(req)))
}

/// Checks a form's CSRF field against the caller's session.
pub fn check_csrf(caller: &Caller, submitted: &str) -> Result<(), ApiError> {
    match &caller.session_csrf {
        Some(expected) if auth::csrf_matches(expected, submitted) => Ok(()),
        _ => Err(ApiError::forbidden(
            code::CSRF_TOKEN_INVALID,
            "this form has expired or did not come from this site: reload the page and try again",
        )),
    }
}

pub fn redirect(location: &str) -> actix_web::HttpResponse {
    actix_web::HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_string()))
        .finish()
}
