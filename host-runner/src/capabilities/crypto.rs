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

use super::request::{Certificate, CertificateEncoding, CertificateTrustRequest};
use webpki::{EndEntityCert, Error as WebpkiError};

const USED_AFTER_EXPIRATION: &str = "Certificate is being used after its expiration date";
const USED_BEFORE_VALIDITY: &str = "Certificate is being used before its validity date";
const NOT_TRUSTED_BY_CHAIN: &str = "Certificate is not trusted by the provided cert chain";

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

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    use time::{Duration, OffsetDateTime};

    struct Ca {
        pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca(name: &str, parent: Option<&Ca>) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let cert = match parent {
            Some(p) => params.signed_by(&key, &p.issuer).unwrap(),
            None => params.self_signed(&key).unwrap(),
        };
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn leaf(issuer: &Ca, not_before: OffsetDateTime, not_after: OffsetDateTime) -> String {
        let mut params = CertificateParams::new(vec!["signer.example.com".to_string()]).unwrap();
        params.not_before = not_before;
        params.not_after = not_after;
        params
            .signed_by(&KeyPair::generate().unwrap(), &issuer.issuer)
            .unwrap()
            .pem()
    }

    fn pem(text: &str) -> Certificate {
        Certificate {
            encoding: CertificateEncoding::Pem,
            data: text.as_bytes().to_vec(),
        }
    }

    fn check(
        cert: &str,
        chain: Option<&[&str]>,
        not_after: Option<&str>,
    ) -> CertificateTrustResponse {
        is_certificate_trusted(&CertificateTrustRequest {
            cert: pem(cert),
            cert_chain: chain.map(|c| c.iter().map(|p| pem(p)).collect()),
            not_after: not_after.map(str::to_string),
        })
        .unwrap()
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[test]
    fn trusted_through_intermediate_and_directly_by_root() {
        let root = ca("root", None);
        let intermediate = ca("intermediate", Some(&root));
        let by_intermediate = leaf(
            &intermediate,
            now() - Duration::days(1),
            now() + Duration::days(1),
        );
        let ok = CertificateTrustResponse {
            trusted: true,
            reason: String::new(),
        };
        assert_eq!(
            check(
                &by_intermediate,
                Some(&[&intermediate.pem, &root.pem]),
                None
            ),
            ok
        );
        let by_root = leaf(&root, now() - Duration::days(1), now() + Duration::days(1));
        assert_eq!(check(&by_root, Some(&[&root.pem]), Some("")), ok);
    }

    #[test]
    fn untrusted_is_a_response_with_kubewarden_reasons() {
        let root = ca("root", None);
        let stranger = ca("stranger", None);
        let valid = leaf(
            &root,
            now() - Duration::days(10),
            now() + Duration::days(10),
        );
        let r = check(&valid, Some(&[&stranger.pem]), None);
        assert_eq!(
            (r.trusted, r.reason.as_str()),
            (false, NOT_TRUSTED_BY_CHAIN)
        );
        // no chain: Mozilla roots, which do not include a test CA
        let r = check(&valid, None, None);
        assert_eq!(
            (r.trusted, r.reason.as_str()),
            (false, NOT_TRUSTED_BY_CHAIN)
        );
        let expired = leaf(&root, now() - Duration::days(10), now() - Duration::days(1));
        let r = check(&expired, Some(&[&root.pem]), None);
        assert_eq!(
            (r.trusted, r.reason.as_str()),
            (false, USED_AFTER_EXPIRATION)
        );
        let future = leaf(&root, now() + Duration::days(1), now() + Duration::days(10));
        let r = check(&future, Some(&[&root.pem]), None);
        assert_eq!(
            (r.trusted, r.reason.as_str()),
            (false, USED_BEFORE_VALIDITY)
        );
    }

    #[test]
    fn not_after_moves_the_verification_time() {
        let root = ca("root", None);
        let expired = leaf(&root, now() - Duration::days(10), now() - Duration::days(1));
        let at = (chrono::Utc::now() - chrono::Duration::days(5)).to_rfc3339();
        assert!(check(&expired, Some(&[&root.pem]), Some(&at)).trusted);
    }

    #[test]
    fn malformed_input_is_an_error() {
        let bad_pem = CertificateTrustRequest {
            cert: pem("not a certificate"),
            cert_chain: None,
            not_after: None,
        };
        assert!(is_certificate_trusted(&bad_pem)
            .unwrap_err()
            .starts_with("cert: PEM data"));
        let root = ca("root", None);
        let mut bad_time = CertificateTrustRequest {
            cert: pem(&leaf(
                &root,
                now() - Duration::days(1),
                now() + Duration::days(1),
            )),
            cert_chain: Some(vec![pem(&root.pem)]),
            not_after: Some("yesterday".into()),
        };
        assert!(is_certificate_trusted(&bad_time)
            .unwrap_err()
            .contains("RFC3339"));
        bad_time.not_after = None;
        bad_time.cert_chain = Some(vec![pem("junk")]);
        assert!(is_certificate_trusted(&bad_time)
            .unwrap_err()
            .starts_with("cert_chain[0]"));
    }

    #[test]
    fn wire_format_is_kubewarden_s() {
        let json = r#"{"cert":{"encoding":"Pem","data":[45,45]},"cert_chain":null,"not_after":"2030-01-01T00:00:00Z"}"#;
        let req: CertificateTrustRequest = serde_json::from_str(json).unwrap();
        assert_eq!(req.cert.encoding, CertificateEncoding::Pem);
        assert_eq!(serde_json::to_string(&req).unwrap(), json);
        let der: Certificate = serde_json::from_str(r#"{"encoding":"Der","data":[48]}"#).unwrap();
        assert_eq!(der.encoding, CertificateEncoding::Der);
        let response = CertificateTrustResponse {
            trusted: false,
            reason: "r".into(),
        };
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            r#"{"trusted":false,"reason":"r"}"#
        );
    }
}
