//! The result of verifying one model, as the CLI prints it and the hub stores it.

use serde::{Deserialize, Serialize};

use crate::tensor::ElemType;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    /// The model did not load or run, crashed, ran out of a limit, or disagreed with its own
    /// published outputs.
    Failed,
    /// Verification itself could not be done (no ONNX Runtime, an unsupported input type).
    Error,
    /// The model loaded, but no generated input ran (or only a degenerate one did) and the
    /// publisher shipped no test vectors: nothing says the model is wrong, nothing proves it
    /// works. The reason lists the errors seen and what to ship.
    Inconclusive,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Error => "error",
            Status::Inconclusive => "inconclusive",
        }
    }
}

/// One generated input: its shape and how its values were made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratedInput {
    pub name: String,
    pub shape: Vec<i64>,
    pub fill: Fill,
}

/// How a generated input's values are made (see [`crate::inputs::generate_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Fill {
    /// Uniform in [0, 1): pixels, audio, features.
    Uniform,
    /// Zeros: recurrent state, token types.
    Zeros,
    /// Ones: attention masks.
    Ones,
    /// `0..n` along the last axis: position ids.
    Positions,
    /// Uniform integers in `0..n`: token ids, bytes.
    Ids(i64),
    /// One value everywhere: a sample rate.
    Constant(i64),
    /// Random booleans.
    Bits,
    /// `kaiyuan sample N` strings.
    Strings,
}

/// One candidate set of generated inputs that did not run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    pub label: String,
    pub shapes: Vec<(String, Vec<i64>)>,
    pub error: String,
}

/// Which generated inputs the smoke run used, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputChoice {
    /// `card`, `metadata`, `typical`, `alternative`, `small` or `fallback`.
    pub label: String,
    /// Where the sizes came from, in words.
    pub why: String,
    /// A dimension is below what the model's names or metadata imply (a 1×1 image, one audio
    /// sample): such a run proves little, and alone it is not a `passed`.
    pub degenerate: bool,
    pub inputs: Vec<GeneratedInput>,
    /// Earlier candidates of the ladder that did not run, in order.
    pub tried: Vec<Attempt>,
}

/// One declared input or output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IoDescription {
    pub name: String,
    /// `tensor`, `sequence`, `map` or `optional`.
    pub kind: String,
    /// The element type when it is one verification can feed and compare.
    #[serde(skip)]
    pub elem: Option<ElemType>,
    pub element_type: String,
    /// -1 for a dimension that is not fixed.
    pub shape: Vec<i64>,
    /// The symbolic name of each dimension (`""` when it has none).
    pub dimension_names: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileSize {
    pub path: String,
    pub bytes: u64,
}

/// Comparison of one output with its reference.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputComparison {
    pub name: String,
    pub passed: bool,
    pub element_type: String,
    pub rtol: f64,
    pub atol: f64,
    pub max_abs_error: f64,
    pub max_rel_error: f64,
    /// Elements outside `atol + rtol * |expected|`.
    pub mismatched: u64,
    pub elements: u64,
    /// The first element outside the tolerance, as a multi-dimensional index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_mismatch_index: Option<Vec<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_value: Option<String>,
    /// Why the output could not be compared element by element (dtype or shape differ).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VectorSetResult {
    /// `test_data_set_0`, or the safetensors file name.
    pub name: String,
    pub passed: bool,
    pub outputs: Vec<OutputComparison>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timings {
    /// The whole verification of this model in its child: parse, load, every run, comparisons.
    pub total_ms: f64,
    pub session_create_ms: f64,
    pub first_run_ms: Option<f64>,
    pub runs: u32,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Opset {
    pub domain: String,
    pub version: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelReport {
    pub path: String,
    pub status: Status,
    /// Why it failed or could not be verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The provider the session actually ran on: `cpu` or `cuda`.
    pub provider: Option<String>,
    pub requested_provider: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_fallback: Option<String>,
    pub onnxruntime_version: Option<String>,
    pub device: Option<String>,
    pub inputs: Vec<IoDescription>,
    pub outputs: Vec<IoDescription>,
    pub ir_version: Option<u64>,
    pub opsets: Vec<Opset>,
    pub producer: Option<String>,
    pub producer_version: Option<String>,
    pub graph_name: Option<String>,
    pub description: Option<String>,
    pub metadata: Vec<(String, String)>,
    pub files: Vec<FileSize>,
    pub external_data: Vec<String>,
    /// Whether the smoke run with generated inputs completed.
    pub smoke_run: Option<bool>,
    /// The shapes the smoke run fed, symbolic dimensions resolved.
    pub smoke_shapes: Vec<(String, Vec<i64>)>,
    /// Why the smoke run did not run or failed when test vectors decided instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smoke_note: Option<String>,
    /// The candidate inputs the smoke run chose (or, when none ran, every one tried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_choice: Option<InputChoice>,
    pub test_vectors: Vec<VectorSetResult>,
    /// Whether a second run on the same inputs gave identical outputs.
    pub deterministic: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub determinism_note: Option<String>,
    pub timings: Timings,
    pub seed: u64,
}

impl ModelReport {
    pub fn new(path: &str, requested: &str, seed: u64) -> Self {
        ModelReport {
            path: path.to_string(),
            status: Status::Error,
            reason: None,
            provider: None,
            requested_provider: requested.to_string(),
            provider_fallback: None,
            onnxruntime_version: None,
            device: None,
            inputs: vec![],
            outputs: vec![],
            ir_version: None,
            opsets: vec![],
            producer: None,
            producer_version: None,
            graph_name: None,
            description: None,
            metadata: vec![],
            files: vec![],
            external_data: vec![],
            smoke_run: None,
            smoke_shapes: vec![],
            smoke_note: None,
            input_choice: None,
            test_vectors: vec![],
            deterministic: None,
            determinism_note: None,
            timings: Timings::default(),
            seed,
        }
    }

    pub fn fail(mut self, status: Status, reason: impl Into<String>) -> Self {
        self.status = status;
        self.reason = Some(reason.into());
        self
    }
}
