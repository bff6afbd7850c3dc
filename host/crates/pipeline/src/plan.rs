//! From a pipeline file and run arguments to a [`Plan`]: everything pinned by digest.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use weft_runtime::Runtime;
use weft_spec::pipeline::{ParamType, Pipeline, PipelineSpec};
use weft_spec::validate::validate;
use weft_spec::{Document, ParamValue, SpecError};
use weft_store::ArtifactStore;

/// A run, resolved: what the executor runs and what `resume`/`replay` run again.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    pub pipeline: Pipeline,
    pub pipeline_file: String,
    pub params: BTreeMap<String, ParamValue>,
    /// Pipeline input artifacts: name → what was imported into the artifact store.
    pub input_artifacts: BTreeMap<String, weft_store::StoredArtifact>,
    /// Components: name → digest in the component store.
    pub components: BTreeMap<String, String>,
    pub upstream: BTreeMap<String, BTreeSet<String>>,
    /// A topological order of the tasks.
    pub order: Vec<String>,
    pub cache: bool,
    pub hermetic_seed: Option<u64>,
    /// Set on a replay: the original run, whose id the steps see again.
    #[serde(default)]
    pub replay_of: Option<String>,
    /// Components: name → the file it was read from (the store's copy, or with `check_only`
    /// the pipeline's own file), for `pipeline validate --compile`. Not stored with the run.
    #[serde(skip)]
    pub component_files: BTreeMap<String, PathBuf>,
}

/// What the user asked for on top of the pipeline file.
#[derive(Clone, Debug, Default)]
pub struct RunArgs {
    pub params: Vec<(String, ParamValue)>,
    /// Input artifact overrides: name → path.
    pub artifacts: Vec<(String, PathBuf)>,
    pub cache: bool,
    pub hermetic_seed: Option<u64>,
    /// `pipeline validate`: check everything, write nothing (no component stored, no input
    /// imported). The plan it gives is for reading only: its input artifacts carry no digest.
    pub check_only: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<SpecError>),
    #[error("{0}")]
    Args(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<SpecError> for PlanError {
    fn from(e: SpecError) -> Self {
        PlanError::Invalid(vec![e])
    }
}

/// Parses, validates and resolves `file`. Components are checked to be steps whose imports
/// the sandbox provides (without compiling them: a run whose every task is a cache hit compiles
/// nothing; each is compiled by the first task that runs it) and copied into `components_dir`
/// by digest; input artifacts are imported.
pub fn plan(
    file: &Path,
    args: &RunArgs,
    runtime: &Runtime,
    components_dir: &Path,
    artifacts: &ArtifactStore,
) -> Result<Plan, PlanError> {
    let shown = file.display().to_string();
    let text = weft_tree::read_regular_text(file, weft_tree::MAX_DOCUMENT_BYTES)
        .map_err(|e| PlanError::Args(e.to_string()))?;
    let doc = Document::<Pipeline>::parse(&shown, &text)?;
    let graph = validate(&doc).map_err(PlanError::Invalid)?;
    let base = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    // Sub-pipelines become tasks of this one; the graph is recomputed over the result.
    let mut pipeline = doc.value.clone();
    crate::subpipeline::inline(&mut pipeline, &base, 0)?;
    let graph = if pipeline == doc.value {
        graph
    } else {
        weft_spec::validate::dependencies(&pipeline.spec)
    };
    let spec = &pipeline.spec;
    let params = resolve_params(spec, args)?;
    let resolver = Resolver {
        doc: &doc,
        base: &base,
        args,
        runtime,
        components_dir,
        artifacts,
    };
    let (components, component_files) = resolver.components(spec)?;
    let input_artifacts = resolver.input_artifacts(spec)?;

    Ok(Plan {
        pipeline: pipeline.clone(),
        pipeline_file: shown,
        params,
        input_artifacts,
        components,
        upstream: graph.upstream,
        order: graph.order,
        cache: args.cache,
        hermetic_seed: args.hermetic_seed,
        replay_of: None,
        component_files,
    })
}

/// The run's parameters: those given on the command line, fitted to their declared types,
/// then the defaults of the rest; a parameter with neither is an error.
fn resolve_params(
    spec: &PipelineSpec,
    args: &RunArgs,
) -> Result<BTreeMap<String, ParamValue>, PlanError> {
    let mut params = BTreeMap::new();
    for (name, value) in &args.params {
        let Some(decl) = spec.params.get(name) else {
            return Err(PlanError::Args(format!(
                "--param {name}: the pipeline has no parameter `{name}` (parameters: {:?})",
                spec.params.keys().collect::<Vec<_>>()
            )));
        };
        params.insert(name.clone(), coerce(name, decl.ty, value.clone())?);
    }
    for (name, decl) in &spec.params {
        if params.contains_key(name) {
            continue;
        }
        match &decl.default {
            Some(d) => {
                params.insert(name.clone(), from_json(decl.ty, d.clone()));
            }
            None => {
                return Err(PlanError::Args(format!(
                    "pipeline parameter `{name}` ({}) has no default: give --param {name}=VALUE",
                    decl.ty.name()
                )))
            }
        }
    }
    Ok(params)
}

/// What resolving a pipeline's components and input artifacts needs: the document (errors
/// point into it), the directory its paths are relative to, and where things are stored.
struct Resolver<'a> {
    doc: &'a Document<Pipeline>,
    base: &'a Path,
    args: &'a RunArgs,
    runtime: &'a Runtime,
    components_dir: &'a Path,
    artifacts: &'a ArtifactStore,
}

/// Components by name: their digests, and the files they were read from.
type ResolvedComponents = (BTreeMap<String, String>, BTreeMap<String, PathBuf>);

impl Resolver<'_> {
    /// Every component by digest, and the file each was read from; each checked to be a step
    /// (not compiled), then stored (unless check-only); the errors of all components that are
    /// not, together.
    fn components(&self, spec: &PipelineSpec) -> Result<ResolvedComponents, PlanError> {
        let (args, components_dir) = (self.args, self.components_dir);
        let mut errors = Vec::new();
        let (mut components, mut files) = (BTreeMap::new(), BTreeMap::new());
        if !args.check_only {
            std::fs::create_dir_all(components_dir).map_err(anyhow::Error::from)?;
        }
        for (name, decl) in &spec.components {
            let at = ["spec", "components", name.as_str(), "source"];
            let source =
                match component_source(components_dir, self.artifacts, self.base, &decl.source) {
                    Ok(path) => path,
                    Err(e) => {
                        errors.push(self.doc.error_at(&at, format!("component `{name}`: {e}")));
                        continue;
                    }
                };
            // Checked before it is stored: a component that is not a step never enters the store.
            match self.runtime.check(&source) {
                Ok(checked) if args.check_only || source.starts_with(components_dir) => {
                    components.insert(name.clone(), checked.digest);
                    files.insert(name.clone(), source);
                }
                Ok(checked) => {
                    let stored = store_component(components_dir, &checked.bytes)
                        .map_err(anyhow::Error::from)?;
                    components.insert(name.clone(), checked.digest);
                    files.insert(name.clone(), stored);
                }
                Err(e) => errors.push(
                    self.doc
                        .error_at(&at, format!("component `{name}` ({}): {e}", decl.source)),
                ),
            }
        }
        if !errors.is_empty() {
            return Err(PlanError::Invalid(errors));
        }
        Ok((components, files))
    }

    /// The pipeline's input artifacts: those given on the command line, then the default
    /// paths of the rest; imported into the store (or only checked).
    fn input_artifacts(
        &self,
        spec: &PipelineSpec,
    ) -> Result<BTreeMap<String, weft_store::StoredArtifact>, PlanError> {
        let args = self.args;
        let mut input_artifacts = BTreeMap::new();
        for (name, path) in &args.artifacts {
            if !spec.artifacts.contains_key(name) {
                return Err(PlanError::Args(format!(
                    "--artifact {name}: the pipeline has no input artifact `{name}`"
                )));
            }
            let stored = input_artifact(self.artifacts, path, args.check_only)
                .map_err(|e| PlanError::Args(format!("--artifact {name}: {e}")))?;
            input_artifacts.insert(name.clone(), stored);
        }
        for (name, decl) in &spec.artifacts {
            if input_artifacts.contains_key(name) {
                continue;
            }
            let Some(rel) = &decl.path else {
                return Err(PlanError::Args(format!(
                    "pipeline artifact `{name}` has no default path: give --artifact {name}=PATH"
                )));
            };
            let stored = self.default_artifact(name, rel)?;
            input_artifacts.insert(name.clone(), stored);
        }
        Ok(input_artifacts)
    }

    /// Input artifact `name` from its default path `rel`, relative to the pipeline.
    fn default_artifact(
        &self,
        name: &str,
        rel: &str,
    ) -> Result<weft_store::StoredArtifact, PlanError> {
        let (doc, base) = (self.doc, self.base);
        let at = ["spec", "artifacts", name, "path"];
        if rel.trim().is_empty()
            || base
                .join(rel)
                .canonicalize()
                .is_ok_and(|p| p == Path::new("/"))
        {
            // `''` would import the pipeline's whole directory, `/` the whole filesystem.
            return Err(doc
                .error_at(&at, format!("artifact `{name}`: path {rel:?} names no file or directory of the pipeline's inputs; name the file or directory"))
                .into());
        }
        input_artifact(self.artifacts, &base.join(rel), self.args.check_only)
            .map_err(|e| PlanError::from(doc.error_at(&at, format!("artifact `{name}`: {e}"))))
    }
}

/// Copies component bytes into the store under their digest (atomically); returns the path.
/// The staging name is unique per call, not just per process: runs planned at once in one
/// process (a tuner's trials) store the same component side by side.
fn store_component(dir: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    use sha2::Digest;
    use std::sync::atomic::{AtomicU64, Ordering};
    static STAGED: AtomicU64 = AtomicU64::new(0);
    let hex = hex::encode(sha2::Sha256::digest(bytes));
    let dest = dir.join(format!("{hex}.wasm"));
    if !dest.exists() {
        let n = STAGED.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{hex}.{}.{n}.tmp", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &dest)?;
    }
    Ok(dest)
}

/// A pipeline input: a file or directory to import, or `sha256:<hex>`, an artifact already in
/// the store (or its remote backend), as on a cluster where inputs arrive by digest.
/// With `check_only`, only checks it is there (a regular file or directory, or a stored
/// digest), importing nothing.
fn input_artifact(
    artifacts: &ArtifactStore,
    path: &Path,
    check_only: bool,
) -> Result<weft_store::StoredArtifact, weft_store::StoreError> {
    let digest = path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| n.starts_with("sha256:"));
    match (digest, check_only) {
        (Some(digest), false) => {
            let dir = artifacts.checked_local(digest)?;
            weft_store::tree_digest(&dir)
        }
        (Some(digest), true) => match artifacts.available(digest)? {
            true => Ok(unimported(digest)),
            false => Err(weft_store::StoreError::Invalid(format!(
                "artifact {digest} is not in the store"
            ))),
        },
        (None, false) => artifacts.import(path),
        (None, true) => {
            let meta = std::fs::metadata(path)
                .map_err(|e| weft_store::StoreError::Invalid(format!("{}: {e}", path.display())))?;
            if !(meta.is_file() || meta.is_dir()) {
                return Err(weft_store::StoreError::Invalid(format!(
                    "{}: not a regular file or a directory",
                    path.display()
                )));
            }
            Ok(unimported(""))
        }
    }
}

/// What a check-only plan records for an input it did not import.
fn unimported(digest: &str) -> weft_store::StoredArtifact {
    weft_store::StoredArtifact {
        digest: digest.to_string(),
        bytes: 0,
        files: 0,
    }
}

/// The file holding component `source`: a path relative to the pipeline, a digest in the
/// component store, or an artifact holding one (how components reach a cluster's runners).
fn component_source(
    components_dir: &Path,
    artifacts: &ArtifactStore,
    base: &Path,
    source: &str,
) -> anyhow::Result<PathBuf> {
    if !source.starts_with("sha256:") {
        return Ok(base.join(source));
    }
    let stored = component_path(components_dir, source);
    if stored.exists() {
        return Ok(stored);
    }
    artifacts.component_file(source).map_err(|e| {
        anyhow::anyhow!(
            "{source} is not in the component store ({}) nor an artifact holding one: {e}",
            components_dir.display()
        )
    })
}

/// The stored path of a component digest.
/// A digest that is not strict (see `weft_spec::digest`) names no file: it gets a path that
/// never exists, so nothing outside `dir` is ever read.
pub(crate) fn component_path(dir: &Path, digest: &str) -> PathBuf {
    match weft_spec::digest::parse(digest) {
        Ok(hex) => dir.join(format!("{hex}.wasm")),
        Err(_) => dir.join("invalid-digest.wasm"),
    }
}

/// Fits a command-line value to a declared type: `--param n=3` for a float is 3.0, for a string
/// "3".
fn coerce(name: &str, ty: ParamType, v: ParamValue) -> Result<ParamValue, PlanError> {
    Ok(match (ty, v) {
        (ParamType::String, v) => ParamValue::String(match v {
            ParamValue::String(s) => s,
            ParamValue::Json(j) => j.to_string(),
            other => other.to_string(),
        }),
        (ParamType::Float, ParamValue::Int(i)) => ParamValue::Float(i as f64),
        (ParamType::Json, ParamValue::Json(j)) => ParamValue::Json(j),
        (ParamType::Json, other) => ParamValue::Json(to_json(&other)),
        (want, v) if want == type_of(&v) => v,
        (want, v) => {
            return Err(PlanError::Args(format!(
                "--param {name}: expected {}, got {} `{v}`",
                want.name(),
                type_of(&v).name()
            )))
        }
    })
}

pub(crate) fn type_of(v: &ParamValue) -> ParamType {
    match v {
        ParamValue::String(_) => ParamType::String,
        ParamValue::Int(_) => ParamType::Int,
        ParamValue::Float(_) => ParamType::Float,
        ParamValue::Bool(_) => ParamType::Bool,
        ParamValue::Json(_) => ParamType::Json,
    }
}

/// A YAML/JSON literal as a value of the declared type.
pub(crate) fn from_json(ty: ParamType, v: serde_json::Value) -> ParamValue {
    match (ty, &v) {
        (ParamType::String, serde_json::Value::String(s)) => ParamValue::String(s.clone()),
        (ParamType::Int, serde_json::Value::Number(n)) if n.is_i64() => {
            ParamValue::Int(n.as_i64().unwrap())
        }
        (ParamType::Float, serde_json::Value::Number(n)) => {
            ParamValue::Float(n.as_f64().unwrap_or(f64::NAN))
        }
        (ParamType::Bool, serde_json::Value::Bool(b)) => ParamValue::Bool(*b),
        _ => ParamValue::Json(v),
    }
}

pub(crate) fn to_json(v: &ParamValue) -> serde_json::Value {
    match v {
        ParamValue::String(s) => serde_json::Value::String(s.clone()),
        ParamValue::Int(i) => serde_json::json!(i),
        ParamValue::Float(f) => serde_json::json!(f),
        ParamValue::Bool(b) => serde_json::Value::Bool(*b),
        ParamValue::Json(j) => j.clone(),
    }
}
