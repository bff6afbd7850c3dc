//! A model for isolation tests whose requests spend their time in host calls, where wasm's epoch
//! checks cannot stop them: `infer` multiplies an `n`×`n` matrix of ones by itself through the
//! GPU bridge (input `n`, UINT32 `[1]`) and answers the sum of the product's first row (`sum`,
//! FP32 `[1]`, which is `n * n`).
wit_bindgen::generate!({ path: "../../wit/tensor", world: "weft:tensor/tensor-predictor", generate_all });

use exports::weft::serve::model::{Guest, InferError, InferRequest, InferResponse, ModelMetadata};
use weft::serve::types::{Datatype, Tensor as Wire, TensorSpec};
use weft::tensor::ops::{self as t, Tensor};

struct HostBusy;

fn fail(e: t::Error) -> InferError {
    InferError::Failed(format!("{e:?}"))
}

impl Guest for HostBusy {
    fn load(_model_dir: Option<String>) -> Result<(), String> {
        Ok(())
    }

    fn metadata() -> ModelMetadata {
        ModelMetadata {
            platform: "weft-host-busy".into(),
            inputs: vec![TensorSpec { name: "n".into(), datatype: Datatype::Uint32, shape: vec![1] }],
            outputs: vec![TensorSpec { name: "sum".into(), datatype: Datatype::Fp32, shape: vec![1] }],
        }
    }

    fn infer(request: InferRequest) -> Result<InferResponse, InferError> {
        let n = request
            .inputs
            .iter()
            .find(|t| t.name == "n" && t.datatype == Datatype::Uint32 && t.data.len() == 4)
            .map(|t| u32::from_le_bytes([t.data[0], t.data[1], t.data[2], t.data[3]]))
            .ok_or_else(|| InferError::InvalidInput("expected `n`: UINT32 [1]".into()))?;
        let ones = Tensor::full(&[n, n], 1.0).map_err(fail)?;
        let product = t::matmul(&ones, &ones).map_err(fail)?;
        let row = t::slice(&product, 0, 0, 1).map_err(fail)?;
        let sum = t::sum(&row, -1).map_err(fail)?;
        Ok(InferResponse {
            outputs: vec![Wire { name: "sum".into(), datatype: Datatype::Fp32, shape: vec![1], data: sum.to_bytes() }],
            parameters: "{}".into(),
        })
    }
}

export!(HostBusy);
