//! The capabilities the engine needs from its host.
//!
//! The engine never talks waPC: it asks a [`Host`]. In the wasm module that is
//! `WapcHost` (a `__host_call` with binding `kubewarden`); in native tests it
//! is any fake that answers the same namespaces and operations.

/// A Kubewarden host: answers `namespace` / `operation` calls with a JSON payload.
///
/// `Err` carries the host's error text. Every error is a failed check for the
/// engine (fail closed).
pub trait Host {
    fn call(&self, namespace: &str, operation: &str, payload: &[u8]) -> Result<Vec<u8>, String>;
}

/// The real host of the wasm module.
#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
pub struct WapcHost;

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
impl Host for WapcHost {
    fn call(&self, namespace: &str, operation: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
        wapc_guest::host_call("kubewarden", namespace, operation, payload).map_err(|e| {
            // wapc-guest prefixes the host's own text; the host's words are what users need.
            let text = e.to_string();
            text.strip_prefix("Host error: ")
                .map_or(text.clone(), str::to_string)
        })
    }
}
