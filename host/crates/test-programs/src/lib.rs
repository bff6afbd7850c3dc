//! Paths of the guest components in `components/`, built from source by this crate's build script,
//! in the style of wasmtime's `test-programs-artifacts`. Tests and benches use these constants, so
//! `cargo test` alone rebuilds a changed component.
include!(concat!(env!("OUT_DIR"), "/components.rs"));

/// A component made from a core module in WAT, against the world `world` of the WIT package in
/// `wit/<package_dir>` (`pipeline`, `serve`), the way a guest toolchain makes one: for tests that
/// need what no guest toolchain emits (odd memories, tables, replies).
pub fn component_from_wat(wat: &str, package_dir: &str, world: &str) -> Vec<u8> {
    let mut module = wat::parse_str(wat).expect("the WAT parses");
    let mut resolve = wit_parser::Resolve::default();
    let wit = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../wit")
        .join(package_dir);
    let (pkg, _) = resolve.push_dir(&wit).expect("the WIT parses");
    let world = resolve
        .select_world(&[pkg], Some(world))
        .expect("the world");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )
    .expect("embedding the world");
    wit_component::ComponentEncoder::default()
        .module(&module)
        .expect("a core module")
        .validate(true)
        .encode()
        .expect("a component")
}
