//! waPC entry point: registers the three Kubewarden operations.
//!
//! Thin glue only: bytes in, bytes out. Requests that cannot be read become
//! rejections that say why; the guest never returns an error for bad input
//! and never prints.

use crate::decide;
use crate::host::WapcHost;
use crate::settings::Policy;
use crate::wire::{
    ExplainedResponse, SettingsValidationResponse, ValidationRequest, ValidationResponse,
};
use std::cell::RefCell;
use std::rc::Rc;
use wapc_guest::prelude::*;

thread_local! {
    /// The policy compiled from the settings seen last, keyed by their exact
    /// text. policy-server makes a fresh instance per request, so this only
    /// pays off in reused instances (kwctl bench, `imagegate serve --reuse`);
    /// it costs one string comparison.
    static COMPILED: RefCell<Option<(String, Rc<Policy>)>> = const { RefCell::new(None) };
}

#[no_mangle]
pub extern "C" fn wapc_init() {
    register_function("validate", validate);
    register_function("validate_settings", validate_settings);
    register_function("protocol_version", protocol_version);
}

/// `validate`: a [`ValidationResponse`]; with `imagegate_explain` (imagegate
/// hosts only) an [`ExplainedResponse`] carrying the same response.
fn validate(payload: &[u8]) -> CallResult {
    let vr = match serde_json::from_slice::<ValidationRequest>(payload) {
        Ok(vr) => vr,
        Err(e) => {
            let response =
                ValidationResponse::reject(format!("imagegate: malformed ValidationRequest: {e}"));
            return Ok(serde_json::to_vec(&response)?);
        }
    };
    let settings = vr.settings.map_or("{}", |s| s.get());
    let policy = match policy(settings) {
        Ok(policy) => policy,
        Err(e) => {
            let response = ValidationResponse::reject(format!("imagegate: invalid settings: {e}"));
            return Ok(serde_json::to_vec(&response)?);
        }
    };
    if vr.imagegate_explain {
        let (response, imagegate_verdicts) = decide::report(&vr.request, &policy, &WapcHost);
        return Ok(serde_json::to_vec(&ExplainedResponse {
            response,
            imagegate_verdicts,
        })?);
    }
    Ok(serde_json::to_vec(&decide::validate(
        &vr.request,
        &policy,
        &WapcHost,
    ))?)
}

fn policy(settings: &str) -> Result<Rc<Policy>, String> {
    COMPILED.with(|cell| {
        if let Some((text, policy)) = cell.borrow().as_ref() {
            if text == settings {
                return Ok(policy.clone());
            }
        }
        let policy = Rc::new(Policy::from_json(settings)?);
        *cell.borrow_mut() = Some((settings.to_string(), policy.clone()));
        Ok(policy)
    })
}

fn validate_settings(payload: &[u8]) -> CallResult {
    let settings = std::str::from_utf8(payload).map_err(|e| format!("settings are not UTF-8: {e}"));
    let response = match settings.and_then(|s| policy(s).map(|_| ())) {
        Ok(()) => SettingsValidationResponse {
            valid: true,
            message: None,
        },
        Err(message) => SettingsValidationResponse {
            valid: false,
            message: Some(message),
        },
    };
    Ok(serde_json::to_vec(&response)?)
}

fn protocol_version(_payload: &[u8]) -> CallResult {
    Ok(br#""v1""#.to_vec())
}
