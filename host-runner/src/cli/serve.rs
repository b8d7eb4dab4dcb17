//! `imagegate serve`: the policy as an HTTPS admission webhook and
//! ImagePolicyWebhook backend ([`crate::serve`]), with the live capability
//! backend of `run` (every registry and Notary flag) or a replayed session.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;

use crate::capabilities::Backend;
use crate::cli::args::{parse_duration, parse_size, parse_timeout, LiveArgs, PolicyArgs, Timeout};
use crate::packaging::artifact;
use crate::runtime::session::Replay;
use crate::serve::listener::Limits;
use crate::serve::{Config, Server};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The policy module: a .wasm file, or registry://host/repository:tag.
    #[arg(long, value_name = "POLICY")]
    pub policy: PathBuf,

    /// Settings file (YAML or JSON), re-read when it changes. Required:
    /// without settings every image is admitted.
    #[arg(
        short = 's',
        long,
        value_name = "FILE",
        required_unless_present = "allow_empty_settings"
    )]
    pub settings_path: Option<PathBuf>,

    /// Run without a settings file, with `{}` (admits every image that
    /// parses): only for trying the server out.
    #[arg(long, conflicts_with = "settings_path")]
    pub allow_empty_settings: bool,

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

    /// How often the settings, certificate and key files are checked for
    /// changes (`off` = never). New settings apply once two checks in a row
    /// read the same content: never a file caught mid-write.
    #[arg(long, default_value = "1s", value_parser = parse_timeout)]
    pub reload_interval: Timeout,

    /// Connections open at once; more are closed as they arrive.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Time for a client to complete the TLS handshake.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub tls_handshake_timeout: Duration,

    /// Time for a request's headers to arrive, from its first byte.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// Time to receive a whole request body.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,

    /// How long a keep-alive connection may wait for its next request.
    #[arg(long, default_value = "90s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Largest request body (an AdmissionReview of an UPDATE carries the
    /// object and oldObject: 2 x the API server's 3 MiB, plus headroom).
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    pub max_body: usize,

    /// After SIGTERM, how long requests in flight may take before the
    /// server exits anyway (keep it under terminationGracePeriodSeconds).
    #[arg(long, default_value = "25s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

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
/// starts the server (stopped by dropping it).
pub fn start(args: &Args) -> anyhow::Result<Server> {
    start_with(args, false)
}

fn start_with(args: &Args, signals: bool) -> anyhow::Result<Server> {
    let wasm = artifact::read_module(&args.policy, &args.live.registry.config()?)?;
    let backend: Box<dyn Backend> = match &args.replay_host_capabilities_interactions {
        Some(session) => Box::new(Replay::from_file(session)?),
        None => Box::new(args.live.live()?),
    };
    let capabilities = args.policy_args.capabilities(&wasm, false, backend)?;
    if args.replay_host_capabilities_interactions.is_none()
        && args.live.notary_cache_dir.is_none()
        && args.live.shared.cache.is_none()
    {
        eprintln!(
            "imagegate serve: Notary trust state is kept in memory only: every restart is a new trust on first use; \
             give --notary-cache-dir (a volume) and/or --cache redis://... to keep it"
        );
    }
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
        limits: Limits {
            max_connections: args.max_connections as usize,
            tls_handshake_timeout: args.tls_handshake_timeout,
            header_read_timeout: args.header_read_timeout,
            idle_timeout: args.idle_timeout,
            shutdown_timeout: args.shutdown_timeout,
        },
        max_body: args.max_body,
        body_timeout: args.body_read_timeout,
        signals,
        runtime: args.policy_args.runtime_config(),
    };
    Server::start(&config, &wasm, capabilities)
}

/// Serves until SIGTERM or SIGINT, then drains and exits 0.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let server = start_with(args, true)?;
    eprintln!(
        "imagegate serve: listening on {} (POST /validate, /mutate, /imagereview; GET /readyz, /healthz, /metrics)",
        server.url()
    );
    if args.allow_empty_settings {
        eprintln!("imagegate serve: --allow-empty-settings: running with {{}}, every image that parses is admitted");
    }
    server.wait();
    eprintln!("imagegate serve: stopped");
    Ok(ExitCode::SUCCESS)
}
