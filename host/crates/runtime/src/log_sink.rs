//! The task log: stdout, stderr and `weft:pipeline/log` records of one step, bounded in size.
//!
//! Past the bound, bytes are dropped and counted (the guest keeps running, as a container's would
//! when its log is rotated away), and the log ends with a line saying how much was dropped.

use bytes::Bytes;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Keeps the last bytes written, to quote a panic message in a trap report.
const TAIL_BYTES: usize = 4096;

/// Where a step's log went and whether it was cut.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LogSummary {
    /// The log file, when the step was given one.
    pub path: Option<PathBuf>,
    /// Bytes kept.
    pub bytes: u64,
    /// Bytes dropped past the bound (0 when the log is complete).
    pub dropped_bytes: u64,
    /// The whole log when no file was given (bounded like the file).
    #[serde(skip)]
    pub in_memory: Option<Vec<u8>>,
}

impl LogSummary {
    /// Whether the bound cut the log.
    pub fn truncated(&self) -> bool {
        self.dropped_bytes > 0
    }
}

struct Inner {
    file: Option<File>,
    memory: Vec<u8>,
    kept: u64,
    dropped: u64,
    limit: u64,
    tail: Vec<u8>,
    error: Option<std::io::Error>,
}

/// Shared by the stdout and stderr streams and the log interface of one step.
#[derive(Clone)]
pub(crate) struct LogSink {
    inner: Arc<Mutex<Inner>>,
    path: Option<PathBuf>,
}

impl LogSink {
    /// A log written to `path` (created, parents too), or kept in memory when `None`.
    pub(crate) fn create(path: Option<&Path>, limit: u64) -> std::io::Result<Self> {
        let file = match path {
            Some(p) => {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                Some(File::create(p)?)
            }
            None => None,
        };
        Ok(LogSink {
            inner: Arc::new(Mutex::new(Inner {
                file,
                memory: Vec::new(),
                kept: 0,
                dropped: 0,
                limit,
                tail: Vec::new(),
                error: None,
            })),
            path: path.map(Path::to_path_buf),
        })
    }

    /// Appends bytes, keeping what fits under the bound; true when all of them were kept.
    pub(crate) fn append(&self, bytes: &[u8]) -> bool {
        let mut inner = self.inner.lock().unwrap();
        let room = inner.limit.saturating_sub(inner.kept) as usize;
        let (keep, drop) = bytes.split_at(bytes.len().min(room));
        inner.dropped += drop.len() as u64;
        if !keep.is_empty() {
            inner.kept += keep.len() as u64;
            if let Some(file) = inner.file.as_mut() {
                if let Err(e) = file.write_all(keep) {
                    inner.error.get_or_insert(e);
                }
            } else {
                inner.memory.extend_from_slice(keep);
            }
        }
        inner.tail.extend_from_slice(bytes);
        if inner.tail.len() > TAIL_BYTES {
            let cut = inner.tail.len() - TAIL_BYTES;
            inner.tail.drain(..cut);
        }
        drop.is_empty()
    }

    /// Appends one structured record as a text line; true when it fit under the bound.
    pub(crate) fn record(&self, level: &str, message: &str, fields: &[(String, String)]) -> bool {
        let mut line = format!("[{level}] {message}");
        for (k, v) in fields {
            line.push_str(&format!(" {k}={v:?}"));
        }
        line.push('\n');
        self.append(line.as_bytes())
    }

    /// Takes what an in-memory log holds, with a line saying how much the bound dropped since the
    /// last take, and starts the bound afresh: a long-lived instance (a served model) is bounded
    /// per call rather than for its whole life.
    pub(crate) fn take(&self) -> Vec<u8> {
        let mut inner = self.inner.lock().unwrap();
        if inner.file.is_some() {
            return Vec::new();
        }
        let mut taken = std::mem::take(&mut inner.memory);
        if inner.dropped > 0 {
            let note = format!(
                "[weft] {} bytes dropped past the log bound of {} bytes\n",
                inner.dropped, inner.limit
            );
            taken.extend_from_slice(note.as_bytes());
        }
        inner.kept = 0;
        inner.dropped = 0;
        taken
    }

    /// The last few KiB written, including dropped bytes (for quoting a panic message).
    pub(crate) fn tail(&self) -> String {
        String::from_utf8_lossy(&self.inner.lock().unwrap().tail).into_owned()
    }

    /// Closes the log, noting any truncation in it, and says where it is.
    pub(crate) fn finish(&self) -> std::io::Result<LogSummary> {
        let mut inner = self.inner.lock().unwrap();
        if inner.dropped > 0 {
            let note = format!(
                "\n[weft] log truncated at {} bytes: {} bytes dropped\n",
                inner.limit, inner.dropped
            );
            match inner.file.as_mut() {
                Some(file) => file.write_all(note.as_bytes())?,
                None => inner.memory.extend_from_slice(note.as_bytes()),
            }
        }
        if let Some(file) = inner.file.as_mut() {
            file.flush()?;
        }
        if let Some(e) = inner.error.take() {
            return Err(e);
        }
        Ok(LogSummary {
            path: self.path.clone(),
            bytes: inner.kept,
            dropped_bytes: inner.dropped,
            in_memory: inner
                .file
                .is_none()
                .then(|| std::mem::take(&mut inner.memory)),
        })
    }
}

/// The guest's stdout or stderr, feeding the log sink.
pub(crate) struct LogStream(pub(crate) LogSink);

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LogWriter(self.0.clone()))
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LogWriter(self.0.clone()))
    }
}

struct LogWriter(LogSink);

/// The sink never blocks, so every write is accepted whole (and maybe dropped).
const WRITE_BUDGET: usize = 1 << 20;

#[async_trait::async_trait]
impl Pollable for LogWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for LogWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let _ = self.0.append(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}

impl tokio::io::AsyncWrite for LogWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let _ = self.0.append(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
