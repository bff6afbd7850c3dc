//! Turns a step's grants into a WASI context that allows exactly those and nothing else.
//!
//! Inputs are preopened read-only at `/inputs/<name>`, the output directory read-write at
//! `/outputs`; env vars are only the declared ones; stdin is empty; stdout and stderr go to the
//! bounded task log; sockets and name lookup stay denied unless the request grants the network.

use crate::error::StepError;
use crate::log_sink::{LogSink, LogStream};
use crate::step::{InputArtifact, StepRequest};
use std::path::{Path, PathBuf};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

/// Where inputs appear inside the sandbox.
pub const INPUTS_ROOT: &str = "/inputs";
/// Where the output directory appears inside the sandbox.
pub const OUTPUTS_ROOT: &str = "/outputs";

/// The guest paths handed to the step, in request order.
pub(crate) struct Granted {
    pub(crate) inputs: Vec<(String, String)>,
    pub(crate) outputs: Vec<(String, String)>,
}

pub(crate) fn build(
    req: &StepRequest,
    stage: &Path,
    log: &LogSink,
) -> Result<(WasiCtx, Granted), StepError> {
    let mut b = WasiCtxBuilder::new();
    b.allow_blocking_current_thread(true)
        .stdin(wasmtime_wasi::p2::pipe::MemoryInputPipe::new(
            Vec::<u8>::new(),
        ))
        .stdout(LogStream(log.clone()))
        .stderr(LogStream(log.clone()))
        .arg(&req.context.task_name);
    for (k, v) in &req.env {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(StepError::Grant(format!(
                "env var `{k}`: a name must be non-empty without `=` or NUL"
            )));
        }
        b.env(k, v);
    }
    if req.allow_network {
        b.inherit_network()
            .allow_tcp(true)
            .allow_udp(true)
            .allow_ip_name_lookup(true);
    }
    if let Some(seed) = req.hermetic_seed {
        crate::hermetic::apply(&mut b, seed);
    }

    let mut inputs = Vec::new();
    for input in &req.inputs {
        check_name("input", &input.name)?;
        let (host_dir, guest_path) = stage_input(input, stage)?;
        let guest_dir = format!("{INPUTS_ROOT}/{}", input.name);
        b.preopened_dir(&host_dir, &guest_dir, FsPerms::ReadOnly)
            .map_err(|e| {
                StepError::Grant(format!(
                    "input `{}`: cannot open {}: {e}",
                    input.name,
                    host_dir.display()
                ))
            })?;
        inputs.push((input.name.clone(), guest_path));
    }

    let mut outputs = Vec::new();
    if let Some(dir) = &req.output_dir {
        for name in &req.outputs {
            check_name("output", name)?;
            let path = dir.join(name);
            std::fs::create_dir_all(&path).map_err(|e| {
                StepError::Grant(format!(
                    "output `{name}`: cannot create {}: {e}",
                    path.display()
                ))
            })?;
            outputs.push((name.clone(), format!("{OUTPUTS_ROOT}/{name}")));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| StepError::Grant(format!("output dir {}: {e}", dir.display())))?;
        b.preopened_dir(dir, OUTPUTS_ROOT, FsPerms::ReadWrite)
            .map_err(|e| StepError::Grant(format!("output dir {}: {e}", dir.display())))?;
    } else if let Some(name) = req.outputs.first() {
        return Err(StepError::Grant(format!(
            "output `{name}` declared but no output directory given"
        )));
    }
    Ok((b.build(), Granted { inputs, outputs }))
}

/// Artifact names become path components: keep them to one plain component.
fn check_name(kind: &str, name: &str) -> Result<(), StepError> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(StepError::Grant(format!(
            "{kind} name `{name}`: use letters, digits, `-`, `_` and `.` only"
        )))
    }
}

/// A directory input is granted as is. A file input is granted as the only entry of a fresh
/// directory (a hard link, or a copy across filesystems), so its siblings stay out of reach.
fn stage_input(input: &InputArtifact, stage: &Path) -> Result<(PathBuf, String), StepError> {
    let meta = std::fs::metadata(&input.path).map_err(|e| {
        StepError::Grant(format!(
            "input `{}`: {}: {e}",
            input.name,
            input.path.display()
        ))
    })?;
    let guest_dir = format!("{INPUTS_ROOT}/{}", input.name);
    if meta.is_dir() {
        return Ok((input.path.clone(), guest_dir));
    }
    if !meta.is_file() {
        // A FIFO or a device would block or never end when the step reads it.
        return Err(StepError::Grant(format!(
            "input `{}`: {} is not a regular file or a directory (a device, FIFO or socket)",
            input.name,
            input.path.display()
        )));
    }
    let file_name = input
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            StepError::Grant(format!(
                "input `{}`: {} has no usable file name",
                input.name,
                input.path.display()
            ))
        })?;
    let dir = stage.join(&input.name);
    std::fs::create_dir_all(&dir).map_err(|e| StepError::Host(e.into()))?;
    let dest = dir.join(file_name);
    if std::fs::hard_link(&input.path, &dest).is_err() {
        std::fs::copy(&input.path, &dest).map_err(|e| {
            StepError::Grant(format!(
                "input `{}`: copying {}: {e}",
                input.name,
                input.path.display()
            ))
        })?;
    }
    Ok((dir, format!("{guest_dir}/{file_name}")))
}
