//! `wasm-run compile` (compiled components ahead of their first use) and `wasm-run cache
//! list|prune` (the compiled cache and its size cap).
//!
//! A Python or JavaScript component takes seconds to compile on first use; compiling ahead of
//! time (an image build, a CI step, `pipeline validate --compile`) moves that wait to where it
//! is expected. The cache keeps each compiled version (~35 MB for such a component) until the
//! cap (`--cache-max`, `$WEFT_CACHE_MAX`, 2 GiB by default) evicts the least recently used.

use crate::home::Home;
use crate::progress::{seconds, CompileView};
use crate::runs::Format;
use anyhow::{Context, Result};
use bytesize::ByteSize;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;
use weft_runtime::{LoadSource, Runtime};

#[derive(Args)]
pub struct CompileArgs {
    /// The components (.wasm) to compile: steps or served models.
    #[arg(value_name = "COMPONENT", required = true)]
    components: Vec<PathBuf>,
}

#[derive(Subcommand)]
pub enum CacheCommand {
    /// Compiled components in the cache, most recently used first: digest, size, last use.
    List {
        #[arg(long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Remove least recently used entries until the cache fits SIZE (default: the cap).
    Prune {
        /// The size to prune to (e.g. 500MiB); default the cache's cap (--cache-max).
        #[arg(long, value_name = "SIZE", value_parser = crate::run::parse_size, conflicts_with = "all")]
        max: Option<u64>,
        /// Remove every entry.
        #[arg(long)]
        all: bool,
    },
}

/// `wasm-run compile`: each component compiled into the cache, or found there; exit 2 when
/// one cannot be (the others are still compiled).
pub fn compile(home: &Home, args: CompileArgs) -> Result<ExitCode> {
    let runtime =
        Runtime::new(home.runtime_config(1)).context("starting the WebAssembly engine")?;
    let mut failed = 0;
    for path in &args.components {
        let name = path.display().to_string();
        if let Err(e) = compile_one(&runtime, &name, path) {
            eprintln!("error: {e:#}");
            failed += 1;
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// Compiles `path` (shown as `name`) into the cache, printing what happened on stdout:
/// `NAME: compiled in 12.3 s (sha256:...)` or `NAME: already compiled (sha256:...)`.
pub fn compile_one(runtime: &Runtime, name: &str, path: &Path) -> Result<()> {
    let view = CompileView::new(name);
    let done = runtime.precompile(path, &|c| view.started(c.bytes));
    view.clear();
    let done = done?;
    let shown = weft_spec::text::escape_control(name);
    match done.source {
        LoadSource::Compiled => println!(
            "{shown}: compiled in {} ({})",
            seconds(done.took),
            done.digest
        ),
        _ => println!("{shown}: already compiled ({})", done.digest),
    }
    Ok(())
}

pub fn cache(home: &Home, cmd: CacheCommand) -> Result<ExitCode> {
    let dir = home.component_cache();
    match cmd {
        CacheCommand::List { output } => list(home, &dir, output)?,
        CacheCommand::Prune { max, all } => {
            let max = if all {
                0
            } else {
                max.or(home.cache_max()).unwrap_or(u64::MAX)
            };
            let pruned = weft_runtime::prune_cache(&dir, max)
                .with_context(|| format!("pruning {}", dir.display()))?;
            let freed: u64 = pruned.removed.iter().map(|e| e.bytes).sum();
            println!(
                "removed {} entries ({}); {} entries ({}) remain",
                pruned.removed.len(),
                ByteSize(freed),
                pruned.kept_entries,
                ByteSize(pruned.kept_bytes)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `cache list`: a table (entries of another engine marked: this build never loads them), or
/// JSON.
fn list(home: &Home, dir: &Path, output: Format) -> Result<()> {
    let entries =
        weft_runtime::list_cache(dir).with_context(|| format!("listing {}", dir.display()))?;
    if output == Format::Json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    let current = weft_runtime::cache_engine_key()?;
    println!("{:<72} {:>10}  LAST USED", "COMPONENT", "SIZE");
    for e in &entries {
        let other = if e.engine_key == current {
            ""
        } else {
            "  (another engine's: never loaded by this build)"
        };
        println!(
            "{:<72} {:>10}  {}{other}",
            e.digest,
            ByteSize(e.bytes).to_string(),
            when(e.last_used)
        );
    }
    let total: u64 = entries.iter().map(|e| e.bytes).sum();
    let cap = home
        .cache_max()
        .map(|m| ByteSize(m).to_string())
        .unwrap_or_else(|| "none".into());
    println!(
        "{} entries, {} in {} (cap {cap})",
        entries.len(),
        ByteSize(total),
        dir.display()
    );
    Ok(())
}

/// `2025-01-31T12:00:00Z (5m ago)`.
fn when(t: SystemTime) -> String {
    let ago = t
        .elapsed()
        .map(|d| std::time::Duration::from_secs(d.as_secs()))
        .map(|d| format!(" ({} ago)", humantime::format_duration(d)))
        .unwrap_or_default();
    format!("{}{ago}", humantime::format_rfc3339_seconds(t))
}
