//! Verification of one model in this process: describe, smoke run, test vectors, determinism,
//! timings. [`crate::sandbox`] runs this in a limited child process.

use std::path::Path;

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

fn verify_steps(
    rt: &Runtime,
    model: &Path,
    display: &str,
    ep: Ep,
    settings: &VerifySettings,
) -> ModelReport {
    let mut report = ModelReport::new(display, ep.as_str(), settings.seed());
    report.onnxruntime_version = Some(rt.version.clone());
    let header = match model_info::read_header(model) {
        Ok(h) => h,
        Err(e) => return report.fail(Status::Failed, format!("not a readable ONNX model: {e}")),
    };
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
    let dir = model.parent().unwrap_or(Path::new("."));
    for location in &header.external_data {
        if let Some(problem) = model_info::location_problem(location) {
            return report.fail(
                Status::Failed,
                format!("external data location `{location}` {problem}"),
            );
        }
        let path = dir.join(location);
        let inside = match (path.canonicalize(), dir.canonicalize()) {
            (Ok(p), Ok(d)) => p.starts_with(d),
            _ => false,
        };
        if !inside || !path.is_file() {
            return report.fail(
                Status::Failed,
                format!("external data file `{location}` is not present beside the model"),
            );
        }
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let shown = Path::new(display).parent().map_or(location.clone(), |p| {
            p.join(location).to_string_lossy().into_owned()
        });
        report.files.push(FileSize { path: shown, bytes });
    }

    let started = std::time::Instant::now();
    let (mut session, provider, fallback) = match rt.session(model, ep) {
        Ok(s) => s,
        Err(runtime::SessionError::Model(e)) => return report.fail(Status::Failed, e),
        Err(runtime::SessionError::Provider(e)) => return report.fail(Status::Error, e),
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
    report.producer = report.producer.or(header.producer_name);

    // Smoke run on generated inputs (kept for the determinism and timing runs).
    let input_names: Vec<String> = report.inputs.iter().map(|d| d.name.clone()).collect();
    let generated: Result<Vec<(String, Value)>, String> = report
        .inputs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            inputs::generate(d, &settings.dims, settings.seed(), i).map(|v| (d.name.clone(), v))
        })
        .collect();
    let sets = vectors::find(model);
    let has_vectors = !sets.is_empty();
    let mut feed_for_timing = None;
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
        Ok(feed) => match runtime::run(&mut session, &feed) {
            Ok((outputs, ms)) => {
                report.smoke_run = Some(true);
                report.timings.first_run_ms = Some(ms);
                feed_for_timing = Some((feed, outputs));
            }
            Err(e) => {
                report.smoke_run = Some(false);
                smoke_error = Some(format!("smoke run on generated inputs failed: {e}"));
            }
        },
        Err(e) if !has_vectors => return report.fail(Status::Error, e),
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
        return report.fail(Status::Failed, format!("{e} ({hint})"));
    }
    report.smoke_note = smoke_error;

    // Reference vectors.
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
                &mut session,
                &input_names,
                &report
                    .outputs
                    .iter()
                    .map(|d| d.name.clone())
                    .collect::<Vec<_>>(),
                set,
                settings,
                &mut feed_for_timing,
            ),
        };
        all_passed &= result.passed;
        report.test_vectors.push(result);
    }

    // Determinism, then timings over N runs, on the smoke inputs or the first vector set's:
    // the first timed run is compared with the run that produced the reference outputs.
    if let Some((feed, first)) = feed_for_timing {
        let mut times = Vec::new();
        for i in 0..settings.runs() {
            match runtime::run(&mut session, &feed) {
                Ok((outputs, ms)) => {
                    if i == 0 {
                        report.deterministic = Some(outputs == first);
                        if outputs != first {
                            report.determinism_note =
                                Some("two runs on the same inputs gave different outputs".into());
                        }
                        let opaque: Vec<String> = outputs
                            .iter()
                            .filter_map(|(name, v)| match v {
                                Value::Opaque(kind) => Some(format!("`{name}` ({kind})")),
                                _ => None,
                            })
                            .collect();
                        if !opaque.is_empty() {
                            report.determinism_note =
                                Some(format!("not compared between runs: {}", opaque.join(", ")));
                        }
                    }
                    times.push(ms)
                }
                Err(e) => return report.fail(Status::Failed, format!("timed run failed: {e}")),
            }
        }
        times.sort_by(f64::total_cmp);
        report.timings.runs = times.len() as u32;
        report.timings.p50_ms = percentile(&times, 0.50);
        report.timings.p95_ms = percentile(&times, 0.95);
    }
    report.timings.peak_rss_bytes = peak_rss_bytes();
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
    report
}

type Feed = Vec<(String, ort::value::DynValue)>;

fn to_feed(values: &[(String, Value)]) -> Result<Feed, String> {
    values
        .iter()
        .map(|(n, v)| runtime::to_ort(v).map(|v| (n.clone(), v)))
        .collect()
}

fn run_set(
    session: &mut ort::session::Session,
    input_names: &[String],
    output_names: &[String],
    set: VectorSet,
    settings: &VerifySettings,
    feed_for_timing: &mut Option<(Feed, Vec<(String, Value)>)>,
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
    if feed_for_timing.is_none() {
        *feed_for_timing = Some((feed, outputs));
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
