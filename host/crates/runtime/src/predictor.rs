//! Served models: components of the `weft:serve/predictor` world, in the same sandbox as steps.

use crate::cache::{self, LoadSource};
use crate::engine::{Calls, Runtime};
use crate::error::StepError;
use crate::state::StepState;
use crate::step::StepRequest;
use std::path::{Path, PathBuf};
use std::time::Instant;
use wasmtime::component::{ComponentExportIndex, Instance, InstancePre, TypedFunc};
use wasmtime::Store;

/// The types of `weft:serve/predictor`, generated from `wit/serve`. The model's functions are
/// called through `ModelFuncs` (found and type-checked once per component), synchronously or
/// with `call_async` as the caller's thread allows.
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
    /// The model was loaded once and its instance snapshotted: instances start loaded.
    pub preloaded: bool,
    /// The model computes in host calls (`weft:tensor`, `wasi:nn`), which run to their end
    /// whatever the epoch says and would hold up an async worker: its instances are made and
    /// called from a blocking thread, with the `_blocking` functions.
    pub host_work: bool,
    pre: InstancePre<StepState>,
    funcs: ModelFuncs,
}

/// Whether `component` imports the interfaces whose host calls do a model's heavy work.
fn imports_host_work(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
) -> bool {
    component
        .component_type()
        .imports(engine)
        .any(|(name, _)| is_host_work(name))
}

/// Whether an import named `name` is one of the interfaces of [`imports_host_work`].
fn is_host_work(name: &str) -> bool {
    name.starts_with("weft:tensor/") || name.starts_with("wasi:nn/")
}

/// A live, loaded model instance in its own Store.
pub struct PredictorInstance {
    store: Store<StepState>,
    instance: Instance,
    funcs: ModelFuncs,
    timeout: std::time::Duration,
    limits: crate::Limits,
}

type LoadParams<'a> = (Option<&'a str>,);
type LoadResults = (Result<(), String>,);
type InferParams<'a> = (&'a InferRequest,);
type InferResults = (Result<InferResponse, InferError>,);

/// The model's functions, found and type-checked once per component, so that a fresh instance
/// per request pays neither (the generated bindings look up and type-check every export of
/// every instance: a tenth of a fresh instance's cost here).
#[derive(Clone, Copy)]
struct ModelFuncs {
    load: ComponentExportIndex,
    metadata: ComponentExportIndex,
    infer: ComponentExportIndex,
}

impl ModelFuncs {
    fn new(pre: &InstancePre<StepState>) -> wasmtime::Result<Self> {
        use wasmtime::component::types::ComponentItem;
        let component = pre.component();
        let model = component
            .get_export_index(None, MODEL_EXPORT)
            .ok_or_else(|| wasmtime::format_err!("no export `{MODEL_EXPORT}`"))?;
        let ty = pre.instance_type();
        let func = |name: &str| match component.get_export(Some(&model), name) {
            Some((ComponentItem::ComponentFunc(f), index)) => Ok((f, index)),
            _ => Err(wasmtime::format_err!(
                "`{MODEL_EXPORT}` has no function `{name}`"
            )),
        };
        let (f, load) = func("load")?;
        f.typecheck::<LoadParams<'_>, LoadResults>(&ty)?;
        let (f, metadata) = func("metadata")?;
        f.typecheck::<(), (ModelMetadata,)>(&ty)?;
        let (f, infer) = func("infer")?;
        f.typecheck::<InferParams<'_>, InferResults>(&ty)?;
        Ok(ModelFuncs {
            load,
            metadata,
            infer,
        })
    }
}

/// `index`'s function in `instance`, typed as `ModelFuncs::new` checked it.
fn func<P, R>(
    store: &mut Store<StepState>,
    instance: &Instance,
    index: &ComponentExportIndex,
) -> TypedFunc<P, R>
where
    P: wasmtime::component::ComponentNamedList + wasmtime::component::Lower,
    R: wasmtime::component::ComponentNamedList + wasmtime::component::Lift,
{
    let f = instance
        .get_func(store, index)
        .expect("instances of a component have the exports it was checked for");
    // SAFETY: `ModelFuncs::new` type-checked this export of this component against the same
    // parameter and result types every caller here names.
    unsafe { TypedFunc::new_unchecked(f) }
}

impl Runtime {
    /// Loads a served model's component; checks it exports `weft:serve/model@0.1.0`.
    pub fn load_predictor(&self, path: &Path) -> Result<LoadedPredictor, StepError> {
        let bytes = weft_tree::read_regular(path, weft_tree::MAX_COMPONENT_BYTES)
            .map_err(|e| StepError::Grant(format!("component {e}")))?;
        let digest = cache::digest(&bytes);
        let (component, source) = self.compile(path, &digest, &bytes, MODEL_EXPORT)?;
        let host_work = imports_host_work(&self.engine, &component);
        let calls = if host_work {
            Calls::Blocking
        } else {
            Calls::Async
        };
        let pre = self.pre(path, &component, calls)?;
        Ok(LoadedPredictor {
            digest,
            path: path.to_path_buf(),
            source,
            preloaded: false,
            host_work,
            funcs: model_funcs(path, &pre)?,
            pre,
        })
    }

    /// Like [`Runtime::load_predictor`], but runs the model's `load` once, here, sandboxed by
    /// `grants`, and keeps the instance's state at that point as the component's initial state
    /// (see the `snapshot` module): a fresh instance then costs no model load at all. The
    /// snapshot's compiled form is cached under what `load` saw (`snapshot::key`): a restart
    /// with the same component, model files and grants takes it from the cache and runs no
    /// `load` at all.
    pub fn preload_predictor(
        &self,
        path: &Path,
        grants: &StepRequest,
        model_dir: Option<&str>,
    ) -> Result<LoadedPredictor, StepError> {
        let bytes = weft_tree::read_regular(path, weft_tree::MAX_COMPONENT_BYTES)
            .map_err(|e| StepError::Grant(format!("component {e}")))?;
        let digest = cache::digest(&bytes);
        let shown = path.display().to_string();
        let key = crate::snapshot::key(&digest, grants, model_dir);
        if let Some(hit) = key.as_deref().and_then(|k| self.cached_snapshot(k)) {
            tracing::debug!(component = %shown, key = key.as_deref().unwrap_or_default(), "snapshot after load from the cache");
            return self.snapshot_predictor(path, digest, &hit, LoadSource::DiskCache);
        }
        // A model whose weights live in host tensors or graphs keeps only handles in its
        // memory: a snapshot would carry the handles without what they name. Its imports say
        // so without compiling it (which, for a Python model, is a compile of its own).
        let host_work = match crate::shape::read(&bytes) {
            Ok(shape) => shape.imports.iter().any(|(name, _)| is_host_work(name)),
            Err(_) => {
                let (plain, _) = self.compile(path, &digest, &bytes, MODEL_EXPORT)?;
                imports_host_work(&self.engine, &plain)
            }
        };
        if host_work {
            return Err(StepError::Snapshot {
                path: shown,
                reason: "it keeps its model in host tensors or graphs (weft:tensor, wasi:nn), which a snapshot of its memory cannot carry".into(),
            });
        }
        let (cx, instrumented) = crate::snapshot::instrument(&shown, &bytes)?;
        let (pre, _) = self.link(
            path,
            &cache::digest(&instrumented),
            &instrumented,
            MODEL_EXPORT,
            Calls::Blocking,
        )?;
        let (mut store, _granted, log) = self.new_store(grants, Calls::Blocking)?;
        let limits = &grants.limits;
        let instance = pre
            .instantiate(&mut store)
            .map_err(|e| crate::step::classify(e, store.data(), limits, &log))?;
        let funcs = model_funcs(path, &pre)?;
        let load = func::<LoadParams<'_>, LoadResults>(&mut store, &instance, &funcs.load);
        let loaded = load.call(&mut store, (model_dir,)).map(|(r,)| r);
        loaded_or_failed(loaded, &store, limits, &log)?;
        let snapshot = crate::snapshot::snapshot(&shown, &cx, &mut store, instance)?;
        // The model's files are digested again: a snapshot of files changed while `load` read
        // them is cached under its own bytes, never under the key of what was there before.
        let after = key
            .as_ref()
            .and_then(|_| crate::snapshot::key(&digest, grants, model_dir));
        let key = match (key, after) {
            (Some(before), Some(after)) if before == after => before,
            _ => cache::digest(&snapshot),
        };
        let (component, source) = self.compile(path, &key, &snapshot, MODEL_EXPORT)?;
        self.snapshot_predictor(path, digest, &component, source)
    }

    /// The snapshot cached under `key`, when there is one of a served model.
    fn cached_snapshot(&self, key: &str) -> Option<wasmtime::component::Component> {
        let component = self.cache.lookup(&self.engine, key)?;
        let exports = component
            .component_type()
            .exports(&self.engine)
            .any(|(name, _)| name == MODEL_EXPORT);
        (exports && !imports_host_work(&self.engine, &component)).then_some(component)
    }

    /// A predictor whose instances start from `snapshot`, the component at `path` (`digest`)
    /// after its model's `load`.
    fn snapshot_predictor(
        &self,
        path: &Path,
        digest: String,
        snapshot: &wasmtime::component::Component,
        source: LoadSource,
    ) -> Result<LoadedPredictor, StepError> {
        let pre = self.pre(path, snapshot, Calls::Async)?;
        Ok(LoadedPredictor {
            digest,
            path: path.to_path_buf(),
            source,
            preloaded: true,
            host_work: false,
            funcs: model_funcs(path, &pre)?,
            pre,
        })
    }

    /// A fresh instance sandboxed by `grants`, with its model loaded from `model_dir` (a guest
    /// path the grants make readable), ready for requests.
    pub async fn instantiate_predictor(
        &self,
        predictor: &LoadedPredictor,
        grants: &StepRequest,
        model_dir: Option<&str>,
    ) -> Result<PredictorInstance, StepError> {
        assert!(
            !predictor.host_work,
            "a model that computes in host calls is instantiated with `instantiate_predictor_blocking`"
        );
        let (mut store, _granted, log) = self.new_store(grants, Calls::Async)?;
        let limits = grants.limits.clone();
        let instance = predictor
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| crate::step::classify(e, store.data(), &limits, &log))?;
        let funcs = predictor.funcs;
        if !predictor.preloaded {
            let load = func::<LoadParams<'_>, LoadResults>(&mut store, &instance, &funcs.load);
            let loaded = load
                .call_async(&mut store, (model_dir,))
                .await
                .map(|(r,)| r);
            loaded_or_failed(loaded, &store, &limits, &log)?;
        }
        Ok(PredictorInstance::new(store, instance, funcs, limits))
    }
}

impl Runtime {
    /// [`Runtime::instantiate_predictor`] for a model that computes in host calls
    /// ([`LoadedPredictor::host_work`]): call it, and the instance's `_blocking` functions, from
    /// a thread that may block.
    pub fn instantiate_predictor_blocking(
        &self,
        predictor: &LoadedPredictor,
        grants: &StepRequest,
        model_dir: Option<&str>,
    ) -> Result<PredictorInstance, StepError> {
        assert!(
            predictor.host_work,
            "a model that computes in wasm is instantiated with `instantiate_predictor`"
        );
        let (mut store, _granted, log) = self.new_store(grants, Calls::Blocking)?;
        let limits = grants.limits.clone();
        let instance = predictor
            .pre
            .instantiate(&mut store)
            .map_err(|e| crate::step::classify(e, store.data(), &limits, &log))?;
        let funcs = predictor.funcs;
        if !predictor.preloaded {
            let load = func::<LoadParams<'_>, LoadResults>(&mut store, &instance, &funcs.load);
            let loaded = load.call(&mut store, (model_dir,)).map(|(r,)| r);
            loaded_or_failed(loaded, &store, &limits, &log)?;
        }
        Ok(PredictorInstance::new(store, instance, funcs, limits))
    }
}

fn model_funcs(path: &Path, pre: &InstancePre<StepState>) -> Result<ModelFuncs, StepError> {
    ModelFuncs::new(pre).map_err(|e| StepError::Link {
        path: path.display().to_string(),
        reason: format!("{e:#}"),
    })
}

/// The outcome of the model's `load`: its `Err` is the model's own message.
fn loaded_or_failed(
    loaded: wasmtime::Result<Result<(), String>>,
    store: &Store<StepState>,
    limits: &crate::Limits,
    log: &crate::log_sink::LogSink,
) -> Result<(), StepError> {
    match loaded {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(crate::step::guest_failure(
            &format!("loading the model: {message}"),
            store.data(),
        )),
        Err(e) => Err(crate::step::classify(e, store.data(), limits, log)),
    }
}

impl PredictorInstance {
    fn new(
        store: Store<StepState>,
        instance: Instance,
        funcs: ModelFuncs,
        limits: crate::Limits,
    ) -> Self {
        PredictorInstance {
            store,
            instance,
            funcs,
            timeout: limits.timeout,
            limits,
        }
    }

    /// What the model wrote (stdout, stderr) since the last call of this, for the server's log;
    /// each call's output is bounded by the log limit.
    pub fn take_log(&self) -> String {
        String::from_utf8_lossy(&self.store.data().log.take()).into_owned()
    }

    /// Restarts the time limit for the next call.
    fn arm(&mut self) {
        self.store.data_mut().deadline = Instant::now() + self.timeout;
    }

    fn fail(&self, e: wasmtime::Error) -> StepError {
        let state = self.store.data();
        crate::step::classify(e, state, &self.limits, &state.log)
    }

    pub async fn metadata(&mut self) -> Result<ModelMetadata, StepError> {
        self.arm();
        let metadata =
            func::<(), (ModelMetadata,)>(&mut self.store, &self.instance, &self.funcs.metadata);
        let r = metadata.call_async(&mut self.store, ()).await;
        r.map(|(m,)| m).map_err(|e| self.fail(e))
    }

    /// [`PredictorInstance::metadata`] of an instance made by
    /// [`Runtime::instantiate_predictor_blocking`], from a thread that may block.
    pub fn metadata_blocking(&mut self) -> Result<ModelMetadata, StepError> {
        self.arm();
        let metadata =
            func::<(), (ModelMetadata,)>(&mut self.store, &self.instance, &self.funcs.metadata);
        let r = metadata.call(&mut self.store, ());
        r.map(|(m,)| m).map_err(|e| self.fail(e))
    }

    /// [`PredictorInstance::infer`] of an instance made by
    /// [`Runtime::instantiate_predictor_blocking`], from a thread that may block.
    pub fn infer_blocking(
        &mut self,
        request: &InferRequest,
    ) -> Result<Result<InferResponse, InferError>, StepError> {
        self.arm();
        let infer = func::<InferParams<'_>, InferResults>(
            &mut self.store,
            &self.instance,
            &self.funcs.infer,
        );
        let r = infer.call(&mut self.store, (request,));
        r.map(|(r,)| r).map_err(|e| self.fail(e))
    }

    /// Runs one request. A trap or limit is an `Err`; the instance must not be reused after one.
    pub async fn infer(
        &mut self,
        request: &InferRequest,
    ) -> Result<Result<InferResponse, InferError>, StepError> {
        self.arm();
        let infer = func::<InferParams<'_>, InferResults>(
            &mut self.store,
            &self.instance,
            &self.funcs.infer,
        );
        let r = infer.call_async(&mut self.store, (request,)).await;
        r.map(|(r,)| r).map_err(|e| self.fail(e))
    }
}
