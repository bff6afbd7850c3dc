//! Exit codes, and which errors get which. Documented in the README ("Exit codes"); the
//! operator's runner Job restarts a pod that exits with [`host_failure`] (3) and treats the others
//! as the run's verdict.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done: the run or step succeeded, the check found nothing wrong |
//! | 1 | the work failed: a task or step failed, a check found damage |
//! | 2 | bad input: the command line, a spec, a file, a value |
//! | 3 | the host failed: the metadata database, the artifact store, the disk, a run held by another process; worth retrying (`pipeline resume`) |
//! | 130 | cancelled (Ctrl-C) |

use std::process::ExitCode;
use weft_store::StoreError;

/// The host failed; worth retrying.
pub fn host_failure() -> ExitCode {
    ExitCode::from(3)
}

/// The exit code for an error that reached `main`.
pub fn code_for(e: &anyhow::Error) -> ExitCode {
    if is_host_failure(e) {
        host_failure()
    } else if e
        .chain()
        .any(|c| matches!(c.downcast_ref(), Some(StoreError::Corrupt { .. })))
    {
        ExitCode::from(1)
    } else {
        ExitCode::from(2)
    }
}

/// Whether anything in `e`'s chain is the host's failure rather than the input's.
fn is_host_failure(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        if cause.downcast_ref::<weft_pipeline::HostFailure>().is_some() {
            return true;
        }
        if let Some(store) = cause.downcast_ref::<StoreError>() {
            return store.is_transient();
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return weft_store::io_is_host(io);
        }
        false
    })
}
