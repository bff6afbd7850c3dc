//! Inspecting what ran: `runs list|show`, `logs`, `artifacts list|put|get|verify`, `lineage`.

use crate::home::Home;
use anyhow::{bail, Context, Result};
use clap::{Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use weft_pipeline::RunSummary;
use weft_store::{MetadataStore, TaskRecord};

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum Format {
    Table,
    Json,
}

#[derive(Subcommand)]
pub enum RunsCommand {
    /// Runs, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long, value_enum, default_value = "table")]
        output: Format,
    },
    /// One run: its tasks, states, timings, outputs and metrics.
    Show {
        run: String,
        #[arg(long, value_enum, default_value = "table")]
        output: Format,
    },
}

#[derive(Subcommand)]
pub enum ArtifactsCommand {
    /// Artifacts recorded (of one run with --run).
    List {
        #[arg(long)]
        run: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Store a file or directory as an artifact (and in the remote store, with
    /// --artifact-store) and print its digest: how components and models get a `sha256:` name
    /// that pipelines, InferenceServices and the operator refer to.
    Put { path: PathBuf },
    /// Check the store: every artifact against its digest, the metadata against the store,
    /// every compiled-component cache entry against its seal (an fsck). Exits 1 when it finds
    /// damage it did not repair.
    ///
    /// With --repair, corrupt artifacts are moved aside into `artifacts/corrupt/` (and fetched
    /// again from --artifact-store when it has a good copy); the cache then misses on them, so
    /// the next run that needs one runs the task that makes it. Bad cache entries are removed
    /// and compiled again on next use.
    Verify {
        #[arg(long)]
        repair: bool,
        #[arg(long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Copy an artifact (by digest) out of the store into a directory; its content is checked
    /// against its digest first.
    Get {
        digest: String,
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
    },
}

fn meta(home: &Home) -> Result<MetadataStore> {
    home.open_metadata()
}

pub fn runs(home: &Home, cmd: RunsCommand) -> Result<ExitCode> {
    let db = meta(home)?;
    match cmd {
        RunsCommand::List { limit, output } => {
            let runs = db.runs(limit)?;
            if output == Format::Json {
                let rows: Vec<_> = runs
                    .iter()
                    .map(|r| serde_json::json!({"id": r.id, "pipeline": r.pipeline, "state": r.state, "created_at": r.created_at, "finished_at": r.finished_at, "error": r.error}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("{:<38} {:<20} {:<10} CREATED", "RUN", "PIPELINE", "STATE");
                for r in runs {
                    println!(
                        "{:<38} {:<20} {:<10} {}",
                        r.id, r.pipeline, r.state, r.created_at
                    );
                }
            }
        }
        RunsCommand::Show { run, output } => {
            let record = db.run(&run)?;
            let summary = RunSummary {
                run_id: record.id.clone(),
                state: record.state.clone(),
                tasks: db.tasks(&run)?,
                host_failure: None,
            };
            print_summary(home, &summary, output == Format::Json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The run table (or JSON with tasks, artifacts and metrics).
pub fn print_summary(home: &Home, s: &RunSummary, json: bool) -> Result<()> {
    let db = meta(home)?;
    let events = db.events(Some(&s.run_id))?;
    let metrics = db.metrics(&s.run_id)?;
    if json {
        let doc = serde_json::json!({
            "run_id": s.run_id,
            "state": s.state,
            "tasks": s.tasks,
            "artifacts": events,
            "metrics": metrics,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!("run {}: {}", s.run_id, s.state);
    println!("  {:<16} {:<14} {:>10}  OUTPUTS", "TASK", "STATE", "TIME");
    for t in &s.tasks {
        println!(
            "  {:<16} {:<14} {:>10}  {}",
            t.name,
            t.state.as_str(),
            time(t),
            outputs(t)
        );
        if let Some(e) = &t.error {
            println!("  {:<16} {}", "", weft_spec::text::escape_control(e));
        }
    }
    let outs: Vec<_> = events.iter().filter(|e| e.direction == "output").collect();
    if !outs.is_empty() {
        println!("artifacts:");
        for e in outs {
            println!(
                "  {}.{} ({})  {}",
                e.task, e.name, e.artifact_type, e.digest
            );
        }
    }
    Ok(())
}

fn time(t: &TaskRecord) -> String {
    match (t.state, t.duration_ms) {
        (weft_store::TaskState::Skipped, _) => "cached".into(),
        (_, Some(ms)) => format!("{ms:.1} ms"),
        _ => "-".into(),
    }
}

fn outputs(t: &TaskRecord) -> String {
    let Some(json) = &t.outputs_json else {
        return String::new();
    };
    let Ok(map) =
        serde_json::from_str::<std::collections::BTreeMap<String, weft_spec::ParamValue>>(json)
    else {
        return json.clone();
    };
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn logs(home: &Home, run: &str, task: &str) -> Result<ExitCode> {
    let db = meta(home)?;
    db.run(run)?;
    let tasks = db.tasks(run)?;
    let Some(t) = tasks.iter().find(|t| t.name == task) else {
        bail!(
            "run {run} has no task `{task}` (tasks: {})",
            tasks
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let Some(path) = &t.log_path else {
        bail!(
            "task `{task}` of run {run} has no log (state {})",
            t.state.as_str()
        );
    };
    let text = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    use std::io::Write;
    let _ = std::io::stdout().write_all(&text);
    Ok(ExitCode::SUCCESS)
}

pub fn artifacts(home: &Home, cmd: ArtifactsCommand) -> Result<ExitCode> {
    let db = meta(home)?;
    match cmd {
        ArtifactsCommand::List { run, output } => {
            let all = db.artifacts()?;
            let events = db.events(run.as_deref())?;
            let rows: Vec<_> = all
                .into_iter()
                .filter(|(d, ..)| run.is_none() || events.iter().any(|e| &e.digest == d))
                .map(|(digest, ty, bytes, files)| {
                    let producer = events
                        .iter()
                        .find(|e| e.digest == digest && e.direction == "output");
                    (
                        digest,
                        ty,
                        bytes,
                        files,
                        producer.map(|e| format!("{}/{}.{}", e.run_id, e.task, e.name)),
                    )
                })
                .collect();
            if output == Format::Json {
                let json: Vec<_> = rows
                    .iter()
                    .map(|(d, t, b, f, p)| serde_json::json!({"digest": d, "type": t, "bytes": b, "files": f, "produced_by": p}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&json)?);
            } else {
                println!(
                    "{:<72} {:<22} {:>10}  PRODUCED BY",
                    "DIGEST", "TYPE", "BYTES"
                );
                for (d, t, b, _, p) in rows {
                    println!(
                        "{d:<72} {t:<22} {b:>10}  {}",
                        p.unwrap_or_else(|| "(input)".into())
                    );
                }
            }
        }
        ArtifactsCommand::Put { path } => {
            let store = home.open_artifacts()?;
            let stored = store
                .import(&path)
                .with_context(|| format!("storing {}", path.display()))?;
            println!("{}", stored.digest);
        }
        ArtifactsCommand::Verify { repair, output } => return verify(home, &db, repair, output),
        ArtifactsCommand::Get { digest, to } => {
            let store = home.open_artifacts()?;
            let local = store
                .verified_local(&digest)
                .with_context(|| format!("getting artifact {digest}"))?;
            weft_store::copy_tree(&local, &to)?;
            println!("{}", to.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `artifacts verify`: see [`ArtifactsCommand::Verify`].
fn verify(home: &Home, db: &MetadataStore, repair: bool, output: Format) -> Result<ExitCode> {
    let store = home.open_artifacts()?;
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fsck = store.fsck(repair, |done, total| {
        if tty && (done % 64 == 0 || done == total) {
            eprint!("\rchecking artifacts: {done}/{total}");
            if done == total {
                eprintln!();
            }
        }
    })?;
    // Recorded by a run but in neither the store nor the backend: the cache misses on them.
    let missing: Vec<String> = db
        .artifacts()?
        .into_iter()
        .map(|(digest, ..)| digest)
        .filter(|d| !store.available(d).unwrap_or(false))
        .collect();
    let cache = weft_runtime::verify_cache_dir(&home.component_cache(), repair)
        .with_context(|| format!("checking {}", home.component_cache().display()))?;
    let damaged =
        !fsck.corrupt.is_empty() || !fsck.stray.is_empty() || (!repair && !cache.bad.is_empty());
    if output == Format::Json {
        let json = serde_json::json!({
            "artifacts": fsck, "missing": missing, "component_cache": cache, "ok": !damaged,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("{} artifacts intact", fsck.checked.len());
        for d in &fsck.corrupt {
            println!("CORRUPT  {d}  (--repair moves it aside; the task that made it runs again)");
        }
        for (d, refetched) in &fsck.repaired {
            let how = if *refetched {
                "fetched again from the artifact store"
            } else {
                "moved aside; the next run that needs it recomputes it"
            };
            println!("REPAIRED {d}  ({how})");
        }
        for p in &fsck.stray {
            println!("STRAY    {}  (not an artifact; left alone)", p.display());
        }
        for d in &missing {
            println!(
                "MISSING  {d}  (recorded by a run, not stored; a run that needs it recomputes it)"
            );
        }
        println!("{} compiled components intact", cache.intact);
        for (p, why) in &cache.bad {
            let done = if repair {
                "removed; compiled again on next use"
            } else {
                "--repair removes it"
            };
            println!("BAD CACHE ENTRY {}: {why} ({done})", p.display());
        }
    }
    Ok(if damaged {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn lineage(home: &Home, digest: &str, output: Format) -> Result<ExitCode> {
    let events = meta(home)?.lineage(digest)?;
    if events.is_empty() {
        bail!("no run produced or consumed artifact {digest}");
    }
    if output == Format::Json {
        println!("{}", serde_json::to_string_pretty(&events)?);
    } else {
        for e in events {
            let verb = if e.direction == "output" {
                "produced by"
            } else {
                "consumed by"
            };
            println!(
                "{verb} run {} task {} as `{}` ({})",
                e.run_id, e.task, e.name, e.artifact_type
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
