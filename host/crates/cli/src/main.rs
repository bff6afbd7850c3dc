//! `wasm-run`: Weft's command line.

mod home;
mod run;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Run Weft pipeline steps — WebAssembly components — in a capability sandbox.
///
/// Local state (the compiled-component cache, task logs) lives under $WEFT_HOME, by default the
/// per-user data directory (e.g. ~/.local/share/weft). Set RUST_LOG (e.g. RUST_LOG=debug) for
/// structured host logs on stderr.
#[derive(Parser)]
#[command(name = "wasm-run", version, propagate_version = true)]
struct Cli {
    /// Weft's state directory (cache, logs). Overrides $WEFT_HOME.
    #[arg(long, global = true, env = "WEFT_HOME", value_name = "DIR")]
    home: Option<PathBuf>,

    /// Host log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run one step: a component of the weft:pipeline/step world, on the given parameters and
    /// artifacts, in a sandbox that grants nothing else.
    Run(run::RunArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let home = home::Home::resolve(cli.home);
    let result = match cli.command {
        Command::Run(args) => run::run(&home, args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
