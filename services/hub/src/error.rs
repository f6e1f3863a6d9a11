//! The one error type handlers return, and its JSON shape:
//! `{"error": {"code": "kebab-case-code", "message": "what is wrong and how to fix it"}}`.
//!
//! Client mistakes carry a stable code and a helpful message; anything unexpected is logged with
//! its cause chain and reaches the client only as an opaque `internal-error`.

use crate::error_code as code;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Structured facts a client can act on (e.g. a quarantined file's findings). Boxed: a
    /// JSON value is large, and every handler result carries room for an error.
    pub details: Option<Box<serde_json::Value>>,
    /// Seconds a 503's `Retry-After` names (5 unless set).
    pub retry_after: Option<u64>,
    /// The cause of a server-side failure, logged and never sent.
    source: Option<anyhow::Error>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
            source: None,
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    /// Names when to ask again, for a 503 whose cause says (an upstream's rate limit).
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn too_large(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, code, message)
    }

    /// An unexpected failure: logged with its cause, opaque to the client.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: code::INTERNAL_ERROR,
            message: "the hub failed to handle this request; it has been logged".into(),
            details: None,
            retry_after: None,
            source: Some(source.into()),
        }
    }

    pub fn unavailable(source: impl Into<anyhow::Error>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: code::SERVICE_UNAVAILABLE,
            message: "a backing service (database or object store) is unavailable; retry shortly"
                .into(),
            details: None,
            retry_after: None,
            source: Some(source.into()),
        }
    }

    /// Whether this error is a refusal (401, 403, 404): the caller may not do or see it.
    pub fn is_refusal(&self) -> bool {
        matches!(self.status.as_u16(), 401 | 403 | 404)
    }

    /// Whether an authorisation check passed: a refusal is `false`, any other failure (the
    /// database is down) stays an error, never a quiet "not found".
    pub fn permitted<T>(check: Result<T, ApiError>) -> Result<bool, ApiError> {
        match check {
            Ok(_) => Ok(true),
            Err(e) if e.is_refusal() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The JSON body of an error with this code and message.
    pub fn body(code: &str, message: &str) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
                details: None,
            },
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

/// The names Hugging Face clients map to their exceptions (`X-Error-Code`), for the codes that
/// have one; every other error keeps its kaiyuan code there too.
fn hf_error_code(code: &str) -> Option<&'static str> {
    Some(match code {
        code::REPOSITORY_NOT_FOUND => "RepoNotFound",
        code::REVISION_NOT_FOUND => "RevisionNotFound",
        code::ENTRY_NOT_FOUND => "EntryNotFound",
        code::GATED => "GatedRepo",
        // huggingface_hub reports any other refusal of its metadata request (HEAD) as a
        // connection problem, without the reason; as GatedRepo it raises it with the reason.
        code::MIRROR_POLICY_DENIED => "GatedRepo",
        _ => return None,
    })
}

/// A message as a header value: visible ASCII only, bounded.
pub fn header_text(message: &str) -> String {
    message
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(1024)
        .collect()
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(source) = &self.source {
            tracing::error!(
                error.code = self.code,
                error.cause = format!("{source:#}"),
                "request failed"
            );
        }
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Clients that retry (huggingface_hub's backoff among them) wait this long.
            let seconds = self.retry_after.unwrap_or(5);
            response.insert_header(("Retry-After", seconds.to_string()));
        }
        response
            .insert_header((
                "X-Error-Code",
                hf_error_code(self.code).unwrap_or(self.code),
            ))
            .insert_header(("X-Error-Message", header_text(&self.message)))
            .json(ErrorBody {
                error: ErrorDetail {
                    code: self.code.into(),
                    message: self.message.clone(),
                    details: self.details.as_deref().cloned(),
                },
            })
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        let sqlstate = e
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned());
        match (&e, sqlstate.as_deref()) {
            (
                sqlx::Error::PoolTimedOut
                | sqlx::Error::Io(_)
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed,
                _,
            ) => Self::unavailable(e),
            // Connection exceptions (class 08), a server shutting down or starting (57P0x), no
            // connection slots left: the database is unavailable, not the request wrong.
            (_, Some(code))
                if code.starts_with("08") || code.starts_with("57P") || code == "53300" =>
            {
                Self::unavailable(e)
            }
            // Text with a NUL character, which PostgreSQL cannot store: it reached the database
            // from a request (a query, a path, a JSON string), so it is the client's to fix.
            (_, Some("22021" | "22P05")) => Self::bad_request(
                code::INVALID_TEXT,
                "the request contains a NUL character (U+0000) or another character that cannot \
                 be stored; remove it",
            ),
            _ => Self::internal(e),
        }
    }
}

impl From<crate::domain::Error> for ApiError {
    fn from(e: crate::domain::Error) -> Self {
        use crate::domain::Error as E;
        match e {
            E::Database(e) => e.into(),
            E::Storage(e) => e.into(),
            E::Internal(message) => Self::internal(anyhow::anyhow!(message)),
            E::Gated {
                signed_in: true,
                message,
            } => Self::forbidden(code::GATED, message),
            E::Gated {
                signed_in: false,
                message,
            } => Self::unauthorized(code::GATED, message),
        }
    }
}

impl From<crate::domain::accounts::AccountError> for ApiError {
    fn from(e: crate::domain::accounts::AccountError) -> Self {
        use crate::domain::accounts::AccountError as E;
        match e {
            E::InvalidName(message) => Self::unprocessable(code::INVALID_NAME, message),
            E::NameTaken(_) => Self::conflict(code::NAME_TAKEN, e.to_string()),
            E::Database(e) => e.into(),
        }
    }
}

impl From<crate::domain::commits::CommitError> for ApiError {
    fn from(e: crate::domain::commits::CommitError) -> Self {
        use crate::domain::commits::CommitError as E;
        use crate::tree::TreeError;
        match e {
            E::NoBranch { .. } => Self::not_found(code::REVISION_NOT_FOUND, e.to_string()),
            E::BranchMoved { .. } => Self::conflict(code::BRANCH_MOVED, e.to_string()),
            E::UnknownBlob { .. } => Self::unprocessable(code::UNKNOWN_BLOB, e.to_string()),
            E::SizeMismatch { .. } => Self::unprocessable(code::SIZE_MISMATCH, e.to_string()),
            E::Tree(TreeError::TooManyFiles(_)) => {
                Self::too_large(code::TOO_MANY_FILES, e.to_string())
            }
            // Hugging Face clients recognise this wording and code for a missing path.
            E::Tree(TreeError::DeleteMissing(path)) => Self::not_found(
                code::ENTRY_NOT_FOUND,
                format!(
                    "A file with this name doesn't exist: cannot delete `{path}`, no file or folder has that path"
                ),
            ),
            E::Tree(other) => Self::unprocessable(code::INVALID_CHANGE, other.to_string()),
            E::Service(e) => e.into(),
        }
    }
}

impl From<crate::domain::repos::RepoError> for ApiError {
    fn from(e: crate::domain::repos::RepoError) -> Self {
        use crate::domain::repos::RepoError as E;
        match e {
            E::SignedOut => Self::unauthorized(code::AUTHENTICATION_REQUIRED, e.to_string()),
            E::InvalidName(message) => Self::unprocessable(code::INVALID_NAME, message),
            E::NoNamespace(_) => Self::not_found(code::NAMESPACE_NOT_FOUND, e.to_string()),
            E::InsufficientRole(_) => Self::forbidden(code::INSUFFICIENT_ROLE, e.to_string()),
            E::NameReserved { .. } => Self::conflict(code::NAME_RESERVED, e.to_string()),
            E::Exists(_) => Self::conflict(code::REPOSITORY_EXISTS, e.to_string()),
            E::Service(e) => e.into(),
        }
    }
}

impl From<crate::domain::refs::RefError> for ApiError {
    fn from(e: crate::domain::refs::RefError) -> Self {
        use crate::domain::refs::RefError as E;
        match e {
            E::KindConflict { .. } => Self::conflict(code::REF_KIND_CONFLICT, e.to_string()),
            E::Moved { .. } => Self::conflict(code::REF_MOVED, e.to_string()),
            E::DefaultBranch => Self::conflict(code::DEFAULT_BRANCH, e.to_string()),
            E::Missing { .. } | E::NoRevision { .. } => {
                Self::not_found(code::REVISION_NOT_FOUND, e.to_string())
            }
            E::Service(e) => e.into(),
        }
    }
}

impl From<crate::domain::reviews::ReviewError> for ApiError {
    fn from(e: crate::domain::reviews::ReviewError) -> Self {
        use crate::domain::reviews::ReviewError as E;
        let message = e.to_string();
        match e {
            E::SignedOut => Self::unauthorized(code::AUTHENTICATION_REQUIRED, message),
            E::NoReport(_) => Self::not_found(code::REPORT_NOT_FOUND, message),
            E::NoAdvisory(_) => Self::not_found(code::ADVISORY_NOT_FOUND, message),
            E::ReviewerRequired(_) => Self::forbidden(code::REVIEWER_REQUIRED, message),
            E::InvalidCategory(_) => Self::unprocessable(code::INVALID_CATEGORY, message),
            E::InvalidDescription => Self::unprocessable(code::INVALID_DESCRIPTION, message),
            E::NoFile(_) => Self::not_found(code::ENTRY_NOT_FOUND, message),
            E::InvalidComment => Self::unprocessable(code::INVALID_COMMENT, message),
            E::InvalidAction(_) => Self::unprocessable(code::INVALID_ACTION, message),
            E::ReasonRequired => Self::unprocessable(code::INVALID_REASON, message),
            E::ReportPublished(_) => Self::conflict(code::REPORT_PUBLISHED, message),
            E::InvalidSeverity(_) => Self::unprocessable(code::INVALID_SEVERITY, message),
            E::InvalidAdvisory => Self::unprocessable(code::INVALID_ADVISORY, message),
            E::NotConfirmed { .. } => Self::conflict(code::REPORT_NOT_CONFIRMED, message),
            E::AdvisoryPublished(_) => Self::conflict(code::ADVISORY_PUBLISHED, message),
            E::Revision(e) => e.into(),
            E::Service(e) => e.into(),
        }
    }
}

impl From<kaiyuan_storage::StorageError> for ApiError {
    fn from(e: kaiyuan_storage::StorageError) -> Self {
        match e {
            kaiyuan_storage::StorageError::NotFound(digest) => Self::internal(anyhow::anyhow!(
                "blob {digest} is recorded but missing from the object store"
            )),
            other => Self::unavailable(other),
        }
    }
}

impl From<kaiyuan_storage::UploadError> for ApiError {
    fn from(e: kaiyuan_storage::UploadError) -> Self {
        use kaiyuan_storage::UploadError as U;
        match e {
            U::TooLarge { .. } => Self::too_large(code::FILE_TOO_LARGE, e.to_string()),
            U::SizeMismatch { .. } => Self::bad_request(code::SIZE_MISMATCH, e.to_string()),
            U::DigestMismatch { .. } => Self::bad_request(code::DIGEST_MISMATCH, e.to_string()),
            U::Storage(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn sources(dir: &Path, out: &mut Vec<(std::path::PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
    }

    #[test]
    fn every_error_code_is_documented() {
        let docs = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/API.md"),
        )
        .unwrap();
        let missing: Vec<&&str> = crate::error_code::ALL
            .iter()
            .filter(|c| !docs.contains(&format!("`{c}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "codes docs/API.md does not list: {missing:?}"
        );
    }

    /// Handlers name their code from the registry: a string literal given to an error
    /// constructor would be a code nobody documented.
    #[test]
    fn error_codes_come_from_the_registry() {
        let mut files = vec![];
        sources(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let constructors = [
            "bad_request(",
            "unprocessable(",
            "not_found(",
            "conflict(",
            "forbidden(",
            "unauthorized(",
            "too_large(",
        ];
        let mut literal = vec![];
        for (path, text) in &files {
            for constructor in constructors {
                for (at, _) in text.match_indices(constructor) {
                    // (`"bad_request("` in the list above is a name, not a call.)
                    let quoted = text[..at].ends_with('"');
                    if !quoted && text[at + constructor.len()..].trim_start().starts_with('"') {
                        literal.push(format!("{}: {constructor}", path.display()));
                    }
                }
            }
            for (at, _) in text.match_indices("ApiError::new(") {
                let args = &text[at..];
                let second = args.split_once(',').map_or("", |(_, r)| r.trim_start());
                if second.starts_with('"') {
                    literal.push(format!("{}: ApiError::new(", path.display()));
                }
            }
        }
        assert!(literal.is_empty(), "literal error codes: {literal:?}");
        assert!(crate::error_code::ALL.len() > 100);
    }
}
