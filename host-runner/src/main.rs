//! `imagegate`: the host-runner CLI.
fn main() {}
