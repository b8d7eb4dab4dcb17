//! Offline Sigstore trust root (`--sigstore-trust-config`).
//!
//! Keyless signatures are only trusted when their certificate chains to a
//! Fulcio CA and their Rekor bundle is signed by a known Rekor key. Kubewarden
//! fetches those from the Sigstore TUF repository or reads them from
//! `--sigstore-trust-config`; imagegate only does the latter (air-gapped
//! clusters, private Sigstore deployments, and no network in tests).
//!
//! Accepted file formats (JSON, protobuf-specs field names):
//! a `ClientTrustConfig` (`{"mediaType": ..., "trustedRoot": {...}}`) or a bare
//! `TrustedRoot` (`{"mediaType": ..., "tlogs": [...], "certificateAuthorities":
//! [...], "ctlogs": [...]}`), as `cosign trusted-root create` and the Sigstore
//! TUF repository (`trusted_root.json`) write them. Validity windows
//! (`validFor`) are not enforced: every listed CA and key is trusted.

use anyhow::{bail, Context};
use base64::Engine as _;
use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use sigstore::trust::ManualTrustRoot;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrustedRoot {
    #[serde(default)]
    tlogs: Vec<TransparencyLog>,
    #[serde(default)]
    certificate_authorities: Vec<CertificateAuthority>,
    #[serde(default)]
    ctlogs: Vec<TransparencyLog>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransparencyLog {
    public_key: RawBytes,
    log_id: LogId,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogId {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CertificateAuthority {
    cert_chain: CertChain,
}

#[derive(Deserialize)]
struct CertChain {
    certificates: Vec<RawBytes>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytes {
    raw_bytes: String,
}

fn b64(field: &str, value: &str) -> anyhow::Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(value)
        .with_context(|| format!("{field} is not base64"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a trust config file into the trust root sigstore's client takes.
pub(crate) fn load(path: &Path) -> anyhow::Result<ManualTrustRoot<'static>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading Sigstore trust config {}", path.display()))?;
    parse(&text).with_context(|| format!("Sigstore trust config {}", path.display()))
}

fn parse(text: &str) -> anyhow::Result<ManualTrustRoot<'static>> {
    let mut value: serde_json::Value = serde_json::from_str(text).context("not JSON")?;
    if let Some(inner) = value.get_mut("trustedRoot") {
        value = inner.take();
    }
    let root: TrustedRoot =
        serde_json::from_value(value).context("not a Sigstore TrustedRoot / ClientTrustConfig")?;
    let mut trust = ManualTrustRoot::default();
    for (i, ca) in root.certificate_authorities.iter().enumerate() {
        for (j, cert) in ca.cert_chain.certificates.iter().enumerate() {
            let field = format!("certificateAuthorities[{i}].certChain.certificates[{j}].rawBytes");
            trust
                .fulcio_certs
                .push(CertificateDer::from(b64(&field, &cert.raw_bytes)?));
        }
    }
    trust.rekor_keys = keys("tlogs", &root.tlogs)?;
    trust.ctfe_keys = keys("ctlogs", &root.ctlogs)?;
    if trust.fulcio_certs.is_empty() && trust.rekor_keys.is_empty() {
        bail!("no certificateAuthorities and no tlogs: nothing to trust");
    }
    Ok(trust)
}

/// Log public keys (DER SubjectPublicKeyInfo) keyed by hex log id, the form
/// sigstore looks Rekor bundles up with.
fn keys(name: &str, logs: &[TransparencyLog]) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for (i, log) in logs.iter().enumerate() {
        let id = b64(&format!("{name}[{i}].logId.keyId"), &log.log_id.key_id)?;
        let key = b64(
            &format!("{name}[{i}].publicKey.rawBytes"),
            &log.public_key.raw_bytes,
        )?;
        out.insert(hex(&id), key);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::PublicKeyData;
    use sigstore::trust::TrustRoot;

    fn b(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn reads_client_trust_config_and_bare_trusted_root() {
        let ca = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let rekor = rcgen::KeyPair::generate().unwrap();
        let root = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [{"baseUrl": "https://rekor.example", "hashAlgorithm": "SHA2_256",
                       "publicKey": {"rawBytes": b(&rekor.subject_public_key_info()), "keyDetails": "PKIX_ECDSA_P256_SHA_256"},
                       "logId": {"keyId": b(&[0xab, 0x01])}}],
            "certificateAuthorities": [{"subject": {"organization": "test"}, "uri": "https://fulcio.example",
                       "certChain": {"certificates": [{"rawBytes": b(ca.der())}]},
                       "validFor": {"start": "2020-01-01T00:00:00Z"}}],
            "ctlogs": [],
            "timestampAuthorities": []
        });
        let config = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": root.clone(),
            "signingConfig": {}
        });
        for text in [root.to_string(), config.to_string()] {
            let trust = parse(&text).unwrap();
            assert_eq!(trust.fulcio_certs().unwrap().len(), 1);
            let keys = trust.rekor_keys().unwrap();
            assert_eq!(
                keys.get("ab01").copied(),
                Some(rekor.subject_public_key_info().as_slice())
            );
        }
    }

    #[test]
    fn rejects_files_that_trust_nothing_or_are_malformed() {
        let e = parse(r#"{"mediaType":"x","tlogs":[]}"#).unwrap_err();
        assert!(format!("{e:#}").contains("nothing to trust"), "{e:#}");
        let e = parse(r#"{"tlogs":[{"publicKey":{"rawBytes":"%"},"logId":{"keyId":"AA=="}}]}"#)
            .unwrap_err();
        assert!(
            format!("{e:#}").contains("tlogs[0].publicKey.rawBytes"),
            "{e:#}"
        );
        assert!(parse("[1]").is_err());
    }
}
