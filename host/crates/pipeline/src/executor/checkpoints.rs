//! A gang's checkpoints (`weft:tensor/checkpoint`): each an artifact in the store
//! (content-addressed, one safetensors file), the latest named by a pointer that the run keeps
//! beside its logs, replaced atomically, so a crash leaves the old one or the new one, and a
//! run resumed later finds it.
//!
//! Workers on threads use the pointer directly ([`RunCheckpoints`]). Workers in processes of
//! their own, perhaps on other nodes, share only the artifact store: they start from the
//! checkpoint their work order names and announce each new one on a line, which the runner
//! records in the pointer ([`OrderCheckpoints`]).

use crate::gang_order::GangLine;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use weft_runtime::Checkpoints;
use weft_store::ArtifactStore;

/// The file a checkpoint's artifact holds.
const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

/// Where a run's task keeps the pointer to its latest checkpoint: beside its logs, so a run
/// resumed after a crash finds it.
pub(crate) fn checkpoint_pointer(logs_dir: &Path, run_id: &str, task: &str) -> PathBuf {
    logs_dir
        .join(run_id)
        .join(format!("{task}.checkpoint.json"))
}

/// The pointer's content: the latest checkpoint's step and artifact.
pub(crate) use crate::gang_order::CheckpointRef as Pointer;

/// Stores checkpoint `bytes` as an artifact; its digest.
fn store(artifacts: &ArtifactStore, bytes: Vec<u8>) -> Result<String, String> {
    let scratch = artifacts.scratch_dir().map_err(|e| e.to_string())?;
    let file = scratch.path().join(CHECKPOINT_FILE);
    std::fs::write(&file, bytes).map_err(|e| format!("{}: {e}", file.display()))?;
    let stored = artifacts
        .ingest_dir(scratch.path())
        .map_err(|e| e.to_string())?;
    Ok(stored.digest)
}

/// The bytes of the checkpoint artifact `digest` (checked before it becomes a path).
fn load(artifacts: &ArtifactStore, digest: &str) -> Result<Vec<u8>, String> {
    weft_spec::digest::parse(digest).map_err(|e| format!("checkpoint {digest}: {e}"))?;
    let dir = artifacts.checked_local(digest).map_err(|e| e.to_string())?;
    let file = dir.join(CHECKPOINT_FILE);
    std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))
}

/// The pointer at `path`, if there is one.
pub(crate) fn read_pointer(path: &Path) -> Result<Option<Pointer>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let p: Pointer = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    weft_spec::digest::parse(&p.digest).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Some(p))
}

/// Replaces the pointer at `path` with `p`, atomically.
pub(crate) fn write_pointer(path: &Path, p: &Pointer) -> Result<(), String> {
    let text = serde_json::to_string(p).map_err(|e| e.to_string())?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The checkpoints of workers in this process: straight to the store and the pointer.
pub(crate) struct RunCheckpoints {
    pub(crate) artifacts: Arc<ArtifactStore>,
    pub(crate) pointer: PathBuf,
    pub(crate) every: u32,
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

    fn save(&self, step: u64, bytes: Vec<u8>) -> Result<(), String> {
        let digest = store(&self.artifacts, bytes)?;
        write_pointer(&self.pointer, &Pointer { step, digest })
    }

    fn latest(&self) -> Result<Option<Vec<u8>>, String> {
        match read_pointer(&self.pointer)? {
            Some(p) => load(&self.artifacts, &p.digest).map(Some),
            None => Ok(None),
        }
    }
}

/// The checkpoints of a worker in a process of its own: it starts from the one its work
/// order names, and each it saves is stored and announced to the runner as a
/// [`GangLine::Checkpoint`].
pub(crate) struct OrderCheckpoints {
    pub(crate) artifacts: Arc<ArtifactStore>,
    pub(crate) rank: usize,
    pub(crate) every: u32,
    pub(crate) latest: Mutex<Option<Pointer>>,
}

impl std::fmt::Debug for OrderCheckpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OrderCheckpoints(rank {})", self.rank)
    }
}

impl Checkpoints for OrderCheckpoints {
    fn every(&self) -> u32 {
        self.every
    }

    fn save(&self, step: u64, bytes: Vec<u8>) -> Result<(), String> {
        let digest = store(&self.artifacts, bytes)?;
        GangLine::Checkpoint {
            rank: self.rank,
            step,
            digest: digest.clone(),
        }
        .print();
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(Pointer { step, digest });
        Ok(())
    }

    fn latest(&self) -> Result<Option<Vec<u8>>, String> {
        let latest = self
            .latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match latest {
            Some(p) => load(&self.artifacts, &p.digest).map(Some),
            None => Ok(None),
        }
    }
}
