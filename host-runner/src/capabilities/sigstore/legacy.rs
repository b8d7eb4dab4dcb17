//! cosign's attestation layers before bundles (`cosign attest` of cosign
//! v1/v2, under the `sha256-<hex>.att` tag, or as in-toto referrers): one
//! DSSE envelope per layer (`application/vnd.dsse.envelope.v1+json`), the
//! signer's certificate and chain and the Rekor entry as layer annotations:
//! * `dev.sigstore.cosign/certificate`, `dev.sigstore.cosign/chain`: PEM;
//! * `dev.sigstore.cosign/bundle`: `{"SignedEntryTimestamp", "Payload":
//!   {"body", "integratedTime", "logIndex", "logID"}}`, the SET over the log
//!   entry, which must record this signature.
//!
//! The envelope and the signer are checked like a bundle's
//! ([`dsse`](super::dsse)); the entry is the only evidence of time.

use base64::Engine as _;
use serde::Deserialize;
use std::collections::BTreeMap;

use super::bundle::{Expected, Outcome};
use super::dsse::{self, Evidence, Material};
use super::statement;
use super::tlog::{self, Signed};
use super::trust_root::rfc3339;
use crate::capabilities::x509::Certificate;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
pub(crate) const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
pub(crate) const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
pub(crate) const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload_type: String,
    payload: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RekorBundle {
    signed_entry_timestamp: String,
    payload: RekorPayload,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RekorPayload {
    body: String,
    integrated_time: i64,
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

/// Verifies one attestation layer and its annotations.
pub(crate) fn verify(
    layer: &[u8],
    annotations: &BTreeMap<String, String>,
    expected: Expected<'_>,
) -> Result<Outcome, String> {
    let envelope: Envelope =
        serde_json::from_slice(layer).map_err(|e| format!("not a DSSE envelope: {e}"))?;
    let one = statement::only_signature(&envelope.payload_type, &envelope.signatures)?;
    let payload = B64
        .decode(&envelope.payload)
        .map_err(|_| "the DSSE payload is not base64")?;
    let signature = B64
        .decode(&one.sig)
        .map_err(|_| "the DSSE signature is not base64")?;
    let pae = statement::pae(&envelope.payload_type, &payload);
    let statement = statement::check(&payload, expected.subject, expected.expect)?;
    let material = match annotations
        .get(CERTIFICATE_ANNOTATION)
        .filter(|c| !c.is_empty())
    {
        Some(pem) => Material::Certificate {
            leaf: pem_certificates(pem, CERTIFICATE_ANNOTATION)?[0]
                .der()
                .to_vec(),
            // Roots come from the trust root only: the chain annotation's
            // self-signed certificates are left out.
            chain: annotations
                .get(CHAIN_ANNOTATION)
                .filter(|c| !c.is_empty())
                .map(|c| pem_certificates(c, CHAIN_ANNOTATION))
                .transpose()?
                .unwrap_or_default()
                .into_iter()
                .filter(|c| !c.is_self_issued())
                .map(|c| c.der().to_vec())
                .collect(),
        },
        None => Material::Key,
    };
    let who = dsse::signer(&material, &signature, &pae, expected.signers)?;
    let mut evidence = Evidence::default();
    if let Some(bundle) = annotations.get(BUNDLE_ANNOTATION) {
        let bundle: RekorBundle = serde_json::from_str(bundle)
            .map_err(|e| format!("the Rekor bundle annotation: {e}"))?;
        let p = &bundle.payload;
        let log_id = hex::decode(&p.log_id).map_err(|_| "the Rekor bundle's logID is not hex")?;
        let log = expected.root.tlog(&log_id).ok_or_else(|| {
            format!(
                "the Rekor bundle's log {} is not in {}",
                p.log_id, expected.root.source
            )
        })?;
        let body = B64
            .decode(&p.body)
            .map_err(|_| "the Rekor bundle's body is not base64")?;
        let signed = Signed {
            payload: &payload,
            pae: &pae,
            signature: &signature,
            verifier: material.verifier(&who.key),
        };
        tlog::check_body(&body, &signed)?;
        let set = B64
            .decode(&bundle.signed_entry_timestamp)
            .map_err(|_| "the SET is not base64")?;
        tlog::verify_set(log, &body, p.integrated_time, p.log_index, &set)?;
        if !log.valid.contains(p.integrated_time) {
            return Err(format!(
                "log {} was not valid at {} (valid {})",
                log.name,
                rfc3339(p.integrated_time),
                log.valid
            ));
        }
        evidence.times.push(p.integrated_time);
        evidence.log_entries = 1;
        evidence
            .lines
            .push(format!("tlog {} #{}", log.name, p.log_index));
    }
    let format = "cosign-attestation-layer".to_string();
    Outcome::conclude(&material, who, evidence, statement, format, expected)
}

fn pem_certificates(text: &str, annotation: &str) -> Result<Vec<Certificate>, String> {
    Certificate::from_pem(text).map_err(|e| format!("{annotation}: {e}"))
}
