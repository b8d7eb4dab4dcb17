//! `imagegate`: the host-runner CLI. One variant per subcommand, each
//! implemented by its module's `run` function.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use imagegate::{bench, fixtures, run, serve};

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
    /// Serve the policy over HTTPS: AdmissionReview at /validate, ImageReview at /imagereview.
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Test(args) => fixtures::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Serve(args) => serve::run(args),
    };
    result.unwrap_or_else(|e| {
        eprintln!("Error: {e:#}");
        ExitCode::FAILURE
    })
}
