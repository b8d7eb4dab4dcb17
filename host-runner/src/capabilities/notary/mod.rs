//! The `notary/v1/signed_digest` host capability: Notary v1 (Docker Content Trust)
//! verification of an image's tag against a notary server.
//!
//! Kubewarden has no Notary capability; imagegate's host provides one so
//! the policy can replace the tmax webhook (any listed signer suffices) and
//! sighup's enforcer (signer roles with pinned keys).
//!
//! * GUN = the image reference without tag and digest, as the guest sends it
//!   normalized (`127.0.0.1:5000/demo/alpine`, `docker.io/library/nginx`).
//! * Tag = the reference's tag, `latest` when it has none. A digest-only
//!   reference is trusted iff one of the signers' roles lists *some* tag
//!   with that sha256 (Notary signs tags, not digests; this is the only way
//!   to vouch for a digest without naming a tag).
//! * Signers: any one suffices; `jenkins` means `targets/jenkins`, `targets`
//!   means the repository owner's top-level targets. "Signed by S" means S's
//!   role lists the tag; a pinned `public_key` must also be a key whose
//!   signature on that role verified (compared by key material). No signers:
//!   Docker pull semantics, `targets/releases` first, then `targets`.
//! * Root of trust: pinned `root_keys` (root.json must be signed by one of
//!   them) or trust on first use per GUN (see [`store`]). Root certificates
//!   must name the GUN.
//!
//! Protects against: forged, tampered or mixed metadata (signatures,
//! thresholds, key IDs, hashes and lengths of every file), replay of expired
//! metadata (expiry against the configured clock), rollback to older versions
//! than seen before (per-GUN version cache), a signer signing outside its
//! delegated paths, a delegation key swapped by the repository owner (pinned
//! signer keys), a wrong repository's metadata (root certificate CN = GUN).
//! Does not protect against: a compromised server on the *first* TOFU contact
//! (pin `root_keys` for that), freeze attacks shorter than the timestamp
//! lifetime (14 days by default on notary-server), rollback across restarts
//! when no cache directory is configured, an attacker holding a threshold of
//! the signing keys. Not supported: nested delegations (`targets/a/b`),
//! `path_hash_prefixes`, ed25519 keys, registry token auth (Docker Hub's
//! notary). Root rotations are followed through `<version>.root.json` (each
//! root signed by its predecessor), at most 64 per call.

mod client;
mod keys;
mod store;
mod tuf;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use imagegate_policy::wire::{NotaryVerifyRequest, NotaryVerifyResponse};

use self::keys::KeyMaterial;
use self::tuf::{Anchor, SignerSpec, Wanted};
use super::shared::Shared;
use super::Failure;

/// How [`Notary`] verifies.
#[derive(Debug, Clone)]
pub struct NotaryConfig {
    /// Fixed time for expiry checks (tests, replays of recorded data);
    /// `None` = the system clock at each call.
    pub clock: Option<SystemTime>,
    /// Where TOFU roots and last seen versions are kept per GUN; `None` =
    /// in memory only (lost on restart).
    pub cache_dir: Option<PathBuf>,
    /// Timeout of each HTTP request to a notary server (connect and total).
    pub timeout: Duration,
}

impl Default for NotaryConfig {
    fn default() -> NotaryConfig {
        NotaryConfig {
            clock: None,
            cache_dir: None,
            timeout: Duration::from_secs(5),
        }
    }
}

/// The Notary v1 verifier. Cheap to share: one per host.
pub struct Notary {
    clock: Option<SystemTime>,
    fetcher: client::Fetcher,
    store: store::TrustStore,
}

impl Notary {
    /// `shared`: the replicas' store, where trust state is shared ([`store`]).
    pub fn new(config: NotaryConfig, shared: Option<Arc<Shared>>) -> anyhow::Result<Notary> {
        if let Some(dir) = &config.cache_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("notary cache directory {}: {e}", dir.display()))?;
        }
        Ok(Notary {
            clock: config.clock,
            fetcher: client::Fetcher::new(config.timeout),
            store: store::TrustStore::new(config.cache_dir, shared),
        })
    }

    /// Verifies `req.image` against `req.server`. `Ok` always has
    /// `is_trusted: true`; every failure names the file and the check that
    /// failed, prefixed with `notary: `. Trust data that does not verify, or
    /// does not sign the tag, is a [`Failure::definite`]; a server that
    /// cannot be reached is not.
    pub async fn verify(&self, req: &NotaryVerifyRequest) -> Result<NotaryVerifyResponse, Failure> {
        self.verify_request(req).await.map_err(|e| Failure {
            message: format!("notary: {}", e.message),
            ..e
        })
    }

    async fn verify_request(
        &self,
        req: &NotaryVerifyRequest,
    ) -> Result<NotaryVerifyResponse, Failure> {
        let (gun, wanted) = split_image(&req.image).map_err(Failure::definite)?;
        let signers = parse_signers(req).map_err(Failure::definite)?;
        let pinned_roots = req
            .root_keys
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, pem)| keys::parse_pinned(pem).map_err(|e| format!("root_keys[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Failure::definite)?;
        let mut roles: Vec<String> = signers
            .iter()
            .map(|s| s.role.clone())
            .filter(|r| r != "targets")
            .collect();
        if signers.is_empty() {
            roles.push("targets/releases".to_string());
        }

        let state = self.store.load(gun).await?;
        let files = self
            .fetcher
            .fetch(
                &req.server,
                gun,
                req.ca_cert.as_deref(),
                &roles,
                state.root.as_deref(),
            )
            .await?;
        let anchor = match (&pinned_roots[..], &state.root) {
            ([], Some(root)) => Anchor::Trusted(root),
            ([], None) => Anchor::FirstUse,
            (pins, _) => Anchor::Pinned(pins),
        };
        let now: DateTime<Utc> = self.clock.unwrap_or_else(SystemTime::now).into();
        let verified = tuf::verify_repo(gun, &files, anchor, &state.versions, now)
            .map_err(Failure::definite)?;
        self.store
            .save(gun, &state, &files.root, &verified.versions)
            .await?;
        let (digest, signer) =
            tuf::select(&verified, &wanted, &signers).map_err(Failure::definite)?;
        Ok(NotaryVerifyResponse {
            is_trusted: true,
            digest,
            signer,
        })
    }
}

/// Splits a normalized reference into GUN and what to look up.
fn split_image(image: &str) -> Result<(&str, Wanted), String> {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let (gun, tag) = match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => (&name[..i], Some(&name[i + 1..])),
        _ => (name, None),
    };
    if gun.is_empty() || tag == Some("") {
        return Err(format!("{image:?} is not an image reference"));
    }
    let wanted = match (tag, digest) {
        (Some(tag), _) => Wanted::Tag(tag.to_string()),
        (None, Some(digest)) if digest.starts_with("sha256:") => Wanted::Digest(digest.to_string()),
        (None, Some(digest)) => {
            return Err(format!(
                "{image}: Notary signs only sha256 digests, not {digest}"
            ))
        }
        (None, None) => Wanted::Tag("latest".to_string()),
    };
    Ok((gun, wanted))
}

fn parse_signers(req: &NotaryVerifyRequest) -> Result<Vec<SignerSpec>, String> {
    req.signers
        .iter()
        .enumerate()
        .map(|(i, signer)| {
            let role = match signer.role.trim_end_matches('/') {
                "" => return Err(format!("signers[{i}]: empty role")),
                role if role == "targets" || role.starts_with("targets/") => role.to_string(),
                role => format!("targets/{role}"),
            };
            let pinned: Option<KeyMaterial> = signer
                .public_key
                .as_deref()
                .map(keys::parse_pinned)
                .transpose()
                .map_err(|e| format!("signers[{i}] ({role}): public_key: {e}"))?;
            Ok(SignerSpec { role, pinned })
        })
        .collect()
}

#[cfg(test)]
mod tests;
