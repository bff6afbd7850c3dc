//! What a component imports and exports, read from its top-level sections without compiling
//! it, and whether the sandbox's linker provides those imports.
//!
//! wasmtime type-checks imports only in `instantiate_pre`, which needs a compiled component:
//! for a Python or JS component (12–19 MB of interpreter) that is 10–40 s of compiling before
//! a missing import is named. Every toolchain lays a component out types, imports and aliases
//! first, code after; and a prefix of a component's sections is a valid component, since each
//! item refers only to earlier ones. So the imports, with the types they use, make a *probe*:
//! a component with no code that compiles in a millisecond and links exactly as the whole
//! would.

use std::ops::Range;
use wasmparser::{BinaryReader, ComponentExportSectionReader, ComponentImportSectionReader};

/// Version and layer after `\0asm`: a component.
const COMPONENT_LAYER: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];
/// Version and layer after `\0asm`: a core module.
const MODULE_LAYER: [u8; 4] = [0x01, 0x00, 0x00, 0x00];

/// Component section ids (the component model's binary format).
const CUSTOM: u8 = 0;
const CORE_TYPE: u8 = 3;
const ALIAS: u8 = 6;
const TYPE: u8 = 7;
const IMPORT: u8 = 10;
const EXPORT: u8 = 11;

/// A component's outline: its top-level imports and exports, and its probe.
pub(crate) struct Shape {
    /// Top-level imports: the full name, and whether it is an instance (an interface).
    pub imports: Vec<(String, bool)>,
    /// Top-level export names.
    pub exports: Vec<String>,
    /// The imports with the types they use, as a component of their own; `None` when some
    /// code comes before the last import (no toolchain does that), so no cheap probe exists.
    pub probe: Option<Vec<u8>>,
}

/// Reads `bytes`' top-level sections; why it is no component otherwise (worded to follow
/// "not a valid WebAssembly component: ").
pub(crate) fn read(bytes: &[u8]) -> Result<Shape, String> {
    let layer = bytes.get(4..8).unwrap_or_default();
    if !bytes.starts_with(b"\0asm") || layer.len() < 4 {
        return Err("it does not start with a WebAssembly header".into());
    }
    if layer == MODULE_LAYER {
        return Err(
            "it is a core WebAssembly module, not a component (make one with \
                    `wasm-tools component new`, or build for the component target)"
                .into(),
        );
    }
    if layer != COMPONENT_LAYER {
        return Err(format!("unknown WebAssembly version/layer {layer:02x?}"));
    }
    let sections = sections(bytes).map_err(|e| format!("{e}"))?;
    let mut shape = Shape {
        imports: Vec::new(),
        exports: Vec::new(),
        probe: probe(bytes, &sections),
    };
    for s in &sections {
        let reader = BinaryReader::new(&bytes[s.body.clone()], s.body.start as u64);
        match s.id {
            IMPORT => {
                for import in
                    ComponentImportSectionReader::new(reader).map_err(|e| e.to_string())?
                {
                    let import = import.map_err(|e| e.to_string())?;
                    let instance = matches!(import.ty, wasmparser::ComponentTypeRef::Instance(_));
                    shape
                        .imports
                        .push((import.name.full_name().into_owned(), instance));
                }
            }
            EXPORT => {
                for export in
                    ComponentExportSectionReader::new(reader).map_err(|e| e.to_string())?
                {
                    let export = export.map_err(|e| e.to_string())?;
                    shape.exports.push(export.name.full_name().into_owned());
                }
            }
            _ => {}
        }
    }
    Ok(shape)
}

/// One top-level section: its id, where it lies whole (id and size included), and its body.
struct Section {
    id: u8,
    whole: Range<usize>,
    body: Range<usize>,
}

/// The top-level sections of a component, in order; nested modules and components are
/// skipped over, not read.
fn sections(bytes: &[u8]) -> wasmparser::Result<Vec<Section>> {
    let mut reader = BinaryReader::new(&bytes[8..], 8);
    let mut sections = Vec::new();
    while !reader.eof() {
        let start = reader.original_position() as usize;
        let id = reader.read_u8()?;
        let size = reader.read_var_u32()? as usize;
        let body_start = reader.original_position() as usize;
        reader.read_bytes(size)?;
        sections.push(Section {
            id,
            whole: start..body_start + size,
            body: body_start..body_start + size,
        });
    }
    Ok(sections)
}

/// The sections up to the last import, as a component: only types, aliases and imports may
/// be among them (custom sections are left out), else there is no probe.
fn probe(bytes: &[u8], sections: &[Section]) -> Option<Vec<u8>> {
    let last_import = sections.iter().rposition(|s| s.id == IMPORT)?;
    let mut probe = bytes[..8].to_vec();
    for s in &sections[..=last_import] {
        match s.id {
            CUSTOM => {}
            CORE_TYPE | ALIAS | TYPE | IMPORT => probe.extend_from_slice(&bytes[s.whole.clone()]),
            _ => return None,
        }
    }
    Some(probe)
}

/// A component that imports `name` as a function: linking it tells whether the linker
/// defines `name` at all (see `Runtime::missing_interfaces`), whatever the interface holds.
pub(crate) fn name_probe(name: &str) -> Vec<u8> {
    use wasm_encoder::{ComponentImportSection, ComponentTypeRef, ComponentTypeSection};
    let mut types = ComponentTypeSection::new();
    let no_params: [(&str, wasm_encoder::ComponentValType); 0] = [];
    types.function().params(no_params).result(None);
    let mut imports = ComponentImportSection::new();
    imports.import(name, ComponentTypeRef::Func(0));
    let mut component = wasm_encoder::Component::new();
    component.section(&types).section(&imports);
    component.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_core_module_and_garbage_are_named_for_what_they_are() {
        let module = read(b"\0asm\x01\0\0\0").err().unwrap();
        assert!(module.contains("core WebAssembly module"), "{module}");
        assert!(read(b"hello").is_err());
        let truncated = [b"\0asm".as_slice(), &COMPONENT_LAYER, &[IMPORT, 0x7f]].concat();
        assert!(read(&truncated).is_err());
    }

    #[test]
    fn the_name_probe_imports_the_name_as_a_function_and_is_its_own_probe() {
        let probe = name_probe("a:b/c@0.1.0");
        let shape = read(&probe).unwrap();
        assert_eq!(shape.imports, [("a:b/c@0.1.0".to_string(), false)]);
        assert_eq!(shape.probe.as_deref(), Some(probe.as_slice()));
    }
}
