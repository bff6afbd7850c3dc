//! The wgpu backend against the CPU backend (the suite in `common`). CI runs it on Mesa's
//! lavapipe (software Vulkan, installed by `cargo xtask test`); with `WEFT_REQUIRE_WGPU=1` a
//! missing adapter fails instead of skipping.
#![cfg(feature = "wgpu")]

mod common;

use weft_tensor::Wgpu;

fn device() -> Option<Wgpu> {
    match Wgpu::new() {
        Ok(w) => {
            eprintln!("wgpu adapter: {}", w.adapter());
            Some(w)
        }
        Err(e) if std::env::var_os("WEFT_REQUIRE_WGPU").is_none() => {
            eprintln!("wgpu tests not run: {e}");
            None
        }
        Err(e) => panic!("WEFT_REQUIRE_WGPU is set: {e}"),
    }
}

#[test]
fn every_primitive_matches_the_cpu_backend() {
    let Some(g) = device() else { return };
    common::every_primitive_matches_the_cpu_backend(&g);
}

#[test]
fn gradients_and_training_on_wgpu_match_the_cpu_engine() {
    let Some(g) = device() else { return };
    common::gradients_and_training_match_the_cpu_engine(g);
}
