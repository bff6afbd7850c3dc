//! `parallelFor`: iterations run (in this process, or sharded over pods), then fanned in.

use super::*;
use crate::work_order::StepResult;
use std::sync::Mutex;

/// Runs every iteration of a parallelFor (each cached, retried and recorded as `task[i]`), then
/// fans their outputs in: parameters as lists, artifacts as one directory of `0/`, `1/`, ...
pub(super) fn run_loop(
    runtime: &Runtime,
    stores: &Stores,
    job: &Job,
    emit: &(dyn Fn(RunEvent) + Sync),
    cancel: &Arc<AtomicBool>,
) -> Settled {
    let started = Instant::now();
    let iterations = start_iterations(stores, job)?;
    // Iterations that finished before an interruption keep their outputs and records.
    let mut before = recorded_outputs(stores, &job.run_id).map_err(Unfinished::host)?;
    let results = iterations
        .iter()
        .map(|it| {
            Mutex::new(before.remove(&it.task).map(|(state, out)| {
                Ok((
                    state,
                    out,
                    Duration::ZERO,
                    Some("done before the resume".into()),
                ))
            }))
        })
        .collect();
    let run = LoopRun {
        runtime,
        stores,
        job,
        emit,
        cancel,
        iterations,
        results,
    };
    run.run_unsettled().map_err(Unfinished::host)?;
    let done = run.gather()?;
    fan_in(stores, job, &done, started).map_err(Unfinished::host)
}

/// The loop's iterations, each recorded as a task of the run, and the loop task recorded as
/// started.
fn start_iterations(stores: &Stores, job: &Job) -> std::result::Result<Vec<Job>, Unfinished> {
    let fail = Unfinished::host;
    let items = job.items.clone().unwrap_or_default();
    let iterations: Vec<Job> = items
        .iter()
        .enumerate()
        .map(|(i, item)| job.iteration(i, item))
        .collect::<Result<_>>()
        .map_err(fail)?;
    for it in &iterations {
        stores
            .meta
            .add_task(&job.run_id, &it.task)
            .map_err(|e| fail(e.into()))?;
    }
    stores
        .meta
        .start_task(&job.run_id, &job.task, 1, &job.component, "")
        .map_err(|e| fail(e.into()))?;
    Ok(iterations)
}

/// One parallelFor under way: its iterations and how each has ended so far, shared by the
/// threads (and shards) that run them.
struct LoopRun<'a> {
    runtime: &'a Runtime,
    stores: &'a Stores,
    job: &'a Job,
    emit: &'a (dyn Fn(RunEvent) + Sync),
    cancel: &'a Arc<AtomicBool>,
    iterations: Vec<Job>,
    /// Iteration `i`'s end once it has one: kept from before a resume, or settled here.
    results: Vec<Mutex<Option<Settled>>>,
}

impl LoopRun<'_> {
    /// Runs the iterations without an end yet: sharded across pods when the parallelFor asks
    /// for pods and there are pods, else here, `loop_parallelism` at a time.
    fn run_unsettled(&self) -> Result<()> {
        let job = self.job;
        let todo: Vec<usize> = (0..self.iterations.len())
            .filter(|&i| self.results[i].lock().unwrap().is_none())
            .collect();
        let shards = job
            .spec
            .parallel_for
            .as_ref()
            .and_then(|pf| pf.pods)
            .filter(|_| job.pods.is_some());
        match (shards, &job.pods) {
            // Sharded across pods: shard k runs iterations k, k + n, k + 2n, ... in one pod.
            (Some(n), Some(pods)) => {
                let n = (n as usize).clamp(1, todo.len().max(1));
                let shards: Vec<usize> = (0..n).collect();
                crate::parallel::bounded(&shards, n, |&k| {
                    let mine: Vec<usize> = todo.iter().copied().skip(k).step_by(n).collect();
                    self.run_shard(pods, k, &mine)
                        .into_iter()
                        .for_each(|(i, r)| self.settle(i, r));
                })
            }
            _ => crate::parallel::bounded(&todo, job.loop_parallelism, |&i| {
                let it = &self.iterations[i];
                let r =
                    run_with_retries(self.runtime, self.stores, it, self.emit, self.cancel, None);
                self.settle(i, r)
            }),
        }
        .map(drop)
    }

    /// An iteration's end: reported, recorded when it failed, kept for the fan-in.
    fn settle(&self, i: usize, r: Settled) {
        let it = &self.iterations[i];
        match &r {
            Ok((state, _, d, detail)) => (self.emit)(RunEvent::TaskFinished {
                task: it.task.clone(),
                state: *state,
                duration: Some(*d),
                detail: detail.clone(),
            }),
            Err(Unfinished { state, why, .. }) => {
                if let Err(e) =
                    self.stores
                        .meta
                        .set_task_state(&self.job.run_id, &it.task, *state, Some(why))
                {
                    tracing::error!(task = %it.task, error = %e, "could not record the iteration's failure");
                }
                (self.emit)(RunEvent::TaskFinished {
                    task: it.task.clone(),
                    state: *state,
                    duration: None,
                    detail: Some(why.clone()),
                });
            }
        }
        *self.results[i].lock().unwrap() = Some(r);
    }

    /// Every iteration's outputs, in order; the first iteration that did not finish (or did
    /// not run) ends the loop, named.
    fn gather(self) -> std::result::Result<Vec<TaskOutputs>, Unfinished> {
        let mut done = Vec::new();
        for (i, r) in self.results.into_iter().enumerate() {
            match r.into_inner().unwrap() {
                Some(Ok((_, out, ..))) => done.push(out),
                Some(Err(u)) => {
                    let why = format!("iteration {i} {}: {}", u.state.as_str(), u.why);
                    return Err(Unfinished { why, ..u });
                }
                None => return Err(Unfinished::cancelled(&format!("iteration {i} did not run"))),
            }
        }
        Ok(done)
    }

    /// Shard `k` of a sharded parallelFor: the iterations `mine` not answered by the cache run
    /// in one pod (first attempts); those that fail there and may be retried go through the
    /// usual retries from attempt 2 (in pods of their own when the task has resources, else
    /// here).
    fn run_shard(&self, pods: &Pods, k: usize, mine: &[usize]) -> Vec<(usize, Settled)> {
        let (mut settled, pending) = self.answer_from_cache(mine);
        if pending.is_empty() {
            return settled;
        }
        let ran = self
            .start_in_shard(&pending)
            .and_then(|steps| self.run_in_pod(pods, k, steps));
        let results = match ran {
            Ok(results) => results,
            Err(why) => {
                settled.extend(pending.iter().map(|&i| (i, Err(why.clone()))));
                return settled;
            }
        };
        for (&i, result) in pending.iter().zip(results) {
            settled.push((i, self.after_pod(i, result)));
        }
        settled
    }

    /// Of the iterations `mine`, those the cache answers (or fails to), settled; and those left
    /// to run.
    fn answer_from_cache(&self, mine: &[usize]) -> (Vec<(usize, Settled)>, Vec<usize>) {
        let mut settled = Vec::new();
        let mut pending = Vec::new();
        for &i in mine {
            let it = &self.iterations[i];
            if it.use_cache {
                match cache_hit(self.stores, it) {
                    Ok(Some(hit)) => {
                        settled.push((i, Ok(hit)));
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        settled.push((i, Err(Unfinished::host(e))));
                        continue;
                    }
                }
            }
            pending.push(i);
        }
        (settled, pending)
    }

    /// Reports and records the first attempt of each of `pending` as started; their steps.
    /// A record that fails fails the whole shard.
    fn start_in_shard(
        &self,
        pending: &[usize],
    ) -> std::result::Result<Vec<OrderedStep>, Unfinished> {
        let mut steps = Vec::new();
        for &i in pending {
            let it = &self.iterations[i];
            (self.emit)(RunEvent::TaskStarted {
                task: it.task.clone(),
                attempt: 1,
            });
            self.stores
                .meta
                .start_task(
                    &it.run_id,
                    &it.task,
                    1,
                    &it.component,
                    &log_path(self.stores, it, 1).display().to_string(),
                )
                .map_err(|e| Unfinished::host(e.into()))?;
            steps.push(ordered_step(it, 1));
        }
        Ok(steps)
    }

    /// Runs shard `k`'s steps in one pod, with the task's resources; a pod that fails (or a
    /// cancel) ends every step in it alike.
    fn run_in_pod(
        &self,
        pods: &Pods,
        k: usize,
        steps: Vec<OrderedStep>,
    ) -> std::result::Result<Vec<StepResult>, Unfinished> {
        let job = self.job;
        let resources = job.spec.resources.clone().unwrap_or_default();
        let name = format!("{}-shard-{k}", job.task);
        in_pod(
            self.stores,
            pods,
            &name,
            steps,
            job.loop_parallelism,
            &resources,
            self.cancel,
        )
        .map_err(|e| match e {
            AttemptError::Cancelled => Unfinished::cancelled("cancelled"),
            AttemptError::Stopped(why) => Unfinished::cancelled(&why),
            AttemptError::Host(e) => Unfinished::host(e),
            AttemptError::Step(m) | AttemptError::Final(m) => Unfinished::step(m),
        })
    }

    /// Iteration `i`'s end from what its first attempt in the shard's pod returned: its log
    /// kept, its success recorded, or its failure retried by the task's policy.
    fn after_pod(&self, i: usize, result: StepResult) -> Settled {
        let it = &self.iterations[i];
        let log = log_path(self.stores, it, 1);
        keep_log(&log, &result.log).map_err(Unfinished::host)?;
        match result.outcome {
            Ok(done) => record_success(self.stores, it, done, &log).map_err(Unfinished::host),
            Err(_) if self.cancel.load(Ordering::Relaxed) => {
                Err(Unfinished::cancelled("cancelled"))
            }
            // Retried by the task's policy (backoff included), each retry a pod of its own
            // when the task has resources, else here.
            Err(message) => run_with_retries(
                self.runtime,
                self.stores,
                it,
                self.emit,
                self.cancel,
                Some(message),
            ),
        }
    }
}

/// The loop task's own outputs from its iterations': each output parameter as the list of the
/// iterations' values, each output artifact as one directory of `0/`, `1/`, ...; recorded as
/// the loop task's completion.
fn fan_in(
    stores: &Stores,
    job: &Job,
    done: &[TaskOutputs],
    started: Instant,
) -> anyhow::Result<Finished> {
    let decl = &job.plan.pipeline.spec.components[&job.spec.component];
    let mut params = BTreeMap::new();
    for name in decl.outputs.params.keys() {
        let values: Vec<serde_json::Value> = done
            .iter()
            .map(|o| {
                o.params
                    .get(name)
                    .map(crate::plan::to_json)
                    .unwrap_or(serde_json::Value::Null)
            })
            .collect();
        params.insert(
            name.clone(),
            ParamValue::Json(serde_json::Value::Array(values)),
        );
    }
    let mut outputs = Vec::new();
    let mut out_map = BTreeMap::new();
    for (name, ty) in &decl.outputs.artifacts {
        let scratch = stores.artifacts.scratch_dir()?;
        let combined = scratch.path().join(name);
        for (i, o) in done.iter().enumerate() {
            let digest = &o.artifacts[name];
            let local = stores.artifacts.checked_local(digest)?;
            // Copied, not hard-linked: an artifact's files have one link each (see weft-tree).
            weft_store::copy_tree(&local, &combined.join(i.to_string()))?;
        }
        std::fs::create_dir_all(&combined)?;
        let stored = stores.artifacts.ingest_dir(&combined)?;
        out_map.insert(name.clone(), stored.digest.clone());
        outputs.push((name.clone(), stored, format!("{ty:?}")));
    }
    let duration = started.elapsed();
    let outputs_json = serde_json::to_string(&params)?;
    stores.meta.complete_task(
        &job.run_id,
        &job.task,
        &TaskCompletion {
            state: TaskState::Succeeded,
            outputs_json,
            inputs: input_events(job),
            outputs,
            metrics: Vec::new(),
            cache_key: None,
            cached_from: None,
            duration_ms: duration.as_secs_f64() * 1e3,
            log_path: None,
        },
    )?;
    let detail = format!("{} iterations", done.len());
    Ok((
        TaskState::Succeeded,
        TaskOutputs {
            params,
            artifacts: out_map,
        },
        duration,
        Some(detail),
    ))
}
