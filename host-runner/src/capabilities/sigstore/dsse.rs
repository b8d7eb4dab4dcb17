//! One DSSE signature, wherever it was found (a sigstore bundle, a cosign
//! `.att` layer): who signed it, and what a signer of that kind must prove.
//!
//! The callers gather the evidence their format carries (log entries,
//! signed timestamps); this module decides with it:
//! * with a certificate, the signature verifies with its key and the
//!   certificate is one a check accepts (keyless identity, or the key of a
//!   configured key or certificate); with a bare key, one configured key
//!   verifies the signature (a key hint never selects a key);
//! * a Fulcio certificate needs at least one verified time, a chain to a
//!   certificate authority of the trust root valid at every verified time,
//!   an SCT when the trust root lists CT logs, and a verified log entry when
//!   it lists transparency logs;
//! * a configured certificate is checked with its chain at the verified
//!   times, else now (and then expires with its chain).

use sigstore::crypto::Signature;

use super::chain;
use super::fulcio::{self, Claims};
use super::signer::{certificate_spki, PublicKey, Signer};
use super::tlog::Verifier;
use super::trust_root::TrustRoot;
use crate::capabilities::x509::Certificate;

/// The signer's material as the format carries it.
#[derive(Debug, Clone)]
pub(crate) enum Material {
    /// A certificate (DER) and the chain the format carries (DER, no root).
    Certificate { leaf: Vec<u8>, chain: Vec<Vec<u8>> },
    /// Only a key (or a hint of one): a configured key must verify.
    Key,
}

/// Who signed.
#[derive(Debug)]
pub(crate) struct SignedBy {
    /// Index of the accepting signer.
    pub(crate) identity: usize,
    /// The key that verified.
    pub(crate) key: PublicKey,
    /// The Fulcio claims of the certificate, when there is one.
    pub(crate) claims: Option<Claims>,
}

/// Finds the signer of `signature` over `pae`.
pub(crate) fn signer(
    material: &Material,
    signature: &[u8],
    pae: &[u8],
    signers: &[Signer],
) -> Result<SignedBy, String> {
    match material {
        Material::Certificate { leaf, .. } => {
            let leaf = Certificate::from_der(leaf.as_slice())
                .map_err(|e| format!("the signing certificate: {e}"))?;
            let key = PublicKey::from_spki(certificate_spki(&leaf)?)
                .map_err(|e| format!("the signing certificate's key is unusable: {e}"))?;
            key.key
                .verify_signature(Signature::Raw(signature), pae)
                .map_err(|_| {
                    "the signature does not verify with the signing certificate's key".to_string()
                })?;
            let claims = fulcio::claims(leaf.parsed()).ok();
            let identity = accepting(signers, &key, claims.as_ref())?;
            Ok(SignedBy {
                identity,
                key,
                claims,
            })
        }
        Material::Key => {
            let found = signers.iter().enumerate().find_map(|(i, s)| {
                let k = s.key()?;
                k.key
                    .verify_signature(Signature::Raw(signature), pae)
                    .is_ok()
                    .then_some((i, k))
            });
            let Some((identity, key)) = found else {
                return Err(if signers.iter().any(|s| s.key().is_some()) {
                    "signed with a key, and no configured key verifies the signature".to_string()
                } else {
                    "signed with a key, not with a Fulcio certificate".to_string()
                });
            };
            Ok(SignedBy {
                identity,
                key: PublicKey::from_spki(key.spki.clone())?,
                claims: None,
            })
        }
    }
}

impl Material {
    /// How a log body must name the signer.
    pub(crate) fn verifier<'a>(&'a self, key: &'a PublicKey) -> Verifier<'a> {
        match self {
            Material::Certificate { leaf, .. } => Verifier::Certificate(leaf),
            Material::Key => Verifier::PublicKey(&key.spki),
        }
    }
}

/// What the evidence of a format proved.
#[derive(Debug, Default)]
pub(crate) struct Evidence {
    /// Verified times (SETs' integrated times, signed timestamps).
    pub(crate) times: Vec<i64>,
    /// Verified transparency-log entries.
    pub(crate) log_entries: usize,
    /// For messages: `tlog <log> #<index>`, `timestamp ...`, `SCT <log>`.
    pub(crate) lines: Vec<String>,
}

/// Checks what the signer's kind requires; returns the `valid_until` of a
/// verification checked at "now".
pub(crate) fn conclude(
    material: &Material,
    who: &SignedBy,
    signers: &[Signer],
    evidence: &mut Evidence,
    root: &TrustRoot,
    now: i64,
) -> Result<Option<i64>, String> {
    match (&signers[who.identity], material) {
        (
            Signer::Fulcio(_),
            Material::Certificate {
                leaf,
                chain: carried,
            },
        ) => {
            if evidence.times.is_empty() {
                return Err("no verified time: a certificate signature needs a signed entry timestamp or an RFC 3161 timestamp".to_string());
            }
            if !root.tlogs.is_empty() && evidence.log_entries == 0 {
                return Err(format!(
                    "no transparency-log entry, and {} lists transparency logs",
                    root.source
                ));
            }
            let issuer = chain::fulcio(leaf, carried, root, &evidence.times)?;
            if !root.ctlogs.is_empty() {
                let log = super::sct::verify(leaf, &issuer, root)?;
                evidence.lines.push(format!("SCT {log}"));
            }
            Ok(None)
        }
        (
            Signer::Certificate {
                leaf,
                chain,
                require_tlog,
                ..
            },
            _,
        ) => {
            if *require_tlog && evidence.log_entries == 0 {
                return Err("no transparency-log entry (the check requires one)".to_string());
            }
            if evidence.times.is_empty() {
                chain::configured(leaf, chain, &[now])?;
                return chain::not_after(leaf, chain).map(Some);
            }
            chain::configured(leaf, chain, &evidence.times)?;
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// Which signer accepts a signature made with a certificate: a keyless
/// identity whose claims match, or a configured key or certificate with the
/// same key. The error lists why each was not.
fn accepting(
    signers: &[Signer],
    key: &PublicKey,
    claims: Option<&Claims>,
) -> Result<usize, String> {
    let mut why = Vec::new();
    for (i, signer) in signers.iter().enumerate() {
        let result = match signer {
            Signer::Fulcio(identity) => match claims {
                Some(claims) => identity.check(claims),
                None => Err("the certificate is not a Fulcio certificate".to_string()),
            },
            Signer::Key(k) | Signer::Certificate { key: k, .. } => {
                if k.spki == key.spki {
                    Ok(())
                } else {
                    Err("the certificate's key is another key".to_string())
                }
            }
        };
        match result {
            Ok(()) => return Ok(i),
            Err(e) => why.push(format!("{}: {e}", signer.describe())),
        }
    }
    Err(format!("signed by someone else: {}", why.join("; ")))
}

/// How messages name the signer.
pub(crate) fn signer_name(who: &SignedBy) -> String {
    match &who.claims {
        Some(c) => format!(
            "{} (issuer {})",
            c.get("subject").map(String::as_str).unwrap_or(""),
            c.get("issuer").map(String::as_str).unwrap_or("")
        ),
        None => who.key.name(),
    }
}
