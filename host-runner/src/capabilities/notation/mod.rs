//! Notation signatures (the Notary Project's signature format; `notary/` is
//! Notary v1, TUF): the JWS or COSE envelopes of an image's referrers
//! (found by [`super::oci::discovery`]) verified against the trust policy
//! statement the guest selected ([`verify`]).
//!
//! What [`verify`] checks, in notation-go's order (`verifier/verifier.go`),
//! each failure its own message prefixed with the validation it fails:
//! - **integrity**, always enforced: the envelope ([`jws`], [`cose`]: protected
//!   header rules, `crit`, signing scheme and times), Notation's certificate
//!   requirements on the chain, each certificate issued by the next, the
//!   algorithm the leaf key implies, the signature; then the payload's
//!   `targetArtifact` must be the image's manifest (digest, size, media type)
//!   and carry the requested user metadata;
//! - **authenticity**: a certificate of the chain is one of the statement's
//!   `ca:` (`notary.x509`) or `signingAuthority:` stores, and the leaf's
//!   subject includes one of the trusted identities;
//! - **expiry**: the signature's `expiry` is in the future;
//! - **authenticTimestamp**: with a `tsa:` store (and `verifyTimestamp:
//!   always`, or `afterCertExpiry` with an expired certificate) the RFC 3161
//!   countersignature over the signature must verify and its time range lie
//!   within the signing chain's validity; otherwise the chain must be valid
//!   now; `notary.x509.signingAuthority` signatures are checked at their
//!   authentic signing time;
//! - **revocation** needs OCSP/CRL requests: never checked, said in the notes.
//!
//! A failure of a validation the statement only logs is kept in
//! [`Verified::notes`] and the signature passes.

mod cose;
mod envelope;
mod jws;
mod verify;

use std::collections::BTreeMap;

use serde::Deserialize;

use imagegate_policy::notation::{parse_identity, TrustedIdentity};
use imagegate_policy::wire::{NotationPolicy, NotationStoreKind};

use super::x509::Certificate;
pub use envelope::Format;
pub(crate) use verify::verify;
pub use verify::Verified;

pub(crate) use super::oci::discovery::Descriptor;

/// `artifactType` (or, in older signatures, config media type) of a
/// Notation signature manifest; discovery ([`super::oci::discovery`])
/// recognizes signature manifests by it and hands their envelope over.
pub const ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";

/// A trust policy statement ready to verify with: its stores' certificates
/// and its identities parsed.
#[derive(Debug)]
pub struct Trust {
    policy: NotationPolicy,
    identities: Vec<TrustedIdentity>,
    stores: Vec<Store>,
}

#[derive(Debug)]
struct Store {
    kind: NotationStoreKind,
    /// `ca:acme`, for messages.
    name: String,
    certificates: Vec<Certificate>,
}

impl Trust {
    /// Reads a statement as the guest sends it; bad input is an error of the
    /// request (the guest validated it at `validate_settings`).
    pub fn new(policy: &NotationPolicy) -> Result<Self, String> {
        let identities = policy
            .trusted_identities
            .iter()
            .map(|i| parse_identity(i))
            .collect::<Result<Vec<_>, _>>()?;
        if identities.is_empty() {
            return Err(format!(
                "trust policy statement {:?} has no trusted identities",
                policy.name
            ));
        }
        let stores = policy
            .trust_stores
            .iter()
            .map(|store| {
                let name = format!("{}:{}", store_kind(store.kind), store.name);
                let certificates = Certificate::from_pem(&store.certificates)
                    .map_err(|e| format!("trust store {name}: {e}"))?;
                Ok(Store {
                    kind: store.kind,
                    name,
                    certificates,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Trust {
            policy: policy.clone(),
            identities,
            stores,
        })
    }

    /// The certificates of the stores of `kind`, and the stores' names.
    fn stores(&self, kind: NotationStoreKind) -> (Vec<Certificate>, Vec<&str>) {
        let mut certificates = Vec::new();
        let mut names = Vec::new();
        for store in self.stores.iter().filter(|s| s.kind == kind) {
            certificates.extend(store.certificates.iter().cloned());
            names.push(store.name.as_str());
        }
        (certificates, names)
    }
}

fn store_kind(kind: NotationStoreKind) -> &'static str {
    match kind {
        NotationStoreKind::Ca => "ca",
        NotationStoreKind::SigningAuthority => "signingAuthority",
        NotationStoreKind::Tsa => "tsa",
    }
}

/// What the payload says it signs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TargetArtifact {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests;
