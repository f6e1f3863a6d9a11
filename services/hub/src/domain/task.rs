//! Every kind of background job with its payload, as one type: what is queued and what a worker
//! runs cannot disagree on a field. The queue stores `kind` and the payload's JSON; a few bulk
//! enqueues build the same JSON in SQL from these kinds (`db::scans`, `db::licenses`, ...).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A commit of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRef {
    pub repository_id: i64,
    pub commit_id: String,
}

/// A blob to scan, with one of its paths as the format hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanBlob {
    pub sha256: String,
    #[serde(default)]
    pub path: String,
}

/// A commit's ONNX models to run, on `ep` (`any`, `cpu` or `cuda`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyCommit {
    pub repository_id: i64,
    pub commit_id: String,
    #[serde(default)]
    pub ep: Option<String>,
}

/// A webhook delivery to attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    pub delivery_id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// Checks that every blob of a new commit is in the store with its recorded size.
    CommitCreated(CommitRef),
    ScanBlob(ScanBlob),
    /// Evaluates a commit's licence under its namespace's policy.
    LicenseEvaluate(CommitRef),
    /// Verifies a commit's model-signing bundle.
    SignatureVerify(CommitRef),
    VerifyCommit(VerifyCommit),
    WebhookDeliver(WebhookDelivery),
}

impl Task {
    pub const COMMIT_CREATED: &'static str = "commit-created";
    pub const SCAN_BLOB: &'static str = "scan-blob";
    pub const LICENSE_EVALUATE: &'static str = "license-evaluate";
    pub const SIGNATURE_VERIFY: &'static str = "signature-verify";
    pub const VERIFY_COMMIT: &'static str = "verify-commit";
    pub const WEBHOOK_DELIVER: &'static str = "webhook-deliver";

    pub fn kind(&self) -> &'static str {
        match self {
            Task::CommitCreated(_) => Self::COMMIT_CREATED,
            Task::ScanBlob(_) => Self::SCAN_BLOB,
            Task::LicenseEvaluate(_) => Self::LICENSE_EVALUATE,
            Task::SignatureVerify(_) => Self::SIGNATURE_VERIFY,
            Task::VerifyCommit(_) => Self::VERIFY_COMMIT,
            Task::WebhookDeliver(_) => Self::WEBHOOK_DELIVER,
        }
    }

    /// The payload the queue stores.
    pub fn payload(&self) -> Value {
        let value = match self {
            Task::CommitCreated(c) | Task::LicenseEvaluate(c) | Task::SignatureVerify(c) => {
                serde_json::to_value(c)
            }
            Task::ScanBlob(s) => serde_json::to_value(s),
            Task::VerifyCommit(v) => serde_json::to_value(v),
            Task::WebhookDeliver(d) => serde_json::to_value(d),
        };
        value.expect("task payloads serialise")
    }

    /// The task a queued job holds; an unknown kind or a payload that does not fit is an error
    /// that no retry mends.
    pub fn from_job(kind: &str, payload: Value) -> Result<Task, String> {
        let bad = |e: serde_json::Error| format!("bad {kind} payload: {e}");
        Ok(match kind {
            Self::COMMIT_CREATED => {
                Task::CommitCreated(serde_json::from_value(payload).map_err(bad)?)
            }
            Self::SCAN_BLOB => Task::ScanBlob(serde_json::from_value(payload).map_err(bad)?),
            Self::LICENSE_EVALUATE => {
                Task::LicenseEvaluate(serde_json::from_value(payload).map_err(bad)?)
            }
            Self::SIGNATURE_VERIFY => {
                Task::SignatureVerify(serde_json::from_value(payload).map_err(bad)?)
            }
            Self::VERIFY_COMMIT => {
                Task::VerifyCommit(serde_json::from_value(payload).map_err(bad)?)
            }
            Self::WEBHOOK_DELIVER => {
                Task::WebhookDeliver(serde_json::from_value(payload).map_err(bad)?)
            }
            other => return Err(format!("unknown job kind `{other}`")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_reads_back_what_it_queues() {
        let commit = CommitRef {
            repository_id: 7,
            commit_id: "c".repeat(40),
        };
        for task in [
            Task::CommitCreated(commit.clone()),
            Task::ScanBlob(ScanBlob {
                sha256: "ab".repeat(32),
                path: "w.bin".into(),
            }),
            Task::LicenseEvaluate(commit.clone()),
            Task::SignatureVerify(commit),
            Task::VerifyCommit(VerifyCommit {
                repository_id: 7,
                commit_id: "c".repeat(40),
                ep: Some("cuda".into()),
            }),
            Task::WebhookDeliver(WebhookDelivery { delivery_id: 3 }),
        ] {
            assert_eq!(Task::from_job(task.kind(), task.payload()), Ok(task));
        }
        assert!(
            Task::from_job("nope", serde_json::json!({}))
                .unwrap_err()
                .contains("unknown")
        );
        let err = Task::from_job(Task::COMMIT_CREATED, serde_json::json!({"nope": 1})).unwrap_err();
        assert!(err.contains("bad commit-created payload"), "{err}");
    }

    /// The bulk enqueue of scans builds its payload in SQL: the same fields.
    #[test]
    fn the_sql_built_scan_payload_is_a_scan_task() {
        let from_sql = serde_json::json!({"sha256": "ab".repeat(32), "path": "a/b.bin"});
        assert!(matches!(
            Task::from_job(Task::SCAN_BLOB, from_sql),
            Ok(Task::ScanBlob(ScanBlob { .. }))
        ));
    }
}
