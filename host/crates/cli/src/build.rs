//! `wasm-run new` and `wasm-run build`: component projects in Rust, Python, JavaScript and C,
//! as `spin new` and `spin build` do them.

use crate::home::Home;
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;
use weft_guest_build::{Language, Project, Tools};

#[derive(clap::Args)]
pub struct NewArgs {
    /// What to make: `step` (a pipeline step).
    #[arg(value_enum)]
    kind: NewKind,
    /// The component's name (lowercase letters, digits, '-' and '_').
    name: String,
    /// The language of the new project.
    #[arg(long, value_enum)]
    lang: Lang,
    /// Where to write it (default: ./NAME).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum NewKind {
    Step,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Lang {
    Rust,
    Python,
    Js,
    C,
}

impl From<Lang> for Language {
    fn from(l: Lang) -> Language {
        match l {
            Lang::Rust => Language::Rust,
            Lang::Python => Language::Python,
            Lang::Js => Language::Js,
            Lang::C => Language::C,
        }
    }
}

#[derive(clap::Args)]
pub struct BuildArgs {
    /// The project directory (holding weft.toml); default the current directory.
    #[arg(value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// Where the component goes (default DIR/target/weft); it is written as NAME.wasm.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Where the language's build tools are installed on first use and found after (default
    /// $WEFT_HOME/tools); share one between homes or CI jobs.
    #[arg(long, env = "WEFT_TOOLS_DIR", value_name = "DIR")]
    tools_dir: Option<PathBuf>,
}

pub fn new(args: NewArgs) -> Result<ExitCode> {
    let NewKind::Step = args.kind;
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    let files = weft_guest_build::scaffold::new_step(&dir, &args.name, args.lang.into())?;
    println!("created {} in {}:", args.name, dir.display());
    for f in files {
        println!("  {f}");
    }
    println!(
        "build it with `wasm-run build {}`, try it with {}/test.sh",
        dir.display(),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn build(home: &Home, args: BuildArgs) -> Result<ExitCode> {
    let project = Project::read(&args.dir)?;
    let out_dir = args
        .out_dir
        .unwrap_or_else(|| project.dir.join("target").join("weft"));
    let tools = Tools::new(args.tools_dir.unwrap_or_else(|| home.build_tools()));
    eprintln!(
        "building {} ({} {})",
        project.name, project.language, project.world
    );
    let out = weft_guest_build::build_project(&project, &out_dir, &tools)?;
    println!("{}", out.display());
    Ok(ExitCode::SUCCESS)
}
