//! How the host reaches OCI registries: one configuration for every verb that
//! talks to one (the `oci/*` capabilities of run, bench and serve, pulling a
//! `registry://` policy, push and pull): plain-HTTP registries, extra CAs and
//! credentials.
//!
//! Credentials are chosen per image, in this order:
//! 1. the first [`ImageCredential`] (in configuration order) whose pattern
//!    matches the image (what Kubewarden users ask for: per-registry /
//!    per-repository pull credentials for verification, policy-server#912);
//! 2. the docker `config.json`, read as docker reads it (`auths`, then the
//!    `credHelpers` / `credsStore` credential helpers) by the
//!    `docker_credential` crate;
//! 3. anonymous.
//!
//! Patterns are the policy's image patterns ([`imagegate_policy::pattern`],
//! same normalization and wildcards as the rules' `images`):
//! `127.0.0.1:5001/**` is every repository of that registry,
//! `ghcr.io/corp/**` every repository under `ghcr.io/corp` (not
//! `ghcr.io/corporate/...`), `nginx` is `docker.io/library/nginx`. A host
//! pattern without port matches only images without port, so a credential is
//! never sent to a registry its author did not name.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use docker_credential::{CredentialRetrievalError, DockerCredential};
use imagegate_policy::pattern::Pattern;
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use sigstore::registry::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};

/// A registry credential; in files `{username, password}` or `{token}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Credential {
    /// HTTP basic auth (also what the registry token endpoint receives).
    Basic { username: String, password: String },
    /// A ready bearer token.
    Bearer { token: String },
}

/// A credential used for every image `pattern` matches (an image pattern of
/// the policy settings, e.g. `ghcr.io/corp/**`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageCredential {
    pub pattern: String,
    pub credential: Credential,
}

/// What the registry flags say (`imagegate <verb> --help`); nothing read yet.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// Registries (`host:port`, exactly as in image references) spoken to
    /// over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Every registry over plain HTTP.
    pub plain_http: bool,
    /// PEM files of extra CA certificates trusted for registry TLS.
    pub ca_certs: Vec<PathBuf>,
    /// Docker `config.json` with per-registry credentials.
    pub docker_config: Option<PathBuf>,
    /// Credentials per image pattern, first match wins; they take
    /// precedence over the docker config.
    pub credentials: Vec<ImageCredential>,
}

impl RegistryConfig {
    /// This configuration with the user's docker config
    /// (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, when it
    /// exists) unless one is given: what `docker`, `kwctl push` and
    /// `kwctl pull` use for the policy artifact itself.
    pub fn with_user_docker_config(mut self) -> RegistryConfig {
        if self.docker_config.is_none() {
            self.docker_config = std::env::var_os("DOCKER_CONFIG")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")))
                .map(|dir| dir.join("config.json"))
                .filter(|path| path.is_file());
        }
        self
    }
}

/// A [`RegistryConfig`] with its files read and its patterns parsed: errors
/// about them show at start-up, naming the file.
#[derive(Debug, Clone)]
pub struct RegistryAccess {
    client_config: ClientConfig,
    /// In configuration order: the first match wins.
    image_credentials: Vec<(Pattern, Credential)>,
    /// The docker config file and its text.
    docker_config: Option<(PathBuf, String)>,
}

impl RegistryAccess {
    pub fn new(config: &RegistryConfig) -> anyhow::Result<RegistryAccess> {
        system_roots_present()?;
        let mut extra_root_certificates = Vec::new();
        for path in &config.ca_certs {
            extra_root_certificates.extend(read_ca_file(path)?);
        }
        let protocol = if config.plain_http {
            ClientProtocol::Http
        } else if config.insecure_registries.is_empty() {
            ClientProtocol::Https
        } else {
            ClientProtocol::HttpsExcept(config.insecure_registries.clone())
        };
        let client_config = ClientConfig {
            protocol,
            extra_root_certificates,
            ..ClientConfig::default()
        };
        let docker_config = config
            .docker_config
            .as_ref()
            .map(|path| read_docker_config(path).map(|text| (path.clone(), text)))
            .transpose()?;
        let image_credentials = config
            .credentials
            .iter()
            .map(|c| {
                let pattern = Pattern::parse(&c.pattern).map_err(|e| {
                    anyhow::anyhow!("credential image pattern {:?}: {e}", c.pattern)
                })?;
                Ok((pattern, c.credential.clone()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(RegistryAccess {
            client_config,
            image_credentials,
            docker_config,
        })
    }

    /// The sigstore client configuration (also converted into oci-client's).
    pub fn client_config(&self) -> &ClientConfig {
        &self.client_config
    }

    /// An oci-client client with this transport configuration.
    pub fn oci_client(&self) -> anyhow::Result<oci_client::Client> {
        oci_client::Client::try_from(oci_client::client::ClientConfig::from(
            self.client_config.clone(),
        ))
        .context("building the registry client")
    }

    /// The credential for `reference`, `None` for anonymous access; `Err`
    /// when the docker config or its credential helper fails.
    pub fn credential_for(&self, reference: &Reference) -> Result<Option<Credential>, String> {
        // An image the policy's stricter grammar rejects matches no pattern.
        let image = imagegate_policy::reference::Reference::parse(&reference.whole()).ok();
        let by_pattern = self
            .image_credentials
            .iter()
            .find(|(pattern, _)| image.as_ref().is_some_and(|i| pattern.is_match(i)));
        if let Some((_, credential)) = by_pattern {
            return Ok(Some(credential.clone()));
        }
        let Some((path, text)) = &self.docker_config else {
            return Ok(None);
        };
        let registry = reference.resolve_registry();
        match docker_credential::get_credential_from_reader(text.as_bytes(), registry) {
            Ok(DockerCredential::UsernamePassword(username, password)) => {
                Ok(Some(Credential::Basic { username, password }))
            }
            Ok(DockerCredential::IdentityToken(_)) => {
                eprintln!(
                    "warning: docker config {}: identity tokens are not supported, accessing {registry} anonymously",
                    path.display()
                );
                Ok(None)
            }
            Err(CredentialRetrievalError::NoCredentialConfigured) => Ok(None),
            Err(e) => Err(format!(
                "docker config {}: no usable credentials for {registry}: {}",
                path.display(),
                e.to_string().trim_end()
            )),
        }
    }
}

/// oci-client builds a default HTTP client besides the configured one
/// (`..Default::default()` in its `TryFrom<ClientConfig>`), and that one
/// panics when the system has no CA certificates, even with `--registry-ca`
/// or plain HTTP. Building the same default client here turns the panic into
/// an error that says what to do.
fn system_roots_present() -> anyhow::Result<()> {
    reqwest::Client::builder().build().map(drop).context(
        "no usable system CA certificates: install a CA bundle (Debian: ca-certificates) or set \
         SSL_CERT_FILE to one; the registry client needs them even with --registry-ca or plain \
         HTTP (imagegate's container image ships /etc/ssl/certs/ca-certificates.crt)",
    )
}

/// The oci-client form of an optional credential.
pub fn registry_auth(credential: Option<&Credential>) -> RegistryAuth {
    match credential {
        None => RegistryAuth::Anonymous,
        Some(Credential::Basic { username, password }) => {
            RegistryAuth::Basic(username.clone(), password.clone())
        }
        Some(Credential::Bearer { token }) => RegistryAuth::Bearer(token.clone()),
    }
}

/// Every certificate of a PEM file, as DER for the TLS client.
fn read_ca_file(path: &Path) -> anyhow::Result<Vec<Certificate>> {
    let pem = std::fs::read(path).with_context(|| format!("reading CA file {}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing PEM certificates in CA file {}", path.display()))?;
    if certs.is_empty() {
        bail!(
            "CA file {} contains no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(certs
        .into_iter()
        .map(|c| Certificate {
            encoding: CertificateEncoding::Der,
            data: c.to_vec(),
        })
        .collect())
}

/// The text of a docker config, checked to be a JSON object.
fn read_docker_config(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading docker config {}", path.display()))?;
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text)
        .with_context(|| format!("parsing docker config {}", path.display()))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn reference(s: &str) -> Reference {
        s.parse().unwrap()
    }

    fn basic(u: &str) -> Credential {
        Credential::Basic {
            username: u.into(),
            password: "p".into(),
        }
    }

    fn access_with(docker_config: &str, credentials: Vec<ImageCredential>) -> RegistryAccess {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, docker_config).unwrap();
        RegistryAccess::new(&RegistryConfig {
            docker_config: Some(path),
            credentials,
            ..RegistryConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn first_matching_image_credential_wins_then_docker_config() {
        let auth = base64::engine::general_purpose::STANDARD.encode("docker:pw");
        let access = access_with(
            &format!(
                r#"{{"auths":{{"ghcr.io":{{"auth":"{auth}"}},"https://index.docker.io/v1/":{{"username":"hub","password":"x"}},"quay.io":{{}}}}}}"#
            ),
            vec![
                ImageCredential {
                    pattern: "ghcr.io/team-a/**".into(),
                    credential: basic("team-a"),
                },
                ImageCredential {
                    pattern: "quay.io/**".into(),
                    credential: Credential::Bearer { token: "t".into() },
                },
                ImageCredential {
                    pattern: "127.0.0.1:5001/**".into(),
                    credential: basic("local"),
                },
            ],
        );
        let who = |i: &str| match access.credential_for(&reference(i)).unwrap() {
            Some(Credential::Basic { username, .. }) => username,
            Some(Credential::Bearer { token }) => token,
            None => "anonymous".into(),
        };
        assert_eq!(who("ghcr.io/team-a/app:1"), "team-a");
        assert_eq!(who("ghcr.io/team-b/app:1"), "docker");
        assert_eq!(who("ghcr.io/team-a-evil/app:1"), "docker");
        assert_eq!(who("quay.io/x/y"), "t");
        assert_eq!(who("127.0.0.1:5001/a/b@sha256:0000000000000000000000000000000000000000000000000000000000000000"), "local");
        assert_eq!(who("nginx"), "hub");
        assert_eq!(who("127.0.0.1:5000/x"), "anonymous");
        assert_eq!(who("ghcr.io:5000/team-a/app"), "anonymous");
    }

    #[test]
    fn credential_helpers_are_asked_and_their_failures_reported() {
        // `credsStore` names docker-credential-<name>; a helper that is not
        // installed is an error naming the config, never a silent anonymous.
        let access = access_with(
            r#"{"auths":{"quay.io":{}},"credsStore":"imagegate-test-missing"}"#,
            vec![],
        );
        let e = access
            .credential_for(&reference("127.0.0.1:5000/x"))
            .unwrap_err();
        assert!(
            e.contains("config.json") && e.contains("127.0.0.1:5000"),
            "{e}"
        );
        let access = access_with(
            r#"{"credHelpers":{"ghcr.io":"imagegate-test-missing"}}"#,
            vec![],
        );
        assert!(access.credential_for(&reference("ghcr.io/x/y")).is_err());
        assert_eq!(access.credential_for(&reference("quay.io/x/y")), Ok(None));
    }

    #[test]
    fn bad_auth_fields_are_errors() {
        let access = access_with(r#"{"auths":{"ghcr.io":{"auth":"%%%"}}}"#, vec![]);
        let e = access
            .credential_for(&reference("ghcr.io/x/y"))
            .unwrap_err();
        assert!(e.contains("ghcr.io"), "{e}");
    }

    #[test]
    fn invalid_credential_patterns_are_configuration_errors() {
        let e = RegistryAccess::new(&RegistryConfig {
            credentials: vec![ImageCredential {
                pattern: "ghcr.*/x".into(),
                credential: basic("u"),
            }],
            ..RegistryConfig::default()
        })
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("credential image pattern \"ghcr.*/x\""),
            "{e:#}"
        );
    }

    #[test]
    fn bad_files_are_reported_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let config = |ca: Option<&Path>, docker: Option<&Path>| RegistryConfig {
            ca_certs: ca.into_iter().map(Path::to_path_buf).collect(),
            docker_config: docker.map(Path::to_path_buf),
            ..RegistryConfig::default()
        };
        let e = RegistryAccess::new(&config(Some(&not_pem), None)).unwrap_err();
        assert!(format!("{e:#}").contains("ca.pem"), "{e:#}");
        let missing = dir.path().join("missing.json");
        let e = RegistryAccess::new(&config(None, Some(&missing))).unwrap_err();
        assert!(format!("{e:#}").contains("missing.json"), "{e:#}");
        let e = RegistryAccess::new(&config(None, Some(&not_pem))).unwrap_err();
        assert!(format!("{e:#}").contains("parsing docker config"), "{e:#}");
    }

    #[test]
    fn the_user_docker_config_is_only_a_default() {
        let given = RegistryConfig {
            docker_config: Some(PathBuf::from("given.json")),
            ..RegistryConfig::default()
        };
        assert_eq!(
            given.with_user_docker_config().docker_config,
            Some(PathBuf::from("given.json"))
        );
    }
}
