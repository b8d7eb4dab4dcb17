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
pub use verdict::{Decision, Verdict};

use crate::host::Host;
use crate::reference::{ParseError, Reference};
use crate::settings::Policy;
use crate::wire::{AdmissionRequest, ValidationResponse};
use crate::workload::ImageSite;
use std::ops::ControlFlow;

/// Decides one admission request.
pub fn validate(req: &AdmissionRequest, policy: &Policy, host: &dyn Host) -> ValidationResponse {
    decide(req, sites(req), policy, host).0
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
    decide(req, sites(req), policy, host)
}

/// An image of a request: where it is and its normalized reference (or
/// why it has none).
pub(crate) type Image = (ImageSite, Result<Reference, ParseError>);

/// The images `req` asks to run, or its decision when it runs none (the
/// first gate): found before the policy is compiled, which may then keep
/// only what these images need.
pub(crate) fn sites(req: &AdmissionRequest) -> ControlFlow<ValidationResponse, Vec<Image>> {
    gates::images(req).map_continue(|sites| {
        sites
            .into_iter()
            .map(|site| {
                let reference = Reference::parse(&site.image);
                (site, reference)
            })
            .collect()
    })
}

/// Decides `req`, whose [`sites`] are `sites`, under `policy`.
pub(crate) fn decide(
    req: &AdmissionRequest,
    sites: ControlFlow<ValidationResponse, Vec<Image>>,
    policy: &Policy,
    host: &dyn Host,
) -> (ValidationResponse, Vec<Verdict>) {
    let sites = match sites {
        ControlFlow::Continue(sites) => sites,
        ControlFlow::Break(decided) => return (decided, Vec::new()),
    };
    let sourced;
    let policy = match &policy.sources {
        None => policy,
        Some(sources) => {
            let namespace = req.namespace.as_deref().unwrap_or("");
            match crate::sources::context::policy(sources, namespace, host) {
                Ok(p) => {
                    sourced = p;
                    &sourced
                }
                Err(e) => {
                    return (
                        ValidationResponse::reject(format!("imagegate: {e}")),
                        Vec::new(),
                    )
                }
            }
        }
    };
    let notes = match gates::exemptions(req, policy) {
        ControlFlow::Continue(notes) => notes,
        ControlFlow::Break(decided) => return (decided, Vec::new()),
    };
    let calls = checks::Calls::new(host);
    let mut ids = Vec::new();
    let verdicts: Vec<Verdict> = sites
        .into_iter()
        .map(|site| verdict::decide(site, policy, &calls, &mut ids))
        .collect();
    (response::build(req, policy, &verdicts, notes), verdicts)
}

#[cfg(test)]
mod tests;
