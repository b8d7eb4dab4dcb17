//! `imagegate check FILE|DIR|-...`: would these manifests be admitted?
//! ([`crate::check`]). Exit 0 when every object would be admitted, 1 when
//! any would be rejected, 2 for usage, settings and input errors.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::capabilities::Backend;
use crate::check::{self, manifests, output, OfflineChecks};
use crate::cli::args::{LiveArgs, PolicyArgs, RequesterArgs, SettingsArgs};
use crate::runtime::admission;
use crate::runtime::session::Replay;
use crate::runtime::Policy;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Manifests: YAML or JSON files (several documents, Lists, `helm
    /// template` and `kustomize build` output), directories (searched
    /// recursively for .yaml, .yml and .json), `-` for stdin.
    #[arg(value_name = "FILE|DIR|-", required = true)]
    pub paths: Vec<PathBuf>,

    /// The policy module: a .wasm file, or registry://host/repository:tag.
    #[arg(long, default_value = "policy.wasm")]
    pub policy: PathBuf,

    #[command(flatten)]
    pub settings: SettingsArgs,

    /// text (default on a terminal), json (default otherwise), junit or sarif.
    #[arg(short, long, value_enum)]
    pub output: Option<output::Format>,

    /// Verify signatures and resolve digests against the registries (the
    /// live host, with the registry and Notary flags). Without it, or a
    /// replayed session, such checks are not verified offline: denials.
    #[arg(long, conflicts_with = "replay_host_capabilities_interactions")]
    pub online: bool,

    /// Answer host capabilities from a recorded session FILE (kwctl format).
    #[arg(long, alias = "replay", value_name = "FILE")]
    pub replay_host_capabilities_interactions: Option<PathBuf>,

    #[command(flatten)]
    pub requester: RequesterArgs,

    #[command(flatten)]
    pub policy_args: PolicyArgs,

    #[command(flatten)]
    pub live: LiveArgs,
}

/// Usage, settings and input errors.
const ERROR: u8 = 2;

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match checked(args) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("Error: {e:#}");
            Ok(ExitCode::from(ERROR))
        }
    }
}

fn checked(args: &Args) -> anyhow::Result<ExitCode> {
    let wasm = args.live.registry.read_module(&args.policy)?;
    let settings = args.settings.read()?;
    let (manifests, skipped) = manifests::read(&args.paths)?;
    let backend: Box<dyn Backend> = match (&args.replay_host_capabilities_interactions, args.online)
    {
        (Some(session), _) => Box::new(Replay::from_file(session)?),
        (None, true) => args.live.backend()?,
        (None, false) => Box::new(OfflineChecks),
    };
    let capabilities = args.policy_args.capabilities(&wasm, false, backend)?;
    let policy = Policy::new(
        &wasm,
        args.policy_args.runtime_config(),
        capabilities.clone(),
    )
    .with_context(|| format!("cannot load policy module {}", args.policy.display()))?;
    let validity = admission::validate_settings(&mut &policy, &settings);
    if !validity.valid {
        let message = args
            .settings
            .locate_errors(&validity.message.unwrap_or_default());
        eprintln!("imagegate check: the settings are not valid:\n{message}");
        return Ok(ExitCode::from(ERROR));
    }
    let checked = check::check(
        &policy,
        &settings,
        manifests,
        skipped,
        &args.requester.requester(),
    );
    capabilities.finish()?;
    let format = args.output.unwrap_or(if std::io::stdout().is_terminal() {
        output::Format::Text
    } else {
        output::Format::Json
    });
    print!("{}", output::render(&checked, format)?);
    if format != output::Format::Text {
        eprintln!("{}", output::summary_line(&checked));
    }
    Ok(if checked.all_admitted() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
