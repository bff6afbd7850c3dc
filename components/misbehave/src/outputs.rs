//! Modes that shape the output tree against the host that reads it afterwards:
//! - `swap`: replaces output `out` with a relative symlink (`../` x40 + param `target`).
//! - `deep`: nests param `levels` directories in `out`, with short paths only (a chain renamed
//!   into a fresh parent, over and over), as no path could name the bottom.
//! - `sparse`: makes `out/big` param `bytes` long with `set_len` (no byte written), or, with
//!   param `at`, writes one byte at that offset.
//! - `mkdirs`: creates param `count` empty directories in `out`.
//! - `links`: writes a 4 MiB file in `out` and param `count` hard links to it.

use crate::symlink;
use std::io::{Seek, SeekFrom, Write};
use weft_step::{StepInput, StepOutput};

fn done() -> Result<StepOutput, String> {
    Ok(StepOutput { params: vec![] })
}

fn io(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

pub(crate) fn swap(input: &StepInput) -> Result<StepOutput, String> {
    let out = input.output("out")?;
    let target = input.str_param("target")?;
    std::fs::remove_dir(out).map_err(io(out))?;
    symlink(&format!("{}{}", "../".repeat(40), target.trim_start_matches('/')), out);
    done()
}

pub(crate) fn deep(input: &StepInput) -> Result<StepOutput, String> {
    let out = input.output("out")?;
    let levels = input.int_param_or("levels", 20_000)?;
    let (chain, fresh) = (format!("{out}/d"), format!("{out}/p"));
    std::fs::create_dir(&chain).map_err(io(&chain))?;
    for _ in 1..levels {
        std::fs::create_dir(&fresh).map_err(io(&fresh))?;
        std::fs::rename(&chain, format!("{fresh}/d")).map_err(io("rename into"))?;
        std::fs::rename(&fresh, &chain).map_err(io("rename back"))?;
    }
    done()
}

pub(crate) fn sparse(input: &StepInput) -> Result<StepOutput, String> {
    let path = format!("{}/big", input.output("out")?);
    let mut file = std::fs::File::create(&path).map_err(io(&path))?;
    match input.int_param_or("at", -1)? {
        at if at >= 0 => {
            file.seek(SeekFrom::Start(at as u64)).map_err(io("seek"))?;
            file.write_all(b"x").map_err(io("write"))?;
        }
        _ => file.set_len(input.int_param_or("bytes", 100 << 30)? as u64).map_err(io("set_len"))?,
    }
    done()
}

pub(crate) fn mkdirs(input: &StepInput) -> Result<StepOutput, String> {
    let out = input.output("out")?;
    for i in 0..input.int_param_or("count", 50_000)? {
        let dir = format!("{out}/{i}");
        std::fs::create_dir(&dir).map_err(io(&dir))?;
    }
    done()
}

pub(crate) fn links(input: &StepInput) -> Result<StepOutput, String> {
    let out = input.output("out")?;
    let file = format!("{out}/data.bin");
    std::fs::write(&file, vec![7u8; 4 << 20]).map_err(io(&file))?;
    for i in 0..input.int_param_or("count", 100)? {
        std::fs::hard_link(&file, format!("{out}/link-{i}")).map_err(io("hard_link"))?;
    }
    done()
}
