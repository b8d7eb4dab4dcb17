//! Test lab shared by the e2e tests: a real `docker-registry` on 127.0.0.1
//! (plain, htpasswd, TLS with a generated CA), deterministic images and
//! cosign-format signatures, all built in Rust (no Python, no files outside
//! temp dirs), and a Notary v1 lab (notary-server, notary-signer, the notary
//! CLI), and a redis-server for the shared cache. Each test file uses what it
//! needs.

pub mod certs;
pub mod cosign;
pub mod image;
pub mod notary;
pub mod redis;
pub mod registry;
pub mod sigstore;
