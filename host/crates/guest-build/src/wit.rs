//! The WIT contracts, compiled in: a component is built against the host's own contracts.

use crate::project::World;
use anyhow::Result;
use std::path::{Path, PathBuf};

const STEP: &str = include_str!("../../../../wit/pipeline/step.wit");
const PREDICTOR: &str = include_str!("../../../../wit/serve/predictor.wit");

/// The WIT text of `world`'s package.
pub fn text(world: World) -> &'static str {
    match world {
        World::Step => STEP,
        World::Predictor => PREDICTOR,
    }
}

/// Writes the WIT package of `world` into `dir`; returns the directory to hand a bindings tool.
pub fn write(dir: &Path, world: World) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let (file, text) = match world {
        World::Step => ("step.wit", STEP),
        World::Predictor => ("predictor.wit", PREDICTOR),
    };
    std::fs::write(dir.join(file), text)?;
    Ok(dir.to_path_buf())
}
