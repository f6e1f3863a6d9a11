//! Verification of one model in this process: describe, smoke run, test vectors, determinism,
//! timings. [`crate::sandbox`] runs this in a limited child process.

use std::collections::BTreeSet;
use std::path::Path;

use ort::session::Session;

use crate::compare;
use crate::inputs;
use crate::model_info;
use crate::report::{FileSize, ModelReport, Opset, Status, VectorSetResult};
use crate::runtime::{self, Ep, Runtime};
use crate::settings::VerifySettings;
use crate::tensor::Value;
use crate::vectors::{self, VectorSet};

/// Verifies `model` (shown as `display`) with an already loaded runtime.
pub fn verify_model(
    rt: &Runtime,
    model: &Path,
    display: &str,
    ep: Ep,
    settings: &VerifySettings,
) -> ModelReport {
    let started = std::time::Instant::now();
    let mut report = verify_steps(rt, model, display, ep, settings);
    report.timings.total_ms = started.elapsed().as_secs_f64() * 1000.0;
    report
}

/// Why a verification stopped early: the status and reason [`ModelReport::fail`] records.
type Failure = (Status, String);

/// The inputs of one run and the outputs they gave: the determinism and timing runs repeat them.
type Reference = (Feed, Vec<(String, Value)>);

fn verify_steps(
    rt: &Runtime,
    model: &Path,
    display: &str,
    ep: Ep,
    settings: &VerifySettings,
) -> ModelReport {
    let mut report = ModelReport::new(display, ep.as_str(), settings.seed());
    report.onnxruntime_version = Some(rt.version.clone());
    match run_steps(&mut report, rt, model, display, ep, settings) {
        Ok(()) => report,
        Err((status, reason)) => report.fail(status, reason),
    }
}

/// The steps in order; each records what it learns in `report` before any failure stops them.
fn run_steps(
    report: &mut ModelReport,
    rt: &Runtime,
    model: &Path,
    display: &str,
    ep: Ep,
    settings: &VerifySettings,
) -> Result<(), Failure> {
    let header = record_header(report, model, display)?;
    check_external_data(report, model, display, &header.external_data)?;
    let mut session = open_session(report, rt, model, ep, header.producer_name)?;
    let sets = vectors::find(model);
    let mut reference = smoke_run(report, &mut session, settings, !sets.is_empty())?;
    let all_passed = check_vectors(report, &mut session, sets, settings, &mut reference);
    if let Some(reference) = reference {
        timed_runs(report, &mut session, reference, settings)?;
    }
    report.timings.peak_rss_bytes = peak_rss_bytes();
    conclude(report, all_passed);
    Ok(())
}

/// Reads the ONNX header (IR version, opsets, producer, metadata) and the model file's size.
fn record_header(
    report: &mut ModelReport,
    model: &Path,
    display: &str,
) -> Result<model_info::ModelHeader, Failure> {
    let header = model_info::read_header(model)
        .map_err(|e| (Status::Failed, format!("not a readable ONNX model: {e}")))?;
    report.ir_version = header.ir_version;
    report.opsets = header
        .opsets
        .iter()
        .map(|o| Opset {
            domain: o.domain.clone(),
            version: o.version,
        })
        .collect();
    report.producer_version = header.producer_version.clone();
    report.metadata = header.metadata.clone();
    report.external_data = header.external_data.iter().cloned().collect();
    let size = std::fs::metadata(model).map(|m| m.len()).unwrap_or(0);
    report.files.push(FileSize {
        path: display.to_string(),
        bytes: size,
    });
    Ok(header)
}

/// Checks that every external data file is a plain relative path present beside the model,
/// and records its size.
fn check_external_data(
    report: &mut ModelReport,
    model: &Path,
    display: &str,
    locations: &BTreeSet<String>,
) -> Result<(), Failure> {
    let dir = model.parent().unwrap_or(Path::new("."));
    for location in locations {
        if let Some(problem) = model_info::location_problem(location) {
            return Err((
                Status::Failed,
                format!("external data location `{location}` {problem}"),
            ));
        }
        let path = dir.join(location);
        let inside = match (path.canonicalize(), dir.canonicalize()) {
            (Ok(p), Ok(d)) => p.starts_with(d),
            _ => false,
        };
        if !inside || !path.is_file() {
            return Err((
                Status::Failed,
                format!("external data file `{location}` is not present beside the model"),
            ));
        }
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let shown = Path::new(display).parent().map_or(location.clone(), |p| {
            p.join(location).to_string_lossy().into_owned()
        });
        report.files.push(FileSize { path: shown, bytes });
    }
    Ok(())
}

/// Creates the session on the requested provider and records the provider, device, inputs,
/// outputs and the model's own description.
fn open_session(
    report: &mut ModelReport,
    rt: &Runtime,
    model: &Path,
    ep: Ep,
    header_producer: Option<String>,
) -> Result<Session, Failure> {
    let started = std::time::Instant::now();
    let (session, provider, fallback) = match rt.session(model, ep) {
        Ok(s) => s,
        Err(runtime::SessionError::Model(e)) => return Err((Status::Failed, e)),
        Err(runtime::SessionError::Provider(e)) => return Err((Status::Error, e)),
    };
    report.timings.session_create_ms = started.elapsed().as_secs_f64() * 1000.0;
    report.provider = Some(provider.to_string());
    report.provider_fallback = fallback;
    report.device = Some(runtime::device(provider));
    report.inputs = session
        .inputs()
        .iter()
        .map(|o| runtime::describe(o.name(), o.dtype()))
        .collect();
    report.outputs = session
        .outputs()
        .iter()
        .map(|o| runtime::describe(o.name(), o.dtype()))
        .collect();
    if let Ok(meta) = session.metadata() {
        report.producer = meta.producer().filter(|s| !s.is_empty());
        report.graph_name = meta.name().filter(|s| !s.is_empty());
        report.description = meta
            .description()
            .filter(|s| !s.is_empty())
            .map(|d| d.chars().take(2000).collect());
    }
    report.producer = report.producer.take().or(header_producer);
    Ok(session)
}

/// Smoke run on generated inputs, kept for the determinism and timing runs. Without test
/// vectors a failure here fails the verification; with them it is only noted.
fn smoke_run(
    report: &mut ModelReport,
    session: &mut Session,
    settings: &VerifySettings,
    has_vectors: bool,
) -> Result<Option<Reference>, Failure> {
    let generated: Result<Vec<(String, Value)>, String> = report
        .inputs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            inputs::generate(d, &settings.dims, settings.seed(), i).map(|v| (d.name.clone(), v))
        })
        .collect();
    let mut reference = None;
    let mut smoke_error = None;
    if let Ok(values) = &generated {
        report.smoke_shapes = values
            .iter()
            .filter_map(|(name, v)| match v {
                Value::Tensor(t) => Some((name.clone(), t.shape.clone())),
                Value::Sequence(_) | Value::Opaque(_) => None,
            })
            .collect();
    }
    match generated.and_then(|g| to_feed(&g)) {
        Ok(feed) => match runtime::run(session, &feed) {
            Ok((outputs, ms)) => {
                report.smoke_run = Some(true);
                report.timings.first_run_ms = Some(ms);
                reference = Some((feed, outputs));
            }
            Err(e) => {
                report.smoke_run = Some(false);
                smoke_error = Some(format!("smoke run on generated inputs failed: {e}"));
            }
        },
        Err(e) if !has_vectors => return Err((Status::Error, e)),
        Err(e) => smoke_error = Some(format!("no smoke run: {e}")),
    }
    if let Some(e) = &smoke_error
        && !has_vectors
    {
        // Generated inputs may break a model that needs meaningful values (shapes, indices);
        // the card's `dims` or shipped test vectors let it pass.
        let hint = if e.contains("allocate memory") {
            "the model ran out of memory under its limit"
        } else {
            "set `verification.dims` in the card, or ship test vectors"
        };
        return Err((Status::Failed, format!("{e} ({hint})")));
    }
    report.smoke_note = smoke_error;
    Ok(reference)
}

/// Runs every reference vector set and records its comparison; true when all of them passed.
/// Without a smoke run, the first set that runs becomes the `reference`.
fn check_vectors(
    report: &mut ModelReport,
    session: &mut Session,
    sets: Vec<Result<VectorSet, (String, String)>>,
    settings: &VerifySettings,
    reference: &mut Option<Reference>,
) -> bool {
    let input_names: Vec<String> = report.inputs.iter().map(|d| d.name.clone()).collect();
    let output_names: Vec<String> = report.outputs.iter().map(|d| d.name.clone()).collect();
    let mut all_passed = true;
    for set in sets {
        let result = match set {
            Err((name, error)) => VectorSetResult {
                name,
                passed: false,
                outputs: vec![],
                error: Some(error),
            },
            Ok(set) => run_set(
                session,
                &input_names,
                &output_names,
                set,
                settings,
                reference,
            ),
        };
        all_passed &= result.passed;
        report.test_vectors.push(result);
    }
    all_passed
}

/// Determinism, then timings over N runs, on the smoke inputs or the first vector set's:
/// the first timed run is compared with the run that produced the reference outputs.
fn timed_runs(
    report: &mut ModelReport,
    session: &mut Session,
    (feed, first): Reference,
    settings: &VerifySettings,
) -> Result<(), Failure> {
    let mut times = Vec::new();
    for i in 0..settings.runs() {
        match runtime::run(session, &feed) {
            Ok((outputs, ms)) => {
                if i == 0 {
                    note_determinism(report, &outputs, &first);
                }
                times.push(ms)
            }
            Err(e) => return Err((Status::Failed, format!("timed run failed: {e}"))),
        }
    }
    times.sort_by(f64::total_cmp);
    report.timings.runs = times.len() as u32;
    report.timings.p50_ms = percentile(&times, 0.50);
    report.timings.p95_ms = percentile(&times, 0.95);
    Ok(())
}

/// Compares a repeated run's outputs with the first run's; outputs that cannot be compared
/// (sequences of maps) are named instead.
fn note_determinism(
    report: &mut ModelReport,
    outputs: &[(String, Value)],
    first: &[(String, Value)],
) {
    report.deterministic = Some(outputs == first);
    if outputs != first {
        report.determinism_note = Some("two runs on the same inputs gave different outputs".into());
    }
    let opaque: Vec<String> = outputs
        .iter()
        .filter_map(|(name, v)| match v {
            Value::Opaque(kind) => Some(format!("`{name}` ({kind})")),
            _ => None,
        })
        .collect();
    if !opaque.is_empty() {
        report.determinism_note = Some(format!("not compared between runs: {}", opaque.join(", ")));
    }
}

/// Passed when every vector set passed, else failed naming the sets that did not.
fn conclude(report: &mut ModelReport, all_passed: bool) {
    if all_passed {
        report.status = Status::Passed;
    } else {
        let failed: Vec<&str> = report
            .test_vectors
            .iter()
            .filter(|s| !s.passed)
            .map(|s| s.name.as_str())
            .collect();
        report.status = Status::Failed;
        report.reason = Some(format!(
            "outputs differ from the published test vectors: {}",
            failed.join(", ")
        ));
    }
}

type Feed = Vec<(String, ort::value::DynValue)>;

fn to_feed(values: &[(String, Value)]) -> Result<Feed, String> {
    values
        .iter()
        .map(|(n, v)| runtime::to_ort(v).map(|v| (n.clone(), v)))
        .collect()
}

fn run_set(
    session: &mut Session,
    input_names: &[String],
    output_names: &[String],
    set: VectorSet,
    settings: &VerifySettings,
    reference: &mut Option<Reference>,
) -> VectorSetResult {
    let mut result = VectorSetResult {
        name: set.name.clone(),
        passed: false,
        outputs: vec![],
        error: None,
    };
    // Inputs by their recorded name when it is one of the model's, else by position.
    let mut named = Vec::new();
    for (k, (name, value)) in set.inputs.into_iter().enumerate() {
        let name = match name.filter(|n| input_names.contains(n)) {
            Some(n) => n,
            None => match input_names.get(k) {
                Some(n) => n.clone(),
                None => {
                    result.error = Some(format!(
                        "input_{k} has no matching model input (the model has {})",
                        input_names.len()
                    ));
                    return result;
                }
            },
        };
        named.push((name, value));
    }
    let feed = match to_feed(&named) {
        Ok(f) => f,
        Err(e) => {
            result.error = Some(e);
            return result;
        }
    };
    let outputs = match runtime::run(session, &feed) {
        Ok((o, _)) => o,
        Err(e) => {
            result.error = Some(format!("run failed: {e}"));
            return result;
        }
    };
    let mut passed = true;
    for (k, (name, expected)) in set.outputs.iter().enumerate() {
        let target = name
            .as_ref()
            .filter(|n| output_names.contains(n))
            .cloned()
            .or_else(|| output_names.get(k).cloned());
        let Some(actual) = target
            .as_ref()
            .and_then(|t| outputs.iter().find(|(n, _)| n == t))
        else {
            result.error = Some(format!("reference output {k} has no matching model output"));
            return result;
        };
        let c = compare::compare(&actual.0, expected, &actual.1, settings);
        passed &= c.passed;
        result.outputs.push(c);
    }
    result.passed = passed;
    if reference.is_none() {
        *reference = Some((feed, outputs));
    }
    result
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// This process's peak resident set (`VmHWM`).
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_kib("/proc/self/status", "VmHWM:").map(|k| k * 1024)
}

pub fn proc_status_kib(path: &str, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
}
