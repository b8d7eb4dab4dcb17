//! Registry access and the live capability backend, from the flags every
//! verb that talks to a registry shares (cargo feature `live`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;

use crate::capabilities::cache::DEFAULT_TTL;
use crate::capabilities::live::{Live, LiveConfig};
use crate::capabilities::notary::NotaryConfig;
use crate::capabilities::oci::OciConfig;
use crate::capabilities::Backend;
use crate::packaging::artifact;
use crate::registry::{ImageCredential, RegistryAccess, RegistryConfig};

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
    /// The policy module at `path`: a file, or `registry://...` pulled with
    /// these flags.
    pub fn read_module(&self, path: &Path) -> anyhow::Result<Vec<u8>> {
        artifact::read_module(path, &self.config()?)
    }

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

/// How `push` and `image` print what they pushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Where `push` and `image` publish, and how they say where it went.
#[derive(Args, Debug, Clone)]
pub struct PublishArgs {
    /// Destination: registry://host[:port]/repository:tag
    pub destination: String,
    #[arg(short, long, value_enum, default_value = "text")]
    pub output: Output,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl PublishArgs {
    /// Registry access with the user's docker config (as `docker push`).
    pub fn access(&self) -> anyhow::Result<RegistryAccess> {
        RegistryAccess::new(&self.registry.config()?.with_user_docker_config())
    }

    /// The pushed reference: `host/repo@sha256:...`, or `{"immutable_ref": ...}`.
    pub fn print(&self, immutable: &str) {
        match self.output {
            Output::Text => println!("{immutable}"),
            Output::Json => println!("{}", serde_json::json!({ "immutable_ref": immutable })),
        }
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
    /// [`LiveArgs::live`], as a capability backend.
    pub fn backend(&self) -> anyhow::Result<Box<dyn Backend>> {
        Ok(Box::new(self.live()?))
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Credential;
    use clap::Parser;

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
