//! A converted component as a Weft Python project: `weft.toml`, `app.py` (KFP's function source
//! unchanged, then the lines that make it the step) and the `kfp` shim that maps `kfp.dsl` onto
//! the weft guest SDK.

use crate::executor::PythonFunction;
use std::path::Path;

/// The `kfp` package a converted component imports instead of KFP's.
const SHIM: &[(&str, &str)] = &[
    ("kfp/__init__.py", include_str!("../shim/kfp/__init__.py")),
    ("kfp/dsl.py", include_str!("../shim/kfp/dsl.py")),
    ("kfp/_step.py", include_str!("../shim/kfp/_step.py")),
];

/// One Python component project to write (under `components/NAME/`) and build.
#[derive(Clone, Debug, PartialEq)]
pub struct PythonComponent {
    /// The Weft component name (and project name).
    pub name: String,
    /// The KFP executor it came from (`exec-train`).
    pub executor: String,
    pub function: PythonFunction,
}

impl PythonComponent {
    /// The project's directory, relative to the pipeline file.
    pub fn dir(&self) -> String {
        format!("components/{}", self.name)
    }

    /// Where `wasm-run build` of the project writes the component, relative to the pipeline file.
    pub fn wasm_path(&self) -> String {
        format!("{}/target/weft/{}.wasm", self.dir(), self.name)
    }

    /// The project's files: (path relative to its directory, text).
    pub fn files(&self) -> Vec<(String, String)> {
        let mut files = vec![
            ("weft.toml".to_string(), self.manifest()),
            ("app.py".to_string(), self.app()),
        ];
        files.extend(SHIM.iter().map(|(p, t)| (p.to_string(), t.to_string())));
        files
    }

    fn manifest(&self) -> String {
        let mut text = format!(
            "# Converted from the KFP executor `{}` by `wasm-run pipeline import-kfp`;\n\
             # `wasm-run build .` rebuilds it after an edit.\n\
             [component]\nname = \"{}\"\nlanguage = \"python\"\nworld = \"step\"\n",
            self.executor, self.name
        );
        if !self.function.packages.is_empty() {
            let list: Vec<String> = self
                .function
                .packages
                .iter()
                .map(|p| toml_string(p))
                .collect();
            text.push_str(&format!("packages = [{}]\n", list.join(", ")));
        }
        text
    }

    /// KFP's source as it is, then the step registration.
    fn app(&self) -> String {
        let source = self.function.source.trim_end();
        format!(
            "# Converted from the KFP executor `{exec}` by `wasm-run pipeline import-kfp`.\n\
             # Below is the function source exactly as the KFP IR embeds it; `kfp` is the shim in\n\
             # ./kfp, which maps kfp.dsl onto the weft guest SDK.\n\
             {source}\n\n\n\
             # The Weft step, with KFP's conventions: a plain return value is the output parameter\n\
             # `Output`; a NamedTuple's fields are outputs of their own (a plain tuple is read by\n\
             # position, as KFP does).\n\
             from kfp._step import step as _step  # noqa: E402\n\n\
             _step({function})\n",
            exec = self.executor,
            function = self.function.function,
        )
    }

    /// Writes the project into `pipeline_dir/components/NAME/`.
    pub fn write(&self, pipeline_dir: &Path) -> std::io::Result<()> {
        let dir = pipeline_dir.join(self.dir());
        for (rel, text) in self.files() {
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, text)?;
        }
        Ok(())
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_keeps_the_source_and_registers_the_step() {
        let c = PythonComponent {
            name: "train".into(),
            executor: "exec-train".into(),
            function: PythonFunction {
                function: "train".into(),
                source: "\nimport kfp\nfrom kfp import dsl\n\ndef train(x: int) -> int:\n    return x\n\n".into(),
                packages: vec!["six==1.16.0".into(), "a\"b".into()],
                image: "python:3.11".into(),
            },
        };
        let files = c.files();
        let app = &files.iter().find(|(p, _)| p == "app.py").unwrap().1;
        assert!(app.contains(
            "\nimport kfp\nfrom kfp import dsl\n\ndef train(x: int) -> int:\n    return x\n"
        ));
        assert!(app.ends_with("_step(train)\n"), "{app}");
        let toml = &files.iter().find(|(p, _)| p == "weft.toml").unwrap().1;
        assert!(
            toml.contains("packages = [\"six==1.16.0\", \"a\\\"b\"]"),
            "{toml}"
        );
        assert!(files.iter().any(|(p, _)| p == "kfp/dsl.py"));
        assert_eq!(c.wasm_path(), "components/train/target/weft/train.wasm");
    }
}
