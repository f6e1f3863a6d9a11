//! Shapes for generated inputs, from everything a model says about itself: the names of its
//! dimensions (`batch`, `height`/`width`, `sequence`, …), the layout of image-like inputs,
//! metadata the common exporters write (Ultralytics `imgsz`/`stride`, PaddleOCR's
//! conventions), symbolic relations between input and output dimensions, `config.json` and
//! `preprocessor_config.json` beside the model, and the card's `verification.dims`.
//!
//! The result is a short ladder of [`Candidate`]s, most plausible first, each with the reason
//! for its sizes; the smoke run takes the first one that runs. The last rung is the old rule
//! (unnamed dimensions 1), marked degenerate when it starves a dimension the names imply.

use std::collections::BTreeMap;
use std::path::Path;

use crate::inputs::{self, fill_for, resolve_shape};
use crate::report::{GeneratedInput, IoDescription};
use crate::tensor::ElemType;

/// At most this many candidates are tried, the fallback included.
pub const MAX_CANDIDATES: usize = 4;

/// What a dynamic dimension stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Batch,
    Height,
    Width,
    Sequence,
    /// Audio samples of a waveform input.
    Samples,
    Other,
}

/// Sizes the model's metadata and the files beside it suggest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hints {
    /// Height and width of image inputs.
    pub image: Option<(i64, i64)>,
    /// Image sides must be a multiple of this.
    pub stride: Option<i64>,
    pub sequence: Option<i64>,
    /// Longest sequence the model takes (`max_position_embeddings`).
    pub max_sequence: Option<i64>,
    pub sample_rate: Option<i64>,
    /// Where each hint came from, in words.
    pub sources: Vec<String>,
}

/// One set of generated inputs to try.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub label: &'static str,
    pub why: String,
    pub degenerate: bool,
    pub inputs: Vec<GeneratedInput>,
}

/// Sizes for the roles of one rung of the ladder.
struct Profile {
    label: &'static str,
    why: String,
    image: (i64, i64),
    sequence: i64,
    samples: i64,
}

/// Reads the hints: the ONNX metadata, the model's own input/output description and the
/// configuration files in the model's folder.
pub fn hints(
    metadata: &[(String, String)],
    producer: Option<&str>,
    inputs: &[IoDescription],
    outputs: &[IoDescription],
    model_dir: Option<&Path>,
) -> Hints {
    let mut h = Hints::default();
    for (key, value) in metadata {
        let key = key.to_ascii_lowercase();
        match key.as_str() {
            "imgsz" | "image_size" | "img_size" | "input_size" => {
                if let Some(size) = image_size(&serde_json::from_str(value).unwrap_or_default()) {
                    h.image = Some(size);
                    h.sources.push(format!("metadata {key} = {value}"));
                }
            }
            "stride" => {
                if let Ok(s) = value.trim().parse::<i64>() {
                    h.stride = Some(s).filter(|s| (1..=512).contains(s));
                    h.sources.push(format!("metadata stride = {s}"));
                }
            }
            "sample_rate" | "sampling_rate" => {
                h.sample_rate = value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|r| (1000..=192_000).contains(r));
                if h.sample_rate.is_some() {
                    h.sources.push(format!("metadata {key} = {value}"));
                }
            }
            _ => {}
        }
    }
    if let Some(dir) = model_dir {
        for file in ["config.json", "preprocessor_config.json"] {
            config_file(&mut h, &dir.join(file), file);
        }
    }
    if h.image.is_none() {
        paddle_ocr(&mut h, metadata, producer, inputs, outputs);
    }
    if h.stride.is_none()
        && let Some(s) = stride_from_outputs(outputs)
    {
        h.stride = Some(s);
        h.sources.push(format!(
            "output dimensions halve height and width to a stride of {s}"
        ));
    }
    h
}

/// `[320, 320]`, `320`, `{"height": 384, "width": 384}` or `{"shortest_edge": 224}`.
fn image_size(v: &serde_json::Value) -> Option<(i64, i64)> {
    let ok = |n: i64| (8..=4096).contains(&n);
    let size = match v {
        serde_json::Value::Number(n) => n.as_i64().map(|n| (n, n)),
        serde_json::Value::Array(a) if a.len() == 2 => Some((a[0].as_i64()?, a[1].as_i64()?)),
        serde_json::Value::Object(o) => match (o.get("height"), o.get("width")) {
            (Some(hh), Some(ww)) => Some((hh.as_i64()?, ww.as_i64()?)),
            _ => o
                .get("shortest_edge")
                .and_then(|s| s.as_i64())
                .map(|s| (s, s)),
        },
        _ => None,
    }?;
    (ok(size.0) && ok(size.1)).then_some(size)
}

/// A Hugging Face style `config.json` or `preprocessor_config.json` beside the model.
fn config_file(h: &mut Hints, path: &Path, file: &str) {
    let Some(json) = std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file() && m.len() <= 1 << 20)
        .and_then(|_| std::fs::read(path).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        return;
    };
    for key in ["crop_size", "size", "image_size", "imgsz", "input_size"] {
        if h.image.is_none()
            && let Some(size) = json.get(key).and_then(image_size)
        {
            h.image = Some(size);
            h.sources.push(format!("{file} {key} = {}", json[key]));
        }
    }
    for key in ["sampling_rate", "sample_rate"] {
        if let Some(r) = json.get(key).and_then(|v| v.as_i64())
            && (1000..=192_000).contains(&r)
            && h.sample_rate.is_none()
        {
            h.sample_rate = Some(r);
            h.sources.push(format!("{file} {key} = {r}"));
        }
    }
    for key in ["max_position_embeddings", "n_positions", "max_seq_length"] {
        if let Some(n) = json.get(key).and_then(|v| v.as_i64())
            && n >= 1
            && h.max_sequence.is_none()
        {
            h.max_sequence = Some(n);
            h.sources.push(format!("{file} {key} = {n}"));
        }
    }
}

/// PaddleOCR models (exported by paddle2onnx: `p2o.` dimension names or the PaddlePaddle
/// producer) take text-line crops 48 pixels high: 320 wide for the recogniser (its metadata
/// carries the `character` dictionary), 192 for the direction classifier; the detector wants
/// sides that are a multiple of 32.
fn paddle_ocr(
    h: &mut Hints,
    metadata: &[(String, String)],
    producer: Option<&str>,
    inputs: &[IoDescription],
    outputs: &[IoDescription],
) {
    let p2o = inputs
        .iter()
        .chain(outputs)
        .any(|d| d.dimension_names.iter().any(|n| n.starts_with("p2o.")));
    let paddle = p2o || producer.is_some_and(|p| p.eq_ignore_ascii_case("paddlepaddle"));
    let image_input = inputs.iter().any(|d| image_axes(d).is_some());
    if !paddle || !image_input || outputs.is_empty() {
        return;
    }
    let rank = outputs[0].shape.len();
    let characters = metadata.iter().any(|(k, _)| k == "character");
    let (size, what) = match rank {
        3 if characters => ((48, 320), "recogniser: rec_image_shape 3,48,320"),
        2 => ((48, 192), "direction classifier: cls_image_shape 3,48,192"),
        4 => {
            h.stride = Some(32);
            ((640, 640), "detector: sides a multiple of 32")
        }
        _ => return,
    };
    h.image = Some(size);
    h.sources.push(format!("PaddleOCR {what}"));
}

/// The stride an output's symbolic dimensions imply: Ultralytics exports name output sizes
/// like `floor(floor(height/2 - 1/2)/2) + 1`, one `/2` per halving.
fn stride_from_outputs(outputs: &[IoDescription]) -> Option<i64> {
    let halvings = outputs
        .iter()
        .flat_map(|d| d.dimension_names.iter())
        .filter(|n| n.contains("height") || n.contains("width"))
        .flat_map(|n| n.split('+'))
        .map(|term| term.matches("/2").count() - term.matches("1/2").count())
        .max()?;
    (1..=6).contains(&halvings).then(|| 1 << halvings)
}

/// The height and width axes of an image-like input: NCHW or NHWC with 1 or 3 channels, or
/// dimensions named height and width.
pub fn image_axes(d: &IoDescription) -> Option<(usize, usize)> {
    if !d.elem.is_some_and(ElemType::is_float) && d.elem != Some(ElemType::Uint8) {
        return None;
    }
    let names: Vec<String> = d
        .dimension_names
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    let find = |keys: &[&str]| {
        names
            .iter()
            .position(|n| keys.iter().any(|k| n == k || n.ends_with(&format!("_{k}"))))
    };
    if let (Some(hh), Some(ww)) = (find(&["height", "h"]), find(&["width", "w"])) {
        return Some((hh, ww));
    }
    let s = &d.shape;
    if s.len() == 4 && (s[1] == 1 || s[1] == 3) {
        return Some((2, 3));
    }
    if s.len() == 4 && (s[3] == 1 || s[3] == 3) && s[1] < 0 && s[2] < 0 {
        return Some((1, 2));
    }
    None
}

/// Whether a float input is a waveform: the model takes a sample rate, or the input's or a
/// dimension's name says audio.
fn is_waveform(d: &IoDescription, takes_sample_rate: bool) -> bool {
    let name = d.name.to_ascii_lowercase();
    d.elem.is_some_and(ElemType::is_float)
        && !inputs::is_state(&d.name)
        && (1..=2).contains(&d.shape.len())
        && (takes_sample_rate
            || ["audio", "wav", "speech", "pcm", "signal"]
                .iter()
                .any(|k| name.contains(k))
            || d.dimension_names.iter().any(|n| n.contains("sample"))
            || signal_2d(d))
}

/// A float `[batch, time]` input with a dynamic last axis: one 1-D signal per batch item (a
/// text model's token axis holds integer ids, a feature sequence has a third axis).
fn signal_2d(d: &IoDescription) -> bool {
    let names: Vec<String> = d
        .dimension_names
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    let timeish = |n: &str| {
        n.is_empty()
            || ["seq", "len", "time", "sample"]
                .iter()
                .any(|k| n.contains(k))
    };
    d.shape.len() == 2
        && d.shape[1] < 0
        && names.get(1).is_some_and(|n| timeish(n))
        && names
            .first()
            .is_some_and(|n| n.is_empty() || n.contains("batch"))
}

/// The role of each dimension of `d`; `None` for fixed ones.
pub fn roles(d: &IoDescription, takes_sample_rate: bool) -> Vec<Option<Role>> {
    let image = image_axes(d);
    let waveform = is_waveform(d, takes_sample_rate);
    let state = inputs::is_state(&d.name);
    let rank = d.shape.len();
    (0..rank)
        .map(|i| {
            if d.shape[i] >= 0 {
                return None;
            }
            let name = d
                .dimension_names
                .get(i)
                .map_or(String::new(), |n| n.to_ascii_lowercase());
            Some(match image {
                Some((hh, _)) if hh == i => Role::Height,
                Some((_, ww)) if ww == i => Role::Width,
                _ if name.contains("batch") || name == "n" || name == "b" || state => Role::Batch,
                _ if waveform && i == rank - 1 => Role::Samples,
                _ if ["seq", "length", "len", "token", "time", "frame", "step"]
                    .iter()
                    .any(|k| name.contains(k)) =>
                {
                    Role::Sequence
                }
                _ if i == 0 && rank >= 2 => Role::Batch,
                _ => Role::Other,
            })
        })
        .collect()
}

fn round_to(v: i64, stride: Option<i64>) -> i64 {
    match stride {
        Some(s) if s > 1 => (v + s - 1) / s * s,
        _ => v,
    }
}

/// The rungs before the fallback: the hints' sizes when there are any, then typical sizes.
fn profiles(h: &Hints) -> Vec<Profile> {
    let second = h.sample_rate.unwrap_or(16_000);
    let mut out = Vec::new();
    if h.image.is_some() || h.sequence.is_some() || h.sample_rate.is_some() {
        out.push(Profile {
            label: "metadata",
            why: h.sources.join("; "),
            image: h.image.unwrap_or((320, 320)),
            sequence: h.sequence.unwrap_or(16),
            samples: second,
        });
    }
    let rung = |label, why: &str, image, sequence, samples| Profile {
        label,
        why: why.to_string(),
        image,
        sequence,
        samples,
    };
    out.push(rung("typical", "typical sizes", (320, 320), 16, second));
    out.push(rung(
        "alternative",
        "ImageNet-sized images, 32 ms audio chunks as streaming voice-activity detectors take",
        (224, 224),
        64,
        512,
    ));
    out.push(rung("small", "small sizes", (64, 64), 8, second / 4));
    out
}

/// The values a profile gave, for the roles that occur: `images 320×320, batch 1`.
fn describe(p: &Profile, present: &[Role], h: &Hints, image: (i64, i64), seq: i64) -> String {
    let mut parts = Vec::new();
    if present.contains(&Role::Height) || present.contains(&Role::Width) {
        let stride = match h.stride {
            Some(s) if s > 1 => format!(" (multiples of the stride {s})"),
            _ => String::new(),
        };
        parts.push(format!("images {}×{}{stride}", image.0, image.1));
    }
    if present.contains(&Role::Sequence) {
        parts.push(format!("sequence {seq}"));
    }
    if present.contains(&Role::Samples) {
        let rate = h.sample_rate.unwrap_or(16_000);
        parts.push(format!(
            "{} audio samples ({} ms at {rate} Hz)",
            p.samples,
            p.samples * 1000 / rate
        ));
    }
    if present.contains(&Role::Batch) {
        parts.push("batch 1".into());
    }
    if present.contains(&Role::Other) {
        parts.push("1 for other unnamed dimensions".into());
    }
    format!("{}: {}", p.why, parts.join(", "))
}

/// The ladder of candidates for `inputs`: every rung distinct, at most [`MAX_CANDIDATES`],
/// the last one the degenerate fallback when it differs from the others.
pub fn ladder(
    inputs: &[IoDescription],
    h: &Hints,
    card_dims: &BTreeMap<String, i64>,
) -> Vec<Candidate> {
    let takes_sr = inputs.iter().any(inputs::is_sample_rate);
    let all_roles: Vec<Vec<Option<Role>>> = inputs.iter().map(|d| roles(d, takes_sr)).collect();
    let from_card = |d: &IoDescription, i: usize| {
        d.dimension_names
            .get(i)
            .filter(|n| !n.is_empty())
            .and_then(|n| card_dims.get(n))
            .copied()
    };
    let mut present: Vec<Role> = Vec::new();
    for (d, r) in inputs.iter().zip(&all_roles) {
        for (i, role) in r.iter().enumerate() {
            if let Some(role) = role
                && from_card(d, i).is_none()
                && !present.contains(role)
            {
                present.push(*role);
            }
        }
    }
    let mut out: Vec<Candidate> = Vec::new();
    for p in profiles(h) {
        let image = (round_to(p.image.0, h.stride), round_to(p.image.1, h.stride));
        let seq = p.sequence.min(h.max_sequence.unwrap_or(i64::MAX));
        let shapes = inputs.iter().zip(&all_roles).map(|(d, r)| {
            r.iter()
                .enumerate()
                .map(|(i, role)| match (role, from_card(d, i)) {
                    (None, _) => d.shape[i],
                    (_, Some(v)) => v,
                    (Some(Role::Height), _) => image.0,
                    (Some(Role::Width), _) => image.1,
                    (Some(Role::Sequence), _) => seq,
                    (Some(Role::Samples), _) => p.samples,
                    (Some(Role::Batch | Role::Other), _) => 1,
                })
                .collect()
        });
        let (label, why) = if !present.is_empty() {
            (p.label, describe(&p, &present, h, image, seq))
        } else if card_dims.is_empty() || inputs.iter().all(|d| d.shape.iter().all(|s| *s >= 0)) {
            (
                "declared",
                "every dimension is fixed by the model".to_string(),
            )
        } else {
            ("card", "the card's verification.dims".to_string())
        };
        push(&mut out, inputs, h, label, why, shapes.collect(), false);
        if out.len() >= MAX_CANDIDATES - 1 {
            break;
        }
    }
    let legacy: Vec<Vec<i64>> = inputs.iter().map(|d| resolve_shape(d, card_dims)).collect();
    let degenerate = inputs
        .iter()
        .zip(&all_roles)
        .zip(&legacy)
        .any(|((d, r), s)| {
            r.iter().enumerate().any(|(i, role)| {
                from_card(d, i).is_none()
                    && match role {
                        Some(Role::Height | Role::Width) => s[i] < 16,
                        Some(Role::Samples) => s[i] < 64,
                        _ => false,
                    }
            })
        });
    let why = "fallback: the card's dims, 8 for sequence-like names, 1 for every other dimension";
    push(
        &mut out,
        inputs,
        h,
        "fallback",
        why.into(),
        legacy,
        degenerate,
    );
    out
}

fn push(
    out: &mut Vec<Candidate>,
    inputs: &[IoDescription],
    h: &Hints,
    label: &'static str,
    why: String,
    shapes: Vec<Vec<i64>>,
    degenerate: bool,
) {
    let generated: Vec<GeneratedInput> = inputs
        .iter()
        .zip(shapes)
        .map(|(d, shape)| GeneratedInput {
            name: d.name.clone(),
            shape,
            fill: fill_for(d, h.sample_rate),
        })
        .collect();
    if out.iter().all(|c| c.inputs != generated) {
        out.push(Candidate {
            label,
            why,
            degenerate,
            inputs: generated,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(name: &str, elem: ElemType, shape: Vec<i64>, syms: Vec<&str>) -> IoDescription {
        IoDescription {
            name: name.into(),
            kind: "tensor".into(),
            elem: Some(elem),
            element_type: elem.name().into(),
            shape,
            dimension_names: syms.into_iter().map(String::from).collect(),
        }
    }

    fn shapes(c: &Candidate) -> Vec<Vec<i64>> {
        c.inputs.iter().map(|i| i.shape.clone()).collect()
    }

    #[test]
    fn ultralytics_metadata_sizes_the_image_and_the_fallback_is_degenerate() {
        let images = desc(
            "images",
            ElemType::Float32,
            vec![-1, 3, -1, -1],
            vec!["batch", "", "height", "width"],
        );
        let meta = vec![
            ("imgsz".to_string(), "[384, 640]".to_string()),
            ("stride".to_string(), "32".to_string()),
        ];
        let h = hints(&meta, None, std::slice::from_ref(&images), &[], None);
        assert_eq!(h.image, Some((384, 640)));
        let l = ladder(&[images], &h, &BTreeMap::new());
        assert_eq!(l[0].label, "metadata");
        assert_eq!(shapes(&l[0]), vec![vec![1, 3, 384, 640]]);
        assert!(l[0].why.contains("imgsz"), "{}", l[0].why);
        let last = l.last().unwrap();
        assert_eq!((last.label, last.degenerate), ("fallback", true));
        assert_eq!(shapes(last), vec![vec![1, 3, 1, 1]]);
        assert!(l.len() <= MAX_CANDIDATES);
    }

    #[test]
    fn a_sample_rate_input_makes_the_other_input_a_waveform() {
        let inputs = vec![
            desc("input", ElemType::Float32, vec![-1, -1], vec!["", ""]),
            desc(
                "state",
                ElemType::Float32,
                vec![2, -1, 128],
                vec!["", "", ""],
            ),
            desc("sr", ElemType::Int64, vec![], vec![]),
        ];
        let l = ladder(&inputs, &Hints::default(), &BTreeMap::new());
        assert_eq!(shapes(&l[0]), vec![vec![1, 16000], vec![2, 1, 128], vec![]]);
        assert_eq!(shapes(&l[1])[0], vec![1, 512]);
        assert_eq!(l[0].inputs[2].fill, crate::report::Fill::Constant(16000));
        assert_eq!(l[0].inputs[1].fill, crate::report::Fill::Zeros);
        assert!(l.last().unwrap().degenerate);
    }

    #[test]
    fn card_dims_win_and_fixed_models_get_one_candidate() {
        let ids = desc(
            "ids",
            ElemType::Int64,
            vec![-1, -1],
            vec!["batch", "sequence"],
        );
        let card = BTreeMap::from([("sequence".to_string(), 5)]);
        let l = ladder(std::slice::from_ref(&ids), &Hints::default(), &card);
        assert!(l.iter().all(|c| shapes(c)[0][1] == 5), "{l:?}");
        assert_eq!(shapes(&l[0]), vec![vec![1, 5]]);
        let fixed = desc("x", ElemType::Float32, vec![3, 2], vec!["", ""]);
        let l = ladder(&[fixed], &Hints::default(), &BTreeMap::new());
        assert_eq!(l.len(), 1);
        assert_eq!((l[0].label, l[0].degenerate), ("declared", false));
    }

    #[test]
    fn paddle_recognisers_take_48_pixel_lines_and_strides_come_from_output_names() {
        let x = desc(
            "x",
            ElemType::Float32,
            vec![-1, 3, -1, -1],
            vec!["p2o.DynamicDimension.0", "", "?", "p2o.DynamicDimension.1"],
        );
        let y = desc(
            "y",
            ElemType::Float32,
            vec![-1, -1, 6625],
            vec!["a", "b", ""],
        );
        let meta = vec![("character".to_string(), "a\nb".to_string())];
        let h = hints(&meta, Some(""), std::slice::from_ref(&x), &[y], None);
        assert_eq!(h.image, Some((48, 320)));
        let out = desc(
            "output0",
            ElemType::Float32,
            vec![-1, 22, -1],
            vec![
                "batch",
                "",
                "(floor(floor(height/2 - 1/2)/2) + 1)*(floor(floor(width/2 - 1/2)/2) + 1) + (floor(floor(floor(height/2 - 1/2)/2)/2) + 1)",
            ],
        );
        assert_eq!(stride_from_outputs(&[out]), Some(8));
    }

    #[test]
    fn config_json_beside_the_model_gives_sizes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("preprocessor_config.json"),
            r#"{"size": {"height": 384, "width": 384}, "sampling_rate": 22050}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"max_position_embeddings": 12}"#,
        )
        .unwrap();
        let h = hints(&[], None, &[], &[], Some(dir.path()));
        assert_eq!(h.image, Some((384, 384)));
        assert_eq!(h.sample_rate, Some(22050));
        let ids = desc(
            "input_ids",
            ElemType::Int64,
            vec![-1, -1],
            vec!["batch", "sequence"],
        );
        let l = ladder(&[ids], &h, &BTreeMap::new());
        assert!(l.iter().all(|c| shapes(c)[0][1] <= 12), "{l:?}");
    }
}
