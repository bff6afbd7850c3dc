//! Engines `mpi` and `nccl` on this machine (a build with the `mpi` feature; `nccl` too for
//! the second): a gang's workers are processes of one MPI job, started by OpenMPI's `mpirun` as Kubeflow's MPIJob launcher
//! starts them, each `wasm-run task exec ORDER --mpi` with the same home.
//!
//! [`Mpirun`] is the runner's side (the pipeline executor's `GangLauncher`), [`worker`] the
//! rank's. A rank whose step fails reports its result and exits without `MPI_Finalize`, which
//! makes mpirun end the whole job at once instead of leaving its peers waiting in a
//! collective; the executor's retry then restarts the gang from its checkpoint.

use crate::home::Home;
use anyhow::{anyhow, bail, Context, Result};
use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use weft_collective::mpi::MpiRank;
use weft_collective::Communicator;
use weft_pipeline::gang_order::{execute_rank, GangLauncher, GangLine, GangOrder};
use weft_spec::train_job::CollectiveEngine;

/// This rank's communicator for the gang's engine: MPI's own, or NCCL's over it.
fn communicator(engine: CollectiveEngine) -> Result<Arc<dyn Communicator>> {
    let mpi = MpiRank::world().map_err(|e| anyhow!("starting MPI: {e}"))?;
    match engine {
        #[cfg(feature = "nccl")]
        CollectiveEngine::Nccl => {
            let wait = weft_collective::Wait::at_most(Duration::from_secs(300));
            let rank = weft_collective::nccl::NcclRank::over(mpi, &wait)?;
            Ok(Arc::new(rank))
        }
        #[cfg(not(feature = "nccl"))]
        CollectiveEngine::Nccl => Err(anyhow!(crate::train::nccl_here().err().unwrap_or_default())),
        _ => Ok(Arc::new(mpi)),
    }
}

/// Starts gangs with `mpirun -np N` of this very executable.
pub struct Mpirun {
    exe: PathBuf,
    /// The global options every rank needs to see what the runner sees (home, stores, device).
    globals: Vec<String>,
    /// OpenMPI's hostfile: the ranks start on its hosts; None: all on this machine.
    hostfile: Option<PathBuf>,
}

impl Mpirun {
    pub fn new(home: &Home) -> Result<Mpirun> {
        let exe = std::env::current_exe().context("finding this wasm-run to start its ranks")?;
        let mut globals = vec!["--home".to_string(), home.path().display().to_string()];
        if let Some(url) = home.artifact_store_url() {
            globals.extend(["--artifact-store".to_string(), url.to_string()]);
        }
        globals.extend([
            "--tensor-backend".to_string(),
            home.tensor_backend().to_string(),
        ]);
        // The ranks share the compiled-component cache: they keep it to the runner's bound.
        if let Some(max) = home.cache_max() {
            globals.extend(["--cache-max".to_string(), max.to_string()]);
        }
        Ok(Mpirun {
            exe,
            globals,
            hostfile: None,
        })
    }

    /// This launcher starting its ranks on the hosts of OpenMPI's hostfile `file`, within
    /// the slots it gives them.
    pub fn on_hosts(self, file: &std::path::Path) -> Result<Mpirun> {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("--hostfile {}", file.display()))?;
        if !text
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim().starts_with('#'))
        {
            bail!("--hostfile {}: names no host", file.display());
        }
        let file = std::fs::canonicalize(file)
            .with_context(|| format!("--hostfile {}", file.display()))?;
        Ok(Mpirun {
            hostfile: Some(file),
            ..self
        })
    }
}

/// `$WEFT_MPIRUN`, else `mpirun` on the PATH.
fn mpirun() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("WEFT_MPIRUN") {
        return Ok(PathBuf::from(p));
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("mpirun"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!("engine mpi: mpirun is not on the PATH (install OpenMPI: openmpi-bin), or set WEFT_MPIRUN")
        })
}

impl GangLauncher for Mpirun {
    fn supports(&self, engine: CollectiveEngine) -> std::result::Result<(), String> {
        match engine {
            // Ranks on other hosts find their GPUs there (a rank without one fails saying so).
            CollectiveEngine::Nccl if self.hostfile.is_none() => {
                crate::train::nccl_here().map(|_| ())
            }
            _ => Ok(()),
        }
    }

    fn run(
        &self,
        order: &str,
        workers: usize,
        limit: Duration,
        halt: &dyn Fn() -> bool,
        line: &mut dyn FnMut(&str),
    ) -> Result<ExitStatus> {
        let mpirun = mpirun()?;
        let mut cmd = Command::new(&mpirun);
        cmd.args(["-np", &workers.to_string(), "--bind-to", "none"]);
        match &self.hostfile {
            // The hosts and their slots, as the user gave them.
            Some(file) => across_hosts(cmd.arg("--hostfile").arg(file)),
            // One machine: as many ranks as asked whatever its cores.
            None => cmd.arg("--oversubscribe"),
        };
        // Containers run as root; OpenMPI refuses that unless told.
        cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .arg(&self.exe)
            .args(&self.globals)
            .args(["task", "exec", order, "--mpi"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        tracing::info!(?cmd, "starting the gang's MPI job");
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", mpirun.display()))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        // Every line, whatever its bytes, so the pipe is drained until mpirun closes it.
        std::thread::spawn(move || {
            let mut out = std::io::BufReader::new(stdout);
            let mut buf = Vec::new();
            while matches!(out.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                let l = String::from_utf8_lossy(&buf).trim_end().to_string();
                buf.clear();
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + limit;
        let status = loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(l) => line(&l),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // Its output closed: the job is ending (still watched below).
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(50))
                }
            }
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if halt() || Instant::now() >= deadline {
                stop(&mut child);
                break child.wait()?;
            }
        };
        // What the ranks printed before the job ended.
        while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            line(&l);
        }
        Ok(status)
    }
}

/// What ranks on other hosts need that ranks here inherit: mpirun passes its own
/// environment only to local ranks, and ssh sessions start with none, so the artifact
/// store's settings (`AWS_*`) and `RUST_LOG` are exported with `-x` (by name: values stay out
/// of the command line). Hostnames are kept whole (a worker pod's `NAME.SERVICE` would
/// otherwise be cut at its first dot), and only the launcher starts daemons over ssh (the
/// operator's workers hold no client key).
fn across_hosts(cmd: &mut Command) -> &mut Command {
    for (var, value) in [
        ("OMPI_MCA_orte_keep_fqdn_hostnames", "true"),
        ("OMPI_MCA_plm_rsh_no_tree_spawn", "1"),
    ] {
        if std::env::var_os(var).is_none() {
            cmd.env(var, value);
        }
    }
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("AWS_") || name == "RUST_LOG" {
            cmd.args(["-x", name]);
        }
    }
    cmd
}

/// Stops the job: SIGTERM, which mpirun passes to its ranks (SIGKILL would leave them
/// running), then SIGKILL if it lingers.
fn stop(child: &mut std::process::Child) {
    let Ok(pid) = i32::try_from(child.id()) else {
        let _ = child.kill();
        return;
    };
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
}

/// Engine nccl: this rank sees only the GPU of its local rank (the `local_rank`-th of those
/// `CUDA_VISIBLE_DEVICES` shows, or of all), so the CUDA tensor backend, which opens the
/// first GPU it sees, and NCCL compute on the same one, and no two ranks share one.
fn one_gpu_per_rank() -> Result<()> {
    let local: usize = std::env::var("OMPI_COMM_WORLD_LOCAL_RANK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let gpu = match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .nth(local)
            .map(|g| g.trim().to_string())
            .ok_or_else(|| {
                anyhow!("engine nccl: local rank {local} has no GPU of its own (CUDA_VISIBLE_DEVICES={list})")
            })?,
        _ => local.to_string(),
    };
    std::env::set_var("CUDA_VISIBLE_DEVICES", gpu);
    Ok(())
}

/// A rank of a gang's MPI job (`wasm-run task exec ORDER --mpi`, started by [`Mpirun`]): runs
/// the work order's step with this process's rank, and prints its result's digest for the
/// runner.
pub fn worker(home: &Home, order: &str) -> Result<ExitCode> {
    if std::env::var_os("OMPI_COMM_WORLD_SIZE").is_none() {
        bail!("task exec --mpi runs as a rank of an MPI job: start it with mpirun");
    }
    let artifacts = Arc::new(home.open_artifacts()?);
    let gang: Option<GangOrder> = weft_pipeline::gang_order::gang_of(&artifacts, order)?;
    let engine = gang.map_or(CollectiveEngine::Mpi, |g| g.engine);
    if engine == CollectiveEngine::Nccl {
        // Before MPI, the runtime or CUDA start threads of their own.
        one_gpu_per_rank()?;
    }
    let comm = communicator(engine)?;
    let rank = comm.rank();
    let runtime = weft_runtime::Runtime::new(home.runtime_config(64))?;
    let cancel = Arc::new(AtomicBool::new(false));
    let (result, digest) = execute_rank(
        &runtime,
        &artifacts,
        &home.logs(),
        order,
        comm.clone(),
        &cancel,
    )
    .with_context(|| format!("rank {rank} of gang work order {order}"))?;
    GangLine::Result {
        rank,
        results: digest,
    }
    .print();
    if let Err(why) = &result.outcome {
        // Without MPI_Finalize: mpirun ends the job, and the peers' waits with it.
        eprintln!("rank {rank}: {why}");
        return Ok(ExitCode::FAILURE);
    }
    drop(comm);
    weft_collective::mpi::finalize();
    Ok(ExitCode::SUCCESS)
}
