//! Test lab shared by the e2e tests: a real `docker-registry` on 127.0.0.1
//! (plain, htpasswd, TLS with a generated CA), deterministic images and
//! cosign-format signatures, all built in Rust (no Python, no files outside
//! temp dirs), the referrers API in front of the registry, Notation signatures as
//! OCI referrers, and a Notary v1 lab (notary-server, notary-signer, the notary
//! CLI). Each test file uses what it needs.

pub mod bundle;
pub mod certs;
pub mod cosign;
pub mod image;
pub mod notary;
pub mod notation;
pub mod referrers;
pub mod registry;
pub mod sigstore;
