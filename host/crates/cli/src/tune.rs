//! `wasm-run tune EXPERIMENT.yaml` (Katib's Experiment, run here: trials as sandboxed pipeline
//! runs) and `wasm-run experiments list|show|trials|delete`.

use crate::home::Home;
use crate::runs::Format;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use weft_experiment::{ExperimentError, ExperimentEvent, ExperimentSummary};

#[derive(Args)]
pub struct TuneArgs {
    /// The experiment file (`kind: Experiment`). Running it again resumes it where it stopped
    /// (after a kill or a host failure), or, with `resumePolicy: LongRunning`, goes on to a
    /// larger `maxTrialCount`.
    file: PathBuf,
    /// Only check the file (spec, algorithm and early-stopping settings); run nothing.
    #[arg(long)]
    validate: bool,
    /// Print the outcome as JSON (the experiment, its trials, the best trial).
    #[arg(long)]
    json: bool,
    /// Write the trial counters and the best trial so far to Experiment NAMESPACE/NAME's status
    /// as trials start and finish (at most once a second), and once more when the experiment
    /// ends: what the runner in a cluster does for the operator. Needs a build with the `kube`
    /// feature.
    #[arg(long, value_name = "NAMESPACE/NAME", value_parser = crate::pipeline::parse_run_ref)]
    kube_status: Option<(String, String)>,
}

#[derive(Subcommand)]
pub enum ExperimentsCommand {
    /// Every experiment: state, trials, best value.
    List {
        #[arg(long, value_enum, default_value = "table")]
        output: Format,
    },
    /// One experiment: its state and reason, trial counts and the best trial.
    Show {
        name: String,
        #[arg(long, value_enum, default_value = "table")]
        output: Format,
    },
    /// The trials of an experiment: parameters, state, objective.
    Trials {
        name: String,
        #[arg(long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Forget an experiment and its trials (their runs stay in `runs list`).
    Delete { name: String },
}

pub fn tune(home: &Home, args: TuneArgs) -> Result<ExitCode> {
    let text = weft_tree::read_regular_text(&args.file, weft_tree::MAX_DOCUMENT_BYTES)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let doc = match weft_experiment::load(&args.file, &text) {
        Ok(doc) => doc,
        Err(e) => return report(e),
    };
    let name = doc.value.metadata.name.clone();
    if args.validate {
        println!("{}: valid experiment `{name}`", args.file.display());
        return Ok(ExitCode::SUCCESS);
    }
    let exec = Arc::new(crate::pipeline::open(home)?);
    let base = args.file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let state_dir = home.path().join("experiments").join(&name);
    // A resumed experiment's status starts from the trials it already has.
    let stored = match &args.kube_status {
        Some(_) => home.open_metadata()?.trials(&name)?,
        None => Vec::new(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (rx, kube_report) = match args.kube_status {
            Some(experiment) => {
                let spec = doc.value.spec.clone();
                let (rx, report) =
                    crate::kube_status::follow_experiment(experiment, spec, stored, rx).await?;
                (rx, Some(report))
            }
            None => (rx, None),
        };
        let cancel = Arc::new(AtomicBool::new(false));
        let ctrlc = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ncancelling: stopping running trials (Ctrl-C again to abort)");
                ctrlc.store(true, Ordering::Relaxed);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        let max = doc.value.spec.max_trial_count;
        let maximize =
            doc.value.spec.objective.direction == weft_spec::experiment::ObjectiveType::Maximize;
        let live = tokio::spawn(follow(rx, max, maximize, args.json));
        let opts = weft_experiment::ExperimentOptions {
            state_dir,
            events: Some(tx),
            cancel,
        };
        let result = weft_experiment::run_experiment(&doc, &base, exec, opts).await;
        let _ = live.await;
        if let Some(report) = kube_report {
            let trials = result.as_ref().ok().map(|s| s.trials.as_slice());
            report.finish(trials).await;
        }
        anyhow::Ok(result)
    })?;
    match result {
        Ok(summary) => finish(&summary, args.json),
        Err(e) => report(e),
    }
}

/// The live view: a line per trial as it starts and ends, with the trials by state and the
/// best so far with its parameters.
async fn follow(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<ExperimentEvent>,
    max: Option<u32>,
    maximize: bool,
    quiet: bool,
) {
    let mut live = Live {
        total: max.map(|m| m.to_string()).unwrap_or_else(|| "?".into()),
        maximize,
        ..Default::default()
    };
    while let Some(event) = rx.recv().await {
        if !quiet {
            eprintln!("{}", live.line(event));
        }
    }
}

#[derive(Default)]
struct Live {
    total: String,
    maximize: bool,
    running: usize,
    counts: std::collections::BTreeMap<&'static str, usize>,
    params: std::collections::HashMap<String, String>,
    /// (value, trial, parameters)
    best: Option<(f64, String, String)>,
}

impl Live {
    fn line(&mut self, event: ExperimentEvent) -> String {
        match event {
            ExperimentEvent::TrialStarted { trial, assignment } => {
                self.running += 1;
                let params = serde_json::to_string(&assignment).unwrap_or_default();
                self.params.insert(trial.clone(), params.clone());
                format!("{} {trial} started {params}", self.status())
            }
            ExperimentEvent::TrialFinished {
                trial,
                state,
                objective,
                message,
            } => {
                self.running = self.running.saturating_sub(1);
                *self.counts.entry(state.as_str()).or_default() += 1;
                if let (weft_experiment::TrialState::Succeeded, Some(v)) = (state, objective) {
                    let better = |b: f64| if self.maximize { v > b } else { v < b };
                    if !v.is_nan() && self.best.as_ref().is_none_or(|(b, ..)| better(*b)) {
                        let params = self.params.get(&trial).cloned().unwrap_or_default();
                        self.best = Some((v, trial.clone(), params));
                    }
                }
                let value = objective
                    .map(|v| format!(" objective {v}"))
                    .unwrap_or_default();
                let why = message.map(|m| format!(" ({m})")).unwrap_or_default();
                format!("{} {trial} {}{value}{why}", self.status(), state.as_str())
            }
        }
    }

    /// `[7/20: 5 Succeeded, 2 EarlyStopped; 3 running; best 0.41 trial-3 {...}]`
    fn status(&self) -> String {
        let done: usize = self.counts.values().sum();
        let counts: Vec<String> = self
            .counts
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        let best = match &self.best {
            Some((v, t, p)) => format!("; best {v} {t} {p}"),
            None => String::new(),
        };
        let counts = if counts.is_empty() {
            String::new()
        } else {
            format!(" {}", counts.join(", "))
        };
        format!(
            "[{done}/{}:{counts}; {} running{best}]",
            self.total, self.running
        )
    }
}

fn finish(summary: &ExperimentSummary, json: bool) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(summary)?);
    } else {
        print_summary(summary);
    }
    Ok(match summary.experiment.state.as_str() {
        "Succeeded" => ExitCode::SUCCESS,
        "Cancelled" => ExitCode::from(130),
        _ => ExitCode::from(1),
    })
}

fn print_summary(s: &ExperimentSummary) {
    let e = &s.experiment;
    println!("experiment {}: {}", e.name, e.state);
    if let Some(m) = &e.message {
        println!("  {m}");
    }
    let counts: Vec<String> = s.counts().iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!("  trials: {}", counts.join(", "));
    match s
        .best_trial
        .as_ref()
        .and_then(|b| s.trials.iter().find(|t| &t.name == b))
    {
        Some(best) => println!(
            "  best: {} objective {} {}",
            best.name,
            best.objective.unwrap_or(f64::NAN),
            best.assignment_json
        ),
        None => println!("  best: none (no trial succeeded)"),
    }
}

/// Errors by kind: a bad spec or a refused rerun is bad input (2), a host failure 3.
fn report(e: ExperimentError) -> Result<ExitCode> {
    eprintln!("error: {e}");
    Ok(match e {
        ExperimentError::Host(_) => crate::exit::host_failure(),
        ExperimentError::Suggest(_) => ExitCode::from(1),
        _ => ExitCode::from(2),
    })
}

pub fn experiments(home: &Home, cmd: ExperimentsCommand) -> Result<ExitCode> {
    let meta = home.open_metadata()?;
    match cmd {
        ExperimentsCommand::List { output } => {
            let all = meta.experiments()?;
            let mut rows = Vec::new();
            for e in all {
                let trials = meta.trials(&e.name)?;
                rows.push(summary_of(e, trials));
            }
            match output {
                Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                Format::Table => {
                    println!(
                        "{:<32} {:<10} {:>6} {:>14}  BEST TRIAL",
                        "NAME", "STATE", "TRIALS", "BEST"
                    );
                    for r in &rows {
                        let best = r
                            .best_trial
                            .as_ref()
                            .and_then(|b| r.trials.iter().find(|t| &t.name == b));
                        let value = best
                            .and_then(|t| t.objective)
                            .map(|v| format!("{v:.6}"))
                            .unwrap_or_else(|| "-".into());
                        let name = best.map(|t| t.name.as_str()).unwrap_or("-");
                        println!(
                            "{:<32} {:<10} {:>6} {:>14}  {name}",
                            r.experiment.name,
                            r.experiment.state,
                            r.trials.len(),
                            value
                        );
                    }
                }
            }
        }
        ExperimentsCommand::Show { name, output } => {
            let s = summary_of(found(&meta, &name)?, meta.trials(&name)?);
            match output {
                Format::Json => println!("{}", serde_json::to_string_pretty(&s)?),
                Format::Table => print_summary(&s),
            }
        }
        ExperimentsCommand::Trials { name, output } => {
            found(&meta, &name)?;
            let trials = meta.trials(&name)?;
            match output {
                Format::Json => println!("{}", serde_json::to_string_pretty(&trials)?),
                Format::Table => {
                    println!(
                        "{:<40} {:<18} {:>14}  PARAMETERS",
                        "TRIAL", "STATE", "OBJECTIVE"
                    );
                    for t in &trials {
                        let v = t
                            .objective
                            .map(|v| format!("{v:.6}"))
                            .unwrap_or_else(|| "-".into());
                        println!(
                            "{:<40} {:<18} {:>14}  {}",
                            t.name, t.state, v, t.assignment_json
                        );
                    }
                }
            }
        }
        ExperimentsCommand::Delete { name } => {
            found(&meta, &name)?;
            meta.delete_experiment(&name)?;
            println!("deleted experiment {name} (its trials' runs stay in `runs list`)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn found(meta: &weft_store::MetadataStore, name: &str) -> Result<weft_store::ExperimentRecord> {
    meta.experiment(name)?
        .with_context(|| format!("no experiment `{name}` (see `wasm-run experiments list`)"))
}

/// An experiment's summary from its stored record.
fn summary_of(
    e: weft_store::ExperimentRecord,
    trials: Vec<weft_store::TrialRecord>,
) -> ExperimentSummary {
    ExperimentSummary::from_store(e, trials)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_experiment::TrialState;

    fn finished(trial: &str, state: TrialState, objective: Option<f64>) -> ExperimentEvent {
        ExperimentEvent::TrialFinished {
            trial: trial.into(),
            state,
            objective,
            message: None,
        }
    }

    #[test]
    fn the_live_line_counts_states_and_keeps_the_best_by_direction() {
        let mut live = Live {
            total: "4".into(),
            maximize: true,
            ..Default::default()
        };
        let started = |t: &str, x: i64| ExperimentEvent::TrialStarted {
            trial: t.into(),
            assignment: [("x".to_string(), weft_experiment::TrialValue::Int(x))].into(),
        };
        assert_eq!(
            live.line(started("t0", 1)),
            "[0/4:; 1 running] t0 started {\"x\":1}"
        );
        live.line(started("t1", 2));
        live.line(finished("t0", TrialState::Succeeded, Some(0.5)));
        // A better value from a stopped or failed trial never becomes the best.
        live.line(finished("t1", TrialState::EarlyStopped, Some(0.9)));
        live.line(started("t2", 3));
        let line = live.line(finished("t2", TrialState::Succeeded, Some(0.7)));
        assert_eq!(
            line,
            "[3/4: 1 EarlyStopped, 2 Succeeded; 0 running; best 0.7 t2 {\"x\":3}] t2 Succeeded objective 0.7"
        );
    }
}
