//! The live view of a pipeline run: a bar of tasks done, the tasks running, per-task timings.
//! On a terminal it redraws; otherwise (CI, pipes) it prints one line per transition.

use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeSet;
use std::io::IsTerminal;
use tokio::sync::mpsc::UnboundedReceiver;
use weft_pipeline::RunEvent;
use weft_store::TaskState;

pub struct Progress {
    bar: ProgressBar,
    running: BTreeSet<String>,
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
        self.bar
            .set_message(format!("{failed}running: {}", running.join(", ")));
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
            }
            self.refresh();
        }
        self.bar.finish_and_clear();
    }
}
