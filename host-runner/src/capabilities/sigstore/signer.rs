//! Who a check accepts as signer, read once per request from the guest's
//! [`SignerIdentity`] list: keys and certificates parsed, keyless identities
//! normalized. Bad material is a host error naming the entry.

use sha2::{Digest, Sha256};
use sigstore::crypto::CosignVerificationKey;
use x509_cert::der::Encode;

use super::fulcio::Identity;
use crate::capabilities::oci::verify::url_prefix;
use crate::capabilities::x509::Certificate;
use imagegate_policy::wire::SignerIdentity;

/// One accepted signer.
#[derive(Debug)]
pub(crate) enum Signer {
    /// A public key.
    Key(PublicKey),
    /// The key of a given certificate, which must chain to `chain`.
    Certificate {
        /// DER of the certificate.
        leaf: Vec<u8>,
        key: PublicKey,
        /// DER, in order up to the root; empty: the certificate alone.
        chain: Vec<Vec<u8>>,
        /// A verified transparency-log entry is required.
        require_tlog: bool,
    },
    /// A Fulcio certificate for this identity.
    Fulcio(Identity),
}

/// A key with its DER form (to compare with what logs record) and its name.
#[derive(Debug)]
pub(crate) struct PublicKey {
    pub(crate) key: CosignVerificationKey,
    /// DER SubjectPublicKeyInfo.
    pub(crate) spki: Vec<u8>,
}

impl PublicKey {
    pub(crate) fn from_spki(spki: Vec<u8>) -> Result<PublicKey, String> {
        let key = CosignVerificationKey::try_from_der(&spki).map_err(|e| e.to_string())?;
        Ok(PublicKey { key, spki })
    }

    /// `key sha256:<16 hex>`: the key's fingerprint, for messages.
    pub(crate) fn name(&self) -> String {
        format!(
            "key sha256:{}",
            &hex::encode(Sha256::digest(&self.spki))[..16]
        )
    }
}

/// The SubjectPublicKeyInfo (DER) of a certificate.
pub(crate) fn certificate_spki(certificate: &Certificate) -> Result<Vec<u8>, String> {
    certificate
        .parsed()
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| format!("certificate key: {e}"))
}

fn one_pem(text: &str, label: &str) -> Result<Vec<u8>, String> {
    let blocks = imagegate_policy::pem::decode_all(text)?;
    match blocks.as_slice() {
        [one] if one.label == label => Ok(one.der.clone()),
        _ => Err(format!("expected one PEM {label} block")),
    }
}

fn certificate(text: &str) -> Result<Certificate, String> {
    match Certificate::from_pem(text)?.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err("expected one PEM CERTIFICATE block".to_string()),
    }
}

impl Signer {
    /// Reads every identity; errors name it (`identities[1]: ...`).
    pub(crate) fn compile(identities: &[SignerIdentity]) -> Result<Vec<Signer>, String> {
        if identities.is_empty() {
            return Err("no identities: a check needs at least one signer".to_string());
        }
        identities
            .iter()
            .enumerate()
            .map(|(i, identity)| Signer::new(identity).map_err(|e| format!("identities[{i}]: {e}")))
            .collect()
    }

    fn new(identity: &SignerIdentity) -> Result<Signer, String> {
        Ok(match identity {
            SignerIdentity::Key { pem } => {
                let spki = one_pem(pem, "PUBLIC KEY")?;
                Signer::Key(PublicKey::from_spki(spki).map_err(|e| format!("unusable key: {e}"))?)
            }
            SignerIdentity::Keyless { issuer, subject } => Signer::Fulcio(Identity::Exact {
                issuer: issuer.clone(),
                subject: subject.clone(),
            }),
            SignerIdentity::KeylessPrefix {
                issuer,
                url_prefix: prefix,
            } => Signer::Fulcio(Identity::Prefix {
                issuer: issuer.clone(),
                prefix: url_prefix(prefix)?,
            }),
            SignerIdentity::GithubActions { owner, repo } => {
                if owner.is_empty() {
                    return Err("Must provide owner info".to_string());
                }
                Signer::Fulcio(Identity::GithubActions {
                    owner: owner.clone(),
                    repo: repo.clone(),
                })
            }
            SignerIdentity::Certificate {
                pem,
                chain,
                require_tlog,
            } => {
                let leaf = certificate(pem)?;
                let key = PublicKey::from_spki(certificate_spki(&leaf)?)
                    .map_err(|e| format!("unusable certificate key: {e}"))?;
                let chain = chain
                    .iter()
                    .enumerate()
                    .map(|(j, c)| {
                        certificate(c)
                            .map(|c| c.der().to_vec())
                            .map_err(|e| format!("chain[{j}]: {e}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Signer::Certificate {
                    leaf: leaf.der().to_vec(),
                    key,
                    chain,
                    require_tlog: *require_tlog,
                }
            }
        })
    }

    /// How messages name it.
    pub(crate) fn describe(&self) -> String {
        match self {
            Signer::Key(key) => key.name(),
            Signer::Certificate { key, .. } => format!("certificate with {}", key.name()),
            Signer::Fulcio(Identity::Exact { issuer, subject }) => {
                format!("keyless {issuer} {subject}")
            }
            Signer::Fulcio(Identity::Prefix { issuer, prefix }) => {
                format!("keyless {issuer} {prefix}*")
            }
            Signer::Fulcio(Identity::GithubActions { owner, repo }) => format!(
                "GitHub Actions {owner}{}",
                repo.as_ref().map(|r| format!("/{r}")).unwrap_or_default()
            ),
        }
    }

    /// The key to verify a signature with, for signers that have one.
    pub(crate) fn key(&self) -> Option<&PublicKey> {
        match self {
            Signer::Key(key) | Signer::Certificate { key, .. } => Some(key),
            Signer::Fulcio(_) => None,
        }
    }
}
