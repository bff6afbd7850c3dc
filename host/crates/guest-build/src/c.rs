//! C components: `wit-bindgen c` writes the bindings of the step world, clang-16 compiles the
//! project's `*.c` with them and the `weft.h` guest SDK into a wasip1 reactor module, and the
//! preview1 reactor adapter (`componentize_preview1`) makes it a component.
//!
//! Tools, installed on first use (as measured in ../shared/toolchain/README.md, "C"): Debian's
//! `clang-16`, `lld-16` (wasm-ld), `libclang-rt-16-dev-wasm32` (compiler builtins) and
//! `wasi-libc` with apt-get when missing, and the `wit-bindgen` CLI with only its C generator by
//! `cargo install` into the tools directory (a `wit-bindgen` of the same version on PATH is used
//! instead when there is one). The SDK and the WIT are compiled into this crate, as for Python:
//! a component is built against the contracts of the host that runs it, and a project holds only
//! its own C files.

use crate::project::{Project, World};
use crate::tools::{self, Tools};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The wit-bindgen the guest workspace uses (components/Cargo.toml, `wit-bindgen = "0.63"`).
const WIT_BINDGEN: &str = "0.63.0";
const CLANG: &str = "/usr/bin/clang-16";
const WASM_LD: &str = "/usr/lib/llvm-16/bin/wasm-ld";
/// What clang is given besides the sources; part of the inputs digest.
const CFLAGS: &[&str] = &[
    "--target=wasm32-wasi",
    "-O2",
    "-mexec-model=reactor",
    "-Wall",
];
/// Debian packages and a file each installs.
const PACKAGES: &[(&str, &str)] = &[
    ("clang-16", CLANG),
    ("lld-16", WASM_LD),
    (
        "libclang-rt-16-dev-wasm32",
        "/usr/lib/llvm-16/lib/clang/16/lib/wasi/libclang_rt.builtins-wasm32.a",
    ),
    ("wasi-libc", "/usr/lib/wasm32-wasi/libc.a"),
];

/// The guest SDK, as it is in components/sdk-c.
const SDK: &[(&str, &str)] = &[
    (
        "weft.h",
        include_str!("../../../../components/sdk-c/weft.h"),
    ),
    (
        "weft.c",
        include_str!("../../../../components/sdk-c/weft.c"),
    ),
];

/// Builds `project` (a C project) into the component `out`, unless it is up to date.
pub fn build(project: &Project, out: &Path, tools: &Tools) -> Result<()> {
    if project.world != World::Step {
        bail!(
            "{}: C components target the step world only (this one asks for {})",
            project.dir.join(crate::project::MANIFEST).display(),
            project.world
        );
    }
    let sources = sources(&project.dir)?;
    if sources.is_empty() {
        bail!(
            "{}: a C component needs at least one .c file (none found)",
            project.dir.display()
        );
    }
    let clang = format!("{CLANG} {}", CFLAGS.join(" "));
    let bindgen = format!("wit-bindgen-cli {WIT_BINDGEN}");
    let mut extra = vec![
        clang.as_str(),
        bindgen.as_str(),
        crate::wit::text(World::Step),
    ];
    extra.extend(SDK.iter().flat_map(|(n, t)| [*n, *t]));
    let digest = tools::inputs_digest(&project.dir, &extra)?;
    tools::unless_fresh(out, &digest, || compile(project, &sources, out, tools))?;
    Ok(())
}

/// The project's `.c` files (outside `target/`, `build/`, `gen/` and hidden directories), sorted.
fn sources(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let walk = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            e.depth() == 0
                || !(name.starts_with('.') || ["target", "build", "gen"].contains(&name.as_ref()))
        });
    for entry in walk {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        if entry.file_type().is_file() && entry.path().extension().is_some_and(|e| e == "c") {
            found.push(entry.into_path());
        }
    }
    Ok(found)
}

fn compile(project: &Project, sources: &[PathBuf], out: &Path, tools: &Tools) -> Result<()> {
    ensure_packages()?;
    let bindgen = ensure_wit_bindgen(tools)?;
    let stage = tools.stage(&project.name)?;
    let wit = crate::wit::write(&stage.join("wit"), World::Step)?;
    let gen = stage.join("gen");
    tools::run_quiet(
        Command::new(&bindgen)
            .arg("c")
            .arg(&wit)
            .args(["--world", "step", "--out-dir"])
            .arg(&gen),
        &format!("wit-bindgen c ({})", project.name),
    )?;
    let sdk = stage.join("sdk");
    std::fs::create_dir_all(&sdk)?;
    for (name, text) in SDK {
        std::fs::write(sdk.join(name), text)?;
    }
    let core = stage.join("core.wasm");
    let mut cmd = Command::new(CLANG);
    cmd.args(CFLAGS)
        .arg(format!("-fuse-ld={WASM_LD}"))
        .arg("-I")
        .arg(&sdk)
        .arg("-I")
        .arg(&gen)
        .arg("-I")
        .arg(&project.dir)
        .args(sources)
        .arg(gen.join("step.c"))
        .arg(gen.join("step_component_type.o"))
        .arg(sdk.join("weft.c"))
        .arg("-o")
        .arg(&core);
    tools::run_quiet(&mut cmd, &format!("clang-16 ({})", project.name))?;
    let module = std::fs::read(&core).with_context(|| format!("reading {}", core.display()))?;
    let component = crate::componentize_preview1(&module)
        .with_context(|| format!("adapting {} to a component", project.name))?;
    crate::write_if_changed(out, &component)?;
    let _ = std::fs::remove_dir_all(&stage);
    Ok(())
}

/// clang-16, wasm-ld, the wasm32 builtins and wasi-libc, from Debian with apt-get when missing.
fn ensure_packages() -> Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, path)| !Path::new(path).exists())
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let by_hand = format!(
        "C components need the Debian packages {}: install them as root with `apt-get install {}`",
        missing.join(", "),
        missing.join(" ")
    );
    eprintln!(
        "weft: installing {} with apt-get (first C build)",
        missing.join(" ")
    );
    tools::run_quiet(
        Command::new("apt-get").args(["update", "-qq"]),
        &format!("apt-get update ({by_hand})"),
    )?;
    tools::run_quiet(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        &format!("apt-get install ({by_hand})"),
    )
}

/// The `wit-bindgen` CLI at version WIT_BINDGEN: on PATH if that one is there, else installed
/// by cargo (C generator only) under the tools directory on first use.
fn ensure_wit_bindgen(tools: &Tools) -> Result<PathBuf> {
    let is_ours = |bin: &Path| {
        Command::new(bin).arg("--version").output().is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .any(|w| w == WIT_BINDGEN)
        })
    };
    let on_path = PathBuf::from("wit-bindgen");
    if is_ours(&on_path) {
        return Ok(on_path);
    }
    let root = tools.dir.join("wit-bindgen");
    let bin = root.join("bin/wit-bindgen");
    if is_ours(&bin) {
        return Ok(bin);
    }
    eprintln!(
        "weft: installing wit-bindgen-cli {WIT_BINDGEN} (C generator only) into {} with cargo \
         install: this takes a few minutes, once (first C build)",
        root.display()
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = crate::clean_cargo(&cargo);
    cmd.args([
        "install",
        "--locked",
        "--quiet",
        "wit-bindgen-cli",
        "--version",
    ])
    .arg(WIT_BINDGEN)
    .args(["--no-default-features", "--features", "c", "--root"])
    .arg(&root)
    // Outside any project, so no rust-toolchain.toml or .cargo/config applies.
    .current_dir(std::env::temp_dir());
    tools::run_quiet(
        &mut cmd,
        &format!(
            "cargo install wit-bindgen-cli {WIT_BINDGEN} (needs cargo and crates.io or a mirror; \
             or put wit-bindgen {WIT_BINDGEN} on PATH)"
        ),
    )?;
    if !is_ours(&bin) {
        bail!(
            "{} does not report version {WIT_BINDGEN} after installing it",
            bin.display()
        );
    }
    Ok(bin)
}
