//! Transparency-log entries: that an entry of a log the trust root knows
//! records exactly this signature, and what it proves.
//!
//! * The log (`logId`) must be in the trust root and valid at the entry's time.
//! * The body must describe this signature (sigstore-go's rules, not
//!   sigstore-rs'): `dsse 0.0.1` (payload hash, the signature, the signer's
//!   certificate or key), `intoto 0.0.2` (payload hash, the signature
//!   base64-encoded twice, the signer), `hashedrekord 0.0.1` (cosign's `.sig`
//!   layers: the payload hash, the signature, the signer), `hashedrekord
//!   0.0.2` (Rekor v2: the digest of the PAE, the signature, the signer). The `envelopeHash` of
//!   `dsse` bodies is not compared: it hashes the envelope JSON as the signing
//!   client submitted it, which the bundle cannot reproduce (real cosign and
//!   GitHub attestations would be rejected).
//! * A signed entry timestamp (SET, `inclusionPromise`) is verified whenever
//!   present; only a verified SET makes `integratedTime` a trusted time.
//! * An inclusion proof is verified whenever present: the Merkle path to the
//!   root, and the checkpoint (a signed note) that signs that root and size.
//!   Rekor v2 checkpoints carry witness cosignatures: only the log's own
//!   signature line is used (no witness policy).

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sigstore::crypto::Signature;
use sigstore::rekor::models::checkpoint::{
    Checkpoint, CheckpointSignature, OtherContent, SignedCheckpoint,
};
use sigstore_protobuf_specs::dev::sigstore::rekor::v1::TransparencyLogEntry;

use super::trust_root::{rfc3339, Log, TrustRoot};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Who signed, as the log body must name it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Verifier<'a> {
    /// The leaf certificate (DER).
    Certificate(&'a [u8]),
    /// The public key (DER SubjectPublicKeyInfo).
    PublicKey(&'a [u8]),
}

/// The signature an entry must record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signed<'a> {
    /// The DSSE payload.
    pub(crate) payload: &'a [u8],
    /// Its PAE (what was signed).
    pub(crate) pae: &'a [u8],
    /// The raw signature bytes.
    pub(crate) signature: &'a [u8],
    pub(crate) verifier: Verifier<'a>,
}

/// A verified entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The log's name (`baseUrl`).
    pub(crate) log: String,
    pub(crate) index: i64,
    /// `integratedTime`, when a verified SET vouches for it.
    pub(crate) time: Option<i64>,
}

/// What an entry must carry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Required {
    /// A signed entry timestamp (bundle v0.1).
    pub(crate) promise: bool,
    /// An inclusion proof with checkpoint (bundle v0.2 and later).
    pub(crate) proof: bool,
}

/// Verifies one bundle tlog entry. `fallback_times` are the other verified
/// times of the bundle (signed timestamps), against which the log's validity
/// is checked when the entry has no integrated time (Rekor v2).
pub(crate) fn verify(
    entry: &TransparencyLogEntry,
    signed: &Signed<'_>,
    root: &TrustRoot,
    required: Required,
    fallback_times: &[i64],
) -> Result<Entry, String> {
    let id = entry
        .log_id
        .as_ref()
        .map(|l| l.key_id.as_slice())
        .unwrap_or_default();
    let log = root
        .tlog(id)
        .ok_or_else(|| format!("log {} is not in {}", hex::encode(id), root.source))?;
    let key = log.key()?;
    let (kind, version) = check_body(&entry.canonicalized_body, signed)?;
    if let Some(kv) = &entry.kind_version {
        if (kv.kind.as_str(), kv.version.as_str()) != (kind.as_str(), version.as_str()) {
            return Err(format!(
                "kindVersion {} {} disagrees with the body ({kind} {version})",
                kv.kind, kv.version
            ));
        }
    }
    let time = match entry
        .inclusion_promise
        .as_ref()
        .filter(|p| !p.signed_entry_timestamp.is_empty())
    {
        Some(promise) => {
            verify_set(
                log,
                &entry.canonicalized_body,
                entry.integrated_time,
                entry.log_index,
                &promise.signed_entry_timestamp,
            )?;
            Some(entry.integrated_time)
        }
        None if required.promise => {
            return Err(format!(
                "entry {} of {} has no signed entry timestamp (required by bundle v0.1)",
                entry.log_index, log.name
            ))
        }
        None => None,
    };
    let validity_times: Vec<i64> = match time {
        Some(t) => vec![t],
        None => fallback_times.to_vec(),
    };
    if let Some(t) = validity_times.iter().find(|t| !log.valid.contains(**t)) {
        return Err(format!(
            "log {} was not valid at {} (valid {})",
            log.name,
            rfc3339(*t),
            log.valid
        ));
    }
    match &entry.inclusion_proof {
        Some(proof) => {
            let hash = |h: &[u8]| -> Result<[u8; 32], String> {
                h.try_into()
                    .map_err(|_| "inclusion proof: a hash is not 32 bytes".to_string())
            };
            let envelope = proof
                .checkpoint
                .as_ref()
                .map(|c| c.envelope.as_str())
                .unwrap_or_default();
            let checkpoint = checkpoint(envelope, log)?;
            let hashes = proof
                .hashes
                .iter()
                .map(|h| hash(h))
                .collect::<Result<Vec<_>, _>>()?;
            let tree_size = u64::try_from(proof.tree_size)
                .map_err(|_| "inclusion proof: negative tree size".to_string())?;
            sigstore::rekor::models::InclusionProof::new(
                proof.log_index,
                hash(&proof.root_hash)?,
                tree_size,
                hashes,
                Some(checkpoint),
            )
            .verify(&entry.canonicalized_body, key)
            .map_err(|e| format!("inclusion proof in {} does not verify: {e}", log.name))?;
        }
        None if required.proof => {
            return Err(format!(
                "entry {} of {} has no inclusion proof (required by bundle v0.2 and later)",
                entry.log_index, log.name
            ))
        }
        None => {}
    }
    Ok(Entry {
        log: log.name.clone(),
        index: entry.log_index,
        time,
    })
}

/// The SET: the log's signature over the RFC 8785 JSON of body,
/// integratedTime, logID (hex) and logIndex (the entry's, not the proof's:
/// Rekor v1 is sharded).
pub(crate) fn verify_set(
    log: &Log,
    body: &[u8],
    integrated_time: i64,
    log_index: i64,
    set: &[u8],
) -> Result<(), String> {
    let canonical = format!(
        r#"{{"body":"{}","integratedTime":{integrated_time},"logID":"{}","logIndex":{log_index}}}"#,
        B64.encode(body),
        hex::encode(&log.id)
    );
    log.key()?
        .verify_signature(Signature::Raw(set), canonical.as_bytes())
        .map_err(|_| {
            format!(
                "the signed entry timestamp of entry {log_index} is not signed by {}",
                log.name
            )
        })
}

/// Checks that a log body records `signed`; returns its kind and version.
pub(crate) fn check_body(body: &[u8], signed: &Signed<'_>) -> Result<(String, String), String> {
    let body: Value =
        serde_json::from_slice(body).map_err(|e| format!("the log entry body is not JSON: {e}"))?;
    let text = |pointer: &str| body.pointer(pointer).and_then(Value::as_str);
    let kind = text("/kind").unwrap_or_default().to_string();
    let version = text("/apiVersion").unwrap_or_default().to_string();
    match (kind.as_str(), version.as_str()) {
        ("dsse", "0.0.1") => {
            payload_hash(&body, "/spec/payloadHash", signed)?;
            let signatures = body
                .pointer("/spec/signatures")
                .and_then(Value::as_array)
                .ok_or("the dsse entry lists no signatures")?;
            let [one] = signatures.as_slice() else {
                return Err(format!(
                    "the dsse entry lists {} signatures, the envelope one",
                    signatures.len()
                ));
            };
            signature_matches(one.get("signature"), signed, 1)?;
            verifier_matches(one.get("verifier"), signed)?;
        }
        ("intoto", "0.0.2") => {
            payload_hash(&body, "/spec/content/payloadHash", signed)?;
            let signatures = body
                .pointer("/spec/content/envelope/signatures")
                .and_then(Value::as_array)
                .ok_or("the intoto entry lists no signatures")?;
            let [one] = signatures.as_slice() else {
                return Err(format!(
                    "the intoto entry lists {} signatures, the envelope one",
                    signatures.len()
                ));
            };
            signature_matches(one.get("sig"), signed, 2)?;
            verifier_matches(one.get("publicKey"), signed)?;
        }
        // Rekor v1's entry of a signature over the payload itself (cosign's
        // `.sig` layers), never of a DSSE envelope's, which signs the PAE.
        ("hashedrekord", "0.0.1") if signed.pae == signed.payload => {
            payload_hash(&body, "/spec/data/hash", signed)?;
            signature_matches(body.pointer("/spec/signature/content"), signed, 1)?;
            verifier_matches(body.pointer("/spec/signature/publicKey/content"), signed)?;
        }
        ("hashedrekord", "0.0.2") => {
            let spec = body
                .pointer("/spec/hashedRekordV002")
                .ok_or("the hashedrekord entry has no hashedRekordV002 spec")?;
            if spec.pointer("/data/algorithm").and_then(Value::as_str) != Some("SHA2_256") {
                return Err("the hashedrekord entry's digest is not SHA2_256".to_string());
            }
            let digest = decode(spec.pointer("/data/digest"), "hashedrekord digest")?;
            if digest != Sha256::digest(signed.pae).as_slice() {
                return Err(
                    "the hashedrekord entry's digest is not that of the signed envelope"
                        .to_string(),
                );
            }
            signature_matches(spec.pointer("/signature/content"), signed, 1)?;
            let recorded = spec
                .pointer("/signature/verifier/x509Certificate/rawBytes")
                .map(|v| (v, true))
                .or_else(|| {
                    spec.pointer("/signature/verifier/publicKey/rawBytes")
                        .map(|v| (v, false))
                });
            let (value, is_certificate) =
                recorded.ok_or("the hashedrekord entry names no verifier")?;
            let der = decode(Some(value), "hashedrekord verifier")?;
            let matches = match signed.verifier {
                Verifier::Certificate(c) => is_certificate && der == c,
                Verifier::PublicKey(k) => !is_certificate && der == k,
            };
            if !matches {
                return Err("the log entry names another signer".to_string());
            }
        }
        _ => return Err(format!("unsupported tlog entry kind {kind} v{version}")),
    }
    Ok((kind, version))
}

fn decode(value: Option<&Value>, what: &str) -> Result<Vec<u8>, String> {
    value
        .and_then(Value::as_str)
        .and_then(|s| B64.decode(s).ok())
        .ok_or_else(|| format!("the log entry's {what} is missing or not base64"))
}

fn payload_hash(body: &Value, at: &str, signed: &Signed<'_>) -> Result<(), String> {
    let hash = body.pointer(at);
    if hash
        .and_then(|h| h.get("algorithm"))
        .and_then(Value::as_str)
        != Some("sha256")
    {
        return Err("the log entry's payload hash is not sha256".to_string());
    }
    let value = hash
        .and_then(|h| h.get("value"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !value.eq_ignore_ascii_case(&hex::encode(Sha256::digest(signed.payload))) {
        return Err("the log entry's payload hash is not that of the signed payload".to_string());
    }
    Ok(())
}

/// `times`: how often the recorded signature is base64-encoded (1, or 2 for intoto).
fn signature_matches(
    value: Option<&Value>,
    signed: &Signed<'_>,
    times: usize,
) -> Result<(), String> {
    let mut bytes = value
        .and_then(Value::as_str)
        .map(|s| s.as_bytes().to_vec())
        .unwrap_or_default();
    bytes = B64
        .decode(&bytes)
        .map_err(|_| "the log entry's signature is not base64".to_string())?;
    if times == 2 {
        // Not base64 a second time: then it is not this signature either.
        bytes = B64.decode(&bytes).unwrap_or_default();
    }
    if bytes != signed.signature {
        return Err("the log entry records another signature".to_string());
    }
    Ok(())
}

/// A base64 PEM certificate or public key; compared as DER, never as text.
fn verifier_matches(value: Option<&Value>, signed: &Signed<'_>) -> Result<(), String> {
    let pem = decode(value, "verifier")?;
    let pem = String::from_utf8(pem).map_err(|_| "the log entry's verifier is not PEM")?;
    let blocks = imagegate_policy::pem::decode_all(&pem)
        .map_err(|e| format!("the log entry's verifier is not PEM: {e}"))?;
    let matches = blocks.first().is_some_and(|b| match signed.verifier {
        Verifier::Certificate(c) => b.label == "CERTIFICATE" && b.der == c,
        Verifier::PublicKey(k) => b.label == "PUBLIC KEY" && b.der == k,
    });
    if !matches {
        return Err("the log entry names another signer".to_string());
    }
    Ok(())
}

/// Parses a checkpoint (signed note) and keeps the log's own signature: the
/// line whose key hint is the first 4 bytes of the log id (and, for Rekor
/// v2, whose name is the origin).
fn checkpoint(envelope: &str, log: &Log) -> Result<SignedCheckpoint, String> {
    let bad = |why: &str| format!("the checkpoint of {} is malformed: {why}", log.name);
    let (note, signatures) = envelope
        .split_once("\n\n")
        .ok_or_else(|| bad("no blank line after the note"))?;
    let mut lines = note.split('\n');
    let origin = lines
        .next()
        .filter(|o| !o.is_empty())
        .ok_or_else(|| bad("no origin"))?;
    let size = lines
        .next()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| bad("no tree size"))?;
    let hash: [u8; 32] = lines
        .next()
        .and_then(|h| B64.decode(h).ok())
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| bad("no root hash"))?;
    let other_content = lines
        .filter(|l| !l.is_empty())
        .map(|l| OtherContent::Value(l.to_string()))
        .collect();
    let hint = log
        .id
        .get(..4)
        .ok_or_else(|| bad("the log id is shorter than a key hint"))?;
    let signature = signatures
        .lines()
        .filter_map(|l| l.strip_prefix("\u{2014} "))
        .filter_map(|l| l.split_once(' '))
        .find_map(|(name, sig)| {
            let raw = B64.decode(sig).ok()?;
            let ours = raw.len() > 4
                && &raw[..4] == hint
                && (name == origin || origin.starts_with(&format!("{name} ")));
            ours.then(|| CheckpointSignature {
                key_fingerprint: [raw[0], raw[1], raw[2], raw[3]],
                raw: raw[4..].to_vec(),
                name: name.to_string(),
            })
        })
        .ok_or_else(|| format!("the checkpoint carries no signature of {}", log.name))?;
    Ok(SignedCheckpoint {
        note: Checkpoint {
            origin: origin.to_string(),
            size,
            hash,
            other_content,
        },
        signatures: vec![signature],
    })
}
