//! A home with stores and runs recorded through the store's own API, and a client that calls
//! the UI's router in-process.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower::ServiceExt;
use weft_store::*;

pub struct Home {
    pub dir: tempfile::TempDir,
    pub ui: Arc<weft_ui::Ui>,
}

pub struct Page {
    pub status: StatusCode,
    pub content_type: String,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Home {
    pub fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("metadata.db");
        let ui = weft_ui::Ui {
            metadata: MetadataStore::open(&db).unwrap(),
            artifacts: ArtifactStore::open(&dir.path().join("artifacts")).unwrap(),
            registry: Arc::new(RegistryStore::open(&db).unwrap()),
            logs_dir: dir.path().join("logs"),
            serving: vec![],
            namespaces: weft_registry::Namespaces::any(),
        };
        std::fs::create_dir_all(&ui.logs_dir).unwrap();
        Home {
            dir,
            ui: Arc::new(ui),
        }
    }

    pub fn meta(&self) -> &MetadataStore {
        &self.ui.metadata
    }

    pub async fn get(&self, uri: &str) -> Page {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    pub async fn send(&self, req: Request<Body>) -> Page {
        let app = weft_ui::app(self.ui.clone());
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let content_type = headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .unwrap();
        Page {
            status,
            content_type,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// A run of `pipeline` created at second `sec`, with the plan's graph `upstream`.
    pub fn run(
        &self,
        id: &str,
        pipeline: &str,
        sec: u32,
        upstream: &[(&str, &[&str])],
        params: serde_json::Value,
    ) {
        let upstream: serde_json::Map<String, serde_json::Value> = upstream
            .iter()
            .map(|(t, ups)| (t.to_string(), serde_json::json!(ups)))
            .collect();
        let tasks: Vec<String> = upstream.keys().cloned().collect();
        let plan = serde_json::json!({"upstream": upstream, "params": params});
        let record = RunRecord {
            id: id.into(),
            pipeline: pipeline.into(),
            pipeline_file: format!("{pipeline}.yaml"),
            plan_json: plan.to_string(),
            state: RUN_RUNNING.into(),
            created_at: format!("2026-12-03T10:{:02}:{:02}Z", sec / 60, sec % 60),
            finished_at: None,
            error: None,
        };
        self.meta().create_run(&record, &tasks).unwrap();
    }

    /// Starts `task` with a log holding `log`.
    pub fn start(&self, run: &str, task: &str, log: &str) -> PathBuf {
        let path = self.ui.logs_dir.join(run).join(format!("{task}.log"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, log).unwrap();
        self.meta()
            .start_task(run, task, 1, "sha256:0", path.to_str().unwrap())
            .unwrap();
        path
    }

    /// An artifact directory with `files`, stored.
    pub fn artifact(&self, files: &[(&str, &str)]) -> StoredArtifact {
        let staging = self.dir.path().join(format!("staging-{}", rand_name()));
        for (name, text) in files {
            let p = staging.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        self.ui.artifacts.ingest_dir(&staging).unwrap()
    }

    /// Completes `task` with outputs, output params and metrics `(name, step, value)`.
    pub fn succeed(
        &self,
        run: &str,
        task: &str,
        outputs: Vec<(&str, StoredArtifact, &str)>,
        params_json: &str,
        metrics: &[(&str, Option<u64>, f64)],
        log: &Path,
    ) {
        let done = TaskCompletion {
            state: TaskState::Succeeded,
            outputs_json: params_json.into(),
            inputs: vec![],
            outputs: outputs
                .into_iter()
                .map(|(n, a, t)| (n.to_string(), a, t.to_string()))
                .collect(),
            metrics: metrics
                .iter()
                .map(|(n, step, value)| MetricRecord {
                    task: task.into(),
                    name: n.to_string(),
                    value: *value,
                    step: *step,
                })
                .collect(),
            cache_key: None,
            cached_from: None,
            duration_ms: 1234.0,
            log_path: Some(log.to_str().unwrap().to_string()),
        };
        self.meta().complete_task(run, task, &done).unwrap();
    }
}

fn rand_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

/// The text between `start` and the next `end` after it.
pub fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let i = s
        .find(start)
        .unwrap_or_else(|| panic!("no `{start}` in {s}"))
        + start.len();
    let j = s[i..].find(end).map_or(s.len(), |j| i + j);
    &s[i..j]
}
