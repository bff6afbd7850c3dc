//! `wasm-run serve -f FILE`: an `InferenceService` YAML, the resource the operator deploys, as
//! the server's models. The predictor is version `1`; a canary is version `2` and takes its
//! `trafficPercent` of the requests. A component or storageUri may name a registered model
//! version, `model-registry://NAME/VERSION`: it is resolved through this home's model registry
//! to the digests the version records, in the registry namespace of the resource: its
//! `metadata.namespace`, else `wasm-run serve --namespace`, else `default` (as `kubectl apply
//! -f` places a resource; the file and the flag naming different namespaces is an error, as
//! there).

use crate::home::Home;
use crate::models::resolve;
use anyhow::Result;
use bytesize::ByteSize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use weft_serve::ModelConfig;
use weft_spec::inference::InferenceService;
use weft_spec::model_registry::{self, Field, PartError};
use weft_spec::Document;

/// What an InferenceService file sets on the server.
pub struct ServiceFile {
    pub models: Vec<ModelConfig>,
    pub splits: BTreeMap<String, Vec<(String, u32)>>,
    pub timeout: Option<Duration>,
    pub memory: Option<u64>,
    pub pool: Option<usize>,
}

/// `file` as the server's models; `namespace` (`serve --namespace`) the registry namespace of
/// a file that names none.
pub fn load(home: &Home, file: &Path, namespace: Option<&str>) -> Result<ServiceFile> {
    let shown = file.display().to_string();
    let text = weft_tree::read_regular_text(file, weft_tree::MAX_DOCUMENT_BYTES)?;
    let doc = Document::<InferenceService>::parse(&shown, &text)?;
    let isvc = &doc.value;
    if isvc.api_version != weft_spec::pipeline::API_VERSION {
        let msg = format!("apiVersion must be `{}`", weft_spec::pipeline::API_VERSION);
        return Err(doc.error_at(&["apiVersion"], msg).into());
    }
    if isvc.kind != "InferenceService" {
        return Err(doc
            .error_at(&["kind"], "kind must be `InferenceService`")
            .into());
    }
    let ns = match (isvc.metadata.namespace.as_deref(), namespace) {
        (Some(own), Some(flag)) if own != flag => {
            let msg = format!("the resource's namespace `{own}` is not --namespace `{flag}`: drop --namespace, or name the same one");
            return Err(doc.error_at(&["metadata", "namespace"], msg).into());
        }
        (own, flag) => own
            .or(flag)
            .unwrap_or(weft_registry::namespace::DEFAULT_NAMESPACE),
    };
    let base = file.parent().unwrap_or(Path::new("."));
    let name = isvc.metadata.name.clone();
    let p = &isvc.spec.predictor;
    let reg = Registered {
        home,
        doc: &doc,
        ns,
    };
    let (source, storage) = reg.resolve("predictor", &p.component, &p.storage_uri)?;
    let mut models = vec![ModelConfig {
        name: name.clone(),
        version: "1".into(),
        component: component(home, base, &doc, &source, "predictor")?,
        model_dir: model_dir(home, base, &doc, storage.as_deref(), "predictor")?,
    }];
    let mut splits = BTreeMap::new();
    if let Some(c) = &isvc.spec.canary {
        let (source, storage) = reg.resolve("canary", &c.component, &c.storage_uri)?;
        models.push(ModelConfig {
            name: name.clone(),
            version: "2".into(),
            component: component(home, base, &doc, &source, "canary")?,
            model_dir: model_dir(home, base, &doc, storage.as_deref(), "canary")?,
        });
        if c.traffic_percent > 100 {
            let msg = "trafficPercent is a percentage: 0 to 100";
            return Err(doc
                .error_at(&["spec", "canary", "trafficPercent"], msg)
                .into());
        }
        splits.insert(
            name,
            vec![
                ("1".to_string(), 100 - c.traffic_percent),
                ("2".to_string(), c.traffic_percent),
            ],
        );
    }
    let timeout =
        match &p.timeout {
            Some(t) => Some(humantime::parse_duration(t).map_err(|e| {
                doc.error_at(&["spec", "predictor", "timeout"], format!("`{t}`: {e}"))
            })?),
            None => None,
        };
    let memory =
        match &p.memory {
            Some(m) => Some(m.parse::<ByteSize>().map(|b| b.as_u64()).map_err(|e| {
                doc.error_at(&["spec", "predictor", "memory"], format!("`{m}`: {e}"))
            })?),
            None => None,
        };
    Ok(ServiceFile {
        models,
        splits,
        timeout,
        memory,
        pool: p.pool.map(|n| n as usize),
    })
}

/// A component: a path relative to the file, or `sha256:` in the component store or, as an
/// artifact holding one `.wasm` file (`wasm-run artifacts put`), in the artifact store.
fn component(
    home: &Home,
    base: &Path,
    doc: &Document<InferenceService>,
    source: &str,
    part: &str,
) -> Result<PathBuf> {
    let at = ["spec", part, "component"];
    if !source.starts_with("sha256:") {
        let path = base.join(source);
        if !path.is_file() {
            let msg = format!("component {} does not exist", path.display());
            return Err(doc.error_at(&at, msg).into());
        }
        return Ok(path);
    }
    let hex = weft_spec::digest::parse(source).map_err(|e| doc.error_at(&at, e.to_string()))?;
    let stored = home.components().join(format!("{hex}.wasm"));
    if stored.is_file() {
        return Ok(stored);
    }
    home.open_artifacts()?
        .component_file(source)
        .map_err(|e| doc.error_at(&at, format!("component {source}: {e}")).into())
}

/// A model directory: a path relative to the file, or an artifact's `sha256:` digest.
fn model_dir(
    home: &Home,
    base: &Path,
    doc: &Document<InferenceService>,
    uri: Option<&str>,
    part: &str,
) -> Result<Option<PathBuf>> {
    let Some(uri) = uri else { return Ok(None) };
    let at = ["spec", part, "storageUri"];
    if uri.starts_with("sha256:") {
        let dir = home
            .open_artifacts()?
            .checked_local(uri)
            .map_err(|e| doc.error_at(&at, format!("model {uri}: {e}")))?;
        return Ok(Some(dir));
    }
    let path = base.join(uri);
    if !path.is_dir() {
        let msg = format!("model directory {} does not exist", path.display());
        return Err(doc.error_at(&at, msg).into());
    }
    Ok(Some(path))
}

/// `model-registry://` names in one file, resolved in its namespace.
struct Registered<'a> {
    home: &'a Home,
    doc: &'a Document<InferenceService>,
    ns: &'a str,
}

impl Registered<'_> {
    /// A part's component and storageUri with each `model-registry://NAME/VERSION` replaced by
    /// what the version records: its component's digest, its model files' digest. A component
    /// named so brings the version's model files too, unless storageUri says otherwise (the
    /// rules of `weft_spec::model_registry::substitute`, the operator's too); errors located at
    /// the field.
    fn resolve(
        &self,
        part: &str,
        component: &str,
        storage: &Option<String>,
    ) -> Result<(String, Option<String>)> {
        let at = |field: Field| ["spec", part, field.name()];
        model_registry::substitute(component, storage.as_deref(), |field, uri| {
            self.lookup(&at(field), uri)
        })
        .map_err(|e| match e {
            PartError::Lookup(e) => e,
            PartError::Refused { field, message } => self.doc.error_at(&at(field), message).into(),
        })
    }

    /// `uri` resolved, its errors located at `at` (a failing registry store stays the host's).
    fn lookup(&self, at: &[&str], uri: &str) -> Result<resolve::Resolved> {
        resolve::resolve(self.home, uri, self.ns).map_err(|e| {
            if e.chain().any(|c| c.is::<weft_pipeline::HostFailure>()) {
                return e.context(format!("resolving {uri}"));
            }
            self.doc.error_at(at, format!("{uri}: {e:#}")).into()
        })
    }
}
