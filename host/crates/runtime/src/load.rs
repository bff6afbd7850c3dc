//! Loading components: from this runtime's memory, from the disk cache, or compiled; and the
//! checks that need no compile.
//!
//! Compiling is the one slow part (seconds for a Python or JavaScript component), so a compile
//! is announced before it starts (`on_compile`, for a progress view), happens once per
//! component however many steps ask for it at once, and comes only after the component's
//! imports were checked against the sandbox (a component that cannot link fails in
//! milliseconds, not after its compile).

use crate::bindings::StepPre;
use crate::cache::{self, LoadSource};
use crate::engine::{Calls, LoadedComponent, Runtime};
use crate::error::StepError;
use crate::predictor::MODEL_EXPORT;
use crate::shape::{self, Shape};
use crate::state::StepState;
use crate::step::TASK_EXPORT;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, InstancePre};

/// A compile about to start: what a progress view shows while it runs.
#[derive(Clone, Copy, Debug)]
pub struct Compiling<'a> {
    pub path: &'a Path,
    /// `sha256:` of the component's bytes.
    pub digest: &'a str,
    /// The component's size: what the compile's length goes with.
    pub bytes: u64,
}

/// A component checked without compiling it ([`Runtime::check`]).
pub struct CheckedComponent {
    /// `sha256:` of its bytes.
    pub digest: String,
    pub bytes: Vec<u8>,
}

/// What [`Runtime::precompile`] did.
#[derive(Clone, Debug)]
pub struct Precompiled {
    pub digest: String,
    /// `Compiled` when it was compiled now; `DiskCache` when it already was.
    pub source: LoadSource,
    /// The compile's time (or the cached load's).
    pub took: Duration,
}

/// A compiled component and how it was obtained.
pub(crate) struct Compiled {
    pub component: Component,
    pub source: LoadSource,
    pub took: Option<Duration>,
}

/// A component file's bytes, bounded.
fn read_component(path: &Path) -> Result<Vec<u8>, StepError> {
    weft_tree::read_regular(path, weft_tree::MAX_COMPONENT_BYTES)
        .map_err(|e| StepError::Grant(format!("component {e}")))
}

impl Runtime {
    /// Loads a component from a file: from memory if this runtime has it, else from the disk
    /// cache, else compiled. Checks that it is a `weft:pipeline/step` and that its imports link.
    pub fn load(&self, path: &Path) -> Result<Arc<LoadedComponent>, StepError> {
        self.load_with(path, &|_| {})
    }

    /// [`Runtime::load`], calling `on_compile` before a compile starts. One compile per
    /// component at a time: the parallel iterations of a loop over a Python step would
    /// otherwise each spend its compile; the others wait and take its result.
    pub fn load_with(
        &self,
        path: &Path,
        on_compile: &dyn Fn(&Compiling<'_>),
    ) -> Result<Arc<LoadedComponent>, StepError> {
        let bytes = read_component(path)?;
        let digest = cache::digest(&bytes);
        if let Some(hit) = self.in_memory(&digest, path) {
            return Ok(hit);
        }
        let turn = self.compile_turn(&digest);
        let _turn = turn.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hit) = self.in_memory(&digest, path) {
            return Ok(hit);
        }
        let calls = Calls::Blocking;
        let compiled = self.compile_with(path, &digest, &bytes, TASK_EXPORT, calls, on_compile)?;
        let pre = StepPre::new(self.pre(path, &compiled.component, calls)?).map_err(|e| {
            StepError::Link {
                path: path.display().to_string(),
                reason: format!("{e:#}"),
            }
        })?;
        let loaded = Arc::new(LoadedComponent {
            digest: digest.clone(),
            path: path.to_path_buf(),
            source: compiled.source,
            compile_time: compiled.took,
            pre,
        });
        self.loaded.lock().unwrap().insert(digest, loaded.clone());
        tracing::debug!(component = %path.display(), digest = %loaded.digest, source = ?loaded.source, "component loaded");
        Ok(loaded)
    }

    /// This runtime's loaded copy of `digest`, as read from `path` this time.
    fn in_memory(&self, digest: &str, path: &Path) -> Option<Arc<LoadedComponent>> {
        let loaded = self.loaded.lock().unwrap();
        let hit = loaded.get(digest)?;
        Some(Arc::new(LoadedComponent {
            digest: digest.to_string(),
            path: path.to_path_buf(),
            source: LoadSource::Memory,
            compile_time: None,
            pre: hit.pre.clone(),
        }))
    }

    /// The lock held while `digest` compiles.
    fn compile_turn(&self, digest: &str) -> Arc<Mutex<()>> {
        let mut turns = self.compiling.lock().unwrap();
        turns.entry(digest.to_string()).or_default().clone()
    }

    /// Checks, without compiling it, that the component at `path` is a step whose imports the
    /// sandbox provides: what planning a run needs, so that a run whose every task is a cache
    /// hit compiles nothing. (The exported function's type is checked at the first load.)
    pub fn check(&self, path: &Path) -> Result<CheckedComponent, StepError> {
        let bytes = read_component(path)?;
        self.check_shape(path, &bytes, TASK_EXPORT, Calls::Blocking)?;
        Ok(CheckedComponent {
            digest: cache::digest(&bytes),
            bytes,
        })
    }

    /// Compiles the component at `path` into the disk cache ahead of its first use (`wasm-run
    /// compile`): a step, or a served model, checked and linked as that. A component already
    /// in the cache is only loaded.
    pub fn precompile(
        &self,
        path: &Path,
        on_compile: &dyn Fn(&Compiling<'_>),
    ) -> Result<Precompiled, StepError> {
        let started = Instant::now();
        let bytes = read_component(path)?;
        let digest = cache::digest(&bytes);
        not_wasm(path, &bytes)?;
        let shape = shape::read(&bytes).map_err(|reason| invalid(path, reason))?;
        let (expected, calls) = match shape.exports.iter().any(|e| e == MODEL_EXPORT) {
            true => (MODEL_EXPORT, Calls::Async),
            false => (TASK_EXPORT, Calls::Blocking),
        };
        let compiled = self.compile_with(path, &digest, &bytes, expected, calls, on_compile)?;
        self.pre(path, &compiled.component, calls)?;
        Ok(Precompiled {
            digest,
            source: compiled.source,
            took: compiled.took.unwrap_or_else(|| started.elapsed()),
        })
    }

    /// Compiles (or loads from the cache) `bytes`, checks the component exports `expected`,
    /// and links it against the sandbox's imports: what every kind of component goes through.
    pub(crate) fn link(
        &self,
        path: &Path,
        digest: &str,
        bytes: &[u8],
        expected: &'static str,
        calls: Calls,
    ) -> Result<(InstancePre<StepState>, LoadSource), StepError> {
        let compiled = self.compile_with(path, digest, bytes, expected, calls, &|_| {})?;
        Ok((self.pre(path, &compiled.component, calls)?, compiled.source))
    }

    /// Compiles (or loads from the cache) `bytes` and checks the component exports `expected`.
    pub(crate) fn compile(
        &self,
        path: &Path,
        digest: &str,
        bytes: &[u8],
        expected: &'static str,
    ) -> Result<(Component, LoadSource), StepError> {
        let compiled = self.compile_with(path, digest, bytes, expected, Calls::Async, &|_| {})?;
        Ok((compiled.component, compiled.source))
    }

    /// [`Runtime::compile`]: from the disk cache, else checked without compiling (exports,
    /// imports against the `calls` linker), announced through `on_compile`, then compiled.
    pub(crate) fn compile_with(
        &self,
        path: &Path,
        digest: &str,
        bytes: &[u8],
        expected: &'static str,
        calls: Calls,
        on_compile: &dyn Fn(&Compiling<'_>),
    ) -> Result<Compiled, StepError> {
        not_wasm(path, bytes)?;
        let (component, source, took) = match self.cache.lookup(&self.engine, digest) {
            Some(c) => (c, LoadSource::DiskCache, None),
            None => {
                self.check_shape(path, bytes, expected, calls)?;
                on_compile(&Compiling {
                    path,
                    digest,
                    bytes: bytes.len() as u64,
                });
                let started = Instant::now();
                let c = self
                    .cache
                    .compile(&self.engine, digest, bytes)
                    // One line: wasmtime's causes joined, any debug-printed byte lists folded.
                    .map_err(|e| invalid(path, weft_spec::text::one_line(&format!("{e:#}"))))?;
                (c, LoadSource::Compiled, Some(started.elapsed()))
            }
        };
        let exports: Vec<String> = component
            .component_type()
            .exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        if !exports.iter().any(|e| e == expected) {
            return Err(not_a_step(path, expected, exports));
        }
        Ok(Compiled {
            component,
            source,
            took,
        })
    }

    /// Links `component` against the sandbox's imports, bound for `calls`.
    pub(crate) fn pre(
        &self,
        path: &Path,
        component: &Component,
        calls: Calls,
    ) -> Result<InstancePre<StepState>, StepError> {
        self.linker_for(calls)
            .instantiate_pre(component)
            .map_err(|e| link_error(path, format!("{e:#}")))
    }

    /// Forgets the components loaded so far (the disk cache stays), so the next `load` of each
    /// reads the disk cache again: for a long-lived process whose components change, and for
    /// measuring cached loads.
    pub fn clear_loaded(&self) {
        self.loaded.lock().unwrap().clear();
    }

    /// Where compiled components are cached, if anywhere.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache.dir()
    }
}

impl Runtime {
    /// Checks `bytes` without compiling: a component, exporting `expected`, whose imports
    /// the `calls` linker provides.
    fn check_shape(
        &self,
        path: &Path,
        bytes: &[u8],
        expected: &'static str,
        calls: Calls,
    ) -> Result<(), StepError> {
        not_wasm(path, bytes)?;
        let shape = shape::read(bytes).map_err(|reason| invalid(path, reason))?;
        if !shape.exports.iter().any(|e| e == expected) {
            return Err(not_a_step(path, expected, shape.exports));
        }
        self.check_imports(path, &shape, expected, calls)
    }

    /// The component's imports against the linker, with its probe: linked exactly as the
    /// whole component would be. When that fails, the interfaces not provided at all are each
    /// named; else (an interface provided, but not with those types) wasmtime's words say
    /// what does not match. A probe that does not compile proves nothing and is passed over:
    /// the full compile will say what is wrong.
    fn check_imports(
        &self,
        path: &Path,
        shape: &Shape,
        expected: &str,
        calls: Calls,
    ) -> Result<(), StepError> {
        let linked = match &shape.probe {
            Some(probe) => match Component::new(&self.engine, probe) {
                Ok(probe) => self.pre(path, &probe, calls).map(drop),
                Err(e) => {
                    tracing::debug!(component = %path.display(), error = %e, "the import probe does not compile");
                    Ok(())
                }
            },
            None => {
                tracing::debug!(component = %path.display(), "import types not checked before compiling: code precedes them");
                Ok(())
            }
        };
        let missing = match (&linked, &shape.probe) {
            (Ok(()), Some(_)) => return Ok(()),
            _ => self.missing_interfaces(calls, shape),
        };
        if !missing.is_empty() {
            return Err(link_error(path, not_provided(&missing, expected)));
        }
        linked
    }

    /// The interfaces `shape` imports that the linker does not define at all. wasmtime keeps
    /// its names to itself, but it answers a component importing a name as a function in two
    /// ways: "expected function found instance" when an interface goes by that name, and
    /// "implementation is missing" when nothing does.
    fn missing_interfaces(&self, calls: Calls, shape: &Shape) -> Vec<String> {
        let linker = self.linker_for(calls);
        let instances = shape.imports.iter().filter(|(_, instance)| *instance);
        let missing = instances.filter(|(name, _)| {
            let probe = shape::name_probe(name);
            let Ok(probe) = Component::new(&self.engine, probe) else {
                return false;
            };
            linker
                .instantiate_pre(&probe)
                .is_err_and(|e| format!("{e:#}").contains("implementation is missing"))
        });
        missing.map(|(name, _)| name.clone()).collect()
    }

    fn linker_for(&self, calls: Calls) -> &wasmtime::component::Linker<StepState> {
        match calls {
            Calls::Blocking => &self.linker,
            Calls::Async => &self.async_linker,
        }
    }
}

/// What the sandbox does not provide, and what it does.
fn not_provided(missing: &[String], expected: &str) -> String {
    let who = if expected == TASK_EXPORT {
        "steps"
    } else {
        "served models"
    };
    let names: Vec<String> = missing.iter().map(|n| format!("`{n}`")).collect();
    let verb = if missing.len() == 1 { "is" } else { "are" };
    let mut text = format!(
        "{} {verb} not provided to {who}; the host provides WASI 0.2 (cli, clocks, filesystem, \
         io, random, sockets), `weft:pipeline` and `weft:tensor`",
        names.join(", ")
    );
    if missing.iter().any(|n| n.starts_with("wasi:http/")) {
        text.push_str(
            " (componentize-js imports wasi:http unless built with `-d http -d fetch-event`, \
             as `wasm-run build` does)",
        );
    }
    text
}

/// `bytes` do not even start like WebAssembly: said plainly, rather than as wasmtime's
/// multi-line dump of the expected and actual bytes.
fn not_wasm(path: &Path, bytes: &[u8]) -> Result<(), StepError> {
    if bytes.starts_with(b"\0asm") {
        return Ok(());
    }
    Err(invalid(
        path,
        "not WebAssembly at all (it does not start with `\\0asm`); give the `.wasm` file a \
         build produced"
            .into(),
    ))
}

fn invalid(path: &Path, reason: String) -> StepError {
    StepError::InvalidComponent {
        path: path.display().to_string(),
        reason,
    }
}

fn not_a_step(path: &Path, expected: &'static str, exports: Vec<String>) -> StepError {
    StepError::NotAStep {
        path: path.display().to_string(),
        expected,
        exports,
    }
}

fn link_error(path: &Path, reason: String) -> StepError {
    StepError::Link {
        path: path.display().to_string(),
        reason,
    }
}
