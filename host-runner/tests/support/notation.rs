//! Notation signatures made by the lab, as `notation sign` writes them on a
//! registry without the referrers API: a JWS or COSE envelope (ES256,
//! `notary.x509`) by a code-signing leaf of a test root, in a referrer
//! manifest with `artifactType application/vnd.cncf.notary.signature`,
//! listed in the referrers tag index.

#![allow(dead_code)] // each test binary uses a different part of the lab

use std::collections::BTreeMap;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use coset::cbor::value::Value;
use coset::{iana, HeaderBuilder, Label, TaggedCborSerializable as _};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose};

use super::bundle::{self, add_referrer, push_artifact};
use super::certs::TestCa;
use super::image::sha256;
use super::registry::Registry;

pub const ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
pub const JWS: &str = "application/jose+json";
pub const COSE: &str = "application/cose";
const PAYLOAD_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";

/// The manifest a signature is about: what its payload names.
#[derive(Debug, Clone)]
pub struct Subject {
    pub media_type: String,
    pub digest: String,
    pub size: usize,
}

impl Subject {
    /// `repo@digest` as the registry stores it.
    pub async fn of(registry: &Registry, repo: &str, digest: &str) -> Subject {
        let (bytes, media_type) = bundle::subject(registry, repo, digest).await;
        Subject {
            media_type,
            digest: digest.to_string(),
            size: bytes.len(),
        }
    }

    /// The descriptor JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// A signing identity: a root (the `ca:` trust store) and a leaf
/// `C=US, ST=WA, O=imagegate lab, CN=<name>` it issued.
pub struct NotationSigner {
    pub root_pem: String,
    leaf_der: Vec<u8>,
    root_der: Vec<u8>,
    key: EcdsaKeyPair,
}

/// What a signature says beyond its subject.
#[derive(Default)]
pub struct Claims {
    /// `io.cncf.notary.signingTime`, unix seconds (default: now).
    pub signed_at: Option<i64>,
    /// `io.cncf.notary.expiry`, unix seconds.
    pub expiry: Option<i64>,
    /// `targetArtifact.annotations` (`notation sign --user-metadata`).
    pub metadata: BTreeMap<String, String>,
}

impl Claims {
    fn signed_at(&self) -> i64 {
        self.signed_at
            .unwrap_or_else(|| chrono::Utc::now().timestamp())
    }
}

impl NotationSigner {
    pub fn new(name: &str) -> NotationSigner {
        let root = TestCa::root(&format!("{name} root"));
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        for (kind, value) in [
            (DnType::CountryName, "US"),
            (DnType::StateOrProvinceName, "WA"),
            (DnType::OrganizationName, "imagegate lab"),
            (DnType::CommonName, name),
        ] {
            params.distinguished_name.push(kind, value);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        let leaf = root.issue(params);
        let der = |pem: &str| {
            imagegate_policy::pem::decode_all(pem).expect("PEM")[0]
                .der
                .clone()
        };
        NotationSigner {
            leaf_der: der(&leaf.cert_pem),
            root_der: der(&root.cert_pem),
            key: EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &leaf.key.serialize_der(),
            )
            .expect("leaf key"),
            root_pem: root.cert_pem,
        }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key
            .sign(&SystemRandom::new(), message)
            .expect("ES256 signature")
            .as_ref()
            .to_vec()
    }

    fn payload(subject: &Subject, claims: &Claims) -> Vec<u8> {
        let mut target = subject.json();
        if !claims.metadata.is_empty() {
            target["annotations"] = serde_json::json!(claims.metadata);
        }
        serde_json::to_vec(&serde_json::json!({"targetArtifact": target})).expect("payload")
    }

    /// A JWS envelope (flattened JSON) over `subject`.
    pub fn jws(&self, subject: &Subject, claims: &Claims) -> Vec<u8> {
        let mut crit = vec!["io.cncf.notary.signingScheme"];
        let mut protected = serde_json::json!({
            "alg": "ES256",
            "cty": PAYLOAD_TYPE,
            "io.cncf.notary.signingScheme": "notary.x509",
            "io.cncf.notary.signingTime": chrono::DateTime::from_timestamp(claims.signed_at(), 0)
                .expect("signing time")
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        if let Some(expiry) = claims.expiry {
            crit.push("io.cncf.notary.expiry");
            protected["io.cncf.notary.expiry"] = chrono::DateTime::from_timestamp(expiry, 0)
                .expect("expiry")
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                .into();
        }
        protected["crit"] = serde_json::json!(crit);
        let protected = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&protected).expect("header"));
        let payload = URL_SAFE_NO_PAD.encode(Self::payload(subject, claims));
        let signature = self.sign(format!("{protected}.{payload}").as_bytes());
        serde_json::to_vec(&serde_json::json!({
            "payload": payload,
            "protected": protected,
            "header": {
                "x5c": [STANDARD.encode(&self.leaf_der), STANDARD.encode(&self.root_der)],
                "io.cncf.notary.signingAgent": "imagegate test lab",
            },
            "signature": URL_SAFE_NO_PAD.encode(signature),
        }))
        .expect("JWS envelope")
    }

    /// A COSE_Sign1_Tagged envelope over `subject`.
    pub fn cose(&self, subject: &Subject, claims: &Claims) -> Vec<u8> {
        let text = |s: &str| Label::Text(s.to_string());
        let time = |unix: i64| Value::Tag(1, Box::new(Value::Integer(unix.into())));
        let mut protected = HeaderBuilder::new()
            .algorithm(iana::Algorithm::ES256)
            .content_type(PAYLOAD_TYPE.to_string())
            .add_critical_label(coset::RegisteredLabelWithPrivate::Text(
                "io.cncf.notary.signingScheme".to_string(),
            ))
            .text_value(
                "io.cncf.notary.signingScheme".to_string(),
                Value::Text("notary.x509".into()),
            )
            .text_value(
                "io.cncf.notary.signingTime".to_string(),
                time(claims.signed_at()),
            );
        if let Some(expiry) = claims.expiry {
            protected = protected
                .add_critical_label(coset::RegisteredLabelWithPrivate::Text(
                    "io.cncf.notary.expiry".to_string(),
                ))
                .text_value("io.cncf.notary.expiry".to_string(), time(expiry));
        }
        let mut unprotected = HeaderBuilder::new().build();
        unprotected.rest.push((
            Label::Int(33),
            Value::Array(vec![
                Value::Bytes(self.leaf_der.clone()),
                Value::Bytes(self.root_der.clone()),
            ]),
        ));
        unprotected.rest.push((
            text("io.cncf.notary.signingAgent"),
            Value::Text("imagegate test lab".into()),
        ));
        let sign1 = coset::CoseSign1Builder::new()
            .protected(protected.build())
            .unprotected(unprotected)
            .payload(Self::payload(subject, claims))
            .create_signature(b"", |tbs| self.sign(tbs))
            .build();
        sign1.to_tagged_vec().expect("COSE_Sign1_Tagged")
    }
}

/// Attaches `envelope` (of `media_type`) to `subject` in `repo`: what
/// `notation sign` pushes on a registry without the referrers API (the
/// referrer by digest, then the referrers tag index); returns the signature
/// manifest's digest.
pub async fn push(
    registry: &Registry,
    repo: &str,
    subject: &Subject,
    media_type: &str,
    envelope: Vec<u8>,
) -> String {
    let config = b"{}".to_vec();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": EMPTY_CONFIG, "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": media_type, "digest": sha256(&envelope), "size": envelope.len()}],
        "subject": subject.json(),
    }))
    .expect("signature manifest");
    let digest = push_artifact(registry, repo, &[&config, &envelope], &manifest).await;
    add_referrer(
        registry,
        repo,
        &subject.digest,
        serde_json::json!({"mediaType": OCI_MANIFEST, "digest": digest,
                           "size": manifest.len(), "artifactType": ARTIFACT_TYPE}),
    )
    .await;
    digest
}
