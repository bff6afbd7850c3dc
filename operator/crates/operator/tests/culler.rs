//! The notebook culler against a real `jupyter_server` (from the test venv `cargo xtask test`
//! makes): a kernel kept busy is activity, so the notebook stays; once it is idle past the
//! threshold, the culler sets the stop annotation and counts the cull.

use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use weft_crd::Notebook;
use weft_kube_mock::{client, expect, within, Reply, Seen};
use weft_operator::metrics::Metrics;
use weft_operator::notebook::{self, NotebookConfig, NotebookContext};
use weft_operator::Context;

const NB: &str = "/apis/weft.dev/v1alpha1/namespaces/team-a/notebooks/lab";
const TOKEN: &str = "culler-test-token";

/// A tool is missing: with `CI` set that fails the test (CI installs every tool); elsewhere
/// it says what did not run.
fn tool_missing(what: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} (CI is set: a test whose tool is missing fails there)"
    );
    eprintln!("{what}");
}

fn python() -> Option<PathBuf> {
    let python = PathBuf::from(std::env::var_os("WEFT_TEST_PYTHON")?);
    let ok = Command::new(&python)
        .args(["-c", "import jupyter_server, ipykernel, tornado"])
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(python)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Drives the server as a Jupyter client would: `busy` starts a kernel and keeps it executing
/// (`time.sleep`, sent over the kernel's websocket, until its status is busy), printing its
/// id; `interrupt ID` stops the execution (REST).
const CLIENT: &str = r#"
import json, sys, urllib.request
from tornado import httpclient, ioloop, websocket
base, token, cmd = sys.argv[1], sys.argv[2], sys.argv[3]
auth = {"Authorization": "token " + token}
def rest(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={**auth, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        text = r.read()
        return json.loads(text) if text else None
if cmd == "busy":
    kid = rest("POST", "api/kernels", {"name": "python3"})["id"]
    async def execute():
        ws = await websocket.websocket_connect(httpclient.HTTPRequest(
            base.replace("http", "ws", 1) + "api/kernels/" + kid + "/channels", headers=auth))
        ws.write_message(json.dumps({
            "header": {"msg_id": "sleep-1", "username": "test", "session": "s-1",
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": "import time; time.sleep(600)", "silent": False,
                        "store_history": False, "user_expressions": {}, "allow_stdin": False}}))
        while True:
            m = await ws.read_message()
            if m is None:
                raise SystemExit("the kernel's websocket closed")
            if isinstance(m, bytes):
                continue
            m = json.loads(m)
            if (m.get("msg_type") == "status" and m["content"]["execution_state"] == "busy"
                    and m["parent_header"].get("msg_id") == "sleep-1"):
                break
        ws.close()
    ioloop.IOLoop.current().run_sync(execute, timeout=120)
    print(kid)
elif cmd == "interrupt":
    rest("POST", "api/kernels/" + sys.argv[4] + "/interrupt")
"#;

fn drive(python: &Path, dir: &Path, base: &str, args: &[&str]) -> String {
    let script = dir.join("client.py");
    std::fs::write(&script, CLIENT).unwrap();
    let out = Command::new(python)
        .arg(&script)
        .args([base, TOKEN])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "client.py {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn notebook(annotations: Value) -> Notebook {
    serde_json::from_value(json!({
        "apiVersion": "weft.dev/v1alpha1",
        "kind": "Notebook",
        "metadata": {"name": "lab", "namespace": "team-a", "uid": "uid-7",
                     "annotations": annotations},
        "spec": {"template": {"spec": {"containers": [{"name": "lab", "image": "x"}]}}}
    }))
    .unwrap()
}

fn config(port: u16) -> NotebookConfig {
    NotebookConfig {
        culling: true,
        service_url: format!("http://127.0.0.1:{port}"),
        token: Some(TOKEN.into()),
        check_period: Duration::from_secs(1),
        ..Default::default()
    }
}

/// One culling check of `nb` at `now`, against a scripted API server that takes the
/// annotations patch (or no request at all when `patch` is false).
async fn check(
    nb: &Notebook,
    port: u16,
    idle: Duration,
    now: Timestamp,
    metrics: Arc<Metrics>,
    patch: bool,
) -> (bool, Option<Seen>) {
    let script = if patch {
        vec![expect(
            "PATCH",
            NB,
            Reply::MergeInto(serde_json::to_value(nb).unwrap()),
        )]
    } else {
        vec![]
    };
    let (c, server) = client(script);
    let nctx = NotebookContext::new(Context::new(c, metrics, Default::default()), config(port));
    let culled = tokio::time::timeout(
        Duration::from_secs(30),
        notebook::cull(nb, &nctx, idle, now),
    )
    .await
    .expect("the culler hung")
    .unwrap();
    let seen = within(server.finish()).await;
    (culled, seen.into_iter().next())
}

fn annotation(seen: &Seen, key: &str) -> Option<String> {
    seen.body["metadata"]["annotations"][key]
        .as_str()
        .map(String::from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_kernel_keeps_its_notebook_and_an_idle_one_is_stopped() {
    let Some(python) = python() else {
        tool_missing(
            "jupyter_server not installed: the culler test did not run (cargo xtask test installs it)",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let prefix = "/notebook/team-a/lab/";
    let log = dir.path().join("server.log");
    let _server = Server(
        Command::new(&python)
            .args(["-m", "jupyter_server", "--ServerApp.ip=127.0.0.1"])
            .arg(format!("--ServerApp.port={port}"))
            .arg("--ServerApp.port_retries=0")
            .arg(format!("--IdentityProvider.token={TOKEN}"))
            .arg(format!("--ServerApp.base_url={prefix}"))
            .arg(format!("--ServerApp.root_dir={}", dir.path().display()))
            .arg("--ServerApp.open_browser=False")
            // Containers (and CI) often run as root, which the server refuses unless told.
            .arg("--allow-root")
            .env("JUPYTER_CONFIG_DIR", dir.path().join("config"))
            .env("JUPYTER_RUNTIME_DIR", dir.path().join("runtime"))
            .env("IPYTHONDIR", dir.path().join("ipython"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}{prefix}");
    let url = notebook::kernels_url(&config(port), "team-a", "lab");
    assert_eq!(url, format!("{base}api/kernels"));
    let (c, _unused) = client(vec![]);
    let probe = NotebookContext::new(
        Context::new(c, Default::default(), Default::default()),
        config(port),
    );
    let started = std::time::Instant::now();
    while notebook::kernels(&probe, &url).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "jupyter_server did not answer {url} in 60 s: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let metrics = Arc::new(Metrics::default());
    let idle = Duration::from_secs(2);

    // Busy: a kernel executing `time.sleep` is activity now, however old the annotation.
    let kernel = drive(&python, dir.path(), &base, &["busy"]);
    let long_ago = Timestamp::now() - Duration::from_secs(7200);
    let nb = notebook(json!({"notebooks.kubeflow.org/last-activity": long_ago.to_string()}));
    let now = Timestamp::now();
    let (culled, seen) = check(&nb, port, idle, now, metrics.clone(), true).await;
    let seen = seen.unwrap();
    assert!(!culled, "a busy notebook was culled: {:?}", seen.body);
    assert_eq!(annotation(&seen, "kubeflow-resource-stopped"), None);
    assert_eq!(
        annotation(&seen, "notebooks.kubeflow.org/last-activity"),
        Some(now.to_string())
    );
    assert_eq!(
        annotation(
            &seen,
            "notebooks.kubeflow.org/last_activity_check_timestamp"
        ),
        Some(now.to_string())
    );

    // Checked less than a period ago: not asked again.
    let recent = notebook(json!({
        "notebooks.kubeflow.org/last-activity": long_ago.to_string(),
        "notebooks.kubeflow.org/last_activity_check_timestamp": now.to_string(),
    }));
    let (culled, seen) = check(&recent, port, idle, now, metrics.clone(), false).await;
    assert!(!culled && seen.is_none());

    // Idle: the execution interrupted, the kernel's last activity ages past the threshold.
    drive(&python, dir.path(), &base, &["interrupt", &kernel]);
    let started = std::time::Instant::now();
    loop {
        let kernels = notebook::kernels(&probe, &url).await.unwrap();
        if kernels
            .iter()
            .all(|k| k.execution_state.as_deref() == Some("idle"))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the kernel stayed busy: {kernels:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(idle + Duration::from_secs(1)).await;
    let idle_nb = notebook(json!({
        "notebooks.kubeflow.org/last-activity": now.to_string(),
        "notebooks.kubeflow.org/last_activity_check_timestamp": now.to_string(),
    }));
    let later = Timestamp::now();
    let (culled, seen) = check(&idle_nb, port, idle, later, metrics.clone(), true).await;
    let seen = seen.unwrap();
    assert!(culled, "an idle notebook was not culled: {:?}", seen.body);
    assert_eq!(
        annotation(&seen, "kubeflow-resource-stopped"),
        Some(later.to_string())
    );
    // Its last activity is the kernel's (the interrupt), after the busy check's.
    let last: Timestamp = annotation(&seen, "notebooks.kubeflow.org/last-activity")
        .unwrap()
        .parse()
        .unwrap();
    assert!(last > now && last < later, "{last} not in ({now}, {later})");
    let text = metrics.encode();
    assert!(
        text.contains(r#"weft_operator_notebook_culls_total{namespace="team-a",name="lab"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("weft_operator_notebook_last_cull_timestamp_seconds{"),
        "{text}"
    );
}
