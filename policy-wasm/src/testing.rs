//! Test support shared by the engine's tests and the host's: admission
//! request builders, a scripted [`Host`], fixed test material, and where the
//! built policy module is.
//!
//! Compiled for this crate's own tests and with the `testing` feature
//! (`imagegate-policy = { path = "...", features = ["testing"] }` as a
//! dev-dependency), never into the policy module.
//!
//! ```
//! use imagegate_policy::testing::{Request, ScriptedHost, D1};
//! use imagegate_policy::{decide, settings::Policy};
//! use serde_json::json;
//!
//! let policy = Policy::from_json(
//!     r#"{"rules":[{"name":"pin","images":["**"],"pinDigest":true}]}"#,
//! )
//! .unwrap();
//! let host = ScriptedHost::new(|_, _, _| Ok(json!({ "digest": D1 })));
//! let response = decide::validate(&Request::pod(&["nginx:1"]).admission_request(), &policy, &host);
//! assert!(response.accepted);
//! assert_eq!(host.calls()[0].operation, "v1/manifest_digest");
//! ```

use crate::host::Host;
use crate::wire::AdmissionRequest;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::path::PathBuf;

/// A well-formed digest (`sha256:1111...`).
pub const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
/// Another well-formed digest (`sha256:2222...`).
pub const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
/// A PEM P-256 public key (cosign's key type), valid settings material.
pub const KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQTW9sqsjDyllhoVJlqBrZv/VtgKl\n9fpjLZZGCTcsG+r4h2SI/d0w/nIO0LXHbMr5eNLOw2Nd3LP7zP8ijpZqqg==\n-----END PUBLIC KEY-----\n";

/// The built policy module: `$IMAGEGATE_POLICY` (set by `make e2e`), else
/// the repository's `policy.wasm` (`make policy.wasm`).
///
/// # Panics
///
/// When there is no file there, saying how to build it.
pub fn policy_wasm() -> PathBuf {
    let path = std::env::var_os("IMAGEGATE_POLICY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../policy.wasm")));
    assert!(
        path.is_file(),
        "policy module {} not found: run `make policy.wasm` first (or set IMAGEGATE_POLICY)",
        path.display()
    );
    path
}

/// Containers `c0`, `c1`, ... running `images`, as a pod spec lists them.
pub fn containers(images: &[&str]) -> Vec<Value> {
    images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect()
}

/// An `admission.k8s.io/v1` AdmissionRequest under construction, as JSON:
/// what the API server sends, so both the guest (typed, with
/// [`Request::admission_request`]) and the host (its own types, or a file)
/// can use it.
///
/// Defaults: a CREATE in namespace `default` by `alice` (groups `developers`,
/// `system:authenticated`), uid `imagegate-test`, `name` from the object's
/// `metadata.name`.
#[derive(Debug, Clone, PartialEq)]
pub struct Request(Value);

impl Request {
    /// A Pod `web` in `default` whose containers `c0`, `c1`, ... run `images`.
    pub fn pod(images: &[&str]) -> Request {
        Request::pod_with(containers(images))
    }

    /// A Pod `web` in `default` with these containers.
    pub fn pod_with(containers: Vec<Value>) -> Request {
        Request::object(
            "",
            "Pod",
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"containers": containers}
            }),
        )
    }

    /// A CREATE of `object`, of kind `kind` in API group `group` (`""` for core).
    pub fn object(group: &str, kind: &str, object: Value) -> Request {
        let resource = format!("{}s", kind.to_ascii_lowercase());
        let kind = json!({"group": group, "version": "v1", "kind": kind});
        let resource = json!({"group": group, "version": "v1", "resource": resource});
        let mut request = json!({
            "uid": "imagegate-test",
            "kind": kind,
            "resource": resource,
            "requestKind": kind,
            "requestResource": resource,
        });
        if let Some(name) = object.pointer("/metadata/name") {
            request["name"] = name.clone();
        }
        request["namespace"] = json!("default");
        request["operation"] = json!("CREATE");
        request["userInfo"] =
            json!({"username": "alice", "groups": ["developers", "system:authenticated"]});
        request["object"] = object;
        Request(request)
    }

    /// Sets the request's `uid`.
    pub fn uid(self, uid: &str) -> Request {
        self.set("uid", json!(uid))
    }

    /// Sets the `operation` (`UPDATE`, `DELETE`, ...).
    pub fn operation(self, operation: &str) -> Request {
        self.set("operation", json!(operation))
    }

    /// Sets the request's `namespace` (the object's own metadata is unchanged).
    pub fn namespace(self, namespace: &str) -> Request {
        self.set("namespace", json!(namespace))
    }

    /// Sets the requester: `userInfo.username` and `userInfo.groups`.
    pub fn user(self, username: &str, groups: &[&str]) -> Request {
        self.set("userInfo", json!({"username": username, "groups": groups}))
    }

    /// Sets the object's `metadata.annotations`.
    pub fn annotations(self, annotations: Value) -> Request {
        self.edit_object(|o| o["metadata"]["annotations"] = annotations)
    }

    /// Sets any top-level field (`subResource`, `oldObject`, `dryRun`, ...);
    /// `null` removes it.
    pub fn set(mut self, field: &str, value: Value) -> Request {
        match (&mut self.0, value) {
            (Value::Object(map), Value::Null) => {
                map.remove(field);
            }
            (Value::Object(map), value) => {
                map.insert(field.to_string(), value);
            }
            _ => {}
        }
        self
    }

    /// Changes the object.
    pub fn edit_object(mut self, change: impl FnOnce(&mut Value)) -> Request {
        change(&mut self.0["object"]);
        self
    }

    /// The AdmissionRequest JSON.
    pub fn json(&self) -> &Value {
        &self.0
    }

    /// The AdmissionRequest JSON, owned.
    pub fn into_json(self) -> Value {
        self.0
    }

    /// The request in an `admission.k8s.io/v1` AdmissionReview.
    pub fn review(self) -> Value {
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": self.0,
        })
    }

    /// The request as the guest reads it.
    ///
    /// # Panics
    ///
    /// When the JSON is not an AdmissionRequest (a test mistake).
    pub fn admission_request(&self) -> AdmissionRequest {
        serde_json::from_value(self.0.clone())
            .unwrap_or_else(|e| panic!("not an AdmissionRequest ({e}): {}", self.0))
    }
}

impl From<Request> for Value {
    fn from(request: Request) -> Value {
        request.0
    }
}

/// One call a [`ScriptedHost`] received.
#[derive(Debug, Clone, PartialEq)]
pub struct HostCall {
    /// `oci`, `notary`, `kubernetes`, ...
    pub namespace: String,
    /// `v2/verify`, `v1/manifest_digest`, `get_resource`, ...
    pub operation: String,
    /// The payload as JSON (a JSON string of the text when it is not JSON).
    pub payload: Value,
}

type Answer = Box<dyn Fn(&str, &str, &[u8]) -> Result<Vec<u8>, String>>;

/// A [`Host`] that answers with a closure and records every call.
pub struct ScriptedHost {
    answer: Answer,
    calls: RefCell<Vec<HostCall>>,
}

impl ScriptedHost {
    /// Answers each call with `answer(namespace, operation, payload)`,
    /// JSON in, JSON out.
    pub fn new(answer: impl Fn(&str, &str, &Value) -> Result<Value, String> + 'static) -> Self {
        ScriptedHost::raw(move |namespace, operation, payload| {
            let answer = answer(namespace, operation, &as_json(payload))?;
            serde_json::to_vec(&answer).map_err(|e| e.to_string())
        })
    }

    /// Like [`ScriptedHost::new`], but the `imagegate` namespace is unknown,
    /// as on Kubewarden's policy-server (`unknown namespace: imagegate`).
    pub fn policy_server(
        answer: impl Fn(&str, &str, &Value) -> Result<Value, String> + 'static,
    ) -> Self {
        ScriptedHost::new(move |namespace, operation, payload| {
            if namespace == "imagegate" {
                return Err("unknown namespace: imagegate".to_string());
            }
            answer(namespace, operation, payload)
        })
    }

    /// Answers each call with raw bytes: for answers that are not JSON.
    pub fn raw(answer: impl Fn(&str, &str, &[u8]) -> Result<Vec<u8>, String> + 'static) -> Self {
        ScriptedHost {
            answer: Box::new(answer),
            calls: RefCell::new(Vec::new()),
        }
    }

    /// Fails every call with `error`, as a host without the capability or a
    /// registry that is down would.
    pub fn failing(error: &str) -> Self {
        let error = error.to_string();
        ScriptedHost::raw(move |_, _, _| Err(error.clone()))
    }

    /// Must not be called: panics on any call, so a test sees a host call it
    /// did not expect.
    pub fn none() -> Self {
        ScriptedHost::raw(|namespace, operation, payload| {
            panic!(
                "unexpected host call {namespace}/{operation} {}",
                as_json(payload)
            )
        })
    }

    /// The calls received so far, in order.
    pub fn calls(&self) -> Vec<HostCall> {
        self.calls.borrow().clone()
    }
}

impl Host for ScriptedHost {
    fn call(&self, namespace: &str, operation: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
        self.calls.borrow_mut().push(HostCall {
            namespace: namespace.to_string(),
            operation: operation.to_string(),
            payload: as_json(payload),
        });
        (self.answer)(namespace, operation, payload)
    }
}

fn as_json(payload: &[u8]) -> Value {
    serde_json::from_slice(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()))
}
