//! Builds the Rust guest components in `components/` into WebAssembly components.
//!
//! Used by `cargo xtask components` (the README's commands) and by `weft-test-programs`' build
//! script (tests and benches), so both get the same components from the same source. It installs
//! what it needs: the `wasm32-wasip2` rustup target when it can, else the fallback verified on
//! these machines (Debian's `rustc-web` with `-Zbuild-std` for `wasm32-wasip1`, turned into a
//! component with the preview1 adapter by `wit-component`, the library behind `wasm-tools component
//! new`, so no extra binary is needed).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

mod c;
mod js;
pub mod project;
mod python;
pub mod scaffold;
pub mod tools;
mod wit;

pub use project::{Language, Project, World};
pub use tools::Tools;

/// How guests are compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Toolchain {
    /// rustup's `wasm32-wasip2` target: rustc links a component directly.
    Rustup,
    /// Debian `rustc-web` + `-Zbuild-std` for `wasm32-wasip1`, adapted to a component afterwards.
    Debian,
}

/// One component built from source.
#[derive(Clone, Debug)]
pub struct BuiltComponent {
    /// The cargo package name, e.g. `csv-transform`.
    pub package: String,
    /// Where the component now lies.
    pub path: PathBuf,
}

/// What to build and where.
#[derive(Clone, Debug)]
pub struct GuestBuild {
    /// The guest cargo workspace (`components/`).
    pub workspace: PathBuf,
    /// Cargo's target directory for guest builds (kept apart from the host's).
    pub target_dir: PathBuf,
    /// Where finished components are written, one `<package>.wasm` each.
    pub out_dir: PathBuf,
}

const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_WASM_LD: &str = "/usr/lib/llvm-16/bin/wasm-ld";
const DEBIAN_WASI_LIBDIR: &str = "/usr/lib/wasm32-wasi";
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    ("rustc-web", DEBIAN_RUSTC),
    ("cargo-web", DEBIAN_CARGO),
    ("rust-web-src", "/usr/lib/rustlib/src/rust/library"),
    ("wasi-libc", "/usr/lib/wasm32-wasi/libc.a"),
    ("lld-16", DEBIAN_WASM_LD),
];

impl GuestBuild {
    /// The standard layout: `<repo>/components`, built under `<target>/wasm-guests`.
    pub fn for_repo(repo_root: &Path, host_target_dir: &Path) -> Self {
        let target_dir = host_target_dir.join("wasm-guests");
        GuestBuild {
            workspace: repo_root.join("components"),
            out_dir: target_dir.join("components"),
            target_dir,
        }
    }

    /// Builds every cdylib package of the guest workspace; returns them in package-name order.
    pub fn build_all(&self) -> Result<Vec<BuiltComponent>> {
        let packages = cdylib_packages(&self.workspace)?;
        let toolchain = pick_toolchain()?;
        eprintln!(
            "weft-guest-build: building {} components with the {toolchain:?} toolchain",
            packages.len()
        );
        std::fs::create_dir_all(&self.out_dir)
            .with_context(|| format!("creating {}", self.out_dir.display()))?;
        let mut built = match toolchain {
            Toolchain::Rustup => self.build_rustup(&packages)?,
            Toolchain::Debian => self.build_debian(&packages)?,
        };
        // Components in other languages: `components/*/weft.toml`.
        let tools = Tools::new(self.target_dir.join("tools"));
        for project in Project::discover(&self.workspace)? {
            eprintln!(
                "weft-guest-build: building {} ({})",
                project.name, project.language
            );
            let path = build_project(&project, &self.out_dir, &tools)?;
            built.push(BuiltComponent {
                package: project.name,
                path,
            });
        }
        Ok(built)
    }

    fn build_rustup(&self, packages: &[String]) -> Result<Vec<BuiltComponent>> {
        let mut cmd = clean_cargo(&std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(self.workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&self.target_dir);
        run(
            &mut cmd,
            "cargo build --target wasm32-wasip2 (guest components)",
        )?;
        let release = self.target_dir.join("wasm32-wasip2/release");
        packages
            .iter()
            .map(|pkg| {
                let artifact = release.join(format!("{}.wasm", pkg.replace('-', "_")));
                let dest = self.out_dir.join(format!("{pkg}.wasm"));
                copy_if_changed(&artifact, &dest)?;
                Ok(BuiltComponent {
                    package: pkg.clone(),
                    path: dest,
                })
            })
            .collect()
    }

    fn build_debian(&self, packages: &[String]) -> Result<Vec<BuiltComponent>> {
        ensure_debian_packages()?;
        let mut cmd = clean_cargo(DEBIAN_CARGO);
        cmd.env("RUSTC", DEBIAN_RUSTC)
            .env("RUSTC_BOOTSTRAP", "1")
            .env(
                "RUSTFLAGS",
                format!(
                    "-Clinker={DEBIAN_WASM_LD} -Clink-self-contained=no -L{DEBIAN_WASI_LIBDIR}"
                ),
            )
            .args([
                "build",
                "--release",
                "-Zbuild-std=std,panic_abort",
                "--target",
                "wasm32-wasip1",
                "--manifest-path",
            ])
            .arg(self.workspace.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&self.target_dir);
        run(
            &mut cmd,
            "Debian cargo build -Zbuild-std --target wasm32-wasip1 (guest components)",
        )?;
        let release = self.target_dir.join("wasm32-wasip1/release");
        packages
            .iter()
            .map(|pkg| {
                let core = release.join(format!("{}.wasm", pkg.replace('-', "_")));
                let module =
                    std::fs::read(&core).with_context(|| format!("reading {}", core.display()))?;
                let component = componentize_preview1(&module)
                    .with_context(|| format!("adapting {} to a component", core.display()))?;
                let dest = self.out_dir.join(format!("{pkg}.wasm"));
                write_if_changed(&dest, &component)?;
                Ok(BuiltComponent {
                    package: pkg.clone(),
                    path: dest,
                })
            })
            .collect()
    }
}

/// Builds one component project into `out_dir/<name>.wasm`, installing the language's tools
/// into `tools` on first use; returns the component's path.
pub fn build_project(project: &Project, out_dir: &Path, tools: &Tools) -> Result<PathBuf> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let out = out_dir.join(format!("{}.wasm", project.name));
    match project.language {
        Language::Python => python::build(project, &out, tools)?,
        Language::C => c::build(project, &out, tools)?,
        Language::Rust => build_rust_project(project, &out)?,
        Language::Js => js::build(project, &out, tools)?,
    }
    Ok(out)
}

/// A Rust project of its own (`wasm-run new --lang rust`): cargo builds it for `wasm32-wasip2`
/// (rustc links the component) in its own target directory.
fn build_rust_project(project: &Project, out: &Path) -> Result<()> {
    ensure_rustup_target().context("a Rust component needs rustup's wasm32-wasip2 target")?;
    let target = project.dir.join("target");
    let mut cmd = clean_cargo(&std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--manifest-path",
    ])
    .arg(project.dir.join("Cargo.toml"))
    .arg("--target-dir")
    .arg(&target);
    run(&mut cmd, &format!("cargo build ({})", project.name))?;
    let built = target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", project.name.replace('-', "_")));
    copy_if_changed(&built, out)
}

/// Wraps a wasip1 core module into a component with the preview1 reactor adapter matching the
/// host's wasmtime major version.
pub fn componentize_preview1(module: &[u8]) -> Result<Vec<u8>> {
    use wasi_preview1_component_adapter_provider::{
        WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
    };
    wit_component::ComponentEncoder::default()
        .module(module)?
        .validate(true)
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .encode()
}

/// `WEFT_GUEST_TOOLCHAIN=rustup|debian` forces a path; otherwise rustup's target when it is or can
/// be installed, else Debian's.
fn pick_toolchain() -> Result<Toolchain> {
    match std::env::var("WEFT_GUEST_TOOLCHAIN").as_deref() {
        Ok("rustup") => return ensure_rustup_target().map(|_| Toolchain::Rustup),
        Ok("debian") => return Ok(Toolchain::Debian),
        Ok("auto") | Ok("") | Err(_) => {}
        Ok(other) => bail!("WEFT_GUEST_TOOLCHAIN={other}: expected `rustup`, `debian` or `auto`"),
    }
    match ensure_rustup_target() {
        Ok(()) => Ok(Toolchain::Rustup),
        Err(e) => {
            eprintln!(
                "weft-guest-build: rustup target unavailable ({e:#}); using the Debian fallback"
            );
            Ok(Toolchain::Debian)
        }
    }
}

fn ensure_rustup_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running `rustup target list --installed` (is rustup installed?)")?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == "wasm32-wasip2")
    {
        return Ok(());
    }
    eprintln!("weft-guest-build: installing the wasm32-wasip2 target with rustup");
    run(
        Command::new("rustup").args(["target", "add", "wasm32-wasip2"]),
        "rustup target add wasm32-wasip2",
    )
}

fn ensure_debian_packages() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .filter(|(_, path)| !Path::new(path).exists())
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("weft-guest-build: installing Debian packages {missing:?}");
    run(
        Command::new("apt-get").arg("update").arg("-qq"),
        "apt-get update",
    )?;
    run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing),
        "apt-get install (needs root; install these packages by hand otherwise)",
    )
}

/// Names of the cdylib packages in the guest workspace, sorted.
fn cdylib_packages(workspace: &Path) -> Result<Vec<String>> {
    let output = clean_cargo(&std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(workspace.join("Cargo.toml"))
        .output()
        .context("running cargo metadata on the guest workspace")?;
    if !output.status.success() {
        bail!(
            "cargo metadata on {} failed: {}",
            workspace.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let mut names: Vec<String> = meta["packages"]
        .as_array()
        .context("cargo metadata: no packages")?
        .iter()
        .filter(|p| {
            p["targets"].as_array().is_some_and(|ts| {
                ts.iter().any(|t| {
                    t["crate_types"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c == "cdylib"))
                })
            })
        })
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

/// A cargo command without the variables an outer cargo (build script, `cargo run`) sets, which
/// would otherwise leak host flags into the wasm build.
fn clean_cargo(cargo: &str) -> Command {
    let mut cmd = Command::new(cargo);
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn copy_if_changed(src: &Path, dest: &Path) -> Result<()> {
    let bytes =
        std::fs::read(src).with_context(|| format!("reading built component {}", src.display()))?;
    write_if_changed(dest, &bytes)
}

/// Leaves an identical file untouched so its mtime (and anything keyed on it) stays put.
fn write_if_changed(dest: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(dest).ok().as_deref() == Some(bytes) {
        return Ok(());
    }
    let tmp = dest.with_extension("wasm.tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, dest).with_context(|| format!("renaming into {}", dest.display()))
}
