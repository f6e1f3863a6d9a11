//! Tensors as verification handles them: an element type, a shape and little-endian bytes (or
//! strings), decoded from ONNX `TensorProto` / `SequenceProto` files and safetensors.

use serde::Serialize;

use crate::proto::{Wire, WireError, WireResult, WireType};

/// The ONNX element types verification can feed and compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ElemType {
    Float32,
    Uint8,
    Int8,
    Uint16,
    Int16,
    Int32,
    Int64,
    String,
    Bool,
    Float16,
    Float64,
    Uint32,
    Uint64,
    Bfloat16,
}

impl ElemType {
    /// From `TensorProto.DataType`.
    pub fn from_onnx(code: u64) -> Option<Self> {
        Some(match code {
            1 => Self::Float32,
            2 => Self::Uint8,
            3 => Self::Int8,
            4 => Self::Uint16,
            5 => Self::Int16,
            6 => Self::Int32,
            7 => Self::Int64,
            8 => Self::String,
            9 => Self::Bool,
            10 => Self::Float16,
            11 => Self::Float64,
            12 => Self::Uint32,
            13 => Self::Uint64,
            16 => Self::Bfloat16,
            _ => return None,
        })
    }

    /// Bytes per element; strings have none.
    pub fn width(self) -> usize {
        match self {
            Self::Uint8 | Self::Int8 | Self::Bool => 1,
            Self::Uint16 | Self::Int16 | Self::Float16 | Self::Bfloat16 => 2,
            Self::Float32 | Self::Int32 | Self::Uint32 => 4,
            Self::Float64 | Self::Int64 | Self::Uint64 => 8,
            Self::String => 0,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(
            self,
            Self::Float32 | Self::Float16 | Self::Float64 | Self::Bfloat16
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Float32 => "float32",
            Self::Uint8 => "uint8",
            Self::Int8 => "int8",
            Self::Uint16 => "uint16",
            Self::Int16 => "int16",
            Self::Int32 => "int32",
            Self::Int64 => "int64",
            Self::String => "string",
            Self::Bool => "bool",
            Self::Float16 => "float16",
            Self::Float64 => "float64",
            Self::Uint32 => "uint32",
            Self::Uint64 => "uint64",
            Self::Bfloat16 => "bfloat16",
        }
    }

    /// Element `i` of little-endian `bytes` as f64 (exact for every integer type up to 2^53).
    pub fn value_at(self, bytes: &[u8], i: usize) -> f64 {
        let w = self.width();
        let b = &bytes[i * w..(i + 1) * w];
        match self {
            Self::Float32 => f32::from_le_bytes(b.try_into().unwrap()) as f64,
            Self::Float64 => f64::from_le_bytes(b.try_into().unwrap()),
            Self::Float16 => half::f16::from_le_bytes(b.try_into().unwrap()).to_f64(),
            Self::Bfloat16 => half::bf16::from_le_bytes(b.try_into().unwrap()).to_f64(),
            Self::Uint8 | Self::Bool => b[0] as f64,
            Self::Int8 => b[0] as i8 as f64,
            Self::Uint16 => u16::from_le_bytes(b.try_into().unwrap()) as f64,
            Self::Int16 => i16::from_le_bytes(b.try_into().unwrap()) as f64,
            Self::Int32 => i32::from_le_bytes(b.try_into().unwrap()) as f64,
            Self::Uint32 => u32::from_le_bytes(b.try_into().unwrap()) as f64,
            Self::Int64 => i64::from_le_bytes(b.try_into().unwrap()) as f64,
            Self::Uint64 => u64::from_le_bytes(b.try_into().unwrap()) as f64,
            Self::String => f64::NAN,
        }
    }
}

/// A tensor's elements.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// Little-endian bytes, `width()` per element.
    Raw(Vec<u8>),
    Strings(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: Option<String>,
    pub elem: ElemType,
    pub shape: Vec<i64>,
    pub data: Data,
}

/// What a model input or output holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Tensor(Tensor),
    Sequence(Vec<Tensor>),
    /// An output verification cannot compare (a map, a sequence of maps, an exotic element
    /// type), named by its type: the run still counts.
    Opaque(String),
}

impl Value {
    pub fn name(&self) -> Option<&str> {
        match self {
            Value::Tensor(t) => t.name.as_deref(),
            Value::Sequence(_) | Value::Opaque(_) => None,
        }
    }
}

impl Tensor {
    /// Elements the shape calls for; `None` when a dimension is negative or the product overflows.
    pub fn element_count(shape: &[i64]) -> Option<usize> {
        shape.iter().try_fold(1usize, |n, d| {
            usize::try_from(*d).ok().and_then(|d| n.checked_mul(d))
        })
    }

    pub fn len(&self) -> usize {
        match &self.data {
            Data::Raw(b) => b.len() / self.elem.width().max(1),
            Data::Strings(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks that the data holds exactly as many elements as the shape says.
    pub fn check(&self) -> Result<(), String> {
        let want = Tensor::element_count(&self.shape)
            .ok_or_else(|| format!("shape {:?} is not a valid tensor shape", self.shape))?;
        let have = match &self.data {
            Data::Raw(b) if b.len() % self.elem.width().max(1) != 0 => {
                return Err(format!(
                    "{} bytes is not a whole number of {} elements",
                    b.len(),
                    self.elem.name()
                ));
            }
            _ => self.len(),
        };
        if have != want {
            return Err(format!(
                "shape {:?} needs {want} elements but the data holds {have}",
                self.shape
            ));
        }
        Ok(())
    }
}

/// Largest tensor file read into memory (reference inputs and outputs).
pub const MAX_VECTOR_BYTES: u64 = 2 << 30;

/// Decodes a `TensorProto` or a `SequenceProto` of tensors from a whole `.pb` file.
pub fn decode_value(bytes: &[u8]) -> WireResult<Value> {
    // A TensorProto always has `data_type` (field 2, varint); a SequenceProto's field 2 is
    // `elem_type` (varint) too, so look at which payload fields are present.
    let mut w = Wire::new(bytes, bytes.len() as u64);
    let mut sequence_like = false;
    while let Some((field, wire)) = w.next_field()? {
        if field == 3 && matches!(wire, WireType::Len(_)) {
            // TensorProto field 3 is `segment` (rare); SequenceProto field 3 is `tensor_values`.
            sequence_like = true;
        }
        w.skip(wire)?;
    }
    if sequence_like {
        decode_sequence(bytes).map(Value::Sequence)
    } else {
        decode_tensor(bytes).map(Value::Tensor)
    }
}

fn decode_sequence(bytes: &[u8]) -> WireResult<Vec<Tensor>> {
    let mut w = Wire::new(bytes, bytes.len() as u64);
    let mut tensors = Vec::new();
    while let Some((field, wire)) = w.next_field()? {
        match (field, wire) {
            (3, WireType::Len(len)) => {
                let start = w.position() as usize;
                w.skip(wire)?;
                tensors.push(decode_tensor(&bytes[start..start + len as usize])?);
            }
            (4..=7, WireType::Len(_)) => {
                return Err(WireError::Malformed(
                    "sequences of sparse tensors, sequences, maps or optionals are not supported"
                        .into(),
                ));
            }
            _ => w.skip(wire)?,
        }
    }
    Ok(tensors)
}

/// Decodes one `TensorProto`.
pub fn decode_tensor(bytes: &[u8]) -> WireResult<Tensor> {
    let mut w = Wire::new(bytes, bytes.len() as u64);
    let mut dims = Vec::new();
    let mut data_type = 0;
    let mut name = None;
    let mut raw: Option<Vec<u8>> = None;
    let mut floats = Vec::new();
    let mut doubles = Vec::new();
    let mut int32s = Vec::new();
    let mut int64s = Vec::new();
    let mut uint64s = Vec::new();
    let mut strings = Vec::new();
    let cap = MAX_VECTOR_BYTES;
    while let Some((field, wire)) = w.next_field()? {
        match (field, wire) {
            (1, _) => w.varints(wire, &mut dims)?,
            (2, WireType::Varint) => data_type = w.varint()?,
            (4, _) => w.fixed_le(wire, 4, cap, &mut floats)?,
            (5, _) => w.varints(wire, &mut int32s)?,
            (6, WireType::Len(len)) => {
                let s = w.bytes(len, cap, "string element")?;
                strings.push(String::from_utf8_lossy(&s).into_owned());
            }
            (7, _) => w.varints(wire, &mut int64s)?,
            (8, WireType::Len(len)) => name = Some(w.string(len, 1 << 16, "tensor name")?),
            (9, WireType::Len(len)) => raw = Some(w.bytes(len, cap, "raw_data")?),
            (10, _) => w.fixed_le(wire, 8, cap, &mut doubles)?,
            (11, _) => w.varints(wire, &mut uint64s)?,
            (13, _) => return Err(external_vector()),
            (14, WireType::Varint) => {
                if w.varint()? == 1 {
                    return Err(external_vector());
                }
            }
            _ => w.skip(wire)?,
        }
    }
    let elem = ElemType::from_onnx(data_type).ok_or_else(|| {
        WireError::Malformed(format!("tensor element type {data_type} is not supported"))
    })?;
    let shape: Vec<i64> = dims.iter().map(|d| *d as i64).collect();
    let data = if elem == ElemType::String {
        Data::Strings(strings)
    } else if let Some(raw) = raw {
        Data::Raw(raw)
    } else {
        Data::Raw(typed_fields_to_le(
            elem, &floats, &doubles, &int32s, &int64s, &uint64s,
        ))
    };
    let tensor = Tensor {
        name,
        elem,
        shape,
        data,
    };
    tensor.check().map_err(WireError::Malformed)?;
    Ok(tensor)
}

fn external_vector() -> WireError {
    WireError::Malformed("test-vector tensors with external data are not supported".into())
}

/// The typed repeated fields of a TensorProto, as raw little-endian elements. `int32_data`
/// carries every type narrower than 32 bits (float16 and bfloat16 as their bit patterns).
fn typed_fields_to_le(
    elem: ElemType,
    floats: &[u8],
    doubles: &[u8],
    int32s: &[u64],
    int64s: &[u64],
    uint64s: &[u64],
) -> Vec<u8> {
    let mut out = Vec::new();
    match elem {
        ElemType::Float32 => out.extend_from_slice(floats),
        ElemType::Float64 => out.extend_from_slice(doubles),
        ElemType::Int64 => int64s
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        ElemType::Uint32 => uint64s
            .iter()
            .for_each(|v| out.extend_from_slice(&(*v as u32).to_le_bytes())),
        ElemType::Uint64 => uint64s
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        ElemType::Int32 => int32s
            .iter()
            .for_each(|v| out.extend_from_slice(&(*v as i32).to_le_bytes())),
        ElemType::Int16 | ElemType::Uint16 | ElemType::Float16 | ElemType::Bfloat16 => int32s
            .iter()
            .for_each(|v| out.extend_from_slice(&(*v as u16).to_le_bytes())),
        ElemType::Int8 | ElemType::Uint8 | ElemType::Bool => {
            int32s.iter().for_each(|v| out.push(*v as u8))
        }
        ElemType::String => {}
    }
    out
}

/// Encodes a tensor as a `TensorProto` (raw_data), for tests and for perturbing vectors.
pub fn encode_tensor(t: &Tensor) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn len_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
        varint(out, field << 3 | 2);
        varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
    let mut out = Vec::new();
    for d in &t.shape {
        varint(&mut out, 1 << 3);
        varint(&mut out, *d as u64);
    }
    let code = (1..=16)
        .find(|c| ElemType::from_onnx(*c) == Some(t.elem))
        .unwrap();
    varint(&mut out, 2 << 3);
    varint(&mut out, code);
    match &t.data {
        Data::Strings(strings) => strings
            .iter()
            .for_each(|s| len_field(&mut out, 6, s.as_bytes())),
        Data::Raw(raw) => len_field(&mut out, 9, raw),
    }
    if let Some(name) = &t.name {
        len_field(&mut out, 8, name.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_raw_tensors() {
        let t = Tensor {
            name: Some("x".into()),
            elem: ElemType::Float32,
            shape: vec![2, 2],
            data: Data::Raw(
                [1f32, 2.0, 3.0, 4.5]
                    .iter()
                    .flat_map(|f| f.to_le_bytes())
                    .collect(),
            ),
        };
        assert_eq!(decode_value(&encode_tensor(&t)).unwrap(), Value::Tensor(t));
    }

    #[test]
    fn a_shape_that_disagrees_with_the_data_is_refused() {
        let t = Tensor {
            name: None,
            elem: ElemType::Int64,
            shape: vec![3],
            data: Data::Raw(vec![0; 16]),
        };
        let err = decode_tensor(&encode_tensor(&t)).unwrap_err().to_string();
        assert!(
            err.contains("needs 3 elements but the data holds 2"),
            "{err}"
        );
    }

    #[test]
    fn narrow_types_come_from_int32_data() {
        // dims [2], data_type int8 (3), int32_data packed [-1, 5]
        let msg = [
            0x08, 0x02, 0x10, 0x03, 0x2a, 0x0b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0x01, 0x05,
        ];
        let t = decode_tensor(&msg).unwrap();
        assert_eq!(t.data, Data::Raw(vec![0xff, 5]));
        assert_eq!(t.elem.value_at(&[0xff, 5], 0), -1.0);
    }
}
