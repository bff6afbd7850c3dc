//! `wasm-run models list|show|register|archive`: the model registry of this home (the same
//! rows `wasm-run ui` serves over Kubeflow Model Registry's REST API), from the command line,
//! in one namespace of it (`--namespace`, default `default`).

mod client;
pub mod register;
pub mod resolve;

use crate::home::Home;
use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use client::text;
pub use client::Client;
use register::{parse_metadata, property_text, NewVersion};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum Output {
    Text,
    Json,
}

#[derive(Args)]
pub struct ModelsArgs {
    /// The registry namespace to work in (sent as X-Weft-Namespace on every request): model
    /// names are unique per namespace, and other namespaces' models are not seen.
    #[arg(
        long,
        global = true,
        value_name = "NS",
        default_value = weft_registry::namespace::DEFAULT_NAMESPACE
    )]
    namespace: String,
    #[command(subcommand)]
    command: ModelsCommand,
}

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Registered models; with --versions NAME, the versions of that model.
    List {
        /// List the versions of this model instead.
        #[arg(long, value_name = "NAME")]
        versions: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// A model and its versions, or one version: its artifact, component and the run that
    /// made it.
    Show {
        name: String,
        #[arg(id = "model_version", value_name = "VERSION")]
        version: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Register a new version of a model (the model is made on first use).
    #[command(disable_version_flag = true)]
    Register(RegisterArgs),
    /// Archive a model, or one version of it: archived, it is no longer served from
    /// `model-registry://` and an archived model takes no new versions.
    Archive {
        name: String,
        #[arg(id = "model_version", value_name = "VERSION")]
        version: Option<String>,
    },
}

#[derive(Args)]
#[command(group(ArgGroup::new("what").required(true).multiple(true).args(["uri", "model_dir", "component"])))]
#[command(after_help = "\
A version registered with --component and --model-dir is served by naming it in an
InferenceService: `component: model-registry://NAME/VERSION` (its storageUri then defaults to
the version's model directory), or a component of your own with
`storageUri: model-registry://NAME/VERSION`.

Examples:
  wasm-run models register iris --version v1 --component iris-predictor.wasm --model-dir model/ \\
      --format logreg --format-version 1 --property accuracy=0.97 --property epochs=300")]
pub struct RegisterArgs {
    /// The registered model.
    name: String,
    /// The new version's name (a version is never overwritten).
    #[arg(long = "version", id = "model_version", value_name = "VERSION")]
    version: String,
    /// Where the model's files are: `sha256:<hex>`, an artifact in the store, or another URI
    /// (s3://, oci://...: recorded as given; `wasm-run serve` serves only stored artifacts).
    #[arg(long, conflicts_with = "model_dir")]
    uri: Option<String>,
    /// A model directory: copied into the artifact store; the version's URI is its digest.
    #[arg(long, value_name = "DIR")]
    model_dir: Option<PathBuf>,
    /// The weft:serve/predictor component that serves the model: stored as an artifact (as
    /// `wasm-run artifacts put` does), recorded by digest.
    #[arg(long, value_name = "FILE.wasm")]
    component: Option<PathBuf>,
    /// The model's format (the artifact's modelFormatName), e.g. onnx.
    #[arg(long)]
    format: Option<String>,
    /// The format's version (modelFormatVersion).
    #[arg(long, requires = "format")]
    format_version: Option<String>,
    #[arg(long)]
    description: Option<String>,
    /// The version's author (and the model's owner, when this makes the model).
    #[arg(long)]
    author: Option<String>,
    /// A custom property of the version (the PyPI client's `metadata`): KEY=VALUE (int,
    /// float, bool or string, inferred) or KEY:TYPE=VALUE. Repeatable. (Not `--metadata`:
    /// that global flag names the metadata database.)
    #[arg(long = "property", value_name = "KEY=VALUE", value_parser = parse_metadata)]
    properties: Vec<(String, Value)>,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

pub fn command(home: &Home, args: ModelsArgs) -> Result<ExitCode> {
    let client = Client::open(home, &args.namespace)?;
    match args.command {
        ModelsCommand::List { versions, output } => list(&client, versions.as_deref(), output),
        ModelsCommand::Show {
            name,
            version,
            output,
        } => match version {
            None => show_model(&client, &name, output),
            Some(v) => show_version(home, &client, &name, &v, output),
        },
        ModelsCommand::Register(args) => register(home, &client, args),
        ModelsCommand::Archive { name, version } => archive(&client, &name, version.as_deref()),
    }?;
    Ok(ExitCode::SUCCESS)
}

fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn list(client: &Client, versions_of: Option<&str>, output: Output) -> Result<()> {
    let Some(name) = versions_of else {
        let models = client.models()?;
        if output == Output::Json {
            return print_json(&json!(models));
        }
        println!(
            "{:<24} {:<9} {:<12} {:<21} DESCRIPTION",
            "NAME", "STATE", "OWNER", "UPDATED"
        );
        for m in &models {
            println!(
                "{:<24} {:<9} {:<12} {:<21} {}",
                text(m, "name"),
                text(m, "state"),
                text(m, "owner"),
                when(text(m, "lastUpdateTimeSinceEpoch")),
                text(m, "description")
            );
        }
        return Ok(());
    };
    let model = client.model(name)?;
    let versions = client.versions(text(&model, "id"))?;
    if output == Output::Json {
        return print_json(&json!(versions));
    }
    print_versions(&versions);
    Ok(())
}

fn print_versions(versions: &[Value]) {
    println!(
        "{:<20} {:<9} {:<12} {:<21} FROM RUN",
        "VERSION", "STATE", "AUTHOR", "CREATED"
    );
    for v in versions {
        let run = v["customProperties"]["weft.run"]["string_value"]
            .as_str()
            .unwrap_or("-");
        println!(
            "{:<20} {:<9} {:<12} {:<21} {run}",
            text(v, "name"),
            text(v, "state"),
            text(v, "author"),
            when(text(v, "createTimeSinceEpoch")),
        );
    }
}

fn show_model(client: &Client, name: &str, output: Output) -> Result<()> {
    let model = client.model(name)?;
    let versions = client.versions(text(&model, "id"))?;
    if output == Output::Json {
        return print_json(&json!({"model": model, "versions": versions}));
    }
    println!("model {name}: {}", text(&model, "state"));
    for field in ["owner", "description"] {
        if !text(&model, field).is_empty() {
            println!("  {field}: {}", text(&model, field));
        }
    }
    println!("  created: {}", when(text(&model, "createTimeSinceEpoch")));
    print_properties(&model);
    println!();
    print_versions(&versions);
    Ok(())
}

fn show_version(
    home: &Home,
    client: &Client,
    name: &str,
    version: &str,
    output: Output,
) -> Result<()> {
    let model = client.model(name)?;
    let found = client.version(&model, version)?;
    let artifacts = client.model_artifacts(text(&found, "id"))?;
    let run = lineage(home, &found);
    if output == Output::Json {
        return print_json(&json!({
            "model": model, "version": found, "artifacts": artifacts, "run": run,
        }));
    }
    println!("model {name}, version {version}: {}", text(&found, "state"));
    for field in ["author", "description"] {
        if !text(&found, field).is_empty() {
            println!("  {field}: {}", text(&found, field));
        }
    }
    println!("  created: {}", when(text(&found, "createTimeSinceEpoch")));
    println!("  serve as: {}{name}/{version}", resolve::SCHEME);
    for a in &artifacts {
        println!("  model artifact: {}", or_none(text(a, "uri")));
        if !text(a, "modelFormatName").is_empty() {
            let v = text(a, "modelFormatVersion");
            println!("    format: {} {v}", text(a, "modelFormatName"));
        }
        let component = &a["customProperties"][register::COMPONENT]["string_value"];
        println!(
            "    component: {}",
            or_none(component.as_str().unwrap_or(""))
        );
    }
    print_properties(&found);
    if !run.is_null() {
        let r = |k: &str| run[k].as_str().unwrap_or("-");
        println!(
            "  made by: run {} ({}, {})",
            r("id"),
            r("pipeline"),
            r("state")
        );
        println!(
            "    task {} output {}: {}",
            r("task"),
            r("output"),
            r("digest")
        );
    }
    Ok(())
}

fn or_none(s: &str) -> &str {
    if s.is_empty() {
        "(none)"
    } else {
        s
    }
}

/// The custom properties a user gave (Weft's own are shown apart).
fn print_properties(entity: &Value) {
    let Some(props) = entity["customProperties"].as_object() else {
        return;
    };
    let mine: Vec<_> = props
        .iter()
        .filter(|(k, _)| !k.starts_with(register::RESERVED))
        .collect();
    if mine.is_empty() {
        return;
    }
    println!("  metadata:");
    for (k, v) in mine {
        println!("    {k}: {}", property_text(v));
    }
}

/// The run that made a version, from its custom properties, with what this home's metadata
/// says of it (its pipeline and state), or null.
fn lineage(home: &Home, version: &Value) -> Value {
    let prop = |k: &str| version["customProperties"][k]["string_value"].as_str();
    let Some(run_id) = prop("weft.run") else {
        return Value::Null;
    };
    let state = home
        .open_metadata()
        .ok()
        .and_then(|m| m.run(run_id).ok())
        .map(|r| r.state)
        .unwrap_or_else(|| "not in this home's metadata".into());
    json!({
        "id": run_id,
        "pipeline": prop("weft.pipeline"),
        "state": state,
        "task": prop("weft.task"),
        "output": prop("weft.output"),
        "digest": prop("weft.digest"),
    })
}

/// A time in milliseconds since the epoch (as the API writes it), in RFC 3339.
fn when(ms: &str) -> String {
    match ms.parse::<u64>() {
        Ok(ms) => {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
            humantime::format_rfc3339_seconds(t).to_string()
        }
        Err(_) => "-".into(),
    }
}

fn register(home: &Home, client: &Client, args: RegisterArgs) -> Result<()> {
    // Everything refusable is refused before anything is stored.
    register::check_new(client, &args.name, &args.version)?;
    let artifacts = home.open_artifacts()?;
    if let Some(uri) = args.uri.as_deref().filter(|u| u.starts_with("sha256:")) {
        weft_spec::digest::parse(uri).with_context(|| format!("--uri {uri}"))?;
        if !artifacts.available(uri)? {
            bail!(
                "--uri {uri}: no such artifact in the store (store a directory with --model-dir)"
            );
        }
    }
    if let Some(dir) = &args.model_dir {
        if !dir.is_dir() {
            bail!("--model-dir {}: not a directory", dir.display());
        }
    }
    if let Some(file) = &args.component {
        check_component(file)?;
    }
    let component = match &args.component {
        Some(file) => Some(store(&artifacts, file, "--component")?),
        None => None,
    };
    let uri = match &args.model_dir {
        Some(dir) => Some(store(&artifacts, dir, "--model-dir")?),
        None => args.uri,
    };
    let new = NewVersion {
        model: args.name,
        version: args.version,
        uri,
        component,
        format: args.format,
        format_version: args.format_version,
        description: args.description,
        author: args.author,
        metadata: args.properties,
        source: None,
    };
    let done = register::register(client, &new)?;
    if args.output == Output::Json {
        return print_json(&json!({
            "model": done.model, "version": done.version, "artifact": done.artifact,
        }));
    }
    println!(
        "registered {0} version {1}: {2}{0}/{1}",
        new.model,
        new.version,
        resolve::SCHEME
    );
    println!(
        "  model artifact: {}",
        or_none(new.uri.as_deref().unwrap_or(""))
    );
    println!(
        "  component: {}",
        or_none(new.component.as_deref().unwrap_or(""))
    );
    Ok(())
}

/// Copies `path` into the artifact store: its digest.
pub(crate) fn store(
    artifacts: &weft_store::ArtifactStore,
    path: &Path,
    flag: &str,
) -> Result<String> {
    let stored = artifacts
        .import(path)
        .with_context(|| format!("{flag} {}: storing it", path.display()))?;
    Ok(stored.digest)
}

/// That `file` starts as a WebAssembly component does (a core module, or anything else, is refused
/// before it is stored).
pub(crate) fn check_component(file: &Path) -> Result<()> {
    use std::io::Read;
    const COMPONENT: [u8; 8] = [0, b'a', b's', b'm', 0x0d, 0, 0x01, 0];
    let mut head = Vec::with_capacity(8);
    std::fs::File::open(file)
        .and_then(|f| f.take(8).read_to_end(&mut head))
        .with_context(|| format!("--component {}", file.display()))?;
    if head == COMPONENT {
        return Ok(());
    }
    if head.starts_with(&COMPONENT[..4]) {
        bail!(
            "--component {}: a core WebAssembly module, not a component (a weft:serve/predictor component is needed)",
            file.display()
        );
    }
    bail!(
        "--component {}: not a WebAssembly component",
        file.display()
    )
}

fn archive(client: &Client, name: &str, version: Option<&str>) -> Result<()> {
    let model = client.model(name)?;
    let (what, entity) = match version {
        None => (format!("model {name}"), model.clone()),
        Some(v) => (
            format!("version {v} of model {name}"),
            client.version(&model, v)?,
        ),
    };
    if entity["state"] == "ARCHIVED" {
        println!("{what} was already archived");
        return Ok(());
    }
    let body = json!({"state": "ARCHIVED"});
    match version {
        None => client.update_model(text(&entity, "id"), &body)?,
        Some(_) => client.update_version(text(&entity, "id"), &body)?,
    };
    println!("archived {what}");
    Ok(())
}
