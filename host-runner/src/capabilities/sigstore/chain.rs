//! Certificates and signed timestamps against the Sigstore trust root, on
//! the shared [`x509`] and [`timestamp`] modules: a Fulcio leaf chains to a
//! certificate authority valid at every verified time, a configured
//! certificate to its configured chain, and an RFC 3161 timestamp is signed
//! by a timestamp authority valid at its time.

use chrono::{DateTime, Utc};
use x509_cert::der::Encode;

use super::trust_root::{rfc3339, Authority, TrustRoot};
use crate::capabilities::timestamp::{self, Trust};
use crate::capabilities::x509::{self, Certificate, Purpose};

/// A verified signed timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Timestamp {
    /// genTime, unix seconds.
    pub(crate) time: i64,
    /// The authority's name in the trust root.
    pub(crate) authority: String,
}

fn at(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn certificates(ders: &[impl AsRef<[u8]>]) -> Result<Vec<Certificate>, String> {
    ders.iter()
        .map(|d| Certificate::from_der(d.as_ref()))
        .collect()
}

/// An authority's chain as listed (issuer first, root last): its root and the rest.
fn split(authority: &Authority) -> Result<(Vec<Certificate>, Vec<Certificate>), String> {
    let mut chain =
        certificates(&authority.chain).map_err(|e| format!("{}: {e}", authority.name))?;
    let root = chain.pop().into_iter().collect();
    Ok((root, chain))
}

/// Verifies an RFC 3161 `TimeStampResp` over `signed` (the signature bytes)
/// against the trust root's timestamp authorities (sigstore tokens carry no
/// certificates: the authority's first certificate is the signer).
pub(crate) fn timestamp(
    token: &[u8],
    signed: &[u8],
    root: &TrustRoot,
) -> Result<Timestamp, String> {
    let mut reasons = Vec::new();
    for authority in &root.timestamp_authorities {
        let (roots, rest) = split(authority)?;
        let trust = Trust {
            roots: &roots,
            intermediates: &rest,
            signers: rest.first().map_or(&roots[..], std::slice::from_ref),
        };
        match timestamp::verify(token, signed, &trust) {
            Ok(ts) => {
                let time = ts.time.timestamp();
                if !authority.valid.contains(time) {
                    return Err(format!(
                        "signed by {} at {}, outside its validity ({})",
                        authority.name,
                        rfc3339(time),
                        authority.valid
                    ));
                }
                return Ok(Timestamp {
                    time,
                    authority: authority.name.clone(),
                });
            }
            Err(e) => reasons.push(format!("{}: {e}", authority.name)),
        }
    }
    Err(format!(
        "not signed by a timestamp authority of {} ({})",
        root.source,
        if reasons.is_empty() {
            "none listed".to_string()
        } else {
            reasons.join("; ")
        }
    ))
}

/// A Fulcio leaf (DER) with the chain its format carries: some certificate
/// authority of the trust root, valid at every `t` in `times`, issued it, the
/// whole chain is valid at every `t`, and the leaf allows code signing.
/// Returns the SubjectPublicKeyInfo (DER) of the leaf's issuer (for the SCT).
pub(crate) fn fulcio(
    leaf: &[u8],
    carried: &[Vec<u8>],
    root: &TrustRoot,
    times: &[i64],
) -> Result<Vec<u8>, String> {
    let leaf = Certificate::from_der(leaf)?;
    let carried = certificates(carried)?;
    if carried.iter().any(Certificate::is_self_issued) {
        return Err(
            "the certificate chain carried contains a root: roots come from the trust root only"
                .to_string(),
        );
    }
    let code_signing = leaf
        .extended_key_usage()?
        .is_some_and(|(_, purposes)| purposes.contains(&x509::EKU_CODE_SIGNING));
    if !code_signing {
        return Err(
            "the certificate does not allow code signing (no codeSigning extended key usage)"
                .to_string(),
        );
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
        let (anchors, mut intermediates) = split(ca)?;
        intermediates.extend(carried.iter().cloned());
        // The path's signatures do not depend on the time: they are checked
        // once, at the first time; at the others only the path's validity
        // periods are (a path that does not fit them is refused, even if
        // another one would: stricter, never looser).
        let Some((first, later)) = times.split_first() else {
            continue;
        };
        let path = x509::verify_chain(
            &leaf,
            &intermediates,
            &anchors,
            at(*first),
            Purpose::CodeSigning,
        )
        .and_then(|path| {
            for t in later {
                for cert in &path {
                    // Worded as verify_chain words it at that time.
                    cert.valid_at(at(*t)).map_err(|_| {
                        format!(
                            "certificate {:?} does not chain to a trusted certificate at {}: \
                             a certificate in the path is outside its validity period",
                            leaf.subject_text(),
                            rfc3339(*t)
                        )
                    })?;
                }
            }
            Ok(path)
        });
        let issuer = match path {
            Ok(path) => path.get(1).cloned(),
            Err(e) => {
                reasons.push(format!("{}: {e}", ca.name));
                None
            }
        };
        if let Some(issuer) = issuer {
            return issuer
                .parsed()
                .tbs_certificate()
                .subject_public_key_info()
                .to_der()
                .map_err(|e| format!("the issuer's key: {e}"));
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
    let leaf = Certificate::from_der(leaf)?;
    let anchors = certificates(chain)?;
    for t in times {
        let result = if anchors.is_empty() {
            leaf.valid_at(at(*t))
        } else {
            x509::verify_chain(&leaf, &[], &anchors, at(*t), Purpose::CodeSigning).map(|_| ())
        };
        result.map_err(|e| format!("the configured certificate: {e}"))?;
    }
    Ok(())
}

/// The earliest notAfter of a certificate and its chain (unix seconds).
pub(crate) fn not_after(leaf: &[u8], chain: &[Vec<u8>]) -> Result<i64, String> {
    let leaf = Certificate::from_der(leaf)?;
    Ok(certificates(chain)?
        .iter()
        .chain(std::iter::once(&leaf))
        .map(|c| c.not_after().timestamp())
        .min()
        .unwrap_or(i64::MAX))
}
