//! The response, from the verdicts: one rejection listing every denied image,
//! or an admission with warnings, audit annotations and the pinned digests
//! written into the object.
//!
//! Words are spent here only, and only on what needs them: an allowed image
//! costs no text.

use super::verdict::{Decision, Verdict};
use crate::pattern::FastHash;
use crate::settings::Policy;
use crate::wire::{AdmissionRequest, ValidationResponse};
use crate::workload;
use std::collections::{BTreeMap, HashSet};

/// What the gates and the verdicts have to say besides the decision.
#[derive(Debug, Default)]
pub(super) struct Notes {
    pub warnings: Vec<String>,
    pub audit: BTreeMap<String, String>,
}

/// The response for `verdicts` (one per image of `req`, in order).
pub(super) fn build(
    req: &AdmissionRequest,
    policy: &Policy,
    verdicts: &[Verdict],
    mut notes: Notes,
) -> ValidationResponse {
    let mut denials = Vec::new();
    let mut exempt = Vec::new();
    let mut pins = Vec::new();
    for v in verdicts {
        match v.decision() {
            Decision::Denied => denials.push(denial(v)),
            Decision::Warned => notes.warnings.push(warning(v, policy)),
            Decision::Exempt => exempt.push(v.image()),
            Decision::Allowed => match v.pinned() {
                Some(pinned) => pins.push((v, pinned)),
                None => {
                    if let Some(digest) = v.pin() {
                        notes.warnings.push(format!(
                            "{}: not pinned to {digest}: this subresource can only change ephemeral containers",
                            label(v)
                        ));
                    }
                }
            },
        }
    }
    if !exempt.is_empty() {
        notes
            .audit
            .insert("exempt-images".to_string(), exempt.join(", "));
    }
    // One warning per distinct text (two containers, one unmatched message).
    if notes.warnings.len() > 1 {
        let mut seen = HashSet::<String, FastHash>::default();
        notes.warnings.retain(|w| seen.insert(w.clone()));
    }

    if !denials.is_empty() {
        let mut response = ValidationResponse::reject(format!(
            "imagegate denied {} of {} images: {}",
            denials.len(),
            verdicts.len(),
            denials.join("; ")
        ));
        response.warnings = non_empty(notes.warnings);
        response.audit_annotations = non_empty_map(notes.audit);
        return response;
    }
    if pins.is_empty() {
        return accept(notes);
    }
    let mut object = match req
        .object
        .as_ref()
        .map(|o| serde_json::from_str::<serde_json::Value>(o.get()))
    {
        Some(Ok(object)) => object,
        Some(Err(e)) => {
            return ValidationResponse::reject(format!("imagegate: cannot pin digests: {e}"))
        }
        None => {
            return ValidationResponse::reject(
                "imagegate: cannot pin digests: the request has no object",
            )
        }
    };
    for (v, image) in &pins {
        if let Err(e) = workload::set_image(&mut object, v.pointer(), image.clone()) {
            return ValidationResponse::reject(format!("imagegate: cannot pin digests: {e}"));
        }
    }
    notes.audit.insert(
        "pinned-images".to_string(),
        pins.iter()
            .map(|(v, to)| format!("{} -> {to}", v.image()))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let mut response = accept(notes);
    response.mutated_object = Some(object);
    response
}

/// An admission carrying `notes`.
pub(super) fn accept(notes: Notes) -> ValidationResponse {
    ValidationResponse {
        accepted: true,
        warnings: non_empty(notes.warnings),
        audit_annotations: non_empty_map(notes.audit),
        ..Default::default()
    }
}

/// One entry of the rejection: `container "app": image "nginx" (docker.io/library/nginx:latest): rule "corp": ...`.
fn denial(v: &Verdict) -> String {
    let reason = v.reason().unwrap_or_default();
    match (v.normalized(), v.rule()) {
        (None, _) => format!("{}: image {:?} {reason}", v.container(), v.image()),
        (Some(_), Some(rule)) => format!("{}: rule {rule:?}: {reason}", label(v)),
        (Some(_), None) => format!("{}: {reason}", label(v)),
    }
}

/// The warning of a verdict a warn-mode rule or `unmatched: warn` let through.
fn warning(v: &Verdict, policy: &Policy) -> String {
    let reason = v.reason().unwrap_or_default();
    match v.rule() {
        Some(rule) => format!(
            "{}: rule {rule:?} is in warn mode, would deny: {reason}",
            label(v)
        ),
        // A custom unmatched text is the whole warning, worded as the tool
        // it comes from words it (Tanzu's AllowUnmatchedImages warning).
        None if policy.unmatched_message.is_some() => reason.to_string(),
        None => format!("{}: {reason}", label(v)),
    }
}

/// `container "c": image "nginx" (docker.io/library/nginx:latest)`: the image
/// as written, then its normalized form when it differs.
fn label(v: &Verdict) -> String {
    let written = v.image();
    match v.normalized().map(ToString::to_string) {
        Some(normalized) if normalized != written => {
            format!("{}: image {written:?} ({normalized})", v.container())
        }
        _ => format!("{}: image {written:?}", v.container()),
    }
}

fn non_empty(v: Vec<String>) -> Option<Vec<String>> {
    (!v.is_empty()).then_some(v)
}

fn non_empty_map(m: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!m.is_empty()).then_some(m)
}
