//! Deterministic inputs for a smoke run, made from the declared types and shapes.
//!
//! The same seed always gives the same bytes on every machine (SplitMix64, no library whose
//! stream might change). Symbolic dimensions take the card's `dims`, else 1, except names that
//! read as a sequence length (8). Integer inputs that look like token ids, positions or masks
//! get values a model accepts: small non-negative ids, `0..n` positions, all-ones masks.

use std::collections::BTreeMap;

use crate::report::IoDescription;
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

/// Generates one input. `index` salts the seed so that inputs differ from each other.
pub fn generate(
    desc: &IoDescription,
    dims: &BTreeMap<String, i64>,
    seed: u64,
    index: usize,
) -> Result<Value, String> {
    let Some(elem) = desc.elem else {
        return Err(format!(
            "input `{}` is a {}; smoke runs feed tensors only (ship test vectors for this model)",
            desc.name, desc.kind
        ));
    };
    let shape = resolve_shape(desc, dims);
    let n = Tensor::element_count(&shape)
        .filter(|n| *n <= MAX_INPUT_ELEMENTS)
        .ok_or_else(|| {
            format!(
                "input `{}` of shape {shape:?} is larger than {MAX_INPUT_ELEMENTS} elements; set smaller `dims` in the card",
                desc.name
            )
        })?;
    let mut rng = SplitMix64::new(seed ^ (index as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
    let name = desc.name.to_ascii_lowercase();
    let data = match elem {
        ElemType::String => Data::Strings((0..n).map(|i| format!("kaiyuan sample {i}")).collect()),
        ElemType::Bool => Data::Raw((0..n).map(|_| (rng.next_u64() & 1) as u8).collect()),
        e if e.is_float() => {
            let mut out = Vec::with_capacity(n * e.width());
            for _ in 0..n {
                let v = rng.next_f64() as f32;
                match e {
                    ElemType::Float32 => out.extend_from_slice(&v.to_le_bytes()),
                    ElemType::Float64 => out.extend_from_slice(&(v as f64).to_le_bytes()),
                    ElemType::Float16 => {
                        out.extend_from_slice(&half::f16::from_f32(v).to_le_bytes())
                    }
                    _ => out.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes()),
                }
            }
            Data::Raw(out)
        }
        e => {
            let last = *shape.last().unwrap_or(&1);
            let values: Vec<i64> = (0..n)
                .map(|i| {
                    if name.contains("mask") {
                        1
                    } else if name.contains("position") || name.contains("pos_id") {
                        i as i64 % last.max(1)
                    } else if name.contains("type") {
                        0
                    } else {
                        // ids and indices: small and non-negative, valid for any table of 16+
                        (rng.next_u64() % 16) as i64
                    }
                })
                .collect();
            let mut out = Vec::with_capacity(n * e.width());
            for v in values {
                let bytes = v.to_le_bytes();
                out.extend_from_slice(&bytes[..e.width()]);
            }
            Data::Raw(out)
        }
    };
    Ok(Value::Tensor(Tensor {
        name: Some(desc.name.clone()),
        elem,
        shape,
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
