//! Signed certificate timestamps (RFC 6962) embedded in Fulcio certificates:
//! a CT log of the trust root promised to publish the certificate.
//!
//! The log signed the precertificate: the leaf's TBSCertificate without the
//! SCT extension (removed from the original DER, never re-encoded), with the
//! hash of the issuer's public key.

use sha2::{Digest, Sha256};
use sigstore::crypto::Signature;
use x509_cert::der::{Any, Decode, Encode, Tag, TagNumber, Tagged};
use x509_cert::ext::pkix::sct::SignedCertificateTimestampList;
use x509_cert::ext::Extension;
use x509_cert::Certificate;

use super::trust_root::{rfc3339, TrustRoot};

/// The SCT list extension (RFC 6962 §3.3).
const SCT_LIST_OID: &str = "1.3.6.1.4.1.11129.2.4.2";

/// Verifies the SCTs of `leaf` (DER) issued by the certificate whose
/// SubjectPublicKeyInfo is `issuer_spki`; returns the log that signed the
/// first valid one. At least one SCT must verify; an SCT of a log the trust
/// root does not list is skipped (another log may vouch), one that does not
/// verify fails the certificate.
pub(crate) fn verify(
    leaf_der: &[u8],
    issuer_spki: &[u8],
    root: &TrustRoot,
) -> Result<String, String> {
    let leaf = Certificate::from_der(leaf_der).map_err(|e| format!("certificate: {e}"))?;
    let list = leaf
        .tbs_certificate()
        .get_extension::<SignedCertificateTimestampList>()
        .map_err(|e| format!("the certificate's SCT list is malformed: {e}"))?
        .map(|(_, list)| list)
        .ok_or("the certificate carries no SCT (signed certificate timestamp)")?;
    let scts = list
        .parse_timestamps()
        .map_err(|e| format!("the certificate's SCT list is malformed: {e:?}"))?;
    let tbs = precert_tbs(leaf_der).map_err(|e| format!("certificate: {e}"))?;
    let issuer_key_hash = Sha256::digest(issuer_spki);
    let mut unknown = Vec::new();
    for sct in &scts {
        let sct = sct
            .parse_timestamp()
            .map_err(|e| format!("an SCT is malformed: {e:?}"))?;
        let Some(log) = root.ctlog(&sct.log_id.key_id) else {
            unknown.push(hex::encode(sct.log_id.key_id));
            continue;
        };
        let time = i64::try_from(sct.timestamp / 1000).unwrap_or(i64::MAX);
        if !log.valid.contains(time) {
            return Err(format!(
                "the SCT of CT log {} is from {}, outside its validity ({})",
                log.name,
                rfc3339(time),
                log.valid
            ));
        }
        let mut signed = vec![0u8, 0u8];
        signed.extend_from_slice(&sct.timestamp.to_be_bytes());
        signed.extend_from_slice(&1u16.to_be_bytes());
        signed.extend_from_slice(&issuer_key_hash);
        let len = u32::try_from(tbs.len()).map_err(|_| "certificate too large")?;
        signed.extend_from_slice(&len.to_be_bytes()[1..]);
        signed.extend_from_slice(&tbs);
        let extensions = sct.extensions.as_slice();
        signed.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
        signed.extend_from_slice(extensions);
        log.key()?
            .verify_signature(Signature::Raw(sct.signature.signature.as_slice()), &signed)
            .map_err(|_| format!("the SCT of CT log {} does not verify", log.name))?;
        return Ok(log.name.clone());
    }
    Err(format!(
        "no SCT from a CT log of {} (logs {})",
        root.source,
        if unknown.is_empty() {
            "none".to_string()
        } else {
            unknown.join(", ")
        }
    ))
}

/// The TBSCertificate of `leaf_der` with the SCT list extension removed.
fn precert_tbs(leaf_der: &[u8]) -> x509_cert::der::Result<Vec<u8>> {
    const EXTENSIONS: Tag = Tag::ContextSpecific {
        constructed: true,
        number: TagNumber(3),
    };
    let certificate = Vec::<Any>::from_der(leaf_der)?;
    let tbs = certificate
        .first()
        .ok_or_else(|| Tag::Sequence.value_error())?;
    let mut fields: Vec<Any> = tbs.decode_as()?;
    if let Some(extensions) = fields.iter_mut().find(|f| f.tag() == EXTENSIONS) {
        let mut kept = Vec::new();
        for extension in Vec::<Any>::from_der(extensions.value())? {
            if extension.decode_as::<Extension>()?.extn_id.to_string() != SCT_LIST_OID {
                kept.push(extension);
            }
        }
        *extensions = Any::new(EXTENSIONS, kept.to_der()?)?;
    }
    fields.to_der()
}
