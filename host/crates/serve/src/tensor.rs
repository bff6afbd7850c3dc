//! V2 tensors to and from the raw little-endian layout components see: JSON `inputs` decoded
//! with every count and value checked, outputs encoded to JSON as a stream (no JSON tree is
//! made of a model's data). Shape arithmetic is checked: a shape whose element count overflows
//! is an error naming it, never a wrapped count.

use crate::v2::RequestInput;
use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;
use weft_runtime::predictor::{Datatype, Tensor};

pub(crate) fn datatype(name: &str) -> Option<Datatype> {
    Some(match name {
        "BOOL" => Datatype::Bool,
        "UINT8" => Datatype::Uint8,
        "UINT16" => Datatype::Uint16,
        "UINT32" => Datatype::Uint32,
        "UINT64" => Datatype::Uint64,
        "INT8" => Datatype::Int8,
        "INT16" => Datatype::Int16,
        "INT32" => Datatype::Int32,
        "INT64" => Datatype::Int64,
        "FP16" => Datatype::Fp16,
        "BF16" => Datatype::Bf16,
        "FP32" => Datatype::Fp32,
        "FP64" => Datatype::Fp64,
        "BYTES" => Datatype::Bytes,
        _ => return None,
    })
}

pub(crate) fn datatype_name(d: Datatype) -> &'static str {
    match d {
        Datatype::Bool => "BOOL",
        Datatype::Uint8 => "UINT8",
        Datatype::Uint16 => "UINT16",
        Datatype::Uint32 => "UINT32",
        Datatype::Uint64 => "UINT64",
        Datatype::Int8 => "INT8",
        Datatype::Int16 => "INT16",
        Datatype::Int32 => "INT32",
        Datatype::Int64 => "INT64",
        Datatype::Fp16 => "FP16",
        Datatype::Bf16 => "BF16",
        Datatype::Fp32 => "FP32",
        Datatype::Fp64 => "FP64",
        Datatype::Bytes => "BYTES",
    }
}

/// Bytes per element of a fixed-width datatype (0 for BYTES).
pub(crate) fn width(dt: Datatype) -> usize {
    match dt {
        Datatype::Bool | Datatype::Uint8 | Datatype::Int8 => 1,
        Datatype::Uint16 | Datatype::Int16 | Datatype::Fp16 | Datatype::Bf16 => 2,
        Datatype::Uint32 | Datatype::Int32 | Datatype::Fp32 => 4,
        Datatype::Uint64 | Datatype::Int64 | Datatype::Fp64 => 8,
        Datatype::Bytes => 0,
    }
}

/// The elements a tensor of `shape` holds: every dimension non-negative, the product checked
/// (`[2^32, 2^32]` is refused, not wrapped to 0).
pub(crate) fn element_count(shape: &[i64]) -> Result<usize, String> {
    let dims: Vec<usize> = shape
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| format!("shape {shape:?}: dimension {d} is negative"))
        })
        .collect::<Result<_, _>>()?;
    if dims.contains(&0) {
        return Ok(0);
    }
    dims.iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?}: the element count overflows"))
}

/// Bytes a fixed-width tensor of `count` elements takes, checked.
fn byte_len(shape: &[i64], dt: Datatype, count: usize) -> Result<usize, String> {
    count.checked_mul(width(dt)).ok_or_else(|| {
        format!(
            "shape {shape:?} of {}: the byte count overflows",
            datatype_name(dt)
        )
    })
}

/// Nested or flat `data`, flattened in row-major order.
fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

/// The name, datatype and shape of a request's input tensor, checked.
fn header(v: &RequestInput) -> Result<(String, Datatype, Vec<i64>), String> {
    let name = v.name.clone();
    let dt = datatype(&v.datatype)
        .ok_or_else(|| format!("input `{name}`: unknown datatype `{}`", v.datatype))?;
    if let Some(d) = v.shape.iter().find(|d| **d < 0) {
        return Err(format!(
            "input `{name}`: shape entries must be non-negative integers, not {d}"
        ));
    }
    Ok((name, dt, v.shape.clone()))
}

/// One JSON element of an input as its little-endian bytes, appended to `data`.
fn push_element(data: &mut Vec<u8>, dt: Datatype, x: &Value) -> Result<(), &'static str> {
    macro_rules! int {
        ($t:ty) => {{
            let n = x
                .as_i64()
                .map(i128::from)
                .or_else(|| x.as_u64().map(i128::from))
                .ok_or("not a valid")?;
            let n = <$t>::try_from(n).map_err(|_| "not a valid")?;
            data.extend_from_slice(&n.to_le_bytes());
        }};
    }
    match dt {
        Datatype::Bool => data.push(u8::from(x.as_bool().ok_or("not a valid")?)),
        Datatype::Uint8 => int!(u8),
        Datatype::Uint16 => int!(u16),
        Datatype::Uint32 => int!(u32),
        Datatype::Uint64 => int!(u64),
        Datatype::Int8 => int!(i8),
        Datatype::Int16 => int!(i16),
        Datatype::Int32 => int!(i32),
        Datatype::Int64 => int!(i64),
        Datatype::Fp32 => {
            // JSON numbers are finite: an infinite f32 is one out of FP32's range.
            let f = x.as_f64().ok_or("not a valid")? as f32;
            if f.is_infinite() {
                return Err("out of range for");
            }
            data.extend_from_slice(&f.to_le_bytes());
        }
        Datatype::Fp64 => data.extend_from_slice(&x.as_f64().ok_or("not a valid")?.to_le_bytes()),
        Datatype::Bytes => {
            let s = x.as_str().ok_or("not a valid")?.as_bytes();
            let len = u32::try_from(s.len()).map_err(|_| "too long for")?;
            data.extend_from_slice(&len.to_le_bytes());
            data.extend_from_slice(s);
        }
        Datatype::Fp16 | Datatype::Bf16 => return Err("not a JSON"),
    }
    Ok(())
}

/// A V2 JSON input tensor as the component sees it; errors name the tensor and what is wrong.
pub(crate) fn from_json(v: &RequestInput) -> Result<Tensor, String> {
    let (name, dt, shape) = header(v)?;
    let dt_name = datatype_name(dt);
    let expected = element_count(&shape).map_err(|e| format!("input `{name}`: {e}"))?;
    let mut flat = Vec::new();
    flatten(
        v.data
            .as_ref()
            .ok_or_else(|| format!("input `{name}` has no `data`"))?,
        &mut flat,
    );
    if flat.len() != expected {
        return Err(format!(
            "input `{name}`: shape {shape:?} needs {expected} elements, `data` has {}",
            flat.len()
        ));
    }
    if matches!(dt, Datatype::Fp16 | Datatype::Bf16) {
        return Err(format!(
            "input `{name}`: {dt_name} tensors are sent with the binary tensor extension, not JSON"
        ));
    }
    let mut data = Vec::with_capacity(flat.len().saturating_mul(width(dt).max(1)));
    for (i, x) in flat.iter().enumerate() {
        push_element(&mut data, dt, x)
            .map_err(|why| format!("input `{name}`: element {i} ({x}) is {why} {dt_name}"))?;
    }
    Ok(Tensor {
        name,
        datatype: dt,
        shape,
        data,
    })
}

/// Checks raw tensor bytes against shape and datatype (BYTES: length-prefixed elements).
pub(crate) fn check_raw(name: &str, dt: Datatype, shape: &[i64], raw: &[u8]) -> Result<(), String> {
    let count = element_count(shape).map_err(|e| format!("`{name}`: {e}"))?;
    if width(dt) > 0 {
        let needed = byte_len(shape, dt, count).map_err(|e| format!("`{name}`: {e}"))?;
        if raw.len() != needed {
            return Err(format!(
                "`{name}`: shape {shape:?} of {} needs {needed} bytes, got {}",
                datatype_name(dt),
                raw.len()
            ));
        }
        return Ok(());
    }
    let n = bytes_elements(raw).count();
    if bytes_elements(raw).any(|e| e.is_none()) {
        return Err(format!("`{name}`: truncated BYTES element"));
    }
    if n != count {
        return Err(format!(
            "`{name}`: shape {shape:?} needs {count} BYTES elements, got {n}"
        ));
    }
    Ok(())
}

/// The elements of BYTES data (a 4-byte little-endian length, then that many bytes, each);
/// `None` for a truncated one, which ends the walk.
fn bytes_elements(mut rest: &[u8]) -> impl Iterator<Item = Option<&[u8]>> {
    let mut done = false;
    std::iter::from_fn(move || {
        if done || rest.is_empty() {
            return None;
        }
        let item = rest.get(..4).and_then(|len| {
            let len = u32::from_le_bytes(len.try_into().unwrap()) as usize;
            let item = rest.get(4..4usize.checked_add(len)?)?;
            rest = &rest[4 + len..];
            Some(item)
        });
        done = item.is_none();
        Some(item)
    })
}

/// An input sent with the binary tensor extension: its JSON header and its raw bytes.
pub(crate) fn from_binary(v: &RequestInput, raw: &[u8]) -> Result<Tensor, String> {
    let (name, dt, shape) = header(v)?;
    check_raw(&format!("input {name}"), dt, &shape, raw)?;
    Ok(Tensor {
        name,
        datatype: dt,
        shape,
        data: raw.to_vec(),
    })
}

/// Checks a component's output tensor before it is encoded: its bytes match its shape and
/// datatype (else a model bug, `Err(Bad)`), and as JSON it has a JSON form.
pub(crate) fn check_output(t: &Tensor, binary: bool) -> Result<(), OutputError> {
    if !binary && matches!(t.datatype, Datatype::Fp16 | Datatype::Bf16) {
        return Err(OutputError::NoJsonForm(format!(
            "output `{}`: {} has no JSON form; ask for it with \"binary_data\": true (the binary tensor extension)",
            t.name,
            datatype_name(t.datatype)
        )));
    }
    check_raw(&format!("output {}", t.name), t.datatype, &t.shape, &t.data)
        .map_err(OutputError::Bad)
}

/// Why an output tensor cannot be encoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OutputError {
    /// FP16/BF16 asked for as JSON: the client's to fix (400).
    #[error("{0}")]
    NoJsonForm(String),
    /// Bytes that do not match the shape: the model's bug (500).
    #[error("{0}")]
    Bad(String),
}

/// An output tensor as V2 JSON (flat `data`), serialised as a stream. Check it with
/// [`check_output`] first; serialising a bad one fails.
pub(crate) struct JsonTensor<'a>(pub &'a Tensor);

/// An output tensor's JSON header under the binary extension: its data follows the JSON part.
pub(crate) struct BinaryHeader<'a>(pub &'a Tensor);

impl Serialize for JsonTensor<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let mut map = s.serialize_map(Some(4))?;
        map.serialize_entry("name", &t.name)?;
        map.serialize_entry("datatype", datatype_name(t.datatype))?;
        map.serialize_entry("shape", &t.shape)?;
        map.serialize_entry("data", &JsonData(t))?;
        map.end()
    }
}

impl Serialize for BinaryHeader<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let mut map = s.serialize_map(Some(4))?;
        map.serialize_entry("name", &t.name)?;
        map.serialize_entry("datatype", datatype_name(t.datatype))?;
        map.serialize_entry("shape", &t.shape)?;
        let size = BinarySize {
            binary_data_size: t.data.len(),
        };
        map.serialize_entry("parameters", &size)?;
        map.end()
    }
}

#[derive(Serialize)]
struct BinarySize {
    binary_data_size: usize,
}

/// A tensor's elements as a flat JSON array.
struct JsonData<'a>(&'a Tensor);

impl Serialize for JsonData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let mut seq = s.serialize_seq(None)?;
        if t.datatype == Datatype::Bytes {
            for item in bytes_elements(&t.data) {
                let item = item.ok_or_else(|| S::Error::custom("truncated BYTES element"))?;
                seq.serialize_element(&String::from_utf8_lossy(item))?;
            }
            return seq.end();
        }
        let width = width(t.datatype);
        if !t.data.len().is_multiple_of(width) {
            return Err(S::Error::custom("data is not whole elements"));
        }
        for b in t.data.chunks_exact(width) {
            element(&mut seq, t.datatype, b)?;
        }
        seq.end()
    }
}

/// One fixed-width element, from its little-endian bytes (`b` is exactly its width).
fn element<S: SerializeSeq>(seq: &mut S, dt: Datatype, b: &[u8]) -> Result<(), S::Error> {
    macro_rules! le {
        ($t:ty) => {
            <$t>::from_le_bytes(b.try_into().unwrap())
        };
    }
    match dt {
        Datatype::Bool => seq.serialize_element(&(b[0] != 0)),
        Datatype::Uint8 => seq.serialize_element(&b[0]),
        Datatype::Int8 => seq.serialize_element(&le!(i8)),
        Datatype::Uint16 => seq.serialize_element(&le!(u16)),
        Datatype::Int16 => seq.serialize_element(&le!(i16)),
        Datatype::Uint32 => seq.serialize_element(&le!(u32)),
        Datatype::Int32 => seq.serialize_element(&le!(i32)),
        Datatype::Uint64 => seq.serialize_element(&le!(u64)),
        Datatype::Int64 => seq.serialize_element(&le!(i64)),
        // Widened, as JSON numbers are read back as f64: exact, and it reads back the same f32.
        Datatype::Fp32 => seq.serialize_element(&f64::from(le!(f32))),
        Datatype::Fp64 => seq.serialize_element(&le!(f64)),
        Datatype::Fp16 | Datatype::Bf16 | Datatype::Bytes => {
            Err(S::Error::custom("no JSON form for this datatype"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(v: Value) -> RequestInput {
        serde_json::from_value(v).unwrap()
    }
    use serde_json::json;

    fn to_json(t: &Tensor) -> Value {
        check_output(t, false).unwrap();
        serde_json::to_value(JsonTensor(t)).unwrap()
    }

    #[test]
    fn every_json_datatype_round_trips() {
        for (dt, data) in [
            ("BOOL", json!([true, false])),
            ("UINT8", json!([0, 255])),
            ("UINT16", json!([0, 65535])),
            ("UINT32", json!([0, 4294967295u64])),
            ("UINT64", json!([0, u64::MAX])),
            ("INT8", json!([-128, 127])),
            ("INT16", json!([-32768, 32767])),
            ("INT32", json!([-2147483648i64, 2147483647])),
            ("INT64", json!([i64::MIN, i64::MAX])),
            ("FP32", json!([1.5, -2.25])),
            ("FP64", json!([0.1, -1e300])),
            ("BYTES", json!(["hello", ""])),
        ] {
            let t = from_json(&input(
                json!({"name": "x", "datatype": dt, "shape": [2], "data": data}),
            ))
            .unwrap();
            let back = to_json(&t);
            assert_eq!(back["data"], data, "{dt}");
            assert_eq!(back["datatype"], dt);
        }
    }

    #[test]
    fn nested_data_is_flattened_and_counts_are_checked() {
        let t = from_json(&input(
            json!({"name": "x", "datatype": "INT32", "shape": [2, 2], "data": [[1, 2], [3, 4]]}),
        ))
        .unwrap();
        assert_eq!(to_json(&t)["data"], json!([1, 2, 3, 4]));
        let e = from_json(&input(
            json!({"name": "x", "datatype": "INT32", "shape": [2, 3], "data": [1, 2]}),
        ))
        .unwrap_err();
        assert!(e.contains("needs 6 elements, `data` has 2"), "{e}");
        let e = from_json(&input(
            json!({"name": "x", "datatype": "UINT8", "shape": [1], "data": [256]}),
        ))
        .unwrap_err();
        assert!(e.contains("not a valid UINT8"), "{e}");
        let e = from_json(&input(
            json!({"name": "x", "datatype": "FP16", "shape": [1], "data": [1.0]}),
        ))
        .unwrap_err();
        assert!(e.contains("binary tensor extension"), "{e}");
    }

    #[test]
    fn element_counts_that_overflow_are_refused_not_wrapped() {
        let e = element_count(&[1 << 32, 1 << 32]).unwrap_err();
        assert!(e.contains("overflows"), "{e}");
        assert!(element_count(&[i64::MAX, i64::MAX]).is_err());
        assert!(element_count(&[-1, 0]).unwrap_err().contains("negative"));
        assert_eq!(element_count(&[i64::MAX, i64::MAX, 0]), Ok(0));
        // Fits as elements, overflows as bytes.
        let e = check_raw("x", Datatype::Fp64, &[i64::MAX], &[]).unwrap_err();
        assert!(e.contains("overflows"), "{e}");
    }

    #[test]
    fn fp32_values_out_of_range_are_refused_not_made_infinite() {
        let e = from_json(&input(
            json!({"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0, 1e39]}),
        ))
        .unwrap_err();
        assert_eq!(e, "input `x`: element 1 (1e+39) is out of range for FP32");
        let max = f64::from(f32::MAX);
        let t = from_json(&input(
            json!({"name": "x", "datatype": "FP32", "shape": [2], "data": [max, -max]}),
        ))
        .unwrap();
        assert_eq!(to_json(&t)["data"], json!([max, -max]));
    }
}
