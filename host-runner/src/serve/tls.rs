//! The server certificate, reloaded when its files change (cert-manager
//! rotates the Secret, the kubelet swaps the mounted files): new
//! connections get the new certificate, open ones keep the session they
//! negotiated, so a rotation drops no connection. A pair that does not load
//! (a half-written file, a key of another certificate) is logged and the
//! current one kept; the files are looked at again at the next check.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context as _;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use crate::capabilities::lock;

/// The certificate and key files and what was last loaded from them.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<rustls::ServerConfig>>,
    /// The file contents last looked at (loaded or refused).
    seen: Mutex<(Vec<u8>, Vec<u8>)>,
}

/// What [`Tls::reload`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    Applied,
    Refused(String),
}

impl Tls {
    /// Loads the pair; errors name the file.
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Tls> {
        let (cert_pem, key_pem) = read(cert, key)?;
        let config = server_config(cert, key, &cert_pem, &key_pem)?;
        Ok(Tls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(Arc::new(config)),
            seen: Mutex::new((cert_pem, key_pem)),
        })
    }

    /// The acceptor for the next connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }

    /// Re-reads the files; switches to them when they changed and load.
    /// Blocking (file reads).
    pub fn reload(&self) -> Reload {
        let (cert_pem, key_pem) = match read(&self.cert, &self.key) {
            Ok(pair) => pair,
            Err(e) => return Reload::Refused(format!("{e:#}")),
        };
        {
            let mut seen = lock(&self.seen);
            if seen.0 == cert_pem && seen.1 == key_pem {
                return Reload::Unchanged;
            }
            *seen = (cert_pem.clone(), key_pem.clone());
        }
        match server_config(&self.cert, &self.key, &cert_pem, &key_pem) {
            Ok(config) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
                Reload::Applied
            }
            Err(e) => Reload::Refused(format!("{e:#}")),
        }
    }
}

fn read(cert: &Path, key: &Path) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let cert_pem = std::fs::read(cert)
        .with_context(|| format!("cannot read TLS certificate {}", cert.display()))?;
    let key_pem =
        std::fs::read(key).with_context(|| format!("cannot read TLS key {}", key.display()))?;
    Ok((cert_pem, key_pem))
}

/// rustls, aws-lc-rs provider, HTTP/1.1 via ALPN.
fn server_config(
    cert: &Path,
    key: &Path,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("invalid PEM in TLS certificate {}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("no certificate in {}", cert.display());
    }
    let key_der = PrivateKeyDer::from_pem_slice(key_pem)
        .with_context(|| format!("no usable private key in {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot set TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .with_context(|| {
            format!(
                "TLS certificate {} and key {} do not work together",
                cert.display(),
                key.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
