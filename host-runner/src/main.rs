//! `imagegate`: the host-runner CLI.
//!
//! NOTE (ship branch): minimal CLI wiring for annotate / artifacthub /
//! scaffold / push / pull until the runtime branch's main.rs lands; then each
//! subcommand is one line in its `Command` enum.

mod annotate;
mod artifacthub;
mod metadata;
mod push;
mod questions;
mod scaffold;
mod wapc_probe;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "imagegate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Embed metadata.yml in the module (like `kwctl annotate`).
    Annotate(annotate::Args),
    /// Generate artifacthub-pkg.yml and questions-ui.yml from metadata.yml.
    Artifacthub(artifacthub::Args),
    /// Write the ClusterAdmissionPolicy that installs the policy.
    Scaffold(scaffold::Args),
    /// Publish the annotated module to an OCI registry (like `kwctl push`).
    Push(push::Args),
    /// Download a policy module from an OCI registry.
    Pull(push::PullArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Annotate(a) => annotate::run(&a),
        Command::Artifacthub(a) => artifacthub::run(&a),
        Command::Scaffold(a) => scaffold::run(&a),
        Command::Push(a) => push::run(&a),
        Command::Pull(a) => push::run_pull(&a),
    }
}
