//! Weft's stores: run metadata ([`MetadataStore`]: SQLite in a file by default, PostgreSQL with
//! the `postgres` feature) and artifacts content-addressed on local disk ([`ArtifactStore`]),
//! published to an object store when one is configured.
//!
//! Crash safety comes from ordering: a task's output directory is moved into the artifact store
//! (an atomic rename) before the one transaction that records the task as succeeded, its
//! artifacts, lineage events, metrics and cache entry. A `kill -9` at any point leaves either no
//! record or a record whose artifacts all exist with their digests.

mod artifacts;
mod experiments;
mod gc;
mod lease;
mod metadata;
#[cfg(feature = "postgres")]
mod metadata_pg;
mod registry;
#[cfg(feature = "postgres")]
mod registry_pg;
mod remote;
mod rows;
mod run_list;

pub use artifacts::{
    copy_tree, parse_digest, tree_digest, ArtifactStore, Fsck, ScratchDir, StoredArtifact,
    FULL_CHECK_BYTES,
};
pub use experiments::{ExperimentRecord, TrialRecord};
pub use gc::collect_freed;
pub use lease::{Lease, RunLease, STALE_AFTER};
pub use metadata::*;
pub use registry::{
    digests_in, FreedHook, RegistryDialect, RegistryError, RegistryKind, RegistryOrder,
    RegistryPage, RegistryRow, RegistryStore, RegistryValue, RegistryWhere,
};
pub use remote::{ArtifactBackend, ObjectStoreBackend};
pub use run_list::RunQuery;
pub use weft_tree::remove_tree;

/// Store failures, saying which store and what.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata store: {0}")]
    Sql(rusqlite::Error),
    #[error("metadata store migration: {0}")]
    Migration(rusqlite_migration::Error),
    #[cfg(feature = "postgres")]
    #[error("metadata store (PostgreSQL): {0}")]
    Postgres(sqlx::Error),
    #[error("artifact store: {0}")]
    Io(std::io::Error),
    #[error("artifact store: {0}")]
    Invalid(String),
    /// The metadata database cannot be used as it is (damaged, truncated), with what to do.
    #[error("metadata store: {0}")]
    Unusable(String),
    /// The artifact backend (object store) failed a request: the network or the service.
    #[error("{0}")]
    Backend(String),
    #[error("artifact store: {0}")]
    Tree(weft_tree::TreeError),
    #[error("metadata store: {0}")]
    Json(serde_json::Error),
    #[error("artifact {digest} is corrupt: its content at {} no longer matches its digest; `wasm-run artifacts verify --repair` moves it aside so the task that made it runs again", path.display())]
    Corrupt {
        digest: String,
        path: std::path::PathBuf,
    },
    #[error("run {run} is being executed by pid {pid} on {host} (since {since}); wait for it to finish, or stop that process")]
    RunHeld {
        run: String,
        pid: u32,
        host: String,
        since: String,
    },
    #[error("no run `{0}`")]
    NoRun(String),
    /// A trial recorded for an experiment the store does not have.
    #[error("no experiment `{0}`")]
    NoExperiment(String),
}

// Conversions without `#[from]`: that would also make each wrapped error the variant's
// `source`, and since the message already shows it, `{:#}` printed it two or three times
// ("database disk image is malformed: database disk image is malformed: ...").
macro_rules! from_error {
    ($($variant:ident($ty:ty)),* $(,)?) => {$(
        impl From<$ty> for StoreError {
            fn from(e: $ty) -> Self {
                StoreError::$variant(e)
            }
        }
    )*};
}
from_error!(
    Sql(rusqlite::Error),
    Migration(rusqlite_migration::Error),
    Io(std::io::Error),
    Tree(weft_tree::TreeError),
    Json(serde_json::Error),
);
#[cfg(feature = "postgres")]
from_error!(Postgres(sqlx::Error));

pub type Result<T> = std::result::Result<T, StoreError>;

/// Text from the database shown in a message: escaped, and cut to a line.
fn text_shown(text: &str) -> String {
    weft_spec::text::truncate(&weft_spec::text::escape_control(text), 80).into_owned()
}

impl StoreError {
    /// Whether retrying later may succeed: the database or the disk failed, not the request.
    /// A malformed database does not heal by retrying; a busy, locked or full one may.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Sql(rusqlite::Error::SqliteFailure(f, _)) => !matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseCorrupt
                    | rusqlite::ErrorCode::NotADatabase
                    | rusqlite::ErrorCode::ConstraintViolation
            ),
            #[cfg(feature = "postgres")]
            StoreError::Postgres(_) => true,
            StoreError::Io(io) => io_is_host(io),
            StoreError::Tree(weft_tree::TreeError::Io { source, .. }) => io_is_host(source),
            StoreError::RunHeld { .. } | StoreError::Backend(_) => true,
            _ => false,
        }
    }
}

/// Disk full, quota, device I/O errors and the network: the host's failures, whatever the
/// input.
pub fn io_is_host(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        StorageFull
            | QuotaExceeded
            | ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | NotConnected
            | TimedOut
            | HostUnreachable
            | NetworkUnreachable
            | NetworkDown
            | ResourceBusy
    ) || e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error())
}
