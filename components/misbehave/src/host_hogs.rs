//! Modes that try to make the host, not the sandbox, hold or print what the step sends it:
//! - `metric-name`: reports `count` metrics whose names are `bytes` long.
//! - `big-param`: returns an output parameter `bytes` long.
//! - `big-error`: fails with an error string `bytes` long, control characters included.
//! - `log-storm`: emits `count` warn/error records of 1 KiB with terminal escapes in them.
//! - `read-forever`: connects to `addr` and blocks reading from it.

use std::io::Read;
use weft_step::{emit, out_param, report, Level, ParamValue, StepInput, StepOutput};

fn size(input: &StepInput, name: &str, default: i64) -> Result<usize, String> {
    usize::try_from(input.int_param_or(name, default)?).map_err(|e| format!("{name}: {e}"))
}

pub(crate) fn metric_name(input: &StepInput) -> Result<StepOutput, String> {
    let name = "m".repeat(size(input, "bytes", 64 << 20)?);
    for i in 0..size(input, "count", 20)? {
        report(&name, i as f64, None);
    }
    Ok(StepOutput { params: vec![] })
}

pub(crate) fn big_param(input: &StepInput) -> Result<StepOutput, String> {
    let value = "p".repeat(size(input, "bytes", 100 << 20)?);
    Ok(StepOutput {
        params: vec![out_param("big", ParamValue::Str(value))],
    })
}

pub(crate) fn big_error(input: &StepInput) -> Result<StepOutput, String> {
    let mut message = String::from("\x1b[2J\rforged: SUCCEEDED\n");
    message.push_str(&"e".repeat(size(input, "bytes", 100 << 20)?));
    Err(message)
}

pub(crate) fn log_storm(input: &StepInput) -> Result<StepOutput, String> {
    let record = format!("\x1b[31mred\x1b[0m {}", "w".repeat(1000));
    for i in 0..size(input, "count", 100_000)? {
        let level = if i % 2 == 0 { Level::Warn } else { Level::Error };
        emit(level, &record, &[("i".into(), i.to_string())]);
    }
    Ok(StepOutput { params: vec![] })
}

pub(crate) fn read_forever(input: &StepInput) -> Result<StepOutput, String> {
    let addr = input.str_param("addr")?;
    let mut stream = std::net::TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).map_err(|e| format!("read: {e}"))?;
    Ok(StepOutput {
        params: vec![out_param("read", ParamValue::Int(n as i64))],
    })
}
