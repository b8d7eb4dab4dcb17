//! imagegate's own capabilities `imagegate/v1/check_signature` and
//! `imagegate/v1/check_attestation`: is the image signed (or attested) by
//! one of the given identities, in whatever format the signer used?
//!
//! For each manifest to check (the digest the reference resolves to, or with
//! `platforms: all` every platform manifest of the index, BuildKit
//! attestation manifests skipped), the paths are tried in order
//! ([`oci::discovery`]):
//! 1. the referrers API;
//! 2. the referrers tag `sha256-<hex>`, only when the API is absent (404)
//!    or failed: a registry with the API keeps no tag (the distribution
//!    spec; oras-go, go-containerregistry and so cosign and notation read
//!    the tag only then), and reading it anyway costs a round trip on every
//!    image nothing verifies (issue 14: 3 with the API, 4 without);
//! 3. the legacy tag (`.sig` for signatures, `.att` for attestations),
//!    used when nothing verified on 1 and 2; it is read concurrently with
//!    them, so a legacy signature costs the round trips of its own path
//!    only (one check: the manifest, then {referrers, `.sig`}, then the
//!    `.sig` layer). A registry whose API answered 404 is not asked again
//!    for a few minutes ([`Distribution`]'s memory).
//!
//! Candidates are verified by [`sigstore::bundle`] (bundles),
//! [`sigstore::legacy`] (cosign attestation layers) and, for `.sig`, by
//! `oci/v2/verify`'s checks ([`Oci::sig_manifest`]) on the `.sig` manifest
//! this search fetched, its layers read once for every identity, so the
//! legacy semantics (identity and annotations on one layer) stay in one place
//! and a `.sig` signature costs one request per layer beyond the search.
//!
//! "Nothing verified" is an answer: `verified` is empty and the trace says
//! what each path found. Errors are for what the host cannot work on: a bad
//! request, or a registry that answered no path at all (down, refusing the
//! credentials).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use imagegate_policy::wire::{
    AttestationVerifyRequest, ImageVerifyResponse, NotationVerifyRequest, Platforms,
    SignatureVerifyRequest, SubjectTrace, Verified,
};

use super::notation::{self, Trust};
use super::oci::discovery::{self, Api, Descriptor, Discovery, Found, Path, MAX_REFERRERS};
use super::oci::distribution::{Distribution, Manifest, NO_API_TTL};
use super::oci::image::Image;
use super::oci::Oci;
use super::sigstore::bundle::{self, Outcome};
use super::sigstore::signer::Signer;
use super::sigstore::statement::{Expect, COSIGN_SIGN_PREDICATE};
use super::sigstore::{legacy, TrustRoot};
use super::x509;
use crate::registry::RegistryAccess;

/// One path tried for a manifest and what it found (one trace line).
struct TraceStep {
    path: Path,
    result: String,
    candidates: Vec<CandidateTrace>,
}

/// One candidate opened and its verdict.
struct CandidateTrace {
    manifest: String,
    kind: String,
    verdict: String,
}

impl TraceStep {
    /// `referrers-tag: 1 entries [sha256:... sigstore bundle (...): rejected: ...]`.
    fn line(&self) -> String {
        let mut line = format!("{}: {}", self.path.as_str(), self.result);
        if !self.candidates.is_empty() {
            let candidates: Vec<String> = self
                .candidates
                .iter()
                .map(|c| format!("{} {}: {}", c.manifest, c.kind, c.verdict))
                .collect();
            line.push_str(&format!(" [{}]", candidates.join("; ")));
        }
        line
    }
}

/// Which predicate a cosign v3 bundle's manifest announces (only to try it first).
const PREDICATE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";

/// The answering side of both capabilities.
pub struct Signatures {
    /// The `oci/*` capabilities' reader: one connection pool and one
    /// authentication memory per host, whichever capability asks.
    dist: Arc<Distribution>,
    access: RegistryAccess,
    root: Arc<TrustRoot>,
}

/// What is asked, with what it needs.
enum Ask<'a> {
    Signature {
        request: &'a SignatureVerifyRequest,
        oci: &'a Oci,
    },
    Attestation {
        predicate_type: &'a str,
    },
    /// A Notation signature the trust policy statement accepts.
    Notation {
        trust: &'a Trust,
        request: &'a NotationVerifyRequest,
    },
}

impl Ask<'_> {
    /// What sigstore bundles and DSSE layers must be; `None`: they are not
    /// what is asked (Notation).
    fn expect(&self) -> Option<Expect<'_>> {
        match self {
            Ask::Signature { request, .. } => Some(Expect::Signature {
                annotations: request.annotations.as_ref().filter(|a| !a.is_empty()),
            }),
            Ask::Attestation { predicate_type } => Some(Expect::Attestation { predicate_type }),
            Ask::Notation { .. } => None,
        }
    }

    /// Whether an index entry claims to be what is asked (to try it first).
    fn likely(&self, entry: &Descriptor) -> bool {
        let predicate = match self {
            Ask::Signature { .. } => COSIGN_SIGN_PREDICATE,
            Ask::Attestation { predicate_type } => predicate_type,
            Ask::Notation { .. } => {
                return entry.artifact_type.as_deref() == Some(notation::ARTIFACT_TYPE)
            }
        };
        entry
            .annotations
            .get(PREDICATE_ANNOTATION)
            .map(String::as_str)
            == Some(predicate)
    }

    /// A signature needs one (Notation's rule too); attestations are all
    /// returned (the guest's conditions choose among them).
    fn stop_at_first(&self) -> bool {
        !matches!(self, Ask::Attestation { .. })
    }

    /// cosign's legacy tag, for what cosign stores there.
    fn legacy(&self) -> Option<(&'static str, Path)> {
        match self {
            Ask::Signature { .. } => Some(("sig", Path::SigTag)),
            Ask::Attestation { .. } => Some(("att", Path::AttTag)),
            Ask::Notation { .. } => None,
        }
    }

    /// The manifest's own descriptor (media type, size) is needed, not only
    /// its digest: Notation signs all three.
    fn needs_descriptor(&self) -> bool {
        matches!(self, Ask::Notation { .. })
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

impl Signatures {
    /// Reads registries as `oci` does, with its reader, registry access and
    /// trust root (`--sigstore-trust-config`, else the embedded public-good one).
    pub fn new(oci: &Oci) -> Signatures {
        Signatures {
            dist: oci.reader(),
            access: oci.access().clone(),
            root: oci.trust_root(),
        }
    }

    /// `imagegate/v1/check_signature`.
    pub async fn verify_signature(
        &self,
        oci: &Oci,
        request: &SignatureVerifyRequest,
    ) -> Result<ImageVerifyResponse, String> {
        let signers = Signer::compile(&request.identities)?;
        let ask = Ask::Signature { request, oci };
        self.run(&request.image, request.platforms, &signers, &ask)
            .await
    }

    /// `imagegate/v1/check_notation`.
    pub async fn verify_notation(
        &self,
        request: &NotationVerifyRequest,
    ) -> Result<ImageVerifyResponse, String> {
        let trust = Trust::new(&request.policy)?;
        let ask = Ask::Notation {
            trust: &trust,
            request,
        };
        self.run(&request.image, request.platforms, &[], &ask).await
    }

    /// `imagegate/v1/check_attestation`.
    pub async fn verify_attestation(
        &self,
        request: &AttestationVerifyRequest,
    ) -> Result<ImageVerifyResponse, String> {
        if request.predicate_type.is_empty() {
            return Err("predicate_type: must not be empty".to_string());
        }
        let signers = Signer::compile(&request.identities)?;
        let ask = Ask::Attestation {
            predicate_type: &request.predicate_type,
        };
        self.run(&request.image, request.platforms, &signers, &ask)
            .await
    }

    /// What one manifest's evidence is checked against, with this host's
    /// trust root.
    fn expected<'a>(
        &'a self,
        subject: &'a str,
        expect: Expect<'a>,
        signers: &'a [Signer],
        now: i64,
    ) -> bundle::Expected<'a> {
        bundle::Expected {
            subject,
            expect,
            signers,
            root: &self.root,
            now,
        }
    }

    async fn run(
        &self,
        image: &str,
        platforms: Platforms,
        signers: &[Signer],
        ask: &Ask<'_>,
    ) -> Result<ImageVerifyResponse, String> {
        let image = Image::parse(image)?;
        let repo = Distribution::repo(&image, &self.access)?;
        let disc = Discovery {
            dist: &self.dist,
            repo: &repo,
        };
        let (digest, subjects) = match (image.reference.digest(), platforms) {
            // A digest needs no lookup to be checked as it is.
            (Some(digest), Platforms::Index) if !ask.needs_descriptor() => (
                digest.to_string(),
                vec![Descriptor {
                    digest: digest.to_string(),
                    ..Descriptor::default()
                }],
            ),
            (pinned, _) => {
                let reference = pinned
                    .or(image.reference.tag())
                    .unwrap_or("latest")
                    .to_string();
                let top = disc
                    .resolve(&reference)
                    .await
                    .map_err(|e| format!("Cannot fetch manifest of {}: {e}", image.name))?;
                let subjects = match (platforms, discovery::index_children(&top)?) {
                    (Platforms::All, Some(children)) => children
                        .iter()
                        .filter(|c| !discovery::is_attestation_manifest(c))
                        .cloned()
                        .collect(),
                    _ => vec![discovery::descriptor_of(&top)?],
                };
                (top.digest, subjects)
            }
        };
        let now = now();
        let mut response = ImageVerifyResponse {
            digest,
            ..ImageVerifyResponse::default()
        };
        for subject in subjects {
            let (trace, verified, answered) =
                self.subject(&disc, &subject, signers, ask, now).await;
            if !answered && verified.is_empty() {
                return Err(format!(
                    "Cannot look up signatures of {} ({}): {}",
                    image.name,
                    subject.digest,
                    trace.paths.join("; ")
                ));
            }
            response.trace.push(trace);
            response.verified.extend(verified);
        }
        Ok(response)
    }

    /// Every path for one manifest digest. The referrers (API, then tag) and
    /// the legacy tag are searched concurrently, so neither waits for the
    /// other's round trips; the legacy tag's answer counts only when the
    /// referrers verified nothing, as if it had been read after them (for a
    /// bundle-signed image its fetch is one request more, never a longer
    /// wait). `answered`: some path got an answer from the registry (not
    /// only errors).
    async fn subject(
        &self,
        disc: &Discovery<'_>,
        described: &Descriptor,
        signers: &[Signer],
        ask: &Ask<'_>,
        now: i64,
    ) -> (SubjectTrace, Vec<Verified>, bool) {
        let subject = described.digest.as_str();
        let ((mut steps, mut verified, mut answered), legacy) = tokio::join!(
            self.referrers(disc, described, signers, ask, now),
            self.legacy(disc, subject, signers, ask, now),
        );
        if let Some((legacy_step, found, legacy_answered)) = legacy {
            if verified.is_empty() {
                answered |= legacy_answered;
                verified.extend(found);
                steps.push(legacy_step);
            } else {
                steps.push(step(
                    legacy_step.path,
                    "not needed (a candidate verified)".to_string(),
                ));
            }
        }
        (
            SubjectTrace {
                subject: subject.to_string(),
                paths: steps.iter().map(TraceStep::line).collect(),
            },
            verified,
            answered,
        )
    }

    /// The referrers API, then (when it is absent or failed) the referrers
    /// tag: their trace lines, what verified, whether either answered.
    async fn referrers(
        &self,
        disc: &Discovery<'_>,
        described: &Descriptor,
        signers: &[Signer],
        ask: &Ask<'_>,
        now: i64,
    ) -> (Vec<TraceStep>, Vec<Verified>, bool) {
        let subject = described.digest.as_str();
        let mut steps = Vec::new();
        let mut verified = Vec::new();
        let mut answered = false;
        // Opens one path's referrers.
        let open = async |entries, path, step: &mut TraceStep, verified: &mut Vec<Verified>| {
            self.candidates(
                disc, described, entries, path, signers, ask, now, step, verified,
            )
            .await
        };

        let api_answered = match disc.referrers_api(subject).await {
            Ok(Api::Entries(entries, pages)) => {
                answered = true;
                let mut step = step(
                    Path::ReferrersApi,
                    format!(
                        "{} entries ({pages} page{})",
                        entries.len(),
                        if pages == 1 { "" } else { "s" }
                    ),
                );
                open(entries, Path::ReferrersApi, &mut step, &mut verified).await;
                steps.push(step);
                true
            }
            Ok(Api::Absent(text)) => {
                answered = true;
                steps.push(step(
                    Path::ReferrersApi,
                    format!("no referrers API ({text})"),
                ));
                false
            }
            Ok(Api::KnownAbsent) => {
                steps.push(step(
                    Path::ReferrersApi,
                    format!(
                        "not asked: the registry answered 404 within the last {} s",
                        NO_API_TTL.as_secs()
                    ),
                ));
                false
            }
            Err(e) => {
                steps.push(step(Path::ReferrersApi, format!("error: {e}")));
                false
            }
        };
        if !verified.is_empty() {
            steps.push(step(
                Path::ReferrersTag,
                "not needed (a candidate verified)".to_string(),
            ));
        } else if api_answered {
            steps.push(step(
                Path::ReferrersTag,
                "not read (the registry has the referrers API)".to_string(),
            ));
        } else {
            match disc.referrers_tag(subject).await {
                Ok(Ok(entries)) => {
                    answered = true;
                    let mut step = step(Path::ReferrersTag, format!("{} entries", entries.len()));
                    open(entries, Path::ReferrersTag, &mut step, &mut verified).await;
                    steps.push(step);
                }
                Ok(Err(none)) => {
                    answered = true;
                    steps.push(step(Path::ReferrersTag, none));
                }
                Err(e) => steps.push(step(Path::ReferrersTag, format!("error: {e}"))),
            }
        }
        (steps, verified, answered)
    }

    /// cosign's legacy tag (`.sig`, `.att`) when the ask has one: its trace
    /// line, what verified, whether it answered.
    async fn legacy(
        &self,
        disc: &Discovery<'_>,
        subject: &str,
        signers: &[Signer],
        ask: &Ask<'_>,
        now: i64,
    ) -> Option<(TraceStep, Vec<Verified>, bool)> {
        let (suffix, path) = ask.legacy()?;
        let mut verified = Vec::new();
        let manifest = match disc.legacy(subject, suffix).await {
            Ok(None) => {
                let none = format!("no tag {}.{suffix}", discovery::tag_of(subject));
                return Some((step(path, none), verified, true));
            }
            Ok(Some(manifest)) => manifest,
            Err(e) => return Some((step(path, format!("error: {e}")), verified, false)),
        };
        let mut step = step(
            path,
            format!(
                "tag {}.{suffix}: manifest {}",
                discovery::tag_of(subject),
                manifest.digest
            ),
        );
        match ask {
            Ask::Signature { request, oci } => {
                let (candidate, ok) = legacy_sig(oci, disc, subject, request, &manifest).await;
                step.candidates.push(candidate);
                verified.extend(ok);
            }
            Ask::Notation { .. } => {}
            Ask::Attestation { .. } => match disc.att_layers(&manifest).await {
                Ok(layers) => self.layers(
                    &manifest.digest,
                    layers,
                    path,
                    subject,
                    signers,
                    ask,
                    now,
                    &mut step,
                    &mut verified,
                ),
                Err(e) => step.result.push_str(&format!(": {e}")),
            },
        }
        Some((step, verified, true))
    }

    /// Opens and verifies the referrers of one path, likely ones first.
    #[allow(clippy::too_many_arguments)]
    async fn candidates(
        &self,
        disc: &Discovery<'_>,
        described: &Descriptor,
        mut entries: Vec<Descriptor>,
        path: Path,
        signers: &[Signer],
        ask: &Ask<'_>,
        now: i64,
        step: &mut TraceStep,
        verified: &mut Vec<Verified>,
    ) {
        let subject = described.digest.as_str();
        // Only the order depends on what the index claims, never the outcome.
        entries.sort_by_key(|e| !ask.likely(e));
        let total = entries.len();
        for (n, entry) in entries.into_iter().enumerate() {
            if ask.stop_at_first() && !verified.is_empty() {
                break;
            }
            if n == MAX_REFERRERS {
                step.result.push_str(&format!(
                    "; {} not opened (limit {MAX_REFERRERS})",
                    total - n
                ));
                break;
            }
            let claimed = entry
                .artifact_type
                .clone()
                .unwrap_or_else(|| entry.media_type.clone());
            let mut trace = CandidateTrace {
                manifest: entry.digest.clone(),
                kind: claimed,
                verdict: String::new(),
            };
            match disc.open(subject, &entry).await {
                Err(e) => trace.verdict = format!("rejected: {e}"),
                Ok(found) => {
                    trace.kind = found.kind();
                    match (found, ask.expect()) {
                        (Found::Notation { layer }, None) => {
                            let result = self
                                .notation(disc, described, &layer, &entry.digest, path, ask, now)
                                .await;
                            trace.verdict = verdict(result, verified);
                        }
                        (_, None) => {
                            trace.verdict = "skipped: not a Notation signature".to_string()
                        }
                        (Found::Bundle { json, .. }, Some(expect)) => {
                            let expected = self.expected(subject, expect, signers, now);
                            let result = bundle::verify(&json, expected)
                                .map(|o| accepted(o, subject, path, &entry.digest, ask));
                            trace.verdict = verdict(result, verified);
                        }
                        (Found::Dsse(layers), Some(_)) => {
                            step.candidates.push(trace);
                            self.layers(
                                &entry.digest,
                                layers,
                                path,
                                subject,
                                signers,
                                ask,
                                now,
                                step,
                                verified,
                            );
                            continue;
                        }
                        (Found::Notation { .. }, Some(_)) => {
                            trace.verdict =
                                "skipped: a Notation signature (notation checks verify these)"
                                    .to_string()
                        }
                        (Found::Other(_), Some(_)) => trace.verdict = "skipped".to_string(),
                    }
                }
            }
            step.candidates.push(trace);
        }
    }

    /// One Notation signature: its envelope fetched and verified over the
    /// subject's descriptor (fetched when the request named only a digest).
    #[allow(clippy::too_many_arguments)]
    async fn notation(
        &self,
        disc: &Discovery<'_>,
        subject: &Descriptor,
        layer: &Descriptor,
        manifest: &str,
        path: Path,
        ask: &Ask<'_>,
        now: i64,
    ) -> Result<(String, Verified), String> {
        let Ask::Notation { trust, request } = ask else {
            return Err("not a Notation check".to_string());
        };
        let envelope = disc.layer(layer).await?;
        let at = chrono::DateTime::from_timestamp(now, 0).unwrap_or_default();
        let v = notation::verify(
            &layer.media_type,
            &envelope,
            subject,
            trust,
            &request.user_metadata,
            at,
        )?;
        let mut evidence = vec![format!("signed at {}", x509::rfc3339(v.signing_time))];
        if let Some(time) = v.timestamp {
            evidence.push(format!("timestamp {}", x509::rfc3339(time)));
        }
        evidence.extend(v.notes.iter().cloned());
        let line = format!(
            "verified: {}, {} ({})",
            v.format.name(),
            v.signer,
            evidence.join("; ")
        );
        Ok((
            line,
            Verified {
                subject: subject.digest.clone(),
                identity: None,
                format: v.format.name().to_string(),
                path: path.as_str().to_string(),
                manifest: manifest.to_string(),
                signer: v.signer,
                valid_until: v.valid_until.map(|t| t.timestamp()),
                statement: None,
                certificate: None,
            },
        ))
    }

    /// cosign attestation layers (`.att`, in-toto referrers): one trace line each.
    #[allow(clippy::too_many_arguments)]
    fn layers(
        &self,
        manifest: &str,
        layers: Vec<Result<discovery::Layer, String>>,
        path: Path,
        subject: &str,
        signers: &[Signer],
        ask: &Ask<'_>,
        now: i64,
        step: &mut TraceStep,
        verified: &mut Vec<Verified>,
    ) {
        // Only signature and attestation asks open DSSE layers.
        let Some(expect) = ask.expect() else {
            return;
        };
        let expected = self.expected(subject, expect, signers, now);
        for (i, layer) in layers.into_iter().enumerate() {
            let result = layer
                .and_then(|l| legacy::verify(&l.bytes, &l.annotations, expected))
                .map(|o| accepted(o, subject, path, manifest, ask));
            step.candidates.push(CandidateTrace {
                manifest: manifest.to_string(),
                kind: format!("cosign attestation layer {i}"),
                verdict: verdict(result, verified),
            });
        }
    }
}

fn step(path: Path, result: String) -> TraceStep {
    TraceStep {
        path,
        result,
        candidates: Vec::new(),
    }
}

/// A candidate's trace verdict: its line once verified (and its entry in
/// `verified`), or why it was rejected.
fn verdict(result: Result<(String, Verified), String>, verified: &mut Vec<Verified>) -> String {
    match result {
        Ok((line, entry)) => {
            verified.push(entry);
            line
        }
        Err(e) => format!("rejected: {e}"),
    }
}

/// A verified bundle or attestation layer: its trace line and its entry.
fn accepted(
    outcome: Outcome,
    subject: &str,
    path: Path,
    manifest: &str,
    ask: &Ask<'_>,
) -> (String, Verified) {
    let mut line = format!("verified: {}, {}", outcome.format, outcome.signer);
    if !outcome.evidence.is_empty() {
        line.push_str(&format!(" ({})", outcome.evidence.join(", ")));
    }
    let attestation = matches!(ask, Ask::Attestation { .. });
    let entry = Verified {
        subject: subject.to_string(),
        identity: Some(outcome.identity),
        format: outcome.format,
        path: path.as_str().to_string(),
        manifest: manifest.to_string(),
        signer: outcome.signer,
        valid_until: outcome.valid_until,
        statement: attestation.then_some(outcome.statement),
        certificate: if attestation { outcome.claims } else { None },
    };
    (line, entry)
}

/// A `.sig` tag exists: `oci/v2/verify`'s checks judge its layers (read
/// once, not once per identity), identity by identity until one passes.
async fn legacy_sig(
    oci: &Oci,
    disc: &Discovery<'_>,
    subject: &str,
    request: &SignatureVerifyRequest,
    sig: &Manifest,
) -> (CandidateTrace, Option<Verified>) {
    let image = format!("{}@{subject}", disc.repo.name());
    let manifest = sig.digest.as_str();
    let layers = oci.sig_manifest(disc, subject, sig);
    let mut reasons = Vec::new();
    for (i, identity) in request.identities.iter().enumerate() {
        match layers
            .verify(&identity.legacy_request(image.clone(), request.annotations.clone()))
            .await
        {
            Ok(answer) if answer.is_trusted && answer.digest == subject => {
                let signer = Signer::compile(std::slice::from_ref(identity))
                    .map(|s| s[0].describe())
                    .unwrap_or_default();
                return (
                    CandidateTrace {
                        manifest: manifest.to_string(),
                        kind: "cosign signature (.sig)".to_string(),
                        verdict: format!("verified: cosign-sig, {signer}"),
                    },
                    Some(Verified {
                        subject: subject.to_string(),
                        identity: Some(i),
                        format: "cosign-sig".to_string(),
                        path: Path::SigTag.as_str().to_string(),
                        manifest: manifest.to_string(),
                        signer,
                        ..Verified::default()
                    }),
                );
            }
            Ok(answer) => reasons.push(format!(
                "identities[{i}]: the .sig path answered {answer:?}"
            )),
            Err(e) => reasons.push(format!("identities[{i}]: {e}")),
        }
    }
    (
        CandidateTrace {
            manifest: manifest.to_string(),
            kind: "cosign signature (.sig)".to_string(),
            verdict: format!("rejected: {}", reasons.join("; ")),
        },
        None,
    )
}
