//! JSON tensors (V2 `inputs`/`outputs`) to and from the raw little-endian layout components see.

use serde_json::{json, Value};
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

/// Nested or flat `data`, flattened in row-major order.
fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

/// The name, datatype and shape of a V2 JSON tensor.
fn header(v: &Value) -> Result<(String, Datatype, Vec<i64>), String> {
    let name = v["name"]
        .as_str()
        .ok_or("an input tensor has no `name`")?
        .to_string();
    let dt_name = v["datatype"]
        .as_str()
        .ok_or_else(|| format!("input `{name}` has no `datatype`"))?;
    let dt =
        datatype(dt_name).ok_or_else(|| format!("input `{name}`: unknown datatype `{dt_name}`"))?;
    let shape: Vec<i64> = v["shape"]
        .as_array()
        .ok_or_else(|| format!("input `{name}` has no `shape`"))?
        .iter()
        .map(|d| {
            d.as_i64().filter(|d| *d >= 0).ok_or_else(|| {
                format!("input `{name}`: shape entries must be non-negative integers")
            })
        })
        .collect::<Result<_, _>>()?;
    Ok((name, dt, shape))
}

/// A V2 JSON input tensor as the component sees it; errors name the tensor and what is wrong.
pub(crate) fn from_json(v: &Value) -> Result<Tensor, String> {
    let (name, dt, shape) = header(v)?;
    let dt_name = datatype_name(dt);
    let expected: i64 = shape.iter().product();
    let mut flat = Vec::new();
    flatten(
        v.get("data")
            .ok_or_else(|| format!("input `{name}` has no `data`"))?,
        &mut flat,
    );
    if flat.len() as i64 != expected {
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
    let bad =
        |i: usize, x: &Value| format!("input `{name}`: element {i} ({x}) is not a valid {dt_name}");
    let mut data = Vec::with_capacity(flat.len() * 4);
    for (i, x) in flat.iter().enumerate() {
        macro_rules! int {
            ($t:ty) => {{
                let n = x
                    .as_i64()
                    .map(|n| n as i128)
                    .or_else(|| x.as_u64().map(|n| n as i128))
                    .ok_or_else(|| bad(i, x))?;
                let n = <$t>::try_from(n).map_err(|_| bad(i, x))?;
                data.extend_from_slice(&n.to_le_bytes());
            }};
        }
        match dt {
            Datatype::Bool => data.push(u8::from(x.as_bool().ok_or_else(|| bad(i, x))?)),
            Datatype::Uint8 => int!(u8),
            Datatype::Uint16 => int!(u16),
            Datatype::Uint32 => int!(u32),
            Datatype::Uint64 => int!(u64),
            Datatype::Int8 => int!(i8),
            Datatype::Int16 => int!(i16),
            Datatype::Int32 => int!(i32),
            Datatype::Int64 => int!(i64),
            Datatype::Fp32 => {
                data.extend_from_slice(&(x.as_f64().ok_or_else(|| bad(i, x))? as f32).to_le_bytes())
            }
            Datatype::Fp64 => {
                data.extend_from_slice(&x.as_f64().ok_or_else(|| bad(i, x))?.to_le_bytes())
            }
            Datatype::Bytes => {
                let s = x.as_str().ok_or_else(|| bad(i, x))?.as_bytes();
                data.extend_from_slice(&(s.len() as u32).to_le_bytes());
                data.extend_from_slice(s);
            }
            Datatype::Fp16 | Datatype::Bf16 => unreachable!("refused above"),
        }
    }
    Ok(Tensor {
        name,
        datatype: dt,
        shape,
        data,
    })
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

/// Checks raw tensor bytes against shape and datatype (BYTES: length-prefixed elements).
pub(crate) fn check_raw(name: &str, dt: Datatype, shape: &[i64], raw: &[u8]) -> Result<(), String> {
    let count: i64 = shape.iter().product();
    let w = width(dt);
    if w > 0 {
        if raw.len() as i64 != count * w as i64 {
            return Err(format!(
                "`{name}`: shape {shape:?} of {} needs {} bytes, got {}",
                datatype_name(dt),
                count * w as i64,
                raw.len()
            ));
        }
        return Ok(());
    }
    let (mut rest, mut n) = (raw, 0i64);
    while !rest.is_empty() {
        let len = rest
            .get(..4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize)
            .ok_or_else(|| format!("`{name}`: truncated BYTES element"))?;
        rest = rest
            .get(4 + len..)
            .ok_or_else(|| format!("`{name}`: truncated BYTES element"))?;
        n += 1;
    }
    if n != count {
        return Err(format!(
            "`{name}`: shape {shape:?} needs {count} BYTES elements, got {n}"
        ));
    }
    Ok(())
}

/// An input sent with the binary tensor extension: its JSON header and its raw bytes.
pub(crate) fn from_binary(v: &Value, raw: &[u8]) -> Result<Tensor, String> {
    let (name, dt, shape) = header(v)?;
    check_raw(&format!("input {name}"), dt, &shape, raw)?;
    Ok(Tensor {
        name,
        datatype: dt,
        shape,
        data: raw.to_vec(),
    })
}

/// A component's output tensor as V2 JSON (flat `data`); errors when its bytes do not match
/// its shape and datatype (a model bug: 500).
pub(crate) fn to_json(t: &Tensor) -> Result<Value, String> {
    let count: i64 = t.shape.iter().product();
    let width = width(t.datatype) as i64;
    let mut data = Vec::new();
    if width > 0 {
        if t.data.len() as i64 != count * width {
            return Err(format!(
                "output `{}`: {} bytes for shape {:?} of {}",
                t.name,
                t.data.len(),
                t.shape,
                datatype_name(t.datatype)
            ));
        }
        for b in t.data.chunks_exact(width as usize) {
            data.push(match t.datatype {
                Datatype::Bool => json!(b[0] != 0),
                Datatype::Uint8 => json!(b[0]),
                Datatype::Int8 => json!(b[0] as i8),
                Datatype::Uint16 => json!(u16::from_le_bytes([b[0], b[1]])),
                Datatype::Int16 => json!(i16::from_le_bytes([b[0], b[1]])),
                Datatype::Uint32 => json!(u32::from_le_bytes(b.try_into().unwrap())),
                Datatype::Int32 => json!(i32::from_le_bytes(b.try_into().unwrap())),
                Datatype::Fp32 => json!(f32::from_le_bytes(b.try_into().unwrap())),
                Datatype::Uint64 => json!(u64::from_le_bytes(b.try_into().unwrap())),
                Datatype::Int64 => json!(i64::from_le_bytes(b.try_into().unwrap())),
                Datatype::Fp64 => json!(f64::from_le_bytes(b.try_into().unwrap())),
                Datatype::Fp16 | Datatype::Bf16 => {
                    return Err(format!(
                        "output `{}`: {} has no JSON form; ask for it with \"binary_data\": true (the binary tensor extension)",
                        t.name,
                        datatype_name(t.datatype)
                    ))
                }
                Datatype::Bytes => unreachable!(),
            });
        }
    } else {
        let mut rest = &t.data[..];
        while rest.len() >= 4 {
            let n = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
            let item = rest
                .get(4..4 + n)
                .ok_or_else(|| format!("output `{}`: truncated BYTES element", t.name))?;
            data.push(json!(String::from_utf8_lossy(item)));
            rest = &rest[4 + n..];
        }
        if data.len() as i64 != count || !rest.is_empty() {
            return Err(format!(
                "output `{}`: {} BYTES elements for shape {:?}",
                t.name,
                data.len(),
                t.shape
            ));
        }
    }
    Ok(
        json!({"name": t.name, "datatype": datatype_name(t.datatype), "shape": t.shape, "data": data}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let t = from_json(&json!({"name": "x", "datatype": dt, "shape": [2], "data": data}))
                .unwrap();
            let back = to_json(&t).unwrap();
            assert_eq!(back["data"], data, "{dt}");
            assert_eq!(back["datatype"], dt);
        }
    }

    #[test]
    fn nested_data_is_flattened_and_counts_are_checked() {
        let t = from_json(
            &json!({"name": "x", "datatype": "INT32", "shape": [2, 2], "data": [[1, 2], [3, 4]]}),
        )
        .unwrap();
        assert_eq!(to_json(&t).unwrap()["data"], json!([1, 2, 3, 4]));
        let e =
            from_json(&json!({"name": "x", "datatype": "INT32", "shape": [2, 3], "data": [1, 2]}))
                .unwrap_err();
        assert!(e.contains("needs 6 elements, `data` has 2"), "{e}");
        let e = from_json(&json!({"name": "x", "datatype": "UINT8", "shape": [1], "data": [256]}))
            .unwrap_err();
        assert!(e.contains("not a valid UINT8"), "{e}");
        let e = from_json(&json!({"name": "x", "datatype": "FP16", "shape": [1], "data": [1.0]}))
            .unwrap_err();
        assert!(e.contains("binary tensor extension"), "{e}");
    }
}
