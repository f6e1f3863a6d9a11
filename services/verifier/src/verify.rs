//! Verification of one model in this process: describe, smoke run on a ladder of generated
//! inputs, test vectors, determinism, timings. [`crate::sandbox`] runs this in a limited child process.

use std::collections::BTreeSet;
use std::path::Path;

use ort::session::Session;

use crate::compare;
use crate::inputs;
use crate::model_info;
use crate::report::{Attempt, FileSize, InputChoice, ModelReport, Opset, Status, VectorSetResult};
use crate::runtime::{self, Ep, Runtime};
use crate::settings::VerifySettings;
use crate::shapes;
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
    let has_vectors = !sets.is_empty();
    let (mut reference, degenerate) =
        smoke_run(report, &mut session, model, settings, has_vectors)?;
    let all_passed = check_vectors(report, &mut session, sets, settings, &mut reference);
    if let Some(reference) = reference {
        timed_runs(report, &mut session, reference, settings)?;
    }
    report.timings.peak_rss_bytes = peak_rss_bytes();
    conclude(report, all_passed, degenerate && !has_vectors);
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

/// The ladder stops starting new candidates after this long (each run is also under the
/// sandbox's time limits).
const LADDER_BUDGET: std::time::Duration = std::time::Duration::from_secs(120);

/// Smoke run on generated inputs: the first candidate of the shape ladder
/// ([`crate::shapes`]) that runs is kept for the determinism and timing runs. Without test
/// vectors, no candidate running makes the result inconclusive (failed when the model ran out
/// of memory); with them it is only noted. Returns the reference and whether the input that
/// ran was degenerate.
fn smoke_run(
    report: &mut ModelReport,
    session: &mut Session,
    model: &Path,
    settings: &VerifySettings,
    has_vectors: bool,
) -> Result<(Option<Reference>, bool), Failure> {
    let hints = shapes::hints(
        &report.metadata,
        report.producer.as_deref(),
        &report.inputs,
        &report.outputs,
        model.parent(),
    );
    let ladder = shapes::ladder(&report.inputs, &hints, &settings.dims);
    let started = std::time::Instant::now();
    let mut tried: Vec<Attempt> = Vec::new();
    let mut ran_any = false;
    let mut last_run_error = None;
    for candidate in &ladder {
        if started.elapsed() > LADDER_BUDGET {
            break;
        }
        let shapes: Vec<(String, Vec<i64>)> = candidate
            .inputs
            .iter()
            .map(|g| (g.name.clone(), g.shape.clone()))
            .collect();
        let attempt = |error: String| Attempt {
            label: candidate.label.to_string(),
            shapes: shapes.clone(),
            error,
        };
        let feed = match candidate_feed(&report.inputs, candidate, settings.seed()) {
            Ok(feed) => feed,
            Err(e) => {
                tried.push(attempt(e));
                continue;
            }
        };
        ran_any = true;
        match runtime::run(session, &feed) {
            Ok((outputs, ms)) => {
                report.smoke_run = Some(true);
                report.timings.first_run_ms = Some(ms);
                report.smoke_shapes = shapes;
                report.input_choice = Some(InputChoice {
                    label: candidate.label.to_string(),
                    why: candidate.why.clone(),
                    degenerate: candidate.degenerate,
                    inputs: candidate.inputs.clone(),
                    tried,
                });
                return Ok((Some((feed, outputs)), candidate.degenerate));
            }
            Err(e) => {
                last_run_error = Some(e.clone());
                tried.push(attempt(e));
            }
        }
    }
    no_candidate_ran(report, &ladder, tried, ran_any, last_run_error, has_vectors)
}

/// Records a ladder on which nothing ran and says what follows: a note beside test vectors,
/// an error when no input could even be made, a failure for a model out of memory, else an
/// inconclusive result with the errors seen and what to ship.
fn no_candidate_ran(
    report: &mut ModelReport,
    ladder: &[shapes::Candidate],
    tried: Vec<Attempt>,
    ran_any: bool,
    last_run_error: Option<String>,
    has_vectors: bool,
) -> Result<(Option<Reference>, bool), Failure> {
    report.smoke_run = ran_any.then_some(false);
    if let Some(first) = ladder.first() {
        report.smoke_shapes = first
            .inputs
            .iter()
            .map(|g| (g.name.clone(), g.shape.clone()))
            .collect();
    }
    let first_error = tried.first().map(|a| a.error.clone()).unwrap_or_default();
    let summary = tried
        .iter()
        .map(|a| {
            format!(
                "{} {:?}: {}",
                a.label,
                shape_list(&a.shapes),
                first_line(&a.error)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    report.input_choice = Some(InputChoice {
        label: "none".into(),
        why: format!("none of the {} candidate inputs ran", tried.len()),
        degenerate: false,
        inputs: vec![],
        tried,
    });
    if has_vectors {
        report.smoke_note = Some(if ran_any {
            format!("smoke run on generated inputs failed: {summary}")
        } else {
            format!("no smoke run: {first_error}")
        });
        return Ok((None, false));
    }
    match last_run_error {
        None => Err((Status::Error, first_error)),
        Some(e) if e.contains("allocate memory") => Err((
            Status::Failed,
            format!(
                "smoke run on generated inputs failed: {e} (the model ran out of memory under its limit)"
            ),
        )),
        Some(_) => Err((
            Status::Inconclusive,
            format!("no generated input ran ({summary}); {SHIP}"),
        )),
    }
}

/// What a publisher can add so that verification proves something.
const SHIP: &str = "ship test vectors (model.test_vectors.safetensors, or test_data_set_0/ \
                    with input_N.pb and output_N.pb) or set `verification.dims` in the card";

fn shape_list(shapes: &[(String, Vec<i64>)]) -> Vec<&Vec<i64>> {
    shapes.iter().map(|(_, s)| s).collect()
}

fn first_line(error: &str) -> String {
    error
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(300)
        .collect()
}

/// The inputs a candidate describes, generated and converted for ONNX Runtime.
fn candidate_feed(
    inputs: &[crate::report::IoDescription],
    candidate: &shapes::Candidate,
    seed: u64,
) -> Result<Feed, String> {
    let values = inputs
        .iter()
        .zip(&candidate.inputs)
        .enumerate()
        .map(|(i, (d, g))| {
            inputs::generate_with(d, &g.shape, g.fill, seed, i).map(|v| (d.name.clone(), v))
        })
        .collect::<Result<Vec<_>, String>>()?;
    to_feed(&values)
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

/// Passed when every vector set passed, else failed naming the sets that did not; without
/// vectors, a run only on a degenerate input is inconclusive.
fn conclude(report: &mut ModelReport, all_passed: bool, only_degenerate: bool) {
    if all_passed && only_degenerate {
        let choice = report.input_choice.as_ref();
        let tried = choice.map_or(String::new(), |c| {
            c.tried
                .iter()
                .map(|a| {
                    format!(
                        "{} {:?}: {}",
                        a.label,
                        shape_list(&a.shapes),
                        first_line(&a.error)
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        });
        report.status = Status::Inconclusive;
        report.reason = Some(format!(
            "the model ran only on a degenerate input {:?} (a dimension below what its names or metadata imply); larger inputs failed ({tried}); {SHIP}",
            shape_list(&report.smoke_shapes)
        ));
    } else if all_passed {
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
