//! Serves the MLP that `train-mlp` trains (`model.safetensors` + `model.json`), computing
//! through the GPU bridge: the weights are loaded onto the host's device once, in `load`.
//!
//! Input `input`: FP32 `[batch, features]`. Outputs `probabilities` (FP32 `[batch, classes]`)
//! and `label` (BYTES `[batch]`, the class name).
wit_bindgen::generate!({ path: "../../wit/tensor", world: "weft:tensor/tensor-predictor", generate_all });

use exports::weft::serve::model::{Guest, InferError, InferRequest, InferResponse, ModelMetadata};
use std::cell::RefCell;
use weft::serve::types::{Datatype, Tensor as Wire, TensorSpec};
use weft::tensor::ops::{self as t, BinaryOp, Dtype, Tensor, UnaryOp};

struct Mlp {
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    features: usize,
    classes: Vec<String>,
}

thread_local! {
    static MODEL: RefCell<Option<Mlp>> = const { RefCell::new(None) };
}

/// The strings of a JSON array field in `text` (`"name": ["a", "b"]`), enough for model.json.
fn string_list(text: &str, name: &str) -> Result<Vec<String>, String> {
    let key = format!("\"{name}\":[");
    let start = text.find(&key).ok_or(format!("model.json has no `{name}`"))? + key.len();
    let end = text[start..].find(']').ok_or("model.json is cut short")? + start;
    Ok(text[start..end].split(',').map(|s| s.trim().trim_matches('"').to_string()).filter(|s| !s.is_empty()).collect())
}

fn fail(e: t::Error) -> String {
    format!("{e:?}")
}

struct Predictor;

impl Guest for Predictor {
    fn load(model_dir: Option<String>) -> Result<(), String> {
        let dir = model_dir.ok_or("this model needs a model directory (model.safetensors, model.json)")?;
        let meta = std::fs::read_to_string(format!("{dir}/model.json")).map_err(|e| format!("{dir}/model.json: {e}"))?;
        let bytes = std::fs::read(format!("{dir}/model.safetensors")).map_err(|e| format!("{dir}/model.safetensors: {e}"))?;
        let mut named = t::load(&bytes).map_err(fail)?;
        let mut take = |n: &str| named.iter().position(|(k, _)| k == n).map(|i| named.remove(i).1).ok_or(format!("model.safetensors has no `{n}`"));
        let (w1, b1, w2, b2) = (take("w1")?, take("b1")?, take("w2")?, take("b2")?);
        let model = Mlp { features: w1.shape()[0] as usize, w1, b1, w2, b2, classes: string_list(&meta, "classes")? };
        MODEL.with(|m| *m.borrow_mut() = Some(model));
        Ok(())
    }

    fn metadata() -> ModelMetadata {
        let (d, k) = MODEL.with(|m| m.borrow().as_ref().map(|m| (m.features as i64, m.classes.len() as i64))).unwrap_or((-1, -1));
        ModelMetadata {
            platform: "weft-mlp".into(),
            inputs: vec![TensorSpec { name: "input".into(), datatype: Datatype::Fp32, shape: vec![-1, d] }],
            outputs: vec![
                TensorSpec { name: "probabilities".into(), datatype: Datatype::Fp32, shape: vec![-1, k] },
                TensorSpec { name: "label".into(), datatype: Datatype::Bytes, shape: vec![-1] },
            ],
        }
    }

    fn infer(request: InferRequest) -> Result<InferResponse, InferError> {
        MODEL.with(|m| match m.borrow().as_ref() {
            Some(model) => infer(model, &request),
            None => Err(InferError::Failed("model not loaded".into())),
        })
    }
}

fn infer(m: &Mlp, request: &InferRequest) -> Result<InferResponse, InferError> {
    let input = request.inputs.iter().find(|t| t.name == "input").ok_or_else(|| InferError::InvalidInput("expected an input named `input`".into()))?;
    if input.datatype != Datatype::Fp32 || input.shape.len() != 2 || input.shape[1] != m.features as i64 {
        return Err(InferError::InvalidInput(format!("input must be FP32 [batch, {}], got {:?} {:?}", m.features, input.datatype, input.shape)));
    }
    let batch = input.shape[0] as u32;
    let run = || -> Result<Vec<f32>, String> {
        let x = Tensor::from_bytes(&input.data, Dtype::F32, &[batch, m.features as u32], false).map_err(fail)?;
        let h = t::unary(UnaryOp::Relu, &t::binary(BinaryOp::Add, &t::matmul(&x, &m.w1).map_err(fail)?, &m.b1).map_err(fail)?).map_err(fail)?;
        let logits = t::binary(BinaryOp::Add, &t::matmul(&h, &m.w2).map_err(fail)?, &m.b2).map_err(fail)?;
        let p = t::softmax(&logits, -1).map_err(fail)?;
        Ok(p.to_bytes().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    };
    let probs = run().map_err(InferError::Failed)?;
    let k = m.classes.len();
    let mut labels = Vec::new();
    for row in probs.chunks_exact(k) {
        let best = (0..k).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(0);
        let l = m.classes[best].as_bytes();
        labels.extend_from_slice(&(l.len() as u32).to_le_bytes());
        labels.extend_from_slice(l);
    }
    let mut outputs = vec![
        Wire { name: "probabilities".into(), datatype: Datatype::Fp32, shape: vec![batch as i64, k as i64], data: probs.iter().flat_map(|v| v.to_le_bytes()).collect() },
        Wire { name: "label".into(), datatype: Datatype::Bytes, shape: vec![batch as i64], data: labels },
    ];
    if !request.outputs.is_empty() {
        outputs.retain(|o| request.outputs.contains(&o.name));
    }
    Ok(InferResponse { outputs, parameters: request.parameters.clone() })
}

export!(Predictor);
