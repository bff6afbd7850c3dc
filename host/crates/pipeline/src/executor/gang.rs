//! A task's gang of data-parallel workers (`gang:`; what a `TrainJob` runs): every worker an
//! instance of the component on a thread of this process, each with its rank of one in-process
//! group (`weft:tensor/collective`) and the run's checkpoints (`weft:tensor/checkpoint`).
//!
//! The gang succeeds or fails as one: a worker that fails breaks the group, so its peers'
//! collectives fail rather than wait, and the attempt fails naming the worker that failed
//! first (not the peers it took down). The task's retries then restart every worker, and each
//! restores the latest checkpoint. Rank 0's outputs are the task's.

use super::*;
use weft_collective::LocalGroup;
use weft_runtime::{Checkpoints, StepOutcome};
use weft_store::ArtifactStore;

/// The file a checkpoint's artifact holds.
const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

pub(super) fn run_gang(
    runtime: &Runtime,
    stores: &Stores,
    job: &Job,
    step: &OrderedStep,
    component: &LoadedComponent,
    log_path: &std::path::Path,
    cancel: &Arc<AtomicBool>,
) -> std::result::Result<StepDone, AttemptError> {
    let host = |e: anyhow::Error| AttemptError::Host(e);
    let gang = job.spec.gang.clone().unwrap_or_default();
    let world = gang.workers.max(1) as usize;
    let checkpoints: Arc<dyn Checkpoints> = Arc::new(RunCheckpoints {
        artifacts: stores.artifacts.clone(),
        pointer: checkpoint_pointer(stores, &job.run_id, &job.task),
        every: gang.checkpoint_every.unwrap_or(0),
    });
    let logs: Vec<PathBuf> = (0..world).map(|r| rank_log(log_path, r)).collect();
    let scratches = (0..world)
        .map(|_| stores.artifacts.scratch_dir().map_err(|e| host(e.into())))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let left = match gang.deadline_seconds {
        Some(limit) => Some(time_left(stores, &job.run_id, limit)?),
        None => None,
    };
    let mut requests = Vec::with_capacity(world);
    for (r, rank) in LocalGroup::ranks(world).into_iter().enumerate() {
        let mut req = step_request(
            &stores.artifacts,
            step,
            scratches[r].path(),
            &logs[r],
            cancel,
        )?;
        if let Some(left) = left {
            req.limits.timeout = req.limits.timeout.min(left);
        }
        req.collective = Some(Arc::new(rank));
        req.checkpoints = Some(checkpoints.clone());
        requests.push(req);
    }
    let started = Instant::now();
    // Each request (and its rank) is dropped as its worker ends, so peers waiting on a worker
    // that failed are told at once.
    let outcomes: Vec<std::result::Result<StepOutcome, StepError>> = std::thread::scope(|s| {
        let workers: Vec<_> = requests
            .into_iter()
            .map(|req| s.spawn(move || runtime.run(component, &req)))
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(StepError::Host(anyhow!("a worker thread panicked"))))
            })
            .collect()
    });
    let mut done = Vec::with_capacity(world);
    let mut failures = Vec::new();
    for (r, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Ok(o) => done.push(o),
            Err(StepError::Cancelled) => return Err(AttemptError::Cancelled),
            Err(e) => {
                append_to_log(&logs[r], &format!("\n{}\n", e.log_line()));
                failures.push((r, e));
            }
        }
    }
    if let Some((r, e)) = cause(&failures) {
        return Err(match step_or_disk_full(&stores.artifacts, e) {
            AttemptError::Step(m) => AttemptError::Step(format!("worker {r} of {world}: {m}")),
            other => other,
        });
    }
    let mut ranks = done.into_iter();
    let first = ranks.next().expect("a gang has a worker");
    let params = declared_params(step, first.params.into_iter().collect())?;
    let mut artifacts = BTreeMap::new();
    for name in &step.outputs {
        let stored = stores
            .artifacts
            .ingest_dir(&scratches[0].path().join(name))
            .map_err(|e| host(e.into()))?;
        artifacts.insert(name.clone(), stored);
    }
    let mut metrics: Vec<(String, f64, Option<u64>)> = first
        .metrics
        .iter()
        .map(|m| (m.name.clone(), m.value, m.step))
        .collect();
    for (r, o) in ranks.enumerate() {
        let r = r + 1;
        metrics.extend(
            o.metrics
                .iter()
                .map(|m| (format!("rank-{r}/{}", m.name), m.value, m.step)),
        );
    }
    Ok(StepDone {
        params,
        artifacts,
        metrics,
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

/// What is left of the gang's `limit` seconds since its run began; none left is the attempt's
/// failure, said plainly.
fn time_left(
    stores: &Stores,
    run_id: &str,
    limit: u64,
) -> std::result::Result<Duration, AttemptError> {
    let run = stores
        .meta
        .run(run_id)
        .map_err(|e| AttemptError::Host(e.into()))?;
    let started = humantime::parse_rfc3339_weak(&run.created_at).map_err(|e| {
        AttemptError::Host(anyhow!("run {run_id}: created_at {}: {e}", run.created_at))
    })?;
    let spent = std::time::SystemTime::now()
        .duration_since(started)
        .unwrap_or_default();
    match Duration::from_secs(limit).checked_sub(spent) {
        Some(left) if !left.is_zero() => Ok(left),
        _ => Err(AttemptError::Final(format!(
            "the job's activeDeadlineSeconds ({limit} s) has passed ({} s since the run began): no worker started",
            spent.as_secs()
        ))),
    }
}

/// The failure that broke the gang: the first worker's that is not a peer's report of it.
fn cause(failures: &[(usize, StepError)]) -> Option<(usize, &StepError)> {
    let secondary = |e: &StepError| {
        let m = e.one_line();
        m.contains("left the job") || m.contains("waiting for the other ranks")
    };
    failures
        .iter()
        .find(|(_, e)| !secondary(e))
        .or(failures.first())
        .map(|(r, e)| (*r, e))
}

/// Rank 0 logs where the task does; rank r beside it, as `TASK.rank-r.log`.
fn rank_log(log_path: &std::path::Path, r: usize) -> PathBuf {
    if r == 0 {
        return log_path.to_path_buf();
    }
    let name = log_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".log").unwrap_or(&name);
    log_path.with_file_name(format!("{stem}.rank-{r}.log"))
}

/// Where a run's task keeps the pointer to its latest checkpoint: beside its logs, so a run
/// resumed after a crash finds it.
pub(crate) fn checkpoint_pointer(stores: &Stores, run_id: &str, task: &str) -> PathBuf {
    stores
        .logs_dir
        .join(run_id)
        .join(format!("{task}.checkpoint.json"))
}

/// The latest checkpoint: its step and its artifact.
#[derive(serde::Serialize, serde::Deserialize)]
struct Pointer {
    step: u64,
    digest: String,
}

/// A gang's checkpoints: each an artifact in the store (content-addressed), the latest named
/// by a pointer file replaced atomically, so a crash leaves the old one or the new one.
struct RunCheckpoints {
    artifacts: Arc<ArtifactStore>,
    pointer: PathBuf,
    every: u32,
}

impl std::fmt::Debug for RunCheckpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RunCheckpoints({})", self.pointer.display())
    }
}

impl Checkpoints for RunCheckpoints {
    fn every(&self) -> u32 {
        self.every
    }

    fn save(&self, step: u64, bytes: Vec<u8>) -> std::result::Result<(), String> {
        let scratch = self.artifacts.scratch_dir().map_err(|e| e.to_string())?;
        let file = scratch.path().join(CHECKPOINT_FILE);
        std::fs::write(&file, bytes).map_err(|e| format!("{}: {e}", file.display()))?;
        let stored = self
            .artifacts
            .ingest_dir(scratch.path())
            .map_err(|e| e.to_string())?;
        let text = serde_json::to_string(&Pointer {
            step,
            digest: stored.digest,
        })
        .map_err(|e| e.to_string())?;
        let dir = self.pointer.parent().unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let tmp = self.pointer.with_extension("json.tmp");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, &self.pointer))
            .map_err(|e| format!("{}: {e}", self.pointer.display()))
    }

    fn latest(&self) -> std::result::Result<Option<Vec<u8>>, String> {
        let text = match std::fs::read_to_string(&self.pointer) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", self.pointer.display())),
        };
        let p: Pointer =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", self.pointer.display()))?;
        weft_spec::digest::parse(&p.digest)
            .map_err(|e| format!("{}: {e}", self.pointer.display()))?;
        let dir = self
            .artifacts
            .checked_local(&p.digest)
            .map_err(|e| e.to_string())?;
        let file = dir.join(CHECKPOINT_FILE);
        std::fs::read(&file)
            .map(Some)
            .map_err(|e| format!("{}: {e}", file.display()))
    }
}
