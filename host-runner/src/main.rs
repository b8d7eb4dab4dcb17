//! `imagegate`: parses the command line, runs the verb, prints its error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use imagegate::cli;

#[derive(Parser)]
#[command(
    name = "imagegate",
    version,
    about = "Run, test and benchmark the imagegate Kubewarden policy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate one admission request and print the AdmissionResponse (like `kwctl run`).
    Run(cli::run::Args),
    /// Would these manifests be admitted? Every image of every object, for CI (exit 1 on a denial).
    Check(cli::check::Args),
    /// Run every fixture under a directory and check its expectations.
    Test(cli::test::Args),
    /// Measure validate latency with fresh and reused instances.
    Bench(cli::bench::Args),
    /// Convert tmax, Tanzu, OpenShift, sighup or Gatekeeper policies to imagegate settings.
    Convert(cli::convert::Args),
    /// Embed metadata.yml in the module (like `kwctl annotate`).
    Annotate(cli::annotate::Args),
    /// Print the metadata embedded in an annotated module.
    Inspect(cli::inspect::Args),
    /// Generate artifacthub-pkg.yml and questions-ui.yml from metadata.yml.
    Artifacthub(cli::artifacthub::Args),
    /// Write the ClusterAdmissionPolicy that installs the policy, or (`scaffold
    /// webhook`, `scaffold imagepolicywebhook`) what runs `imagegate serve` without Kubewarden.
    Scaffold(cli::scaffold::Args),
    /// Publish the annotated module to an OCI registry (like `kwctl push`).
    Push(cli::push::Args),
    /// Download a policy module from an OCI registry.
    Pull(cli::pull::Args),
    /// Build the container image of `imagegate serve` (static binary + annotated module) and push it.
    Image(cli::image::Args),
    /// Serve the policy over HTTPS: AdmissionReview at /validate (never patches) and /mutate, ImageReview at /imagereview.
    Serve(cli::serve::Args),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Run(args) => cli::run::run(&args),
        Command::Check(args) => cli::check::run(&args),
        Command::Test(args) => cli::test::run(&args),
        Command::Bench(args) => cli::bench::run(&args),
        Command::Convert(args) => cli::convert::run(&args),
        Command::Annotate(args) => cli::annotate::run(&args),
        Command::Inspect(args) => cli::inspect::run(&args),
        Command::Artifacthub(args) => cli::artifacthub::run(&args),
        Command::Scaffold(args) => cli::scaffold::run(&args),
        Command::Push(args) => cli::push::run(&args),
        Command::Pull(args) => cli::pull::run(&args),
        Command::Image(args) => cli::image::run(&args),
        Command::Serve(args) => cli::serve::run(&args),
    };
    result.unwrap_or_else(|e| {
        eprintln!("Error: {e:#}");
        ExitCode::FAILURE
    })
}
