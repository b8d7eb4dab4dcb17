//! `imagegate` host-runner library: the host capabilities and runtime behind
//! the `imagegate` CLI, shared by the binary and the integration tests.

pub mod capabilities;
