//! The verifier on notation's and notation-go's own vectors (each genuine,
//! each with the policy that must reject it), and on envelopes made here for
//! the rules no vector breaks.

use std::collections::BTreeMap;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Utc};
use imagegate_policy::pem::{encode, Block};
use imagegate_policy::wire::{
    NotationAction, NotationPolicy, NotationStoreKind, NotationTrustStore, VerifyTimestamp,
};

use super::*;
use crate::capabilities::x509::tests::{at, test_data};

const E2E: &str = "notation/notation-e2e/e2e-valid-signature";
const E2E_TIMESTAMPED: &str = "notation/notation-e2e/e2e-with-timestamped-signature";
const SIG_ENV: &str = "notation/notation-go/verifier/testdata/timestamp/sigEnv";
const INTERNAL: &str = "notation/notation-go/internal/testdata";
const GLOBALSIGN_R6: &str =
    "notation/notation-go/verifier/testdata/truststore/x509/tsa/test-timestamp/globalsignRoot.cer";
const DIGICERT_G4: &str =
    "notation/notation-go/verifier/testdata/truststore/x509/tsa/test-mismatch/DigiCertTSARootSHA384.cer";
const JWS: &str = "application/jose+json";
const COSE: &str = "application/cose";

fn pem(der: &[u8]) -> String {
    encode(&Block {
        label: "CERTIFICATE".to_string(),
        der: der.to_vec(),
    })
}

fn e2e_pem() -> String {
    String::from_utf8(test_data("notation/notation-e2e/config/e2e.crt")).unwrap()
}

/// A statement at `level` (strict, permissive, audit) trusting `identities`,
/// with `stores` (kind, PEM).
fn policy(
    level: &str,
    identities: &[&str],
    stores: &[(NotationStoreKind, String)],
) -> NotationPolicy {
    use NotationAction::{Enforce, Log};
    let [authenticity, authentic_timestamp, expiry, revocation] = match level {
        "strict" => [Enforce; 4],
        "permissive" => [Enforce, Log, Log, Log],
        "audit" => [Log; 4],
        other => panic!("level {other}"),
    };
    NotationPolicy {
        name: "test".to_string(),
        level: level.to_string(),
        authenticity,
        authentic_timestamp,
        expiry,
        revocation,
        verify_timestamp: VerifyTimestamp::Always,
        trusted_identities: identities.iter().map(|i| i.to_string()).collect(),
        trust_stores: stores
            .iter()
            .enumerate()
            .map(|(i, (kind, certificates))| NotationTrustStore {
                kind: *kind,
                name: format!("s{i}"),
                certificates: certificates.clone(),
            })
            .collect(),
    }
}

fn trust(policy: &NotationPolicy) -> Trust {
    Trust::new(policy).unwrap()
}

fn blob(layout: &str, digest: &str) -> Vec<u8> {
    test_data(&format!(
        "{layout}/blobs/sha256/{}",
        digest.trim_start_matches("sha256:")
    ))
}

/// The subject a signature manifest names and its envelope layer, read
/// from an OCI layout (discovery reads them so from a registry).
fn referrer(layout: &str, manifest_digest: &str) -> (Descriptor, Descriptor, Vec<u8>) {
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob(layout, manifest_digest)).unwrap();
    assert_eq!(manifest["config"]["mediaType"], ARTIFACT_TYPE);
    let layer: Descriptor = serde_json::from_value(manifest["layers"][0].clone()).unwrap();
    let subject: Descriptor = serde_json::from_value(manifest["subject"].clone()).unwrap();
    let envelope = blob(layout, &layer.digest);
    (subject, layer, envelope)
}

fn e2e() -> (Descriptor, Descriptor, Vec<u8>) {
    referrer(
        E2E,
        "90ceaff260d657d797c408ac73564a9c7bb9d86055877c2a811f0e63b8c6524f",
    )
}

fn run(
    media_type: &str,
    envelope: &[u8],
    subject: &Descriptor,
    policy: &NotationPolicy,
    now: &str,
) -> Result<Verified, String> {
    verify(
        media_type,
        envelope,
        subject,
        &trust(policy),
        &BTreeMap::new(),
        at(now),
    )
}

const REVOCATION_NOTE: &str = "revocation not checked: it needs OCSP or CRL requests (offline)";

#[test]
fn e2e_valid_signature_from_its_oci_layout() {
    let (subject, layer, envelope) = e2e();
    assert_eq!(layer.media_type, JWS);
    assert_eq!(
        subject.digest,
        "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9"
    );
    // the tag-schema index of the layout lists that signature manifest
    let index: serde_json::Value = serde_json::from_slice(&blob(
        E2E,
        "13e107e0dd246f07ff18998a3d39e226965c41477a1bc1765f7617632ff3f283",
    ))
    .unwrap();
    assert_eq!(index["manifests"][0]["artifactType"], ARTIFACT_TYPE);
    let strict = policy("strict", &["*"], &[(NotationStoreKind::Ca, e2e_pem())]);
    let verified = run(JWS, &envelope, &subject, &strict, "2025-06-01T00:00:00Z").unwrap();
    assert_eq!(
        verified,
        Verified {
            format: Format::Jws,
            signer: "CN=e2e,O=Notary,L=Seattle,ST=WA,C=US".to_string(),
            signing_time: at("2023-06-27T05:30:33Z"),
            timestamp: None,
            notes: vec![REVOCATION_NOTE.to_string()],
            valid_until: Some(at("2122-12-19T02:43:39Z")),
        }
    );
    let mut no_revocation = strict.clone();
    no_revocation.revocation = NotationAction::Skip;
    assert!(run(
        JWS,
        &envelope,
        &subject,
        &no_revocation,
        "2025-06-01T00:00:00Z"
    )
    .unwrap()
    .notes
    .is_empty());
}

#[test]
fn trusted_identities_are_subsets_of_the_signer() {
    let (subject, _, envelope) = e2e();
    let with = |identity: &str| {
        let p = policy("strict", &[identity], &[(NotationStoreKind::Ca, e2e_pem())]);
        run(JWS, &envelope, &subject, &p, "2025-06-01T00:00:00Z")
    };
    with("x509.subject: CN=e2e,O=Notary,L=Seattle,ST=WA,C=US").unwrap();
    with("x509.subject: C=US, ST=WA, O=Notary").unwrap();
    assert_eq!(
        with("x509.subject: C=US, ST=WA, O=Notary, CN=other").unwrap_err(),
        "authenticity: signing certificate subject \"CN=e2e,O=Notary,L=Seattle,ST=WA,C=US\" matches none of the trusted identities of statement \"test\""
    );
}

#[test]
fn authenticity_needs_a_trusted_certificate_in_the_chain() {
    let (subject, _, envelope) = e2e();
    let other_root = pem(&test_data(GLOBALSIGN_R6));
    let stranger = policy(
        "strict",
        &["*"],
        &[(NotationStoreKind::Ca, other_root.clone())],
    );
    assert_eq!(
        run(JWS, &envelope, &subject, &stranger, "2025-06-01T00:00:00Z").unwrap_err(),
        "authenticity: no certificate of the signing chain of \"CN=e2e,O=Notary,L=Seattle,ST=WA,C=US\" is in the trust stores ca:s0"
    );
    // a signing-authority store does not vouch for notary.x509 signatures
    let wrong_kind = policy(
        "strict",
        &["*"],
        &[(NotationStoreKind::SigningAuthority, e2e_pem())],
    );
    assert_eq!(
        run(JWS, &envelope, &subject, &wrong_kind, "2025-06-01T00:00:00Z").unwrap_err(),
        "authenticity: trust policy statement \"test\" has no ca: trust store for this signature's signing scheme"
    );
    // audit only logs it
    let audit = policy("audit", &["*"], &[(NotationStoreKind::Ca, other_root)]);
    let verified = run(JWS, &envelope, &subject, &audit, "2025-06-01T00:00:00Z").unwrap();
    assert_eq!(
        verified.notes[0],
        "authenticity failed (logged by level audit): no certificate of the signing chain of \"CN=e2e,O=Notary,L=Seattle,ST=WA,C=US\" is in the trust stores ca:s0"
    );
}

#[test]
fn the_signature_must_be_for_the_image_manifest() {
    let (subject, _, envelope) = e2e();
    let strict = policy("strict", &["*"], &[(NotationStoreKind::Ca, e2e_pem())]);
    let other = |change: &dyn Fn(&mut Descriptor)| {
        let mut s = subject.clone();
        change(&mut s);
        run(JWS, &envelope, &s, &strict, "2025-06-01T00:00:00Z").unwrap_err()
    };
    assert_eq!(
        other(&|s| s.digest = format!("sha256:{}", "1".repeat(64))),
        format!("integrity: the signature is for another artifact: it signs digest sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9, the image's manifest has sha256:{}", "1".repeat(64))
    );
    assert_eq!(
        other(&|s| s.size = 518),
        "integrity: the signature is for another artifact: it signs size 517, the image's manifest has 518"
    );
    assert_eq!(
        other(&|s| s.media_type = "application/vnd.docker.distribution.manifest.v2+json".into()),
        "integrity: the signature is for another artifact: it signs media type application/vnd.oci.image.manifest.v1+json, the image's manifest has application/vnd.docker.distribution.manifest.v2+json"
    );
}

#[test]
fn a_tampered_envelope_fails_integrity() {
    let (subject, _, envelope) = e2e();
    let strict = policy("strict", &["*"], &[(NotationStoreKind::Ca, e2e_pem())]);
    let mut json: serde_json::Value = serde_json::from_slice(&envelope).unwrap();
    let payload = URL_SAFE_NO_PAD
        .decode(json["payload"].as_str().unwrap())
        .unwrap();
    let forged = String::from_utf8(payload)
        .unwrap()
        .replace("\"size\":517", "\"size\":518");
    json["payload"] = URL_SAFE_NO_PAD.encode(forged).into();
    let mut bigger = subject.clone();
    bigger.size = 518;
    assert_eq!(
        run(JWS, &serde_json::to_vec(&json).unwrap(), &bigger, &strict, "2025-06-01T00:00:00Z").unwrap_err(),
        "integrity: the PS256 signature does not verify with the signing certificate \"CN=e2e,O=Notary,L=Seattle,ST=WA,C=US\""
    );
    assert!(run(JWS, b"{}", &subject, &strict, "2025-06-01T00:00:00Z")
        .unwrap_err()
        .starts_with("integrity: not a JWS envelope in flattened JSON: missing field"));
    assert!(
        run(COSE, &envelope, &subject, &strict, "2025-06-01T00:00:00Z")
            .unwrap_err()
            .starts_with("integrity: not a COSE_Sign1_Tagged message: ")
    );
    assert_eq!(
        run(
            "application/json",
            &envelope,
            &subject,
            &strict,
            "2025-06-01T00:00:00Z"
        )
        .unwrap_err(),
        "integrity: \"application/json\" is not a Notation envelope media type"
    );
}

fn timestamped() -> (Descriptor, Vec<u8>, String) {
    let (subject, layer, envelope) = referrer(
        E2E_TIMESTAMPED,
        "6a5cd3a886707a317935dcaf13954fc80ef9aeb665262b6ae4fe469ad7ea3aea",
    );
    assert_eq!(layer.size, 10314);
    let json: serde_json::Value = serde_json::from_slice(&envelope).unwrap();
    let leaf = STANDARD
        .decode(json["header"]["x5c"][0].as_str().unwrap())
        .unwrap();
    (subject, envelope, pem(&leaf))
}

/// Notation's e2e signature with an expiry (passed), a signing certificate
/// valid for a day (expired) and a Microsoft timestamp whose root we do not have.
#[test]
fn e2e_timestamped_signature_expired_and_its_timestamp_unanchored() {
    let (subject, envelope, leaf) = timestamped();
    let now = "2025-06-01T00:00:00Z";
    let strict = policy("strict", &["*"], &[(NotationStoreKind::Ca, leaf.clone())]);
    assert_eq!(
        run(JWS, &envelope, &subject, &strict, now).unwrap_err(),
        "expiry: the signature expired at 2025-01-21T12:39:46Z"
    );
    let permissive = policy(
        "permissive",
        &["*"],
        &[(NotationStoreKind::Ca, leaf.clone())],
    );
    let verified = run(JWS, &envelope, &subject, &permissive, now).unwrap();
    assert_eq!(
        verified.notes,
        [
            "expiry failed (logged by level permissive): the signature expired at 2025-01-21T12:39:46Z".to_string(),
            "authenticTimestamp failed (logged by level permissive): certificate \"CN=testcert7,O=Notary,L=Seattle,ST=WA,C=US\" is not valid at 2025-06-01T00:00:00Z (valid from 2025-01-21T08:36:26Z to 2025-01-22T08:36:26Z); a timestamp countersignature could vouch for the signing time, but the statement has no tsa: trust store".to_string(),
            REVOCATION_NOTE.to_string(),
        ]
    );
    assert_eq!(
        (verified.timestamp, verified.valid_until),
        (None, Some(at("2025-01-21T12:39:46Z")))
    );
    // strict on the time, with the token's own CA as the TSA "root"
    let token = json_timestamp(&envelope);
    let ca = crate::capabilities::timestamp::tests::token_certificates(&token)
        .into_iter()
        .find(|c| {
            c.subject_text()
                .contains("Microsoft Public RSA Timestamping CA 2020")
        })
        .unwrap();
    let mut strict_time = policy(
        "strict",
        &["*"],
        &[
            (NotationStoreKind::Ca, leaf),
            (NotationStoreKind::Tsa, pem(ca.der())),
        ],
    );
    strict_time.expiry = NotationAction::Log;
    assert_eq!(
        run(JWS, &envelope, &subject, &strict_time, now).unwrap_err(),
        "authenticTimestamp: timestamping certificate chain: the chain must end with a self-signed root certificate, not \"CN=Microsoft Public RSA Timestamping CA 2020,O=Microsoft Corporation,C=US\""
    );
}

fn json_timestamp(envelope: &[u8]) -> Vec<u8> {
    let json: serde_json::Value = serde_json::from_slice(envelope).unwrap();
    STANDARD
        .decode(
            json["header"]["io.cncf.notary.timestampSignature"]
                .as_str()
                .unwrap(),
        )
        .unwrap()
}

#[test]
fn user_metadata_must_be_signed() {
    let (subject, envelope, leaf) = timestamped();
    let audit = policy("audit", &["*"], &[(NotationStoreKind::Ca, leaf)]);
    let with = |key: &str, value: &str| {
        let wanted = BTreeMap::from([(key.to_string(), value.to_string())]);
        verify(
            JWS,
            &envelope,
            &subject,
            &trust(&audit),
            &wanted,
            at("2025-06-01T00:00:00Z"),
        )
    };
    with("purpose", "e2e").unwrap();
    assert_eq!(
        with("purpose", "prod").unwrap_err(),
        "user metadata: the signature has purpose=\"e2e\", not \"prod\""
    );
    assert_eq!(
        with("team", "a").unwrap_err(),
        "user metadata: the signature has no team"
    );
}

/// notation-go's timestamped envelopes: subject, media type, and the
/// envelope's own certificate as the `ca:` store.
fn sig_env(name: &str) -> (&'static str, Vec<u8>, String) {
    let envelope = test_data(&format!("{SIG_ENV}/{name}"));
    let (media_type, chain) = if name.starts_with("jws")
        || name.starts_with("without")
        || name == "timestampBeforeNotBefore.sig"
    {
        (JWS, jws::parse(&envelope).unwrap().chain)
    } else {
        (COSE, cose::parse(&envelope).unwrap().chain)
    };
    (media_type, envelope, pem(chain.last().unwrap().der()))
}

fn sig_env_subject() -> Descriptor {
    Descriptor {
        media_type: "application/vnd.docker.distribution.manifest.v2+json".to_string(),
        digest: "sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda"
            .to_string(),
        size: 528,
        ..Descriptor::default()
    }
}

/// Runs a sigEnv envelope at 2025-06-01.
fn run_sig_env(
    media_type: &str,
    envelope: &[u8],
    policy: &NotationPolicy,
) -> Result<Verified, String> {
    run(
        media_type,
        envelope,
        &sig_env_subject(),
        policy,
        "2025-06-01T00:00:00Z",
    )
}

fn with_tsa(ca: String, tsa: &str) -> NotationPolicy {
    policy(
        "strict",
        &["*"],
        &[
            (NotationStoreKind::Ca, ca),
            (NotationStoreKind::Tsa, pem(&test_data(tsa))),
        ],
    )
}

#[test]
fn globalsign_countersignatures_in_jws_and_cose() {
    for (name, time) in [
        ("jwsWithTimestamp.sig", "2024-06-18T06:29:37Z"),
        ("coseWithTimestamp.sig", "2024-06-18T06:27:16Z"),
    ] {
        let (media_type, envelope, ca) = sig_env(name);
        let verified = run_sig_env(media_type, &envelope, &with_tsa(ca.clone(), GLOBALSIGN_R6))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(verified.timestamp, Some(at(time)), "{name}");
        assert_eq!(
            verified.valid_until, None,
            "{name}: the timestamp vouches for the chain"
        );
        assert_eq!(
            run_sig_env(media_type, &envelope, &with_tsa(ca, DIGICERT_G4)).unwrap_err(),
            format!("authenticTimestamp: timestamp countersignature: timestamp signer is not trusted: certificate \"CN=Globalsign TSA for Advanced - G4 - 202311,O=GlobalSign nv-sa,C=BE\" does not chain to a trusted certificate at {time}: issuer not found among the trusted and given certificates"),
            "{name}"
        );
    }
}

#[test]
fn an_expired_certificate_passes_only_with_a_trusted_timestamp() {
    for name in [
        "jwsExpiredWithTimestamp.sig",
        "coseExpiredWithTimestamp.sig",
    ] {
        let (media_type, envelope, ca) = sig_env(name);
        run_sig_env(media_type, &envelope, &with_tsa(ca.clone(), GLOBALSIGN_R6))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut after_expiry = with_tsa(ca.clone(), GLOBALSIGN_R6);
        after_expiry.verify_timestamp = VerifyTimestamp::AfterCertExpiry;
        assert!(run_sig_env(media_type, &envelope, &after_expiry)
            .unwrap()
            .timestamp
            .is_some());
        let no_tsa = policy("strict", &["*"], &[(NotationStoreKind::Ca, ca)]);
        let err = run_sig_env(media_type, &envelope, &no_tsa).unwrap_err();
        assert!(
            err.starts_with("authenticTimestamp: certificate \"CN=testTSA,O=Notary,L=Seattle,ST=WA,C=US\" is not valid at 2025-06-01T00:00:00Z")
                && err.ends_with("but the statement has no tsa: trust store"),
            "{name}: {err}"
        );
    }
}

#[test]
fn after_cert_expiry_checks_a_valid_chain_now() {
    let (media_type, envelope, ca) = sig_env("jwsWithTimestamp.sig");
    let mut after_expiry = with_tsa(ca, DIGICERT_G4);
    after_expiry.verify_timestamp = VerifyTimestamp::AfterCertExpiry;
    // the certificate is valid now: the (untrusted) timestamp is not looked at
    let verified = run_sig_env(media_type, &envelope, &after_expiry).unwrap();
    assert_eq!(
        (verified.timestamp, verified.valid_until),
        (None, Some(at("2033-05-10T04:55:12Z")))
    );
}

#[test]
fn timestamps_outside_the_certificate_validity_fail() {
    for (name, validity) in [
        (
            "timestampBeforeNotBefore.sig",
            "(2099-09-18T11:54:34Z to 2100-09-18T11:54:34Z)",
        ),
        ("timestampAfterNotAfter.sig", "(2000-"),
    ] {
        let (media_type, envelope, ca) = sig_env(name);
        let err = run_sig_env(media_type, &envelope, &with_tsa(ca, GLOBALSIGN_R6)).unwrap_err();
        assert!(
            err.starts_with("authenticTimestamp: the timestamp (")
                && err.contains("is not within the validity of certificate \"CN=testTSA")
                && err.contains(validity),
            "{name}: {err}"
        );
    }
}

#[test]
fn a_tsa_store_requires_a_countersignature() {
    let (media_type, envelope, ca) = sig_env("withoutTimestamp.sig");
    assert_eq!(
        run_sig_env(media_type, &envelope, &with_tsa(ca.clone(), GLOBALSIGN_R6)).unwrap_err(),
        "authenticTimestamp: no timestamp countersignature was found in the signature envelope"
    );
    let no_tsa = policy("strict", &["*"], &[(NotationStoreKind::Ca, ca)]);
    run_sig_env(media_type, &envelope, &no_tsa).unwrap();
}

#[test]
fn notation_go_jws_and_cose_vectors() {
    let subject = Descriptor {
        media_type: "application/vnd.oci.image.manifest.v1+json".to_string(),
        digest: "sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0"
            .to_string(),
        size: 481,
        ..Descriptor::default()
    };
    for (name, media_type, signing_time) in [
        ("jws_signature.sig", JWS, "2023-03-14T08:10:02Z"),
        ("cose_signature.sig", COSE, "2023-03-14T04:45:22Z"),
    ] {
        let envelope = test_data(&format!("{INTERNAL}/{name}"));
        let chain = match media_type {
            JWS => jws::parse(&envelope).unwrap().chain,
            _ => cose::parse(&envelope).unwrap().chain,
        };
        let strict = policy(
            "strict",
            &["x509.subject: C=US, ST=WA, O=Notary, CN=alpine"],
            &[(NotationStoreKind::Ca, pem(chain[0].der()))],
        );
        let verified = run(
            media_type,
            &envelope,
            &subject,
            &strict,
            "2025-06-01T00:00:00Z",
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(verified.signing_time, at(signing_time), "{name}");
        // the last byte is inside the signature in both encodings
        let mut forged = envelope.clone();
        let last = if media_type == JWS {
            forged.len() - 3
        } else {
            forged.len() - 1
        };
        forged[last] ^= 1;
        let err = run(
            media_type,
            &forged,
            &subject,
            &strict,
            "2025-06-01T00:00:00Z",
        )
        .unwrap_err();
        assert!(err.starts_with("integrity: "), "{name}: {err}");
    }
}

#[test]
fn bad_trust_material_is_an_error_of_the_request() {
    let mut p = policy(
        "strict",
        &["*"],
        &[(NotationStoreKind::Ca, "junk".to_string())],
    );
    assert_eq!(
        Trust::new(&p).unwrap_err(),
        "trust store ca:s0: expected \"-----BEGIN ...-----\", found \"junk\""
    );
    p.trust_stores[0].certificates = e2e_pem();
    p.trusted_identities = vec!["x509.subject: CN=a".to_string()];
    assert_eq!(
        Trust::new(&p).unwrap_err(),
        "\"x509.subject: CN=a\": the name must have C, ST (or S) and O attributes; C is missing"
    );
}

// --- envelopes made here (ES256, rcgen): the rules no vector breaks

struct Signer {
    key: aws_lc_rs::signature::EcdsaKeyPair,
    chain: Vec<Vec<u8>>,
}

fn signer() -> Signer {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    for (kind, value) in [
        (DnType::CountryName, "US"),
        (DnType::StateOrProvinceName, "WA"),
        (DnType::OrganizationName, "Lab"),
        (DnType::CommonName, "signer"),
    ] {
        params.distinguished_name.push(kind, value);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(30);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    let cert = params.self_signed(&key).unwrap();
    Signer {
        key: aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
        )
        .unwrap(),
        chain: vec![cert.der().to_vec()],
    }
}

const SUBJECT: &str = r#"{"targetArtifact":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":100}}"#;

fn made_subject() -> Descriptor {
    Descriptor {
        media_type: "application/vnd.oci.image.manifest.v1+json".to_string(),
        digest: format!("sha256:{}", "1".repeat(64)),
        size: 100,
        ..Descriptor::default()
    }
}

/// A JWS envelope with `protected` as given, signed by `signer`.
fn made_jws(signer: &Signer, protected: serde_json::Value) -> Vec<u8> {
    let protected = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&protected).unwrap());
    let payload = URL_SAFE_NO_PAD.encode(SUBJECT);
    let signature = signer
        .key
        .sign(
            &aws_lc_rs::rand::SystemRandom::new(),
            format!("{protected}.{payload}").as_bytes(),
        )
        .unwrap();
    serde_json::to_vec(&serde_json::json!({
        "payload": payload,
        "protected": protected,
        "header": {"x5c": signer.chain.iter().map(|c| STANDARD.encode(c)).collect::<Vec<_>>()},
        "signature": URL_SAFE_NO_PAD.encode(signature.as_ref()),
    }))
    .unwrap()
}

fn headers(extra: serde_json::Value) -> serde_json::Value {
    let mut base = serde_json::json!({
        "alg": "ES256",
        "cty": "application/vnd.cncf.notary.payload.v1+json",
        "crit": ["io.cncf.notary.signingScheme"],
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": "2025-01-01T00:00:00Z",
    });
    for (key, value) in extra.as_object().unwrap() {
        if value.is_null() {
            base.as_object_mut().unwrap().remove(key);
        } else {
            base[key] = value.clone();
        }
    }
    base
}

fn made(signer: &Signer, extra: serde_json::Value, now: &str) -> Result<Verified, String> {
    let p = policy(
        "strict",
        &["x509.subject: C=US,ST=WA,O=Lab"],
        &[(NotationStoreKind::Ca, pem(&signer.chain[0]))],
    );
    run(
        JWS,
        &made_jws(signer, headers(extra)),
        &made_subject(),
        &p,
        now,
    )
}

#[test]
fn envelopes_made_here_check_every_protected_header_rule() {
    let s = signer();
    let now = &DateTime::<Utc>::to_rfc3339(&(Utc::now() + chrono::TimeDelta::hours(1)));
    made(&s, serde_json::json!({}), now).unwrap();
    let error = |extra: serde_json::Value| made(&s, extra, now).unwrap_err();
    let cases = [
        (serde_json::json!({"crit": []}), "integrity: the protected header has no crit list"),
        (serde_json::json!({"crit": ["io.cncf.notary.expiry"]}), "integrity: \"io.cncf.notary.signingScheme\" must be marked critical"),
        (serde_json::json!({"io.cncf.notary.expiry": "2030-01-01T00:00:00Z"}), "integrity: \"io.cncf.notary.expiry\" must be marked critical"),
        (serde_json::json!({"crit": ["io.cncf.notary.signingScheme", "acme.review"]}), "integrity: \"acme.review\" is marked critical but not present"),
        (serde_json::json!({"crit": ["io.cncf.notary.signingScheme", "acme.review"], "acme.review": "done"}), "integrity: critical attribute \"acme.review\" is not understood (imagegate runs no Notation plugins)"),
        (serde_json::json!({"io.cncf.notary.verificationPlugin": "com.example.plugin"}), "integrity: the signature requires a verification plugin (io.cncf.notary.verificationPlugin); imagegate runs no Notation plugins"),
        (serde_json::json!({"crit": ["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"], "io.cncf.notary.expiry": "2024-12-31T00:00:00Z"}), "integrity: expiry 2024-12-31T00:00:00Z is not after the signing time 2025-01-01T00:00:00Z"),
        (serde_json::json!({"alg": "ES384"}), "integrity: the envelope says ES384 but the signing key signs with ES256"),
        (serde_json::json!({"alg": "HS256"}), "integrity: unsupported signature algorithm \"HS256\""),
        (serde_json::json!({"cty": "application/json"}), "integrity: payload content type \"application/json\" is not application/vnd.cncf.notary.payload.v1+json"),
        (serde_json::json!({"io.cncf.notary.signingScheme": "notary.default"}), "integrity: unsupported signing scheme \"notary.default\""),
        (serde_json::json!({"io.cncf.notary.signingTime": null}), "integrity: the protected header has no \"io.cncf.notary.signingTime\""),
        (serde_json::json!({"io.cncf.notary.signingTime": "yesterday"}), "integrity: protected header \"io.cncf.notary.signingTime\" is not an RFC 3339 time: premature end of input"),
        (serde_json::json!({"io.cncf.notary.authenticSigningTime": "2025-01-01T00:00:00Z"}), "integrity: \"io.cncf.notary.authenticSigningTime\" must not be present in a notary.x509 signature"),
    ];
    for (extra, expected) in cases {
        assert_eq!(error(extra.clone()), expected, "{extra}");
    }
    // an unknown attribute that is not critical is fine
    made(&s, serde_json::json!({"acme.review": "done"}), now).unwrap();
    // expiry in the past, at strict
    assert_eq!(
        made(&s, serde_json::json!({"crit": ["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"], "io.cncf.notary.expiry": "2025-02-01T00:00:00Z"}), now).unwrap_err(),
        "expiry: the signature expired at 2025-02-01T00:00:00Z"
    );
}

#[test]
fn signing_authority_signatures_use_their_store_and_authentic_time() {
    let s = signer();
    let authority = serde_json::json!({
        "crit": ["io.cncf.notary.signingScheme", "io.cncf.notary.authenticSigningTime"],
        "io.cncf.notary.signingScheme": "notary.x509.signingAuthority",
        "io.cncf.notary.signingTime": null,
        "io.cncf.notary.authenticSigningTime": DateTime::<Utc>::to_rfc3339(&Utc::now()),
    });
    let envelope = made_jws(&s, headers(authority.clone()));
    let store = pem(&s.chain[0]);
    let p = policy(
        "strict",
        &["*"],
        &[(NotationStoreKind::SigningAuthority, store.clone())],
    );
    let now = Utc::now() + chrono::TimeDelta::hours(1);
    verify(
        JWS,
        &envelope,
        &made_subject(),
        &trust(&p),
        &BTreeMap::new(),
        now,
    )
    .unwrap();
    let ca_only = policy("strict", &["*"], &[(NotationStoreKind::Ca, store.clone())]);
    assert_eq!(
        verify(JWS, &envelope, &made_subject(), &trust(&ca_only), &BTreeMap::new(), now).unwrap_err(),
        "authenticity: trust policy statement \"test\" has no signingAuthority: trust store for this signature's signing scheme"
    );
    // an authentic signing time before the certificate existed
    let mut early = authority.clone();
    early["io.cncf.notary.authenticSigningTime"] = "2001-01-01T00:00:00Z".into();
    let err = verify(
        JWS,
        &made_jws(&s, headers(early)),
        &made_subject(),
        &trust(&p),
        &BTreeMap::new(),
        now,
    )
    .unwrap_err();
    assert!(err.starts_with("authenticTimestamp: at the authentic signing time: certificate \"O=Lab,ST=WA,C=US,CN=signer\" is not valid at 2001-01-01T00:00:00Z"), "{err}");
    let mut missing_crit = authority;
    missing_crit["crit"] = serde_json::json!(["io.cncf.notary.signingScheme"]);
    assert_eq!(
        verify(
            JWS,
            &made_jws(&s, headers(missing_crit)),
            &made_subject(),
            &trust(&p),
            &BTreeMap::new(),
            now
        )
        .unwrap_err(),
        "integrity: \"io.cncf.notary.authenticSigningTime\" must be marked critical"
    );
}
