//! `imagegate push`: publishes the annotated module as a Kubewarden policy
//! artifact (like `kwctl push`) and prints its immutable reference.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::cli::args::PublishArgs;
use crate::packaging::artifact::{block_on, push};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Annotated policy module.
    pub policy: PathBuf,
    #[command(flatten)]
    pub to: PublishArgs,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let module = std::fs::read(&args.policy)
        .with_context(|| format!("cannot read policy {}", args.policy.display()))?;
    let immutable = block_on(push(&module, &args.to.destination, &args.to.access()?))?;
    args.to.print(&immutable);
    Ok(ExitCode::SUCCESS)
}
