//! The bodies of the transparency log's entries, one variant per kind. Each is written as a JSON
//! object `{"kind": "<kind>", ...}`; the log adds `v` and `time`, and `repository` to an entry
//! about a repository (`tlog::append_about`, which seals it when the repository is private).

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LogEntry {
    /// A commit on a branch, with the model-signing manifest digest of its files.
    Publish {
        commit: String,
        branch: String,
        parent: Option<String>,
        files: usize,
        manifest: String,
        author: String,
    },
    /// A branch or tag moved (or was created: `previous` is null).
    RefSet {
        #[serde(rename = "ref")]
        name: String,
        ref_kind: String,
        commit: String,
        previous: Option<String>,
    },
    RefDelete {
        #[serde(rename = "ref")]
        name: String,
        ref_kind: String,
        commit: String,
    },
    RepoDelete,
    /// The licence decision of a commit changed.
    LicenseDecision {
        commit: String,
        decision: String,
        effective: Option<String>,
        catalog_version: String,
        policy_version: i64,
    },
    /// The signature verification of a commit changed.
    Signature {
        commit: String,
        status: String,
        signer: Option<String>,
        root_digest: Option<String>,
    },
    /// Sample inference of a commit's models finished.
    Verification {
        commit: String,
        status: String,
        providers: Vec<String>,
        onnxruntime: Option<String>,
    },
    /// A blob's bytes stopped being served: the scanner found it malicious (`verdict`,
    /// `scanner_version`) or a reviewer held it for a report (`report`, `reason`).
    Quarantine {
        sha256: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        verdict: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        scanner_version: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        report: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A quarantined or held blob is served again (by an admin, or a reviewer lifting a hold).
    Release {
        sha256: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        report: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    ReportDisclosed {
        report: i64,
        sha256: Option<String>,
    },
    Advisory {
        advisory: String,
        severity: String,
        sha256: Vec<String>,
    },
}

impl LogEntry {
    /// Whether the entry concerns one repository (and names it), rather than the whole hub.
    pub fn is_about_a_repository(&self) -> bool {
        !matches!(
            self,
            LogEntry::Quarantine { .. }
                | LogEntry::Release { .. }
                | LogEntry::ReportDisclosed { .. }
                | LogEntry::Advisory { .. }
        )
    }

    /// The entry as a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a log entry serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_the_field_names_readers_know() {
        let set = LogEntry::RefSet {
            name: "v1".into(),
            ref_kind: "tag".into(),
            commit: "abc".into(),
            previous: None,
        };
        assert_eq!(
            set.to_json(),
            serde_json::json!({"kind": "ref-set", "ref": "v1", "ref_kind": "tag", "commit": "abc", "previous": null})
        );
        assert_eq!(
            LogEntry::RepoDelete.to_json(),
            serde_json::json!({"kind": "repo-delete"})
        );
        let scanned = LogEntry::Quarantine {
            sha256: "00".into(),
            verdict: Some("malicious".into()),
            scanner_version: Some("1".into()),
            report: None,
            reason: None,
        };
        assert_eq!(
            scanned.to_json(),
            serde_json::json!({"kind": "quarantine", "sha256": "00", "verdict": "malicious", "scanner_version": "1"})
        );
    }
}
