//! Builds the guest components from source (see weft-guest-build) and records their paths.
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let repo = manifest
        .ancestors()
        .nth(3)
        .expect("host/crates/test-programs sits three levels deep")
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target"));
    let build = weft_guest_build::GuestBuild::for_repo(&repo, &target);
    println!(
        "cargo:rerun-if-changed={}",
        repo.join("components").display()
    );
    println!("cargo:rerun-if-changed={}", repo.join("wit").display());
    // The Rust guest SDK's own dependency from outside components/.
    println!(
        "cargo:rerun-if-changed={}",
        repo.join("gpu-bridge/crates/collective/src").display()
    );
    println!("cargo:rerun-if-env-changed=WEFT_GUEST_TOOLCHAIN");
    let built = build.build_all()?;
    let mut code = String::new();
    for c in &built {
        let ident = c.package.to_uppercase().replace('-', "_");
        code.push_str(&format!(
            "/// `components/{}`, built.\npub const {ident}: &str = {:?};\n",
            c.package,
            c.path.display().to_string()
        ));
    }
    code.push_str(&format!(
        "/// Where the build installed the guest languages' tools (componentize-py, ...).\npub const GUEST_TOOLS: &str = {:?};\n",
        build.target_dir.join("tools").display().to_string()
    ));
    std::fs::write(
        PathBuf::from(std::env::var("OUT_DIR")?).join("components.rs"),
        code,
    )?;
    Ok(())
}
