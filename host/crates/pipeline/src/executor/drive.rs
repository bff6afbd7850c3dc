//! The run's one async loop: decides the tasks that are ready (ends them, or launches them up
//! to the parallelism limit), collects the ones that finish, then runs the exit handler and
//! records the run's end.

use super::*;
use tokio::task::JoinSet;

/// What a task's blocking thread hands back: its name and how it ended (see [`execute`]).
type Ended = (String, (TaskState, Option<TaskOutputs>, Option<String>));

/// One drive of a run: what each task has come to, what the finished ones made, and the
/// tasks running now.
pub(super) struct Drive<'a> {
    exec: &'a Executor,
    run_id: &'a str,
    plan: Arc<Plan>,
    opts: &'a RunOptions,
    states: BTreeMap<String, TaskState>,
    outputs: BTreeMap<String, TaskOutputs>,
    running: JoinSet<Ended>,
    in_flight: usize,
    /// `task `name`: why` for each task the host failed.
    host_failures: Vec<String>,
}

impl<'a> Drive<'a> {
    /// Announces the run; every task not already settled (by a resume) starts pending.
    pub(super) fn new(
        exec: &'a Executor,
        run_id: &'a str,
        plan: Arc<Plan>,
        opts: &'a RunOptions,
        mut states: BTreeMap<String, TaskState>,
        outputs: BTreeMap<String, TaskOutputs>,
    ) -> Self {
        emit(
            opts,
            RunEvent::Started {
                run_id: run_id.to_string(),
                tasks: plan.pipeline.spec.tasks.len(),
            },
        );
        for name in plan.pipeline.spec.tasks.keys() {
            states.entry(name.clone()).or_insert(TaskState::Pending);
        }
        Drive {
            exec,
            run_id,
            plan,
            opts,
            states,
            outputs,
            running: JoinSet::new(),
            in_flight: 0,
            host_failures: Vec::new(),
        }
    }

    /// Runs the tasks until none is running and none can start, then finishes the run.
    pub(super) async fn run(mut self) -> Result<RunSummary> {
        loop {
            self.decide_ready()?;
            if self.in_flight == 0 {
                break;
            }
            self.collect_one().await?;
        }
        self.finish().await
    }

    /// Decides what can be decided (skip, not-trigger, cancel, or launch), pass after pass
    /// until a pass decides nothing: a task ended here can make others ready.
    fn decide_ready(&mut self) -> Result<()> {
        let mut progressed = true;
        while progressed {
            progressed = false;
            let cancelled = self.opts.cancel.load(Ordering::Relaxed);
            let ready: Vec<(String, scheduler::Verdict)> = scheduler::ready(
                &self.plan.order,
                &self.plan.upstream,
                &self.states,
                cancelled,
            )
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .collect();
            for (name, verdict) in ready {
                let job = match self.end_without_running(&name, verdict) {
                    Some(end) => Err(end),
                    None if self.in_flight >= self.opts.parallelism.max(1) => continue,
                    None => self
                        .exec
                        .prepare(
                            self.run_id,
                            &self.plan,
                            &name,
                            &self.plan.pipeline.spec.tasks[&name],
                            &self.outputs,
                            None,
                        )
                        .map_err(|e| (TaskState::Failed, format!("{e:#}"))),
                };
                progressed = true;
                match job {
                    Err((state, why)) => self.end(name, state, why)?,
                    Ok(job) => self.launch(name, job),
                }
            }
        }
        Ok(())
    }

    /// The state a ready task ends in without running, and why: the scheduler's verdict, or
    /// its `when` condition being false (or failing to evaluate). None: it is to run.
    fn end_without_running(
        &self,
        name: &str,
        verdict: scheduler::Verdict,
    ) -> Option<(TaskState, String)> {
        let cond = match verdict {
            scheduler::Verdict::End(state, why) => return Some((state, why)),
            scheduler::Verdict::Run => self.plan.pipeline.spec.tasks[name].when.as_ref()?,
        };
        match condition::holds(cond, &|src| {
            resolve_param(&self.plan, &self.outputs, None, src)
        }) {
            Ok(true) => None,
            Ok(false) => Some((TaskState::NotTriggered, "condition is false".to_string())),
            Err(e) => Some((TaskState::Failed, format!("evaluating the condition: {e}"))),
        }
    }

    /// Records and reports a task that ends without running.
    fn end(&mut self, name: String, state: TaskState, why: String) -> Result<()> {
        self.exec
            .stores
            .meta
            .set_task_state(self.run_id, &name, state, Some(&why))?;
        self.states.insert(name.clone(), state);
        emit(
            self.opts,
            RunEvent::TaskFinished {
                task: name,
                state,
                duration: None,
                detail: Some(why),
            },
        );
        Ok(())
    }

    /// Starts a prepared task on a blocking thread of its own.
    fn launch(&mut self, name: String, job: Job) {
        self.states.insert(name, TaskState::Running);
        self.in_flight += 1;
        let job = Job {
            pods: self.opts.pods.clone(),
            gangs: self.exec.gangs.clone(),
            ..job
        };
        let (runtime, stores) = (self.exec.runtime.clone(), self.exec.stores.clone());
        let (events, cancel) = (self.opts.events.clone(), self.opts.cancel.clone());
        self.running.spawn_blocking(move || {
            let name = job.task.clone();
            (name, execute(&runtime, &stores, job, events, cancel))
        });
    }

    /// Waits for the next running task to end and keeps its state and outputs.
    async fn collect_one(&mut self) -> Result<()> {
        let (name, result) = self
            .running
            .join_next()
            .await
            .expect("a task is in flight")?;
        self.in_flight -= 1;
        let (state, out, host) = result;
        if let Some(why) = host {
            self.host_failures.push(format!("task `{name}`: {why}"));
        }
        self.states.insert(name.clone(), state);
        if let Some(out) = out {
            self.outputs.insert(name, out);
        }
        Ok(())
    }

    /// With every task ended: the exit handler, then the run's end state and error (the host's
    /// failure, when there was one, over the tasks'), recorded.
    async fn finish(self) -> Result<RunSummary> {
        let run_id = self.run_id;
        let (state, failed) =
            scheduler::outcome(&self.states, self.opts.cancel.load(Ordering::Relaxed));
        let error = (!failed.is_empty()).then(|| format!("failed tasks: {}", failed.join(", ")));
        let (state, mut error) = self.after_exit_handler(state, error).await?;
        let host_failure = (!self.host_failures.is_empty()).then(|| {
            format!(
                "the host failed {}; `wasm-run pipeline resume {run_id}` finishes the run",
                self.host_failures.join("; ")
            )
        });
        if host_failure.is_some() {
            error = host_failure.clone();
        }
        let meta = &self.exec.stores.meta;
        meta.finish_run(run_id, state, error.as_deref())?;
        Ok(RunSummary {
            run_id: run_id.to_string(),
            state: state.to_string(),
            tasks: meta.tasks(run_id)?,
            host_failure,
        })
    }

    /// Runs the exit handler, unless there is none or it is recorded as done (a resumed run);
    /// the run's state and error after it: a handler that fails fails a run that succeeded.
    async fn after_exit_handler(
        &self,
        state: &'static str,
        error: Option<String>,
    ) -> Result<(&'static str, Option<String>)> {
        let Some(handler) = &self.plan.pipeline.spec.exit_handler else {
            return Ok((state, error));
        };
        if self
            .states
            .get(EXIT_HANDLER)
            .is_some_and(|s| s.has_outputs())
        {
            return Ok((state, error));
        }
        let status = RunStatus {
            state: state.to_string(),
            error: error.clone().unwrap_or_default(),
        };
        let handler_state = self.run_exit_handler(handler, &status).await?;
        if handler_state == TaskState::Failed && state == RUN_SUCCEEDED {
            return Ok((RUN_FAILED, Some("the exit handler failed".into())));
        }
        Ok((state, error))
    }

    /// Runs the exit handler, told the run's status; even after a cancel, since it is the
    /// cleanup. Its end state.
    async fn run_exit_handler(&self, handler: &TaskSpec, status: &RunStatus) -> Result<TaskState> {
        let (exec, run_id) = (self.exec, self.run_id);
        let prepared = exec.prepare(
            run_id,
            &self.plan,
            EXIT_HANDLER,
            handler,
            &self.outputs,
            Some(status),
        );
        let job = match prepared {
            Ok(job) => Job {
                pods: self.opts.pods.clone(),
                gangs: exec.gangs.clone(),
                ..job
            },
            Err(e) => {
                let why = format!("{e:#}");
                exec.stores.meta.set_task_state(
                    run_id,
                    EXIT_HANDLER,
                    TaskState::Failed,
                    Some(&why),
                )?;
                return Ok(TaskState::Failed);
            }
        };
        let (runtime, stores, events) = (
            exec.runtime.clone(),
            exec.stores.clone(),
            self.opts.events.clone(),
        );
        let cancel = Arc::new(AtomicBool::new(false));
        let (state, ..) =
            tokio::task::spawn_blocking(move || execute(&runtime, &stores, job, events, cancel))
                .await?;
        Ok(state)
    }
}

/// Sends a progress event to whoever watches the run, if anyone still does.
fn emit(opts: &RunOptions, e: RunEvent) {
    if let Some(tx) = &opts.events {
        let _ = tx.send(e);
    }
}
