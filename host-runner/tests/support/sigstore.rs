//! A stand-in for the public Sigstore instance: a "Fulcio" CA issuing keyless
//! certificates and a "Rekor" key signing bundles (signed entry timestamps),
//! plus the offline trust config (`--sigstore-trust-config`) that trusts both.
//! Lets keyless verification run end to end without Fulcio/Rekor servers.

use base64::Engine as _;
use rcgen::{
    CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose,
    PublicKeyData, SanType, SigningKey,
};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

use super::certs::{Leaf, TestCa};
use super::image::sha256;

/// Fulcio's OIDC issuer extension (v1: raw UTF-8 bytes).
const ISSUER_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 1];
/// Fulcio's GitHub workflow repository extension (v1: raw UTF-8 bytes).
const GITHUB_REPOSITORY_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 5];

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The keyless identity a certificate is issued for.
pub enum Identity<'a> {
    Email(&'a str),
    Uri(&'a str),
}

/// Fake Fulcio CA + Rekor key.
pub struct FakeSigstore {
    pub fulcio: TestCa,
    rekor: KeyPair,
}

impl Default for FakeSigstore {
    fn default() -> Self {
        FakeSigstore::new()
    }
}

impl FakeSigstore {
    pub fn new() -> FakeSigstore {
        FakeSigstore {
            fulcio: TestCa::root("fake fulcio"),
            rekor: KeyPair::generate().expect("rekor key"),
        }
    }

    /// Rekor's log id: sha256 of its public key, hex.
    pub fn log_id_hex(&self) -> String {
        sha256(&self.rekor.subject_public_key_info())
            .trim_start_matches("sha256:")
            .to_string()
    }

    /// A `ClientTrustConfig` trusting the fake Fulcio CA and Rekor key.
    pub fn trust_config(&self) -> String {
        let pem = &self.fulcio.cert_pem;
        let der = rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
            .map(|c: rustls_pki_types::CertificateDer<'_>| c.to_vec())
            .expect("fulcio der");
        let log_id: Vec<u8> = (0..self.log_id_hex().len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&self.log_id_hex()[i..i + 2], 16).expect("hex"))
            .collect();
        serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": {
                "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                "tlogs": [{"baseUrl": "https://rekor.invalid", "hashAlgorithm": "SHA2_256",
                           "publicKey": {"rawBytes": b64(&self.rekor.subject_public_key_info()),
                                         "keyDetails": "PKIX_ECDSA_P256_SHA_256"},
                           "logId": {"keyId": b64(&log_id)}}],
                "certificateAuthorities": [{"uri": "https://fulcio.invalid",
                                            "certChain": {"certificates": [{"rawBytes": b64(&der)}]}}],
                "ctlogs": []
            },
            "signingConfig": {}
        })
        .to_string()
    }

    /// Writes [`Self::trust_config`] into `dir`.
    pub fn write_trust_config(&self, dir: &Path) -> PathBuf {
        let path = dir.join("trust-config.json");
        std::fs::write(&path, self.trust_config()).expect("write trust config");
        path
    }

    /// A short-lived keyless certificate, as Fulcio issues one after OIDC login.
    pub fn keyless_certificate(
        &self,
        identity: Identity<'_>,
        issuer: &str,
        github_repository: Option<&str>,
    ) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "sigstore.dev");
        params.subject_alt_names.push(match identity {
            Identity::Email(e) => SanType::Rfc822Name(e.try_into().expect("email")),
            Identity::Uri(u) => SanType::URI(u.try_into().expect("uri")),
        });
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(1);
        params.not_after = now + Duration::minutes(10);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                ISSUER_OID,
                issuer.as_bytes().to_vec(),
            ));
        if let Some(repo) = github_repository {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    GITHUB_REPOSITORY_OID,
                    repo.as_bytes().to_vec(),
                ));
        }
        self.fulcio.issue(params)
    }

    /// A Rekor bundle (`dev.sigstore.cosign/bundle`) for a signature: a
    /// hashedrekord body and the signed entry timestamp over it.
    pub fn bundle(&self, payload: &[u8], signature_b64: &str, certificate_pem: &str) -> String {
        let body = serde_json::json!({
            "apiVersion": "0.0.1", "kind": "hashedrekord",
            "spec": {"data": {"hash": {"algorithm": "sha256",
                                       "value": sha256(payload).trim_start_matches("sha256:")}},
                     "signature": {"content": signature_b64,
                                   "publicKey": {"content": b64(certificate_pem.as_bytes())}}}
        });
        let body = b64(body.to_string().as_bytes());
        let integrated_time = OffsetDateTime::now_utc().unix_timestamp();
        // RFC 8785 canonical JSON: sorted keys, no whitespace.
        let canonical = format!(
            r#"{{"body":"{body}","integratedTime":{integrated_time},"logID":"{}","logIndex":1}}"#,
            self.log_id_hex()
        );
        let set = b64(&self.rekor.sign(canonical.as_bytes()).expect("SET"));
        serde_json::json!({
            "SignedEntryTimestamp": set,
            "Payload": {"body": body, "integratedTime": integrated_time,
                        "logIndex": 1, "logID": self.log_id_hex()}
        })
        .to_string()
    }
}
