//! waPC entry point: registers the three Kubewarden operations.
//!
//! Thin glue only: bytes in, bytes out ([`Instance`] does the rest). The
//! guest never returns an error for bad input and never prints.

use crate::host::WapcHost;
use crate::instance::Instance;
use crate::wire::ExplainedResponse;
use std::cell::RefCell;
use wapc_guest::prelude::*;

thread_local! {
    /// This instance's memory of earlier calls.
    static INSTANCE: RefCell<Instance> = RefCell::new(Instance::default());
}

#[no_mangle]
pub extern "C" fn wapc_init() {
    register_function("validate", validate);
    register_function("validate_settings", validate_settings);
    register_function("protocol_version", protocol_version);
}

/// `validate`: a [`ValidationResponse`](crate::wire::ValidationResponse); with `imagegate_explain` (imagegate
/// hosts only) an [`ExplainedResponse`] carrying the same response.
fn validate(payload: &[u8]) -> CallResult {
    let answer = INSTANCE.with(|i| i.borrow_mut().answer(payload, &WapcHost));
    Ok(match answer {
        (response, None) => serde_json::to_vec(&response)?,
        (response, Some(imagegate_verdicts)) => serde_json::to_vec(&ExplainedResponse {
            response,
            imagegate_verdicts,
        })?,
    })
}

fn validate_settings(payload: &[u8]) -> CallResult {
    let response = INSTANCE.with(|i| i.borrow_mut().validate_settings(payload));
    Ok(serde_json::to_vec(&response)?)
}

fn protocol_version(_payload: &[u8]) -> CallResult {
    Ok(br#""v1""#.to_vec())
}
