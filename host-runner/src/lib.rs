//! imagegate host-runner: runs the imagegate Kubewarden policy with wasmtime
//! and real host capabilities. The binary (`main.rs`) is a thin CLI over
//! these modules; integration tests use them directly.

pub mod admission;
pub mod bench;
pub mod capabilities;
pub mod context_aware;
pub mod fixtures;
pub mod run;
pub mod runtime;
pub mod serve;
pub mod session;
