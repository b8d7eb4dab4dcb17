//! Registry access and the live capability backend, from the flags every
//! verb that talks to a registry shares.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;

use super::{parse_duration, parse_timeout, Timeout};

use crate::capabilities::cache::CacheConfig;
use crate::capabilities::live::{Live, LiveConfig};
use crate::capabilities::notary::NotaryConfig;
use crate::capabilities::oci::OciConfig;
use crate::capabilities::shared::redis::RedisConfig;
use crate::capabilities::shared::SharedConfig;
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
/// Where replicas share verification answers and Notary trust state: the
/// Redis server and the key authenticating its entries (serve's flags, and
/// scaffold's for the Deployment it writes).
#[derive(Args, Debug, Clone, Default)]
pub struct SharedCacheArgs {
    /// Share verification answers and Notary trust state between replicas
    /// through Redis: `redis://[user:password@]host:port/db`, `rediss://` for
    /// TLS. Default: this process only. Needs --cache-hmac-key-file.
    #[arg(long, value_name = "URL", requires = "cache_hmac_key_file")]
    pub cache: Option<String>,

    /// Key authenticating every shared entry (HMAC-SHA256; at least 32
    /// bytes, e.g. a Secret of `head -c 32 /dev/urandom | base64`). The same
    /// file on every replica.
    #[arg(long, value_name = "FILE", requires = "cache")]
    pub cache_hmac_key_file: Option<PathBuf>,

    /// Redis password from a file (instead of the URL).
    #[arg(long, value_name = "FILE", requires = "cache")]
    pub cache_password_file: Option<PathBuf>,

    /// CA certificates (PEM) trusted for `rediss://` (default: public roots).
    #[arg(long, value_name = "FILE", requires = "cache")]
    pub cache_ca: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
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

    /// Do not cache registry and Notary answers at all (not even a tag's
    /// digest).
    #[arg(long, conflicts_with = "cache")]
    pub disable_cache: bool,

    #[command(flatten)]
    pub shared: SharedCacheArgs,

    /// Longest wait for one Redis exchange; slower is a miss and a live check.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub cache_timeout: Duration,

    /// How long successful verifications and registry answers are kept.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub cache_ttl: Duration,

    /// How long definite refusals (no or non-matching signature, trust data
    /// that does not verify) are kept; transport errors never are.
    #[arg(long, default_value = "off", value_parser = parse_timeout)]
    pub negative_cache_ttl: Timeout,

    /// How long a tag's resolved digest is reused before a cached
    /// verification is trusted again (`off` = one manifest HEAD each time).
    #[arg(long, default_value = "5s", value_parser = parse_timeout)]
    pub digest_cache_ttl: Timeout,

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
            cache: self.cache_config()?,
        })
    }

    /// The capability cache these flags describe (`None`: disabled); reads
    /// the key and password files.
    fn cache_config(&self) -> anyhow::Result<Option<CacheConfig>> {
        if self.disable_cache {
            return Ok(None);
        }
        let shared = match (&self.shared.cache, &self.shared.cache_hmac_key_file) {
            (Some(url), Some(key)) => {
                let mut redis = RedisConfig::parse(url)?;
                if let Some(path) = &self.shared.cache_password_file {
                    let password = std::fs::read_to_string(path).with_context(|| {
                        format!("cannot read Redis password file {}", path.display())
                    })?;
                    redis.password = Some(password.trim_end_matches(['\r', '\n']).to_string());
                }
                redis.ca = self.shared.cache_ca.clone();
                Some(SharedConfig {
                    redis,
                    hmac_key: SharedConfig::read_key(key)?,
                    timeout: self.cache_timeout,
                })
            }
            (None, None) => None,
            _ => bail!("--cache and --cache-hmac-key-file go together"),
        };
        Ok(Some(CacheConfig {
            ttl: self.cache_ttl,
            negative_ttl: self.negative_cache_ttl.0,
            digest_ttl: self.digest_cache_ttl.0,
            shared,
        }))
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
