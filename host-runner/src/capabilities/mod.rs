//! Host capabilities answered by imagegate.
//!
//! [`Capabilities`] is the `__host_call` dispatcher. It behaves like
//! policy-evaluator's `host_callback`: binding check, `tracing/log` inline,
//! payload parsed into a [`Request`] ([`request`]), then the capability
//! allow-list, then the context-aware resource allow-list ([`gating`]), and
//! only then a [`Backend`]: [`live`] (registries through [`oci`], [`notary`],
//! [`kubernetes`] from a directory, [`crypto`], behind the [`cache`]), a
//! replayed or recorded session ([`crate::runtime::session`]), or
//! [`Offline`]. Error texts are Kubewarden's, because policies and users
//! match on them.
//!
//! [`x509`] (certificates, chains at a time, Notation's certificate rules,
//! distinguished names) and [`timestamp`] (RFC 3161) are no capabilities:
//! they are the pieces the signature verifiers share.
//!
//! A new capability: a [`Request`] variant and its line in
//! [`request::parse`] and [`imagegate_policy::capability`], its kwctl session
//! form in `runtime::session`, and its answer in [`live`] (in a module of its
//! own when it is more than a call).

pub mod cache;
pub mod canonical;
pub mod crypto;
pub mod gating;
pub mod kubernetes;
pub mod live;
pub mod notary;
pub mod notation;
pub mod oci;
pub mod request;
pub mod shared;
pub mod signatures;
pub mod sigstore;
pub mod timestamp;
pub mod x509;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::runtime::{HostCall, HostCallbacks};
use cache::CacheStats;
pub use gating::{CapabilityAllowList, ContextAwareAllowList};
pub use request::Request;

/// Where answers come from. Shared by concurrent evaluations (`serve`), so
/// backends keep their own fine-grained locks instead of one around them.
pub trait Backend: Send + Sync {
    /// Answers one request; `deadline` is the end of the evaluation.
    fn answer(&self, request: &Request, deadline: Option<Instant>) -> Result<Vec<u8>, String>;

    /// Called once when the session ends (record writes its file here).
    fn finish(&self) -> anyhow::Result<()> {
        Ok(())
    }

    /// Capability cache counters, when this backend caches.
    fn cache_stats(&self) -> Option<Arc<CacheStats>> {
        None
    }

    /// A position to come back to with [`Backend::rewind`] (replay only), so
    /// a benchmark can replay the same exchanges on every iteration.
    fn checkpoint(&self) -> usize {
        0
    }

    fn rewind(&self, _checkpoint: usize) {}
}

/// Why a live capability call gave no answer: its message, and whether the
/// check itself said no.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    /// The check ran to completion and refused (no or non-matching
    /// signature, trust data that does not verify, a request that can never
    /// pass): the same request gets the same answer until the signed content
    /// changes, so the cache may keep it for its short negative TTL.
    /// Everything else (transport errors, timeouts, server errors) is not
    /// definite and is never cached.
    pub definite: bool,
}

impl Failure {
    pub fn definite(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            definite: true,
        }
    }
}

/// Plain error texts are transient failures: only a verifier that knows
/// its check refused says [`Failure::definite`].
impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure {
            message,
            definite: false,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Locks a mutex, ignoring poisoning (a panicked holder leaves plain data).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// No capabilities at all: every call fails (fixtures without a session).
pub struct Offline;

impl Backend for Offline {
    fn answer(&self, request: &Request, _: Option<Instant>) -> Result<Vec<u8>, String> {
        Err(format!(
            "host capabilities are not available offline (no recorded session); request was {request:?}"
        ))
    }
}

/// The `__host_call` dispatcher.
pub struct Capabilities {
    allowed: CapabilityAllowList,
    context_aware: ContextAwareAllowList,
    backend: Box<dyn Backend>,
}

impl Capabilities {
    pub fn new(
        allowed: CapabilityAllowList,
        context_aware: ContextAwareAllowList,
        backend: Box<dyn Backend>,
    ) -> Self {
        Capabilities {
            allowed,
            context_aware,
            backend,
        }
    }

    /// Ends the session (writes a recording).
    pub fn finish(&self) -> anyhow::Result<()> {
        self.backend.finish()
    }

    pub fn cache_stats(&self) -> Option<Arc<CacheStats>> {
        self.backend.cache_stats()
    }

    pub fn checkpoint(&self) -> usize {
        self.backend.checkpoint()
    }

    pub fn rewind(&self, checkpoint: usize) {
        self.backend.rewind(checkpoint)
    }
}

impl HostCallbacks for Capabilities {
    fn host_call(&self, call: &HostCall<'_>) -> Result<Vec<u8>, String> {
        let HostCall {
            binding,
            namespace,
            operation,
            payload,
            deadline,
        } = *call;
        if binding != "kubewarden" {
            return Err(format!("unknown binding: {binding}"));
        }
        if namespace == "tracing" {
            return match operation {
                "log" => {
                    log_guest_event(payload);
                    Ok(Vec::new())
                }
                _ => Err(format!("unknown operation: {operation}")),
            };
        }
        let request = request::parse(namespace, operation, payload)?;
        let path = format!("{namespace}/{operation}");
        if !self.allowed.allows(&path) {
            return Err(format!(
                "Policy has not been granted access to the '{path}' host capability. The violation has been reported."
            ));
        }
        if let Some((api_version, kind)) = request.kubernetes_resource() {
            let granted = self.context_aware.as_ref().is_some_and(|allowed| {
                allowed.contains(&(api_version.to_string(), kind.to_string()))
            });
            if !granted {
                return Err(format!(
                    "Policy has not been granted access to Kubernetes {api_version}/{kind} resources. The violation has been reported."
                ));
            }
        }
        self.backend
            .answer(&request, deadline)
            .map_err(|e| format!("Callback evaluation failure: {e}"))
    }
}

/// `tracing/log`: always allowed, printed on stderr, never recorded.
fn log_guest_event(payload: &[u8]) {
    let mut event: serde_json::Map<String, serde_json::Value> =
        match serde_json::from_slice(payload) {
            Ok(e) => e,
            Err(e) => {
                eprintln!(
                    "[policy] cannot decode log event ({e}): {}",
                    String::from_utf8_lossy(payload)
                );
                return;
            }
        };
    let level = event
        .remove("level")
        .and_then(|l| l.as_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    let message = event
        .remove("message")
        .and_then(|m| m.as_str().map(str::to_string))
        .unwrap_or_default();
    if !matches!(
        level.as_str(),
        "trace" | "debug" | "info" | "warning" | "error"
    ) {
        eprintln!("[policy] log event with unknown level '{level}'");
    }
    if event.is_empty() {
        eprintln!("[policy {level}] {message}");
    } else {
        eprintln!(
            "[policy {level}] {message} {}",
            serde_json::Value::Object(event)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    struct Fixed(Result<Vec<u8>, String>);
    impl Backend for Fixed {
        fn answer(&self, _: &Request, _: Option<Instant>) -> Result<Vec<u8>, String> {
            self.0.clone()
        }
    }

    fn caps(allowed: CapabilityAllowList, ctx: ContextAwareAllowList) -> Capabilities {
        Capabilities::new(allowed, ctx, Box::new(Fixed(Ok(b"ok".to_vec()))))
    }

    fn host_call(
        c: &Capabilities,
        binding: &str,
        namespace: &str,
        operation: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, String> {
        c.host_call(&HostCall {
            binding,
            namespace,
            operation,
            payload,
            deadline: None,
        })
    }

    fn call(c: &Capabilities, ns: &str, op: &str, payload: &str) -> Result<Vec<u8>, String> {
        host_call(c, "kubewarden", ns, op, payload.as_bytes())
    }

    #[test]
    fn unknown_binding_namespace_operation() {
        let c = caps(CapabilityAllowList::allow_all(), None);
        assert_eq!(
            host_call(&c, "other", "oci", "v1/verify", b"{}"),
            Err("unknown binding: other".into())
        );
        assert_eq!(
            call(&c, "cosign", "v1/x", "{}"),
            Err("unknown namespace: cosign".into())
        );
        assert_eq!(
            call(&c, "oci", "v9/verify", "{}"),
            Err("unknown operation: v9/verify".into())
        );
        assert_eq!(
            call(&c, "tracing", "nope", "{}"),
            Err("unknown operation: nope".into())
        );
    }

    #[test]
    fn payload_errors_are_serde_text() {
        let c = caps(CapabilityAllowList::allow_all(), None);
        let err = call(&c, "oci", "v1/manifest_digest", "{}").unwrap_err();
        assert!(
            err.starts_with("invalid type: map, expected a string"),
            "{err}"
        );
    }

    #[test]
    fn denied_capability_message() {
        let c = caps(CapabilityAllowList::deny_all(), None);
        assert_eq!(
            call(&c, "oci", "v1/manifest_digest", r#""busybox""#),
            Err("Policy has not been granted access to the 'oci/v1/manifest_digest' host capability. The violation has been reported.".into())
        );
        // tracing is never gated
        assert_eq!(
            call(&c, "tracing", "log", r#"{"level":"info","message":"hi"}"#),
            Ok(vec![])
        );
    }

    #[test]
    fn kubernetes_needs_the_context_aware_allow_list() {
        let get = r#"{"api_version":"v1","kind":"Namespace","name":"x","namespace":null,"disable_cache":false}"#;
        let denied = "Policy has not been granted access to Kubernetes v1/Namespace resources. The violation has been reported.";
        let c = caps(CapabilityAllowList::allow_all(), None);
        assert_eq!(
            call(&c, "kubernetes", "get_resource", get),
            Err(denied.into())
        );
        let mut set = BTreeSet::new();
        set.insert(("v1".to_string(), "ConfigMap".to_string()));
        let c = caps(CapabilityAllowList::allow_all(), Some(set.clone()));
        assert_eq!(
            call(&c, "kubernetes", "get_resource", get),
            Err(denied.into())
        );
        set.insert(("v1".to_string(), "Namespace".to_string()));
        let c = caps(CapabilityAllowList::allow_all(), Some(set));
        assert_eq!(
            call(&c, "kubernetes", "get_resource", get),
            Ok(b"ok".to_vec())
        );
    }

    #[test]
    fn backend_errors_are_wrapped() {
        let c = Capabilities::new(
            CapabilityAllowList::allow_all(),
            None,
            Box::new(Fixed(Err("boom".into()))),
        );
        assert_eq!(
            call(&c, "net", "v1/dns_lookup_host", r#""example.com""#),
            Err("Callback evaluation failure: boom".into())
        );
    }
}
