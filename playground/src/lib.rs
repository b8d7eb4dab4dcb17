//! The imagegate engine in the browser.
//!
//! [`evaluate`] takes the page's whole [`State`] (settings and workload as
//! the user typed them, and the answers chosen for the simulated host), runs
//! the very engine of the policy module (`decide::explain`) against the
//! [`SimulatedHost`](simulated::SimulatedHost) and returns JSON for the page:
//! the engine's verdict per image (the same verdicts the response is written
//! from, and the rows `imagegate check` prints), the response (message,
//! warnings, audit annotations, JSON patch) and every host call with its
//! answer. [`gallery`] returns the examples (`playground/gallery/`).
//!
//! This file is the only one that touches the engine: keep it to that one
//! call, so the playground follows whatever the engine becomes.

mod gallery;
pub mod input;
pub mod simulated;

use std::collections::BTreeMap;

use imagegate_policy::decide;
use serde::Deserialize;
use serde_json::{json, Value};
use simulated::{Answer, SimulatedHost};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen::prelude::wasm_bindgen;

/// Everything the page holds, and what a share link carries.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct State {
    /// Settings YAML (empty = `{}`).
    #[serde(default)]
    pub settings: String,
    /// An object, an AdmissionRequest or an AdmissionReview, as YAML or JSON.
    #[serde(default)]
    pub workload: String,
    /// The simulated host's answers chosen by the user, by [`simulated::call_id`].
    #[serde(default)]
    pub answers: BTreeMap<String, Answer>,
}

/// Entry point for the page: the [`report`] of a JSON [`State`] (never throws).
#[cfg_attr(target_arch = "wasm32", wasm_bindgen)]
pub fn evaluate(state: &str) -> String {
    match serde_json::from_str::<State>(state) {
        Ok(state) => report(&state),
        Err(e) => json!({ "stateError": format!("the page state is invalid: {e}") }),
    }
    .to_string()
}

/// The gallery as JSON (see `gallery.rs`).
#[cfg_attr(target_arch = "wasm32", wasm_bindgen)]
pub fn gallery() -> String {
    gallery::JSON.to_string()
}

/// [`evaluate`] as a value: `{"settingsErrors": [{path, message}],
/// "workloadError"}` when the input cannot be read (both are reported), else
/// `{"object", "allowed", "message", "warnings", "auditAnnotations",
/// "patch", "images", "hostCalls"}`.
pub fn report(state: &State) -> Value {
    let settings = input::settings(&state.settings);
    let request = input::workload(&state.workload);
    let ((policy, settings), request) = match (settings, request) {
        (Ok(s), Ok(r)) => (s, r),
        (s, r) => {
            return json!({
                "settingsErrors": s.err(),
                "workloadError": r.err(),
            })
        }
    };
    let host = SimulatedHost::new(&state.answers, &settings);
    let (response, verdicts) = decide::explain(&request, &policy, &host);
    // What the API server applies: the JSON patch policy-evaluator computes
    // from the object and the mutated object.
    let patch = response.mutated_object.as_ref().and_then(|mutated| {
        let object: Value = serde_json::from_str(request.object.as_ref()?.get()).ok()?;
        let patch = json_patch::diff(&object, mutated);
        (!patch.0.is_empty()).then_some(patch)
    });
    json!({
        "object": input::object_name(&request),
        "allowed": response.accepted,
        "message": response.message,
        "warnings": response.warnings.unwrap_or_default(),
        "auditAnnotations": response.audit_annotations.unwrap_or_default(),
        "patch": patch,
        "images": verdicts,
        "hostCalls": host.into_calls(),
    })
}

#[cfg(test)]
mod tests;
