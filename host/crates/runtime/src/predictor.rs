//! Served models: components of the `weft:serve/predictor` world, in the same sandbox as steps.

use crate::cache::{self, LoadSource};
use crate::engine::Runtime;
use crate::error::StepError;
use crate::state::StepState;
use crate::step::StepRequest;
use std::path::{Path, PathBuf};
use std::time::Instant;
use wasmtime::Store;

/// Host bindings for `weft:serve/predictor`, generated from `wit/serve`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../../../wit/serve",
        world: "weft:serve/predictor",
    });
}

pub use bindings::exports::weft::serve::model::{
    InferError, InferRequest, InferResponse, ModelMetadata,
};
pub use bindings::weft::serve::types::{Datatype, Tensor, TensorSpec};

/// The export a served model must have.
pub const MODEL_EXPORT: &str = "weft:serve/model@0.1.0";

/// A predictor component, compiled and linked.
pub struct LoadedPredictor {
    pub digest: String,
    pub path: PathBuf,
    pub source: LoadSource,
    pre: bindings::PredictorPre<StepState>,
}

/// A live, loaded model instance in its own Store.
pub struct PredictorInstance {
    store: Store<StepState>,
    model: bindings::Predictor,
    timeout: std::time::Duration,
    limits: crate::Limits,
}

impl Runtime {
    /// Loads a served model's component; checks it exports `weft:serve/model@0.1.0`.
    pub fn load_predictor(&self, path: &Path) -> Result<LoadedPredictor, StepError> {
        let bytes = std::fs::read(path)
            .map_err(|e| StepError::Grant(format!("component {}: {e}", path.display())))?;
        let digest = cache::digest(&bytes);
        let (pre, source) = self.link(path, &digest, &bytes, MODEL_EXPORT)?;
        let pre = bindings::PredictorPre::new(pre).map_err(|e| StepError::Link {
            path: path.display().to_string(),
            reason: format!("{e:#}"),
        })?;
        Ok(LoadedPredictor {
            digest,
            path: path.to_path_buf(),
            source,
            pre,
        })
    }

    /// A fresh instance sandboxed by `grants`, with its model loaded from `model_dir` (a guest
    /// path the grants make readable), ready for requests.
    pub fn instantiate_predictor(
        &self,
        predictor: &LoadedPredictor,
        grants: &StepRequest,
        model_dir: Option<&str>,
    ) -> Result<PredictorInstance, StepError> {
        let (mut store, _granted, log) = self.new_store(grants)?;
        let limits = grants.limits.clone();
        let model = predictor
            .pre
            .instantiate(&mut store)
            .map_err(|e| crate::step::classify(e, store.data(), &limits, &log))?;
        let loaded = model.weft_serve_model().call_load(&mut store, model_dir);
        match loaded {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                return Err(StepError::Failed {
                    message: format!("loading the model: {message}"),
                })
            }
            Err(e) => return Err(crate::step::classify(e, store.data(), &limits, &log)),
        }
        Ok(PredictorInstance {
            store,
            model,
            timeout: limits.timeout,
            limits,
        })
    }
}

impl PredictorInstance {
    /// Restarts the time limit for the next call.
    fn arm(&mut self) {
        self.store.data_mut().deadline = Instant::now() + self.timeout;
    }

    fn fail(&self, e: wasmtime::Error) -> StepError {
        let state = self.store.data();
        crate::step::classify(e, state, &self.limits, &state.log)
    }

    pub fn metadata(&mut self) -> Result<ModelMetadata, StepError> {
        self.arm();
        let r = self.model.weft_serve_model().call_metadata(&mut self.store);
        r.map_err(|e| self.fail(e))
    }

    /// Runs one request. A trap or limit is an `Err`; the instance must not be reused after one.
    pub fn infer(
        &mut self,
        request: &InferRequest,
    ) -> Result<Result<InferResponse, InferError>, StepError> {
        self.arm();
        let r = self
            .model
            .weft_serve_model()
            .call_infer(&mut self.store, request);
        r.map_err(|e| self.fail(e))
    }
}
