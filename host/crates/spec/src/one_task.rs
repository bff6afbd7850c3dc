//! A component run as a one-task pipeline: how a tuning trial (`Experiment` with a component
//! template) and a `TrainJob` become runs the pipeline executor records, resumes and shows
//! like any other.

use crate::pipeline::*;
use crate::ParamValue;
use std::collections::BTreeMap;
use std::path::Path;

/// The component, its parameters and artifacts, and the task's settings.
pub struct OneTask<'a> {
    /// Pipeline name (truncated to 63 characters) and description.
    pub name: &'a str,
    pub description: String,
    /// The component and the task's name.
    pub task: &'a str,
    pub source: &'a str,
    /// Pipeline parameters, each passed on to the task's parameter of the same name.
    pub params: BTreeMap<String, ParamDecl>,
    /// Input artifacts: name → path (or `sha256:` digest), each the task's input of that name.
    pub inputs: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, ArtifactType>,
    /// Settings of the task itself (timeout, memory, retry, gang); its component, params and
    /// artifacts are filled in.
    pub settings: TaskSpec,
}

/// `path` made absolute against `base` (a digest stays as it is), so the pipeline plans from
/// anywhere.
pub fn absolute(base: &Path, path: &str) -> String {
    if crate::digest::parse(path).is_ok() {
        return path.to_string();
    }
    let p = base.join(path);
    std::path::absolute(&p)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

/// A parameter declaration of the type `v` infers, with `v` as its default.
pub fn fixed_param(v: &serde_json::Value) -> ParamDecl {
    let ty = match ParamValue::infer_json(v) {
        ParamValue::String(_) => ParamType::String,
        ParamValue::Int(_) => ParamType::Int,
        ParamValue::Float(_) => ParamType::Float,
        ParamValue::Bool(_) => ParamType::Bool,
        ParamValue::Json(_) => ParamType::Json,
    };
    ParamDecl {
        ty,
        default: Some(v.clone()),
        description: None,
    }
}

impl OneTask<'_> {
    pub fn pipeline(self, base: &Path) -> Pipeline {
        let artifacts: BTreeMap<String, InputArtifactDecl> = self
            .inputs
            .iter()
            .map(|(name, path)| {
                let decl = InputArtifactDecl {
                    ty: ArtifactType::Artifact,
                    path: Some(absolute(base, path)),
                };
                (name.clone(), decl)
            })
            .collect();
        let component = ComponentDecl {
            source: absolute(base, self.source),
            inputs: Interface {
                params: self.params.clone(),
                artifacts: artifacts
                    .keys()
                    .map(|k| (k.clone(), ArtifactType::Artifact))
                    .collect(),
            },
            outputs: OutputInterface {
                params: BTreeMap::new(),
                artifacts: self.outputs,
            },
        };
        let pass = |k: &String| ParamSource {
            param: Some(k.clone()),
            ..Default::default()
        };
        let input = |k: &String| ArtifactSource {
            artifact: Some(k.clone()),
            ..Default::default()
        };
        let task = TaskSpec {
            component: self.task.into(),
            params: self.params.keys().map(|k| (k.clone(), pass(k))).collect(),
            artifacts: artifacts.keys().map(|k| (k.clone(), input(k))).collect(),
            ..self.settings
        };
        let mut name = self.name.to_string();
        name.truncate(63);
        Pipeline {
            api_version: API_VERSION.into(),
            kind: "Pipeline".into(),
            metadata: ObjectMeta {
                name,
                ..Default::default()
            },
            spec: PipelineSpec {
                description: Some(self.description),
                params: self.params,
                artifacts,
                components: [(self.task.to_string(), component)].into(),
                tasks: [(self.task.to_string(), task)].into(),
                ..Default::default()
            },
        }
    }
}
