//! `cargo xtask components`: builds the guest components into `target/wasm-guests/components`.
use anyhow::{bail, Result};
use std::path::PathBuf;

fn main() -> Result<()> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    match std::env::args().nth(1).as_deref() {
        Some("components") => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo.join("target"));
            for c in weft_guest_build::GuestBuild::for_repo(&repo, &target).build_all()? {
                println!("{}", c.path.display());
            }
            Ok(())
        }
        _ => bail!("usage: cargo xtask components   (build the guest components from components/)"),
    }
}
