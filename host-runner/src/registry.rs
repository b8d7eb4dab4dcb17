//! Registry access shared by every `oci/*` capability: reference parsing,
//! transport settings (plain http, extra CAs), credential selection and the
//! error texts that name the image and the cause.
//!
//! Credentials are chosen per image, in this order:
//! 1. the first [`ImageCredential`] (in configuration order) whose pattern
//!    matches the image (what Kubewarden users ask for: per-registry /
//!    per-repository pull credentials for verification, policy-server#912);
//! 2. the `auths` entry of the docker `config.json` for the image's registry;
//! 3. anonymous.
//!
//! Patterns are the policy's image patterns ([`imagegate_policy::pattern`],
//! same normalization and wildcards as the rules' `images`):
//! `127.0.0.1:5001/**` is every repository of that registry,
//! `ghcr.io/corp/**` every repository under `ghcr.io/corp` (not
//! `ghcr.io/corporate/...`), `nginx` is `docker.io/library/nginx`. A host
//! pattern without port matches only images without port, so a credential is
//! never sent to a registry its author did not name.

use anyhow::{bail, Context};
use base64::Engine as _;
use imagegate_policy::pattern::Pattern;
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use sigstore::registry::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use std::collections::BTreeMap;
use std::path::Path;

/// A registry credential; in files `{username, password}` or `{token}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Credential {
    /// HTTP basic auth (also what the registry token endpoint receives).
    Basic { username: String, password: String },
    /// A ready bearer token.
    Bearer { token: String },
}

impl Credential {
    fn registry_auth(&self) -> RegistryAuth {
        match self {
            Credential::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            Credential::Bearer { token } => RegistryAuth::Bearer(token.clone()),
        }
    }
}

/// A credential used for every image `pattern` matches (an image pattern of
/// the policy settings, e.g. `ghcr.io/corp/**`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageCredential {
    pub pattern: String,
    pub credential: Credential,
}

/// A parsed image reference with the form used in messages.
#[derive(Debug, Clone)]
pub(crate) struct Image {
    pub reference: Reference,
    /// Normalized `registry/repository[:tag][@digest]`.
    pub name: String,
}

impl Image {
    /// Parses `image`, expanding short names like docker
    /// (`busybox` -> `docker.io/library/busybox:latest`).
    pub fn parse(image: &str) -> Result<Image, String> {
        let reference: Reference = image
            .parse()
            .map_err(|e| format!("Cannot parse image reference {image:?}: {e}"))?;
        let name = reference.whole();
        Ok(Image { reference, name })
    }

    /// `registry/repository`, for messages.
    pub fn repository_name(&self) -> String {
        format!(
            "{}/{}",
            self.reference.registry(),
            self.reference.repository()
        )
    }
}

/// Transport and credential settings, resolved once at start-up.
#[derive(Debug, Clone)]
pub(crate) struct RegistryAccess {
    client_config: ClientConfig,
    /// In configuration order: the first match wins.
    image_credentials: Vec<(Pattern, Credential)>,
    /// Normalized registry host -> credential, from docker `config.json`.
    docker_credentials: BTreeMap<String, Credential>,
}

impl RegistryAccess {
    pub fn new(
        insecure_registries: &[String],
        ca_certs: &[std::path::PathBuf],
        docker_config: Option<&Path>,
        image_credentials: &[ImageCredential],
    ) -> anyhow::Result<RegistryAccess> {
        let mut extra_root_certificates = Vec::new();
        for path in ca_certs {
            extra_root_certificates.extend(read_ca_file(path)?);
        }
        let protocol = if insecure_registries.is_empty() {
            ClientProtocol::Https
        } else {
            ClientProtocol::HttpsExcept(insecure_registries.to_vec())
        };
        let client_config = ClientConfig {
            protocol,
            extra_root_certificates,
            ..ClientConfig::default()
        };
        let docker_credentials = match docker_config {
            Some(path) => read_docker_config(path)?,
            None => BTreeMap::new(),
        };
        let image_credentials = image_credentials
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
            docker_credentials,
        })
    }

    /// The sigstore client configuration (also converted into oci-client's).
    pub fn client_config(&self) -> &ClientConfig {
        &self.client_config
    }

    /// The credential for `image`, `None` for anonymous access.
    pub fn credential_for(&self, image: &Image) -> Option<&Credential> {
        // An image the policy's stricter grammar rejects matches no pattern.
        let reference = imagegate_policy::reference::Reference::parse(&image.name).ok();
        self.image_credentials
            .iter()
            .find(|(pattern, _)| reference.as_ref().is_some_and(|r| pattern.is_match(r)))
            .map(|(_, c)| c)
            .or_else(|| {
                self.docker_credentials
                    .get(&normalize_registry(image.reference.registry()))
            })
    }
}

/// The oci-client form of an optional credential.
pub(crate) fn registry_auth(credential: Option<&Credential>) -> RegistryAuth {
    credential.map_or(RegistryAuth::Anonymous, Credential::registry_auth)
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

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    registrytoken: Option<String>,
}

/// Reads the `auths` of a docker `config.json`. Credential helpers
/// (`credsStore`, `credHelpers`) and `identitytoken` (an OAuth refresh token)
/// are not supported: such registries are accessed anonymously.
fn read_docker_config(path: &Path) -> anyhow::Result<BTreeMap<String, Credential>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading docker config {}", path.display()))?;
    let config: DockerConfig = serde_json::from_str(&text)
        .with_context(|| format!("parsing docker config {}", path.display()))?;
    let mut out = BTreeMap::new();
    for (registry, entry) in config.auths {
        let credential = docker_auth_credential(&entry).with_context(|| {
            format!("docker config {}: entry auths.{registry:?}", path.display())
        })?;
        if let Some(credential) = credential {
            out.insert(normalize_registry(&registry), credential);
        }
    }
    Ok(out)
}

fn docker_auth_credential(entry: &DockerAuth) -> anyhow::Result<Option<Credential>> {
    if let Some(token) = &entry.registrytoken {
        return Ok(Some(Credential::Bearer {
            token: token.clone(),
        }));
    }
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .context("`auth` is not base64")?;
        let decoded = String::from_utf8(decoded).context("`auth` is not UTF-8")?;
        let Some((username, password)) = decoded.split_once(':') else {
            bail!("`auth` does not decode to user:password");
        };
        return Ok(Some(Credential::Basic {
            username: username.to_string(),
            password: password.to_string(),
        }));
    }
    match (&entry.username, &entry.password) {
        (Some(username), Some(password)) => Ok(Some(Credential::Basic {
            username: username.clone(),
            password: password.clone(),
        })),
        _ => Ok(None),
    }
}

/// `https://index.docker.io/v1/` -> `docker.io`, `127.0.0.1:5001` unchanged.
fn normalize_registry(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        _ => host,
    }
}

/// `error: cause: cause...` over the whole source chain, skipping repeats
/// (transparent wrappers repeat their inner message), so the root cause
/// (connection refused, unknown CA, 401) is always visible.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

/// A hint appended to registry errors that are about authentication.
pub(crate) fn auth_hint(cause: &str, credential: Option<&Credential>, image: &Image) -> String {
    let unauthorized = cause.contains("Not authorized")
        || cause.contains("401")
        || cause.contains("UNAUTHORIZED")
        || cause.contains("Authentication failure");
    match (unauthorized, credential) {
        (false, _) => String::new(),
        (true, None) => format!(
            " (no credentials configured for {}: use a docker config or an image credential)",
            image.reference.registry()
        ),
        (true, Some(_)) => format!(
            " (the credentials configured for {} were rejected)",
            image.repository_name()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(s: &str) -> Image {
        Image::parse(s).unwrap()
    }

    fn basic(u: &str) -> Credential {
        Credential::Basic {
            username: u.into(),
            password: "p".into(),
        }
    }

    #[test]
    fn short_names_expand_like_docker() {
        assert_eq!(image("busybox").name, "docker.io/library/busybox:latest");
        assert_eq!(
            image("127.0.0.1:5000/demo/app:1.0").repository_name(),
            "127.0.0.1:5000/demo/app"
        );
        assert!(Image::parse("in valid:1")
            .unwrap_err()
            .contains("\"in valid:1\""));
    }

    #[test]
    fn first_matching_image_credential_wins_then_docker_config() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("docker:pw");
        std::fs::write(
            &config,
            format!(
                r#"{{"auths":{{"ghcr.io":{{"auth":"{auth}"}},"https://index.docker.io/v1/":{{"username":"hub","password":"x"}},"quay.io":{{}}}},"credsStore":"desktop"}}"#
            ),
        )
        .unwrap();
        let access = RegistryAccess::new(
            &[],
            &[],
            Some(&config),
            &[
                ImageCredential {
                    pattern: "ghcr.io/team-a/**".into(),
                    credential: basic("team-a"),
                },
                ImageCredential {
                    pattern: "ghcr.io/**".into(),
                    credential: basic("registry-wide"),
                },
                ImageCredential {
                    pattern: "127.0.0.1:5001/**".into(),
                    credential: basic("local"),
                },
            ],
        )
        .unwrap();
        let who = |i: &str| match access.credential_for(&image(i)) {
            Some(Credential::Basic { username, .. }) => username.clone(),
            Some(Credential::Bearer { token }) => token.clone(),
            None => "anonymous".into(),
        };
        assert_eq!(who("ghcr.io/team-a/app:1"), "team-a");
        assert_eq!(who("ghcr.io/team-b/app:1"), "registry-wide");
        assert_eq!(who("ghcr.io/team-a-evil/app:1"), "registry-wide");
        assert_eq!(who("127.0.0.1:5001/a/b@sha256:0000000000000000000000000000000000000000000000000000000000000000"), "local");
        assert_eq!(who("nginx"), "hub");
        assert_eq!(who("quay.io/x/y"), "anonymous");
        assert_eq!(who("127.0.0.1:5000/x"), "anonymous");
        assert_eq!(who("ghcr.io:5000/team-a/app"), "anonymous");
    }

    #[test]
    fn docker_config_auth_field_decodes_user_and_password() {
        let entry = DockerAuth {
            auth: Some(base64::engine::general_purpose::STANDARD.encode("u:p:with:colons")),
            username: None,
            password: None,
            registrytoken: None,
        };
        assert_eq!(
            docker_auth_credential(&entry).unwrap(),
            Some(Credential::Basic {
                username: "u".into(),
                password: "p:with:colons".into()
            })
        );
        let bad = DockerAuth {
            auth: Some("%%%".into()),
            username: None,
            password: None,
            registrytoken: None,
        };
        assert!(docker_auth_credential(&bad).is_err());
    }

    #[test]
    fn invalid_credential_patterns_are_configuration_errors() {
        let e = RegistryAccess::new(
            &[],
            &[],
            None,
            &[ImageCredential {
                pattern: "ghcr.*/x".into(),
                credential: basic("u"),
            }],
        )
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
        let e = RegistryAccess::new(&[], std::slice::from_ref(&not_pem), None, &[]).unwrap_err();
        assert!(format!("{e:#}").contains("ca.pem"), "{e:#}");
        let missing = dir.path().join("missing.json");
        let e = RegistryAccess::new(&[], &[], Some(&missing), &[]).unwrap_err();
        assert!(format!("{e:#}").contains("missing.json"), "{e:#}");
    }

    #[test]
    fn error_chain_keeps_the_root_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let e = anyhow::Error::new(io).context("error sending request");
        let chain = error_chain(e.as_ref());
        assert_eq!(chain, "error sending request: Connection refused");
    }
}
