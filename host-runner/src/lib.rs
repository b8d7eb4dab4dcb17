//! imagegate host-runner: runs the imagegate Kubewarden policy with wasmtime
//! and real host capabilities. The binary (`main.rs`) is a thin CLI over
//! these modules; integration tests use them directly.

pub mod capabilities;
pub mod cli;
pub mod context_aware;
pub mod packaging;
pub mod registry;
pub mod runtime;
pub mod serve;
