//! `crypto/v1/is_certificate_trusted`, as policy-evaluator answers it.
//!
//! An untrusted certificate is a normal response (`trusted: false` with one of
//! Kubewarden's reason strings); only malformed input is an error. The chain is
//! ordered intermediates first, root last; without a chain the Mozilla roots
//! (webpki-roots) are the trust anchors. Any extended key usage is accepted.
//! Like webpki (and Kubewarden), the root's own validity is not checked.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use webpki::{EndEntityCert, Error as WebpkiError};

const USED_AFTER_EXPIRATION: &str = "Certificate is being used after its expiration date";
const USED_BEFORE_VALIDITY: &str = "Certificate is being used before its validity date";
const NOT_TRUSTED_BY_CHAIN: &str = "Certificate is not trusted by the provided cert chain";

/// How `data` is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CertificateEncoding {
    Pem,
    Der,
}

/// A certificate: bytes of PEM text or raw DER (a JSON array of numbers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub encoding: CertificateEncoding,
    pub data: Vec<u8>,
}

/// Request: `{"cert": {...}, "cert_chain": [...] | null, "not_after": "RFC 3339" | null}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateTrustRequest {
    pub cert: Certificate,
    #[serde(default)]
    pub cert_chain: Option<Vec<Certificate>>,
    /// The time to check validity at; `None` or `""` = now.
    #[serde(default)]
    pub not_after: Option<String>,
}

/// Response: `{"trusted": bool, "reason": "..."}` (`reason` is `""` when trusted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateTrustResponse {
    pub trusted: bool,
    pub reason: String,
}

fn der(cert: &Certificate, what: &str) -> Result<CertificateDer<'static>, String> {
    match cert.encoding {
        CertificateEncoding::Pem => CertificateDer::from_pem_slice(&cert.data)
            .map_err(|e| format!("{what}: PEM data is not a valid certificate: {e}")),
        CertificateEncoding::Der => Ok(CertificateDer::from(cert.data.clone())),
    }
}

fn verification_time(not_after: Option<&str>) -> Result<UnixTime, String> {
    match not_after.filter(|s| !s.is_empty()) {
        None => Ok(UnixTime::now()),
        Some(text) => {
            let time = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
                format!("Timestamp not_after {text:?} is not in RFC3339 format: {e}")
            })?;
            let secs = u64::try_from(time.timestamp())
                .map_err(|_| format!("Timestamp not_after {text:?} is before 1970"))?;
            Ok(UnixTime::since_unix_epoch(Duration::from_secs(secs)))
        }
    }
}

/// Answers `crypto/v1/is_certificate_trusted`.
pub fn is_certificate_trusted(
    req: &CertificateTrustRequest,
) -> Result<CertificateTrustResponse, String> {
    let cert = der(&req.cert, "cert")?;
    let end_entity = EndEntityCert::try_from(&cert)
        .map_err(|e| format!("Certificate is not a valid end-entity certificate: {e}"))?;
    let time = verification_time(req.not_after.as_deref())?;

    let chain = match &req.cert_chain {
        Some(chain) => chain
            .iter()
            .enumerate()
            .map(|(i, c)| der(c, &format!("cert_chain[{i}]")))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let (anchors, intermediates): (Vec<TrustAnchor<'_>>, &[CertificateDer<'_>]) =
        match (&req.cert_chain, chain.split_last()) {
            (None, _) => (webpki_roots::TLS_SERVER_ROOTS.to_vec(), &[]),
            (Some(_), None) => (Vec::new(), &[]),
            (Some(_), Some((root, intermediates))) => {
                let anchor = webpki::anchor_from_trusted_cert(root)
                    .map_err(|e| format!("cert_chain root is not a usable trust anchor: {e}"))?;
                (vec![anchor], intermediates)
            }
        };

    let result = end_entity.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        intermediates,
        time,
        AnyExtendedKeyUsage,
        None,
        None,
    );
    let reason = match result {
        Ok(_) => None,
        Err(WebpkiError::UnknownIssuer | WebpkiError::InvalidSignatureForPublicKey) => {
            Some(NOT_TRUSTED_BY_CHAIN.to_string())
        }
        Err(WebpkiError::CertExpired { .. }) => Some(USED_AFTER_EXPIRATION.to_string()),
        Err(WebpkiError::CertNotValidYet { .. }) => Some(USED_BEFORE_VALIDITY.to_string()),
        Err(e) => Some(format!("Certificate not trusted: {e}")),
    };
    Ok(CertificateTrustResponse {
        trusted: reason.is_none(),
        reason: reason.unwrap_or_default(),
    })
}

/// Kubewarden accepts any extended key usage (code signing certificates are
/// the usual case, not TLS server ones).
struct AnyExtendedKeyUsage;

impl webpki::ExtendedKeyUsageValidator for AnyExtendedKeyUsage {
    fn validate(&self, _: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), WebpkiError> {
        Ok(())
    }
}
