//! A component project: a directory with a `weft.toml` naming the component, its language and
//! the world it targets, as `spin.toml` does for Spin. `wasm-run new` writes one, `wasm-run
//! build` and `cargo xtask components` read it.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The file that makes a directory a component project.
pub const MANIFEST: &str = "weft.toml";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, strum::EnumString, strum::Display)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Language {
    Rust,
    Python,
    Js,
    C,
}

/// The WIT world a component targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, strum::Display)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum World {
    /// `weft:pipeline/step`: a pipeline step.
    Step,
    /// `weft:serve/predictor`: a served model.
    Predictor,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    component: ComponentSection,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComponentSection {
    name: String,
    language: Language,
    #[serde(default = "default_world")]
    world: World,
    /// Pure-Python packages (pip requirement strings) bundled into a Python component.
    #[serde(default)]
    packages: Vec<String>,
}

/// A component name: it becomes a file name and (in Python, JS and C) an identifier.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_lowercase();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name {name:?} must be 1-64 lowercase letters, digits, '-' or '_', starting with a letter"
        ))
    }
}

fn default_world() -> World {
    World::Step
}

/// A project read from its `weft.toml`.
#[derive(Clone, Debug)]
pub struct Project {
    pub dir: PathBuf,
    pub name: String,
    pub language: Language,
    pub world: World,
    pub packages: Vec<String>,
}

impl Project {
    /// Reads `dir/weft.toml`; errors name the file and the field.
    pub fn read(dir: &Path) -> Result<Project> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: not a component project (no readable {MANIFEST}; `wasm-run new` writes one)",
                dir.display()
            )
        })?;
        let file: ManifestFile =
            toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        let c = file.component;
        check_name(&c.name).map_err(|e| anyhow::anyhow!("{}: component.{e}", path.display()))?;
        if !c.packages.is_empty() && c.language != Language::Python {
            bail!(
                "{}: component.packages is for Python components (this one is {})",
                path.display(),
                c.language
            );
        }
        Ok(Project {
            dir: dir.to_path_buf(),
            name: c.name,
            language: c.language,
            world: c.world,
            packages: c.packages,
        })
    }

    /// Every project directly under `root` (`components/*/weft.toml`), sorted by name.
    pub fn discover(root: &Path) -> Result<Vec<Project>> {
        let mut found = Vec::new();
        for entry in
            std::fs::read_dir(root).with_context(|| format!("reading {}", root.display()))?
        {
            let dir = entry?.path();
            if dir.join(MANIFEST).is_file() {
                found.push(Project::read(&dir)?);
            }
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(text: &str) -> Result<Project> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("weft-project-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(MANIFEST), text).unwrap();
        let p = Project::read(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        p
    }

    #[test]
    fn a_manifest_names_language_and_world() {
        let p =
            project("[component]\nname = \"a-b\"\nlanguage = \"python\"\nworld = \"predictor\"\n")
                .unwrap();
        assert_eq!((p.language, p.world), (Language::Python, World::Predictor));
        let p = project("[component]\nname = \"c\"\nlanguage = \"c\"\n").unwrap();
        assert_eq!(p.world, World::Step);
    }

    #[test]
    fn bad_manifests_name_the_field() {
        let e = format!(
            "{:#}",
            project("[component]\nname = \"x\"\nlanguage = \"cobol\"\n").unwrap_err()
        );
        assert!(e.contains("language") && e.contains("cobol"), "{e}");
        let e = format!(
            "{:#}",
            project("[component]\nname = \"../x\"\nlanguage = \"c\"\n").unwrap_err()
        );
        assert!(e.contains("component.name \"../x\""), "{e}");
        let e = format!(
            "{:#}",
            project("[component]\nname = \"x\"\nlanguage = \"c\"\npackages = [\"a\"]\n")
                .unwrap_err()
        );
        assert!(e.contains("component.packages"), "{e}");
    }
}
