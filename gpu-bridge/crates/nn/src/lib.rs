//! `wasi:nn` for ONNX models: components load a model from bytes, set named input tensors,
//! compute and read outputs through the standard interface (`wasi:nn@0.2.0-rc-2024-10-28`, the
//! version wasmtime serves), so wasi-nn code written for other runtimes runs here unchanged.
//!
//! The interface and its host glue are wasmtime-wasi-nn's; this crate is the backend behind
//! them, on tract (a pure-Rust ONNX engine: no native library to install, unlike the
//! onnxruntime backend wasmtime-wasi-nn ships). A backend belongs to one Store: the bytes of
//! the models it loaded and of the tensors it was given are counted against that component's
//! quota, and everything goes with the Store.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tract_onnx::prelude::*;
use wasmtime_wasi_nn::backend::{
    BackendError, BackendExecutionContext, BackendFromDir, BackendGraph, BackendInner, Id,
    NamedTensor,
};
use wasmtime_wasi_nn::wit::{ExecutionTarget, GraphEncoding, TensorType};
use wasmtime_wasi_nn::{ExecutionContext, Graph, Tensor};

pub use wasmtime_wasi_nn::wit::{add_to_linker, WasiNnCtx, WasiNnView};

pub mod make;

/// Where the details of a failure go. `wasi:nn` hands a component only an error code and
/// wasmtime-wasi-nn's fixed text, so the host says what went wrong here (the task's log).
pub type Report = Arc<dyn Fn(&str) + Send + Sync>;

/// The per-Store `wasi:nn` state: an ONNX backend with `quota_bytes` for models and tensors,
/// telling `report` what went wrong when a call fails.
pub fn context(quota_bytes: u64, report: Report) -> WasiNnCtx {
    let backend = TractBackend {
        budget: Arc::new(Budget {
            limit: quota_bytes,
            used: AtomicU64::new(0),
            report,
        }),
    };
    WasiNnCtx::new(
        [wasmtime_wasi_nn::Backend::from(backend)],
        wasmtime_wasi_nn::InMemoryRegistry::new().into(),
    )
}

/// Bytes a component's models and tensors may take on the host.
struct Budget {
    limit: u64,
    used: AtomicU64,
    report: Report,
}

impl Budget {
    /// Takes `bytes` from the budget, or says what it would exceed.
    fn take(&self, what: &str, bytes: usize) -> Result<(), String> {
        let bytes = bytes as u64;
        let before = self.used.fetch_add(bytes, Ordering::Relaxed);
        if before + bytes > self.limit {
            self.used.fetch_sub(bytes, Ordering::Relaxed);
            return Err(format!(
                "{what} of {bytes} bytes would exceed the component's quota of {} bytes ({} in use)",
                self.limit, before
            ));
        }
        Ok(())
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes as u64, Ordering::Relaxed);
    }

    /// Reports a failure's details and turns it into the backend error the guest sees.
    fn fail(&self, message: String) -> BackendError {
        tracing::warn!(error = %message, "wasi:nn");
        (self.report)(&format!("wasi:nn: {message}"));
        BackendError::BackendAccess(wasmtime::format_err!("{message}"))
    }
}

/// ONNX graphs on tract, on the CPU.
struct TractBackend {
    budget: Arc<Budget>,
}

impl BackendInner for TractBackend {
    fn encoding(&self) -> GraphEncoding {
        GraphEncoding::Onnx
    }

    fn load(&mut self, builders: &[&[u8]], target: ExecutionTarget) -> Result<Graph, BackendError> {
        let [bytes] = builders else {
            return Err(BackendError::InvalidNumberOfBuilders(1, builders.len()));
        };
        if target != ExecutionTarget::Cpu {
            // A hint in wasi-nn: other runtimes fall back too, so portable code keeps working.
            tracing::warn!(?target, "wasi:nn: ONNX graphs run on the CPU");
        }
        self.load_onnx(bytes).map_err(|e| self.budget.fail(e))
    }

    fn as_dir_loadable(&mut self) -> Option<&mut dyn BackendFromDir> {
        None
    }
}

impl TractBackend {
    fn load_onnx(&self, bytes: &[u8]) -> Result<Graph, String> {
        self.budget.take("an ONNX model", bytes.len())?;
        let model = tract_onnx::onnx()
            .model_for_read(&mut Cursor::new(bytes))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| format!("loading the ONNX model: {e:#}"))?;
        let typed = model.model();
        let names = |outlets: &[OutletId]| -> Vec<String> {
            outlets
                .iter()
                .map(|o| {
                    typed
                        .outlet_label(*o)
                        .unwrap_or(&typed.node(o.node).name)
                        .to_string()
                })
                .collect()
        };
        let inputs = names(typed.input_outlets().map_err(|e| e.to_string())?);
        let outputs = names(typed.output_outlets().map_err(|e| e.to_string())?);
        let graph: Box<dyn BackendGraph> = Box::new(TractGraph {
            model,
            inputs,
            outputs,
            budget: self.budget.clone(),
        });
        Ok(graph.into())
    }
}

struct TractGraph {
    model: Arc<TypedRunnableModel>,
    inputs: Vec<String>,
    outputs: Vec<String>,
    budget: Arc<Budget>,
}

impl BackendGraph for TractGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        let context: Box<dyn BackendExecutionContext> = Box::new(TractContext {
            model: self.model.clone(),
            inputs: self.inputs.clone(),
            outputs: self.outputs.clone(),
            set: vec![None; self.inputs.len()],
            results: Vec::new(),
            budget: self.budget.clone(),
        });
        Ok(context.into())
    }
}

struct TractContext {
    model: Arc<TypedRunnableModel>,
    inputs: Vec<String>,
    outputs: Vec<String>,
    /// Inputs given so far, by position.
    set: Vec<Option<Tensor>>,
    /// The last computation's outputs, by position.
    results: Vec<Tensor>,
    budget: Arc<Budget>,
}

impl TractContext {
    fn position(&self, id: &Id, names: &[String], kind: &str) -> Result<usize, String> {
        match id {
            Id::Index(i) if (*i as usize) < names.len() => Ok(*i as usize),
            Id::Index(i) => Err(format!(
                "no {kind} tensor {i}: the graph has {}",
                names.len()
            )),
            Id::Name(n) => names
                .iter()
                .position(|x| x == n)
                // Positions by name also work, as other runtimes accept them.
                .or_else(|| n.parse::<usize>().ok().filter(|i| *i < names.len()))
                .ok_or_else(|| {
                    format!("no {kind} tensor `{n}`: the graph's {kind}s are {names:?}")
                }),
        }
    }

    fn set(&mut self, id: Id, tensor: &Tensor) -> Result<(), String> {
        let i = self.position(&id, &self.inputs, "input")?;
        self.budget.take("an input tensor", tensor.data.len())?;
        if let Some(old) = self.set[i].replace(tensor.clone()) {
            self.budget.give_back(old.data.len());
        }
        Ok(())
    }

    fn run(&mut self) -> Result<(), String> {
        let mut values = TVec::new();
        for (i, slot) in self.set.iter().enumerate() {
            let t = slot
                .as_ref()
                .ok_or_else(|| format!("input `{}` was not set", self.inputs[i]))?;
            values.push(to_tract(t)?.into_tvalue());
        }
        let out = self
            .model
            .run(values)
            .map_err(|e| format!("computing: {e:#}"))?;
        self.results = out.iter().map(from_tract).collect::<Result<_, _>>()?;
        Ok(())
    }

    fn run_named(&mut self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, String> {
        for named in &inputs {
            self.set(Id::Name(named.name.clone()), &named.tensor)?;
        }
        self.run()?;
        Ok(self
            .outputs
            .iter()
            .zip(&self.results)
            .map(|(name, tensor)| NamedTensor {
                name: name.clone(),
                tensor: tensor.clone(),
            })
            .collect())
    }
}

impl BackendExecutionContext for TractContext {
    fn set_input(&mut self, id: Id, tensor: &Tensor) -> Result<(), BackendError> {
        self.set(id, tensor).map_err(|e| self.budget.fail(e))
    }

    fn get_output(&mut self, id: Id) -> Result<Tensor, BackendError> {
        let i = self
            .position(&id, &self.outputs, "output")
            .map_err(|e| self.budget.fail(e))?;
        self.results
            .get(i)
            .cloned()
            .ok_or_else(|| self.budget.fail("no output yet: call compute first".into()))
    }

    fn compute(
        &mut self,
        inputs: Option<Vec<NamedTensor>>,
    ) -> Result<Option<Vec<NamedTensor>>, BackendError> {
        let done = match inputs {
            None => self.run().map(|()| None),
            Some(inputs) => self.run_named(inputs).map(Some),
        };
        done.map_err(|e| self.budget.fail(e))
    }
}

impl Drop for TractContext {
    fn drop(&mut self) {
        let held: usize = self.set.iter().flatten().map(|t| t.data.len()).sum();
        self.budget.give_back(held);
    }
}

fn datum(ty: TensorType) -> Result<DatumType, String> {
    Ok(match ty {
        TensorType::Fp16 => DatumType::F16,
        TensorType::Fp32 => DatumType::F32,
        TensorType::Fp64 => DatumType::F64,
        TensorType::U8 => DatumType::U8,
        TensorType::I32 => DatumType::I32,
        TensorType::I64 => DatumType::I64,
        TensorType::Bf16 => return Err("BF16 tensors are not supported by the ONNX backend".into()),
    })
}

fn to_tract(t: &Tensor) -> Result<tract_onnx::prelude::Tensor, String> {
    let dt = datum(t.ty)?;
    let shape: Vec<usize> = t.dimensions.iter().map(|d| *d as usize).collect();
    let expected = shape.iter().product::<usize>() * dt.size_of();
    if t.data.len() != expected {
        return Err(format!(
            "a {:?} tensor of shape {:?} needs {expected} bytes, got {}",
            t.ty,
            t.dimensions,
            t.data.len()
        ));
    }
    // SAFETY: the length was checked against the shape and element size just above.
    unsafe { tract_onnx::prelude::Tensor::from_raw_dt(dt, &shape, &t.data) }
        .map_err(|e| format!("{e:#}"))
}

fn from_tract(v: &TValue) -> Result<Tensor, String> {
    let ty = match v.datum_type() {
        DatumType::F16 => TensorType::Fp16,
        DatumType::F32 => TensorType::Fp32,
        DatumType::F64 => TensorType::Fp64,
        DatumType::U8 => TensorType::U8,
        DatumType::I32 => TensorType::I32,
        DatumType::I64 => TensorType::I64,
        other => {
            return Err(format!(
                "the model returned a {other:?} tensor, which wasi:nn cannot carry"
            ))
        }
    };
    let dimensions = v
        .shape()
        .iter()
        .map(|d| u32::try_from(*d).map_err(|_| "an output dimension exceeds u32".to_string()))
        .collect::<Result<_, _>>()?;
    let data = v.as_bytes().to_vec();
    Ok(Tensor::new(dimensions, ty, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two dense layers: (first weights, first bias, second weights, second bias).
    type Weights = (Vec<Vec<f32>>, Vec<f32>, Vec<Vec<f32>>, Vec<f32>);

    fn weights() -> Weights {
        let w1 = vec![
            vec![0.5, -0.2, 0.1],
            vec![-0.3, 0.8, 0.0],
            vec![0.7, 0.1, -0.6],
            vec![0.0, -0.4, 0.9],
        ];
        let w2 = vec![vec![1.0, -1.0], vec![0.5, 0.5], vec![-0.7, 1.2]];
        (w1, vec![0.1, -0.1, 0.2], w2, vec![0.0, 0.3])
    }

    /// The same MLP computed directly, row by row.
    fn reference(x: &[f32]) -> Vec<f32> {
        let (w1, b1, w2, b2) = weights();
        let h: Vec<f32> = (0..b1.len())
            .map(|j| (b1[j] + (0..x.len()).map(|i| x[i] * w1[i][j]).sum::<f32>()).max(0.0))
            .collect();
        let logits: Vec<f32> = (0..b2.len())
            .map(|k| b2[k] + (0..h.len()).map(|j| h[j] * w2[j][k]).sum::<f32>())
            .collect();
        let max = logits.iter().cloned().fold(f32::MIN, f32::max);
        let e: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f32 = e.iter().sum();
        e.iter().map(|v| v / sum).collect()
    }

    fn fp32(dims: Vec<u32>, values: &[f32]) -> Tensor {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor::new(dims, TensorType::Fp32, data)
    }

    /// A backend with `limit` bytes, and what it reported.
    fn backend(limit: u64) -> (TractBackend, Arc<std::sync::Mutex<Vec<String>>>) {
        let reports: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let sink = reports.clone();
        let backend = TractBackend {
            budget: Arc::new(Budget {
                limit,
                used: AtomicU64::new(0),
                report: Arc::new(move |m: &str| sink.lock().unwrap().push(m.to_string())),
            }),
        };
        (backend, reports)
    }

    fn last(reports: &std::sync::Mutex<Vec<String>>) -> String {
        reports.lock().unwrap().last().cloned().unwrap_or_default()
    }

    fn model() -> Vec<u8> {
        let (w1, b1, w2, b2) = weights();
        make::mlp(&w1, &b1, &w2, &b2)
    }

    #[test]
    fn an_onnx_mlp_computes_what_the_direct_computation_gives() {
        let graph = backend(1 << 20)
            .0
            .load(&[&model()], ExecutionTarget::Cpu)
            .unwrap();
        let mut ctx = graph.init_execution_context().unwrap();
        let rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3f32]];
        let x = fp32(vec![2, 4], &rows.concat());
        let out = ctx
            .compute_with_io(vec![NamedTensor {
                name: "features".into(),
                tensor: x.clone(),
            }])
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, "probabilities");
        assert_eq!(out[0].tensor.dimensions, vec![2, 2]);
        let got: Vec<f32> = out[0]
            .tensor
            .data
            .chunks(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let want: Vec<f32> = rows.iter().flat_map(|r| reference(r)).collect();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
        // The older calls (witx): set-input by index, compute, get-output by index.
        ctx.set_input(Id::Index(0), &x).unwrap();
        ctx.compute().unwrap();
        assert_eq!(ctx.get_output(Id::Index(0)).unwrap(), out[0].tensor);
    }

    #[test]
    fn bad_inputs_are_errors_naming_what_is_wrong() {
        let (mut backend, reports) = backend(1 << 20);
        let graph = backend.load(&[&model()], ExecutionTarget::Cpu).unwrap();
        let mut ctx = graph.init_execution_context().unwrap();
        ctx.set_input(Id::Name("pixels".into()), &fp32(vec![1, 4], &[0.0; 4]))
            .unwrap_err();
        assert!(last(&reports)
            .contains("no input tensor `pixels`: the graph's inputs are [\"features\"]"));
        let mut short = fp32(vec![1, 4], &[0.0; 4]);
        short.data.pop();
        ctx.set_input(Id::Index(0), &short).unwrap();
        ctx.compute().unwrap_err();
        assert!(last(&reports).contains("needs 16 bytes, got 15"));
        ctx.get_output(Id::Index(3)).unwrap_err();
        assert!(last(&reports).contains("no output tensor 3"));
        backend
            .load(&[b"not a model"], ExecutionTarget::Cpu)
            .err()
            .unwrap();
        assert!(last(&reports).starts_with("wasi:nn: loading the ONNX model"));
    }

    #[test]
    fn models_and_tensors_past_the_quota_are_refused() {
        let model = model();
        let (mut small, reports) = backend(model.len() as u64 - 1);
        small.load(&[&model], ExecutionTarget::Cpu).err().unwrap();
        assert!(last(&reports).contains("would exceed the component's quota"));
        // Room for the model and one small input, not a large one.
        let (mut backend, reports) = backend(model.len() as u64 + 64);
        let graph = backend.load(&[&model], ExecutionTarget::Cpu).unwrap();
        let mut ctx = graph.init_execution_context().unwrap();
        ctx.set_input(Id::Index(0), &fp32(vec![1, 4], &[0.0; 4]))
            .unwrap();
        ctx.set_input(Id::Index(0), &fp32(vec![100, 4], &[0.0; 400]))
            .unwrap_err();
        assert!(last(&reports).contains("an input tensor of 1600 bytes would exceed"));
        // What a context held is given back when it goes.
        drop(ctx);
        assert_eq!(
            backend.budget.used.load(Ordering::Relaxed),
            model.len() as u64
        );
    }
}
