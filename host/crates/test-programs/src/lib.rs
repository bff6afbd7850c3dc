//! Paths of the guest components in `components/`, built from source by this crate's build script,
//! in the style of wasmtime's `test-programs-artifacts`. Tests and benches use these constants, so
//! `cargo test` alone rebuilds a changed component.
include!(concat!(env!("OUT_DIR"), "/components.rs"));
