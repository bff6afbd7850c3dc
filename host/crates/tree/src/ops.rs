//! What the host does to a tree besides reading it: seal it, copy it, remove it.

use crate::walk::{open_dir, open_root, walk, Kind};
use crate::{Limits, Result, TreeError};
use rustix::fs::{fchmod, fstat, unlinkat, AtFlags, Dir, FileType, Mode};
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::Path;

/// Clears the write bits of every file under `root` (through the handle the walk opened).
pub fn make_read_only(root: &Path, limits: Limits) -> Result<()> {
    walk(root, limits, |entry, file| {
        let Some(file) = file else { return Ok(()) };
        let shown = || root.join(entry.rel);
        let mode = fstat(&file)
            .map_err(|e| TreeError::io(&shown(), e))?
            .st_mode;
        fchmod(&file, Mode::from_raw_mode(mode & 0o7555)).map_err(|e| TreeError::io(&shown(), e))
    })
}

/// Copies the tree at `src` into `dest` (created), refusing what [`walk`] refuses.
pub fn copy_tree(src: &Path, dest: &Path, limits: Limits) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(|e| TreeError::io(dest, e))?;
    walk(src, limits, |entry, file| {
        let target = dest.join(entry.rel);
        let io = |e| TreeError::io(&target, e);
        match (entry.kind, file) {
            (Kind::Dir, _) => std::fs::create_dir(&target).map_err(io),
            (Kind::File, Some(mut file)) => {
                let mut out = std::fs::File::create_new(&target).map_err(io)?;
                std::io::copy(&mut file, &mut out).map(drop).map_err(io)
            }
            (Kind::File, None) => Ok(()),
        }
    })
}

/// Removes the tree at `root` whatever its depth or width: iteratively, one directory handle
/// open at a time (children are entered by handle and left through `..`), never following a
/// link. `std::fs::remove_dir_all` recurses once per level and builds ever longer paths, so a
/// step's 20 000-deep output overflowed a runner thread's stack with it.
pub fn remove_tree(root: &Path) -> Result<()> {
    match std::fs::symlink_metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(TreeError::io(root, e)),
        Ok(m) if !m.is_dir() => {
            return std::fs::remove_file(root).map_err(|e| TreeError::io(root, e))
        }
        Ok(_) => {}
    }
    let io = |e: rustix::io::Errno| TreeError::io(root, e);
    let mut cur = open_root(root)?;
    // Per level entered: the subdirectories still to remove there.
    let mut pending = vec![clear_files(&cur).map_err(io)?];
    let mut entered: Vec<CString> = Vec::new();
    while let Some(level) = pending.last_mut() {
        if let Some(name) = level.pop() {
            cur = open_dir(&cur, name.as_c_str()).map_err(io)?;
            entered.push(name);
            pending.push(clear_files(&cur).map_err(io)?);
            continue;
        }
        pending.pop();
        let Some(name) = entered.pop() else { break };
        let parent = open_dir(&cur, c"..").map_err(io)?;
        unlinkat(&parent, name.as_c_str(), AtFlags::REMOVEDIR).map_err(io)?;
        cur = parent;
    }
    drop(cur);
    std::fs::remove_dir(root).map_err(|e| TreeError::io(root, e))
}

/// Unlinks every non-directory in `dir` and returns the names of its subdirectories.
fn clear_files(dir: &OwnedFd) -> rustix::io::Result<Vec<CString>> {
    let mut subdirs = Vec::new();
    let mut names = Dir::read_from(dir)?;
    while let Some(entry) = names.read() {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let ty = match entry.file_type() {
            FileType::Unknown => FileType::from_raw_mode(
                rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?.st_mode,
            ),
            ty => ty,
        };
        if ty == FileType::Directory {
            subdirs.push(name.to_owned());
        } else {
            unlinkat(dir, name, AtFlags::empty())?;
        }
    }
    Ok(subdirs)
}

/// Swaps two directories in one atomic step (`renameat2` with `RENAME_EXCHANGE`): whoever
/// looks at either path sees the old tree or the new one, never neither. How a store replaces
/// a corrupt artifact with a good copy under the same name.
pub fn exchange(a: &Path, b: &Path) -> Result<()> {
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        a,
        rustix::fs::CWD,
        b,
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .map_err(|e| TreeError::io(b, e))
}
