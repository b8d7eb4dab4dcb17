//! `imagegate run`: evaluate one request like `kwctl run`.
//!
//! validate_settings first (invalid -> `Provided settings are not valid:
//! <message>` on stderr, exit 1, each error with its place in a YAML settings
//! file), then validate, then one AdmissionResponse line on stdout, or with
//! `--output text` the decision explained per image. Exit 0 even when the
//! request is rejected, as `kwctl run` (scripts that only read the JSON keep
//! working); `--fail-on-deny` exits 1 on a rejection.

use std::process::ExitCode;

use crate::check::output;
use crate::cli::args::EvalArgs;
use crate::runtime::admission;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub eval: EvalArgs,

    /// json: the AdmissionResponse on one line (as kwctl run); text: per
    /// image the decision, the rule and why it won, each check, the pin.
    #[arg(short, long, value_enum, default_value = "json")]
    pub output: Output,

    /// Exit 1 when the request is rejected (default: 0, as kwctl run).
    #[arg(long)]
    pub fail_on_deny: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Json,
    Text,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let eval = args.eval.load()?;
    let settings = admission::validate_settings(&mut &eval.policy, &eval.settings);
    if !settings.valid {
        eval.capabilities.finish()?;
        let message = args
            .eval
            .settings
            .locate_errors(&settings.message.unwrap_or_default());
        eprintln!("Provided settings are not valid: {message}");
        return Ok(ExitCode::FAILURE);
    }
    let (response, reports) = match args.output {
        Output::Json => (
            admission::validate(&mut &eval.policy, &eval.request, &eval.settings),
            Vec::new(),
        ),
        Output::Text => admission::explain(&mut &eval.policy, &eval.request, &eval.settings),
    };
    eval.capabilities.finish()?;
    match args.output {
        Output::Json => println!("{}", serde_json::to_string(&response)?),
        Output::Text => print!("{}", output::explanation(&response, &reports)),
    }
    Ok(if args.fail_on_deny && !response.allowed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
