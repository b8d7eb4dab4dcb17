//! DSSE envelopes and the in-toto statements they carry: what a cosign v3
//! signature, a `cosign attest` attestation and a GitHub artifact attestation
//! sign.
//!
//! A signature covers the DSSE pre-authentication encoding (PAE) of the
//! payload, never the payload alone; the payload is an in-toto statement
//! (`_type` v1 or v0.1) whose subject must name the image digest.

use serde_json::Value;
use std::collections::BTreeMap;

/// The DSSE payload type of in-toto statements.
pub(crate) const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The predicate type of a cosign v3 image signature.
pub(crate) const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
const STATEMENT_V01: &str = "https://in-toto.io/Statement/v0.1";
/// Bounds of sigstore-rs' statement checks (a statement is small).
const MAX_SUBJECTS: usize = 1024;

/// The one signature of a DSSE envelope over an in-toto statement (bundles
/// and cosign attestation layers alike).
pub(crate) fn only_signature<'a, S>(
    payload_type: &str,
    signatures: &'a [S],
) -> Result<&'a S, String> {
    if payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(format!(
            "DSSE payload type {payload_type:?} is not {IN_TOTO_PAYLOAD_TYPE}"
        ));
    }
    match signatures {
        [one] => Ok(one),
        _ => Err(format!(
            "the DSSE envelope has {} signatures (exactly one is supported)",
            signatures.len()
        )),
    }
}

/// `"DSSEv1" SP len(type) SP type SP len(payload) SP payload`.
pub(crate) fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// What the statement must be about.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expect<'a> {
    /// A cosign image signature (Statement v1, predicate cosign/sign/v1),
    /// whose subject carries these annotations when given.
    Signature {
        annotations: Option<&'a BTreeMap<String, String>>,
    },
    /// An attestation with this predicate type.
    Attestation { predicate_type: &'a str },
}

/// A statement that passed [`check`]: the whole JSON (attestations return it).
#[derive(Debug)]
pub(crate) struct Statement {
    pub(crate) json: Value,
}

/// Parses the payload and checks it against `expect` and the subject digest
/// (`sha256:<hex>` of the manifest the signature was found for; `sha512`
/// works too).
pub(crate) fn check(
    payload: &[u8],
    subject: &str,
    expect: Expect<'_>,
) -> Result<Statement, String> {
    let json: Value = serde_json::from_slice(payload)
        .map_err(|e| format!("the DSSE payload is not a JSON in-toto statement: {e}"))?;
    let kind = json.get("_type").and_then(Value::as_str).unwrap_or("");
    if kind != STATEMENT_V1 && kind != STATEMENT_V01 {
        return Err(format!(
            "the payload is not an in-toto statement (_type {kind:?})"
        ));
    }
    let predicate_type = json
        .get("predicateType")
        .and_then(Value::as_str)
        .unwrap_or("");
    match expect {
        Expect::Signature { .. } if kind != STATEMENT_V1 => {
            return Err(format!(
                "a cosign signature is an in-toto Statement v1, this is {kind}"
            ))
        }
        Expect::Signature { .. } if predicate_type != COSIGN_SIGN_PREDICATE => {
            return Err(format!(
                "predicateType {predicate_type:?} is not a cosign signature ({COSIGN_SIGN_PREDICATE})"
            ))
        }
        Expect::Attestation { predicate_type: wanted } if predicate_type != wanted => {
            return Err(format!(
                "predicateType {predicate_type:?} is not the requested {wanted:?}"
            ))
        }
        _ => {}
    }
    let subjects = json
        .get("subject")
        .and_then(Value::as_array)
        .ok_or("the statement has no subject list")?;
    if subjects.len() > MAX_SUBJECTS {
        return Err(format!(
            "the statement has {} subjects (at most {MAX_SUBJECTS})",
            subjects.len()
        ));
    }
    let (algorithm, wanted) = digest_bytes(subject)?;
    let mut found = None;
    for s in subjects {
        let Some(hex) = s
            .get("digest")
            .and_then(|d| d.get(algorithm))
            .and_then(Value::as_str)
        else {
            continue;
        };
        let bytes = hex::decode(hex)
            .map_err(|_| format!("the statement names a malformed {algorithm} digest {hex:?}"))?;
        if bytes == wanted {
            found = Some(s);
            break;
        }
    }
    let Some(found) = found else {
        return Err(format!("the statement's subject does not name {subject}"));
    };
    if let Expect::Signature {
        annotations: Some(wanted),
    } = expect
    {
        let signed = found.get("annotations");
        for (key, value) in wanted {
            if signed.and_then(|a| a.get(key)).and_then(Value::as_str) != Some(value) {
                return Err(format!(
                    "annotation {key}={value} is not signed (signed annotations: {})",
                    signed.map_or("none".to_string(), Value::to_string)
                ));
            }
        }
    }
    Ok(Statement { json })
}

/// The algorithm and bytes of `sha256:<hex>` or `sha512:<hex>` (the
/// digests OCI allows).
fn digest_bytes(digest: &str) -> Result<(&str, Vec<u8>), String> {
    let (algorithm, hex) = digest.split_once(':').unwrap_or_default();
    let len = match algorithm {
        "sha256" => 32,
        "sha512" => 64,
        _ => 0,
    };
    hex::decode(hex)
        .ok()
        .filter(|b| len > 0 && b.len() == len)
        .map(|b| (algorithm, b))
        .ok_or_else(|| format!("{digest:?} is not a sha256 or sha512 digest"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";

    fn statement(kind: &str, predicate: &str, subject: Value) -> Vec<u8> {
        serde_json::json!({"_type": kind, "subject": [subject], "predicateType": predicate, "predicate": null})
            .to_string()
            .into_bytes()
    }

    fn subject(hex: &str) -> Value {
        serde_json::json!({"name": "", "digest": {"sha256": hex}, "annotations": {"env": "prod"}})
    }

    const HEX: &str = "c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
    const SIGN: Expect<'static> = Expect::Signature { annotations: None };

    #[test]
    fn pae_is_the_dsse_encoding() {
        assert_eq!(
            pae("application/x", b"hi"),
            b"DSSEv1 13 application/x 2 hi".to_vec()
        );
    }

    #[test]
    fn a_cosign_signature_names_the_digest() {
        let ok = statement(STATEMENT_V1, COSIGN_SIGN_PREDICATE, subject(HEX));
        assert!(check(&ok, DIGEST, SIGN).is_ok());
        // Upper-case hex is the same digest.
        let upper = statement(
            STATEMENT_V1,
            COSIGN_SIGN_PREDICATE,
            subject(&HEX.to_uppercase()),
        );
        assert!(check(&upper, DIGEST, SIGN).is_ok());
        let cases = [
            (
                statement(STATEMENT_V01, COSIGN_SIGN_PREDICATE, subject(HEX)),
                "a cosign signature is an in-toto Statement v1, this is https://in-toto.io/Statement/v0.1",
            ),
            (
                statement("https://example/Statement", COSIGN_SIGN_PREDICATE, subject(HEX)),
                "the payload is not an in-toto statement (_type \"https://example/Statement\")",
            ),
            (
                statement(STATEMENT_V1, "https://slsa.dev/provenance/v1", subject(HEX)),
                "predicateType \"https://slsa.dev/provenance/v1\" is not a cosign signature (https://sigstore.dev/cosign/sign/v1)",
            ),
            (
                statement(STATEMENT_V1, COSIGN_SIGN_PREDICATE, subject(&"0".repeat(64))),
                "the statement's subject does not name sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172",
            ),
            (
                statement(STATEMENT_V1, COSIGN_SIGN_PREDICATE, subject("xyz")),
                "the statement names a malformed sha256 digest \"xyz\"",
            ),
            (b"[1]".to_vec(), "the payload is not an in-toto statement (_type \"\")"),
        ];
        for (payload, message) in cases {
            assert_eq!(check(&payload, DIGEST, SIGN).unwrap_err(), message);
        }
        assert!(check(b"{", DIGEST, SIGN)
            .unwrap_err()
            .starts_with("the DSSE payload is not a JSON in-toto statement"));
    }

    #[test]
    fn annotations_are_those_of_the_subject() {
        let ok = statement(STATEMENT_V1, COSIGN_SIGN_PREDICATE, subject(HEX));
        let prod: BTreeMap<String, String> = [("env".into(), "prod".into())].into();
        let dev: BTreeMap<String, String> = [("env".into(), "dev".into())].into();
        let with = |a| Expect::Signature {
            annotations: Some(a),
        };
        assert!(check(&ok, DIGEST, with(&prod)).is_ok());
        assert_eq!(
            check(&ok, DIGEST, with(&dev)).unwrap_err(),
            r#"annotation env=dev is not signed (signed annotations: {"env":"prod"})"#
        );
    }

    #[test]
    fn an_attestation_has_the_requested_predicate_type() {
        let provenance = statement(
            STATEMENT_V01,
            "https://slsa.dev/provenance/v1",
            subject(HEX),
        );
        let slsa = Expect::Attestation {
            predicate_type: "https://slsa.dev/provenance/v1",
        };
        assert!(check(&provenance, DIGEST, slsa).is_ok());
        let other = Expect::Attestation {
            predicate_type: "https://spdx.dev/Document",
        };
        assert_eq!(
            check(&provenance, DIGEST, other).unwrap_err(),
            r#"predicateType "https://slsa.dev/provenance/v1" is not the requested "https://spdx.dev/Document""#
        );
    }
}
