//! `imagegate run`: evaluate one request like `kwctl run`.
//!
//! validate_settings first (invalid -> `Provided settings are not valid:
//! <message>` on stderr, exit 1), then validate, then one AdmissionResponse
//! line on stdout; exit 0 even when the request is rejected.

use std::process::ExitCode;

use crate::cli::args::EvalArgs;
use crate::runtime::admission;

pub type Args = EvalArgs;

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let eval = args.load()?;
    let settings = admission::validate_settings(&mut &eval.policy, &eval.settings);
    if !settings.valid {
        eval.capabilities.finish()?;
        eprintln!(
            "Provided settings are not valid: {}",
            settings.message.unwrap_or_default()
        );
        return Ok(ExitCode::FAILURE);
    }
    let response = admission::validate(&mut &eval.policy, &eval.request, &eval.settings);
    eval.capabilities.finish()?;
    println!("{}", serde_json::to_string(&response)?);
    Ok(ExitCode::SUCCESS)
}
