//! Templates (minijinja, embedded in the binary from `web/templates`) and the HTML responses
//! built from them, with the security headers every page carries.

use std::sync::OnceLock;

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpResponse, ResponseError};
use minijinja::Environment;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::ApiError;

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("../../../../web/templates/", $name)))),*]
    };
}

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in templates![
            "base.html",
            "home.html",
            "model.html",
            "namespace.html",
            "sign_in.html",
            "new_repo.html",
            "upload.html",
            "tokens.html",
            "commits.html",
            "commit.html",
            "reviews.html",
            "policy.html",
            "report.html",
            "error.html",
            "blob.html",
            "new_org.html",
        ] {
            env.add_template(name, source).expect("templates parse");
        }
        env.add_filter("filesize", filesize);
        env.add_filter("when", when);
        env.add_filter("path_url", path_url);
        env
    })
}

/// A repository path with each segment percent-encoded, for links (`a b%.txt` in `dir/`).
fn path_url(path: String) -> String {
    let mut url = url::Url::parse("http://hub/").expect("a valid base");
    url.path_segments_mut()
        .expect("a base with a path")
        .extend(path.split('/'));
    url.path().trim_start_matches('/').to_string()
}

/// An RFC 3339 timestamp as `2026-11-30 17:17 UTC`; anything else unchanged.
fn when(value: String) -> String {
    chrono::DateTime::parse_from_rfc3339(&value)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M UTC")
                .to_string()
        })
        .unwrap_or(value)
}

fn filesize(bytes: i64) -> String {
    let b = bytes as f64;
    match bytes {
        n if n < 1024 => format!("{n} B"),
        n if n < 1 << 20 => format!("{:.1} KiB", b / 1024.0),
        n if n < 1 << 30 => format!("{:.1} MiB", b / 1048576.0),
        _ => format!("{:.2} GiB", b / 1073741824.0),
    }
}

/// Strict enough that even a sanitiser bug could not run script or load remote content.
const CSP: &str = "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; \
                   object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

pub fn page_response(status: StatusCode, html: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("content-security-policy", CSP))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("referrer-policy", "same-origin"))
        .insert_header(("x-frame-options", "DENY"))
        .insert_header(("cache-control", "no-store"))
        .finish()
        .set_body(actix_web::body::BoxBody::new(html))
}

/// Renders `template` with `context` plus what every page needs (the viewer, the CSRF token).
pub fn render(
    caller: &Caller,
    template: &str,
    title: &str,
    mut context: Value,
) -> Result<HttpResponse, WebError> {
    let obj = context.as_object_mut().expect("page contexts are objects");
    obj.insert("title".into(), json!(title));
    obj.insert(
        "viewer".into(),
        caller.user.as_ref().map_or(
            Value::Null,
            |u| json!({"name": u.name, "is_admin": u.is_admin}),
        ),
    );
    obj.insert("csrf".into(), json!(caller.session_csrf));
    let html = environment()
        .get_template(template)
        .and_then(|t| t.render(minijinja::value::Serde(&context)))
        .map_err(|e| {
            WebError(ApiError::internal(anyhow::anyhow!(
                "template {template}: {e:#}"
            )))
        })?;
    Ok(page_response(StatusCode::OK, html))
}

/// An [`ApiError`] shown as a page.
#[derive(Debug)]
pub struct WebError(pub ApiError);

/// Every error a route can answer, as a page.
impl<E: Into<ApiError>> From<E> for WebError {
    fn from(e: E) -> Self {
        WebError(e.into())
    }
}

impl std::fmt::Display for WebError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.message)
    }
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        self.0.status
    }

    fn error_response(&self) -> HttpResponse {
        let error = PageError {
            status: self.0.status,
            code: self.0.code,
            message: self.0.message.clone(),
        };
        let mut response = error_page(&error, &Caller::default());
        // The viewer is not known here: `error_pages` renders the page again with them.
        response.extensions_mut().insert(error);
        response
    }
}

/// An error page's error, left on the response for [`error_pages`].
#[derive(Clone)]
struct PageError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// Middleware: renders error pages again for the signed-in viewer, so that the header of a 404
/// or a 422 page still says who is signed in (an error is made where the caller is not known).
pub async fn error_pages(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let res = next.call(req).await?.map_into_boxed_body();
    let error = res.response().extensions().get::<PageError>().cloned();
    let caller = res.request().extensions().get::<Caller>().cloned();
    match (error, caller) {
        (Some(error), Some(caller)) if caller.user.is_some() => {
            let page = error_page(&error, &caller);
            Ok(res.into_response(page))
        }
        _ => Ok(res),
    }
}

fn error_page(error: &PageError, caller: &Caller) -> HttpResponse {
    let viewer = caller
        .user
        .as_ref()
        .map(|u| json!({"name": u.name, "is_admin": u.is_admin}));
    let context = json!({"title": "Error", "status": error.status.as_u16(), "code": error.code, "message": error.message, "viewer": viewer, "csrf": caller.session_csrf});
    let html = environment()
        .get_template("error.html")
        .and_then(|t| t.render(minijinja::value::Serde(&context)))
        .unwrap_or_else(|_| format!("<!doctype html><title>Error</title><p>{}</p>", error.status));
    page_response(error.status, html)
}

pub type WebResult = Result<HttpResponse, WebError>;
