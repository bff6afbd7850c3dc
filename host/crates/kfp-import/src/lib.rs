//! `wasm-run pipeline import-kfp`: a compiled Kubeflow Pipelines v2 pipeline (the PipelineSpec
//! YAML `kfp.compiler.Compiler().compile` writes) whose components are lightweight Python
//! components becomes a Weft pipeline with Python components.
//!
//! Each executor's embedded function source becomes a Python component project (`weft.toml`,
//! `app.py` holding the source unchanged plus the lines that make it a `@weft.step`, and a `kfp`
//! shim mapping `kfp.dsl` onto the weft guest SDK); the DAG, with its groups flattened, becomes
//! `pipeline.yaml`. What cannot convert (container images, packages with native code, IR
//! features Weft lacks) is refused with the IR path and the reason, every one of them, and then
//! nothing is converted. Building the projects (componentize-py) is the caller's: `wasm-run`
//! builds each with `weft_guest_build::build_project`.

mod cel;
mod convert;
mod executor;
pub mod ir;
mod project;

pub use executor::PythonFunction;
pub use project::PythonComponent;

use std::path::Path;
use weft_spec::pipeline::{ObjectMeta, Pipeline, API_VERSION};
use weft_spec::{Document, SpecError};

/// Why one part of the IR cannot convert.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Reason {
    #[error("a container component (image `{image}`, running `{command}`): only lightweight Python components (`@dsl.component`), whose source the IR embeds, become Weft components")]
    ContainerImage { image: String, command: String },
    #[error("a containerized Python component (`target_image`, image `{image}`): its source is built into the image, not embedded in the IR")]
    ContainerizedPython { image: String },
    #[error("the package `{package}` {why}: only pure-Python packages can be bundled into a component (PyPI has no WebAssembly/WASI builds of packages with native code)")]
    NativePackage { package: String, why: String },
    #[error("the function imports `{module}` (from the package {package}, which has native code or needs a package that does) without installing it: KFP's image `{image}` would provide it, and no pure-Python bundle can")]
    NativeImport {
        module: String,
        package: String,
        image: String,
    },
    #[error("the condition `{condition}` does not convert: {why}")]
    Condition { condition: String, why: String },
    #[error("{what} is not supported: {why}")]
    Unsupported { what: String, why: String },
}

/// One part of the IR that cannot convert: where it is, and why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct Refusal {
    /// The IR path, e.g. `deploymentSpec.executors.exec-train.container.image`.
    pub path: String,
    pub reason: Reason,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is not a PipelineSpec the importer can read.
    #[error("{0} (is this a KFP v2 pipeline compiled by `kfp.compiler.Compiler().compile`?)")]
    Parse(SpecError),
    /// Parts of the pipeline cannot convert; all of them.
    #[error("{file}: {} of KFP pipeline `{pipeline}` cannot be converted:\n{}", count(.refusals.len()), list(.refusals))]
    Refused {
        file: String,
        pipeline: String,
        refusals: Vec<Refusal>,
    },
    /// The importer made a pipeline Weft rejects: the importer's fault.
    #[error("the converted pipeline does not validate (an importer bug; please report it with the IR):\n{}", .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<SpecError>),
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 part".into()
    } else {
        format!("{n} parts")
    }
}

fn list(refusals: &[Refusal]) -> String {
    refusals
        .iter()
        .map(|r| format!("  - {r}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A converted pipeline, before anything is written.
#[derive(Clone, Debug)]
pub struct Conversion {
    pub pipeline: Pipeline,
    /// The component projects, one per distinct executor (identical ones are shared).
    pub components: Vec<PythonComponent>,
    /// What converted with a difference worth knowing (an image ignored, a setting Weft lacks).
    pub notes: Vec<String>,
}

/// Reads KFP IR `text` (from `file`, for messages) and converts it, or names everything that
/// cannot convert.
pub fn import(file: &str, text: &str) -> Result<Conversion, ImportError> {
    let (spec_text, platform) = split_documents(text);
    let doc = Document::<ir::PipelineSpec>::parse(file, spec_text).map_err(ImportError::Parse)?;
    let ir = &doc.value;
    let mut converter = convert::Converter::new(ir);
    let spec = converter.run();
    let mut refusals = std::mem::take(&mut converter.refusals);
    if let Some(platform) = platform {
        let doc =
            Document::<ir::PlatformSpec>::parse(file, platform).map_err(ImportError::Parse)?;
        for name in doc.value.platforms.keys() {
            refusals.push(Refusal {
                path: format!("platforms.{name}"),
                reason: Reason::Unsupported {
                    what: format!("platform configuration for `{name}` (kfp-kubernetes: secrets, volumes, node selectors, ...)"),
                    why: "a Weft step is granted files, environment variables and network per task in pipeline.yaml instead".into(),
                },
            });
        }
    }
    if !refusals.is_empty() {
        refusals.dedup();
        return Err(ImportError::Refused {
            file: file.into(),
            pipeline: ir.pipeline_info.name.clone(),
            refusals,
        });
    }
    let mut description = spec.description.clone();
    if description.is_none() {
        description = Some(format!(
            "Converted from the KFP pipeline `{}`{} by wasm-run pipeline import-kfp.",
            ir.pipeline_info.name,
            ir.sdk_version
                .as_deref()
                .map(|v| format!(" ({v})"))
                .unwrap_or_default()
        ));
    }
    let pipeline = Pipeline {
        api_version: API_VERSION.into(),
        kind: "Pipeline".into(),
        metadata: ObjectMeta {
            name: sanitize(&ir.pipeline_info.name, 63),
            ..Default::default()
        },
        spec: weft_spec::pipeline::PipelineSpec {
            description,
            ..spec
        },
    };
    let conversion = Conversion {
        pipeline,
        components: converter.projects,
        notes: converter.notes,
    };
    conversion.check()?;
    Ok(conversion)
}

/// The PipelineSpec document, and kfp-kubernetes' platform document when there is one.
fn split_documents(text: &str) -> (&str, Option<&str>) {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "---" && offset > 0 && !text[..offset].trim().is_empty() {
            let rest = &text[offset + line.len()..];
            return (&text[..offset], (!rest.trim().is_empty()).then_some(rest));
        }
        offset += line.len();
    }
    (text, None)
}

impl Conversion {
    /// `pipeline.yaml`'s text.
    pub fn pipeline_yaml(&self) -> String {
        let yaml = serde_saphyr::to_string(&self.pipeline).expect("a Pipeline serialises");
        format!(
            "# Converted from a KFP pipeline by `wasm-run pipeline import-kfp`. Each component is a\n\
             # Python project under components/ (`wasm-run build components/NAME` rebuilds one).\n{yaml}"
        )
    }

    /// The converted pipeline passes Weft's validation (component files aside).
    fn check(&self) -> Result<(), ImportError> {
        let text = self.pipeline_yaml();
        let doc = Document::<Pipeline>::parse("pipeline.yaml", &text)
            .map_err(|e| ImportError::Invalid(vec![e]))?;
        weft_spec::validate::validate(&doc).map_err(ImportError::Invalid)?;
        Ok(())
    }

    /// Writes `pipeline.yaml` and every component project into `dir` (which must exist).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        for c in &self.components {
            c.write(dir)?;
        }
        std::fs::write(dir.join("pipeline.yaml"), self.pipeline_yaml())
    }
}

/// A name Weft accepts for a task, component or pipeline: lowercase ASCII letters, digits, `-`
/// and `_`, starting with a letter, at most `max` long.
pub(crate) fn sanitize(name: &str, max: usize) -> String {
    let mut out: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '_') => c,
            _ => '-',
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, "x-");
    }
    out.truncate(max);
    out
}

/// `text` cut to about `max` characters, with a mark.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text,
    }
}

#[cfg(test)]
mod tests;
