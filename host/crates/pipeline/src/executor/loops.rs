//! `parallelFor`: iterations run (in this process, or sharded over pods), then fanned in.

use super::*;

/// Runs every iteration of a parallelFor (each cached, retried and recorded as `task[i]`), then
/// fans their outputs in: parameters as lists, artifacts as one directory of `0/`, `1/`, ...
pub(super) fn run_loop(
    runtime: &Runtime,
    stores: &Stores,
    job: &Job,
    emit: &(dyn Fn(RunEvent) + Sync),
    cancel: &Arc<AtomicBool>,
) -> Settled {
    let fail = Unfinished::host;
    let started = Instant::now();
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

    // Iterations that finished before an interruption keep their outputs and records.
    let mut before = recorded_outputs(stores, &job.run_id).map_err(fail)?;
    let results: Vec<std::sync::Mutex<Option<Settled>>> = iterations
        .iter()
        .map(|it| {
            std::sync::Mutex::new(before.remove(&it.task).map(|(state, out)| {
                Ok((
                    state,
                    out,
                    Duration::ZERO,
                    Some("done before the resume".into()),
                ))
            }))
        })
        .collect();
    let todo: Vec<usize> = (0..iterations.len())
        .filter(|&i| results[i].lock().unwrap().is_none())
        .collect();
    // An iteration's end: reported, recorded when it failed, kept for the fan-in.
    let settle = |i: usize, r: Settled| {
        let it = &iterations[i];
        match &r {
            Ok((state, _, d, detail)) => emit(RunEvent::TaskFinished {
                task: it.task.clone(),
                state: *state,
                duration: Some(*d),
                detail: detail.clone(),
            }),
            Err(Unfinished { state, why, .. }) => {
                if let Err(e) = stores
                    .meta
                    .set_task_state(&job.run_id, &it.task, *state, Some(why))
                {
                    tracing::error!(task = %it.task, error = %e, "could not record the iteration's failure");
                }
                emit(RunEvent::TaskFinished {
                    task: it.task.clone(),
                    state: *state,
                    duration: None,
                    detail: Some(why.clone()),
                });
            }
        }
        *results[i].lock().unwrap() = Some(r);
    };
    let shards = job
        .spec
        .parallel_for
        .as_ref()
        .and_then(|pf| pf.pods)
        .filter(|_| job.pods.is_some());
    let ran = match (shards, &job.pods) {
        // Sharded across pods: shard k runs iterations k, k + n, k + 2n, ... in one pod.
        (Some(n), Some(pods)) => {
            let n = (n as usize).clamp(1, todo.len().max(1));
            let shards: Vec<usize> = (0..n).collect();
            crate::parallel::bounded(&shards, n, |&k| {
                let mine: Vec<usize> = todo.iter().copied().skip(k).step_by(n).collect();
                run_shard(
                    runtime,
                    stores,
                    job,
                    pods,
                    k,
                    &mine,
                    &iterations,
                    emit,
                    cancel,
                )
                .into_iter()
                .for_each(|(i, r)| settle(i, r));
            })
        }
        _ => crate::parallel::bounded(&todo, job.loop_parallelism, |&i| {
            settle(
                i,
                run_with_retries(runtime, stores, &iterations[i], emit, cancel, None),
            )
        }),
    };
    ran.map_err(Unfinished::host)?;
    let mut done = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        match r.into_inner().unwrap() {
            Some(Ok((_, out, ..))) => done.push(out),
            Some(Err(u)) => {
                let why = format!("iteration {i} {}: {}", u.state.as_str(), u.why);
                return Err(Unfinished { why, ..u });
            }
            None => return Err(Unfinished::cancelled(&format!("iteration {i} did not run"))),
        }
    }

    fan_in(stores, job, &done, started).map_err(Unfinished::host)
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

/// Shard `k` of a sharded parallelFor: the iterations `mine` not answered by the cache run in
/// one pod (first attempts); those that fail there and may be retried go through the usual
/// retries from attempt 2 (in pods of their own when the task has resources, else here).
#[allow(clippy::too_many_arguments)]
pub(super) fn run_shard(
    runtime: &Runtime,
    stores: &Stores,
    job: &Job,
    pods: &Pods,
    k: usize,
    mine: &[usize],
    iterations: &[Job],
    emit: &(dyn Fn(RunEvent) + Sync),
    cancel: &Arc<AtomicBool>,
) -> Vec<(usize, Settled)> {
    let fail = Unfinished::host;
    let mut settled = Vec::new();
    let mut pending = Vec::new();
    for &i in mine {
        let it = &iterations[i];
        if it.use_cache {
            match cache_hit(stores, it) {
                Ok(Some(hit)) => {
                    settled.push((i, Ok(hit)));
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    settled.push((i, Err(fail(e))));
                    continue;
                }
            }
        }
        pending.push(i);
    }
    if pending.is_empty() {
        return settled;
    }
    let mut steps = Vec::new();
    for &i in &pending {
        let it = &iterations[i];
        emit(RunEvent::TaskStarted {
            task: it.task.clone(),
            attempt: 1,
        });
        let started = stores.meta.start_task(
            &it.run_id,
            &it.task,
            1,
            &it.component,
            &log_path(stores, it, 1).display().to_string(),
        );
        if let Err(e) = started {
            let why = fail(e.into());
            settled.extend(pending.iter().map(|&i| (i, Err(why.clone()))));
            return settled;
        }
        steps.push(ordered_step(it, 1));
    }
    let resources = job.spec.resources.clone().unwrap_or_default();
    let name = format!("{}-shard-{k}", job.task);
    let results = match in_pod(
        stores,
        pods,
        &name,
        steps,
        job.loop_parallelism,
        &resources,
        cancel,
    ) {
        Ok(results) => results,
        Err(e) => {
            let why = match e {
                AttemptError::Cancelled => Unfinished::cancelled("cancelled"),
                AttemptError::Host(e) => fail(e),
                AttemptError::Step(m) => Unfinished::step(m),
            };
            settled.extend(pending.iter().map(|&i| (i, Err(why.clone()))));
            return settled;
        }
    };
    for (&i, result) in pending.iter().zip(results) {
        let it = &iterations[i];
        let log = log_path(stores, it, 1);
        if let Err(e) = keep_log(&log, &result.log) {
            settled.push((i, Err(fail(e))));
            continue;
        }
        let r = match result.outcome {
            Ok(done) => record_success(stores, it, done, &log).map_err(fail),
            Err(_) if cancel.load(Ordering::Relaxed) => Err(Unfinished::cancelled("cancelled")),
            // Retried by the task's policy (backoff included), each retry a pod of its own
            // when the task has resources, else here.
            Err(message) => run_with_retries(runtime, stores, it, emit, cancel, Some(message)),
        };
        settled.push((i, r));
    }
    settled
}
