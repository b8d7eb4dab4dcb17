//! The CREATE the API server sends for a Kubernetes object: what `imagegate
//! run` and `check` evaluate for a manifest, and what the playground
//! evaluates for the object typed into it. Not used by the module itself.
//!
//! ```
//! use imagegate_policy::create::{create_request, Requester};
//! use serde_json::json;
//!
//! let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}});
//! let request = create_request(pod, &Requester::default()).unwrap();
//! assert_eq!(request.operation, "CREATE");
//! assert_eq!(request.resource.resource, "pods");
//! assert_eq!(request.namespace.as_deref(), Some("default"));
//! ```

use serde_json::Value;

use crate::wire::{AdmissionRequest, GroupVersionKind, GroupVersionResource, RawJson, UserInfo};

/// Who sends the CREATE requests made from bare objects, and the namespace
/// of objects that name none (`imagegate run` and `check`: `--namespace`,
/// `--user`, `--group`).
#[derive(Debug, Clone)]
pub struct Requester {
    /// The namespace of namespaced objects that name none.
    pub namespace: String,
    /// Who sends the request.
    pub user: UserInfo,
}

impl Default for Requester {
    /// `default` namespace; an anonymous user with the group every
    /// authenticated requester has.
    fn default() -> Self {
        Requester {
            namespace: "default".to_string(),
            user: UserInfo {
                groups: vec!["system:authenticated".to_string()],
                ..Default::default()
            },
        }
    }
}

/// The built-in kinds without a namespace (`kubectl api-resources
/// --namespaced=false`), by API group. Any other kind (a custom resource
/// among them) is taken as namespaced: without the cluster's discovery
/// there is no telling.
const CLUSTER_SCOPED: &[(&str, &[&str])] = &[
    (
        "",
        &["ComponentStatus", "Namespace", "Node", "PersistentVolume"],
    ),
    (
        "admissionregistration.k8s.io",
        &[
            "MutatingAdmissionPolicy",
            "MutatingAdmissionPolicyBinding",
            "MutatingWebhookConfiguration",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
            "ValidatingWebhookConfiguration",
        ],
    ),
    ("apiextensions.k8s.io", &["CustomResourceDefinition"]),
    ("apiregistration.k8s.io", &["APIService"]),
    (
        "authentication.k8s.io",
        &["SelfSubjectReview", "TokenReview"],
    ),
    (
        "authorization.k8s.io",
        &[
            "SelfSubjectAccessReview",
            "SelfSubjectRulesReview",
            "SubjectAccessReview",
        ],
    ),
    (
        "certificates.k8s.io",
        &["CertificateSigningRequest", "ClusterTrustBundle"],
    ),
    (
        "flowcontrol.apiserver.k8s.io",
        &["FlowSchema", "PriorityLevelConfiguration"],
    ),
    (
        "networking.k8s.io",
        &["IngressClass", "IPAddress", "ServiceCIDR"],
    ),
    ("node.k8s.io", &["RuntimeClass"]),
    (
        "rbac.authorization.k8s.io",
        &["ClusterRole", "ClusterRoleBinding"],
    ),
    ("resource.k8s.io", &["DeviceClass", "ResourceSlice"]),
    ("scheduling.k8s.io", &["PriorityClass"]),
    (
        "storage.k8s.io",
        &[
            "CSIDriver",
            "CSINode",
            "StorageClass",
            "VolumeAttachment",
            "VolumeAttributesClass",
        ],
    ),
    ("storagemigration.k8s.io", &["StorageVersionMigration"]),
];

/// The namespace `object` lives in: `None` for the kinds that have none
/// (a Namespace itself, a ClusterRole...), else `metadata.namespace` or the
/// requester's default, as `kubectl apply` fills it in.
pub fn object_namespace(object: &Value, requester: &Requester) -> Option<String> {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
    let group = text("/apiVersion")
        .and_then(|v| v.split_once('/'))
        .map_or("", |(group, _)| group);
    let kind = text("/kind").unwrap_or_default();
    let cluster_scoped = CLUSTER_SCOPED
        .iter()
        .any(|(g, kinds)| *g == group && kinds.contains(&kind));
    if cluster_scoped {
        return None;
    }
    Some(
        text("/metadata/namespace")
            .unwrap_or(&requester.namespace)
            .to_string(),
    )
}

/// The CREATE the API server sends for `object` (a Kubernetes object with
/// `apiVersion` and `kind`): group, version and kind from the object, the
/// resource guessed from the kind as kubectl does, the namespace of
/// [`object_namespace`] (for a Namespace, its own name: kube-apiserver's
/// create handler sets it so), `CreateOptions`.
pub fn create_request(object: Value, requester: &Requester) -> Result<AdmissionRequest, String> {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
    let kind = text("/kind").ok_or("the object has no `kind`")?.to_string();
    let api_version = text("/apiVersion").ok_or("the object has no `apiVersion`")?;
    let (group, version) = match api_version.split_once('/') {
        Some((group, version)) => (group.to_string(), version.to_string()),
        None => (String::new(), api_version.to_string()),
    };
    let namespace = match (group.as_str(), kind.as_str()) {
        ("", "Namespace") => text("/metadata/name").map(str::to_string),
        _ => object_namespace(&object, requester),
    };
    let gvk = GroupVersionKind {
        group: group.clone(),
        version: version.clone(),
        kind: kind.clone(),
    };
    let resource = GroupVersionResource {
        group,
        version,
        resource: resource_of(&kind),
    };
    Ok(AdmissionRequest {
        uid: "imagegate-create".to_string(),
        name: text("/metadata/name").map(str::to_string),
        namespace,
        request_kind: Some(gvk.clone()),
        request_resource: Some(
            RawJson::to_raw(&resource).map_err(|e| format!("cannot encode the resource: {e}"))?,
        ),
        kind: gvk,
        resource,
        operation: "CREATE".to_string(),
        user_info: requester.user.clone(),
        dry_run: Some(false),
        options: Some(
            RawJson::to_raw(
                &serde_json::json!({"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}),
            )
            .map_err(|e| format!("cannot encode the options: {e}"))?,
        ),
        object: Some(
            RawJson::to_raw(&object).map_err(|e| format!("cannot encode the object: {e}"))?,
        ),
        ..Default::default()
    })
}

/// The resource name of a kind, as kubectl guesses it
/// (`meta.UnsafeGuessKindToResource`): lower case, plural.
fn resource_of(kind: &str) -> String {
    let kind = kind.to_ascii_lowercase();
    if kind.ends_with('s') || kind.ends_with("ch") || kind.ends_with('x') || kind.ends_with("sh") {
        format!("{kind}es")
    } else if let Some(stem) = kind
        .strip_suffix('y')
        .filter(|s| !s.ends_with(['a', 'e', 'i', 'o', 'u']))
    {
        format!("{stem}ies")
    } else {
        format!("{kind}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A Namespace's CREATE carries its own name as namespace (as
    /// kube-apiserver's create handler sets it), other cluster-scoped
    /// objects none, namespaced ones theirs or the requester's.
    #[test]
    fn create_requests_have_the_namespace_the_api_server_gives() {
        let requester = Requester::default();
        let namespace_of = |object: Value| {
            let request = create_request(object.clone(), &requester).unwrap();
            (request.namespace, object_namespace(&object, &requester))
        };
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            namespace_of(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "payments"}})
            ),
            (some("payments"), None)
        );
        assert_eq!(
            namespace_of(
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                                "metadata": {"name": "reader", "namespace": "ignored"}})
            ),
            (None, None)
        );
        assert_eq!(
            namespace_of(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}})
            ),
            (some("default"), some("default"))
        );
        // The group counts: a custom kind named Node is namespaced.
        assert_eq!(
            namespace_of(json!({"apiVersion": "example.com/v1", "kind": "Node",
                                "metadata": {"name": "n", "namespace": "lab"}})),
            (some("lab"), some("lab"))
        );
    }
}
