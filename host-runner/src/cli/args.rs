//! The flags the verbs share, with their parsers: the policy module and its
//! limits ([`PolicyArgs`]), registry access ([`RegistryArgs`], every verb
//! that talks to a registry), the live capability backend ([`LiveArgs`]) and
//! the inputs of one evaluation ([`EvalArgs`], `run` and `bench`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::{Map, Value};

use crate::capabilities::cache::DEFAULT_TTL;
use crate::capabilities::live::{Live, LiveConfig};
use crate::capabilities::notary::NotaryConfig;
use crate::capabilities::oci::OciConfig;
use crate::capabilities::{Backend, Capabilities, CapabilityAllowList};
use crate::packaging::{artifact, metadata};
use crate::registry::{ImageCredential, RegistryConfig};
use crate::runtime::admission::{self, AdmissionRequest};
use crate::runtime::session::{Record, Replay};
use crate::runtime::{Policy, RuntimeConfig, DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT};

/// Policy, limits and capability gates: `run`, `bench`, `test`, `serve`.
#[derive(Args, Debug, Clone)]
pub struct PolicyArgs {
    /// Allow `kubernetes/*` reads of the resources listed in the metadata's
    /// `contextAwareResources`.
    #[arg(long)]
    pub allow_context_aware: bool,

    /// metadata.yml to take `contextAwareResources` from (default: the
    /// module's embedded metadata).
    #[arg(long, value_name = "FILE")]
    pub metadata: Option<PathBuf>,

    /// Capability patterns (`*`, `oci/*`, `oci/v2/*`, exact paths). Default
    /// `*`; the flag without values denies everything.
    #[arg(long, num_args = 0.., value_delimiter = ',', value_name = "PATTERN")]
    pub allowed_host_capabilities: Option<Vec<String>>,

    /// Evaluation deadline (`2s`, `500ms`, `off`), as policy-server's timeout.
    #[arg(long, default_value = "2s", value_parser = parse_timeout)]
    pub timeout: Timeout,

    /// Cap on the guest's memory (`512MiB`, `64M`, bytes).
    #[arg(long, default_value = "512MiB", value_parser = parse_size)]
    pub memory_limit: usize,

    /// Do not use wasmtime's on-disk compilation cache.
    #[arg(long)]
    pub disable_wasmtime_cache: bool,
}

/// A parsed `--timeout` (`None` = no deadline).
#[derive(Debug, Clone, Copy)]
pub struct Timeout(pub Option<Duration>);

impl PolicyArgs {
    pub fn runtime_config(&self) -> RuntimeConfig {
        RuntimeConfig {
            timeout: self.timeout.0,
            memory_limit: self.memory_limit,
            compilation_cache: !self.disable_wasmtime_cache,
            count_instructions: false,
        }
    }

    pub fn allow_list(&self) -> anyhow::Result<CapabilityAllowList> {
        match &self.allowed_host_capabilities {
            None => Ok(CapabilityAllowList::allow_all()),
            Some(patterns) if patterns.is_empty() => Ok(CapabilityAllowList::deny_all()),
            Some(patterns) => CapabilityAllowList::new(patterns),
        }
    }

    /// The capability dispatcher for `backend`, with this policy's gates.
    pub fn capabilities(
        &self,
        wasm: &[u8],
        force_context_aware: bool,
        backend: Box<dyn Backend>,
    ) -> anyhow::Result<Arc<Capabilities>> {
        let context_aware = if self.allow_context_aware || force_context_aware {
            Some(metadata::context_aware_resources(
                wasm,
                self.metadata.as_deref(),
            )?)
        } else {
            None
        };
        Ok(Arc::new(Capabilities::new(
            self.allow_list()?,
            context_aware,
            backend,
        )))
    }
}

impl Default for PolicyArgs {
    fn default() -> Self {
        PolicyArgs {
            allow_context_aware: false,
            metadata: None,
            allowed_host_capabilities: None,
            timeout: Timeout(Some(DEFAULT_TIMEOUT)),
            memory_limit: DEFAULT_MEMORY_LIMIT,
            disable_wasmtime_cache: false,
        }
    }
}

/// How to reach registries: the same flags in every verb that talks to one
/// (run, test, bench, serve, push, pull).
#[derive(Args, Debug, Clone, Default)]
pub struct RegistryArgs {
    /// Extra CA certificates (PEM) trusted for registry TLS; repeatable.
    #[arg(long = "registry-ca", alias = "ca-cert", value_name = "FILE")]
    pub registry_ca: Vec<PathBuf>,

    /// Registry (`host:port` as in image references) reached over plain HTTP;
    /// repeatable or comma separated.
    #[arg(
        long = "insecure-registry",
        value_delimiter = ',',
        value_name = "HOST:PORT"
    )]
    pub insecure_registry: Vec<String>,

    /// Reach every registry over plain HTTP.
    #[arg(long, alias = "insecure")]
    pub plain_http: bool,

    /// Docker config.json with registry credentials (`auths`, `credsStore`,
    /// `credHelpers`). push, pull and `registry://` policies default to
    /// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`; host
    /// capabilities use only this file.
    #[arg(long, value_name = "FILE")]
    pub docker_config: Option<PathBuf>,

    /// YAML list of per-image credentials, first match wins, before the
    /// docker config: `- {pattern: "ghcr.io/corp/**", credential: {username:
    /// u, password: p}}` (or `credential: {token: t}` for a bearer token).
    #[arg(long, value_name = "FILE")]
    pub registry_credentials: Option<PathBuf>,
}

impl RegistryArgs {
    /// The configuration these flags describe (reads the credentials file).
    pub fn config(&self) -> anyhow::Result<RegistryConfig> {
        let credentials = match &self.registry_credentials {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading registry credentials {}", path.display()))?;
                serde_yaml_ng::from_str::<Vec<ImageCredential>>(&text)
                    .with_context(|| format!("parsing registry credentials {}", path.display()))?
            }
            None => Vec::new(),
        };
        Ok(RegistryConfig {
            insecure_registries: self.insecure_registry.clone(),
            plain_http: self.plain_http,
            ca_certs: self.registry_ca.clone(),
            docker_config: self.docker_config.clone(),
            credentials,
        })
    }
}

/// The live capability backend (registries, Notary, DNS, Kubernetes from a
/// directory): `run`, `bench` and `serve` build it from these flags.
#[derive(Args, Debug, Clone, Default)]
pub struct LiveArgs {
    /// Directory of Kubernetes manifests answering `kubernetes/*`.
    #[arg(long, value_name = "DIR")]
    pub context: Option<PathBuf>,

    /// Directory keeping Notary roots trusted on first use and the last seen
    /// metadata versions per GUN (default: in memory, lost on exit).
    #[arg(long, value_name = "DIR")]
    pub notary_cache_dir: Option<PathBuf>,

    /// Sigstore ClientTrustConfig / trusted_root.json (Fulcio CAs, Rekor keys)
    /// for keyless verification and Rekor bundles, read offline.
    #[arg(long, value_name = "FILE")]
    pub sigstore_trust_config: Option<PathBuf>,

    /// Do not cache successful registry/notary answers (default TTL 60 s).
    #[arg(long)]
    pub disable_cache: bool,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl LiveArgs {
    /// The live backend these flags describe; every file they name is read
    /// now, so a bad one is an error at start-up.
    pub fn live(&self) -> anyhow::Result<Live> {
        Live::new(LiveConfig {
            oci: OciConfig {
                registry: self.registry.config()?,
                sigstore_trust_config: self.sigstore_trust_config.clone(),
            },
            notary: NotaryConfig {
                cache_dir: self.notary_cache_dir.clone(),
                ..NotaryConfig::default()
            },
            context_dir: self.context.clone(),
            cache_ttl: (!self.disable_cache).then_some(DEFAULT_TTL),
        })
    }
}

/// Inputs of one evaluation: `run` and `bench`.
#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// The policy module: a .wasm file, or registry://host/repository:tag
    /// (or @sha256:...) to pull it as policy-server does.
    #[arg(value_name = "POLICY", required_unless_present = "policy")]
    pub policy_path: Option<PathBuf>,

    #[arg(long = "policy", value_name = "POLICY", conflicts_with = "policy_path")]
    pub policy: Option<PathBuf>,

    /// AdmissionRequest or AdmissionReview (JSON or YAML); `-` = stdin.
    #[arg(short = 'r', long, alias = "request")]
    pub request_path: PathBuf,

    /// Settings file (YAML or JSON; a map or null).
    #[arg(
        short = 's',
        long,
        alias = "settings",
        conflicts_with = "settings_json"
    )]
    pub settings_path: Option<PathBuf>,

    /// Settings as inline JSON.
    #[arg(long)]
    pub settings_json: Option<String>,

    /// Record host-capability exchanges to FILE (kwctl format).
    #[arg(
        long,
        alias = "record",
        value_name = "FILE",
        conflicts_with = "replay_host_capabilities_interactions"
    )]
    pub record_host_capabilities_interactions: Option<PathBuf>,

    /// Answer host capabilities from a recorded session FILE.
    #[arg(long, alias = "replay", value_name = "FILE")]
    pub replay_host_capabilities_interactions: Option<PathBuf>,

    #[command(flatten)]
    pub policy_args: PolicyArgs,

    #[command(flatten)]
    pub live: LiveArgs,
}

/// Everything one evaluation needs, loaded and checked.
pub struct Evaluation {
    pub policy: Policy,
    pub capabilities: Arc<Capabilities>,
    pub request: AdmissionRequest,
    pub settings: Map<String, Value>,
}

impl EvalArgs {
    pub fn policy_file(&self) -> anyhow::Result<&Path> {
        self.policy
            .as_deref()
            .or(self.policy_path.as_deref())
            .context("no policy module given")
    }

    pub fn settings(&self) -> anyhow::Result<Map<String, Value>> {
        match (&self.settings_path, &self.settings_json) {
            (Some(path), _) => admission::read_settings(path),
            (None, Some(json)) => admission::parse_settings(json).context("in --settings-json"),
            (None, None) => Ok(Map::new()),
        }
    }

    /// Replay, or the live backend (recorded when asked).
    pub fn backend(&self) -> anyhow::Result<Box<dyn Backend>> {
        Ok(
            match (
                &self.replay_host_capabilities_interactions,
                &self.record_host_capabilities_interactions,
            ) {
                (Some(_), Some(_)) => bail!("--record and --replay cannot be used together"),
                (Some(replay), None) => Box::new(Replay::from_file(replay)?),
                (None, Some(record)) => {
                    Box::new(Record::new(Box::new(self.live.live()?), record.clone()))
                }
                (None, None) => Box::new(self.live.live()?),
            },
        )
    }

    /// Reads the module (pulling a `registry://` one), the request and the
    /// settings, and builds the capabilities and the compiled policy.
    pub fn load(&self) -> anyhow::Result<Evaluation> {
        let policy_file = self.policy_file()?;
        let wasm = artifact::read_module(policy_file, &self.live.registry.config()?)?;
        let request = admission::read_request(&self.request_path)?;
        let settings = self.settings()?;
        let capabilities = self
            .policy_args
            .capabilities(&wasm, false, self.backend()?)?;
        let policy = Policy::new(
            &wasm,
            self.policy_args.runtime_config(),
            capabilities.clone(),
        )
        .with_context(|| format!("cannot load policy module {}", policy_file.display()))?;
        Ok(Evaluation {
            policy,
            capabilities,
            request,
            settings,
        })
    }
}

pub fn parse_timeout(s: &str) -> Result<Timeout, String> {
    let s = s.trim();
    if matches!(s, "off" | "none" | "0") {
        return Ok(Timeout(None));
    }
    let (number, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration '{s}' (examples: 2s, 500ms, off)"))?;
    let secs = match unit {
        "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        _ => return Err(format!("invalid duration unit in '{s}' (s, ms or m)")),
    };
    Duration::try_from_secs_f64(secs)
        .map(|d| Timeout(Some(d)))
        .map_err(|e| format!("invalid duration '{s}': {e}"))
}

fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let n: usize = s[..split]
        .trim()
        .parse()
        .map_err(|_| format!("invalid size '{s}' (examples: 512MiB, 64M, 1048576)"))?;
    let mult: usize = match s[split..].trim() {
        "" | "B" => 1,
        "K" | "KB" | "Ki" | "KiB" => 1 << 10,
        "M" | "MB" | "Mi" | "MiB" => 1 << 20,
        "G" | "GB" | "Gi" | "GiB" => 1 << 30,
        other => return Err(format!("invalid size unit '{other}'")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size '{s}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Credential;
    use clap::Parser;

    #[test]
    fn durations() {
        assert_eq!(parse_timeout("2s").unwrap().0, Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout("3").unwrap().0, Some(Duration::from_secs(3)));
        assert_eq!(
            parse_timeout("250ms").unwrap().0,
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_timeout("off").unwrap().0, None);
        assert!(parse_timeout("2h").is_err());
        assert!(parse_timeout("x").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("1Gi").unwrap(), 1 << 30);
        assert!(parse_size("1TB").is_err());
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        live: LiveArgs,
    }

    #[test]
    fn registry_flags_and_credentials_file_make_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("creds.yaml");
        std::fs::write(
            &file,
            "- pattern: ghcr.io/corp/**\n  credential: {username: u, password: p}\n\
             - pattern: quay.io/**\n  credential: {token: t}\n",
        )
        .unwrap();
        let cli = Cli::parse_from([
            "x",
            "--insecure-registry",
            "127.0.0.1:5000,127.0.0.1:5001",
            "--registry-ca",
            "a.pem",
            "--ca-cert",
            "b.pem",
            "--registry-credentials",
            file.to_str().unwrap(),
            "--sigstore-trust-config",
            "trust.json",
        ]);
        let config = cli.live.registry.config().unwrap();
        assert_eq!(
            config.insecure_registries,
            ["127.0.0.1:5000", "127.0.0.1:5001"]
        );
        assert!(!config.plain_http);
        assert_eq!(
            config.ca_certs,
            [PathBuf::from("a.pem"), PathBuf::from("b.pem")]
        );
        assert_eq!(
            cli.live.sigstore_trust_config,
            Some(PathBuf::from("trust.json"))
        );
        assert_eq!(
            config.credentials[1].credential,
            Credential::Bearer { token: "t".into() }
        );
        assert_eq!(config.credentials[0].pattern, "ghcr.io/corp/**");
        assert!(
            Cli::parse_from(["x", "--insecure"])
                .live
                .registry
                .config()
                .unwrap()
                .plain_http
        );

        std::fs::write(&file, "- pattern: x\n  credential: {username: u}\n").unwrap();
        let e = cli.live.registry.config().unwrap_err();
        assert!(format!("{e:#}").contains("creds.yaml"), "{e:#}");
    }
}
