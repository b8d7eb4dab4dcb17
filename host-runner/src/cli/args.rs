//! Command-line flags for the registry and Sigstore settings, flattened into
//! the CLI commands that talk to registries.

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

use crate::capabilities::oci::OciConfig;
use crate::registry::ImageCredential;

/// Registry access and Sigstore trust for the `oci/*` capabilities.
#[derive(Args, Debug, Clone, Default)]
pub struct OciArgs {
    /// Docker config.json whose `auths` hold per-registry credentials.
    #[arg(long, value_name = "FILE")]
    pub docker_config: Option<PathBuf>,

    /// YAML list of per-image credentials, first match wins:
    /// `- {pattern: "ghcr.io/corp/**", credential: {username: u, password: p}}`
    /// (or `credential: {token: t}` for a bearer token).
    #[arg(long, value_name = "FILE")]
    pub registry_credentials: Option<PathBuf>,

    /// Extra CA certificates (PEM) trusted for registry TLS; repeatable.
    #[arg(long = "registry-ca", value_name = "FILE")]
    pub registry_ca: Vec<PathBuf>,

    /// Registry (`host:port` as in image references) reached over plain http;
    /// repeatable or comma separated.
    #[arg(
        long = "insecure-registry",
        value_delimiter = ',',
        value_name = "HOST:PORT"
    )]
    pub insecure_registry: Vec<String>,

    /// Sigstore ClientTrustConfig / trusted_root.json (Fulcio CAs, Rekor keys)
    /// for keyless verification and Rekor bundles, read offline.
    #[arg(long, value_name = "FILE")]
    pub sigstore_trust_config: Option<PathBuf>,
}

impl OciArgs {
    /// The configuration these flags describe (reads the credentials file).
    pub fn config(&self) -> anyhow::Result<OciConfig> {
        let credentials = match &self.registry_credentials {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading registry credentials {}", path.display()))?;
                serde_yaml::from_str::<Vec<ImageCredential>>(&text)
                    .with_context(|| format!("parsing registry credentials {}", path.display()))?
            }
            None => Vec::new(),
        };
        Ok(OciConfig {
            docker_config: self.docker_config.clone(),
            ca_certs: self.registry_ca.clone(),
            insecure_registries: self.insecure_registry.clone(),
            credentials,
            sigstore_trust_config: self.sigstore_trust_config.clone(),
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
        oci: OciArgs,
    }

    #[test]
    fn flags_and_credentials_file_make_the_config() {
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
            "--registry-credentials",
            file.to_str().unwrap(),
            "--sigstore-trust-config",
            "trust.json",
        ]);
        let config = cli.oci.config().unwrap();
        assert_eq!(
            config.insecure_registries,
            ["127.0.0.1:5000", "127.0.0.1:5001"]
        );
        assert_eq!(config.ca_certs, [PathBuf::from("a.pem")]);
        assert_eq!(
            config.sigstore_trust_config,
            Some(PathBuf::from("trust.json"))
        );
        assert_eq!(
            config.credentials[1].credential,
            Credential::Bearer { token: "t".into() }
        );
        assert_eq!(config.credentials[0].pattern, "ghcr.io/corp/**");

        std::fs::write(&file, "- pattern: x\n  credential: {username: u}\n").unwrap();
        let e = cli.oci.config().unwrap_err();
        assert!(format!("{e:#}").contains("creds.yaml"), "{e:#}");
    }
}
