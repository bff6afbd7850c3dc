//! JavaScript components: componentize-js (from npm, into the build tools) turns the project's
//! `app.js` (and the modules it imports) plus the `weft.js` guest SDK into a component of the
//! `weft:js/step` world, which is the step world plus the WASI filesystem (the JS runtime has
//! no file API of its own).
//!
//! The default componentize-js build imports `wasi:http` and exports an HTTP handler; steps are
//! built without both (`-d http -d fetch-event`): a step's network is sockets, granted or not.

use crate::project::{Project, World};
use crate::tools::{self, Tools};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const COMPONENTIZE_JS: &str = "@bytecodealliance/componentize-js@0.23.0";
const SDK: &str = include_str!("../../../../components/sdk-js/weft.js");
const WORLD: &str = include_str!("../../../../wit/js/world.wit");
const WASI: &[(&str, &str)] = &[
    (
        "filesystem",
        include_str!("../../../../wit/js/deps/wasi/filesystem.wit"),
    ),
    ("io", include_str!("../../../../wit/js/deps/wasi/io.wit")),
    (
        "clocks",
        include_str!("../../../../wit/js/deps/wasi/clocks.wit"),
    ),
    ("cli", include_str!("../../../../wit/js/deps/wasi/cli.wit")),
    (
        "random",
        include_str!("../../../../wit/js/deps/wasi/random.wit"),
    ),
    (
        "sockets",
        include_str!("../../../../wit/js/deps/wasi/sockets.wit"),
    ),
];

/// Builds `project` (a JavaScript project) into the component `out`, unless it is up to date.
pub fn build(project: &Project, out: &Path, tools: &Tools) -> Result<()> {
    if project.world != World::Step {
        bail!(
            "{}: JavaScript components are steps (world = \"step\"); {} is not built for JS yet",
            project.dir.join(crate::project::MANIFEST).display(),
            project.world
        );
    }
    let app = project.dir.join("app.js");
    if !app.is_file() {
        bail!(
            "{}: a JavaScript component's entry is app.js (missing)",
            app.display()
        );
    }
    let mut extra = vec![COMPONENTIZE_JS, SDK, WORLD, crate::wit::text(World::Step)];
    extra.extend(WASI.iter().map(|(_, t)| *t));
    let digest = tools::inputs_digest(&project.dir, &extra)?;
    tools::unless_fresh(out, &digest, || componentize(project, out, tools))?;
    Ok(())
}

fn componentize(project: &Project, out: &Path, tools: &Tools) -> Result<()> {
    let bin = ensure_componentize_js(tools)?;
    let stage = tools.stage(&project.name)?;
    let wit = stage.join("wit");
    std::fs::create_dir_all(wit.join("deps/pipeline"))?;
    std::fs::write(wit.join("world.wit"), WORLD)?;
    std::fs::write(
        wit.join("deps/pipeline/step.wit"),
        crate::wit::text(World::Step),
    )?;
    for (name, text) in WASI {
        std::fs::create_dir_all(wit.join("deps").join(name))?;
        std::fs::write(
            wit.join("deps").join(name).join(format!("{name}.wit")),
            text,
        )?;
    }
    // The project's modules beside the SDK, so `import ... from './weft.js'` resolves.
    let src = stage.join("src");
    tools::copy_sources(&project.dir, &src)?;
    std::fs::write(src.join("weft.js"), SDK)?;
    let tmp = out.with_extension("wasm.building");
    tools::run_quiet(
        Command::new(&bin)
            .arg(src.join("app.js"))
            .arg("--wit")
            .arg(&wit)
            .args([
                "--world-name",
                "step",
                "-d",
                "http",
                "-d",
                "fetch-event",
                "-o",
            ])
            .arg(&tmp),
        &format!("componentize-js ({})", project.name),
    )?;
    std::fs::rename(&tmp, out).with_context(|| format!("renaming into {}", out.display()))?;
    let _ = std::fs::remove_dir_all(&stage);
    Ok(())
}

/// componentize-js under the tools directory, installed with npm on first use.
fn ensure_componentize_js(tools: &Tools) -> Result<PathBuf> {
    let prefix = tools.dir.join("js");
    let bin = prefix.join("node_modules/.bin/componentize-js");
    let marker = prefix.join(".weft-complete");
    if bin.is_file() && std::fs::read_to_string(&marker).is_ok_and(|m| m == COMPONENTIZE_JS) {
        return Ok(bin);
    }
    for tool in ["node", "npm"] {
        let found = Command::new(tool).arg("--version").output();
        if !found.is_ok_and(|o| o.status.success()) {
            bail!("building a JavaScript component needs `{tool}` (Node.js 18 or newer; Debian: apt-get install nodejs npm)");
        }
    }
    eprintln!(
        "weft: installing {COMPONENTIZE_JS} into {} (first JavaScript build)",
        prefix.display()
    );
    std::fs::create_dir_all(&prefix)?;
    tools::run_quiet(
        Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .arg(COMPONENTIZE_JS),
        &format!("npm install {COMPONENTIZE_JS} (needs the npm registry or a mirror in .npmrc)"),
    )?;
    if !bin.is_file() {
        bail!(
            "npm installed {COMPONENTIZE_JS} but {} is missing",
            bin.display()
        );
    }
    std::fs::write(&marker, COMPONENTIZE_JS)?;
    Ok(bin)
}
