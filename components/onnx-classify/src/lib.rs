//! Classifies rows with an ONNX model through the standard `wasi:nn` interfaces, the way a
//! wasi-nn program written for any runtime does: load the graph from the model's bytes, make
//! an execution context, compute on named tensors.
//!
//! Input artifact `model`: a directory holding `model.onnx` (input `features`, FP32
//! `[N, features]`; output `probabilities`, FP32 `[N, classes]`). Param `rows`: JSON list of
//! rows of numbers. Output params `probabilities` (JSON list of lists) and `labels` (JSON list
//! of the most probable class per row).
use weft_step::nn::{errors, graph, tensor};
use weft_step::{out_param, Guest, ParamValue, StepInput, StepOutput};

struct OnnxClassify;

fn nn_error(what: &str, e: errors::Error) -> String {
    format!("{what}: {:?}: {}", e.code(), e.data())
}

/// The rows of a JSON list of lists of numbers, written by hand to keep the component small.
fn rows(json: &str) -> Result<Vec<Vec<f32>>, String> {
    let body = json.trim().strip_prefix('[').and_then(|s| s.strip_suffix(']')).ok_or("`rows` must be a JSON list of rows")?;
    body.split(']')
        .map(|r| r.trim_start_matches(|c: char| c == ',' || c.is_whitespace()))
        .filter(|r| !r.is_empty())
        .map(|r| {
            let r = r.strip_prefix('[').ok_or("each row must be a list")?;
            r.split(',').map(|v| v.trim().parse::<f32>().map_err(|e| format!("`{v}`: {e}"))).collect()
        })
        .collect()
}

impl Guest for OnnxClassify {
    fn run(input: StepInput) -> Result<StepOutput, String> {
        let dir = input.input("model")?;
        let bytes = std::fs::read(format!("{dir}/model.onnx")).map_err(|e| format!("model.onnx: {e}"))?;
        let rows = match input.param("rows") {
            Some(ParamValue::Json(j)) => rows(j)?,
            _ => return Err("param `rows` (JSON) is required".into()),
        };
        let width = rows.first().map_or(0, |r| r.len());
        if rows.is_empty() || rows.iter().any(|r| r.len() != width) {
            return Err("`rows` must be non-empty rows of one length".into());
        }
        let graph = graph::load(&[bytes], graph::GraphEncoding::Onnx, graph::ExecutionTarget::Cpu)
            .map_err(|e| nn_error("loading the model", e))?;
        let context = graph.init_execution_context().map_err(|e| nn_error("making a context", e))?;
        let data: Vec<u8> = rows.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
        let features = tensor::Tensor::new(&[rows.len() as u32, width as u32], tensor::TensorType::Fp32, &data);
        let outputs = context
            .compute(vec![("features".to_string(), features)])
            .map_err(|e| nn_error("computing", e))?;
        let (_, probabilities) = outputs
            .into_iter()
            .find(|(name, _)| name == "probabilities")
            .ok_or("the model has no output `probabilities`")?;
        let dims = probabilities.dimensions();
        let values: Vec<f32> = probabilities.data().chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let classes = *dims.last().ok_or("a scalar output")? as usize;
        let per_row: Vec<&[f32]> = values.chunks(classes).collect();
        let labels: Vec<usize> = per_row
            .iter()
            .map(|p| (0..p.len()).max_by(|a, b| p[*a].total_cmp(&p[*b])).unwrap_or(0))
            .collect();
        let json_rows: Vec<String> = per_row
            .iter()
            .map(|p| format!("[{}]", p.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",")))
            .collect();
        Ok(StepOutput {
            params: vec![
                out_param("probabilities", ParamValue::Json(format!("[{}]", json_rows.join(",")))),
                out_param("labels", ParamValue::Json(format!("{labels:?}"))),
            ],
        })
    }
}

weft_step::export!(OnnxClassify with_types_in weft_step::bindings);
