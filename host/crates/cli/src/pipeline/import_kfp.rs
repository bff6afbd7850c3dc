//! `wasm-run pipeline import-kfp IR.yaml`: a compiled KFP v2 pipeline of lightweight Python
//! components becomes a Weft pipeline directory (`pipeline.yaml` and one Python component
//! project per executor, each built). The conversion is `weft-kfp-import`'s; this writes it into
//! a staging directory, builds every component there, and moves it into place only when all of
//! it converted and built: a pipeline that converts in part writes nothing.

use crate::home::Home;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use weft_guest_build::{Project, Tools};
use weft_kfp_import::{Conversion, ImportError};

#[derive(clap::Args)]
pub struct ImportKfpArgs {
    /// The compiled KFP pipeline: the YAML `kfp.compiler.Compiler().compile` writes.
    #[arg(value_name = "IR.yaml")]
    file: PathBuf,
    /// The directory to write (default ./NAME, NAME being the pipeline's); it must not exist or
    /// be empty.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Where the build tools (componentize-py) are installed on first use and found after
    /// (default $WEFT_HOME/tools).
    #[arg(long, env = "WEFT_TOOLS_DIR", value_name = "DIR")]
    tools_dir: Option<PathBuf>,
}

/// Bad input: what cannot convert was said; nothing was written.
fn refused() -> ExitCode {
    ExitCode::from(2)
}

pub fn import(home: &Home, args: ImportKfpArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let conversion = match weft_kfp_import::import(&args.file.display().to_string(), &text) {
        Ok(c) => c,
        Err(e @ ImportError::Refused { .. }) => {
            eprintln!("error: {e}\nnothing was written");
            return Ok(refused());
        }
        Err(e) => return Err(e.into()),
    };
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(&conversion.pipeline.metadata.name));
    if out.exists()
        && std::fs::read_dir(&out)
            .with_context(|| format!("reading {}", out.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} exists and is not empty: choose another --out, or remove it",
            out.display()
        );
    }
    let tools = Tools::new(args.tools_dir.unwrap_or_else(|| home.build_tools()));
    let stage = staging_dir(&out)?;
    let built = write_and_build(&conversion, &stage, &tools);
    match built {
        Ok(failures) if failures.is_empty() => {}
        Ok(failures) => {
            let _ = std::fs::remove_dir_all(&stage);
            eprintln!(
                "error: {}: {} of KFP pipeline `{}` did not build:\n{}\nnothing was written",
                args.file.display(),
                if failures.len() == 1 {
                    "1 component".to_string()
                } else {
                    format!("{} components", failures.len())
                },
                conversion.pipeline.metadata.name,
                failures.join("\n")
            );
            return Ok(refused());
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&stage);
            return Err(e);
        }
    }
    if out.exists() {
        std::fs::remove_dir(&out).with_context(|| format!("replacing {}", out.display()))?;
    }
    std::fs::rename(&stage, &out)
        .with_context(|| format!("moving {} to {}", stage.display(), out.display()))?;
    for note in &conversion.notes {
        eprintln!("note: {note}");
    }
    let file = out.join("pipeline.yaml");
    println!(
        "{}: pipeline `{}` with {} tasks and {} Python components (under {}), converted from {}",
        file.display(),
        conversion.pipeline.metadata.name,
        conversion.pipeline.spec.tasks.len()
            + usize::from(conversion.pipeline.spec.exit_handler.is_some()),
        conversion.components.len(),
        out.join("components").display(),
        args.file.display()
    );
    println!("run it with `wasm-run pipeline run {}`", file.display());
    Ok(ExitCode::SUCCESS)
}

/// A fresh directory beside `out`, moved into its place once everything built.
fn staging_dir(out: &Path) -> Result<PathBuf> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pipeline".into());
    let stage = parent.join(format!(".{name}.import-kfp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage).with_context(|| format!("creating {}", stage.display()))?;
    Ok(stage)
}

/// Writes the conversion into `dir` and builds each component there; returns one line per
/// component that did not build (all of them are tried).
fn write_and_build(conversion: &Conversion, dir: &Path, tools: &Tools) -> Result<Vec<String>> {
    conversion
        .write(dir)
        .with_context(|| format!("writing into {}", dir.display()))?;
    let mut failures = Vec::new();
    for c in &conversion.components {
        eprintln!("building {} (from KFP executor {})", c.name, c.executor);
        let built = Project::read(&dir.join(c.dir())).and_then(|project| {
            weft_guest_build::build_project(&project, &project.dir.join("target/weft"), tools)
        });
        if let Err(e) = built {
            failures.push(format!(
                "  - deploymentSpec.executors.{} (component {}): {e:#}",
                c.executor, c.name
            ));
        }
    }
    Ok(failures)
}
