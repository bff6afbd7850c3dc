//! Weft's stores: run metadata ([`MetadataStore`]: SQLite in a file by default, PostgreSQL with
//! the `postgres` feature) and artifacts content-addressed on local disk ([`ArtifactStore`]),
//! published to an object store when one is configured.
//!
//! Crash safety comes from ordering: a task's output directory is moved into the artifact store
//! (an atomic rename) before the one transaction that records the task as succeeded, its
//! artifacts, lineage events, metrics and cache entry. A `kill -9` at any point leaves either no
//! record or a record whose artifacts all exist with their digests.

mod artifacts;
mod metadata;
#[cfg(feature = "postgres")]
mod metadata_pg;
mod remote;

pub use artifacts::{
    copy_tree, parse_digest, tree_digest, ArtifactStore, ScratchDir, StoredArtifact,
};
pub use metadata::*;
pub use remote::{ArtifactBackend, ObjectStoreBackend};
pub use weft_tree::remove_tree;

/// Store failures, saying which store and what.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("metadata store migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    #[cfg(feature = "postgres")]
    #[error("metadata store (PostgreSQL): {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("artifact store: {0}")]
    Io(#[from] std::io::Error),
    #[error("artifact store: {0}")]
    Invalid(String),
    #[error("artifact store: {0}")]
    Tree(#[from] weft_tree::TreeError),
    #[error("metadata store: {0}")]
    Json(#[from] serde_json::Error),
    #[error("no run `{0}`")]
    NoRun(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;
