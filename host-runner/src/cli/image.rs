//! `imagegate image`: assembles the container image of `imagegate serve`
//! from a static binary, the annotated module and a CA bundle, and pushes it
//! ([`crate::deploy::image`]); prints the immutable reference.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::cli::args::PublishArgs;
use crate::deploy::image::{self, Inputs};
use crate::packaging::artifact::block_on;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The static imagegate binary (x86_64- or aarch64-unknown-linux-musl).
    #[arg(long)]
    pub binary: PathBuf,
    /// The annotated policy module.
    #[arg(long)]
    pub policy: PathBuf,
    /// PEM CA bundle the image trusts for registries and Notary servers.
    #[arg(long, default_value = "/etc/ssl/certs/ca-certificates.crt")]
    pub ca_bundle: PathBuf,
    /// The commit the image is built from (org.opencontainers.image.revision).
    #[arg(long)]
    pub revision: Option<String>,
    /// Creation time in seconds since the epoch (`make image`: the commit
    /// time); same inputs, same digest.
    #[arg(long, default_value_t = 0)]
    pub created: i64,
    #[command(flatten)]
    pub to: PublishArgs,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let read = |path: &PathBuf, what: &str| {
        std::fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
    };
    let binary = read(&args.binary, "binary")?;
    let policy = read(&args.policy, "policy module")?;
    let ca_bundle = read(&args.ca_bundle, "CA bundle")?;
    let image = image::build(&Inputs {
        binary: &binary,
        policy: &policy,
        ca_bundle: &ca_bundle,
        revision: args.revision.as_deref(),
        created: args.created,
    })?;
    let immutable = block_on(image::push(image, &args.to.destination, &args.to.access()?))?;
    args.to.print(&immutable);
    Ok(ExitCode::SUCCESS)
}
