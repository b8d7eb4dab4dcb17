//! The Sigstore trust root: which Fulcio CAs, transparency logs (Rekor), CT
//! logs and timestamp authorities are trusted, and when.
//!
//! Read from `--sigstore-trust-config`, else the embedded default: the
//! public-good `trusted_root.json` pinned in this source tree
//! (`public_good_trusted_root.json`, as shipped in the test data of the
//! `sigstore` crate 0.15.0). It is never refreshed (no TUF offline): a key
//! Sigstore rotates in later is unknown until the file is replaced.
//!
//! Accepted file formats (JSON, protobuf-specs field names): a
//! `ClientTrustConfig` (`{"mediaType": ..., "trustedRoot": {...}}`) or a bare
//! `TrustedRoot`, as `cosign trusted-root create` and the Sigstore TUF
//! repository write them. Every entry needs `validFor.start` (`end` is
//! optional and inclusive); log ids are kept as written, never recomputed.
//! A log whose key cannot be used (an algorithm the host does not verify) is
//! kept with the reason, so an entry of that log is rejected saying why.

use anyhow::{bail, Context};
use base64::Engine as _;
use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use sigstore::crypto::CosignVerificationKey;
use sigstore::trust::ManualTrustRoot;
use std::path::Path;

/// The pinned public-good trust root used without `--sigstore-trust-config`.
const PUBLIC_GOOD: &str = include_str!("public_good_trusted_root.json");

/// What the host trusts for Sigstore signatures.
#[derive(Debug)]
pub struct TrustRoot {
    /// Where it came from, for messages.
    pub(crate) source: String,
    pub(crate) certificate_authorities: Vec<Authority>,
    pub(crate) tlogs: Vec<Log>,
    pub(crate) ctlogs: Vec<Log>,
    pub(crate) timestamp_authorities: Vec<Authority>,
}

/// A certificate authority (Fulcio) or timestamp authority.
#[derive(Debug)]
pub(crate) struct Authority {
    /// `uri`, else the subject's common name.
    pub(crate) name: String,
    /// As listed: the issuing certificate first, the root last.
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) valid: Validity,
}

/// A transparency log (Rekor) or certificate transparency log.
#[derive(Debug)]
pub(crate) struct Log {
    /// `baseUrl`.
    pub(crate) name: String,
    /// `logId.keyId` as written.
    pub(crate) id: Vec<u8>,
    /// DER SubjectPublicKeyInfo (`rawBytes`).
    pub(crate) spki: Vec<u8>,
    pub(crate) key: Result<CosignVerificationKey, String>,
    pub(crate) valid: Validity,
}

/// `validFor`: unix seconds, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Validity {
    pub(crate) start: i64,
    pub(crate) end: Option<i64>,
}

impl Validity {
    pub(crate) fn contains(&self, t: i64) -> bool {
        self.start <= t && self.end.is_none_or(|end| t <= end)
    }
}

impl std::fmt::Display for Validity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "from {}", rfc3339(self.start))?;
        match self.end {
            Some(end) => write!(f, " to {}", rfc3339(end)),
            None => Ok(()),
        }
    }
}

/// `2026-04-09T07:23:29Z` for unix seconds, for messages.
pub(crate) fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(crate::capabilities::x509::rfc3339)
        .unwrap_or_else(|| format!("{t} (unix)"))
}

impl Log {
    /// The key, or why this log's entries cannot be checked.
    pub(crate) fn key(&self) -> Result<&CosignVerificationKey, String> {
        self.key
            .as_ref()
            .map_err(|e| format!("the key of log {} is unusable: {e}", self.name))
    }
}

impl TrustRoot {
    /// `--sigstore-trust-config`, or the embedded public-good root.
    pub fn load(path: Option<&Path>) -> anyhow::Result<TrustRoot> {
        match path {
            None => parse(
                PUBLIC_GOOD,
                "the embedded public-good trust root".to_string(),
            ),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading Sigstore trust config {}", path.display()))?;
                parse(&text, format!("trust root {}", path.display()))
                    .with_context(|| format!("Sigstore trust config {}", path.display()))
            }
        }
    }

    /// The tlog with this log id.
    pub(crate) fn tlog(&self, id: &[u8]) -> Option<&Log> {
        self.tlogs.iter().find(|l| l.id == id)
    }

    /// The CT log with this log id.
    pub(crate) fn ctlog(&self, id: &[u8]) -> Option<&Log> {
        self.ctlogs.iter().find(|l| l.id == id)
    }

    /// The same material in the form sigstore's cosign client takes (the
    /// legacy `.sig` path): every CA certificate, log keys by hex log id.
    pub fn manual(&self) -> ManualTrustRoot<'static> {
        let keys = |logs: &[Log]| {
            logs.iter()
                .map(|l| (hex::encode(&l.id), l.spki.clone()))
                .collect()
        };
        ManualTrustRoot {
            fulcio_certs: self
                .certificate_authorities
                .iter()
                .flat_map(|ca| ca.chain.iter().cloned())
                .collect(),
            rekor_keys: keys(&self.tlogs),
            ctfe_keys: keys(&self.ctlogs),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrustedRootFile {
    #[serde(default)]
    tlogs: Vec<LogFile>,
    #[serde(default)]
    certificate_authorities: Vec<AuthorityFile>,
    #[serde(default)]
    ctlogs: Vec<LogFile>,
    #[serde(default)]
    timestamp_authorities: Vec<AuthorityFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogFile {
    #[serde(default)]
    base_url: String,
    public_key: PublicKeyFile,
    log_id: LogIdFile,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublicKeyFile {
    raw_bytes: String,
    #[serde(default)]
    valid_for: Option<ValidForFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogIdFile {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthorityFile {
    #[serde(default)]
    uri: String,
    #[serde(default)]
    subject: Option<SubjectFile>,
    cert_chain: CertChainFile,
    #[serde(default)]
    valid_for: Option<ValidForFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubjectFile {
    #[serde(default)]
    common_name: String,
}

#[derive(Deserialize)]
struct CertChainFile {
    certificates: Vec<RawBytes>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytes {
    raw_bytes: String,
}

#[derive(Deserialize)]
struct ValidForFile {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
}

fn b64(field: &str, value: &str) -> anyhow::Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(value)
        .with_context(|| format!("{field} is not base64"))
}

fn time(field: &str, value: &str) -> anyhow::Result<i64> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp())
        .with_context(|| format!("{field}: {value:?} is not an RFC 3339 time"))
}

fn validity(field: &str, v: Option<&ValidForFile>) -> anyhow::Result<Validity> {
    let Some(start) = v.and_then(|v| v.start.as_deref()) else {
        bail!("{field}.start is required");
    };
    Ok(Validity {
        start: time(&format!("{field}.start"), start)?,
        end: v
            .and_then(|v| v.end.as_deref())
            .map(|end| time(&format!("{field}.end"), end))
            .transpose()?,
    })
}

pub(crate) fn parse(text: &str, source: String) -> anyhow::Result<TrustRoot> {
    let mut value: serde_json::Value = serde_json::from_str(text).context("not JSON")?;
    if let Some(inner) = value.get_mut("trustedRoot") {
        value = inner.take();
    }
    let file: TrustedRootFile =
        serde_json::from_value(value).context("not a Sigstore TrustedRoot / ClientTrustConfig")?;
    let root = TrustRoot {
        source,
        certificate_authorities: authorities(
            "certificateAuthorities",
            &file.certificate_authorities,
        )?,
        tlogs: logs("tlogs", &file.tlogs)?,
        ctlogs: logs("ctlogs", &file.ctlogs)?,
        timestamp_authorities: authorities("timestampAuthorities", &file.timestamp_authorities)?,
    };
    if root.certificate_authorities.is_empty() && root.tlogs.is_empty() {
        bail!("no certificateAuthorities and no tlogs: nothing to trust");
    }
    Ok(root)
}

fn authorities(name: &str, list: &[AuthorityFile]) -> anyhow::Result<Vec<Authority>> {
    list.iter()
        .enumerate()
        .map(|(i, a)| {
            let at = format!("{name}[{i}]");
            let chain = a
                .cert_chain
                .certificates
                .iter()
                .enumerate()
                .map(|(j, c)| {
                    b64(
                        &format!("{at}.certChain.certificates[{j}].rawBytes"),
                        &c.raw_bytes,
                    )
                    .map(CertificateDer::from)
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            if chain.is_empty() {
                bail!("{at}.certChain: no certificates");
            }
            let name = if a.uri.is_empty() {
                a.subject
                    .as_ref()
                    .map(|s| s.common_name.clone())
                    .unwrap_or_default()
            } else {
                a.uri.clone()
            };
            Ok(Authority {
                name,
                chain,
                valid: validity(&format!("{at}.validFor"), a.valid_for.as_ref())?,
            })
        })
        .collect()
}

fn logs(name: &str, list: &[LogFile]) -> anyhow::Result<Vec<Log>> {
    list.iter()
        .enumerate()
        .map(|(i, l)| {
            let at = format!("{name}[{i}]");
            let spki = b64(&format!("{at}.publicKey.rawBytes"), &l.public_key.raw_bytes)?;
            Ok(Log {
                name: l.base_url.clone(),
                id: b64(&format!("{at}.logId.keyId"), &l.log_id.key_id)?,
                key: CosignVerificationKey::try_from_der(&spki).map_err(|e| e.to_string()),
                spki,
                valid: validity(
                    &format!("{at}.publicKey.validFor"),
                    l.public_key.valid_for.as_ref(),
                )?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::PublicKeyData;
    use sigstore::trust::TrustRoot as _;

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
                       "publicKey": {"rawBytes": b(&rekor.subject_public_key_info()), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                                     "validFor": {"start": "2021-01-12T11:53:27.000Z"}},
                       "logId": {"keyId": b(&[0xab, 0x01])}}],
            "certificateAuthorities": [{"subject": {"organization": "test"}, "uri": "https://fulcio.example",
                       "certChain": {"certificates": [{"rawBytes": b(ca.der())}]},
                       "validFor": {"start": "2020-01-01T00:00:00Z", "end": "2030-01-01T00:00:00Z"}}],
            "ctlogs": [],
            "timestampAuthorities": []
        });
        let config = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": root.clone(),
            "signingConfig": {}
        });
        for text in [root.to_string(), config.to_string()] {
            let root = parse(&text, "test".into()).unwrap();
            let ca = &root.certificate_authorities[0];
            assert_eq!(ca.name, "https://fulcio.example");
            assert!(ca.valid.contains(1_893_456_000), "end is inclusive");
            assert!(!ca.valid.contains(1_893_456_001));
            assert!(root.tlog(&[0xab, 0x01]).unwrap().key().is_ok());
            let manual = root.manual();
            assert_eq!(manual.fulcio_certs().unwrap().len(), 1);
            let keys = manual.rekor_keys().unwrap();
            assert_eq!(
                keys.get("ab01").copied(),
                Some(rekor.subject_public_key_info().as_slice())
            );
        }
    }

    #[test]
    fn the_default_is_the_public_good_root() {
        let root = TrustRoot::load(None).unwrap();
        assert_eq!(root.source, "the embedded public-good trust root");
        let names: Vec<&str> = root.tlogs.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "https://rekor.sigstore.dev",
                "https://log2025-1.rekor.sigstore.dev"
            ]
        );
        assert!(root.tlogs.iter().all(|l| l.key().is_ok()));
        assert_eq!(root.ctlogs.len(), 2);
        assert_eq!(root.timestamp_authorities.len(), 1);
        assert_eq!(
            root.timestamp_authorities[0].valid.to_string(),
            "from 2025-07-04T00:00:00Z"
        );
    }

    #[test]
    fn rejects_files_that_trust_nothing_or_are_malformed() {
        let e = parse(r#"{"mediaType":"x","tlogs":[]}"#, "t".into()).unwrap_err();
        assert!(format!("{e:#}").contains("nothing to trust"), "{e:#}");
        let e = parse(
            r#"{"tlogs":[{"publicKey":{"rawBytes":"%"},"logId":{"keyId":"AA=="}}]}"#,
            "t".into(),
        )
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("tlogs[0].publicKey.rawBytes"),
            "{e:#}"
        );
        let e = parse(
            r#"{"tlogs":[{"publicKey":{"rawBytes":"AA=="},"logId":{"keyId":"AA=="}}]}"#,
            "t".into(),
        )
        .unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "tlogs[0].publicKey.validFor.start is required"
        );
        assert!(parse("[1]", "t".into()).is_err());
    }

    #[test]
    fn unusable_log_keys_are_kept_with_the_reason() {
        let root = parse(
            r#"{"tlogs":[{"baseUrl":"https://odd","publicKey":{"rawBytes":"AAEC","validFor":{"start":"2020-01-01T00:00:00Z"}},"logId":{"keyId":"AA=="}}]}"#,
            "t".into(),
        )
        .unwrap();
        let e = root.tlog(&[0]).unwrap().key().unwrap_err();
        assert!(
            e.starts_with("the key of log https://odd is unusable: "),
            "{e}"
        );
    }
}
