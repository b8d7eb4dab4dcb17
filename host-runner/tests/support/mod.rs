//! Test lab shared by the e2e tests: a real `docker-registry` on 127.0.0.1
//! (plain, htpasswd, TLS with a generated CA), deterministic images and
//! cosign-format signatures, all built in Rust (no Python, no files outside
//! temp dirs), the referrers API in front of the registry, a token service
//! for a registry's bearer auth, a link with a delay, Notation signatures as
//! OCI referrers, a Notary v1 lab (notary-server, notary-signer, the notary
//! CLI), and a redis-server for the shared cache. Each test file uses what it
//! needs.

pub mod bundle;
pub mod certs;
pub mod cosign;
pub mod daemon;
pub mod http;
pub mod image;
pub mod link;
pub mod notary;
pub mod notation;
pub mod redis;
pub mod referrers;
pub mod registry;
pub mod sigstore;
pub mod token;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// Polls `probe` every 20 ms until it returns something, for at most
/// `within`: `None` if it never did (the caller fails the test and says
/// what it waited for). The lab's one loop for servers coming up and
/// background writes landing.
pub fn wait_until<T>(within: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = probe() {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
