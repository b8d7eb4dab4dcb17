//! Host capabilities answered by imagegate.
//!
//! [`Capabilities`] is the `__host_call` dispatcher. It behaves like
//! policy-evaluator's `host_callback`: binding check, `tracing/log` inline,
//! payload parsed into a [`CallbackRequest`] (kwctl's `CallbackRequestType`,
//! same variant and field names so session files are interchangeable), then
//! the capability allow-list, then the context-aware resource allow-list, and
//! only then a [`Backend`] (replay, record, live, offline). Error texts are
//! Kubewarden's, because policies and users match on them.

pub mod cache;
pub mod crypto;
pub mod kubernetes;
pub mod live;
pub mod notary;
pub mod oci;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use anyhow::bail;
use imagegate_policy::wire::{
    GetResourceRequest, KeylessInfo, KeylessPrefixInfo, ListResourcesRequest, NotarySigner,
    NotaryVerifyRequest, SigstoreVerifyRequest,
};
use serde::{Deserialize, Serialize};

use crate::runtime::HostCallbacks;
use cache::CacheStats;
use crypto::CertificateTrustRequest;

/// A request a policy makes to its host: mirror of kwctl's
/// `CallbackRequestType` (+ imagegate's `NotaryVerify`). Serialized with
/// serde_yaml it gives the `!Variant` text of kwctl session files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallbackRequest {
    OciManifestDigest {
        image: String,
    },
    OciManifest {
        image: String,
    },
    OciManifestAndConfig {
        image: String,
    },
    SigstorePubKeyVerify {
        image: String,
        pub_keys: Vec<String>,
        annotations: Option<BTreeMap<String, String>>,
    },
    SigstoreKeylessVerify {
        image: String,
        keyless: Vec<KeylessInfo>,
        annotations: Option<BTreeMap<String, String>>,
    },
    SigstoreKeylessPrefixVerify {
        image: String,
        keyless_prefix: Vec<KeylessPrefixInfo>,
        annotations: Option<BTreeMap<String, String>>,
    },
    SigstoreGithubActionsVerify {
        image: String,
        owner: String,
        repo: Option<String>,
        annotations: Option<BTreeMap<String, String>>,
    },
    SigstoreCertificateVerify {
        image: String,
        certificate: Vec<u8>,
        certificate_chain: Option<Vec<Vec<u8>>>,
        require_rekor_bundle: bool,
        annotations: Option<BTreeMap<String, String>>,
    },
    #[allow(clippy::upper_case_acronyms)]
    DNSLookupHost {
        host: String,
    },
    KubernetesListResourceNamespace {
        api_version: String,
        kind: String,
        namespace: String,
        label_selector: Option<String>,
        field_selector: Option<String>,
        field_masks: Option<Vec<String>>,
    },
    KubernetesListResourceAll {
        api_version: String,
        kind: String,
        label_selector: Option<String>,
        field_selector: Option<String>,
        field_masks: Option<Vec<String>>,
    },
    KubernetesGetResource {
        api_version: String,
        kind: String,
        name: String,
        namespace: Option<String>,
        disable_cache: bool,
        field_masks: Option<Vec<String>>,
    },
    KubernetesCanI {
        request: SubjectAccessReview,
        disable_cache: bool,
    },
    CryptoIsCertificateTrusted {
        request: CertificateTrustRequest,
    },
    /// imagegate's extension (`notary/v1/verify`); no Kubewarden host knows it.
    NotaryVerify {
        image: String,
        server: String,
        signers: Vec<NotarySigner>,
        ca_cert: Option<String>,
        root_keys: Option<Vec<String>>,
    },
}

impl CallbackRequest {
    /// The Kubernetes resource type a `kubernetes/*` read targets.
    fn kubernetes_resource(&self) -> Option<(&str, &str)> {
        match self {
            CallbackRequest::KubernetesListResourceNamespace {
                api_version, kind, ..
            }
            | CallbackRequest::KubernetesListResourceAll {
                api_version, kind, ..
            }
            | CallbackRequest::KubernetesGetResource {
                api_version, kind, ..
            } => Some((api_version, kind)),
            _ => None,
        }
    }
}

impl From<SigstoreVerifyRequest> for CallbackRequest {
    fn from(req: SigstoreVerifyRequest) -> Self {
        match req {
            SigstoreVerifyRequest::SigstorePubKeyVerify {
                image,
                pub_keys,
                annotations,
            } => CallbackRequest::SigstorePubKeyVerify {
                image,
                pub_keys,
                annotations,
            },
            SigstoreVerifyRequest::SigstoreKeylessVerify {
                image,
                keyless,
                annotations,
            } => CallbackRequest::SigstoreKeylessVerify {
                image,
                keyless,
                annotations,
            },
            SigstoreVerifyRequest::SigstoreKeylessPrefixVerify {
                image,
                keyless_prefix,
                annotations,
            } => CallbackRequest::SigstoreKeylessPrefixVerify {
                image,
                keyless_prefix,
                annotations,
            },
            SigstoreVerifyRequest::SigstoreGithubActionsVerify {
                image,
                owner,
                repo,
                annotations,
            } => CallbackRequest::SigstoreGithubActionsVerify {
                image,
                owner,
                repo,
                annotations,
            },
            SigstoreVerifyRequest::SigstoreCertificateVerify {
                image,
                certificate,
                certificate_chain,
                require_rekor_bundle,
                annotations,
            } => CallbackRequest::SigstoreCertificateVerify {
                image,
                certificate,
                certificate_chain,
                require_rekor_bundle,
                annotations,
            },
        }
    }
}

/// The legacy `oci/v1/verify` payload: externally tagged, two variants.
#[derive(Deserialize)]
enum SigstoreVerifyV1 {
    SigstorePubKeyVerify {
        image: String,
        pub_keys: Vec<String>,
        annotations: Option<BTreeMap<String, String>>,
    },
    SigstoreKeylessVerify {
        image: String,
        keyless: Vec<KeylessInfo>,
        annotations: Option<BTreeMap<String, String>>,
    },
}

impl From<SigstoreVerifyV1> for CallbackRequest {
    fn from(req: SigstoreVerifyV1) -> Self {
        match req {
            SigstoreVerifyV1::SigstorePubKeyVerify {
                image,
                pub_keys,
                annotations,
            } => CallbackRequest::SigstorePubKeyVerify {
                image,
                pub_keys,
                annotations,
            },
            SigstoreVerifyV1::SigstoreKeylessVerify {
                image,
                keyless,
                annotations,
            } => CallbackRequest::SigstoreKeylessVerify {
                image,
                keyless,
                annotations,
            },
        }
    }
}

/// The subject access review inside a `kubernetes/can_i` payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectAccessReview {
    pub groups: Option<Vec<String>>,
    pub resource_attributes: ResourceAttributes,
    pub user: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceAttributes {
    pub group: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub resource: String,
    pub subresource: Option<String>,
    pub verb: String,
    pub version: Option<String>,
}

/// The `kubernetes/can_i` payload.
#[derive(Deserialize)]
struct CanIPayload {
    subject_access_review: SubjectAccessReview,
    disable_cache: bool,
}

/// Every capability path a policy may use (`<namespace>/<operation>`).
pub const KNOWN_CAPABILITIES: &[&str] = &[
    "oci/v1/verify",
    "oci/v2/verify",
    "oci/v1/manifest_digest",
    "oci/v1/oci_manifest",
    "oci/v1/oci_manifest_config",
    "net/v1/dns_lookup_host",
    "crypto/v1/is_certificate_trusted",
    "kubernetes/list_resources_by_namespace",
    "kubernetes/list_resources_all",
    "kubernetes/get_resource",
    "kubernetes/can_i",
    "notary/v1/verify",
];

fn json<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
    serde_json::from_slice(payload).map_err(|e| e.to_string())
}

/// Parses a guest call into a request, with policy-evaluator's errors.
pub fn parse_request(
    namespace: &str,
    operation: &str,
    payload: &[u8],
) -> Result<CallbackRequest, String> {
    Ok(match (namespace, operation) {
        ("oci", "v1/verify") => json::<SigstoreVerifyV1>(payload)?.into(),
        ("oci", "v2/verify") => json::<SigstoreVerifyRequest>(payload)?.into(),
        ("oci", "v1/manifest_digest") => CallbackRequest::OciManifestDigest {
            image: json(payload)?,
        },
        ("oci", "v1/oci_manifest") => CallbackRequest::OciManifest {
            image: json(payload)?,
        },
        ("oci", "v1/oci_manifest_config") => CallbackRequest::OciManifestAndConfig {
            image: json(payload)?,
        },
        ("net", "v1/dns_lookup_host") => CallbackRequest::DNSLookupHost {
            host: json(payload)?,
        },
        ("crypto", "v1/is_certificate_trusted") => CallbackRequest::CryptoIsCertificateTrusted {
            request: json(payload)?,
        },
        ("kubernetes", "list_resources_by_namespace") => {
            let r: ListResourcesRequest = json(payload)?;
            let namespace = r.namespace.ok_or("missing field `namespace`")?;
            CallbackRequest::KubernetesListResourceNamespace {
                api_version: r.api_version,
                kind: r.kind,
                namespace,
                label_selector: r.label_selector,
                field_selector: r.field_selector,
                field_masks: r.field_masks,
            }
        }
        ("kubernetes", "list_resources_all") => {
            let r: ListResourcesRequest = json(payload)?;
            CallbackRequest::KubernetesListResourceAll {
                api_version: r.api_version,
                kind: r.kind,
                label_selector: r.label_selector,
                field_selector: r.field_selector,
                field_masks: r.field_masks,
            }
        }
        ("kubernetes", "get_resource") => {
            let r: GetResourceRequest = json(payload)?;
            CallbackRequest::KubernetesGetResource {
                api_version: r.api_version,
                kind: r.kind,
                name: r.name,
                namespace: r.namespace,
                disable_cache: r.disable_cache,
                field_masks: r.field_masks,
            }
        }
        ("kubernetes", "can_i") => {
            let r: CanIPayload = json(payload)?;
            CallbackRequest::KubernetesCanI {
                request: r.subject_access_review,
                disable_cache: r.disable_cache,
            }
        }
        ("notary", "v1/verify") => {
            let r: NotaryVerifyRequest = json(payload)?;
            CallbackRequest::NotaryVerify {
                image: r.image,
                server: r.server,
                signers: r.signers,
                ca_cert: r.ca_cert,
                root_keys: r.root_keys,
            }
        }
        ("oci" | "net" | "crypto" | "kubernetes" | "notary", _) => {
            return Err(format!("unknown operation: {operation}"))
        }
        _ => return Err(format!("unknown namespace: {namespace}")),
    })
}

/// `--allowed-host-capabilities`: `*`, `<prefix>/*` or exact paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilityAllowList {
    patterns: Vec<String>,
}

impl CapabilityAllowList {
    /// Everything allowed (the default of kwctl and of ClusterAdmissionPolicy).
    pub fn allow_all() -> Self {
        CapabilityAllowList {
            patterns: vec!["*".into()],
        }
    }

    /// Nothing allowed (the flag given without values).
    pub fn deny_all() -> Self {
        CapabilityAllowList { patterns: vec![] }
    }

    /// Validates each pattern against the known capability tree.
    pub fn new(patterns: &[String]) -> anyhow::Result<Self> {
        for p in patterns {
            let valid = if p == "*" {
                true
            } else if let Some(prefix) = p.strip_suffix("/*") {
                KNOWN_CAPABILITIES
                    .iter()
                    .any(|k| k.starts_with(&format!("{prefix}/")))
            } else {
                KNOWN_CAPABILITIES.contains(&p.as_str())
            };
            if !valid {
                bail!(
                    "invalid host capability pattern '{p}': expected '*', '<prefix>/*' or one of {}",
                    KNOWN_CAPABILITIES.join(", ")
                );
            }
        }
        Ok(CapabilityAllowList {
            patterns: patterns.to_vec(),
        })
    }

    pub fn allows(&self, path: &str) -> bool {
        self.patterns.iter().any(|p| {
            p == "*"
                || p == path
                || p.strip_suffix('*')
                    .is_some_and(|prefix| prefix.ends_with('/') && path.starts_with(prefix))
        })
    }
}

/// Kubernetes resource types a policy may read (`contextAwareResources`).
/// `None` = context-aware access not granted at all.
pub type ContextAwareAllowList = Option<BTreeSet<(String, String)>>;

/// Where answers come from. Shared by concurrent evaluations (`serve`), so
/// backends keep their own fine-grained locks instead of one around them.
pub trait Backend: Send + Sync {
    /// Answers one request; `deadline` is the end of the evaluation.
    fn answer(
        &self,
        request: &CallbackRequest,
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, String>;

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

/// Locks a mutex, ignoring poisoning (a panicked holder leaves plain data).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// No capabilities at all: every call fails (fixtures without a session).
pub struct Offline;

impl Backend for Offline {
    fn answer(&self, request: &CallbackRequest, _: Option<Instant>) -> Result<Vec<u8>, String> {
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

    fn dispatch(
        &self,
        binding: &str,
        namespace: &str,
        operation: &str,
        payload: &[u8],
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, String> {
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
        let request = parse_request(namespace, operation, payload)?;
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

impl HostCallbacks for Capabilities {
    fn host_call(
        &self,
        binding: &str,
        namespace: &str,
        operation: &str,
        payload: &[u8],
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, String> {
        self.dispatch(binding, namespace, operation, payload, deadline)
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

    struct Fixed(Result<Vec<u8>, String>);
    impl Backend for Fixed {
        fn answer(&self, _: &CallbackRequest, _: Option<Instant>) -> Result<Vec<u8>, String> {
            self.0.clone()
        }
    }

    fn caps(allowed: CapabilityAllowList, ctx: ContextAwareAllowList) -> Capabilities {
        Capabilities::new(allowed, ctx, Box::new(Fixed(Ok(b"ok".to_vec()))))
    }

    fn call(c: &Capabilities, ns: &str, op: &str, payload: &str) -> Result<Vec<u8>, String> {
        c.host_call("kubewarden", ns, op, payload.as_bytes(), None)
    }

    #[test]
    fn unknown_binding_namespace_operation() {
        let c = caps(CapabilityAllowList::allow_all(), None);
        assert_eq!(
            c.host_call("other", "oci", "v1/verify", b"{}", None),
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
    fn v1_and_v2_verify_map_to_the_same_request() {
        let v1 = parse_request(
            "oci",
            "v1/verify",
            br#"{"SigstorePubKeyVerify":{"image":"a","pub_keys":["k"],"annotations":null}}"#,
        )
        .unwrap();
        let v2 = parse_request(
            "oci",
            "v2/verify",
            br#"{"type":"SigstorePubKeyVerify","image":"a","pub_keys":["k"],"annotations":null}"#,
        )
        .unwrap();
        assert_eq!(v1, v2);
    }

    #[test]
    fn gating_patterns() {
        let l = CapabilityAllowList::new(&["oci/v2/*".into(), "net/v1/dns_lookup_host".into()])
            .unwrap();
        assert!(l.allows("oci/v2/verify"));
        assert!(!l.allows("oci/v1/verify"));
        assert!(l.allows("net/v1/dns_lookup_host"));
        assert!(!l.allows("notary/v1/verify"));
        assert!(CapabilityAllowList::new(&["oci/*".into()])
            .unwrap()
            .allows("oci/v1/manifest_digest"));
        assert!(!CapabilityAllowList::deny_all().allows("oci/v2/verify"));
        assert!(CapabilityAllowList::new(&["oc*".into()]).is_err());
        assert!(CapabilityAllowList::new(&["cosign/*".into()]).is_err());
        assert!(CapabilityAllowList::new(&["oci/v1/nope".into()]).is_err());
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

    #[test]
    fn notary_extension_parses() {
        let r = parse_request(
            "notary",
            "v1/verify",
            br#"{"image":"i","server":"https://n","signers":[{"role":"targets/a","public_key":null}],"ca_cert":null}"#,
        )
        .unwrap();
        assert!(matches!(
            r,
            CallbackRequest::NotaryVerify {
                root_keys: None,
                ..
            }
        ));
    }
}
