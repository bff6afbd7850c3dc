//! Mode `file-times`: writes files under output `out`, then stats them, the output directory
//! and (when given) input `data`, and writes everything `stat` says (times, device and inode
//! numbers, link counts, sizes) to `out/times.txt`. In hermetic mode the file must be the same
//! on every run with the same seed: stat must not leak host clocks or host inodes.

use std::ffi::{c_char, CString};
use std::fmt::Write as _;
use std::os::fd::AsRawFd;
use std::time::{SystemTime, UNIX_EPOCH};
use weft_step::{StepInput, StepOutput};

/// wasi-libc's `struct timespec` (wasm32).
#[repr(C)]
#[derive(Default)]
struct Timespec {
    sec: i64,
    nsec: i32,
}

/// wasi-libc's `struct stat` (wasm32): std exposes inode numbers on WASI only unstably.
#[repr(C)]
#[derive(Default)]
#[allow(dead_code)] // Written by libc; only some fields are printed.
struct Stat {
    dev: u64,
    ino: u64,
    nlink: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    pad0: u32,
    rdev: u64,
    size: i64,
    blksize: i32,
    blocks: i64,
    atim: Timespec,
    mtim: Timespec,
    ctim: Timespec,
    reserved: [i64; 3],
}

extern "C" {
    fn stat(path: *const c_char, buf: *mut Stat) -> i32;
    fn lstat(path: *const c_char, buf: *mut Stat) -> i32;
    fn fstat(fd: i32, buf: *mut Stat) -> i32;
}

pub(crate) fn run(input: &StepInput) -> Result<StepOutput, String> {
    let out = input.output("out")?;
    let file = format!("{out}/data.txt");
    std::fs::write(&file, "some bytes\n").map_err(|e| format!("{file}: {e}"))?;
    std::fs::create_dir_all(format!("{out}/sub")).map_err(|e| format!("{out}/sub: {e}"))?;
    std::fs::write(format!("{out}/sub/inner.txt"), "x").map_err(|e| format!("{out}/sub: {e}"))?;

    let mut text = String::new();
    let mut paths = vec![
        out.to_string(),
        file.clone(),
        format!("{out}/sub"),
        format!("{out}/sub/inner.txt"),
    ];
    if let Ok(data) = input.input("data") {
        paths.push(data.to_string());
        if let Some((dir, _)) = data.rsplit_once('/') {
            paths.push(dir.to_string());
        }
    }
    for path in &paths {
        describe(&mut text, path)?;
    }
    // Through an open descriptor too (`descriptor.stat`, `descriptor.metadata-hash`).
    let open = std::fs::File::open(&file).map_err(|e| format!("{file}: {e}"))?;
    let mut st = Stat::default();
    // SAFETY: `st` is wasi-libc's `struct stat`; the descriptor is open.
    let rc = unsafe { fstat(open.as_raw_fd(), &mut st) };
    let _ = writeln!(text, "fstat {file}: rc {rc} {}", fields(&st));

    let times = format!("{out}/times.txt");
    std::fs::write(&times, &text).map_err(|e| format!("{times}: {e}"))?;
    Ok(StepOutput { params: vec![] })
}

/// One line per view of `path`: std's times, then libc's `stat` and `lstat`.
fn describe(text: &mut String, path: &str) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{path}: {e}"))?;
    let _ = writeln!(
        text,
        "std {path}: modified {} accessed {} created {} len {}",
        since_epoch(meta.modified()),
        since_epoch(meta.accessed()),
        since_epoch(meta.created()),
        if meta.is_dir() {
            "dir".to_string()
        } else {
            meta.len().to_string()
        },
    );
    let c = CString::new(path.as_bytes()).map_err(|e| e.to_string())?;
    for (name, call) in [
        ("stat", stat as unsafe extern "C" fn(_, _) -> i32),
        ("lstat", lstat),
    ] {
        let mut st = Stat::default();
        // SAFETY: `c` is NUL-terminated; `st` is wasi-libc's `struct stat`.
        let rc = unsafe { call(c.as_ptr(), &mut st) };
        let _ = writeln!(text, "{name} {path}: rc {rc} {}", fields(&st));
    }
    Ok(())
}

fn fields(st: &Stat) -> String {
    format!(
        "dev {} ino {} nlink {} mode {:o} size {} atim {}.{:09} mtim {}.{:09} ctim {}.{:09}",
        st.dev,
        st.ino,
        st.nlink,
        st.mode,
        st.size,
        st.atim.sec,
        st.atim.nsec,
        st.mtim.sec,
        st.mtim.nsec,
        st.ctim.sec,
        st.ctim.nsec
    )
}

fn since_epoch(t: std::io::Result<SystemTime>) -> String {
    match t.map(|t| t.duration_since(UNIX_EPOCH)) {
        Ok(Ok(d)) => format!("{}.{:09}", d.as_secs(), d.subsec_nanos()),
        Ok(Err(_)) => "before-epoch".into(),
        Err(e) => format!("error({:?})", e.kind()),
    }
}
