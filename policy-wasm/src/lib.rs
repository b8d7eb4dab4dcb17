//! imagegate: decides which container images may run in a Kubernetes cluster.
//!
//! This crate is both the Kubewarden policy module (`cdylib` for
//! `wasm32-wasip1`) and a plain Rust library used by the host-runner and by
//! native tests. Data flows one way:
//!
//! request JSON -> [`workload`] finds images -> [`reference`] normalizes ->
//! [`pattern`] finds the winning rule -> [`decide`] asks the [`host::Host`] ->
//! [`wire::ValidationResponse`].
//!
//! The waPC glue lives in `entry.rs` and is compiled for wasm32-wasip1 only
//! (the browser playground builds this crate for wasm32-unknown-unknown).

pub mod decide;
pub mod glob;
pub mod host;
pub mod pattern;
pub mod pem;
pub mod reference;
pub mod settings;
pub mod sources;
pub mod wire;
pub mod workload;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
mod entry;
