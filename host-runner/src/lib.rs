//! imagegate host-runner: runs the imagegate Kubewarden policy with wasmtime
//! and real host capabilities. The binary (`main.rs`) is a thin CLI over
//! these modules; integration tests use them directly.

pub mod admission;
pub mod annotate;
pub mod artifacthub;
pub mod bench;
pub mod capabilities;
pub mod context_aware;
pub mod convert;
pub mod fixtures;
pub mod metadata;
pub mod push;
pub mod questions;
pub mod run;
pub mod runtime;
pub mod scaffold;
pub mod serve;
pub mod session;
