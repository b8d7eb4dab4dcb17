//! Notary key handling: TUF key entries (`ecdsa`, `rsa`, `ecdsa-x509`,
//! `rsa-x509`), key IDs, signature methods (`ecdsa` = P-256 raw r‖s over
//! SHA-256, `rsapss` = RSASSA-PSS SHA-256 with a 32-byte salt) and PEM keys
//! pinned in settings.
//!
//! Keys are compared by key material (the decoded public key), never only by
//! key ID: the same key has different IDs as a bare key and as a certificate.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use imagegate_policy::pem;
use p256::ecdsa::signature::Verifier as _;
use p256::pkcs8::DecodePublicKey as _;
use rsa::pkcs1::DecodeRsaPublicKey as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use x509_cert::der::{Decode as _, Encode as _};

use crate::capabilities::canonical;

/// A public key, independent of how it was written down.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyMaterial {
    Ecdsa(p256::ecdsa::VerifyingKey),
    Rsa(rsa::PublicKey),
}

/// Subject and validity of the certificate a `*-x509` key is wrapped in.
#[derive(Debug, Clone, PartialEq)]
pub struct CertInfo {
    pub common_name: Option<String>,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
}

/// One entry of a `keys` map in root.json or targets.json.
#[derive(Debug, Clone, PartialEq)]
pub struct TufKey {
    pub keytype: String,
    pub material: KeyMaterial,
    pub cert: Option<CertInfo>,
}

impl TufKey {
    /// Parses a key entry and checks that `id` is its key ID.
    pub fn parse(id: &str, entry: &Value) -> Result<TufKey, String> {
        let keytype = entry["keytype"]
            .as_str()
            .ok_or_else(|| format!("key {id}: no keytype"))?;
        let public = entry["keyval"]["public"]
            .as_str()
            .ok_or_else(|| format!("key {id}: no keyval.public"))?;
        let computed = key_id(keytype, public)?;
        if computed != id {
            return Err(format!(
                "key id {id} does not match its key (computed {computed})"
            ));
        }
        let raw = B64
            .decode(public)
            .map_err(|e| format!("key {id}: keyval.public is not base64: {e}"))?;
        let (material, cert) = match keytype {
            "ecdsa" | "rsa" => (
                spki_material(&raw).map_err(|e| format!("key {id}: {e}"))?,
                None,
            ),
            "ecdsa-x509" | "rsa-x509" => {
                let text = String::from_utf8(raw)
                    .map_err(|_| format!("key {id}: certificate is not PEM"))?;
                let der = pem::decode_all(&text)
                    .map_err(|e| format!("key {id}: {e}"))?
                    .into_iter()
                    .find(|block| block.label == "CERTIFICATE")
                    .ok_or_else(|| format!("key {id}: no PEM certificate"))?
                    .der;
                let (material, info) = cert_material(&der).map_err(|e| format!("key {id}: {e}"))?;
                (material, Some(info))
            }
            other => return Err(format!("key {id}: unsupported key type {other:?}")),
        };
        let expected_rsa = keytype.starts_with("rsa");
        if expected_rsa != matches!(material, KeyMaterial::Rsa(_)) {
            return Err(format!(
                "key {id}: key type {keytype} does not match the key it holds"
            ));
        }
        Ok(TufKey {
            keytype: keytype.to_string(),
            material,
            cert,
        })
    }
}

/// Notary key ID: hex SHA-256 of the canonical JSON of the public key entry.
pub fn key_id(keytype: &str, public_b64: &str) -> Result<String, String> {
    let entry = json!({"keytype": keytype, "keyval": {"private": null, "public": public_b64}});
    Ok(hex::encode(Sha256::digest(canonical::to_vec(&entry)?)))
}

/// Checks one signature `sig` made with `method` over `message`.
pub fn verify_signature(material: &KeyMaterial, method: &str, message: &[u8], sig: &[u8]) -> bool {
    match (material, method) {
        (KeyMaterial::Ecdsa(key), "ecdsa") => p256::ecdsa::Signature::from_slice(sig)
            .map(|s| key.verify(message, &s).is_ok())
            .unwrap_or(false),
        (KeyMaterial::Rsa(key), "rsapss") => {
            let verifier = rsa::pss::VerifyingKey::<Sha256>::new(key.clone());
            rsa::pss::Signature::try_from(sig)
                .map(|s| verifier.verify(message, &s).is_ok())
                .unwrap_or(false)
        }
        _ => false,
    }
}

/// Parses a PEM public key or certificate as written in settings, with the
/// guest's PEM reader (the one that validated the settings). Notary's own PEM
/// files carry header lines such as `role: jenkins`; they are skipped.
pub fn parse_pinned(pem: &str) -> Result<KeyMaterial, String> {
    let blocks = pem::decode_all(pem)?;
    let pem::Block { label, der } = blocks.first().ok_or("no PEM block")?;
    match label.as_str() {
        "PUBLIC KEY" => spki_material(der),
        "RSA PUBLIC KEY" => rsa::PublicKey::from_pkcs1_der(der)
            .map(KeyMaterial::Rsa)
            .map_err(|e| format!("bad RSA public key: {e}")),
        "CERTIFICATE" => cert_material(der).map(|(m, _)| m),
        other => Err(format!(
            "unsupported PEM block {other:?} (expected PUBLIC KEY or CERTIFICATE)"
        )),
    }
}

/// Decodes a DER SubjectPublicKeyInfo holding a P-256 or RSA key.
fn spki_material(der: &[u8]) -> Result<KeyMaterial, String> {
    if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
        return Ok(KeyMaterial::Ecdsa(key));
    }
    rsa::PublicKey::from_public_key_der(der)
        .map(KeyMaterial::Rsa)
        .map_err(|_| "not a P-256 or RSA public key".to_string())
}

fn cert_material(der: &[u8]) -> Result<(KeyMaterial, CertInfo), String> {
    let cert =
        x509_cert::Certificate::from_der(der).map_err(|e| format!("bad certificate: {e}"))?;
    let tbs = cert.tbs_certificate();
    let spki = tbs
        .subject_public_key_info()
        .to_der()
        .map_err(|e| format!("bad certificate key: {e}"))?;
    let common_name = tbs
        .subject()
        .common_name()
        .map_err(|e| format!("bad certificate subject: {e}"))?
        .map(String::from);
    let secs = |t: x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
    };
    let info = CertInfo {
        common_name,
        not_before: secs(tbs.validity().not_before),
        not_after: secs(tbs.validity().not_after),
    };
    Ok((spki_material(&spki)?, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> Value {
        let path = format!(
            "{}/tests/data/notary-example/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn parses_every_key_of_the_example_with_matching_ids() {
        let root = example("root.json");
        let targets = example("targets.json");
        let mut types = Vec::new();
        for keys in [
            &root["signed"]["keys"],
            &targets["signed"]["delegations"]["keys"],
        ] {
            for (id, entry) in keys.as_object().unwrap() {
                types.push(TufKey::parse(id, entry).unwrap().keytype);
            }
        }
        types.sort();
        assert_eq!(
            types,
            ["ecdsa", "ecdsa", "ecdsa", "ecdsa", "ecdsa-x509", "rsa-x509"]
        );
    }

    #[test]
    fn root_certificate_names_the_gun() {
        let root = example("root.json");
        let id = "b80ab839305de11f4c628b32da966d097dda149324cd3b16f60e3d5c99c0b4d3";
        let key = TufKey::parse(id, &root["signed"]["keys"][id]).unwrap();
        assert_eq!(
            key.cert.unwrap().common_name.as_deref(),
            Some("127.0.0.1:5000/demo/alpine")
        );
    }

    #[test]
    fn rejects_a_key_under_the_wrong_id() {
        let root = example("root.json");
        let id = "9da10651f6d3fd14837f3dde48f5f9fa9e5f849881eb22a8132c56ee92f72163";
        let err = TufKey::parse("00ff", &root["signed"]["keys"][id]).unwrap_err();
        assert!(err.contains("key id 00ff does not match its key"), "{err}");
    }

    #[test]
    fn pinned_pem_with_role_header_equals_the_delegation_key() {
        let expected = example("expected.json");
        let pinned = parse_pinned(
            expected["keys"]["jenkins"]["public_key_pem"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let targets = example("targets.json");
        let id = "e847787888e5235938b4484e1d590da1e1a34e0f6aa19e21dc7dc116375b67f0";
        let key = TufKey::parse(id, &targets["signed"]["delegations"]["keys"][id]).unwrap();
        assert_eq!(key.material, pinned);
        let alice = parse_pinned(expected["keys"]["alice"]["cert_pem"].as_str().unwrap()).unwrap();
        assert!(matches!(alice, KeyMaterial::Rsa(_)));
        assert_ne!(alice, pinned);
    }

    #[test]
    fn verifies_ecdsa_and_rsapss_signatures_of_the_example() {
        for (file, owner) in [
            ("targets/jenkins.json", "targets"),
            ("targets/alice.json", "targets"),
        ] {
            let doc = example(file);
            let parent = example(&format!("{owner}.json"));
            let sig = &doc["signatures"][0];
            let id = sig["keyid"].as_str().unwrap();
            let key = TufKey::parse(id, &parent["signed"]["delegations"]["keys"][id]).unwrap();
            let message = canonical::to_vec(&doc["signed"]).unwrap();
            let raw = B64.decode(sig["sig"].as_str().unwrap()).unwrap();
            let method = sig["method"].as_str().unwrap();
            assert!(
                verify_signature(&key.material, method, &message, &raw),
                "{file}"
            );
            let mut tampered = message.clone();
            tampered.push(b' ');
            assert!(
                !verify_signature(&key.material, method, &tampered, &raw),
                "{file}"
            );
        }
    }

    #[test]
    fn pem_errors_are_reported() {
        assert!(parse_pinned("garbage")
            .unwrap_err()
            .contains("expected \"-----BEGIN"));
        assert!(parse_pinned("").unwrap_err().contains("no PEM block"));
        assert!(parse_pinned("-----BEGIN PUBLIC KEY-----\nAAAA\n")
            .unwrap_err()
            .contains("missing \"-----END PUBLIC KEY-----\""));
        // A well-formed block (an empty DER SEQUENCE) of a kind Notary has no use for.
        assert!(
            parse_pinned("-----BEGIN FOO-----\nMAA=\n-----END FOO-----\n")
                .unwrap_err()
                .contains("unsupported")
        );
    }
}
