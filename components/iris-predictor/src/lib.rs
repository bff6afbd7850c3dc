//! Serves the logistic-regression model the iris pipeline trains (`model.json`).
//!
//! Input `input`: FP32 (or FP64) `[batch, features]`, the standardized features. Outputs
//! `probabilities` (FP32 `[batch, classes]`) and `label` (BYTES `[batch]`, the class name).
wit_bindgen::generate!({ path: "../../wit/serve", world: "weft:serve/predictor" });

use exports::weft::serve::model::{Guest, InferError, InferRequest, InferResponse, ModelMetadata};
use std::cell::RefCell;
use weft::serve::types::{Datatype, Tensor, TensorSpec};
use weft_tabular::Model;

thread_local! {
    static MODEL: RefCell<Option<Model>> = const { RefCell::new(None) };
}

struct IrisPredictor;

fn with_model<T>(f: impl FnOnce(&Model) -> T) -> Option<T> {
    MODEL.with(|m| m.borrow().as_ref().map(f))
}

impl Guest for IrisPredictor {
    fn load(model_dir: Option<String>) -> Result<(), String> {
        let dir = model_dir.ok_or("this model needs a model directory holding model.json")?;
        let path = format!("{dir}/model.json");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let model = Model::from_json(&text)?;
        MODEL.with(|m| *m.borrow_mut() = Some(model));
        Ok(())
    }

    fn metadata() -> ModelMetadata {
        let (d, k) = with_model(|m| (m.features.len() as i64, m.classes.len() as i64)).unwrap_or((-1, -1));
        ModelMetadata {
            platform: "weft-logistic-regression".into(),
            inputs: vec![TensorSpec { name: "input".into(), datatype: Datatype::Fp32, shape: vec![-1, d] }],
            outputs: vec![
                TensorSpec { name: "probabilities".into(), datatype: Datatype::Fp32, shape: vec![-1, k] },
                TensorSpec { name: "label".into(), datatype: Datatype::Bytes, shape: vec![-1] },
            ],
        }
    }

    fn infer(request: InferRequest) -> Result<InferResponse, InferError> {
        with_model(|model| infer(model, &request)).unwrap_or_else(|| Err(InferError::Failed("model not loaded".into())))
    }
}

fn infer(model: &Model, request: &InferRequest) -> Result<InferResponse, InferError> {
    let input = request
        .inputs
        .iter()
        .find(|t| t.name == "input")
        .ok_or_else(|| InferError::InvalidInput("expected an input named `input`".into()))?;
    let d = model.features.len();
    if input.shape.len() != 2 || input.shape[1] != d as i64 {
        return Err(InferError::InvalidInput(format!("input shape must be [batch, {d}], got {:?}", input.shape)));
    }
    let values: Vec<f64> = match input.datatype {
        Datatype::Fp32 => input.data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64).collect(),
        Datatype::Fp64 => input.data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect(),
        other => return Err(InferError::InvalidInput(format!("input datatype must be FP32 or FP64, got {other:?}"))),
    };
    let batch = input.shape[0] as usize;
    let mut probs = Vec::with_capacity(batch * model.classes.len() * 4);
    let mut labels = Vec::new();
    for row in values.chunks_exact(d) {
        let p = model.predict_proba(row);
        for v in &p {
            probs.extend_from_slice(&(*v as f32).to_le_bytes());
        }
        let label = model.classes[model.predict(row)].as_bytes();
        labels.extend_from_slice(&(label.len() as u32).to_le_bytes());
        labels.extend_from_slice(label);
    }
    let mut outputs = vec![
        Tensor { name: "probabilities".into(), datatype: Datatype::Fp32, shape: vec![batch as i64, model.classes.len() as i64], data: probs },
        Tensor { name: "label".into(), datatype: Datatype::Bytes, shape: vec![batch as i64], data: labels },
    ];
    if !request.outputs.is_empty() {
        outputs.retain(|t| request.outputs.contains(&t.name));
    }
    Ok(InferResponse { outputs, parameters: "{}".into() })
}

export!(IrisPredictor);
