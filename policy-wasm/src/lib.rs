//! imagegate: decides which container images may run in a Kubernetes cluster.
//!
//! This crate is both the Kubewarden policy module (`cdylib` for
//! `wasm32-wasip1`) and a plain Rust library: the host-runner, the browser
//! playground and the tests run the very same engine natively. The engine is
//! pure Rust and never talks waPC: everything it needs from outside (signature
//! checks, digest lookups, Kubernetes objects) it asks a [`host::Host`].
//!
//! Data flows one way:
//!
//! settings JSON -> [`settings::Policy::from_json`] (validated, compiled once)
//! -> [`decide::validate`]: the request's images (found per workload kind) ->
//! [`reference::Reference`] (normalized) -> the winning rule
//! ([`pattern::PatternSet`]) -> host checks -> one [`decide::Verdict`] per
//! image -> [`wire::ValidationResponse`].
//!
//! # Example
//!
//! A rule that requires a cosign signature and pins the verified digest,
//! decided against a host that answers `oci/v2/verify` like a registry
//! holding one signed image:
//!
//! ```
//! use imagegate_policy::decide;
//! use imagegate_policy::host::Host;
//! use imagegate_policy::settings::Policy;
//! use imagegate_policy::wire::AdmissionRequest;
//! use serde_json::json;
//!
//! const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
//!
//! /// Verifies `ghcr.io/corp/app:1.0` and nothing else.
//! struct Registry;
//!
//! impl Host for Registry {
//!     fn call(&self, namespace: &str, operation: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
//!         let request: serde_json::Value = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
//!         match (namespace, operation, request["image"].as_str()) {
//!             ("oci", "v2/verify", Some("ghcr.io/corp/app:1.0")) => {
//!                 Ok(json!({"is_trusted": true, "digest": DIGEST}).to_string().into_bytes())
//!             }
//!             // As Kubewarden's policy-server answers imagegate's own
//!             // capabilities: the engine then asks `oci/v2/verify`.
//!             ("imagegate", _, _) => Err("unknown namespace: imagegate".to_string()),
//!             (_, _, image) => Err(format!("no signatures found for image: {image:?}")),
//!         }
//!     }
//! }
//!
//! let key = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQTW9sqsjDyllhoVJlqBrZv/VtgKl\n\
//!            9fpjLZZGCTcsG+r4h2SI/d0w/nIO0LXHbMr5eNLOw2Nd3LP7zP8ijpZqqg==\n-----END PUBLIC KEY-----\n";
//! let settings = json!({
//!     "keys": {"release": {"cosign": key}},
//!     "rules": [{
//!         "name": "signed",
//!         "images": ["ghcr.io/corp/**"],
//!         "verify": {"anyOf": [{"cosign": {"keys": ["release"]}}]},
//!         "pinDigest": true
//!     }]
//! });
//! let policy = Policy::from_json(&settings.to_string())?;
//!
//! let pod = |image: &str| -> AdmissionRequest {
//!     serde_json::from_value(json!({
//!         "uid": "1", "operation": "CREATE", "namespace": "shop",
//!         "kind": {"group": "", "version": "v1", "kind": "Pod"},
//!         "object": {"metadata": {"name": "web"},
//!                    "spec": {"containers": [{"name": "app", "image": image}]}}
//!     }))
//!     .unwrap()
//! };
//!
//! // Signed: admitted, and the object is rewritten to the verified digest.
//! let response = decide::validate(&pod("ghcr.io/corp/app:1.0"), &policy, &Registry);
//! assert!(response.accepted);
//! let object = response.mutated_object.unwrap();
//! assert_eq!(object["spec"]["containers"][0]["image"], format!("ghcr.io/corp/app:1.0@{DIGEST}"));
//!
//! // Unsigned: one rejection naming the container, the rule and the failed check.
//! let response = decide::validate(&pod("ghcr.io/corp/app:2.0"), &policy, &Registry);
//! assert!(!response.accepted);
//! assert!(response.message.unwrap().starts_with(
//!     r#"imagegate denied 1 of 1 images: container "app": image "ghcr.io/corp/app:2.0": rule "signed": no signature check passed: cosign key "release""#
//! ));
//!
//! // No rule matches: with an allow rule, unmatched images are denied.
//! assert!(!decide::validate(&pod("nginx"), &policy, &Registry).accepted);
//! # Ok::<(), String>(())
//! ```
//!
//! The waPC glue lives in `entry.rs` and is compiled for wasm32-wasip1 only
//! (the browser playground builds this crate for wasm32-unknown-unknown).

#![deny(missing_docs)]

pub mod capability;
mod conditions;
pub mod create;
pub mod decide;
pub mod dn;
mod glob;
pub mod host;
pub mod instance;
pub(crate) mod json;
pub mod notation;
pub mod pattern;
pub mod pem;
pub mod reference;
pub mod requirements;
pub mod settings;
pub mod sources;
pub mod wire;
mod workload;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
mod entry;
