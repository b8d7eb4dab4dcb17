//! One Notation signature against one trust policy statement (the order and
//! rules of notation-go `verifier/verifier.go`; see the module docs).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use imagegate_policy::notation::{check_identity_name, TrustedIdentity};
use imagegate_policy::wire::{NotationAction, NotationStoreKind, VerifyTimestamp};

use super::envelope::{Envelope, Format, SigningScheme};
use super::{cose, jws, Descriptor, TargetArtifact, Trust};
use crate::capabilities::timestamp;
use crate::capabilities::x509::{self, rfc3339, Certificate, Profile};

/// A signature that verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub format: Format,
    /// The signing certificate's subject.
    pub signer: String,
    /// The signing time the envelope claims (authentic for the
    /// signing-authority scheme).
    pub signing_time: DateTime<Utc>,
    /// The time a TSA vouched for, when the countersignature was verified.
    pub timestamp: Option<DateTime<Utc>>,
    /// Validations that failed but are only logged, and those not run.
    pub notes: Vec<String>,
    /// When this result stops holding: the signature's expiry, or the end
    /// of the chain's validity when it was checked against the current time.
    pub valid_until: Option<DateTime<Utc>>,
}

/// Verifies the envelope of `envelope_media_type` (the signature layer's)
/// over `subject`, the image manifest it must sign, at `now`. `Err` is the
/// one reason it is rejected.
pub(crate) fn verify(
    envelope_media_type: &str,
    envelope: &[u8],
    subject: &Descriptor,
    trust: &Trust,
    user_metadata: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> Result<Verified, String> {
    let integrity = |e: String| format!("integrity: {e}");
    let envelope = match Format::of(envelope_media_type) {
        Some(Format::Jws) => jws::parse(envelope),
        Some(Format::Cose) => cose::parse(envelope),
        None => Err(format!(
            "{envelope_media_type:?} is not a Notation envelope media type"
        )),
    }
    .map_err(integrity)?;
    let target = envelope.check_integrity().map_err(integrity)?;
    check_target(&target, subject)?;
    check_user_metadata(&target, user_metadata)?;

    let policy = &trust.policy;
    let mut notes = Vec::new();
    let mut apply = |validation: &str, action: NotationAction, result: Result<(), String>| match (
        result, action,
    ) {
        (Ok(()), _) | (Err(_), NotationAction::Skip) => Ok(()),
        (Err(e), NotationAction::Enforce) => Err(format!("{validation}: {e}")),
        (Err(e), NotationAction::Log) => {
            notes.push(format!(
                "{validation} failed (logged by level {}): {e}",
                policy.level
            ));
            Ok(())
        }
    };
    apply(
        "authenticity",
        policy.authenticity,
        authenticity(&envelope, trust),
    )?;
    apply("expiry", policy.expiry, expiry(&envelope, now))?;
    let times = authentic_times(&envelope, trust, now);
    apply(
        "authenticTimestamp",
        policy.authentic_timestamp,
        times.result,
    )?;
    if policy.revocation != NotationAction::Skip {
        notes.push("revocation not checked: it needs OCSP or CRL requests (offline)".to_string());
    }
    let valid_until = [envelope.expiry, times.chain_checked_now]
        .into_iter()
        .flatten()
        .min();
    Ok(Verified {
        format: envelope.format,
        signer: envelope.chain[0].subject_text(),
        signing_time: envelope.signing_time,
        timestamp: times.timestamp,
        notes,
        valid_until,
    })
}

/// notation-go compares digest, size and media type (`content.Equal`).
fn check_target(target: &TargetArtifact, subject: &Descriptor) -> Result<(), String> {
    let mismatch = |what: &str, signed: &str, image: &str| {
        Err(format!(
            "integrity: the signature is for another artifact: it signs {what} {signed}, the image's manifest has {image}"
        ))
    };
    if target.digest != subject.digest {
        return mismatch("digest", &target.digest, &subject.digest);
    }
    if target.size != subject.size {
        return mismatch("size", &target.size.to_string(), &subject.size.to_string());
    }
    if target.media_type != subject.media_type {
        return mismatch("media type", &target.media_type, &subject.media_type);
    }
    Ok(())
}

fn check_user_metadata(
    target: &TargetArtifact,
    wanted: &BTreeMap<String, String>,
) -> Result<(), String> {
    for (key, value) in wanted {
        match target.annotations.get(key) {
            Some(signed) if signed == value => {}
            Some(signed) => {
                return Err(format!(
                    "user metadata: the signature has {key}={signed:?}, not {value:?}"
                ))
            }
            None => return Err(format!("user metadata: the signature has no {key}")),
        }
    }
    Ok(())
}

fn authenticity(envelope: &Envelope, trust: &Trust) -> Result<(), String> {
    let (kind, label) = match envelope.scheme {
        SigningScheme::X509 => (NotationStoreKind::Ca, "ca"),
        SigningScheme::SigningAuthority => {
            (NotationStoreKind::SigningAuthority, "signingAuthority")
        }
    };
    let (trusted, names) = trust.stores(kind);
    if trusted.is_empty() {
        return Err(format!(
            "trust policy statement {:?} has no {label}: trust store for this signature's signing scheme",
            trust.policy.name
        ));
    }
    let leaf = &envelope.chain[0];
    if !envelope.chain.iter().any(|c| trusted.contains(c)) {
        return Err(format!(
            "no certificate of the signing chain of {:?} is in the trust stores {}",
            leaf.subject_text(),
            names.join(", ")
        ));
    }
    if trust.identities.contains(&TrustedIdentity::Any) {
        return Ok(());
    }
    let subject = leaf.subject()?;
    check_identity_name(&subject)
        .map_err(|e| format!("signing certificate subject {:?}: {e}", leaf.subject_text()))?;
    let matches = trust.identities.iter().any(|identity| match identity {
        TrustedIdentity::Any => true,
        TrustedIdentity::Subject(name) => name.is_subset_of(&subject),
    });
    if !matches {
        return Err(format!(
            "signing certificate subject {:?} matches none of the trusted identities of statement {:?}",
            leaf.subject_text(),
            trust.policy.name
        ));
    }
    Ok(())
}

fn expiry(envelope: &Envelope, now: DateTime<Utc>) -> Result<(), String> {
    match envelope.expiry {
        Some(expiry) if expiry <= now => {
            Err(format!("the signature expired at {}", rfc3339(expiry)))
        }
        _ => Ok(()),
    }
}

struct AuthenticTimes {
    result: Result<(), String>,
    /// The verified TSA time.
    timestamp: Option<DateTime<Utc>>,
    /// The chain was checked against `now`: until when it holds.
    chain_checked_now: Option<DateTime<Utc>>,
}

/// notation-go `verifyAuthenticTimestamp` / `verifyTimestamp`.
fn authentic_times(envelope: &Envelope, trust: &Trust, now: DateTime<Utc>) -> AuthenticTimes {
    let fail = |e: String| AuthenticTimes {
        result: Err(e),
        timestamp: None,
        chain_checked_now: None,
    };
    let chain = &envelope.chain;
    if envelope.scheme == SigningScheme::SigningAuthority {
        return match chain
            .iter()
            .try_for_each(|c| c.valid_at(envelope.signing_time))
        {
            Ok(()) => AuthenticTimes {
                result: Ok(()),
                timestamp: None,
                chain_checked_now: None,
            },
            Err(e) => fail(format!("at the authentic signing time: {e}")),
        };
    }
    let (tsa_roots, _) = trust.stores(NotationStoreKind::Tsa);
    let expired = chain.iter().any(|c| c.not_after() < now);
    let use_timestamp = !tsa_roots.is_empty()
        && (trust.policy.verify_timestamp == VerifyTimestamp::Always || expired);
    if !use_timestamp {
        return match chain.iter().try_for_each(|c| c.valid_at(now)) {
            Ok(()) => AuthenticTimes {
                result: Ok(()),
                timestamp: None,
                chain_checked_now: chain.iter().map(Certificate::not_after).min(),
            },
            Err(e) if tsa_roots.is_empty() => fail(format!(
                "{e}; a timestamp countersignature could vouch for the signing time, but the statement has no tsa: trust store"
            )),
            Err(e) => fail(e),
        };
    }
    let Some(token) = &envelope.timestamp else {
        return fail(
            "no timestamp countersignature was found in the signature envelope".to_string(),
        );
    };
    let stamp = match timestamp::verify(
        token,
        &envelope.signature,
        &timestamp::Trust {
            roots: &tsa_roots,
            ..timestamp::Trust::default()
        },
    ) {
        Ok(stamp) => stamp,
        Err(e) => return fail(format!("timestamp countersignature: {e}")),
    };
    if let Err(e) = x509::check_chain_profile(&stamp.chain, Profile::TimeStamping) {
        return fail(format!("timestamping certificate chain: {e}"));
    }
    for cert in chain {
        if cert.valid_at(stamp.earliest()).is_err() || cert.valid_at(stamp.latest()).is_err() {
            return fail(format!(
                "the timestamp ({} to {}) is not within the validity of certificate {:?} ({} to {})",
                rfc3339(stamp.earliest()),
                rfc3339(stamp.latest()),
                cert.subject_text(),
                rfc3339(cert.not_before()),
                rfc3339(cert.not_after())
            ));
        }
    }
    AuthenticTimes {
        result: Ok(()),
        timestamp: Some(stamp.time),
        chain_checked_now: None,
    }
}
