//! What an evaluation answers: a decision, findings and obligations in plain words.

use serde::{Deserialize, Serialize};

use crate::catalog::Terms;
use crate::detect::Detection;
use crate::policy::UseContext;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    AllowWithObligations,
    FlagReview,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::AllowWithObligations => "allow_with_obligations",
            Decision::FlagReview => "flag_review",
            Decision::Deny => "deny",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    /// Needs a person: legally unsettled or conflicting evidence.
    Review,
    /// Blocks: the licence or the policy does not allow it.
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub code: String,
    pub severity: Severity,
    pub message: String,
}

impl Finding {
    pub fn new(code: &str, severity: Severity, message: impl Into<String>) -> Finding {
        Finding {
            code: code.into(),
            severity,
            message: message.into(),
        }
    }
}

/// One upstream node: a base model, a teacher whose outputs trained the model, or a dataset.
#[derive(Debug, Clone, Serialize)]
pub struct LineageNode {
    pub id: String,
    /// `base`, `teacher` or `dataset`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
    /// Effective licence expression, or null when unknown.
    pub license: Option<String>,
    /// `lineage-file`, `hub`, `curated` or `unknown`.
    pub source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub decision: Decision,
    pub name: Option<String>,
    /// The card's `license` value as written.
    pub declared: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license_link: Option<String>,
    /// Canonical SPDX expression of the declaration, or null.
    pub expression: Option<String>,
    /// Every change made to reach `expression`.
    pub normalization: Vec<String>,
    pub detected: Vec<Detection>,
    /// Expression after reconciling evidence and lineage: what a user must honour.
    pub effective: Option<String>,
    /// The licences chosen where the effective expression offers alternatives.
    pub chosen: Vec<String>,
    pub terms: Vec<Terms>,
    pub lineage: Vec<LineageNode>,
    /// `clear`, `attribution`, `share-alike-unsettled`, `non-commercial-unsettled`, `unknown`.
    pub data_license_risk: String,
    pub findings: Vec<Finding>,
    pub obligations: Vec<String>,
    pub context: UseContext,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    pub catalog_version: String,
}

impl Report {
    pub fn has(&self, code: &str) -> bool {
        self.findings.iter().any(|f| f.code == code)
    }
}
