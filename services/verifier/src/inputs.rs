//! Deterministic inputs for a smoke run, made from the declared types and a shape that
//! [`crate::shapes`] chose.
//!
//! The same seed always gives the same bytes on every machine (SplitMix64, no library whose
//! stream might change). Integer inputs that look like token ids, positions or masks get values
//! a model accepts: small non-negative ids, `0..n` positions, all-ones masks; recurrent state
//! starts at zero and a sample-rate input gets the model's rate. [`resolve_shape`] is the
//! last, degenerate rung of the ladder: the card's `dims`, else 1, except names that read as a
//! sequence length (8).

use std::collections::BTreeMap;

use crate::report::{Fill, IoDescription};
use crate::tensor::{Data, ElemType, Tensor, Value};

/// Largest generated input, so that a declared shape of 10^9 elements fails clearly.
pub const MAX_INPUT_ELEMENTS: usize = 64 << 20;

pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The concrete shape for a declared one: symbolic or unknown dimensions resolved.
pub fn resolve_shape(desc: &IoDescription, dims: &BTreeMap<String, i64>) -> Vec<i64> {
    desc.shape
        .iter()
        .zip(desc.dimension_names.iter())
        .map(|(d, sym)| {
            if *d >= 0 {
                return *d;
            }
            if let Some(v) = (!sym.is_empty()).then(|| dims.get(sym)).flatten() {
                return *v;
            }
            let lower = sym.to_ascii_lowercase();
            if ["seq", "sequence", "length", "len", "tokens", "time"]
                .iter()
                .any(|k| lower.contains(k))
            {
                8
            } else {
                1
            }
        })
        .collect()
}

/// Generates one input with the legacy shape rule ([`resolve_shape`]) and its usual fill.
/// `index` salts the seed so that inputs differ from each other.
pub fn generate(
    desc: &IoDescription,
    dims: &BTreeMap<String, i64>,
    seed: u64,
    index: usize,
) -> Result<Value, String> {
    generate_with(
        desc,
        &resolve_shape(desc, dims),
        fill_for(desc, None),
        seed,
        index,
    )
}

/// Whether an input carries recurrent state or a cache (`state`, `h0`, `past_key_values.0`).
pub fn is_state(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ["h", "c", "h0", "c0", "hx", "cx", "hidden"].contains(&lower.as_str())
        || ["state", "cache", "past", "hidden_in"]
            .iter()
            .any(|k| lower.contains(k))
}

/// Whether an integer input is a sample rate (Silero's `sr`).
pub fn is_sample_rate(desc: &IoDescription) -> bool {
    let lower = desc.name.to_ascii_lowercase();
    desc.shape.len() <= 1
        && (lower == "sr" || lower.contains("sample_rate") || lower.contains("sampling_rate"))
}

/// How an input's values are made, from its element type and name: token ids small and
/// non-negative, masks all ones, positions `0..n`, recurrent state zeros, byte values and
/// 8-bit pixels `0..256`, a sample rate constant (`sample_rate`, else 16 kHz), anything else uniform.
pub fn fill_for(desc: &IoDescription, sample_rate: Option<i64>) -> Fill {
    let name = desc.name.to_ascii_lowercase();
    match desc.elem {
        Some(ElemType::String) => Fill::Strings,
        Some(ElemType::Bool) => Fill::Bits,
        Some(e) if e.is_float() => {
            if is_state(&name) {
                Fill::Zeros
            } else {
                Fill::Uniform
            }
        }
        _ if is_sample_rate(desc) => Fill::Constant(sample_rate.unwrap_or(16_000)),
        _ if name.contains("mask") => Fill::Ones,
        _ if name.contains("position") || name.contains("pos_id") => Fill::Positions,
        _ if name.contains("type") => Fill::Zeros,
        _ if name.contains("byte") || desc.elem == Some(ElemType::Uint8) => Fill::Ids(256),
        _ => Fill::Ids(16),
    }
}

/// Generates one input of `shape` filled as `fill` says. `index` salts the seed so that
/// inputs differ from each other; the same arguments always give the same bytes.
pub fn generate_with(
    desc: &IoDescription,
    shape: &[i64],
    fill: Fill,
    seed: u64,
    index: usize,
) -> Result<Value, String> {
    let Some(elem) = desc.elem else {
        return Err(format!(
            "input `{}` is a {}; smoke runs feed tensors only (ship test vectors for this model)",
            desc.name, desc.kind
        ));
    };
    let n = Tensor::element_count(shape)
        .filter(|n| *n <= MAX_INPUT_ELEMENTS)
        .ok_or_else(|| {
            format!(
                "input `{}` of shape {shape:?} is larger than {MAX_INPUT_ELEMENTS} elements; set smaller `dims` in the card",
                desc.name
            )
        })?;
    let mut rng = SplitMix64::new(seed ^ (index as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
    let last = shape.last().copied().unwrap_or(1).max(1);
    let mut value = |i: usize| -> f64 {
        match fill {
            Fill::Uniform | Fill::Strings => rng.next_f64(),
            Fill::Zeros => 0.0,
            Fill::Ones => 1.0,
            Fill::Positions => (i as i64 % last) as f64,
            Fill::Ids(max) => (rng.next_u64() % max.max(1) as u64) as f64,
            Fill::Constant(v) => v as f64,
            Fill::Bits => (rng.next_u64() & 1) as f64,
        }
    };
    let data = match elem {
        ElemType::String => Data::Strings((0..n).map(|i| format!("kaiyuan sample {i}")).collect()),
        ElemType::Bool => Data::Raw((0..n).map(|i| (value(i) != 0.0) as u8).collect()),
        e if e.is_float() => {
            let mut out = Vec::with_capacity(n * e.width());
            for i in 0..n {
                let v = value(i);
                match e {
                    ElemType::Float32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
                    ElemType::Float64 => out.extend_from_slice(&v.to_le_bytes()),
                    ElemType::Float16 => {
                        out.extend_from_slice(&half::f16::from_f64(v).to_le_bytes())
                    }
                    _ => out.extend_from_slice(&half::bf16::from_f64(v).to_le_bytes()),
                }
            }
            Data::Raw(out)
        }
        e => {
            let mut out = Vec::with_capacity(n * e.width());
            for i in 0..n {
                let bytes = (value(i) as i64).to_le_bytes();
                out.extend_from_slice(&bytes[..e.width()]);
            }
            Data::Raw(out)
        }
    };
    Ok(Value::Tensor(Tensor {
        name: Some(desc.name.clone()),
        elem,
        shape: shape.to_vec(),
        data,
    }))
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

    #[test]
    fn same_seed_same_bytes_and_sensible_integers() {
        let d = desc(
            "input_ids",
            ElemType::Int64,
            vec![-1, -1],
            vec!["batch", "sequence"],
        );
        let a = generate(&d, &BTreeMap::new(), 1, 0).unwrap();
        assert_eq!(a, generate(&d, &BTreeMap::new(), 1, 0).unwrap());
        assert_ne!(a, generate(&d, &BTreeMap::new(), 2, 0).unwrap());
        let Value::Tensor(t) = a else { panic!() };
        assert_eq!(t.shape, vec![1, 8]);
        let Data::Raw(raw) = &t.data else { panic!() };
        assert!((0..8).all(|i| (0.0..16.0).contains(&ElemType::Int64.value_at(raw, i))));
        let m = desc("attention_mask", ElemType::Int64, vec![2, 3], vec!["", ""]);
        let Value::Tensor(t) = generate(&m, &BTreeMap::new(), 1, 1).unwrap() else {
            panic!()
        };
        let Data::Raw(raw) = &t.data else { panic!() };
        assert!((0..6).all(|i| ElemType::Int64.value_at(raw, i) == 1.0));
    }

    #[test]
    fn card_dims_win_and_huge_shapes_are_refused() {
        let d = desc("x", ElemType::Float32, vec![-1, 3], vec!["batch", ""]);
        let dims = BTreeMap::from([("batch".to_string(), 4)]);
        let Value::Tensor(t) = generate(&d, &dims, 1, 0).unwrap() else {
            panic!()
        };
        assert_eq!(t.shape, vec![4, 3]);
        let big = desc("x", ElemType::Float32, vec![1 << 20, 1 << 20], vec!["", ""]);
        assert!(generate(&big, &dims, 1, 0).unwrap_err().contains("dims"));
    }
}
