//! The live view of a pipeline run: a bar of tasks done, the tasks running, per-task timings,
//! components compiling for their first use; and [`CompileView`], the same announcement for a
//! single component (`run`, `compile`). On a terminal it redraws; otherwise (CI, pipes) it
//! prints one line per transition.

use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use weft_pipeline::RunEvent;
use weft_store::TaskState;

pub struct Progress {
    bar: ProgressBar,
    running: BTreeSet<String>,
    compiling: BTreeSet<String>,
    failed: usize,
    tty: bool,
}

impl Progress {
    pub fn new(total: usize) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = if tty {
            ProgressBar::new(total as u64)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} tasks  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Progress {
            bar,
            running: BTreeSet::new(),
            compiling: BTreeSet::new(),
            failed: 0,
            tty,
        }
    }

    /// One progress line; task errors in it are guest text, so control characters are escaped.
    fn line(&self, text: String) {
        let text = weft_spec::text::escape_control(&text).into_owned();
        if self.tty {
            self.bar.println(text);
        } else {
            eprintln!("{text}");
        }
    }

    fn refresh(&self) {
        let running: Vec<&str> = self.running.iter().map(String::as_str).collect();
        let failed = if self.failed > 0 {
            format!("{} failed  ", self.failed)
        } else {
            String::new()
        };
        let compiling = if self.compiling.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = self.compiling.iter().map(String::as_str).collect();
            format!("compiling (first use): {}  ", names.join(", "))
        };
        self.bar.set_message(format!(
            "{failed}{compiling}running: {}",
            running.join(", ")
        ));
    }

    pub async fn follow(mut self, mut rx: UnboundedReceiver<RunEvent>) {
        while let Some(event) = rx.recv().await {
            match event {
                RunEvent::Started { run_id, tasks } => {
                    self.line(format!("run {run_id}: {tasks} tasks"))
                }
                RunEvent::TaskStarted { task, attempt } => {
                    if attempt > 1 {
                        self.line(format!("  {task}: attempt {attempt}"));
                    }
                    self.running.insert(task);
                }
                RunEvent::TaskRetrying {
                    task,
                    attempt,
                    delay,
                    error,
                } => {
                    self.line(format!(
                        "  {task}: attempt {attempt} failed ({error}); retrying in {delay:?}"
                    ));
                }
                RunEvent::TaskFinished {
                    task,
                    state,
                    duration,
                    detail,
                } => {
                    self.running.remove(&task);
                    self.bar.inc(1);
                    if state == TaskState::Failed {
                        self.failed += 1;
                    }
                    let time = duration
                        .map(|d| format!(" in {:.1} ms", d.as_secs_f64() * 1e3))
                        .unwrap_or_default();
                    let detail = detail.map(|d| format!(" ({d})")).unwrap_or_default();
                    self.line(format!("  {task}: {}{time}{detail}", state.as_str()));
                }
                RunEvent::Compiling { component, bytes } => {
                    self.line(format!(
                        "  compiling {component} (first use)… ({})",
                        bytesize::ByteSize(bytes)
                    ));
                    self.compiling.insert(component);
                }
                RunEvent::Compiled { component, took } => {
                    self.line(format!("  compiled {component} in {}", seconds(took)));
                    self.compiling.remove(&component);
                }
            }
            self.refresh();
        }
        self.bar.finish_and_clear();
    }
}

/// A duration as people read a compile's: `12.3 s`, `0.4 s`.
pub fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The announcement of one component's compile, on stderr: a spinner with the time so far
/// on a terminal, a line otherwise; nothing at all unless a compile starts (a cached load is
/// quick and says nothing).
pub struct CompileView {
    name: String,
    bar: Mutex<Option<ProgressBar>>,
}

impl CompileView {
    pub fn new(name: &str) -> Self {
        CompileView {
            name: weft_spec::text::escape_control(name).into_owned(),
            bar: Mutex::new(None),
        }
    }

    /// A compile of `bytes` of component starts.
    pub fn started(&self, bytes: u64) {
        let size = bytesize::ByteSize(bytes);
        if !std::io::stderr().is_terminal() {
            eprintln!("compiling {} (first use)… ({size})", self.name);
            return;
        }
        let bar = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(format!("compiling {} (first use, {size})…", self.name));
        bar.enable_steady_tick(Duration::from_millis(100));
        *self.bar.lock().unwrap() = Some(bar);
    }

    /// Takes the spinner down, if one is up.
    pub fn clear(&self) {
        if let Some(bar) = self.bar.lock().unwrap().take() {
            bar.finish_and_clear();
        }
    }

    /// The compile took `took`: says so on stderr.
    pub fn finished(&self, took: Duration) {
        self.clear();
        eprintln!("compiled {} in {}", self.name, seconds(took));
    }
}
