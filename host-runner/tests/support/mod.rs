//! Test lab shared by the e2e tests: a real `docker-registry` on 127.0.0.1
//! (plain, htpasswd, TLS with a generated CA), deterministic images and
//! cosign-format signatures, all built in Rust (no Python, no files outside
//! temp dirs), the referrers API in front of the registry, Notation signatures as
//! OCI referrers, a Notary v1 lab (notary-server, notary-signer, the notary
//! CLI), and a redis-server for the shared cache. Each test file uses what it
//! needs.

pub mod bundle;
pub mod certs;
pub mod cosign;
pub mod daemon;
pub mod image;
pub mod notary;
pub mod notation;
pub mod redis;
pub mod referrers;
pub mod registry;
pub mod sigstore;

use std::process::{Command, Stdio};

/// Whether every binary runs (`arg` makes it print and exit). Tests skip
/// loudly when not, except under `make test` (`IMAGEGATE_E2E_REQUIRED`),
/// which installs the servers: a skip there would hide a broken setup.
pub fn installed(binaries: &[&str], arg: &str, package: &str) -> bool {
    let found = binaries.iter().all(|bin| {
        Command::new(bin)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    });
    if !found && std::env::var_os("IMAGEGATE_E2E_REQUIRED").is_some() {
        panic!("IMAGEGATE_E2E_REQUIRED is set but {binaries:?} are not installed");
    }
    if !found {
        eprintln!(
            "\n\n!!!!!!!! SKIPPED: {binaries:?} not installed (apt-get install {package}). \
             This e2e test did NOT run. !!!!!!!!\n\n"
        );
    }
    found
}
