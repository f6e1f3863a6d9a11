//! Output comparison the way `numpy.testing.assert_allclose` does it in the ONNX backend tests:
//! `|actual - expected| <= atol + rtol * |expected|`, NaN equal to NaN, infinities equal only
//! to themselves, element types and shapes equal first; strings compared exactly.

use crate::report::OutputComparison;
use crate::settings::VerifySettings;
use crate::tensor::{Data, Tensor, Value};

pub fn compare(
    name: &str,
    expected: &Value,
    actual: &Value,
    settings: &VerifySettings,
) -> OutputComparison {
    match (expected, actual) {
        (Value::Tensor(e), Value::Tensor(a)) => compare_tensors(name, e, a, settings),
        (Value::Sequence(e), Value::Sequence(a)) => {
            if e.len() != a.len() {
                let mut c = refused(name, e.first(), settings);
                c.reason = Some(format!(
                    "sequence of {} tensors, expected {}",
                    a.len(),
                    e.len()
                ));
                return c;
            }
            // The worst element decides; its figures are reported.
            let mut worst: Option<OutputComparison> = None;
            for (i, (e, a)) in e.iter().zip(a).enumerate() {
                let mut c = compare_tensors(&format!("{name}[{i}]"), e, a, settings);
                c.name = name.to_string();
                let replace = worst.as_ref().is_none_or(|w| {
                    (w.passed && !c.passed)
                        || (w.passed == c.passed && c.max_abs_error > w.max_abs_error)
                });
                if replace {
                    worst = Some(c);
                }
            }
            worst.unwrap_or_else(|| refused(name, None, settings).passing())
        }
        (_, Value::Opaque(kind)) | (Value::Opaque(kind), _) => {
            let mut c = refused(name, None, settings);
            c.reason = Some(format!("{kind} outputs cannot be compared"));
            c
        }
        _ => {
            let mut c = refused(name, None, settings);
            c.reason = Some("expected a tensor and got a sequence, or the reverse".into());
            c
        }
    }
}

fn refused(name: &str, like: Option<&Tensor>, settings: &VerifySettings) -> OutputComparison {
    let elem = like.map(|t| t.elem);
    let tol = elem.map(|e| settings.tolerance_for(e));
    OutputComparison {
        name: name.to_string(),
        passed: false,
        element_type: elem.map_or("sequence", |e| e.name()).to_string(),
        rtol: tol.map_or(0.0, |t| t.rtol),
        atol: tol.map_or(0.0, |t| t.atol),
        max_abs_error: f64::NAN,
        max_rel_error: f64::NAN,
        mismatched: 0,
        elements: 0,
        first_mismatch_index: None,
        expected_value: None,
        actual_value: None,
        reason: None,
    }
}

impl OutputComparison {
    fn passing(mut self) -> Self {
        self.passed = true;
        self.max_abs_error = 0.0;
        self.max_rel_error = 0.0;
        self
    }
}

fn unravel(mut flat: u64, shape: &[i64]) -> Vec<u64> {
    let mut index = vec![0u64; shape.len()];
    for (slot, d) in index.iter_mut().zip(shape).rev() {
        let d = (*d).max(1) as u64;
        *slot = flat % d;
        flat /= d;
    }
    index
}

pub fn compare_tensors(
    name: &str,
    e: &Tensor,
    a: &Tensor,
    settings: &VerifySettings,
) -> OutputComparison {
    let mut c = refused(name, Some(e), settings);
    if e.elem != a.elem {
        c.reason = Some(format!(
            "element type {} instead of {}",
            a.elem.name(),
            e.elem.name()
        ));
        return c;
    }
    if e.shape != a.shape {
        c.reason = Some(format!("shape {:?} instead of {:?}", a.shape, e.shape));
        return c;
    }
    let (rtol, atol) = (c.rtol, c.atol);
    let mut first = None;
    let (mut max_abs, mut max_rel, mut mismatched) = (0f64, 0f64, 0u64);
    match (&e.data, &a.data) {
        (Data::Strings(es), Data::Strings(as_)) => {
            c.elements = es.len() as u64;
            for (i, (x, y)) in es.iter().zip(as_).enumerate() {
                if x != y {
                    mismatched += 1;
                    first.get_or_insert((i, format!("{x:?}"), format!("{y:?}")));
                }
            }
            if mismatched > 0 {
                max_abs = f64::INFINITY;
                max_rel = f64::INFINITY;
            }
        }
        (Data::Raw(eb), Data::Raw(ab)) => {
            let n = e.len();
            c.elements = n as u64;
            for i in 0..n {
                let x = e.elem.value_at(eb, i);
                let y = a.elem.value_at(ab, i);
                let ok = if x.is_nan() || y.is_nan() {
                    x.is_nan() && y.is_nan()
                } else if x.is_infinite() || y.is_infinite() {
                    x == y
                } else {
                    let diff = (x - y).abs();
                    max_abs = max_abs.max(diff);
                    if x != 0.0 {
                        max_rel = max_rel.max(diff / x.abs());
                    } else if diff > 0.0 {
                        max_rel = f64::INFINITY;
                    }
                    diff <= atol + rtol * x.abs()
                };
                if !ok {
                    mismatched += 1;
                    first.get_or_insert((i, format!("{x}"), format!("{y}")));
                    if x.is_nan() != y.is_nan() || x.is_infinite() || y.is_infinite() {
                        max_abs = f64::INFINITY;
                        max_rel = f64::INFINITY;
                    }
                }
            }
        }
        _ => {
            c.reason = Some("strings compared with numbers".into());
            return c;
        }
    }
    c.max_abs_error = max_abs;
    c.max_rel_error = max_rel;
    c.mismatched = mismatched;
    c.passed = mismatched == 0;
    if let Some((i, x, y)) = first {
        c.first_mismatch_index = Some(unravel(i as u64, &e.shape));
        c.expected_value = Some(x);
        c.actual_value = Some(y);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::ElemType;

    fn f32s(shape: Vec<i64>, v: &[f32]) -> Tensor {
        Tensor {
            name: None,
            elem: ElemType::Float32,
            shape,
            data: Data::Raw(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        }
    }

    #[test]
    fn reports_errors_and_the_first_differing_index() {
        let s = VerifySettings::default();
        let e = f32s(vec![2, 2], &[1.0, 2.0, 3.0, f32::NAN]);
        let ok = compare_tensors(
            "y",
            &e,
            &f32s(vec![2, 2], &[1.0, 2.0005, 3.0, f32::NAN]),
            &s,
        );
        assert!(ok.passed, "{ok:?}");
        let bad = compare_tensors("y", &e, &f32s(vec![2, 2], &[1.0, 2.0, 3.5, f32::NAN]), &s);
        assert!(!bad.passed);
        assert_eq!(bad.first_mismatch_index, Some(vec![1, 0]));
        assert_eq!(bad.mismatched, 1);
        assert!((bad.max_abs_error - 0.5).abs() < 1e-9);
        assert!((bad.max_rel_error - 0.5 / 3.0).abs() < 1e-9);
        let nan = compare_tensors("y", &e, &f32s(vec![2, 2], &[1.0, 2.0, 3.0, 0.0]), &s);
        assert!(!nan.passed);
        let shape = compare_tensors("y", &e, &f32s(vec![4], &[1.0, 2.0, 3.0, f32::NAN]), &s);
        assert!(shape.reason.unwrap().contains("shape"));
    }
}
