//! What a KFP executor runs. A lightweight Python component (`@dsl.component`) is a container
//! whose command installs its packages with pip, writes the embedded function source to
//! `ephemeral_component.py` and runs `kfp.dsl.executor_main --function_to_execute NAME`
//! (kfp `dsl/component_factory.py`). That source and those packages are what a Weft Python
//! component needs; anything else is refused with its reason.

use crate::ir;
use crate::{Reason, Refusal};

/// A lightweight Python component, read from its executor.
#[derive(Clone, Debug, PartialEq)]
pub struct PythonFunction {
    /// The step function's name (`--function_to_execute`).
    pub function: String,
    /// The embedded source, exactly as KFP ships it (its imports prefix, any helper functions,
    /// the function itself).
    pub source: String,
    /// `packages_to_install`, as pip requirement strings (KFP's own `kfp` package left out).
    pub packages: Vec<String>,
    /// The base image, which Weft does not use.
    pub image: String,
}

/// Packages known to carry native code (or to need one that does): PyPI has no WASI builds of
/// them. Others are tried at build time, where pip accepts only pure-Python wheels.
const NATIVE_PACKAGES: &[(&str, &str)] = &[
    ("numpy", "has native code"),
    ("pandas", "has native code and needs numpy"),
    ("scipy", "has native code"),
    ("scikit-learn", "has native code and needs numpy and scipy"),
    ("sklearn", "is scikit-learn, which has native code"),
    ("torch", "has native code"),
    ("torchvision", "has native code"),
    ("torchaudio", "has native code"),
    ("tensorflow", "has native code"),
    ("tensorflow-cpu", "has native code"),
    ("keras", "needs numpy"),
    ("jax", "needs jaxlib, which has native code"),
    ("jaxlib", "has native code"),
    ("xgboost", "has native code"),
    ("lightgbm", "has native code"),
    ("catboost", "has native code"),
    ("pyarrow", "has native code"),
    ("polars", "has native code"),
    ("matplotlib", "has native code"),
    ("seaborn", "needs numpy, pandas and matplotlib"),
    ("statsmodels", "has native code"),
    ("pillow", "has native code"),
    ("opencv-python", "has native code"),
    ("opencv-python-headless", "has native code"),
    ("h5py", "has native code"),
    ("numba", "has native code"),
    ("lxml", "has native code"),
    ("psycopg2", "has native code"),
    ("psycopg2-binary", "has native code"),
    ("grpcio", "has native code"),
    ("onnxruntime", "has native code"),
    (
        "transformers",
        "needs numpy and tokenizers, which have native code",
    ),
    ("tokenizers", "has native code"),
];

/// Modules whose import means one of those packages: (module, package).
const NATIVE_MODULES: &[(&str, &str)] = &[
    ("numpy", "numpy"),
    ("pandas", "pandas"),
    ("scipy", "scipy"),
    ("sklearn", "scikit-learn"),
    ("torch", "torch"),
    ("torchvision", "torchvision"),
    ("tensorflow", "tensorflow"),
    ("keras", "keras"),
    ("jax", "jax"),
    ("xgboost", "xgboost"),
    ("lightgbm", "lightgbm"),
    ("catboost", "catboost"),
    ("pyarrow", "pyarrow"),
    ("polars", "polars"),
    ("matplotlib", "matplotlib"),
    ("seaborn", "seaborn"),
    ("statsmodels", "statsmodels"),
    ("PIL", "pillow"),
    ("cv2", "opencv-python"),
    ("h5py", "h5py"),
    ("numba", "numba"),
    ("lxml", "lxml"),
    ("psycopg2", "psycopg2"),
    ("grpc", "grpcio"),
    ("onnxruntime", "onnxruntime"),
    ("transformers", "transformers"),
];

/// Reads executor `label`; every reason it cannot become a Weft component is in the error.
pub fn read(label: &str, exec: &ir::ExecutorSpec) -> Result<PythonFunction, Vec<Refusal>> {
    let path = format!("deploymentSpec.executors.{label}");
    let refuse = |at: &str, reason: Reason| {
        vec![Refusal {
            path: if at.is_empty() {
                path.clone()
            } else {
                format!("{path}.{at}")
            },
            reason,
        }]
    };
    if exec.importer.is_some() {
        return Err(refuse("importer", Reason::Unsupported {
            what: "an importer (`dsl.importer`)".into(),
            why: "Weft does not fetch artifacts from URIs: give the artifact as a pipeline input artifact (`wasm-run pipeline run --artifact NAME=PATH`)".into(),
        }));
    }
    if exec.resolver.is_some() {
        return Err(refuse(
            "resolver",
            Reason::Unsupported {
                what: "a resolver".into(),
                why: "Weft does not query earlier runs' artifacts".into(),
            },
        ));
    }
    if exec.custom_job.is_some() {
        return Err(refuse(
            "customJob",
            Reason::Unsupported {
                what: "a Vertex AI custom job".into(),
                why: "it runs on Google Cloud, not as a component".into(),
            },
        ));
    }
    if let Some(field) = exec.other.keys().next() {
        return Err(refuse(
            field,
            Reason::Unsupported {
                what: format!("an executor of kind `{field}`"),
                why: "only containers of lightweight Python components are read".into(),
            },
        ));
    }
    let Some(c) = &exec.container else {
        return Err(refuse(
            "",
            Reason::Unsupported {
                what: "an executor without a container".into(),
                why: "there is nothing to run".into(),
            },
        ));
    };
    let function = c
        .args
        .iter()
        .position(|a| a == "--function_to_execute")
        .and_then(|i| c.args.get(i + 1));
    let program = c
        .command
        .iter()
        .position(|a| a.contains("ephemeral_component.py") && a.contains("executor_main"));
    let (Some(function), Some(source)) = (function, program.and_then(|i| c.command.get(i + 1)))
    else {
        let all = c.command.iter().chain(&c.args);
        if all.clone().any(|a| a.contains("kfp.dsl.executor_main")) {
            return Err(refuse(
                "container",
                Reason::ContainerizedPython {
                    image: c.image.clone(),
                },
            ));
        }
        let command = c
            .command
            .iter()
            .chain(&c.args)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        return Err(refuse(
            "container.image",
            Reason::ContainerImage {
                image: c.image.clone(),
                command: crate::shorten(&command, 80),
            },
        ));
    };
    let mut refusals = Vec::new();
    if !defines(source, function) {
        refusals.extend(refuse(
            "container.command",
            Reason::Unsupported {
                what: format!("embedded source without `def {function}(`"),
                why: "the function to execute is not in it".into(),
            },
        ));
    }
    let program = program.unwrap();
    let mut packages = Vec::new();
    for (i, script) in c.command[..program].iter().enumerate() {
        for p in pip_installs(script) {
            match p {
                Ok(p) => packages.push((i, p)),
                Err(reason) => refusals.extend(refuse(&format!("container.command.{i}"), reason)),
            }
        }
    }
    let mut kept = Vec::new();
    for (i, p) in packages {
        let name = requirement_name(&p);
        if name == "kfp" {
            // KFP's runtime; `kfp` in the component is the shim beside app.py.
            continue;
        }
        if name == "typing-extensions" && p.contains("python_version") {
            continue;
        }
        if let Some((_, why)) = NATIVE_PACKAGES.iter().find(|(n, _)| *n == name) {
            refusals.extend(refuse(
                &format!("container.command.{i}"),
                Reason::NativePackage {
                    package: p.clone(),
                    why: (*why).into(),
                },
            ));
            continue;
        }
        kept.push(p);
    }
    for module in imported_modules(source) {
        let Some((_, package)) = NATIVE_MODULES.iter().find(|(m, _)| *m == module) else {
            continue;
        };
        let listed = c.command[..program]
            .iter()
            .flat_map(|s| pip_installs(s))
            .flatten()
            .any(|p| requirement_name(&p) == *package);
        if !listed {
            refusals.extend(refuse(
                &format!("container.command.{}", program + 1),
                Reason::NativeImport {
                    module,
                    package: (*package).into(),
                    image: c.image.clone(),
                },
            ));
        }
    }
    if let Some(r) = &c.resources {
        if r.accelerator.is_some() {
            refusals.extend(refuse("container.resources.accelerator", Reason::Unsupported {
                what: "an accelerator (`set_accelerator_type`)".into(),
                why: "a Python component reaches no GPU; Weft steps compute on GPUs through weft:tensor".into(),
            }));
        }
    }
    if let Some(field) = c.other.keys().next() {
        refusals.extend(refuse(
            &format!("container.{field}"),
            Reason::Unsupported {
                what: format!("the container field `{field}`"),
                why: "the importer does not know what it means for the step".into(),
            },
        ));
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }
    Ok(PythonFunction {
        function: function.clone(),
        source: source.clone(),
        packages: kept,
        image: c.image.clone(),
    })
}

/// Whether `source` defines `function` at its top level.
fn defines(source: &str, function: &str) -> bool {
    source.lines().any(|l| {
        let l = l.strip_prefix("async ").unwrap_or(l);
        l.strip_prefix("def ")
            .and_then(|r| r.strip_prefix(function))
            .is_some_and(|r| r.trim_start().starts_with('('))
    })
}

/// The requirements of every `pip install` in a shell script, in order; options that change
/// where packages come from are refused.
fn pip_installs(script: &str) -> Vec<Result<String, Reason>> {
    let words = shell_words(script);
    let mut found = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let is_pip = words[i] == "pip" || words[i].ends_with("/pip") || words[i] == "pip3";
        if !(is_pip && words.get(i + 1).is_some_and(|w| w == "install")) {
            i += 1;
            continue;
        }
        i += 2;
        while let Some(w) = words.get(i) {
            if matches!(w.as_str(), "&&" | "||" | ";" | "|") || w.starts_with('"') {
                break;
            }
            match w.as_str() {
                "--index-url" | "-i" | "--extra-index-url" | "--trusted-host" | "-f"
                | "--find-links" => {
                    // Weft's build installs from the index pip is configured with.
                    i += 2;
                    continue;
                }
                "-r" | "--requirement" | "-c" | "--constraint" | "-e" | "--editable" => {
                    found.push(Err(Reason::Unsupported {
                        what: format!("`pip install {w}`"),
                        why: "the file it names is in the image, not in the IR".into(),
                    }));
                    i += 2;
                    continue;
                }
                _ if w.starts_with('-') => {}
                _ if w.starts_with('$') => {}
                _ => found.push(Ok(w.clone())),
            }
            i += 1;
        }
    }
    found
}

/// A shell script's words, quotes removed; `&&`, `||`, `;` and `|` are words of their own.
fn shell_words(script: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = script.chars().peekable();
    let flush = |word: &mut String, in_word: &mut bool, words: &mut Vec<String>| {
        if *in_word {
            words.push(std::mem::take(word));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(e) = chars.next() {
                                word.push(e);
                            }
                        }
                        c => word.push(c),
                    }
                }
            }
            '&' | '|' | ';' => {
                flush(&mut word, &mut in_word, &mut words);
                let mut op = c.to_string();
                if chars.peek() == Some(&c) {
                    op.push(chars.next().unwrap());
                }
                words.push(op);
            }
            c if c.is_whitespace() => flush(&mut word, &mut in_word, &mut words),
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    flush(&mut word, &mut in_word, &mut words);
    words
}

/// A requirement's project name, normalised as PyPI does (`Six_X>=1` → `six-x`).
pub fn requirement_name(req: &str) -> String {
    req.trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .map(|c| match c {
            '_' | '.' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// The top-level modules `source` imports (`import a.b, c as d`, `from e.f import g`), anywhere
/// in it (KFP components import inside their function).
fn imported_modules(source: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut add = |m: &str| {
        let top = m.trim().split('.').next().unwrap_or("").to_string();
        if !top.is_empty() && !found.contains(&top) {
            found.push(top);
        }
    };
    for line in source.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("import ") {
            for part in rest.split(',') {
                add(part.split_whitespace().next().unwrap_or(""));
            }
        } else if let Some(rest) = line.strip_prefix("from ") {
            if let Some((module, _)) = rest.split_once(" import") {
                if !module.starts_with('.') {
                    add(module);
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIP: &str = "\nif ! [ -x \"$(command -v pip)\" ]; then\n    python3 -m ensurepip || python3 -m ensurepip --user || apt-get install python3-pip\nfi\n\nPIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip install --quiet --no-warn-script-location 'six==1.16.0' 'Attrs>=23'  &&  python3 -m pip install --quiet --no-warn-script-location 'kfp==2.17.3' '--no-deps' 'typing-extensions>=3.7.4,<5; python_version<\"3.9\"' && \"$0\" \"$@\"\n";

    #[test]
    fn reads_the_packages_kfp_installs() {
        let got: Vec<String> = pip_installs(PIP).into_iter().map(Result::unwrap).collect();
        assert_eq!(
            got,
            [
                "six==1.16.0",
                "Attrs>=23",
                "kfp==2.17.3",
                "typing-extensions>=3.7.4,<5; python_version<\"3.9\""
            ]
        );
        assert_eq!(requirement_name("Attrs>=23"), "attrs");
        assert_eq!(requirement_name("scikit_learn[all]==1.5"), "scikit-learn");
        let with_index = "python3 -m pip install --index-url https://mirror/simple --trusted-host mirror 'six' && \"$0\"";
        let got: Vec<String> = pip_installs(with_index)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, ["six"]);
    }

    #[test]
    fn finds_imports_anywhere() {
        let src = "import kfp\nfrom kfp import dsl\ndef f(x: int):\n    import numpy as np, json\n    from sklearn.linear_model import X\n    from . import y\n";
        assert_eq!(imported_modules(src), ["kfp", "numpy", "json", "sklearn"]);
        assert!(defines("import kfp\n\ndef f (x): pass\n", "f"));
        assert!(!defines("def fg(x): pass\n", "f"));
    }
}
