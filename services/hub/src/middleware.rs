//! Cross-cutting request handling: a request id on every response, one log line and metrics per
//! request, and a panic boundary so that a bug answers 500 JSON instead of dropping the connection.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError, web};
use futures_util::FutureExt;
use rand::Rng;
use tracing::Instrument;

use crate::auth::RequestId;
use crate::body_budget;
use crate::error::ApiError;
use crate::state::AppState;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Reuses a well-formed incoming `X-Request-Id` (so logs join across proxies), else makes one.
fn request_id_for(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| hex::encode(rand::rng().random::<[u8; 12]>()))
}

/// The method as a metrics label: the standard ones by name, anything else as `OTHER`, so that
/// made-up methods cannot grow the metrics without bound.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .into_iter()
        .find(|m| *m == method.as_str())
        .unwrap_or("OTHER")
}

/// HEAD is GET without the body. The download route answers HEAD itself (Hugging Face clients
/// read its headers); every other read route of the API and the operational endpoints answer
/// HEAD as GET: the codec, which saw the request's real method, sends the headers only.
fn head_as_get(req: &mut ServiceRequest) {
    let path = req.path();
    if req.method() == Method::HEAD
        && (path.starts_with("/api/v1/") || matches!(path, "/healthz" | "/readyz" | "/metrics"))
    {
        req.head_mut().method = Method::GET;
    }
}

pub async fn observe(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = request_id_for(&req);
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let metrics = state.as_ref().map(|state| state.metrics.clone());
    let method = method_label(req.method());
    head_as_get(&mut req);
    let mut body = None;
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if let Some(state) = &state {
        let limits = &state.settings.limits;
        let budget = body_budget::Budget {
            idle: std::time::Duration::from_secs(limits.body_idle_secs),
            min_rate: limits.body_min_rate,
        };
        let (payload, watch) = body_budget::wrap(req.take_payload(), budget);
        req.set_payload(payload);
        body = Some(watch);
    }
    let span = tracing::info_span!("request", request.id = %request_id, http.method = %method);

    // The request must not be cloned before routing (actix needs it unshared), so failures that
    // escape as errors or panics are answered through `WithRequestId` instead of a rebuilt response.
    let outcome = AssertUnwindSafe(next.call(req))
        .catch_unwind()
        .instrument(span.clone())
        .await;
    let record = |route: &str, status: u16| {
        let seconds = started.elapsed().as_secs_f64();
        if let Some(metrics) = &metrics {
            metrics.observe_request(method, route, status, seconds);
        }
        span.in_scope(|| {
            tracing::info!(
                http.route = %route,
                http.status = status,
                duration_ms = (seconds * 1000.0) as u64,
                "{method} {route} -> {status}"
            );
        });
    };
    let error = match outcome {
        Ok(Ok(response)) => {
            let mut response = response.map_into_boxed_body();
            if let Some(body) = &body {
                // Whatever the handler made of a body that ran out of time, the answer is 408.
                if let Some(timeout) = body.error() {
                    let (request, _) = response.into_parts();
                    response = ServiceResponse::new(request, timeout.error_response());
                }
            }
            // An answer before the body's end closes the connection: nothing more of it is
            // read, however slowly it comes.
            if let Some(body) = body.filter(|_| has_body) {
                response = body.close_unread(response);
            }
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                response.headers_mut().insert(REQUEST_ID, value);
            }
            let route = response
                .request()
                .match_pattern()
                .unwrap_or_else(|| "unmatched".to_string());
            record(&route, response.status().as_u16());
            audit_request(&response, &route, &request_id).await;
            return Ok(response);
        }
        Ok(Err(error)) => error,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            ApiError::internal(anyhow::anyhow!("handler panicked: {what}")).into()
        }
    };
    record(
        "unmatched",
        error.as_response_error().status_code().as_u16(),
    );
    Err(WithRequestId { error, request_id }.into())
}

/// Records a state-changing request (its actor, token, route, path, result, client address
/// and request id) in the audit log. A failure to record is logged, never turned into an
/// error for a request that has already taken effect.
async fn audit_request(response: &ServiceResponse<BoxBody>, route: &str, request_id: &str) {
    let req = response.request();
    if !matches!(req.method().as_str(), "POST" | "PUT" | "PATCH" | "DELETE") {
        return;
    }
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return;
    };
    let actor = req.extensions().get::<crate::auth::AuditActor>().copied();
    let namespace = ["namespace", "org"]
        .iter()
        .find_map(|k| req.match_info().get(k))
        .map(str::to_string);
    let client = req.peer_addr().map(|a| a.ip().to_string());
    let action = format!("{} {route}", req.method());
    let user_agent = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(200).collect::<String>());
    let record = crate::db::audit::RequestRecord {
        actor_id: actor.map(|a| a.user_id),
        token_id: actor.map(|a| a.token_id),
        action: &action,
        target: req.path(),
        result: response.status().as_u16(),
        client_addr: client.as_deref(),
        request_id,
        namespace: namespace.as_deref(),
        user_agent: user_agent.as_deref(),
    };
    let result = match state.db.acquire().await {
        Ok(mut conn) => crate::db::audit::record_request(&mut conn, &record).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::error!(error = %e, request.id = %request_id, "could not record the request in the audit log");
    }
}

/// An error that escaped the handlers, answered with the request id still attached.
#[derive(Debug)]
struct WithRequestId {
    error: actix_web::Error,
    request_id: String,
}

impl std::fmt::Display for WithRequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl ResponseError for WithRequestId {
    fn status_code(&self) -> actix_web::http::StatusCode {
        self.error.as_response_error().status_code()
    }

    fn error_response(&self) -> actix_web::HttpResponse {
        let mut response = self.error.error_response();
        if let Ok(value) = HeaderValue::from_str(&self.request_id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{App, middleware::from_fn, test, web};

    use super::*;

    #[actix_web::test]
    async fn a_panicking_handler_answers_500_json_with_a_request_id() {
        let app = test::init_service(
            App::new()
                .wrap(from_fn(observe))
                .route(
                    "/boom",
                    web::get().to(|| async { panic!("bug") as &'static str }),
                )
                .route("/ok", web::get().to(|| async { "fine" })),
        )
        .await;
        let ok = test::call_service(&app, test::TestRequest::get().uri("/ok").to_request()).await;
        assert!(ok.headers().contains_key(&REQUEST_ID));

        let err = test::try_call_service(&app, test::TestRequest::get().uri("/boom").to_request())
            .await
            .expect_err("the panic becomes an error response");
        let response = err.error_response();
        assert_eq!(response.status(), 500);
        assert!(response.headers().contains_key(&REQUEST_ID));
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["code"], "internal-error");
        assert!(
            !json["error"]["message"].as_str().unwrap().contains("bug"),
            "no internals leak"
        );
    }
}
