//! Kubernetes' ImagePolicyWebhook backend protocol
//! (`imagepolicy.k8s.io/v1alpha1` ImageReview).
//!
//! The API server sends only the images, the namespace and the pod
//! annotations matching `*.image-policy.k8s.io/*`. imagegate answers by
//! evaluating a synthetic Pod AdmissionRequest with exactly that content, so
//! both endpoints share one engine and one response builder; this module only
//! translates in and out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use imagegate_policy::wire::{AdmissionRequest, GroupVersionKind, GroupVersionResource, RawJson};

use crate::runtime::admission::AdmissionResponse;

pub const API_VERSION: &str = "imagepolicy.k8s.io/v1alpha1";

/// Suffix of the break-glass annotation key Kubernetes documents
/// (`<anything>.image-policy.k8s.io/break-glass: "true"`).
pub const BREAK_GLASS_SUFFIX: &str = "image-policy.k8s.io/break-glass";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageReview {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    pub spec: ImageReviewSpec,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageReviewSpec {
    #[serde(default)]
    pub containers: Vec<ImageReviewContainer>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub namespace: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageReviewContainer {
    #[serde(default)]
    pub image: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageReviewStatus {
    pub allowed: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub audit_annotations: BTreeMap<String, String>,
}

impl ImageReview {
    /// Reads an ImageReview; anything else is refused with the reason.
    pub fn parse(body: &[u8]) -> Result<ImageReview, String> {
        let review: ImageReview =
            serde_json::from_slice(body).map_err(|e| format!("not an ImageReview: {e}"))?;
        if review.kind.as_deref().is_some_and(|k| k != "ImageReview") {
            return Err(format!(
                "expected kind ImageReview, got {:?}",
                review.kind.as_deref().unwrap_or_default()
            ));
        }
        Ok(review)
    }

    /// Whether the API server passed a break-glass annotation set to "true".
    pub fn break_glass_requested(&self) -> bool {
        self.spec.annotations.iter().any(|(k, v)| {
            v == "true"
                && (k == BREAK_GLASS_SUFFIX
                    || k.strip_suffix(BREAK_GLASS_SUFFIX)
                        .is_some_and(|prefix| prefix.ends_with('.')))
        })
    }

    /// The Pod CREATE the engine evaluates. Containers are named
    /// `containers[i]` (ImageReview carries no names). A requested
    /// break-glass is written under `break_glass_annotation`, the key the
    /// settings' `breakGlass` expects; with `None` (no `breakGlass` in the
    /// settings) it is not honored, as for any other workload.
    pub fn to_admission_request(
        &self,
        uid: String,
        break_glass_annotation: Option<&str>,
    ) -> AdmissionRequest {
        let mut annotations: Map<String, Value> = self
            .spec
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        if let Some(key) = break_glass_annotation.filter(|_| self.break_glass_requested()) {
            annotations.insert(key.to_string(), Value::String("true".into()));
        }
        let containers: Vec<Value> = self
            .spec
            .containers
            .iter()
            .enumerate()
            .map(|(i, c)| json!({"name": format!("containers[{i}]"), "image": c.image}))
            .collect();
        let namespace = (!self.spec.namespace.is_empty()).then(|| self.spec.namespace.clone());
        let mut metadata = Map::new();
        if let Some(ns) = &namespace {
            metadata.insert("namespace".into(), Value::String(ns.clone()));
        }
        if !annotations.is_empty() {
            metadata.insert("annotations".into(), Value::Object(annotations));
        }
        AdmissionRequest {
            uid,
            kind: GroupVersionKind {
                group: String::new(),
                version: "v1".into(),
                kind: "Pod".into(),
            },
            resource: GroupVersionResource {
                group: String::new(),
                version: "v1".into(),
                resource: "pods".into(),
            },
            namespace,
            operation: "CREATE".into(),
            // Writing a Value cannot fail (and a request without object is denied).
            object: RawJson::to_raw(&json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": metadata,
                "spec": {"containers": containers},
            }))
            .ok(),
            ..AdmissionRequest::default()
        }
    }
}

/// The ImageReview status for the engine's AdmissionResponse: denials give
/// their message as `reason`, admissions their warnings (break-glass,
/// `warn` rules). A pin cannot be applied through this protocol: pinning a
/// tag is reported as an audit annotation (the tag was verified), but
/// replacing a digest (`onDigestMismatch: rewrite`) is a denial, since the
/// pod would run the digest that was not signed.
pub fn status(
    review: &ImageReview,
    response: &AdmissionResponse,
    break_glass_ignored: bool,
) -> ImageReviewStatus {
    let rewritten = rewritten_digests(review, response);
    if response.allowed && !rewritten.is_empty() {
        return ImageReviewStatus {
            allowed: false,
            reason: format!(
                "imagegate: {}: the image's digest is not the signed one, and ImageReview cannot \
                 rewrite it to the signed digest (onDigestMismatch: rewrite needs an admission \
                 webhook: `imagegate serve` at /mutate)",
                rewritten.join(", ")
            ),
            audit_annotations: BTreeMap::new(),
        };
    }
    let mut reason = if response.allowed {
        response.warnings.clone().unwrap_or_default().join("; ")
    } else {
        response
            .status
            .as_ref()
            .and_then(|s| s.message.clone())
            .unwrap_or_else(|| "denied by imagegate".into())
    };
    if break_glass_ignored && !response.allowed {
        reason
            .push_str(" (break-glass annotation ignored: the settings have no breakGlass section)");
    }
    let mut audit_annotations = response.audit_annotations.clone().unwrap_or_default();
    if response.allowed && response.patch.is_some() {
        audit_annotations.insert(
            "imagegate-pin-digest-not-applied".into(),
            "the policy pins image digests; ImageReview cannot mutate the pod".into(),
        );
    }
    ImageReviewStatus {
        allowed: response.allowed,
        reason,
        audit_annotations,
    }
}

/// `image -> pinned` for every pin that replaces a digest the image already
/// has; pins of tag-only images are left out.
fn rewritten_digests(review: &ImageReview, response: &AdmissionResponse) -> Vec<String> {
    let Ok(Some(Value::Array(ops))) = response.decoded_patch() else {
        return Vec::new();
    };
    ops.iter()
        .filter_map(|op| {
            let index: usize = op["path"]
                .as_str()?
                .strip_prefix("/spec/containers/")?
                .strip_suffix("/image")?
                .parse()
                .ok()?;
            let image = &review.spec.containers.get(index)?.image;
            let has_digest = imagegate_policy::reference::Reference::parse(image)
                .is_ok_and(|r| r.digest().is_some());
            has_digest.then(|| format!("{image} -> {}", op["value"].as_str().unwrap_or("?")))
        })
        .collect()
}

/// The whole answer document.
pub fn answer(status: &ImageReviewStatus) -> Value {
    json!({"apiVersion": API_VERSION, "kind": "ImageReview", "status": status})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::admission::AdmissionResponseStatus;

    fn object(req: &AdmissionRequest) -> Value {
        serde_json::from_str(req.object.as_ref().unwrap().get()).unwrap()
    }

    fn review(annotations: &[(&str, &str)]) -> ImageReview {
        let body = json!({
            "apiVersion": API_VERSION,
            "kind": "ImageReview",
            "spec": {
                "containers": [{"image": "nginx:1.27"}, {"image": "ghcr.io/x/y@sha256:abc"}],
                "annotations": annotations.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<Map<_, _>>(),
                "namespace": "team-a"
            }
        });
        ImageReview::parse(body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn synthetic_pod_carries_images_namespace_and_annotations() {
        let r = review(&[("mycluster.image-policy.k8s.io/ticket", "1234")]);
        let req = r.to_admission_request("u1".into(), Some("image-policy.k8s.io/break-glass"));
        assert_eq!(req.uid, "u1");
        assert_eq!(req.namespace.as_deref(), Some("team-a"));
        assert_eq!(req.operation, "CREATE");
        assert_eq!(req.kind.kind, "Pod");
        let object = object(&req);
        assert_eq!(
            object["spec"]["containers"],
            json!([{"name": "containers[0]", "image": "nginx:1.27"},
                   {"name": "containers[1]", "image": "ghcr.io/x/y@sha256:abc"}])
        );
        assert_eq!(object["metadata"]["namespace"], "team-a");
        assert_eq!(
            object["metadata"]["annotations"],
            json!({"mycluster.image-policy.k8s.io/ticket": "1234"})
        );
    }

    #[test]
    fn break_glass_key_suffix_and_value() {
        assert!(
            review(&[("alpha.image-policy.k8s.io/break-glass", "true")]).break_glass_requested()
        );
        assert!(review(&[("image-policy.k8s.io/break-glass", "true")]).break_glass_requested());
        assert!(
            !review(&[("alpha.image-policy.k8s.io/break-glass", "True")]).break_glass_requested()
        );
        assert!(!review(&[("evilimage-policy.k8s.io/break-glass", "true")]).break_glass_requested());
        assert!(
            !review(&[("alpha.image-policy.k8s.io/break-glass-x", "true")]).break_glass_requested()
        );
        let r = review(&[("alpha.image-policy.k8s.io/break-glass", "true")]);
        let req = r.to_admission_request("u".into(), Some("corp.example/override"));
        assert_eq!(
            object(&req)["metadata"]["annotations"]["corp.example/override"],
            "true"
        );
        let req = r.to_admission_request("u".into(), None);
        assert!(object(&req)["metadata"]["annotations"]
            .get("corp.example/override")
            .is_none());
    }

    #[test]
    fn other_kinds_are_refused() {
        let err = ImageReview::parse(br#"{"kind":"AdmissionReview","spec":{}}"#).unwrap_err();
        assert!(err.contains("expected kind ImageReview"), "{err}");
        assert!(ImageReview::parse(b"[]").is_err());
    }

    #[test]
    fn a_rewritten_digest_is_denied_a_pinned_tag_is_not() {
        use base64::Engine as _;
        let pinned = |ops: Value| AdmissionResponse {
            uid: "u".into(),
            allowed: true,
            patch_type: Some("JSONPatch".into()),
            patch: Some(base64::engine::general_purpose::STANDARD.encode(ops.to_string())),
            ..Default::default()
        };
        let digest = format!("sha256:{}", "1".repeat(64));
        let tag_pin = pinned(json!([{"op": "replace", "path": "/spec/containers/0/image",
            "value": format!("nginx:1.27@{digest}")}]));
        let s = status(&review(&[]), &tag_pin, false);
        assert!(s.allowed);
        assert!(s
            .audit_annotations
            .contains_key("imagegate-pin-digest-not-applied"));
        let signed = format!("sha256:{}", "2".repeat(64));
        let mut r = review(&[]);
        r.spec.containers[1].image = format!("ghcr.io/x/y@{digest}");
        let rewrite = pinned(json!([{"op": "replace", "path": "/spec/containers/1/image",
            "value": format!("ghcr.io/x/y@{signed}")}]));
        let s = status(&r, &rewrite, false);
        assert!(!s.allowed);
        assert_eq!(
            s.reason,
            format!("imagegate: ghcr.io/x/y@{digest} -> ghcr.io/x/y@{signed}: the image's digest is not the signed one, and ImageReview cannot rewrite it to the signed digest (onDigestMismatch: rewrite needs an admission webhook: `imagegate serve` at /mutate)")
        );
    }

    #[test]
    fn status_mapping() {
        let denied = AdmissionResponse::reject("u", "image x denied".into(), 403);
        assert_eq!(
            status(&review(&[]), &denied, true),
            ImageReviewStatus {
                allowed: false,
                reason: "image x denied (break-glass annotation ignored: the settings have no breakGlass section)".into(),
                audit_annotations: BTreeMap::new(),
            }
        );
        let allowed = AdmissionResponse {
            uid: "u".into(),
            allowed: true,
            patch_type: Some("JSONPatch".into()),
            patch: Some("W10=".into()),
            status: Some(AdmissionResponseStatus::default()),
            audit_annotations: Some(BTreeMap::from([("break-glass".into(), "used".into())])),
            warnings: Some(vec!["w1".into(), "w2".into()]),
        };
        let s = status(&review(&[]), &allowed, false);
        assert!(s.allowed);
        assert_eq!(s.reason, "w1; w2");
        assert_eq!(s.audit_annotations["break-glass"], "used");
        assert!(s
            .audit_annotations
            .contains_key("imagegate-pin-digest-not-applied"));
        assert_eq!(
            serde_json::to_value(answer(&s)).unwrap()["status"]["auditAnnotations"]["break-glass"],
            "used"
        );
    }
}
