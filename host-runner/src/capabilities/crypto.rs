//! STUB: `crypto/v1/is_certificate_trusted`. Replaced by the real
//! implementation at merge; the payload types keep Kubewarden's exact shape.

use serde::{Deserialize, Serialize};

/// How `data` is encoded: `"Pem"` (bytes of the PEM text) or `"Der"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CertificateEncoding {
    Pem,
    Der,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub encoding: CertificateEncoding,
    pub data: Vec<u8>,
}

/// `{"cert": {...}, "cert_chain": [...] | null, "not_after": "RFC 3339" | null}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateTrustRequest {
    pub cert: Certificate,
    pub cert_chain: Option<Vec<Certificate>>,
    pub not_after: Option<String>,
}

/// `{"trusted": bool, "reason": "..."}`: untrusted is a normal answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateTrustResponse {
    pub trusted: bool,
    pub reason: String,
}

pub fn is_certificate_trusted(
    _req: &CertificateTrustRequest,
) -> Result<CertificateTrustResponse, String> {
    Err("certificate trust checks are not implemented yet".into())
}
