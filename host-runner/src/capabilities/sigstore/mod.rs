//! Sigstore verification done by imagegate itself, offline, for the formats
//! the `sigstore` crate's verifier gets wrong or does not read (measured:
//! it passes forged SETs, proofs, checkpoints and timestamps, and rejects
//! real attestations and key-based bundles).
//!
//! * [`trust_root`]: what is trusted (`--sigstore-trust-config` or the
//!   embedded public-good root), with validity windows;
//! * [`bundle`]: sigstore bundles with a DSSE envelope (cosign v3 `sign` and
//!   `attest`, GitHub and npm attestations), built from
//!   [`statement`] (DSSE, in-toto), [`tlog`] (Rekor entries: body, SET,
//!   inclusion proof, checkpoint), [`sct`] (certificate transparency),
//!   [`chain`] (certificate chains and signed timestamps at a time),
//!   [`fulcio`] (certificate claims and keyless identities) and [`signer`]
//!   (who a check accepts);
//! * [`legacy`]: cosign's older attestation layers (`.att` tags).
//!
//! The legacy `.sig` signature layers stay with the `sigstore` crate
//! (`capabilities::oci`); only the signature algorithms, the bundle's serde
//! types and the Merkle/checkpoint check are taken from it.

pub(crate) mod bundle;
pub(crate) mod chain;
pub(crate) mod dsse;
pub(crate) mod fulcio;
pub(crate) mod legacy;
pub(crate) mod sct;
pub(crate) mod signer;
pub(crate) mod statement;
pub(crate) mod tlog;
pub mod trust_root;

pub use trust_root::TrustRoot;

use imagegate_policy::wire::SignerIdentity;

/// Verifies one cosign signature bundle (JSON) of the manifest `subject`
/// against `identities` at `now` (unix seconds), as
/// `imagegate/v1/check_signature` does for each candidate: the evidence
/// that verified (`tlog ...`, `timestamp ...`, `SCT ...`) or why it did not.
/// For benchmarks; the capability itself goes through discovery.
pub fn verify_signature_bundle(
    json: &[u8],
    subject: &str,
    identities: &[SignerIdentity],
    root: &TrustRoot,
    now: i64,
) -> Result<Vec<String>, String> {
    let signers = signer::Signer::compile(identities)?;
    let expect = statement::Expect::Signature { annotations: None };
    let expected = bundle::Expected {
        subject,
        expect,
        signers: &signers,
        root,
        now,
    };
    Ok(bundle::verify(json, expected)?.evidence)
}

#[cfg(test)]
mod tests;
