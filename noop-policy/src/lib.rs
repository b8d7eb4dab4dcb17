//! A waPC policy that accepts every request and every settings document
//! without reading them: the host's floor. `imagegate bench --floor` runs it
//! beside imagegate to report imagegate's own cost above what any waPC
//! policy pays (instantiation, `wapc_init`, the payload copied in, a
//! response copied out). Built like the policy (`--profile wasm`).

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
mod entry {
    use wapc_guest::prelude::*;

    #[no_mangle]
    pub extern "C" fn wapc_init() {
        register_function("validate", |_| Ok(ACCEPT.to_vec()));
        register_function("validate_settings", |_| Ok(VALID.to_vec()));
        register_function("protocol_version", |_| Ok(br#""v1""#.to_vec()));
    }

    /// `ValidationResponse` with all six keys, as the policy writes it.
    const ACCEPT: &[u8] = br#"{"accepted":true,"message":null,"code":null,"mutated_object":null,"audit_annotations":null,"warnings":null}"#;
    const VALID: &[u8] = br#"{"valid":true,"message":null}"#;
}
