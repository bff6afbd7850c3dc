//! Running `wasm-run` the way a user does, in a scratch WEFT_HOME.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use weft_test_programs::{
    COLLECTIVE_PROBE, CSV_FILTER_JS, CSV_PROFILE_PY, CSV_STATS_C, CSV_TRANSFORM, GUEST_TOOLS,
    MISBEHAVE, MISBEHAVE_JS, MISBEHAVE_PY, NOOP, NOT_A_STEP, OBJECTIVE, TENSOR_BENCH, TRAIN_MLP,
};

/// A scratch directory for one test: WEFT_HOME and outputs live inside it.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `wasm-run` with WEFT_HOME in this scratch dir and no inherited RUST_LOG noise.
    pub fn wasm_run(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasm-run"));
        cmd.env("WEFT_HOME", self.path("home"))
            .env("RUST_LOG", "off");
        cmd
    }

    /// Runs `wasm-run run COMPONENT ARGS...`.
    pub fn run(&self, component: &str, args: &[&str]) -> Run {
        self.run_with(component, args, |_| {})
    }

    pub fn run_with(
        &self,
        component: &str,
        args: &[&str],
        tweak: impl FnOnce(&mut Command),
    ) -> Run {
        let mut cmd = self.wasm_run();
        cmd.arg("run").arg(component).args(args);
        tweak(&mut cmd);
        Run(cmd.output().expect("starting wasm-run"))
    }
}

/// What one `wasm-run` invocation did.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    /// Asserts success and parses the `--json` outcome.
    pub fn json(&self) -> serde_json::Value {
        assert_eq!(
            self.code(),
            0,
            "wasm-run failed:\nstdout: {}\nstderr: {}",
            self.stdout(),
            self.stderr()
        );
        serde_json::from_str(&self.stdout())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout()))
    }

    /// Asserts the documented failure shape: exit 1, one `error:` line naming the log file.
    pub fn failure(&self) -> String {
        assert_eq!(
            self.code(),
            1,
            "expected a step failure:\nstdout: {}\nstderr: {}",
            self.stdout(),
            self.stderr()
        );
        let err = self.stderr();
        let line = err
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("no error line: {err}"));
        assert!(
            line.contains("(log: "),
            "the error line names the log: {line}"
        );
        line.to_string()
    }

    /// The log path named on the error line.
    pub fn log_path(&self) -> PathBuf {
        let line = self.failure();
        let start = line.rfind("(log: ").unwrap() + "(log: ".len();
        PathBuf::from(&line[start..line.len() - 1])
    }
}

/// The output parameter `name` of a `--json` outcome, as `{"type": .., "value": ..}`.
pub fn param<'a>(outcome: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    outcome["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p[0] == name)
        .map(|p| &p[1])
        .unwrap_or_else(|| panic!("no output param {name} in {outcome}"))
}

pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../..")
        .join(rel)
}

/// An example pipeline file's text with its component and data paths pointed at this build.
pub fn example_text(name: &str) -> String {
    example_pipeline_text(&format!("iris/{name}"))
}

/// `examples/pipelines/PATH`, with its component and data paths made absolute.
pub fn example_pipeline_text(path: &str) -> String {
    let components = Path::new(CSV_TRANSFORM)
        .parent()
        .unwrap()
        .display()
        .to_string();
    std::fs::read_to_string(repo_file(&format!("examples/pipelines/{path}")))
        .unwrap()
        .replace(
            "../../../target/wasm-guests/components/",
            &format!("{components}/"),
        )
        .replace(
            "../../data/iris.csv",
            repo_file("examples/data/iris.csv").to_str().unwrap(),
        )
}

/// The digest of output artifact `name` of `task` in a `--json` run summary.
pub fn output_digest(summary: &serde_json::Value, task: &str, name: &str) -> String {
    summary["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["task"] == task && e["name"] == name && e["direction"] == "output")
        .unwrap_or_else(|| panic!("no output {task}.{name} in {summary}"))["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `wasm-run artifacts put PATH` in `s`'s home: the stored artifact's digest.
pub fn put_artifact(s: &Scratch, path: &Path) -> String {
    let out = succeed(s.wasm_run().args(["artifacts", "put"]).arg(path));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A test's tool is missing: with `CI` set that fails the test (CI installs every tool, so a
/// missing one is a broken install, not a reason to pass); elsewhere it says what did not run.
pub fn tool_missing(what: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} (CI is set: a test whose tool is missing fails there)"
    );
    eprintln!("{what}");
}

/// Runs `cmd`, failing the test with its stderr unless it succeeds.
pub fn succeed(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd`, failing the test unless it fails too: its exit code and stderr.
pub fn fails(cmd: &mut Command) -> (Option<i32>, String) {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{cmd:?} succeeded");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Serves `app` on a loopback port from a thread of its own (a stand-in API server); its URL.
#[cfg(feature = "kube")]
pub fn serve_in_background(app: axum::Router) -> String {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || rt.block_on(async { axum::serve(listener, app).await }));
    url
}

/// A pipeline of `misbehave` steps: `tasks` is the YAML under `tasks:` (components `m`, any mode, and `busy`); written to `p.yaml`.
pub fn misbehave_pipeline(s: &Scratch, tasks: &str) -> PathBuf {
    let text = format!(
        "apiVersion: weft.dev/v1alpha1
kind: Pipeline
metadata:
  name: test
spec:
  components:
    m:
      source: {MISBEHAVE}
      inputs:
        params:
          mode: {{type: string}}
          ms: {{type: int, default: 0}}
      outputs:
        artifacts: {{out: Artifact}}
    busy:
      source: {MISBEHAVE}
      inputs:
        params:
          mode: {{type: string, default: busy}}
          ms: {{type: int, default: 0}}
      outputs:
        params: {{busy_ms: int}}
        artifacts: {{out: Artifact}}
  tasks:
{tasks}"
    );
    let path = s.path("p.yaml");
    std::fs::write(&path, text).unwrap();
    path
}
