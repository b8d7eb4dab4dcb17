//! Gates: what decides a request before any image is looked at.
//!
//! In order: the operation (DELETE and CONNECT run nothing), the kind and
//! subresource (no pod spec, nothing to check; a workload that cannot be read
//! is denied), then the namespace exemption and break-glass, which admit
//! without checking images but leave an audit trail.

use super::response::{self, Notes};
use crate::settings::Policy;
use crate::wire::{AdmissionRequest, ValidationResponse};
use crate::workload::{self, ImageSite};
use std::ops::ControlFlow;

/// The images the request asks to run, or its decision when it runs none
/// (accepted) or its object cannot be read (denied, fail closed).
///
/// `spec`: what the payload's reader read of the object ([`workload::read_spec`]).
pub(super) fn images(
    req: &AdmissionRequest,
    spec: Option<workload::Spec>,
) -> ControlFlow<ValidationResponse, Vec<ImageSite>> {
    if matches!(req.operation.as_str(), "DELETE" | "CONNECT") {
        return ControlFlow::Break(response::accept(Notes::default()));
    }
    match workload::find_images(req, spec) {
        Ok(Some(sites)) => ControlFlow::Continue(sites),
        Ok(None) => ControlFlow::Break(response::accept(Notes::default())),
        Err(reason) => {
            ControlFlow::Break(ValidationResponse::reject(format!("imagegate: {reason}")))
        }
    }
}

/// The namespace exemption and break-glass: the request's decision when one
/// of them admits it, else what they leave to say (an ignored break-glass
/// annotation is a warning).
pub(super) fn exemptions(
    req: &AdmissionRequest,
    policy: &Policy,
) -> ControlFlow<ValidationResponse, Notes> {
    let mut notes = Notes::default();
    let namespace = req.namespace.as_deref().unwrap_or("");
    if let Some(glob) = policy
        .exempt_namespaces
        .iter()
        .find(|g| g.is_match(namespace))
    {
        notes.audit.insert(
            "exempt-namespace".to_string(),
            format!(
                "namespace {namespace:?} matches exemptNamespaces {:?}",
                glob.as_str()
            ),
        );
        return ControlFlow::Break(response::accept(notes));
    }
    let Some(bg) = &policy.break_glass else {
        return ControlFlow::Continue(notes);
    };
    let used = req
        .object
        .as_ref()
        .and_then(|o| workload::annotation(o, &bg.annotation));
    if used.as_deref() != Some("true") {
        return ControlFlow::Continue(notes);
    }
    let user = req.user_info.username.as_deref().unwrap_or("");
    let permitted =
        bg.groups.is_empty() || req.user_info.groups.iter().any(|g| bg.groups.contains(g));
    if permitted {
        notes.warnings.push(format!(
            "imagegate: break-glass annotation {:?} used by {user:?}: images were not checked",
            bg.annotation
        ));
        notes
            .audit
            .insert("break-glass".to_string(), format!("used by {user:?}"));
        return ControlFlow::Break(response::accept(notes));
    }
    notes.warnings.push(format!(
        "imagegate: break-glass annotation {:?} ignored: {user:?} is in none of breakGlass.groups",
        bg.annotation
    ));
    ControlFlow::Continue(notes)
}
