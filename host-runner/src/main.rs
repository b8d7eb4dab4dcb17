//! `imagegate`: the host-runner CLI. One variant per subcommand, each
//! implemented by its module's `run` function.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use imagegate::cli::{bench, convert, run, test as fixtures};
use imagegate::packaging::{annotate, artifact as push, artifacthub, metadata, scaffold};
use imagegate::serve;

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
    Run(run::EvalArgs),
    /// Run every fixture under a directory and check its expectations.
    Test(fixtures::TestArgs),
    /// Measure validate latency with fresh and reused instances.
    Bench(bench::BenchArgs),
    /// Convert tmax, Tanzu, OpenShift, sighup or Gatekeeper policies to imagegate settings.
    Convert(convert::ConvertArgs),
    /// Embed metadata.yml in the module (like `kwctl annotate`).
    Annotate(annotate::Args),
    /// Print the metadata embedded in an annotated module.
    Inspect(metadata::InspectArgs),
    /// Generate artifacthub-pkg.yml and questions-ui.yml from metadata.yml.
    Artifacthub(artifacthub::Args),
    /// Write the ClusterAdmissionPolicy that installs the policy.
    Scaffold(scaffold::Args),
    /// Publish the annotated module to an OCI registry (like `kwctl push`).
    Push(push::Args),
    /// Download a policy module from an OCI registry.
    Pull(push::PullArgs),
    /// Serve the policy over HTTPS: AdmissionReview at /validate, ImageReview at /imagereview.
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Test(args) => fixtures::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Annotate(args) => annotate::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Inspect(args) => metadata::run_inspect(&args).map(|()| ExitCode::SUCCESS),
        Command::Artifacthub(args) => artifacthub::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Scaffold(args) => scaffold::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Push(args) => push::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Pull(args) => push::run_pull(&args).map(|()| ExitCode::SUCCESS),
        Command::Serve(args) => serve::run(args),
    };
    result.unwrap_or_else(|e| {
        eprintln!("Error: {e:#}");
        ExitCode::FAILURE
    })
}
