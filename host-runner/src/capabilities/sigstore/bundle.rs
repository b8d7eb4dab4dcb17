//! Sigstore bundles (v0.1-v0.3) with a DSSE envelope, verified completely
//! and offline: what cosign v3 writes for `cosign sign` and `cosign attest`,
//! and what GitHub's and npm's attestations are.
//!
//! Steps, each failing with its own message:
//! 1. the bundle parses, its media type is a known version, its content is
//!    one DSSE signature over an in-toto statement about the subject digest
//!    ([`statement`](super::statement));
//! 2. the signer ([`dsse::signer`]): a certificate (v0.3 `certificate`, or
//!    the v0.1/v0.2 chain) or a bare key;
//! 3. every RFC 3161 timestamp carried verifies against a timestamp
//!    authority of the trust root; every tlog entry carried verifies
//!    ([`tlog`](super::tlog)); the verified times are the SETs' integrated
//!    times and the timestamps' times;
//! 4. what the signer's kind requires with that evidence ([`dsse::conclude`]).
//!
//! Nothing carried is skipped: a bundle with a timestamp or log entry that
//! does not verify is rejected even when the rest would suffice.

use sigstore_protobuf_specs::dev::sigstore::bundle::v1::{bundle, verification_material, Bundle};

use super::chain;
use super::dsse::{self, Evidence, Material, SignedBy};
use super::fulcio::Claims;
use super::signer::Signer;
use super::statement::{self, Expect, Statement};
use super::tlog::{self, Required, Signed};
use super::trust_root::{rfc3339, TrustRoot};

/// What verified.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Index of the signer in the request.
    pub(crate) identity: usize,
    /// `sigstore-bundle-v0.3`.
    pub(crate) format: String,
    /// Who signed, for messages.
    pub(crate) signer: String,
    /// `tlog <log> #<index>`, `timestamp <time>`, for messages.
    pub(crate) evidence: Vec<String>,
    /// The statement (attestations return it).
    pub(crate) statement: serde_json::Value,
    /// The Fulcio certificate's claims, if it was one.
    pub(crate) claims: Option<Claims>,
    /// When a certificate checked at "now" (no verified time) expires.
    pub(crate) valid_until: Option<i64>,
}

impl Outcome {
    /// The outcome of a DSSE signature by `who` over `statement`, once the
    /// signer's evidence holds at the verified times (or now): the end of
    /// both bundle and legacy-layer verification.
    pub(crate) fn conclude(
        material: &Material,
        who: SignedBy,
        mut evidence: Evidence,
        statement: Statement,
        format: String,
        expected: Expected<'_>,
    ) -> Result<Outcome, String> {
        let valid_until = dsse::conclude(
            material,
            &who,
            expected.signers,
            &mut evidence,
            expected.root,
            expected.now,
        )?;
        Ok(Outcome {
            identity: who.identity,
            format,
            signer: dsse::signer_name(&who),
            evidence: evidence.lines,
            statement: statement.json,
            claims: who.claims,
            valid_until,
        })
    }
}

/// The bundle media types and their versions (0.1 needs a SET, 0.2 and
/// later an inclusion proof).
fn version(media_type: &str) -> Result<u8, String> {
    Ok(match media_type {
        "application/vnd.dev.sigstore.bundle+json;version=0.1" => 1,
        "application/vnd.dev.sigstore.bundle+json;version=0.2" => 2,
        "application/vnd.dev.sigstore.bundle+json;version=0.3"
        | "application/vnd.dev.sigstore.bundle.v0.3+json" => 3,
        other => return Err(format!("unsupported bundle media type {other:?}")),
    })
}

/// What evidence is verified against: the manifest it must name
/// (`sha256:<hex>`), the statement expected, who may have signed, the trust
/// root, and when (Unix seconds).
#[derive(Clone, Copy)]
pub(crate) struct Expected<'a> {
    pub subject: &'a str,
    pub expect: Expect<'a>,
    pub signers: &'a [Signer],
    pub root: &'a TrustRoot,
    pub now: i64,
}

/// Verifies a bundle (JSON).
pub(crate) fn verify(json: &[u8], expected: Expected<'_>) -> Result<Outcome, String> {
    let bundle: Bundle =
        serde_json::from_slice(json).map_err(|e| format!("not a sigstore bundle: {e}"))?;
    let version = version(&bundle.media_type)?;
    let envelope = match bundle.content {
        Some(bundle::Content::DsseEnvelope(envelope)) => envelope,
        Some(bundle::Content::MessageSignature(_)) => return Err(
            "a message-signature bundle (a blob signature), not an image signature or attestation"
                .to_string(),
        ),
        None => return Err("the bundle has no DSSE envelope".to_string()),
    };
    let dsse_signature = statement::only_signature(&envelope.payload_type, &envelope.signatures)?;
    let signature = dsse_signature.sig.as_slice();
    let pae = statement::pae(&envelope.payload_type, &envelope.payload);
    let statement = statement::check(&envelope.payload, expected.subject, expected.expect)?;
    let material = bundle
        .verification_material
        .ok_or("the bundle has no verification material")?;
    let signer_material = match &material.content {
        Some(verification_material::Content::Certificate(c)) => Material::Certificate {
            leaf: c.raw_bytes.clone(),
            chain: Vec::new(),
        },
        Some(verification_material::Content::X509CertificateChain(chain)) => {
            let mut certs: Vec<Vec<u8>> = chain
                .certificates
                .iter()
                .map(|c| c.raw_bytes.clone())
                .collect();
            if certs.is_empty() {
                return Err("the bundle's certificate chain is empty".to_string());
            }
            let leaf = certs.remove(0);
            Material::Certificate { leaf, chain: certs }
        }
        Some(verification_material::Content::PublicKey(_)) => Material::Key,
        None => return Err("the bundle names no certificate and no key".to_string()),
    };
    let who = dsse::signer(&signer_material, signature, &pae, expected.signers)?;

    // Everything the bundle carries must verify.
    let mut evidence = Evidence::default();
    for (i, ts) in material
        .timestamp_verification_data
        .iter()
        .flat_map(|d| &d.rfc3161_timestamps)
        .enumerate()
    {
        let t = chain::timestamp(&ts.signed_timestamp, signature, expected.root)
            .map_err(|e| format!("RFC 3161 timestamp {i}: {e}"))?;
        evidence
            .lines
            .push(format!("timestamp {} by {}", rfc3339(t.time), t.authority));
        evidence.times.push(t.time);
    }
    let tsa_times = evidence.times.clone();
    let signed = Signed {
        payload: &envelope.payload,
        pae: &pae,
        signature,
        verifier: signer_material.verifier(&who.key),
    };
    let required = Required {
        promise: version == 1,
        proof: version >= 2,
    };
    for (i, entry) in material.tlog_entries.iter().enumerate() {
        let verified = tlog::verify(entry, &signed, expected.root, required, &tsa_times)
            .map_err(|e| format!("tlog entry {i}: {e}"))?;
        evidence
            .lines
            .push(format!("tlog {} #{}", verified.log, verified.index));
        evidence.times.extend(verified.time);
        evidence.log_entries += 1;
    }
    let format = format!("sigstore-bundle-v0.{version}");
    Outcome::conclude(&signer_material, who, evidence, statement, format, expected)
}
