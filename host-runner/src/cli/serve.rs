//! `imagegate serve`: the policy as an HTTPS admission webhook and
//! ImagePolicyWebhook backend ([`crate::serve`]), with the live capability
//! backend of `run` (every registry and Notary flag) or a replayed session.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;

use crate::capabilities::Backend;
use crate::cli::args::{parse_timeout, LiveArgs, PolicyArgs, Timeout};
use crate::packaging::artifact;
use crate::runtime::session::Replay;
use crate::serve::{Config, Server};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The policy module: a .wasm file, or registry://host/repository:tag.
    #[arg(long, value_name = "POLICY")]
    pub policy: PathBuf,

    /// Settings file (YAML or JSON), re-read when it changes.
    #[arg(short = 's', long, value_name = "FILE")]
    pub settings_path: Option<PathBuf>,

    /// Address to listen on (port 0 = any free port).
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub addr: SocketAddr,

    /// Server certificate chain (PEM).
    #[arg(
        long,
        value_name = "PEM",
        requires = "tls_key",
        required_unless_present = "insecure_http"
    )]
    pub tls_cert: Option<PathBuf>,

    /// Private key of the certificate (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve plain HTTP instead of HTTPS (local tests only).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub insecure_http: bool,

    /// Evaluations running at once; more requests wait for a slot.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrency: u32,

    /// How long a request waits for a slot before it is denied as busy
    /// (`off` = deny at once when every slot is taken).
    #[arg(long, default_value = "1s", value_parser = parse_timeout)]
    pub queue_timeout: Timeout,

    /// How often the settings file is checked for changes (`off` = never).
    #[arg(long, default_value = "1s", value_parser = parse_timeout)]
    pub reload_interval: Timeout,

    /// Answer host capabilities from a recorded session FILE, in order,
    /// instead of live registries (demos and tests).
    #[arg(long, alias = "replay", value_name = "FILE")]
    pub replay_host_capabilities_interactions: Option<PathBuf>,

    #[command(flatten)]
    pub policy_args: PolicyArgs,

    #[command(flatten)]
    pub live: LiveArgs,
}

/// Loads the module and the capability backend these flags describe and
/// starts the server.
pub fn start(args: &Args) -> anyhow::Result<Server> {
    let wasm = artifact::read_module(&args.policy, &args.live.registry.config()?)?;
    let backend: Box<dyn Backend> = match &args.replay_host_capabilities_interactions {
        Some(session) => Box::new(Replay::from_file(session)?),
        None => Box::new(args.live.live()?),
    };
    let capabilities = args.policy_args.capabilities(&wasm, false, backend)?;
    let tls = match (&args.tls_cert, &args.tls_key, args.insecure_http) {
        (Some(cert), Some(key), false) => Some((cert.clone(), key.clone())),
        (None, None, true) => None,
        _ => bail!("give --tls-cert and --tls-key, or --insecure-http"),
    };
    let config = Config {
        policy_name: args.policy.display().to_string(),
        settings_path: args.settings_path.clone(),
        addr: args.addr,
        tls,
        max_concurrency: args.max_concurrency,
        queue_timeout: args.queue_timeout.0.unwrap_or(Duration::ZERO),
        reload_interval: args.reload_interval.0,
        runtime: args.policy_args.runtime_config(),
    };
    Server::start(&config, &wasm, capabilities)
}

/// Serves until killed.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let server = start(args)?;
    eprintln!(
        "imagegate serve: listening on {} (POST /validate, /mutate, /imagereview; GET /readyz, /healthz, /metrics)",
        server.url()
    );
    server.wait();
    Ok(ExitCode::FAILURE)
}
