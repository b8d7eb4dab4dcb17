//! `imagegate push`: publishes the annotated module as a Kubewarden policy
//! artifact (like `kwctl push`) and prints its immutable reference.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::cli::args::RegistryArgs;
use crate::packaging::artifact::{block_on, push};
use crate::registry::RegistryAccess;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Annotated policy module.
    pub policy: PathBuf,
    /// Destination: registry://host[:port]/repository:tag
    pub destination: String,
    #[arg(short, long, value_enum, default_value = "text")]
    pub output: Output,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let module = std::fs::read(&args.policy)
        .with_context(|| format!("cannot read policy {}", args.policy.display()))?;
    let registry = RegistryAccess::new(&args.registry.config()?.with_user_docker_config())?;
    let immutable = block_on(push(&module, &args.destination, &registry))?;
    match args.output {
        Output::Text => println!("{immutable}"),
        Output::Json => println!("{}", serde_json::json!({ "immutable_ref": immutable })),
    }
    Ok(ExitCode::SUCCESS)
}
