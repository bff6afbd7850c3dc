//! A model for protocol and fault tests: returns every input as an output of the same name
//! (renamed `<name>_out`), for any datatype. An input named `trap` panics, `spin` loops forever,
//! `hog` allocates without bound: a request can fail in each way a model can; `sleep` (UINT32
//! milliseconds) answers after that long, a slow request that succeeds; `say` (BYTES) writes each
//! element to stderr. A model directory
//! holding `load-delay-ms` makes `load` take that long (a slow-loading model). An input named
//! `list-model` lists the model directory from `infer`: a file touched after `load`, which a
//! snapshotted model cannot do.
wit_bindgen::generate!({ path: "../../wit/serve", world: "weft:serve/predictor" });

use exports::weft::serve::model::{Guest, InferError, InferRequest, InferResponse, ModelMetadata};
use weft::serve::types::{Datatype, Tensor, TensorSpec};

struct Echo;

/// The model directory `load` was given.
static MODEL_DIR: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

impl Guest for Echo {
    fn load(model_dir: Option<String>) -> Result<(), String> {
        let Some(dir) = model_dir else { return Ok(()) };
        *MODEL_DIR.lock().unwrap() = Some(dir.clone());
        if let Ok(ms) = std::fs::read_to_string(format!("{dir}/load-delay-ms")) {
            let ms: u64 = ms.trim().parse().map_err(|e| format!("load-delay-ms: {e}"))?;
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        Ok(())
    }

    fn metadata() -> ModelMetadata {
        ModelMetadata {
            platform: "weft-echo".into(),
            inputs: vec![TensorSpec { name: "x".into(), datatype: Datatype::Fp32, shape: vec![-1] }],
            outputs: vec![TensorSpec { name: "x_out".into(), datatype: Datatype::Fp32, shape: vec![-1] }],
        }
    }

    fn infer(request: InferRequest) -> Result<InferResponse, InferError> {
        let mut outputs = Vec::new();
        for t in request.inputs {
            match t.name.as_str() {
                "trap" => panic!("echo-predictor asked to trap"),
                "spin" => {
                    let mut x = 0u64;
                    loop {
                        x = std::hint::black_box(x.wrapping_add(1));
                    }
                }
                "hog" => {
                    let mut hoard: Vec<Vec<u8>> = Vec::new();
                    loop {
                        hoard.push(vec![1; 1 << 20]);
                        std::hint::black_box(&hoard);
                    }
                }
                "invalid" => return Err(InferError::InvalidInput("asked to reject".into())),
                "list-model" => {
                    let dir = MODEL_DIR.lock().unwrap().clone().unwrap_or_else(|| ".".into());
                    let n = std::fs::read_dir(&dir).map_err(|e| InferError::Failed(format!("{dir}: {e}")))?.count();
                    outputs.push(Tensor { name: "list-model_out".into(), data: (n as u32).to_le_bytes().to_vec(), ..t });
                }
                "say" => {
                    // BYTES: each element written to stderr, as a model's diagnostics would be.
                    let mut rest = &t.data[..];
                    while rest.len() >= 4 {
                        let n = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                        let text = rest.get(4..4 + n).unwrap_or_default();
                        eprintln!("{}", String::from_utf8_lossy(text));
                        rest = rest.get(4 + n..).unwrap_or_default();
                    }
                    outputs.push(Tensor { name: "say_out".into(), ..t });
                }
                "sleep" => {
                    // UINT32 milliseconds: a slow request that still succeeds.
                    let ms = t.data.get(..4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                    std::thread::sleep(std::time::Duration::from_millis(ms.into()));
                    outputs.push(Tensor { name: "sleep_out".into(), ..t });
                }
                _ => outputs.push(Tensor { name: format!("{}_out", t.name), ..t }),
            }
        }
        if !request.outputs.is_empty() {
            outputs.retain(|t| request.outputs.contains(&t.name));
        }
        Ok(InferResponse { outputs, parameters: request.parameters })
    }
}

export!(Echo);
