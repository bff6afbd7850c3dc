//! `$WEFT_HOME`: where local state lives.

use std::path::{Path, PathBuf};

pub struct Home(PathBuf, Option<String>, weft_tensor::Choice);

impl Home {
    /// `--home`, else `$WEFT_HOME` (clap reads both), else the per-user data directory; and the
    /// artifact backend URL (`--artifact-store` / `$WEFT_ARTIFACT_STORE`), if any.
    pub fn resolve(
        explicit: Option<PathBuf>,
        artifact_store: Option<String>,
        tensor_backend: weft_tensor::Choice,
    ) -> Self {
        let dir = explicit
            .or_else(|| dirs::data_dir().map(|d| d.join("weft")))
            .unwrap_or_else(|| PathBuf::from(".weft"));
        Home(dir, artifact_store, tensor_backend)
    }

    /// The engine settings every command starts its runtime with.
    pub fn runtime_config(&self, max_concurrent_steps: u32) -> weft_runtime::RuntimeConfig {
        weft_runtime::RuntimeConfig {
            cache_dir: Some(self.component_cache()),
            max_concurrent_steps,
            tensor_backend: self.2,
        }
    }

    /// The artifact store: the local working copy, publishing to and fetching from the
    /// configured backend.
    pub fn open_artifacts(&self) -> anyhow::Result<weft_store::ArtifactStore> {
        let store = weft_store::ArtifactStore::open(&self.artifacts())?;
        Ok(match &self.1 {
            Some(url) => {
                store.with_backend(Box::new(weft_store::ObjectStoreBackend::from_url(url)?))
            }
            None => store,
        })
    }

    /// Compiled components, keyed by digest and engine settings.
    pub fn component_cache(&self) -> PathBuf {
        self.0.join("cache").join("components")
    }

    /// The log of one task of one run.
    pub fn task_log(&self, run_id: &str, task: &str) -> PathBuf {
        self.0.join("logs").join(run_id).join(format!("{task}.log"))
    }

    /// Task logs of all runs.
    pub fn logs(&self) -> PathBuf {
        self.0.join("logs")
    }

    /// The SQLite metadata store.
    pub fn metadata_db(&self) -> PathBuf {
        self.0.join("metadata.db")
    }

    /// Content-addressed artifacts.
    pub fn artifacts(&self) -> PathBuf {
        self.0.join("artifacts")
    }

    /// Components by digest.
    pub fn components(&self) -> PathBuf {
        self.0.join("components")
    }

    #[allow(dead_code)]
    pub fn path(&self) -> &Path {
        &self.0
    }
}
