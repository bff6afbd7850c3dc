//! `wasm-run new`: a ready component project (source, `weft.toml`, WIT where the language
//! binds it at compile time, and a `test.sh` that builds and runs it), like `spin new`.

use crate::project::{Language, World, MANIFEST};
use anyhow::{bail, Context, Result};
use std::path::Path;

const TEST_SH: &str = include_str!("../templates/test.sh");

/// The files of a new `language` step: (relative path, template).
fn files(language: Language) -> Result<Vec<(&'static str, &'static str)>> {
    Ok(match language {
        Language::Python => vec![("app.py", include_str!("../templates/python/app.py"))],
        Language::C => vec![("step.c", include_str!("../templates/c/step.c"))],
        Language::Rust => vec![
            ("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
            ("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
        ],
        Language::Js => vec![("app.js", include_str!("../templates/js/app.js"))],
    })
}

/// Writes a new step project `name` in `language` into `dir` (which must not exist or be
/// empty); returns the files written.
pub fn new_step(dir: &Path, name: &str, language: Language) -> Result<Vec<String>> {
    crate::project::check_name(name).map_err(|e| anyhow::anyhow!("{e}"))?;
    let templates = files(language)?;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} already exists and is not empty: pick another name or --dir",
            dir.display()
        );
    }
    let ident = name.replace('-', "_");
    let fill = |t: &str| t.replace("{{name}}", name).replace("{{ident}}", &ident);
    let mut written = Vec::new();
    let mut write = |rel: &str, text: String| -> Result<()> {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(rel.to_string());
        Ok(())
    };
    write(
        MANIFEST,
        format!("[component]\nname = \"{name}\"\nlanguage = \"{language}\"\nworld = \"step\"\n"),
    )?;
    for (rel, text) in templates {
        write(rel, fill(text))?;
    }
    if language == Language::Rust {
        write("wit/step.wit", crate::wit::text(World::Step).to_string())?;
    }
    write("test.sh", fill(TEST_SH))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("test.sh"), std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(written)
}
