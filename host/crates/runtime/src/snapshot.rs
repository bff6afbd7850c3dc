//! Pre-initialised predictors: a model's component is run once up to the end of its `load`, and
//! its memories and globals at that point become the initial state of a new component (wizer's
//! snapshot), so every fresh per-request instance starts with the model already in memory
//! instead of reading and parsing it again through WASI.
//!
//! Only linear memories and globals are captured. Host resources the guest held after `load`
//! (open files, preopened directories) are not: a snapshot instance that touches them again gets
//! "unknown handle" and fails alone, like any other trap. A served model reads its files in
//! `load` and answers `infer` from memory, which is what the predictor world asks of it.
//!
//! A snapshot is not reproducible byte for byte: `load` runs on real clocks and randomness (a
//! Python interpreter's heap differs on every run), so keyed by its bytes its compiled form was
//! a new cache entry at every start of the server, and every start compiled it again (80 s for
//! a Python model). Its compiled form is cached under [`key`] instead: everything `load` could
//! see that decides what it does (the component, the content of every input, its guest path,
//! the arguments, environment and grants, this host's version), so a restart with the same
//! component and the same model files takes the snapshot from the cache without running
//! `load` at all, and any change to them makes another. What a reused snapshot holds is the
//! state of one earlier `load` of the same model: what every instance of one server shares
//! anyway, its clock readings and random draws included.

use crate::error::StepError;
use crate::state::StepState;
use crate::step::StepRequest;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use wasmtime::component::{Instance, WasmList};
use wasmtime::Store;
use wasmtime_wizer::{ComponentInstanceState, Wizer};

/// The key a model's snapshot is cached under: the SHA-256 of everything the `load` that made
/// it could see (see the module's documentation), as `sha256:<hex>`. `None` when an input
/// cannot be digested (a link or a special file in it, past the tree limits): such a snapshot
/// is cached under the digest of its own bytes, as any component is.
pub(crate) fn key(
    component: &str,
    grants: &StepRequest,
    model_dir: Option<&str>,
) -> Option<String> {
    let mut h = Sha256::new();
    let mut line = |what: &str, value: &str| {
        h.update(what.as_bytes());
        h.update(b"\0");
        h.update(value.as_bytes());
        h.update(b"\n");
    };
    line("weft-snapshot", "v1");
    // The host's version: what its sandbox gives `load` and how the snapshot is taken.
    line("host", env!("CARGO_PKG_VERSION"));
    line("component", component);
    line("model-dir", model_dir.unwrap_or("-"));
    line("argv0", &grants.context.task_name);
    line("params", &format!("{:?}", grants.params));
    line("env", &format!("{:?}", grants.env));
    line("network", &grants.allow_network.to_string());
    line("hermetic", &format!("{:?}", grants.hermetic_seed));
    line(
        "outputs",
        &format!("{:?} {:?}", grants.output_dir.is_some(), grants.outputs),
    );
    // Every limit but the time limit (which `load` cannot observe, and which differs
    // between deployments of the same model more than any other).
    let limits = crate::Limits {
        timeout: std::time::Duration::ZERO,
        ..grants.limits.clone()
    };
    line("limits", &format!("{limits:?}"));
    for input in &grants.inputs {
        line("input", &input.name);
        line("content", &content_digest(&input.path)?);
    }
    Some(format!("sha256:{}", hex::encode(h.finalize())))
}

/// What a granted input holds, as the sandbox shows it: a directory's tree digest (names and
/// contents), or a file's name and digest (granted as the only entry of a directory). `None`
/// when it cannot be read or digested.
fn content_digest(path: &std::path::Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let digest = if meta.is_dir() {
        let root = std::fs::canonicalize(path).ok()?;
        weft_tree::tree_digest(&root, weft_tree::Limits::DEFAULT)
            .map_err(|e| tracing::debug!(path = %path.display(), error = %e, "model not digested; its snapshot is keyed by its bytes"))
            .ok()?
            .digest
    } else if meta.is_file() {
        let file = std::fs::File::open(path).ok()?;
        let (_, hash) = weft_tree::digest::hash_reader(file).ok()?;
        let name = path.file_name()?.to_string_lossy();
        format!("file {name} sha256:{}", hex::encode(hash))
    } else {
        return None;
    };
    Some(digest)
}

/// Adds wizer's state-access exports to `component`, returning what the snapshot needs later.
pub(crate) fn instrument<'a>(
    path: &str,
    component: &'a [u8],
) -> Result<(wasmtime_wizer::ComponentContext<'a>, Vec<u8>), StepError> {
    Wizer::new()
        .instrument_component(component)
        .map_err(|e| StepError::Snapshot {
            path: path.to_string(),
            reason: format!("{e:#}"),
        })
}

/// The component rewritten so its initial state is `instance`'s present state.
pub(crate) fn snapshot(
    path: &str,
    cx: &wasmtime_wizer::ComponentContext<'_>,
    store: &mut Store<StepState>,
    instance: Instance,
) -> Result<Vec<u8>, StepError> {
    let wizer = Wizer::new();
    let mut access = Access { store, instance };
    ready(wizer.snapshot_component(cx, &mut access))
        .expect("reading an instance's state never waits")
        .map_err(|e| StepError::Snapshot {
            path: path.to_string(),
            reason: format!("{e:#}"),
        })
}

/// Reads the instrumented instance's memories and globals through its access exports. Every
/// call is a plain synchronous call into the instance, so each future is ready when polled.
struct Access<'a> {
    store: &'a mut Store<StepState>,
    instance: Instance,
}

impl Access<'_> {
    fn call<R: wasmtime::component::Lift + 'static>(&mut self, instance: &str, func: &str) -> R {
        let (_, parent) = self
            .instance
            .get_export(&mut *self.store, None, instance)
            .expect("wizer's access instance is exported");
        let (_, index) = self
            .instance
            .get_export(&mut *self.store, Some(&parent), func)
            .expect("wizer's access function is exported");
        let f = self
            .instance
            .get_typed_func::<(), (R,)>(&mut *self.store, index)
            .expect("wizer's access function has the type it declares");
        f.call(&mut *self.store, ())
            .expect("reading an instance's own state does not trap")
            .0
    }
}

impl ComponentInstanceState for Access<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        let list: WasmList<u8> = self.call(instance, func);
        contents(list.as_le_slice(&*self.store));
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func)
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func)
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call::<f32>(instance, func).to_bits()
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call::<f64>(instance, func).to_bits()
    }
}

/// Drives a future that never waits (see [`Access`]) to its end, without an executor.
fn ready<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::InputArtifact;

    fn grants(model: &std::path::Path) -> StepRequest {
        let mut req = StepRequest::new("serve", "iris");
        req.inputs.push(InputArtifact {
            name: "model".into(),
            path: model.to_path_buf(),
        });
        req
    }

    #[test]
    fn the_key_follows_what_load_sees_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for d in [&a, &b] {
            std::fs::create_dir_all(d.join("sub")).unwrap();
            std::fs::write(d.join("model.json"), "{}").unwrap();
        }
        let key = |component: &str, req: &StepRequest| key(component, req, Some("/inputs/model"));
        let first = key("sha256:c", &grants(&a)).unwrap();
        // The same content elsewhere, and another time limit: the same key.
        let mut later = grants(&b);
        later.limits.timeout = std::time::Duration::from_secs(1);
        assert_eq!(key("sha256:c", &later), Some(first.clone()));
        // Another component, content, file name, directory, grant or limit: another key.
        assert_ne!(key("sha256:d", &grants(&a)), Some(first.clone()));
        let mut other = grants(&a);
        other.env.push(("X".into(), "1".into()));
        assert_ne!(key("sha256:c", &other), Some(first.clone()));
        let mut other = grants(&a);
        other.limits.memory_bytes /= 2;
        assert_ne!(key("sha256:c", &other), Some(first.clone()));
        assert_ne!(
            super::key("sha256:c", &grants(&a), None),
            Some(first.clone())
        );
        std::fs::write(b.join("model.json"), "{ }").unwrap();
        assert_ne!(key("sha256:c", &grants(&b)), Some(first.clone()));
        std::fs::write(b.join("model.json"), "{}").unwrap();
        std::fs::create_dir(b.join("sub/more")).unwrap();
        assert_ne!(key("sha256:c", &grants(&b)), Some(first.clone()));
        std::fs::remove_dir(b.join("sub/more")).unwrap();
        std::fs::rename(b.join("model.json"), b.join("model2.json")).unwrap();
        assert_ne!(key("sha256:c", &grants(&b)), Some(first.clone()));
        // A file granted alone: its name and content.
        let file = grants(&a.join("model.json"));
        let file_key = key("sha256:c", &file).unwrap();
        assert_ne!(file_key, first);
        std::fs::write(a.join("model.json"), "[]").unwrap();
        assert_ne!(key("sha256:c", &file), Some(file_key));
        // A link inside the model: not digested, so no key (the snapshot's bytes are).
        std::os::unix::fs::symlink(a.join("model.json"), a.join("link")).unwrap();
        assert_eq!(key("sha256:c", &grants(&a)), None);
        assert_eq!(key("sha256:c", &grants(&dir.path().join("missing"))), None);
    }
}
