//! Reading one file a user named (a component, a pipeline, a spec) without letting it hang or
//! exhaust the host: `/dev/zero` would be read until memory runs out, and a FIFO would block
//! the open forever. Only regular files are read, up to a size given per use.

use crate::{Result, TreeError};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Components: a Python one with its interpreter is ~40 MB.
pub const MAX_COMPONENT_BYTES: u64 = 512 << 20;
/// Pipelines, runs, InferenceServices and other YAML or JSON documents.
pub const MAX_DOCUMENT_BYTES: u64 = 16 << 20;

/// The bytes of the regular file at `path` (links followed, as users expect of a path they
/// type), refusing anything else (FIFOs, devices, sockets, directories) and files over
/// `max_bytes`, naming the path.
pub fn read_regular(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    // Non-blocking, so opening a FIFO with no writer returns at once instead of waiting; a
    // regular file ignores the flag.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(|e| TreeError::io(path, e))?;
    let meta = file.metadata().map_err(|e| TreeError::io(path, e))?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file (a device, FIFO or socket)"
        };
        return Err(TreeError::NotAFile {
            path: path.to_path_buf(),
            what,
        });
    }
    if meta.len() > max_bytes {
        return Err(TreeError::FileTooBig {
            path: path.to_path_buf(),
            size: meta.len(),
            max: max_bytes,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // `take` too: the file may grow while it is read.
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| TreeError::io(path, e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(TreeError::FileTooBig {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            max: max_bytes,
        });
    }
    Ok(bytes)
}

/// [`read_regular`] as UTF-8 text, naming the path when it is not.
pub fn read_regular_text(path: &Path, max_bytes: u64) -> Result<String> {
    String::from_utf8(read_regular(path, max_bytes)?).map_err(|_| TreeError::NotAFile {
        path: path.to_path_buf(),
        what: "not UTF-8 text",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(read_regular(&file, 5).unwrap(), b"12345");
        let err = read_regular(&file, 4).unwrap_err().to_string();
        assert!(err.contains("5 bytes") && err.contains("4"), "{err}");
        let err = read_regular(Path::new("/dev/zero"), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/dev/zero") && err.contains("not a regular file"),
            "{err}"
        );
        assert!(read_regular(dir.path(), 10)
            .unwrap_err()
            .to_string()
            .contains("a directory"));
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        // Returns at once (no writer), refused.
        assert!(read_regular(&fifo, 10)
            .unwrap_err()
            .to_string()
            .contains("FIFO"));
        std::fs::write(&file, [0xff, 0xfe]).unwrap();
        assert!(read_regular_text(&file, 10)
            .unwrap_err()
            .to_string()
            .contains("UTF-8"));
    }
}
