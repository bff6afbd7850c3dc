//! The V2 (Open Inference Protocol) wire format of an inference: a request body (JSON, or
//! with the binary extension JSON then the tensors' raw bytes) decoded into what a model takes,
//! and a model's answer encoded into a response body of at most the output limit, counting
//! everything in it: tensors, names, shapes, `parameters`, the echoed `id`.

use crate::tensor::{self, BinaryHeader, JsonTensor, OutputError};
use serde::Serialize;
use serde_json::Value;
use std::io::Write;
use weft_runtime::predictor::{InferRequest, InferResponse, Tensor};

/// The binary tensor extension's header: the length of the JSON part of the body.
pub(crate) const HEADER_LENGTH: &str = "inference-header-content-length";

/// A decoded request: what the model gets and how its answer is to be encoded.
pub(crate) struct Decoded {
    pub request: InferRequest,
    /// `parameters.binary_data_output`: every output as binary.
    pub all_binary: bool,
    /// Outputs asked for with `"binary_data": true`.
    pub binary: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    /// Not a valid V2 request (400).
    #[error("{0}")]
    Invalid(String),
    /// A protocol extension this server does not implement (501).
    #[error("{0}")]
    Unsupported(String),
}

pub(crate) const SHARED_MEMORY_UNSUPPORTED: &str =
    "the shared-memory extension is not supported: send tensors in the body (JSON or binary)";

fn invalid(msg: impl Into<String>) -> DecodeError {
    DecodeError::Invalid(msg.into())
}

/// Decodes a request body; `header_length` is the binary extension's header, if sent.
pub(crate) fn decode(header_length: Option<&[u8]>, body: &[u8]) -> Result<Decoded, DecodeError> {
    let (json_part, blob) = match header_length {
        None => (body, &[][..]),
        Some(v) => {
            let n = std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|n| *n <= body.len())
                .ok_or_else(|| {
                    invalid(format!(
                        "{HEADER_LENGTH} must be a length within the body ({} bytes)",
                        body.len()
                    ))
                })?;
            body.split_at(n)
        }
    };
    let req: Value = serde_json::from_slice(json_part)
        .map_err(|e| invalid(format!("malformed JSON body: {e}")))?;
    unsupported_extensions(&req)?;
    let inputs = inputs(&req, blob)?;
    let outputs: Vec<String> = match req.get("outputs") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|o| {
                o["name"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid("each requested output needs a `name`"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("`outputs` must be a list")),
    };
    let binary = req["outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["parameters"]["binary_data"].as_bool() == Some(true))
        .filter_map(|o| o["name"].as_str().map(str::to_string))
        .collect();
    let parameters = match req.get("parameters") {
        None | Some(Value::Null) => "{}".to_string(),
        Some(p @ Value::Object(_)) => p.to_string(),
        Some(_) => return Err(invalid("`parameters` must be an object")),
    };
    let all_binary = req["parameters"]["binary_data_output"] == Value::Bool(true);
    let id = req.get("id").and_then(Value::as_str).map(str::to_string);
    Ok(Decoded {
        request: InferRequest {
            id,
            inputs,
            outputs,
            parameters,
        },
        all_binary,
        binary,
    })
}

/// The input tensors: JSON ones, and binary ones taken in order from `blob`, all of which
/// they must claim.
fn inputs(req: &Value, mut blob: &[u8]) -> Result<Vec<Tensor>, DecodeError> {
    let specs = req["inputs"]
        .as_array()
        .ok_or_else(|| invalid("the request has no `inputs` list"))?;
    let mut inputs = Vec::with_capacity(specs.len());
    for spec in specs {
        let tensor = match &spec["parameters"]["binary_data_size"] {
            Value::Null => tensor::from_json(spec),
            size => {
                let size = size
                    .as_u64()
                    .and_then(|s| usize::try_from(s).ok())
                    .ok_or_else(|| {
                        invalid(format!(
                            "input {}: binary_data_size {size} is not a whole number of bytes",
                            spec["name"]
                        ))
                    })?;
                if size > blob.len() {
                    return Err(invalid(format!(
                        "input {}: binary_data_size {size} runs past the body ({} bytes of binary data left)",
                        spec["name"],
                        blob.len()
                    )));
                }
                let (raw, rest) = blob.split_at(size);
                blob = rest;
                tensor::from_binary(spec, raw)
            }
        };
        inputs.push(tensor.map_err(DecodeError::Invalid)?);
    }
    if !blob.is_empty() {
        return Err(invalid(format!(
            "{} bytes of binary data follow the inputs unclaimed",
            blob.len()
        )));
    }
    Ok(inputs)
}

/// 501 for a request that asks for a protocol extension this server does not implement,
/// rather than ignoring the parameter and answering something else than was asked.
fn unsupported_extensions(req: &Value) -> Result<(), DecodeError> {
    let tensors = ["inputs", "outputs"]
        .iter()
        .flat_map(|list| req[*list].as_array().into_iter().flatten());
    for t in tensors {
        let parameters = &t["parameters"];
        if parameters.get("shared_memory_region").is_some() {
            return Err(DecodeError::Unsupported(format!(
                "tensor {}: {SHARED_MEMORY_UNSUPPORTED}",
                t["name"]
            )));
        }
        if parameters.get("classification").is_some() {
            return Err(DecodeError::Unsupported(format!(
                "output {}: the classification extension is not supported",
                t["name"]
            )));
        }
    }
    Ok(())
}

/// A response body; `json_length` is set when binary tensor data follow the JSON part.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub body: Vec<u8>,
    pub json_length: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum EncodeError {
    /// An output asked for that the model did not answer (400).
    #[error("model `{model}` has no output `{output}`")]
    NoSuchOutput { model: String, output: String },
    /// An output with no JSON form asked for as JSON (400).
    #[error("{0}")]
    NoJsonForm(String),
    /// The model answered a tensor whose bytes do not match its shape (500).
    #[error("model returned a bad tensor: {0}")]
    BadTensor(String),
    /// The response would be larger than the output limit (500).
    #[error("output limit exceeded: the response is over the limit of {limit} bytes (its tensors, names, shapes and parameters together; raise --max-output)")]
    TooLarge { limit: u64 },
}

/// What a response is made of.
pub(crate) struct Answer<'a> {
    pub model: &'a str,
    pub version: &'a str,
    pub decoded: &'a Decoded,
    pub response: &'a InferResponse,
}

#[derive(Serialize)]
struct Body<'a> {
    model_name: &'a str,
    model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Value>,
    outputs: Vec<Output<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Output<'a> {
    Json(JsonTensor<'a>),
    Binary(BinaryHeader<'a>),
}

/// Encodes `answer` into at most `limit` bytes; encoding stops as soon as it would pass it.
pub(crate) fn encode(answer: &Answer, limit: u64) -> Result<Encoded, EncodeError> {
    let Answer {
        model,
        version,
        decoded,
        response,
    } = answer;
    for o in &decoded.request.outputs {
        if !response.outputs.iter().any(|t| &t.name == o) {
            return Err(EncodeError::NoSuchOutput {
                model: model.to_string(),
                output: o.clone(),
            });
        }
    }
    let too_large = || EncodeError::TooLarge { limit };
    let max = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut outputs = Vec::with_capacity(response.outputs.len());
    let mut blob_len = 0usize;
    for t in &response.outputs {
        let binary = decoded.all_binary || decoded.binary.contains(&t.name);
        tensor::check_output(t, binary).map_err(|e| match e {
            OutputError::NoJsonForm(m) => EncodeError::NoJsonForm(m),
            OutputError::Bad(m) => EncodeError::BadTensor(m),
        })?;
        outputs.push(if binary {
            blob_len = blob_len.checked_add(t.data.len()).ok_or_else(too_large)?;
            Output::Binary(BinaryHeader(t))
        } else {
            Output::Json(JsonTensor(t))
        });
    }
    if blob_len > max || response.parameters.len() > max {
        return Err(too_large());
    }
    let parameters = serde_json::from_str::<Value>(&response.parameters)
        .ok()
        .filter(|p| p.as_object().is_some_and(|o| !o.is_empty()));
    let body = Body {
        model_name: model,
        model_version: version,
        id: decoded.request.id.as_deref(),
        parameters,
        outputs,
    };
    let mut out = Bounded {
        buf: Vec::new(),
        max,
    };
    serde_json::to_writer(&mut out, &body).map_err(|e| {
        if e.is_io() {
            too_large()
        } else {
            EncodeError::BadTensor(e.to_string())
        }
    })?;
    let mut body = out.buf;
    if blob_len == 0 && !decoded.all_binary && decoded.binary.is_empty() {
        return Ok(Encoded {
            body,
            json_length: None,
        });
    }
    let json_length = body.len();
    if json_length.checked_add(blob_len).is_none_or(|n| n > max) {
        return Err(too_large());
    }
    body.reserve_exact(blob_len);
    for t in &response.outputs {
        if decoded.all_binary || decoded.binary.contains(&t.name) {
            body.extend_from_slice(&t.data);
        }
    }
    Ok(Encoded {
        body,
        json_length: Some(json_length),
    })
}

/// A buffer that refuses to grow past `max` bytes.
struct Bounded {
    buf: Vec<u8>,
    max: usize,
}

impl Write for Bounded {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if data.len() > self.max - self.buf.len() {
            return Err(std::io::Error::other("over the output limit"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[path = "v2_tests.rs"]
mod tests;
