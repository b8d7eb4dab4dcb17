//! waPC entry point: registers the three Kubewarden operations.
//!
//! Thin glue only: bytes in, bytes out ([`Instance`] does the rest). The
//! guest never returns an error for bad input and never prints.

use crate::host::WapcHost;
use crate::instance::Instance;
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

fn validate(payload: &[u8]) -> CallResult {
    let response = INSTANCE.with(|i| i.borrow_mut().validate(payload, &WapcHost));
    Ok(serde_json::to_vec(&response)?)
}

fn validate_settings(payload: &[u8]) -> CallResult {
    let response = INSTANCE.with(|i| i.borrow_mut().validate_settings(payload));
    Ok(serde_json::to_vec(&response)?)
}

fn protocol_version(_payload: &[u8]) -> CallResult {
    Ok(br#""v1""#.to_vec())
}
