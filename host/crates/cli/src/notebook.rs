//! `wasm-run notebook [DIR]`: JupyterLab, locally, with the Weft SDK one import away.
//!
//! JupyterLab runs from a venv the project manages (`$WEFT_HOME/notebook/venv`, or
//! `$WEFT_NOTEBOOK_VENV`): made with the machine's `python3` and filled from PyPI on first use
//! (pip's progress shown), with pinned versions; a venv whose package list matches is used as
//! it is. The SDK (`components/sdk-python/weft`) is compiled into this binary and written into
//! the venv (a `.pth` file puts it on the path), so an installed `wasm-run` needs no checkout;
//! the kernel's environment names this home (`WEFT_HOME`, and the artifact store and metadata
//! database when given) and this binary (`WEFT_WASM_RUN`), so a notebook's runs are the CLI's
//! and the UI's. The server listens on loopback only and needs its token.

use crate::home::Home;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NotebookArgs {
    #[command(subcommand)]
    pub command: Option<NotebookCommand>,
    #[command(flatten)]
    pub open: OpenArgs,
}

#[derive(clap::Subcommand)]
pub enum NotebookCommand {
    /// Start JupyterLab here (what `wasm-run notebook [DIR]` does).
    Open(OpenArgs),
    /// Stop a cluster's Notebook (sets its `kubeflow-resource-stopped` annotation; the
    /// operator scales it to 0, keeping its workspace volume).
    Stop(crate::notebook_kube::NotebookRef),
    /// Start a stopped Notebook again (removes the annotation).
    Start(crate::notebook_kube::NotebookRef),
}

#[derive(clap::Args, Clone)]
pub struct OpenArgs {
    /// The folder JupyterLab opens (its root); default the current one.
    pub dir: Option<PathBuf>,
    /// The loopback port to listen on.
    #[arg(long, default_value_t = 8888)]
    pub port: u16,
    /// Do not open a browser (the default where there is no display).
    #[arg(long)]
    pub no_browser: bool,
    /// The token the server asks for (default: a fresh random one, printed).
    #[arg(long, env = "WEFT_NOTEBOOK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The Python the venv is made with.
    #[arg(long, default_value = "python3")]
    pub python: String,
}

/// What the venv holds, pinned; a change here makes the venv anew on the next start.
pub const PACKAGES: &[&str] = &["jupyterlab==4.6.6", "ipykernel==7.4.0"];

/// The SDK's modules, as this binary was built with them.
macro_rules! sdk {
    ($($file:literal),* $(,)?) => {
        &[$(($file, include_str!(concat!("../../../../components/sdk-python/weft/", $file)))),*]
    };
}
const SDK: &[(&str, &str)] = sdk![
    "__init__.py",
    "bundle.py",
    "client.py",
    "compiler.py",
    "dsl.py",
    "guest.py",
    "kube.py",
    "notebook.py",
    "serving.py",
    "signature.py",
    "train.py",
    "tune.py",
    "types.py",
    "yaml.py",
];

pub fn command(home: &Home, args: NotebookArgs) -> Result<ExitCode> {
    match args.command {
        None => open(home, args.open),
        Some(NotebookCommand::Open(open_args)) => open(home, open_args),
        Some(NotebookCommand::Stop(target)) => crate::notebook_kube::set_stopped(target, true),
        Some(NotebookCommand::Start(target)) => crate::notebook_kube::set_stopped(target, false),
    }
}

/// `$WEFT_NOTEBOOK_VENV`, else `HOME/notebook/venv`.
fn venv_dir(home: &Home) -> PathBuf {
    match std::env::var_os("WEFT_NOTEBOOK_VENV") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => home.path().join("notebook").join("venv"),
    }
}

fn open(home: &Home, args: OpenArgs) -> Result<ExitCode> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::current_dir()?,
    };
    if !dir.is_dir() {
        bail!("{}: no such folder", dir.display());
    }
    let dir = dir.canonicalize()?;
    let venv = venv_dir(home);
    let python = ensure_venv(&venv, &args.python)?;
    let sdk = install_sdk(&venv)?;
    let exe = std::env::current_exe().context("finding this wasm-run")?;
    let token = args
        .token
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let browser = !args.no_browser && has_display();

    let mut cmd = Command::new(&python);
    cmd.args(["-m", "jupyterlab"])
        .arg("--ServerApp.ip=127.0.0.1")
        .arg(format!("--ServerApp.port={}", args.port))
        .arg("--ServerApp.port_retries=0")
        .arg(format!("--ServerApp.root_dir={}", dir.display()))
        .arg(format!("--ServerApp.open_browser={}", py_bool(browser)))
        .arg("--ServerApp.allow_remote_access=False")
        .env("JUPYTER_TOKEN", &token)
        .env("WEFT_HOME", home.path())
        .env("WEFT_WASM_RUN", &exe)
        .env(
            "PYTHONPATH",
            prepend_path(&sdk, std::env::var_os("PYTHONPATH")),
        )
        .current_dir(&dir);
    // Jupyter refuses root unless told; containers often run as root.
    #[cfg(unix)]
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        cmd.arg("--ServerApp.allow_root=True");
    }
    if let Some(store) = home.artifact_store_url() {
        cmd.env("WEFT_ARTIFACT_STORE", store);
    }
    if let Some(metadata) = home.metadata_location() {
        cmd.env("WEFT_METADATA", metadata);
    }
    println!(
        "wasm-run notebook: JupyterLab on http://127.0.0.1:{}/lab?token={token}",
        args.port
    );
    println!(
        "  folder {}; runs go to {} (wasm-run runs list); `import weft`, `%load_ext weft`",
        dir.display(),
        home.path().display()
    );
    // JupyterLab takes this process's place: signals (Ctrl-C, SIGTERM) reach it directly and
    // it shuts its kernels down itself.
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let err = cmd.exec();
        Err(err).with_context(|| format!("starting {} -m jupyterlab", python.display()))
    }
    #[cfg(not(unix))]
    {
        let status = cmd.status()?;
        Ok(ExitCode::from(status.code().unwrap_or(1) as u8))
    }
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// A display to open a browser on: macOS and Windows have one; elsewhere `DISPLAY` or
/// `WAYLAND_DISPLAY` says so.
fn has_display() -> bool {
    if cfg!(any(target_os = "macos", windows)) {
        return true;
    }
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

fn prepend_path(first: &Path, rest: Option<std::ffi::OsString>) -> std::ffi::OsString {
    let mut paths = vec![first.to_path_buf()];
    if let Some(rest) = rest {
        paths.extend(std::env::split_paths(&rest));
    }
    std::env::join_paths(paths).unwrap_or_else(|_| first.as_os_str().to_owned())
}

fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// The venv's Python, made and filled first unless its marker names exactly [`PACKAGES`].
fn ensure_venv(venv: &Path, base_python: &str) -> Result<PathBuf> {
    let python = venv_python(venv);
    let marker = venv.join(".weft-packages");
    let wanted = PACKAGES.join("\n");
    if python.exists() && std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted) {
        return Ok(python);
    }
    eprintln!(
        "wasm-run notebook: making the notebook venv {} (first use: {} from PyPI; later starts reuse it)",
        venv.display(),
        PACKAGES.join(", ")
    );
    std::fs::create_dir_all(venv)?;
    let _ = std::fs::remove_file(&marker);
    let made = Command::new(base_python)
        .args(["-m", "venv", "--clear"])
        .arg(venv)
        .status()
        .with_context(|| {
            format!("running {base_python} (install Python 3.9 or later, or pass --python)")
        })?;
    if !made.success() {
        bail!(
            "{base_python} -m venv {} failed ({made}); on Debian, apt-get install python3-venv",
            venv.display()
        );
    }
    // pip's own progress bars on the terminal: the first start downloads ~100 MB.
    let installed = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--progress-bar",
            "on",
        ])
        .args(PACKAGES)
        .status()
        .context("running pip")?;
    if !installed.success() {
        bail!(
            "pip install {} into {} failed ({installed}): is PyPI reachable?",
            PACKAGES.join(" "),
            venv.display()
        );
    }
    std::fs::write(&marker, wanted)?;
    Ok(python)
}

/// Writes the SDK compiled into this binary to `VENV/weft-sdk/weft` (files rewritten only when
/// they differ) and a `weft-sdk.pth` into the venv's site-packages; returns `VENV/weft-sdk`.
fn install_sdk(venv: &Path) -> Result<PathBuf> {
    let root = venv.join("weft-sdk");
    let pkg = root.join("weft");
    std::fs::create_dir_all(&pkg)?;
    for (name, text) in SDK {
        let path = pkg.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(*text) {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    for site in site_packages(venv) {
        std::fs::write(site.join("weft-sdk.pth"), format!("{}\n", root.display()))?;
    }
    Ok(root)
}

fn site_packages(venv: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(venv.join("lib")) {
        for e in entries.flatten() {
            let site = e.path().join("site-packages");
            if site.is_dir() {
                found.push(site);
            }
        }
    }
    let windows = venv.join("Lib").join("site-packages");
    if windows.is_dir() {
        found.push(windows);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every module of the SDK is compiled in (a new one must be added to `SDK`).
    #[test]
    fn the_embedded_sdk_is_the_whole_package() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../components/sdk-python/weft");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".py"))
            .collect();
        on_disk.sort();
        let embedded: Vec<String> = SDK.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(embedded, on_disk);
    }
}
