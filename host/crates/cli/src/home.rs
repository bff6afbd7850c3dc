//! `$WEFT_HOME`: where local state lives.

use std::path::{Path, PathBuf};

pub struct Home {
    dir: PathBuf,
    artifact_store: Option<String>,
    tensor_backend: weft_tensor::Choice,
    metadata: Option<String>,
    /// The compiled cache's cap; `None`: none.
    cache_max: Option<u64>,
}

impl Home {
    /// `--home`, else `$WEFT_HOME` (clap reads both), else the per-user data directory; the
    /// artifact backend URL (`--artifact-store` / `$WEFT_ARTIFACT_STORE`), and the metadata
    /// database (`--metadata` / `$WEFT_METADATA`), if any; the compiled cache's cap
    /// (`--cache-max` / `$WEFT_CACHE_MAX`; `u64::MAX` for none).
    pub fn resolve(
        explicit: Option<PathBuf>,
        artifact_store: Option<String>,
        tensor_backend: weft_tensor::Choice,
        metadata: Option<String>,
        cache_max: u64,
    ) -> Self {
        let dir = explicit
            .or_else(|| dirs::data_dir().map(|d| d.join("weft")))
            .unwrap_or_else(|| PathBuf::from(".weft"));
        Home {
            dir,
            artifact_store,
            tensor_backend,
            metadata,
            cache_max: (cache_max != u64::MAX).then_some(cache_max),
        }
    }

    /// `--artifact-store` / `$WEFT_ARTIFACT_STORE`, if given.
    pub fn artifact_store_url(&self) -> Option<&str> {
        self.artifact_store.as_deref()
    }

    /// The device `weft:tensor` computes on (`--tensor-backend`): what a gang's ranks are
    /// started with (engine mpi).
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub fn tensor_backend(&self) -> weft_tensor::Choice {
        self.tensor_backend
    }

    /// `--metadata` / `$WEFT_METADATA`, if given.
    pub fn metadata_location(&self) -> Option<&str> {
        self.metadata.as_deref()
    }

    /// The compiled cache's cap, if it has one.
    pub fn cache_max(&self) -> Option<u64> {
        self.cache_max
    }

    /// The run metadata: the configured database, else SQLite in this home.
    pub fn open_metadata(&self) -> anyhow::Result<weft_store::MetadataStore> {
        Ok(match &self.metadata {
            Some(location) => weft_store::MetadataStore::connect(location)?,
            None => weft_store::MetadataStore::open(&self.metadata_db())?,
        })
    }

    /// The engine settings every command starts its runtime with.
    pub fn runtime_config(&self, max_concurrent_steps: u32) -> weft_runtime::RuntimeConfig {
        weft_runtime::RuntimeConfig {
            cache_dir: Some(self.component_cache()),
            max_concurrent_steps,
            tensor_backend: self.tensor_backend,
            cache_max_bytes: self.cache_max,
        }
    }

    /// The artifact store: the local working copy, publishing to and fetching from the
    /// configured backend.
    pub fn open_artifacts(&self) -> anyhow::Result<weft_store::ArtifactStore> {
        let store = weft_store::ArtifactStore::open(&self.artifacts())?;
        Ok(match &self.artifact_store {
            Some(url) => {
                store.with_backend(Box::new(weft_store::ObjectStoreBackend::from_url(url)?))
            }
            None => store,
        })
    }

    /// Compiled components, keyed by digest and engine settings.
    pub fn component_cache(&self) -> PathBuf {
        self.dir.join("cache").join("components")
    }

    /// The log of one task of one run.
    pub fn task_log(&self, run_id: &str, task: &str) -> PathBuf {
        self.dir
            .join("logs")
            .join(run_id)
            .join(format!("{task}.log"))
    }

    /// Task logs of all runs.
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// The SQLite metadata store (when no `--metadata` database is configured).
    pub fn metadata_db(&self) -> PathBuf {
        self.dir.join("metadata.db")
    }

    /// Content-addressed artifacts.
    pub fn artifacts(&self) -> PathBuf {
        self.dir.join("artifacts")
    }

    /// Components by digest.
    pub fn components(&self) -> PathBuf {
        self.dir.join("components")
    }

    /// Build tools `wasm-run build` installs on first use (componentize-py, componentize-js, ...).
    pub fn build_tools(&self) -> PathBuf {
        self.dir.join("tools")
    }

    #[allow(dead_code)]
    pub fn path(&self) -> &Path {
        &self.dir
    }
}
