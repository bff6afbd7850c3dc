//! A real server for the HTTP tests: `serve_on` on loopback ports of its own, in a runtime of
//! its own, stopped when dropped.

pub mod handmade;

use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use weft_runtime::{Limits, Runtime, RuntimeConfig};
use weft_serve::{Listeners, ModelConfig, ServerConfig};

pub struct Server {
    pub url: String,
    pub admin: String,
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

pub fn model(name: &str, component: &Path) -> ModelConfig {
    ModelConfig {
        name: name.into(),
        version: "1".into(),
        component: component.to_path_buf(),
        model_dir: None,
    }
}

/// A configuration of `models` with the CLI's defaults, adjusted by the caller.
pub fn config(models: Vec<ModelConfig>) -> ServerConfig {
    ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        admin_addr: None,
        admin_token: None,
        models,
        limits: Limits {
            timeout: std::time::Duration::from_secs(60),
            max_output_bytes: 64 << 20,
            ..Limits::default()
        },
        max_body_bytes: 32 << 20,
        concurrency: 4,
        queue: 64,
        pool: 0,
        snapshot: false,
        splits: Default::default(),
    }
}

/// Serves `config` and waits until its models are ready.
pub fn start(config: ServerConfig) -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (data, admin) = rt.block_on(async {
        let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
        (bind().await.unwrap(), bind().await.unwrap())
    });
    let url = format!("http://{}", data.local_addr().unwrap());
    let admin_url = format!("http://{}", admin.local_addr().unwrap());
    let runtime = Arc::new(Runtime::new(RuntimeConfig::default()).unwrap());
    let listeners = Listeners {
        data,
        admin: Some(admin),
    };
    rt.spawn(async move {
        if let Err(e) = weft_serve::serve_on(listeners, config, runtime).await {
            eprintln!("server stopped: {e:#}");
        }
    });
    let server = Server {
        url,
        admin: admin_url,
        rt: Some(rt),
    };
    let ready = format!("{}/v2/health/ready", server.url);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while get(&ready).0 != 200 {
        assert!(std::time::Instant::now() < deadline, "never ready");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server
}

fn answer(url: &str, result: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    match result {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(code, r)) => {
            let text = r.into_string().unwrap();
            let body = serde_json::from_str(&text).unwrap_or_else(|e| {
                panic!("{url}: a {code} answer that is not JSON ({e}): {text}")
            });
            (code, body)
        }
        Err(e) => panic!("{url}: {e}"),
    }
}

/// A GET: status and JSON body (every answer, errors too, is JSON).
pub fn get(url: &str) -> (u16, Value) {
    match ureq::get(url).call() {
        Err(ureq::Error::Transport(_)) => (0, Value::Null),
        other => answer(url, other),
    }
}

pub fn post(url: &str, body: &str) -> (u16, Value) {
    answer(
        url,
        ureq::post(url)
            .set("Content-Type", "application/json")
            .send_string(body),
    )
}

pub fn send(req: ureq::Request, body: &str) -> (u16, Value) {
    let url = req.url().to_string();
    answer(&url, req.send_string(body))
}
