//! The V2 (Open Inference Protocol) wire format of an inference: a request body (JSON, or
//! with the binary extension JSON then the tensors' raw bytes) decoded into what a model takes,
//! and a model's answer encoded into a response body of at most the output limit, counting
//! everything in it: tensors, names, shapes, `parameters`, the echoed `id`.

use crate::tensor::{self, BinaryHeader, JsonTensor, OutputError};
use serde::{Deserialize, Serialize};
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

/// The JSON part of a V2 inference request, as the protocol defines it. Fields the protocol
/// leaves open (`parameters`) stay JSON; a tensor's `data` stays JSON until its datatype says
/// how to read it.
#[derive(Deserialize)]
struct RequestBody {
    /// A string in the protocol; any other JSON is not echoed.
    #[serde(default)]
    id: Option<Value>,
    inputs: Vec<RequestInput>,
    #[serde(default)]
    outputs: Option<Vec<RequestOutput>>,
    #[serde(default)]
    parameters: Option<serde_json::Map<String, Value>>,
}

/// One input tensor of a request.
#[derive(Deserialize)]
pub(crate) struct RequestInput {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
    /// Absent when the tensor's bytes follow the JSON (binary extension).
    #[serde(default)]
    pub data: Option<Value>,
    #[serde(default)]
    pub parameters: TensorParameters,
}

/// An output asked for.
#[derive(Deserialize)]
struct RequestOutput {
    name: String,
    #[serde(default)]
    parameters: TensorParameters,
}

/// The tensor parameters this server acts on (others are accepted and ignored).
#[derive(Deserialize, Default)]
pub(crate) struct TensorParameters {
    /// Binary extension: the byte length of this input's data after the JSON.
    #[serde(default)]
    binary_data_size: Option<u64>,
    /// Binary extension: answer this output as bytes.
    #[serde(default)]
    binary_data: Option<bool>,
    /// Shared-memory extension: not implemented, so refused (501).
    #[serde(default)]
    shared_memory_region: Option<Value>,
    /// Classification extension: not implemented, so refused (501).
    #[serde(default)]
    classification: Option<Value>,
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
    // Malformed JSON, and JSON that is not a request, each named with where it went wrong.
    serde_json::from_slice::<serde::de::IgnoredAny>(json_part)
        .map_err(|e| invalid(format!("malformed JSON body: {e}")))?;
    let mut de = serde_json::Deserializer::from_slice(json_part);
    let req: RequestBody = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        invalid(match at.as_str() {
            "." => format!("not an inference request: {}", e.inner()),
            _ => format!("not an inference request: `{at}`: {}", e.inner()),
        })
    })?;
    unsupported_extensions(&req)?;
    let inputs = inputs(&req.inputs, blob)?;
    let outputs = req.outputs.as_deref().unwrap_or_default();
    let binary = outputs
        .iter()
        .filter(|o| o.parameters.binary_data == Some(true))
        .map(|o| o.name.clone())
        .collect();
    let all_binary = req
        .parameters
        .as_ref()
        .and_then(|p| p.get("binary_data_output"))
        == Some(&Value::Bool(true));
    let parameters = req.parameters.as_ref().map_or_else(
        || "{}".to_string(),
        |p| Value::Object(p.clone()).to_string(),
    );
    let outputs = outputs.iter().map(|o| o.name.clone()).collect();
    let id = req.id.as_ref().and_then(Value::as_str).map(str::to_string);
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
fn inputs(specs: &[RequestInput], mut blob: &[u8]) -> Result<Vec<Tensor>, DecodeError> {
    let mut inputs = Vec::with_capacity(specs.len());
    for spec in specs {
        let tensor = match spec.parameters.binary_data_size {
            None => tensor::from_json(spec),
            Some(size) => {
                let size = usize::try_from(size)
                    .ok()
                    .filter(|size| *size <= blob.len())
                    .ok_or_else(|| {
                        invalid(format!(
                            "input `{}`: binary_data_size {size} runs past the body ({} bytes of binary data left)",
                            spec.name,
                            blob.len()
                        ))
                    })?;
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
fn unsupported_extensions(req: &RequestBody) -> Result<(), DecodeError> {
    let tensors = req.inputs.iter().map(|i| (&i.name, &i.parameters)).chain(
        req.outputs
            .iter()
            .flatten()
            .map(|o| (&o.name, &o.parameters)),
    );
    for (name, parameters) in tensors {
        if parameters.shared_memory_region.is_some() {
            return Err(DecodeError::Unsupported(format!(
                "tensor \"{name}\": {SHARED_MEMORY_UNSUPPORTED}"
            )));
        }
        if parameters.classification.is_some() {
            return Err(DecodeError::Unsupported(format!(
                "output \"{name}\": the classification extension is not supported"
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
