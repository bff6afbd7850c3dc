//! `wasm-run task exec ORDER`: the pod side of a task that runs in a pod of its own. The runner
//! stored a work order in the artifact store; this runs its steps in the sandbox, stores their
//! outputs and results there, and tells the runner where the results are.

use crate::home::Home;
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(clap::Subcommand)]
pub enum TaskCommand {
    /// Run a work order (an artifact digest) stored by a runner; print
    /// `{"results": "sha256:..."}`, the digest of the stored results, also to `--report`.
    Exec {
        /// The work order's artifact digest (sha256:...).
        order: String,
        /// Also write the results line to FILE (the pod's termination message on Kubernetes).
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Run as a rank of a gang's MPI job (started by mpirun for engine mpi; a build with
        /// the `mpi` feature).
        #[arg(long, conflicts_with = "report")]
        mpi: bool,
    },
}

pub fn command(home: &Home, cmd: TaskCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TaskCommand::Exec {
            order, mpi: true, ..
        } => mpi_worker(home, &order),
        TaskCommand::Exec { order, report, .. } => {
            let artifacts = home.open_artifacts()?;
            let runtime = weft_runtime::Runtime::new(home.runtime_config(64))?;
            let cancel = Arc::new(AtomicBool::new(false));
            // This pod's own copy of the step logs; each comes back inside its result.
            let logs = home.logs().join("orders").join(order.replace(':', "-"));
            let results = weft_pipeline::work_order::execute_order(
                &runtime, &artifacts, &logs, &order, &cancel,
            )
            .with_context(|| format!("work order {order}"))?;
            let line = serde_json::json!({ "results": results }).to_string();
            if let Some(path) = report {
                std::fs::write(&path, &line)
                    .with_context(|| format!("writing the report {}", path.display()))?;
            }
            println!("{line}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(feature = "mpi")]
fn mpi_worker(home: &Home, order: &str) -> anyhow::Result<ExitCode> {
    crate::mpi_gang::worker(home, order)
}

#[cfg(not(feature = "mpi"))]
fn mpi_worker(_home: &Home, _order: &str) -> anyhow::Result<ExitCode> {
    anyhow::bail!("task exec --mpi: this wasm-run was built without MPI (the `mpi` feature)")
}
