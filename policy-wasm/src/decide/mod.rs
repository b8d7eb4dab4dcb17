//! The decision engine: `(request, Policy, &dyn Host) -> ValidationResponse`.
//!
//! Pure Rust: the same code runs in the wasm module (with the waPC host) and
//! natively in tests (with a scripted host). One pipeline, in one direction:
//!
//! 1. `gates`: the operation, kind and subresource (does the request run any
//!    image?), then the namespace exemption and break-glass. Each can decide
//!    the request before any image is looked at.
//! 2. `verdict`: one [`Verdict`] per image: normalized reference, the rule
//!    that decides, the decision and its reason, the host checks run
//!    (`checks`) and the digest to pin. Every image is checked.
//! 3. `response`: the [`ValidationResponse`] written from the verdicts: one
//!    rejection listing every denied image with its container, rule and
//!    reason, or an admission with warnings, audit annotations and the
//!    pinned digests.
//!
//! With `sources`, the settings are first completed for the request's
//! namespace (objects read through the host) and the resulting policy runs
//! the same pipeline. Any host error is a failed check (fail closed).

mod checks;
mod gates;
mod response;
mod verdict;

pub use checks::CheckRun;
pub(crate) use verdict::Matches;
pub use verdict::{Decision, Verdict};

use crate::host::Host;
use crate::reference::{ParseError, Reference};
use crate::settings::Policy;
use crate::wire::{AdmissionRequest, ImageReport, ValidationResponse};
use crate::workload::{self, ImageSite, Spec};
use std::ops::ControlFlow;

/// Decides one admission request.
pub fn validate(req: &AdmissionRequest, policy: &Policy, host: &dyn Host) -> ValidationResponse {
    decide(req, sites(req), policy, host).response
}

/// [`validate`], plus the verdict on every image (none when the request was
/// decided without looking at images: another operation or kind, an exempt
/// namespace, break-glass). The response is the one [`validate`] returns,
/// written from these very verdicts.
pub fn explain(
    req: &AdmissionRequest,
    policy: &Policy,
    host: &dyn Host,
) -> (ValidationResponse, Vec<Verdict>) {
    let decided = decide(req, sites(req), policy, host);
    (decided.response, decided.verdicts)
}

/// [`validate`], plus one [`ImageReport`] per image: what the module answers
/// when asked `imagegate_explain`. Images a namespace exemption or
/// break-glass admitted unchecked are reported `exempt`, with the reason.
pub fn report(
    req: &AdmissionRequest,
    policy: &Policy,
    host: &dyn Host,
) -> (ValidationResponse, Vec<ImageReport>) {
    reports(decide(req, sites(req), policy, host), policy)
}

/// The response and the [`ImageReport`]s of what [`decide`] found under `policy`.
pub(crate) fn reports(decided: Decided, policy: &Policy) -> (ValidationResponse, Vec<ImageReport>) {
    let policy = decided.sourced.as_ref().unwrap_or(policy);
    let mut reports: Vec<ImageReport> = decided.verdicts.iter().map(|v| v.report(policy)).collect();
    if let Some(sites) = decided.unchecked {
        let reason = decided
            .response
            .audit_annotations
            .iter()
            .flatten()
            .map(|(key, text)| format!("{key}: {text}"))
            .collect::<Vec<_>>()
            .join("; ");
        reports = sites
            .into_iter()
            .map(|site| ImageReport {
                container: site.describe(),
                pointer: site.pointer,
                image: site.image,
                decision: Decision::Exempt.as_str().to_string(),
                reason: Some(reason.clone()),
                ..Default::default()
            })
            .collect();
    }
    (decided.response, reports)
}

/// An image of a request: where it is and its normalized reference (or
/// why it has none).
pub(crate) type Image = (ImageSite, Result<Reference, ParseError>);

/// The images `req` asks to run, or its decision when it runs none (the
/// first gate): found before the policy is compiled, which may then keep
/// only what these images need.
pub(crate) fn sites(req: &AdmissionRequest) -> ControlFlow<ValidationResponse, Vec<Image>> {
    sites_with(req, None, &mut |image| Reference::parse(image))
}

/// [`sites`], with what the payload's reader read of the object (`spec`)
/// and references from `parse`.
pub(crate) fn sites_with(
    req: &AdmissionRequest,
    spec: Option<Spec>,
    parse: &mut dyn FnMut(&str) -> Result<Reference, ParseError>,
) -> ControlFlow<ValidationResponse, Vec<Image>> {
    gates::images(req, spec).map_continue(|sites| {
        sites
            .into_iter()
            .map(|site| {
                let reference = parse(&site.image);
                (site, reference)
            })
            .collect()
    })
}

/// What [`decide`] found.
pub(crate) struct Decided {
    pub(crate) response: ValidationResponse,
    verdicts: Vec<Verdict>,
    /// The policy completed by `sources`, when the settings have them: the
    /// one the verdicts were decided under.
    sourced: Option<Policy>,
    /// The images a namespace exemption or break-glass admitted unchecked.
    unchecked: Option<Vec<ImageSite>>,
}

/// Decides `req`, whose [`sites`] are `sites`, under `policy`.
pub(crate) fn decide(
    req: &AdmissionRequest,
    sites: ControlFlow<ValidationResponse, Vec<Image>>,
    policy: &Policy,
    host: &dyn Host,
) -> Decided {
    decide_with(req, sites, policy, host, None)
}

/// [`decide`], with what matching found kept in `memo` (for `policy`
/// only: not used when `sources` complete it).
pub(crate) fn decide_with(
    req: &AdmissionRequest,
    sites: ControlFlow<ValidationResponse, Vec<Image>>,
    policy: &Policy,
    host: &dyn Host,
    mut memo: Option<&mut verdict::Matches>,
) -> Decided {
    let decided = |response, sourced, unchecked| Decided {
        response,
        verdicts: Vec::new(),
        sourced,
        unchecked,
    };
    let sites = match sites {
        ControlFlow::Continue(sites) => sites,
        ControlFlow::Break(response) => return decided(response, None, None),
    };
    let sourced = match &policy.sources {
        None => None,
        Some(sources) => {
            let namespace = req.namespace.as_deref().unwrap_or("");
            match crate::sources::context::policy(sources, namespace, host) {
                Ok(p) => Some(p),
                Err(e) => {
                    let response = ValidationResponse::reject(format!("imagegate: {e}"));
                    return decided(response, None, None);
                }
            }
        }
    };
    let effective = sourced.as_ref().unwrap_or(policy);
    let notes = match gates::exemptions(req, effective) {
        ControlFlow::Continue(notes) => notes,
        ControlFlow::Break(response) => {
            let sites = sites.into_iter().map(|(site, _)| site).collect();
            return decided(response, sourced, Some(sites));
        }
    };
    let calls = checks::Calls::new(host);
    let pod = workload::is_pod(req);
    if sourced.is_some() {
        memo = None;
    }
    let mut matcher = verdict::Matcher {
        ids: Vec::new(),
        memo,
    };
    let verdicts: Vec<Verdict> = sites
        .into_iter()
        .map(|site| verdict::decide(site, effective, pod, &calls, &mut matcher))
        .collect();
    Decided {
        response: response::build(req, effective, &verdicts, notes),
        verdicts,
        sourced,
        unchecked: None,
    }
}

#[cfg(test)]
mod tests;
