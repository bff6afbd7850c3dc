//! Directory trees a step wrote, read from the host without letting the step steer the host.
//!
//! A step controls what is in its output directory: symlinks (relative ones pass wasmtime's
//! check), hard links, sparse files, 20 000-deep nesting. Every host-side pass over such a tree
//! goes through this crate, which
//! - walks by directory handle (`openat` relative to the parent's descriptor, `O_NOFOLLOW`,
//!   `fstatat` with `AT_SYMLINK_NOFOLLOW`), never by path, so no link is ever followed;
//! - refuses symlinks, devices, FIFOs, sockets and files with more than one hard link, naming
//!   the path;
//! - bounds depth and entry count ([`Limits`]) and never recurses on the stack;
//! - hashes files by streaming ([`digest`]) and removes trees iteratively ([`remove_tree`]),
//!   one directory handle at a time, whatever their depth.

pub mod digest;
mod file;
mod fingerprint;
mod ops;
mod walk;

pub use digest::{tree_digest, FileDigest, TreeDigest};
pub use file::{read_regular, read_regular_text, MAX_COMPONENT_BYTES, MAX_DOCUMENT_BYTES};
pub use fingerprint::{fingerprint, Fingerprint};
pub use ops::{copy_tree, exchange, make_read_only, remove_tree};
pub use walk::{walk, Entry, Kind};

use std::path::{Path, PathBuf};

/// Bounds on a tree's shape. A tree past them is refused, not walked further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How deep directories may nest below the root.
    pub max_depth: usize,
    /// How many files and directories the tree may hold in all.
    pub max_entries: usize,
}

impl Limits {
    /// 64 levels, 100 000 entries: far past what a model or a dataset split needs.
    pub const DEFAULT: Limits = Limits {
        max_depth: 64,
        max_entries: 100_000,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a tree was refused or could not be read, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {what}; artifacts hold regular files and directories only", path.display())]
    Special { path: PathBuf, what: &'static str },
    #[error("{}: {what}; expected a regular file", path.display())]
    NotAFile { path: PathBuf, what: &'static str },
    #[error("{}: {size} bytes, over the limit of {max} bytes", path.display())]
    FileTooBig { path: PathBuf, size: u64, max: u64 },
    #[error("{}: a file with {links} hard links; artifacts hold files with one link each", path.display())]
    HardLink { path: PathBuf, links: u64 },
    #[error("{}: directories nest deeper than {max} levels (the output depth limit)", path.display())]
    TooDeep { path: PathBuf, max: usize },
    #[error("{}: more than {max} files and directories (the output entries limit)", path.display())]
    TooMany { path: PathBuf, max: usize },
}

impl TreeError {
    fn io(path: &Path, source: impl Into<std::io::Error>) -> Self {
        TreeError::Io {
            path: path.to_path_buf(),
            source: source.into(),
        }
    }

    /// True when the tree broke a rule (a link, a special file, a limit), as opposed to an
    /// I/O failure of the host.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, TreeError::Io { .. })
    }
}

pub type Result<T> = std::result::Result<T, TreeError>;
