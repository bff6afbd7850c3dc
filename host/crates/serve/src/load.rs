//! Loading the served models at start-up: every version compiled, linked, snapshotted when it
//! can be, and one instance of each asked for its metadata, so a model that cannot load stops
//! the server before its first request.

use crate::server::{Model, ModelConfig, ServerConfig, Version};
use crate::slots::Slots;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::BTreeMap;
use weft_runtime::predictor::{LoadedPredictor, ModelMetadata, PredictorInstance};
use weft_runtime::{InputArtifact, Limits, Runtime, StepError, StepRequest};

/// The grants of one instance of `model`: its artifact read-only, nothing else.
fn grants(model: &ModelConfig, limits: &Limits) -> StepRequest {
    let mut req = StepRequest::new("serve", model.name.clone());
    req.limits = limits.clone();
    if let Some(dir) = &model.model_dir {
        req.inputs.push(InputArtifact {
            name: "model".into(),
            path: dir.clone(),
        });
    }
    req
}

pub(crate) fn guest_model_dir(model: &ModelConfig) -> Option<&'static str> {
    model.model_dir.as_ref().map(|_| "/inputs/model")
}

/// The model's component, snapshotted after `load` when asked and possible.
fn load_predictor(
    runtime: &Runtime,
    m: &ModelConfig,
    config: &ServerConfig,
) -> Result<LoadedPredictor, StepError> {
    if !config.snapshot {
        return runtime.load_predictor(&m.component);
    }
    let grants = grants(m, &config.limits);
    match runtime.preload_predictor(&m.component, &grants, guest_model_dir(m)) {
        Err(e @ StepError::Snapshot { .. }) => {
            tracing::warn!(model = %m.name, version = %m.version, error = %e, "loading the model in every instance instead");
            runtime.load_predictor(&m.component)
        }
        other => other,
    }
}

/// One instance of a version and its metadata. This runs on a blocking thread, where a model
/// computing in host calls is called.
fn first_instance(
    runtime: &Runtime,
    predictor: &LoadedPredictor,
    grants: &StepRequest,
    m: &ModelConfig,
    tokio: &tokio::runtime::Handle,
) -> Result<(PredictorInstance, ModelMetadata), StepError> {
    if predictor.host_work {
        let mut instance =
            runtime.instantiate_predictor_blocking(predictor, grants, guest_model_dir(m))?;
        let metadata = instance.metadata_blocking()?;
        return Ok((instance, metadata));
    }
    tokio.block_on(async {
        let mut instance = runtime
            .instantiate_predictor(predictor, grants, guest_model_dir(m))
            .await?;
        let metadata = instance.metadata().await?;
        Ok((instance, metadata))
    })
}

/// One version, loaded, with its slots and (when pooling) its first warm instance.
fn load_version(
    config: &ServerConfig,
    runtime: &Runtime,
    m: &ModelConfig,
    tokio: &tokio::runtime::Handle,
    queued: Gauge,
) -> anyhow::Result<Version> {
    let what = format!("model `{}` version `{}`", m.name, m.version);
    let predictor =
        load_predictor(runtime, m, config).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    let mut grants = grants(m, &config.limits);
    if predictor.preloaded {
        grants.inputs.clear();
    }
    let (instance, metadata) = first_instance(runtime, &predictor, &grants, m, tokio)
        .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    crate::infer::forward_model_log(&m.name, &m.version, &instance);
    tracing::info!(model = %m.name, version = %m.version, digest = %predictor.digest, "model ready");
    // The instance that answered the metadata is the first warm one.
    let warm = if config.pool > 0 {
        vec![instance]
    } else {
        Vec::new()
    };
    Ok(Version {
        config: m.clone(),
        predictor,
        grants,
        metadata,
        warm: std::sync::Mutex::new(warm),
        slots: Slots::new(config.concurrency, config.queue, queued),
    })
}

/// Compiles and links every model version and loads one instance of each to read its metadata,
/// so a model that cannot load is an error at start-up, not on the first request.
/// `queued` is the gauge every version's slots count their waiting requests in.
pub(crate) fn load_models(
    config: &ServerConfig,
    runtime: &Runtime,
    tokio: &tokio::runtime::Handle,
    queued: &Gauge,
) -> anyhow::Result<BTreeMap<String, Model>> {
    let mut versions: BTreeMap<String, BTreeMap<String, Version>> = BTreeMap::new();
    for m in &config.models {
        let v = load_version(config, runtime, m, tokio, queued.clone())?;
        if versions
            .entry(m.name.clone())
            .or_default()
            .insert(m.version.clone(), v)
            .is_some()
        {
            anyhow::bail!("model `{}` version `{}` is given twice", m.name, m.version);
        }
    }
    let mut models = BTreeMap::new();
    for (name, versions) in versions {
        let split = match config.splits.get(&name) {
            Some(split) => split.clone(),
            None => {
                let last = config
                    .models
                    .iter()
                    .rev()
                    .find(|m| m.name == name)
                    .map(|m| m.version.clone())
                    .unwrap_or_default();
                vec![(last, 100)]
            }
        };
        let names: Vec<&str> = versions.keys().map(String::as_str).collect();
        crate::routing::check(&split, &names)
            .map_err(|e| anyhow::anyhow!("traffic split of model `{name}`: {e}"))?;
        models.insert(
            name,
            Model {
                versions,
                routing: crate::routing::Routing::new(split),
            },
        );
    }
    for name in config.splits.keys() {
        if !models.contains_key(name) {
            anyhow::bail!("a traffic split names model `{name}`, which is not served");
        }
    }
    Ok(models)
}
