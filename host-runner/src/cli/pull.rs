//! `imagegate pull`: downloads a policy module from an OCI registry (like
//! `kwctl pull`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::cli::args::RegistryArgs;
use crate::packaging::artifact::{block_on, pull};
use crate::registry::RegistryAccess;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Source: registry://host[:port]/repository(:tag|@digest)
    pub source: String,
    /// Where to write the module.
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let registry = RegistryAccess::new(&args.registry.config()?.with_user_docker_config())?;
    let module = block_on(pull(&args.source, &registry))?;
    std::fs::write(&args.output, module)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    Ok(ExitCode::SUCCESS)
}
