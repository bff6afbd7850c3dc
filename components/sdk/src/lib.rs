//! Rust SDK for Weft pipeline steps.
//!
//! Generates the `weft:pipeline/step` bindings once so every step crate shares them, and adds the
//! small helpers each step would otherwise rewrite: typed parameter lookup and artifact paths.
//!
//! ```ignore
//! struct MyStep;
//! impl weft_step::Guest for MyStep {
//!     fn run(input: weft_step::StepInput) -> Result<weft_step::StepOutput, String> { ... }
//! }
//! weft_step::export!(MyStep with_types_in weft_step::bindings);
//! ```

pub mod bindings {
    // The step world plus the GPU bridge's `weft:tensor/ops` (a step that never calls it does
    // not import it: unused imports leave the component).
    wit_bindgen::generate!({
        path: "../../wit/tensor",
        world: "weft:tensor/tensor-step",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "weft_step::bindings",
    });
}

pub use bindings::exports::weft::pipeline::task::Guest;
/// Tensor compute on the host's device (`weft:tensor/ops`).
pub use bindings::weft::tensor::ops as tensor;
/// Collectives across a training job's workers (`weft:tensor/collective`): rank, world size,
/// all-reduce and the rest; `collective::all_reduce_gradients` for data-parallel training.
pub use bindings::weft::tensor::collective;
/// A training job's checkpoints (`weft:tensor/checkpoint`): save every `checkpoint::every()`
/// steps, restore the latest after a restart.
pub use bindings::weft::tensor::checkpoint;
/// The items this worker owns of `n` (a dataset's rows, a batch): contiguous, in rank order,
/// every item owned by exactly one rank. `shard(n, collective::rank(), collective::world_size())`.
pub use weft_collective::shard;
/// Models trained elsewhere (ONNX), through the standard `wasi:nn` interfaces.
pub use bindings::wasi::nn;
pub use bindings::export;
pub use bindings::weft::pipeline::log::{emit, Level};
pub use bindings::weft::pipeline::metrics::report;
pub use bindings::weft::pipeline::types::{
    Artifact, Param, ParamValue, StepContext, StepInput, StepOutput,
};

impl StepInput {
    /// The parameter called `name`, if given.
    pub fn param(&self, name: &str) -> Option<&ParamValue> {
        self.params.iter().find(|p| p.name == name).map(|p| &p.value)
    }

    /// A string parameter, or an error naming it when it is missing or not a string.
    pub fn str_param(&self, name: &str) -> Result<&str, String> {
        match self.param(name) {
            Some(ParamValue::Str(s)) => Ok(s),
            Some(other) => Err(format!("parameter `{name}` must be a string, got {other:?}")),
            None => Err(format!("missing parameter `{name}`")),
        }
    }

    /// An integer parameter, `default` when absent.
    pub fn int_param_or(&self, name: &str, default: i64) -> Result<i64, String> {
        match self.param(name) {
            Some(ParamValue::Int(v)) => Ok(*v),
            Some(other) => Err(format!("parameter `{name}` must be an int, got {other:?}")),
            None => Ok(default),
        }
    }

    /// A float parameter (an int is widened), `default` when absent.
    pub fn float_param_or(&self, name: &str, default: f64) -> Result<f64, String> {
        match self.param(name) {
            Some(ParamValue::Float(v)) => Ok(*v),
            Some(ParamValue::Int(v)) => Ok(*v as f64),
            Some(other) => Err(format!("parameter `{name}` must be a float, got {other:?}")),
            None => Ok(default),
        }
    }

    /// A string parameter, `default` when absent.
    pub fn str_param_or<'a>(&'a self, name: &str, default: &'a str) -> Result<&'a str, String> {
        match self.param(name) {
            None => Ok(default),
            Some(_) => self.str_param(name),
        }
    }

    /// A boolean parameter, `default` when absent.
    pub fn bool_param_or(&self, name: &str, default: bool) -> Result<bool, String> {
        match self.param(name) {
            Some(ParamValue::Boolean(v)) => Ok(*v),
            Some(other) => Err(format!("parameter `{name}` must be a bool, got {other:?}")),
            None => Ok(default),
        }
    }

    /// The guest path of input artifact `name`.
    pub fn input(&self, name: &str) -> Result<&str, String> {
        find_artifact(&self.inputs, name).ok_or_else(|| format!("missing input artifact `{name}`"))
    }

    /// The guest path of output artifact directory `name`.
    pub fn output(&self, name: &str) -> Result<&str, String> {
        find_artifact(&self.outputs, name).ok_or_else(|| format!("missing output artifact `{name}`"))
    }
}

fn find_artifact<'a>(list: &'a [Artifact], name: &str) -> Option<&'a str> {
    list.iter().find(|a| a.name == name).map(|a| a.path.as_str())
}

/// Shorthand for an output parameter.
pub fn out_param(name: &str, value: ParamValue) -> Param {
    Param { name: name.to_string(), value }
}

/// Log at info level with no fields.
pub fn info(message: &str) {
    emit(Level::Info, message, &[]);
}
