//! What one policy instance keeps between calls, and how it answers them:
//! bytes in, response out. The waPC glue (`entry.rs`) only hands the
//! payloads over, so all of this runs and is tested natively too.
//!
//! policy-server makes a fresh instance for every request, so an instance's
//! first `validate` is usually its only one: it compiles just what its
//! request needs ([`Scope::Images`]: the rules and patterns its images may
//! reach are read, checked and indexed, the others passed over; the host
//! validated the settings before). A reused instance (`kwctl bench`, `imagegate
//! serve --reuse`) compiles the whole policy on its next call and keeps it
//! with the settings text, which later calls compare (not parse) against
//! theirs: byte for byte, so a policy is reused for exactly its settings.
//! It also keeps its images parsed, since the same images come again.
//!
//! Settings that end the payload, as policy-evaluator writes it, are read
//! only by the settings reader (`wire::read` with `lazy`): the payload is
//! read strictly, settings scanned, only when they do not read.

use crate::decide;
use crate::host::Host;
use crate::json;
use crate::pattern::FastHash;
use crate::reference::{ParseError, Reference};
use crate::settings::{Policy, Scope};
use crate::wire::{
    self, ImageReport, SettingsText, SettingsValidationResponse, ValidationResponse,
};
use crate::workload::Spec;
use std::collections::HashMap;
use std::ops::ControlFlow;

/// One instance's memory of earlier calls.
#[derive(Default)]
pub struct Instance {
    /// Whether `validate` was called before.
    validated: bool,
    /// The whole policy, with the settings text it was compiled from.
    compiled: Option<(String, Policy)>,
    /// A reused instance's images, parsed (at most [`PARSED`]).
    parsed: HashMap<String, Result<Reference, ParseError>, FastHash>,
    /// What matching them against `compiled` found (at most [`PARSED`]).
    matched: decide::Matches,
}

/// The most images a reused instance keeps parsed (then it starts over).
const PARSED: usize = 4096;

impl Instance {
    /// Answers `validate`: the payload is `{"request": ..., "settings": ...}`.
    pub fn validate(&mut self, payload: &[u8], host: &dyn Host) -> ValidationResponse {
        self.answer(payload, host).0
    }

    /// [`Instance::validate`], with one [`ImageReport`] per image when the
    /// payload asks `imagegate_explain` (imagegate hosts only).
    pub fn answer(
        &mut self,
        payload: &[u8],
        host: &dyn Host,
    ) -> (ValidationResponse, Option<Vec<ImageReport>>) {
        let first = !std::mem::replace(&mut self.validated, true);
        // Settings that end the payload are read once, by the settings
        // reader; only when they do not read is the payload read strictly
        // (to tell a malformed payload from invalid settings).
        let mut lazy = true;
        loop {
            let known = self.compiled.as_ref().map(|(text, _)| text.as_str());
            let (vr, state, spec) = match wire::read(payload, known, lazy) {
                Ok(read) => read,
                Err(e) => {
                    let e = format!("imagegate: malformed ValidationRequest: {e}");
                    return (ValidationResponse::reject(e), None);
                }
            };
            match self.decide(vr, state, spec, first, host) {
                Err(_) if state == SettingsText::Unchecked => lazy = false,
                Err(e) => return (invalid(e), None),
                Ok(answer) => return answer,
            }
        }
    }

    /// Decides `vr` (`Err`: the settings are invalid).
    fn decide(
        &mut self,
        vr: wire::ValidationRequest<'_>,
        state: SettingsText,
        spec: Option<Spec>,
        first: bool,
        host: &dyn Host,
    ) -> Result<(ValidationResponse, Option<Vec<ImageReport>>), String> {
        let known = state == SettingsText::Known;
        let settings = vr.settings.unwrap_or("{}");
        let sites = match first {
            true => decide::sites_with(&vr.request, spec, &mut Reference::parse),
            false => {
                let parsed = &mut self.parsed;
                if parsed.len() >= PARSED {
                    parsed.clear();
                }
                if self.matched.len() >= PARSED {
                    self.matched.clear();
                }
                decide::sites_with(&vr.request, spec, &mut |image| {
                    if let Some(known) = parsed.get(image) {
                        return known.clone();
                    }
                    let reference = Reference::parse(image);
                    parsed.insert(image.to_string(), reference.clone());
                    reference
                })
            }
        };
        let scoped;
        let mut memo = None;
        let policy = match &mut self.compiled {
            Some((_, policy)) if known => {
                memo = Some(&mut self.matched);
                &*policy
            }
            _ if first => {
                let images: Vec<&Reference> = match &sites {
                    ControlFlow::Continue(images) => images
                        .iter()
                        .filter_map(|(_, reference)| reference.as_ref().ok())
                        .collect(),
                    ControlFlow::Break(_) => Vec::new(),
                };
                // Never freed: policy-server drops the instance after this
                // call, and freeing the policy piece by piece is 3% of it
                // (a reused instance keeps this one scoped policy).
                scoped =
                    std::mem::ManuallyDrop::new(Policy::compile(settings, Scope::Images(&images))?);
                &scoped
            }
            compiled => {
                let policy = Policy::from_json(settings)?;
                self.matched.clear();
                memo = Some(&mut self.matched);
                &compiled.insert((settings.to_string(), policy)).1
            }
        };
        let decided = decide::decide_with(&vr.request, sites, policy, host, memo);
        Ok(match vr.imagegate_explain {
            true => {
                let (response, reports) = decide::reports(decided, policy);
                (response, Some(reports))
            }
            false => (decided.response, None),
        })
    }

    /// Answers `validate_settings`: the payload is the settings.
    pub fn validate_settings(&mut self, payload: &[u8]) -> SettingsValidationResponse {
        let checked = std::str::from_utf8(payload)
            .map_err(|e| format!("settings are not UTF-8: {e}"))
            .and_then(|settings| {
                if let Some((text, _)) = &self.compiled {
                    if json::same(text.as_bytes(), settings.as_bytes()) {
                        return Ok(());
                    }
                }
                let policy = Policy::from_json(settings)?;
                self.compiled = Some((settings.to_string(), policy));
                Ok(())
            });
        SettingsValidationResponse {
            valid: checked.is_ok(),
            message: checked.err(),
        }
    }
}

fn invalid(e: String) -> ValidationResponse {
    ValidationResponse::reject(format!("imagegate: invalid settings: {e}"))
}
