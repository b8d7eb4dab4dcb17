//! Certificates and signed timestamps against the trust root: a Fulcio leaf
//! chains to a certificate authority valid at every verified time, a
//! configured certificate chains to its configured chain, an RFC 3161
//! timestamp is signed by a timestamp authority valid at its time.

use rustls_pki_types::TrustAnchor;
use rustls_pki_types::{CertificateDer, UnixTime};
use std::time::Duration;
use webpki::{EndEntityCert, KeyUsage};
use x509_cert::der::{Decode, Encode};
use x509_cert::Certificate;

use super::trust_root::{rfc3339, TrustRoot};

/// id-kp-codeSigning.
const CODE_SIGNING: &[u8] = &[0x2b, 6, 1, 5, 5, 7, 3, 3];

/// A verified signed timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Timestamp {
    /// genTime, unix seconds.
    pub(crate) time: i64,
    /// The authority's name in the trust root.
    pub(crate) authority: String,
}

/// Verifies an RFC 3161 `TimeStampResp` over `signed` (the signature bytes)
/// against the trust root's timestamp authorities.
pub(crate) fn timestamp(
    _token: &[u8],
    _signed: &[u8],
    root: &TrustRoot,
) -> Result<Timestamp, String> {
    Err(format!(
        "cannot be verified yet ({} timestamp authorities known)",
        root.timestamp_authorities.len()
    ))
}

fn at(t: i64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(t.max(0) as u64))
}

/// `leaf` chains, through `intermediates`, to `anchor` at `t`, for code signing.
fn chains(
    leaf: &[u8],
    intermediates: &[CertificateDer<'_>],
    anchors: &[TrustAnchor<'_>],
    t: i64,
) -> Result<(), String> {
    let leaf = CertificateDer::from(leaf);
    let ee = EndEntityCert::try_from(&leaf).map_err(|e| format!("certificate: {e:?}"))?;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        anchors,
        intermediates,
        at(t),
        KeyUsage::required_if_present(CODE_SIGNING),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| format!("{e:?}"))
}

/// A Fulcio leaf (DER) with the bundle's own chain: some certificate
/// authority of the trust root, valid at every `t` in `times`, issued it and
/// the chain is valid at every `t`. Returns the SubjectPublicKeyInfo of the
/// leaf's issuer (for the SCT).
pub(crate) fn fulcio(
    leaf: &[u8],
    bundle_chain: &[Vec<u8>],
    root: &TrustRoot,
    times: &[i64],
) -> Result<Vec<u8>, String> {
    let leaf_parsed = Certificate::from_der(leaf).map_err(|e| format!("certificate: {e}"))?;
    for certificate in bundle_chain {
        let c =
            Certificate::from_der(certificate).map_err(|e| format!("chain certificate: {e}"))?;
        if c.tbs_certificate().issuer() == c.tbs_certificate().subject() {
            return Err("the bundle's certificate chain contains a root: roots come from the trust root only".to_string());
        }
    }
    let mut reasons = Vec::new();
    for ca in &root.certificate_authorities {
        if let Some(t) = times.iter().find(|t| !ca.valid.contains(**t)) {
            reasons.push(format!(
                "{} was not valid at {} (valid {})",
                ca.name,
                rfc3339(*t),
                ca.valid
            ));
            continue;
        }
        let Some((root_cert, intermediates)) = ca.chain.split_last() else {
            continue;
        };
        let anchor = match webpki::anchor_from_trusted_cert(root_cert) {
            Ok(a) => [a],
            Err(e) => {
                reasons.push(format!("{}: unusable root: {e:?}", ca.name));
                continue;
            }
        };
        let mut all: Vec<CertificateDer<'_>> = intermediates.to_vec();
        all.extend(
            bundle_chain
                .iter()
                .map(|c| CertificateDer::from(c.as_slice())),
        );
        match times
            .iter()
            .map(|t| chains(leaf, &all, &anchor, *t).map_err(|e| (t, e)))
            .find_map(Result::err)
        {
            Some((t, e)) => reasons.push(format!(
                "{}: not a valid chain at {}: {e}",
                ca.name,
                rfc3339(*t)
            )),
            None => {
                // The issuer is the chain certificate (or the root) named by the leaf.
                let issuer = ca
                    .chain
                    .iter()
                    .map(|c| c.as_ref())
                    .chain(bundle_chain.iter().map(Vec::as_slice))
                    .find(|c| {
                        Certificate::from_der(c).is_ok_and(|c| {
                            c.tbs_certificate().subject() == leaf_parsed.tbs_certificate().issuer()
                        })
                    });
                let issuer = issuer.ok_or("the leaf's issuer is not in the chain")?;
                let issuer = Certificate::from_der(issuer).map_err(|e| format!("issuer: {e}"))?;
                return issuer
                    .tbs_certificate()
                    .subject_public_key_info()
                    .to_der()
                    .map_err(|e| format!("issuer key: {e}"));
            }
        }
    }
    Err(format!(
        "the certificate does not chain to a certificate authority of {} ({})",
        root.source,
        if reasons.is_empty() {
            "none listed".to_string()
        } else {
            reasons.join("; ")
        }
    ))
}

/// A configured certificate valid at every `t`, issued through its
/// configured chain (every chain certificate trusted, as sigstore's
/// certificate verifier trusts them); no chain: the certificate is trusted
/// as it is and must only be valid then.
pub(crate) fn configured(leaf: &[u8], chain: &[Vec<u8>], times: &[i64]) -> Result<(), String> {
    let leaf_parsed = Certificate::from_der(leaf).map_err(|e| format!("certificate: {e}"))?;
    let validity = leaf_parsed.tbs_certificate().validity();
    let (from, to) = (
        validity.not_before.to_unix_duration().as_secs() as i64,
        validity.not_after.to_unix_duration().as_secs() as i64,
    );
    if let Some(t) = times.iter().find(|t| **t < from || **t > to) {
        return Err(format!(
            "the configured certificate is not valid at {} (valid {} to {})",
            rfc3339(*t),
            rfc3339(from),
            rfc3339(to)
        ));
    }
    if chain.is_empty() {
        return Ok(());
    }
    let ders: Vec<CertificateDer<'_>> = chain
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let anchors = ders
        .iter()
        .map(|c| {
            webpki::anchor_from_trusted_cert(c).map_err(|e| format!("the configured chain: {e:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for t in times {
        chains(leaf, &[], &anchors, *t).map_err(|e| {
            format!(
                "the configured certificate does not chain to its chain at {}: {e}",
                rfc3339(*t)
            )
        })?;
    }
    Ok(())
}

/// The earliest notAfter of a certificate and its chain.
pub(crate) fn not_after(leaf: &[u8], chain: &[Vec<u8>]) -> Result<i64, String> {
    std::iter::once(leaf)
        .chain(chain.iter().map(Vec::as_slice))
        .map(|der| {
            let c = Certificate::from_der(der).map_err(|e| format!("certificate: {e}"))?;
            Ok(c.tbs_certificate()
                .validity()
                .not_after
                .to_unix_duration()
                .as_secs() as i64)
        })
        .try_fold(i64::MAX, |min, t: Result<i64, String>| Ok(min.min(t?)))
}
