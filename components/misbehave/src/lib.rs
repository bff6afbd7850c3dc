//! A step that misbehaves on request, so tests can show the sandbox and the limits hold.
//!
//! Param `mode` picks the behaviour:
//! - `escape`: tries to read `/etc/passwd`, `..` of its input, and symlinks out of its output dir;
//!   logs each attempt and returns `escaped` (how many succeeded) and `report` (JSON); removes
//!   the links from its output dir before it returns.
//! - `env`: returns the value of env var `var` (JSON `null` when absent) and `env_count`.
//! - `loop`: spins forever.  `alloc`: allocates and touches memory until it cannot.
//! - `flood`: writes `bytes` bytes to stdout.  `write`: writes `bytes` bytes to output `out`.
//! - `entropy`: writes random bytes and clock readings to output `out`.
//! - `trap`: panics.  `fail`: returns an error.  `echo`: returns param `text` as `echo`.
//! - `net`: tries a TCP connection to `addr`; returns `outcome`.
//! - `sleep`: sleeps `ms` milliseconds (blocked in the host), then succeeds.
//! - `busy`: computes for `ms` milliseconds (reading the clock), then succeeds, leaving
//!   `busy.txt` in output `out` when it has one.
//! - `tensor-hog`: allocates `weft:tensor` tensors of 1 MiB until the host refuses; returns the
//!   refusal as an error.
//! - `forge-tensor`: uses a tensor handle it was never given (index `handle`).
//! - `tensor-bomb`: asks for a 2^32-element tensor by broadcasting two small ones, and for a
//!   tensor whose element count overflows; returns both refusals.
//! - `swap`, `deep`, `sparse`, `mkdirs`, `links`: shape the output tree against the host
//!   (see `outputs.rs`).
//! - `exit`: calls `exit(code)` inside `run`; `recurse`: recurses until its stack runs out.
//! - `metric-name`, `big-param`, `big-error`, `log-storm`, `read-forever`: try to make the host
//!   hold or print what the step sends it (see `host_hogs.rs`).
//! - `nan-metrics`: reports NaN, +inf and -inf metrics (and one finite one), then succeeds.
//! - `file-times`: writes files to output `out` and lists what `stat` says of them (and of
//!   input `data`, when given) in `out/times.txt`.
//! - `residue`: counts nonzero bytes an earlier instance may have left in its memory (static
//!   data and grown pages), then fills both with a canary (see `residue.rs`).
//! - `tensor-chain`: chains `ops` (10^6) one-element tensor ops, keeping only the last handle.
mod file_times;
mod host_hogs;
mod nan_metrics;
mod tensor_chain;
mod outputs;
mod residue;

use std::fmt::Write as _;
use std::io::Write as _;
use weft_step::{emit, out_param, Guest, Level, ParamValue, StepInput, StepOutput};

struct Misbehave;

impl Guest for Misbehave {
    fn run(input: StepInput) -> Result<StepOutput, String> {
        match input.str_param("mode")? {
            "escape" => escape(&input),
            "env" => env(&input),
            "loop" => spin(),
            "alloc" => alloc(),
            "flood" => flood(input.int_param_or("bytes", 1 << 20)? as usize),
            "write" => write(&input),
            "entropy" => entropy(&input),
            "trap" => trap(),
            "net" => net(&input),
            "sleep" => sleep(input.int_param_or("ms", 500)? as u64),
            "busy" => busy(&input, input.int_param_or("ms", 500)? as u64),
            "fail" => Err("asked to fail".to_string()),
            "nan-metrics" => nan_metrics::run(),
            "metric-name" => host_hogs::metric_name(&input),
            "big-param" => host_hogs::big_param(&input),
            "big-error" => host_hogs::big_error(&input),
            "log-storm" => host_hogs::log_storm(&input),
            "read-forever" => host_hogs::read_forever(&input),
            "exit" => std::process::exit(input.int_param_or("code", 0)? as i32),
            "recurse" => Ok(StepOutput {
                params: vec![out_param("depth", ParamValue::Int(recurse(0) as i64))],
            }),
            "swap" => outputs::swap(&input),
            "deep" => outputs::deep(&input),
            "sparse" => outputs::sparse(&input),
            "mkdirs" => outputs::mkdirs(&input),
            "links" => outputs::links(&input),
            "file-times" => file_times::run(&input),
            "residue" => residue::run(&input),
            "tensor-hog" => tensor_hog(),
            "tensor-bomb" => tensor_bomb(),
            "tensor-chain" => tensor_chain::run(&input),
            "forge-tensor" => {
                // SAFETY: deliberately unsound: a handle this instance never received.
                let forged = unsafe {
                    weft_step::tensor::Tensor::from_handle(input.int_param_or("handle", 1)? as u32)
                };
                Ok(StepOutput {
                    params: vec![out_param(
                        "shape",
                        ParamValue::Str(format!("{:?}", forged.shape())),
                    )],
                })
            }
            "echo" => Ok(StepOutput {
                params: vec![out_param(
                    "echo",
                    ParamValue::Str(input.str_param("text")?.to_string()),
                )],
            }),
            other => Err(format!("unknown mode `{other}`")),
        }
    }
}

fn escape(input: &StepInput) -> Result<StepOutput, String> {
    let input_path = input.input("data")?;
    let out_dir = input.output("out")?;
    let input_dir = input_path
        .rsplit_once('/')
        .map(|(d, _)| d)
        .unwrap_or(input_path);
    symlink("/etc/passwd", &format!("{out_dir}/abs-link"));
    symlink(
        "../../../../../../etc/passwd",
        &format!("{out_dir}/rel-link"),
    );
    let attempts = [
        "/etc/passwd".to_string(),
        format!("{input_dir}/../../etc/passwd"),
        format!("{input_dir}/.."),
        format!("{out_dir}/abs-link"),
        format!("{out_dir}/rel-link"),
        format!("{out_dir}/planted-link"),
    ];
    let mut escaped = 0;
    let mut report = String::from("[");
    for (i, path) in attempts.iter().enumerate() {
        let outcome = match std::fs::read(path)
            .map(|b| b.len())
            .or_else(|e| std::fs::read_dir(path).map(|d| d.count()).map_err(|_| e))
        {
            Ok(n) => {
                escaped += 1;
                format!("read {n} entries or bytes")
            }
            Err(e) => format!("denied: {e}"),
        };
        emit(
            Level::Warn,
            &format!("access {path}: {outcome}"),
            &[
                ("path".into(), path.clone()),
                ("outcome".into(), outcome.clone()),
            ],
        );
        let _ = write!(
            report,
            "{}{{\"path\":\"{path}\",\"outcome\":\"{outcome}\"}}",
            if i > 0 { "," } else { "" }
        );
    }
    // Inputs are read-only: writing to one must fail.
    let write = std::fs::OpenOptions::new()
        .append(true)
        .open(input_path)
        .and_then(|mut f| f.write_all(b"tampered"));
    let outcome = match write {
        Ok(()) => {
            escaped += 1;
            "wrote".to_string()
        }
        Err(e) => format!("denied: {e}"),
    };
    emit(Level::Warn, &format!("write {input_path}: {outcome}"), &[]);
    let _ = write!(
        report,
        ",{{\"path\":\"write:{input_path}\",\"outcome\":\"{outcome}\"}}"
    );
    // The links go: an output holding one is refused by the host after the step.
    for link in ["abs-link", "rel-link", "planted-link"] {
        let _ = std::fs::remove_file(format!("{out_dir}/{link}"));
    }
    report.push(']');
    Ok(StepOutput {
        params: vec![
            out_param("escaped", ParamValue::Int(escaped)),
            out_param("report", ParamValue::Json(report)),
        ],
    })
}

/// Recurses without end (a frame of 512 bytes on the guest's stack each time).
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    if frame[7] == u64::MAX {
        return 0;
    }
    recurse(depth + 1).wrapping_add(frame[3])
}

/// Creates a symlink through wasi-libc (std's WASI symlink API is unstable); failure is logged.
pub(crate) fn symlink(target: &str, link: &str) {
    extern "C" {
        fn symlink(target: *const std::ffi::c_char, link: *const std::ffi::c_char) -> i32;
    }
    let (t, l) = (
        std::ffi::CString::new(target).unwrap(),
        std::ffi::CString::new(link).unwrap(),
    );
    let rc = unsafe { symlink(t.as_ptr(), l.as_ptr()) };
    let outcome = if rc == 0 {
        "created".to_string()
    } else {
        format!("refused: {}", std::io::Error::last_os_error())
    };
    emit(
        Level::Info,
        &format!("symlink {link} -> {target}: {outcome}"),
        &[],
    );
}

fn env(input: &StepInput) -> Result<StepOutput, String> {
    let var = input.str_param("var")?;
    let value = match std::env::var(var) {
        Ok(v) => format!("\"{v}\""),
        Err(_) => "null".to_string(),
    };
    Ok(StepOutput {
        params: vec![
            out_param("value", ParamValue::Json(value)),
            out_param(
                "env_count",
                ParamValue::Int(std::env::vars().count() as i64),
            ),
        ],
    })
}

fn spin() -> ! {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

fn alloc() -> Result<StepOutput, String> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

fn flood(bytes: usize) -> Result<StepOutput, String> {
    let line = [b'x'; 1023];
    let mut out = std::io::stdout().lock();
    let mut written = 0;
    while written < bytes {
        out.write_all(&line)
            .and_then(|_| out.write_all(b"\n"))
            .map_err(|e| format!("stdout: {e}"))?;
        written += 1024;
    }
    Ok(StepOutput {
        params: vec![out_param("written", ParamValue::Int(written as i64))],
    })
}

fn write(input: &StepInput) -> Result<StepOutput, String> {
    let bytes = input.int_param_or("bytes", 1 << 20)? as usize;
    let path = format!("{}/blob.bin", input.output("out")?);
    let mut file = std::fs::File::create(&path).map_err(|e| format!("{path}: {e}"))?;
    let chunk = vec![7u8; 64 * 1024];
    let mut written = 0;
    while written < bytes {
        file.write_all(&chunk)
            .map_err(|e| format!("writing {path}: {e}"))?;
        written += chunk.len();
    }
    Ok(StepOutput {
        params: vec![out_param("written", ParamValue::Int(written as i64))],
    })
}

fn entropy(input: &StepInput) -> Result<StepOutput, String> {
    let path = format!("{}/entropy.txt", input.output("out")?);
    let mut text = String::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?;
    let start = std::time::Instant::now();
    let _ = writeln!(text, "wall {}.{:09}", now.as_secs(), now.subsec_nanos());
    let _ = writeln!(text, "elapsed {:?}", start.elapsed());
    let _ = writeln!(text, "hashmap-order {:?}", {
        let mut m = std::collections::HashMap::new();
        for i in 0..16 {
            m.insert(i, ());
        }
        m.keys().copied().collect::<Vec<_>>()
    });
    let _ = writeln!(text, "random {:?}", random_bytes(32));
    std::fs::write(&path, &text).map_err(|e| format!("{path}: {e}"))?;
    Ok(StepOutput {
        params: vec![out_param("entropy", ParamValue::Str(text))],
    })
}

/// Random bytes from WASI `random_get`, the way libc and language runtimes ask for entropy.
fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    // `getrandom`-style call through wasi-libc.
    extern "C" {
        fn getentropy(buf: *mut u8, len: usize) -> i32;
    }
    let rc = unsafe { getentropy(buf.as_mut_ptr(), n) };
    assert_eq!(rc, 0, "getentropy failed");
    buf
}

fn net(input: &StepInput) -> Result<StepOutput, String> {
    let addr = input.str_param("addr")?;
    let outcome = match std::net::TcpStream::connect(addr) {
        Ok(mut stream) => {
            let _ = stream.write_all(b"hello from the sandbox");
            "connected".to_string()
        }
        Err(e) => format!("denied: {e}"),
    };
    emit(Level::Warn, &format!("connect {addr}: {outcome}"), &[]);
    Ok(StepOutput {
        params: vec![out_param("outcome", ParamValue::Str(outcome))],
    })
}

fn sleep(ms: u64) -> Result<StepOutput, String> {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    Ok(StepOutput {
        params: vec![out_param("slept_ms", ParamValue::Int(ms as i64))],
    })
}

fn busy(input: &StepInput, ms: u64) -> Result<StepOutput, String> {
    let start = std::time::Instant::now();
    let mut spins: u64 = 0;
    while start.elapsed() < std::time::Duration::from_millis(ms) {
        spins = std::hint::black_box(spins + 1);
    }
    // With an output `out`, leave a result there (for artifact bookkeeping tests).
    if let Ok(dir) = input.output("out") {
        let path = format!("{dir}/busy.txt");
        std::fs::write(&path, format!("{} {ms}\n", input.context.task_name))
            .map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(StepOutput {
        params: vec![out_param("busy_ms", ParamValue::Int(ms as i64))],
    })
}

fn trap() -> Result<StepOutput, String> {
    let depth = std::hint::black_box(3);
    nested_panic(depth)
}

#[inline(never)]
fn nested_panic(depth: u32) -> Result<StepOutput, String> {
    if depth == 0 {
        panic!("misbehave asked to trap");
    }
    nested_panic(std::hint::black_box(depth - 1))
}

weft_step::export!(Misbehave with_types_in weft_step::bindings);

fn tensor_hog() -> Result<StepOutput, String> {
    let mut held = Vec::new();
    loop {
        match weft_step::tensor::Tensor::full(&[1 << 18], 1.0) {
            Ok(t) => held.push(t),
            Err(weft_step::tensor::Error::Quota(m)) => {
                return Err(format!("after {} tensors: {m}", held.len()))
            }
            Err(e) => return Err(format!("unexpected: {e:?}")),
        }
    }
}

fn tensor_bomb() -> Result<StepOutput, String> {
    use weft_step::tensor::{binary, BinaryOp, Tensor};
    let col = Tensor::full(&[1 << 16, 1], 1.0).map_err(|e| format!("{e:?}"))?;
    let row = Tensor::full(&[1, 1 << 16], 1.0).map_err(|e| format!("{e:?}"))?;
    let broadcast = match binary(BinaryOp::Add, &col, &row) {
        Ok(_) => return Err("a 2^32-element result was allowed".into()),
        Err(e) => format!("{e:?}"),
    };
    let overflow = match Tensor::full(&[u32::MAX, u32::MAX, u32::MAX], 0.0) {
        Ok(_) => return Err("an overflowing shape was allowed".into()),
        Err(e) => format!("{e:?}"),
    };
    Ok(StepOutput {
        params: vec![
            out_param("broadcast", ParamValue::Str(broadcast)),
            out_param("overflow", ParamValue::Str(overflow)),
        ],
    })
}
