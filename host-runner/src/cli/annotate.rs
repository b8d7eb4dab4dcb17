//! `imagegate annotate`: embeds metadata.yml (and the README) in the module,
//! as `kwctl annotate` does ([`crate::packaging::annotate`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::packaging::annotate::{annotate, capability_warnings, protocol_version};
use crate::packaging::metadata::Metadata;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Metadata file (YAML).
    #[arg(short, long, default_value = "metadata.yml")]
    pub metadata: PathBuf,
    /// File embedded as io.kubewarden.policy.usage (the README).
    #[arg(short, long)]
    pub usage: Option<PathBuf>,
    /// Annotated module to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Module to annotate.
    pub policy: PathBuf,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let module = std::fs::read(&args.policy)
        .with_context(|| format!("cannot read policy {}", args.policy.display()))?;
    let metadata = Metadata::from_yaml_file(&args.metadata)?;
    let usage = args
        .usage
        .as_ref()
        .map(|p| {
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read usage file {}", p.display()))
        })
        .transpose()?;
    for warning in capability_warnings(&module, &metadata)? {
        eprintln!("warning: {warning}");
    }
    let annotated = annotate(&module, metadata, usage.as_deref(), protocol_version)
        .with_context(|| format!("cannot annotate {}", args.policy.display()))?;
    std::fs::write(&args.output, annotated)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    Ok(ExitCode::SUCCESS)
}
