//! imagegate host-runner: runs the imagegate Kubewarden policy with wasmtime
//! and real host capabilities. The binary (`main.rs`) only parses the command
//! line and calls [`cli`]; integration tests use these modules directly.
//!
//! Data flows one way: [`cli`] reads flags and files and builds the
//! [`runtime`] (the wasmtime waPC host) with its [`capabilities`], which use
//! [`registry`] to reach registries; [`packaging`], [`serve`] and [`deploy`]
//! sit beside them and are driven by their verbs.

/// The verbs, one file each, and the flags they share.
pub mod cli;

/// The policy runtime: the waPC host on wasmtime, what policy-evaluator does
/// around `validate`, and kwctl's record/replay session format.
pub mod runtime;

/// The host capabilities a policy calls: dispatch and gating, request types,
/// backends (live, replayed, offline), the cache, OCI/sigstore, Notary,
/// Kubernetes and crypto.
pub mod capabilities;

/// `imagegate check`: manifests evaluated as the CREATEs the API server
/// would send, per-image results in text, JSON, JUnit and SARIF.
pub mod check;

/// How the host reaches OCI registries: one configuration for capabilities,
/// `registry://` policies, push and pull.
pub mod registry;

/// Where a value is in a YAML text (line and column by path), for messages
/// and SARIF.
pub mod positions;

/// Packaging for Kubewarden: metadata, annotate, Artifact Hub files, the
/// scaffolded policy resource, and the policy's OCI artifact.
pub mod packaging;

/// `imagegate serve`: HTTPS admission webhook, ImageReview backend, metrics.
pub mod serve;

/// Running `imagegate serve` without Kubewarden: the container image, the
/// webhook manifests, ImagePolicyWebhook configuration, certificates.
pub mod deploy;
