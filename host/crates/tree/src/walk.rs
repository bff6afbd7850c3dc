//! The walk: by directory handle, depth-first, iterative, bounded.

use crate::{Limits, Result, TreeError};
use rustix::fs::{fstat, openat, statat, AtFlags, Dir, FileType, Mode, OFlags, Stat, CWD};
use std::ffi::{CStr, OsStr};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What an entry is: the walk yields nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// One file or directory under the root.
#[derive(Debug)]
pub struct Entry<'a> {
    /// Relative to the root, never empty, never `..`.
    pub rel: &'a Path,
    pub kind: Kind,
    /// A file's size in bytes (0 for a directory).
    pub size: u64,
}

/// Visits every file and directory under `root` (not `root` itself), parents before children,
/// with each file opened read-only through its parent's handle. Refuses (without visiting
/// further) a root that is not a real directory, links, special files, hard-linked files and
/// trees past `limits`. At most `limits.max_depth + 1` directories are open at once.
pub fn walk(
    root: &Path,
    limits: Limits,
    mut visit: impl FnMut(&Entry, Option<std::fs::File>) -> Result<()>,
) -> Result<()> {
    let mut stack = vec![Frame::new(open_root(root)?, PathBuf::new(), 0, root)?];
    let mut entries = 0usize;
    while let Some(top) = stack.last_mut() {
        let Some(next) = top.dir.read() else {
            stack.pop();
            continue;
        };
        let entry = next.map_err(|e| TreeError::io(&root.join(&top.rel), e))?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        entries += 1;
        if entries > limits.max_entries {
            return Err(TreeError::TooMany {
                path: root.to_path_buf(),
                max: limits.max_entries,
            });
        }
        let rel = top.rel.join(OsStr::from_bytes(name.to_bytes()));
        let shown = root.join(&rel);
        let st = statat(&top.fd, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| TreeError::io(&shown, e))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let depth = top.depth + 1;
                if depth > limits.max_depth {
                    return Err(TreeError::TooDeep {
                        path: shown,
                        max: limits.max_depth,
                    });
                }
                let fd = open_dir(&top.fd, name).map_err(|e| TreeError::io(&shown, e))?;
                let entry = Entry {
                    rel: &rel,
                    kind: Kind::Dir,
                    size: 0,
                };
                visit(&entry, None)?;
                let frame = Frame::new(fd, rel, depth, &shown)?;
                stack.push(frame);
            }
            FileType::RegularFile => {
                let file = open_file(&top.fd, name, &st, &shown)?;
                let entry = Entry {
                    rel: &rel,
                    kind: Kind::File,
                    size: size(&st),
                };
                visit(&entry, Some(file))?;
            }
            other => {
                return Err(TreeError::Special {
                    path: shown,
                    what: describe(other),
                })
            }
        }
    }
    Ok(())
}

/// A directory being read: its handle (for `openat` of children) and its entries.
struct Frame {
    fd: OwnedFd,
    dir: Dir,
    rel: PathBuf,
    depth: usize,
}

impl Frame {
    fn new(fd: OwnedFd, rel: PathBuf, depth: usize, shown: &Path) -> Result<Self> {
        let dir = Dir::read_from(&fd).map_err(|e| TreeError::io(shown, e))?;
        Ok(Frame {
            fd,
            dir,
            rel,
            depth,
        })
    }
}

/// Opens `root` as a directory without following a link in its place.
pub(crate) fn open_root(root: &Path) -> Result<OwnedFd> {
    open_dir(CWD, root).map_err(|e| {
        if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR {
            let what = std::fs::symlink_metadata(root)
                .map(|m| {
                    if m.is_symlink() {
                        "a symlink"
                    } else {
                        "not a directory"
                    }
                })
                .unwrap_or("not a directory");
            TreeError::Special {
                path: root.to_path_buf(),
                what,
            }
        } else {
            TreeError::io(root, e)
        }
    })
}

/// `openat` of a directory, never through a link.
pub(crate) fn open_dir<P: rustix::path::Arg>(
    parent: impl AsFd,
    name: P,
) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    openat(parent, name, flags, Mode::empty())
}

/// Opens the regular file `name` that `st` describes; the handle is checked again, so what is
/// read is what was judged (one link, a regular file, the same inode).
fn open_file(parent: &OwnedFd, name: &CStr, st: &Stat, shown: &Path) -> Result<std::fs::File> {
    let refuse_links = |st: &Stat| {
        let links = links(st);
        if links > 1 {
            return Err(TreeError::HardLink {
                path: shown.to_path_buf(),
                links,
            });
        }
        Ok(())
    };
    refuse_links(st)?;
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    let fd = openat(parent, name, flags, Mode::empty()).map_err(|e| TreeError::io(shown, e))?;
    let again = fstat(&fd).map_err(|e| TreeError::io(shown, e))?;
    if FileType::from_raw_mode(again.st_mode) != FileType::RegularFile || again.st_ino != st.st_ino
    {
        return Err(TreeError::Special {
            path: shown.to_path_buf(),
            what: "changed while read",
        });
    }
    refuse_links(&again)?;
    Ok(std::fs::File::from(fd))
}

#[allow(clippy::unnecessary_cast)] // The field's type differs between targets.
fn links(st: &Stat) -> u64 {
    st.st_nlink as u64
}

fn size(st: &Stat) -> u64 {
    u64::try_from(st.st_size).unwrap_or(0)
}

pub(crate) fn describe(ty: FileType) -> &'static str {
    match ty {
        FileType::Symlink => "a symlink",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        _ => "a special file",
    }
}
