//! The imagegate engine in the browser.
//!
//! [`evaluate`] takes the settings and a workload as YAML (what a user
//! pastes), runs the very engine of the policy module (`decide::explain`)
//! and returns JSON for the page: settings errors with their field path, or
//! the engine's verdict per image (the same verdicts the response is written
//! from: rule, reason, checks run, pin). No host is reachable from a browser, so the
//! engine gets a [`RecordingHost`] that answers every capability call with
//! an error and keeps the call: the page lists them as the calls the real
//! host would make (registry, Notary), and the checks depending on them
//! show as failed, exactly as they would fail closed without a host.
//!
//! YAML parsing lives here, not in the policy module, which stays small.

use std::cell::RefCell;

use imagegate_policy::decide;
use imagegate_policy::host::Host;
use imagegate_policy::settings::Policy;
use imagegate_policy::wire::AdmissionRequest;
use serde::Serialize;
use serde_json::{json, Map, Value};
use wasm_bindgen::prelude::wasm_bindgen;

/// The error every capability call gets in the playground.
pub const NOT_EVALUATED: &str = "not evaluated in the playground";

/// One capability call the engine made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostCall {
    /// `<namespace>/<operation>`, e.g. `oci/v2/verify`.
    pub capability: String,
    /// The JSON payload (or its text when it is not JSON).
    pub payload: Value,
}

/// A [`Host`] that answers nothing and remembers what it was asked.
#[derive(Default)]
pub struct RecordingHost {
    calls: RefCell<Vec<HostCall>>,
}

impl RecordingHost {
    pub fn into_calls(self) -> Vec<HostCall> {
        self.calls.into_inner()
    }
}

impl Host for RecordingHost {
    fn call(&self, namespace: &str, operation: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
        let capability = format!("{namespace}/{operation}");
        let payload = serde_json::from_slice(payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()));
        self.calls.borrow_mut().push(HostCall {
            capability: capability.clone(),
            payload,
        });
        Err(format!(
            "{NOT_EVALUATED}: {capability} needs the imagegate host (registry or Notary access)"
        ))
    }
}

/// Entry point for the page: always returns a JSON document (never throws).
#[wasm_bindgen]
pub fn evaluate(settings_yaml: &str, workload_yaml: &str) -> String {
    report(settings_yaml, workload_yaml).to_string()
}

/// [`evaluate`] as a value: `{"settingsError": ...}`, `{"workloadError": ...}`
/// or `{"allowed", "message", "warnings", "auditAnnotations", "images",
/// "hostCalls"}`.
pub fn report(settings_yaml: &str, workload_yaml: &str) -> Value {
    let policy = match settings(settings_yaml) {
        Ok(p) => p,
        Err(e) => return json!({ "settingsError": e }),
    };
    let request = match workload(workload_yaml) {
        Ok(r) => r,
        Err(e) => return json!({ "workloadError": e }),
    };
    let host = RecordingHost::default();
    let (response, images) = decide::explain(&request, &policy, &host);
    json!({
        "allowed": response.accepted,
        "message": response.message,
        "warnings": response.warnings.unwrap_or_default(),
        "auditAnnotations": response.audit_annotations.unwrap_or_default(),
        "mutated": response.mutated_object.is_some(),
        "images": images,
        "hostCalls": host.into_calls(),
    })
}

/// Settings YAML (empty = `{}`) -> the compiled policy, or the engine's
/// message naming the bad field.
fn settings(text: &str) -> Result<Policy, String> {
    let value: Value = if text.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| format!("settings are not YAML: {e}"))?
    };
    let value = match value {
        Value::Null => Value::Object(Map::new()),
        v @ Value::Object(_) => v,
        other => return Err(format!("settings must be a map, got {other}")),
    };
    Policy::from_json(&value.to_string())
}

/// Workload YAML -> the AdmissionRequest the engine decides. Accepts an
/// AdmissionReview, a bare AdmissionRequest, or a Kubernetes object (Pod,
/// Deployment, CronJob, ...), which becomes a CREATE by a playground user.
fn workload(text: &str) -> Result<AdmissionRequest, String> {
    let value: Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("workload is not YAML: {e}"))?;
    if !value.is_object() {
        return Err("the workload must be a Kubernetes object (a map)".into());
    }
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let request = if kind == "AdmissionReview" {
        value
            .get("request")
            .cloned()
            .ok_or("AdmissionReview has no `request`")?
    } else if value.get("operation").is_some() && value.get("object").is_some() {
        value
    } else {
        object_request(value)?
    };
    serde_json::from_value(request).map_err(|e| format!("invalid AdmissionRequest: {e}"))
}

/// A CREATE of `object` in its own namespace (`default` when it has none).
fn object_request(object: Value) -> Result<Value, String> {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .ok_or("the workload has no `kind`")?
        .to_string();
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or("the workload has no `apiVersion`")?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let metadata = object.get("metadata");
    let field = |name: &str| {
        metadata
            .and_then(|m| m.get(name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let namespace = field("namespace").unwrap_or_else(|| "default".to_string());
    Ok(json!({
        "uid": "playground",
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": format!("{}s", kind.to_ascii_lowercase())},
        "name": field("name"),
        "namespace": namespace,
        "operation": "CREATE",
        "userInfo": {"username": "playground-user", "groups": ["system:authenticated"]},
        "object": object,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: &str = r#"
keys:
  release:
    cosign: |
      -----BEGIN PUBLIC KEY-----
      MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEfO3FxSBVkevcBa7cZ1yspaIy+Hx/
      DAwa3/xM0ixlQjq0FRI10TvZUvGa4HqSUjkSt8EHeR560w7vLf7DRhwSiA==
      -----END PUBLIC KEY-----
rules:
  - name: corp
    images: ["registry.corp.example/**"]
    tags: {deny: ["latest"]}
  - name: signed
    images: ["ghcr.io/signed/**"]
    verify: {anyOf: [{cosign: {keys: [release]}}]}
"#;

    const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    spec:
      containers:
        - {name: app, image: "registry.corp.example/shop/web:2.1"}
        - {name: sidecar, image: "registry.corp.example/shop/proxy:latest"}
        - {name: signed, image: "ghcr.io/signed/tool:1"}
"#;

    #[test]
    fn per_image_decisions_and_host_calls() {
        let r = report(SETTINGS, DEPLOYMENT);
        assert_eq!(r["allowed"], false, "{r}");
        let images = r["images"].as_array().unwrap();
        assert_eq!(images.len(), 3);
        assert_eq!(images[0]["decision"], "allowed");
        assert_eq!(images[0]["rule"], "corp");
        assert_eq!(images[1]["decision"], "denied");
        assert_eq!(images[1]["rule"], "corp");
        assert!(images[1]["reason"].as_str().unwrap().contains("latest"));
        assert_eq!(images[2]["decision"], "denied");
        assert!(images[2]["reason"]
            .as_str()
            .unwrap()
            .contains(NOT_EVALUATED));
        // Each check the rule ran, with why it failed here.
        assert_eq!(images[2]["checks"][0]["check"], r#"cosign key "release""#);
        assert!(images[2]["checks"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with(NOT_EVALUATED));
        let calls = r["hostCalls"].as_array().unwrap();
        assert_eq!(calls.len(), 1, "{r}");
        assert_eq!(calls[0]["capability"], "imagegate/v1/verify_signature");
        assert_eq!(calls[0]["payload"]["image"], "ghcr.io/signed/tool:1");
    }

    #[test]
    fn settings_errors_name_the_field() {
        let r = report(
            "rules:\n  - name: a\n    images: [x]\n    tags: {requiredigest: true}\n",
            "{}",
        );
        let e = r["settingsError"].as_str().unwrap();
        assert!(e.starts_with("rules[0].tags"), "{e}");
        assert!(report("- a", "{}")["settingsError"]
            .as_str()
            .unwrap()
            .contains("must be a map"));
        assert!(report("a: [", "{}")["settingsError"]
            .as_str()
            .unwrap()
            .contains("not YAML"));
    }

    #[test]
    fn workloads_as_objects_requests_or_reviews() {
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: 'registry.corp.example/a:1'}]}\n";
        let req = workload(pod).unwrap();
        assert_eq!(req.namespace.as_deref(), Some("default"));
        assert_eq!(req.resource.resource, "pods");
        assert_eq!(report("", pod)["allowed"], true);
        let review = format!(
            "kind: AdmissionReview\napiVersion: admission.k8s.io/v1\nrequest:\n  uid: u\n  operation: CREATE\n  namespace: x\n  kind: {{group: '', version: v1, kind: Pod}}\n  object: {}\n",
            serde_json::to_string(&serde_yaml_ng::from_str::<Value>(pod).unwrap()).unwrap()
        );
        let req = workload(&review).unwrap();
        assert_eq!(
            (req.uid.as_str(), req.namespace.as_deref()),
            ("u", Some("x"))
        );
        assert!(report("", "[1]")["workloadError"].is_string());
        assert!(report("", "metadata: {}")["workloadError"]
            .as_str()
            .unwrap()
            .contains("kind"));
    }
}
