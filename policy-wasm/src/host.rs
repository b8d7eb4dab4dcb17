//! The capabilities the engine needs from its host.
//!
//! The engine never talks waPC: it asks a [`Host`]. In the wasm module that is
//! `WapcHost` (a `__host_call` with binding `kubewarden`); natively it is the
//! playground's simulated host, or a scripted one in tests.

/// A Kubewarden host: answers `namespace` / `operation` calls with a JSON payload.
///
/// The calls the engine makes (payloads in [`crate::wire`]):
/// `oci`/`v2/verify` (sigstore), `oci`/`v1/manifest_digest`,
/// `oci`/`v1/oci_manifest_config` (image labels), `notary`/`v1/signed_digest`
/// (imagegate's own host only), and `kubernetes`/`get_resource`,
/// `list_resources_by_namespace`, `list_resources_all` (settings `sources`).
///
/// `Err` carries the host's error text. Every error is a failed check for the
/// engine (fail closed), and its text ends up in the denial.
///
/// ```
/// use imagegate_policy::host::Host;
///
/// /// Resolves every tag to one digest; knows no other capability.
/// struct Pinning;
///
/// impl Host for Pinning {
///     fn call(&self, namespace: &str, operation: &str, _payload: &[u8]) -> Result<Vec<u8>, String> {
///         match (namespace, operation) {
///             ("oci", "v1/manifest_digest") => Ok(br#"{"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"}"#.to_vec()),
///             _ => Err(format!("unknown operation: {operation}")),
///         }
///     }
/// }
///
/// let host: &dyn Host = &Pinning;
/// assert!(host.call("oci", "v1/manifest_digest", br#""docker.io/library/nginx:1""#).is_ok());
/// assert!(host.call("notary", "v1/signed_digest", b"{}").is_err());
/// ```
pub trait Host {
    /// Makes one capability call; the answer is the host's JSON, or its error text.
    fn call(&self, namespace: &str, operation: &str, payload: &[u8]) -> Result<Vec<u8>, String>;
}

/// The real host of the wasm module.
#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
pub(crate) struct WapcHost;

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
