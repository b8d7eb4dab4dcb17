//! Sigstore bundles (v0.1-v0.3) with a DSSE envelope, verified completely
//! and offline: what cosign v3 writes for `cosign sign` and `cosign attest`,
//! and what GitHub's and npm's attestations are.
//!
//! Steps, each failing with its own message:
//! 1. the bundle parses, its media type is a known version, its content is
//!    one DSSE signature over an in-toto statement about the subject digest
//!    ([`statement`](super::statement));
//! 2. the signer: with a certificate, the signature verifies with its key and
//!    the certificate is one a check accepts (keyless identity, or the key of
//!    a configured certificate); with a public key, one configured key
//!    verifies the signature (the bundle's key hint never selects a key);
//! 3. every RFC 3161 timestamp carried verifies against a timestamp
//!    authority of the trust root; every tlog entry carried verifies
//!    ([`tlog`](super::tlog)); the verified times are the SETs' integrated
//!    times and the timestamps' times;
//! 4. a Fulcio certificate needs at least one verified time, a chain to a CA
//!    of the trust root valid at every verified time (and the CA's validity),
//!    an SCT when the trust root lists CT logs, and a verified tlog entry
//!    when it lists transparency logs.
//!
//! Nothing carried is skipped: a bundle with a timestamp or log entry that
//! does not verify is rejected even when the rest would suffice.

use sigstore::crypto::Signature;
use sigstore_protobuf_specs::dev::sigstore::bundle::v1::{bundle, verification_material, Bundle};
use x509_cert::der::Decode;
use x509_cert::Certificate;

use super::chain;
use super::fulcio::{self, Claims};
use super::signer::{certificate_spki, PublicKey, Signer};
use super::statement::{self, Expect, IN_TOTO_PAYLOAD_TYPE};
use super::tlog::{self, Required, Signed, Verifier};
use super::trust_root::{rfc3339, TrustRoot};

/// What verified.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Index of the signer in the request.
    pub(crate) identity: usize,
    /// `sigstore-bundle-v0.3`.
    pub(crate) format: String,
    /// Who signed, for messages.
    pub(crate) signer: String,
    /// `tlog <log> #<index>`, `timestamp <time>`, for messages.
    pub(crate) evidence: Vec<String>,
    /// The statement (attestations return it).
    pub(crate) statement: serde_json::Value,
    /// The Fulcio certificate's claims, if it was one.
    pub(crate) claims: Option<Claims>,
    /// When a certificate checked at "now" (no verified time) expires.
    pub(crate) valid_until: Option<i64>,
}

/// The bundle media types and their versions (0.1 needs a SET, 0.2 and
/// later an inclusion proof).
fn version(media_type: &str) -> Result<u8, String> {
    Ok(match media_type {
        "application/vnd.dev.sigstore.bundle+json;version=0.1" => 1,
        "application/vnd.dev.sigstore.bundle+json;version=0.2" => 2,
        "application/vnd.dev.sigstore.bundle+json;version=0.3"
        | "application/vnd.dev.sigstore.bundle.v0.3+json" => 3,
        other => return Err(format!("unsupported bundle media type {other:?}")),
    })
}

/// Verifies a bundle (JSON) for the manifest `subject` (`sha256:<hex>`).
pub(crate) fn verify(
    json: &[u8],
    subject: &str,
    expect: Expect<'_>,
    signers: &[Signer],
    root: &TrustRoot,
    now: i64,
) -> Result<Outcome, String> {
    let bundle: Bundle =
        serde_json::from_slice(json).map_err(|e| format!("not a sigstore bundle: {e}"))?;
    let version = version(&bundle.media_type)?;
    let envelope = match bundle.content {
        Some(bundle::Content::DsseEnvelope(envelope)) => envelope,
        Some(bundle::Content::MessageSignature(_)) => return Err(
            "a message-signature bundle (a blob signature), not an image signature or attestation"
                .to_string(),
        ),
        None => return Err("the bundle has no DSSE envelope".to_string()),
    };
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(format!(
            "DSSE payload type {:?} is not {IN_TOTO_PAYLOAD_TYPE}",
            envelope.payload_type
        ));
    }
    let [dsse_signature] = envelope.signatures.as_slice() else {
        return Err(format!(
            "the DSSE envelope has {} signatures (exactly one is supported)",
            envelope.signatures.len()
        ));
    };
    let signature = dsse_signature.sig.as_slice();
    let pae = statement::pae(&envelope.payload_type, &envelope.payload);
    let statement = statement::check(&envelope.payload, subject, expect)?;
    let material = bundle
        .verification_material
        .ok_or("the bundle has no verification material")?;

    // 2. The signer.
    let certificate = match &material.content {
        Some(verification_material::Content::Certificate(c)) => {
            Some((c.raw_bytes.clone(), Vec::new()))
        }
        Some(verification_material::Content::X509CertificateChain(chain)) => {
            let mut certs: Vec<Vec<u8>> = chain
                .certificates
                .iter()
                .map(|c| c.raw_bytes.clone())
                .collect();
            if certs.is_empty() {
                return Err("the bundle's certificate chain is empty".to_string());
            }
            let leaf = certs.remove(0);
            Some((leaf, certs))
        }
        Some(verification_material::Content::PublicKey(_)) => None,
        None => return Err("the bundle names no certificate and no key".to_string()),
    };
    let (identity, signer_key, leaf) = match &certificate {
        Some((leaf_der, _)) => {
            let leaf = Certificate::from_der(leaf_der)
                .map_err(|e| format!("the bundle's certificate: {e}"))?;
            let key = PublicKey::from_spki(certificate_spki(&leaf)?)
                .map_err(|e| format!("the bundle's certificate key is unusable: {e}"))?;
            key.key
                .verify_signature(Signature::Raw(signature), &pae)
                .map_err(|_| {
                    "the signature does not verify with the bundle's certificate key".to_string()
                })?;
            let claims = fulcio::claims(&leaf).ok();
            let identity = match_certificate(signers, &key, claims.as_ref())?;
            (identity, key, Some((leaf, claims)))
        }
        None => {
            let mut keys = signers
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.key().map(|k| (i, k)));
            let found = keys.find(|(_, k)| {
                k.key
                    .verify_signature(Signature::Raw(signature), &pae)
                    .is_ok()
            });
            let Some((identity, key)) = found else {
                return Err(if signers.iter().any(|s| s.key().is_some()) {
                    "signed with a key, and no configured key verifies the signature".to_string()
                } else {
                    "signed with a key, not with a Fulcio certificate".to_string()
                });
            };
            (identity, PublicKey::from_spki(key.spki.clone())?, None)
        }
    };

    // 3. Timestamps and log entries.
    let mut evidence = Vec::new();
    let mut times = Vec::new();
    for (i, ts) in material
        .timestamp_verification_data
        .iter()
        .flat_map(|d| &d.rfc3161_timestamps)
        .enumerate()
    {
        let t = chain::timestamp(&ts.signed_timestamp, signature, root)
            .map_err(|e| format!("RFC 3161 timestamp {i}: {e}"))?;
        evidence.push(format!("timestamp {} by {}", rfc3339(t.time), t.authority));
        times.push(t.time);
    }
    let tsa_times = times.clone();
    let verifier = match &certificate {
        Some((leaf_der, _)) => Verifier::Certificate(leaf_der),
        None => Verifier::PublicKey(&signer_key.spki),
    };
    let signed = Signed {
        payload: &envelope.payload,
        pae: &pae,
        signature,
        verifier,
    };
    let required = Required {
        promise: version == 1,
        proof: version >= 2,
    };
    let mut entries = 0;
    for (i, entry) in material.tlog_entries.iter().enumerate() {
        let verified = tlog::verify(entry, &signed, root, required, &tsa_times)
            .map_err(|e| format!("tlog entry {i}: {e}"))?;
        evidence.push(format!("tlog {} #{}", verified.log, verified.index));
        times.extend(verified.time);
        entries += 1;
    }

    // 4. What the signer's kind requires.
    let signer = &signers[identity];
    let mut valid_until = None;
    let mut claims_out = None;
    match (signer, &leaf) {
        (Signer::Fulcio(_), Some((leaf, claims))) => {
            if times.is_empty() {
                return Err("no verified time: a certificate signature needs a signed entry timestamp or an RFC 3161 timestamp".to_string());
            }
            if !root.tlogs.is_empty() && entries == 0 {
                return Err(format!(
                    "no transparency-log entry, and {} lists transparency logs",
                    root.source
                ));
            }
            let (leaf_der, chain) = certificate
                .as_ref()
                .map(|(l, c)| (l.as_slice(), c.as_slice()))
                .unwrap_or_default();
            let issuer = chain::fulcio(leaf_der, chain, root, &times)?;
            if !root.ctlogs.is_empty() {
                let log = super::sct::verify(leaf_der, &issuer, root)?;
                evidence.push(format!("SCT {log}"));
            }
            let _ = leaf;
            claims_out = claims.clone();
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
            if *require_tlog && entries == 0 {
                return Err("no transparency-log entry (the check requires one)".to_string());
            }
            let at: Vec<i64> = if times.is_empty() {
                vec![now]
            } else {
                times.clone()
            };
            chain::configured(leaf, chain, &at)?;
            if times.is_empty() {
                valid_until = Some(chain::not_after(leaf, chain)?);
            }
        }
        _ => {}
    }
    let signer_name = match &claims_out {
        Some(c) => format!(
            "{} (issuer {})",
            c.get("subject").map(String::as_str).unwrap_or(""),
            c.get("issuer").map(String::as_str).unwrap_or("")
        ),
        None => signer_key.name(),
    };
    Ok(Outcome {
        identity,
        format: format!("sigstore-bundle-v0.{version}"),
        signer: signer_name,
        evidence,
        statement: statement.json,
        claims: claims_out,
        valid_until,
    })
}

/// Which signer accepts a bundle signed with a certificate: a keyless
/// identity whose claims match, or a configured key or certificate with the
/// same key. The error lists why each was not.
fn match_certificate(
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
