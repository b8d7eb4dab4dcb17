//! The pure Notary v1 (TUF) verification core: given the bytes of root,
//! timestamp, snapshot, targets and the delegated roles of one GUN, a trust
//! anchor, the versions seen before and a clock, decide which targets each
//! role vouches for. No I/O happens here, so every check is unit-testable
//! over recorded files.
//!
//! Order (as the notary client does it): root (anchor, GUN, root threshold)
//! -> timestamp (signed by the root's timestamp keys; pins snapshot's bytes)
//! -> snapshot (pins root, targets and each delegation's bytes) -> targets
//! (declares delegation keys, thresholds and paths) -> each delegation.
//! Every file is checked for its `_type`, signatures, expiry and version
//! rollback; every error names the file and the failed check.

use std::collections::{BTreeMap, BTreeSet};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest as _, Sha256, Sha512};

use super::keys::{verify_signature, KeyMaterial, TufKey};
use crate::capabilities::canonical;

/// The raw files of one repository, as fetched (or recorded).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepoFiles {
    pub root: Vec<u8>,
    pub timestamp: Vec<u8>,
    pub snapshot: Vec<u8>,
    pub targets: Vec<u8>,
    /// Delegated roles by name (`targets/jenkins`); only the ones asked for.
    pub delegations: BTreeMap<String, Vec<u8>>,
    /// `<version>.root.json` files between the trusted root and root.json
    /// (ascending), when the root was rotated more than once since.
    pub root_rotations: Vec<Vec<u8>>,
}

/// What root.json is checked against.
#[derive(Debug, Clone, Copy)]
pub enum Anchor<'a> {
    /// Root keys pinned in settings: root.json must carry a valid signature by one of them.
    Pinned(&'a [KeyMaterial]),
    /// root.json trusted before (TOFU cache): a newer root must be reached
    /// through rotations, each signed by its predecessor's root keys.
    Trusted(&'a [u8]),
    /// Nothing known: root.json is trusted as served (trust on first use).
    FirstUse,
}

/// Last seen version per role (`root`, `timestamp`, …, `targets/jenkins`).
pub type Versions = BTreeMap<String, u64>;

/// One target: the digest and size a role signs for a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `sha256:<hex>`.
    pub digest: String,
    pub length: u64,
}

/// The verified content of one targets role.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleTargets {
    /// Tags with a sha256 hash (entries without one are never trusted, as in docker).
    pub targets: BTreeMap<String, Target>,
    /// Keys whose signatures on this role verified.
    pub signed_by: Vec<KeyMaterial>,
    /// Path prefixes the delegation allows (`""` = all); `None` for top-level targets.
    pub paths: Option<Vec<String>>,
}

/// The outcome of [`verify_repo`].
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// Versions to remember for rollback detection (never lower than before).
    pub versions: Versions,
    pub targets: RoleTargets,
    /// Names of the roles targets.json delegates to.
    pub delegated: BTreeSet<String>,
    /// Each fetched delegation, or why it failed (one broken signer must not
    /// hide another that suffices).
    pub delegations: BTreeMap<String, Result<RoleTargets, String>>,
}

/// Verifies the whole chain. Errors name the file and the failed check.
pub fn verify_repo(
    gun: &str,
    files: &RepoFiles,
    anchor: Anchor<'_>,
    seen: &Versions,
    now: DateTime<Utc>,
) -> Result<Verified, String> {
    let mut versions = seen.clone();
    let root = verify_root(gun, &files.root, &files.root_rotations, anchor, now)?;
    check_version(&root.envelope, "root", seen, &mut versions)?;

    let timestamp = Envelope::parse("timestamp.json", &files.timestamp, "Timestamp")?;
    timestamp.check_signatures(root.role("timestamp")?, &root.keys)?;
    timestamp.check_expiry(now)?;
    check_version(&timestamp, "timestamp", seen, &mut versions)?;
    let snapshot_meta = timestamp.signed["meta"]
        .get("snapshot")
        .ok_or("timestamp.json: no meta entry for snapshot")?;
    check_meta(
        "snapshot.json",
        &files.snapshot,
        snapshot_meta,
        "timestamp.json",
    )?;

    let snapshot = Envelope::parse("snapshot.json", &files.snapshot, "Snapshot")?;
    snapshot.check_signatures(root.role("snapshot")?, &root.keys)?;
    snapshot.check_expiry(now)?;
    check_version(&snapshot, "snapshot", seen, &mut versions)?;
    let meta = &snapshot.signed["meta"];
    if let Some(entry) = meta.get("root") {
        check_meta("root.json", &files.root, entry, "snapshot.json")?;
    }
    let targets_meta = meta
        .get("targets")
        .ok_or("snapshot.json: no meta entry for targets")?;
    check_meta(
        "targets.json",
        &files.targets,
        targets_meta,
        "snapshot.json",
    )?;

    let targets = Envelope::parse("targets.json", &files.targets, "Targets")?;
    let signed_by = targets.check_signatures(root.role("targets")?, &root.keys)?;
    targets.check_expiry(now)?;
    check_version(&targets, "targets", seen, &mut versions)?;
    let top = RoleTargets {
        targets: parse_targets(&targets)?,
        signed_by,
        paths: None,
    };
    let delegation_keys = parse_keys("targets.json", &targets.signed["delegations"]["keys"])?;
    let delegation_roles = parse_delegation_roles(&targets)?;

    let mut delegations = BTreeMap::new();
    for (name, bytes) in &files.delegations {
        let result = verify_delegation(name, bytes, meta, &delegation_roles, &delegation_keys, now)
            .and_then(|(env, role)| check_version(&env, name, seen, &mut versions).map(|()| role));
        delegations.insert(name.clone(), result);
    }
    Ok(Verified {
        versions,
        targets: top,
        delegated: delegation_roles.into_keys().collect(),
        delegations,
    })
}

/// What the caller asks about: a tag, or (digest-only image) a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    Tag(String),
    Digest(String),
}

impl std::fmt::Display for Wanted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wanted::Tag(tag) => f.write_str(tag),
            Wanted::Digest(digest) => f.write_str(digest),
        }
    }
}

/// A signer from the request: a role (`targets/jenkins`, or `targets` for
/// the repository owner) and optionally the key it must be signed with.
#[derive(Debug, Clone, PartialEq)]
pub struct SignerSpec {
    pub role: String,
    pub pinned: Option<KeyMaterial>,
}

/// Finds the digest trusted for `wanted`: the first signer whose role lists
/// it wins; without signers, Docker's pull rule (targets/releases, then
/// targets). Returns `(digest, role)`.
pub fn select(
    verified: &Verified,
    wanted: &Wanted,
    signers: &[SignerSpec],
) -> Result<(String, String), String> {
    if signers.is_empty() {
        if let Some(releases) = verified.delegations.get(RELEASES) {
            let releases = releases.as_ref().map_err(Clone::clone)?;
            if let Some(target) = lookup(releases, wanted) {
                return Ok((target.digest.clone(), RELEASES.to_string()));
            }
        }
        return lookup(&verified.targets, wanted)
            .map(|target| (target.digest.clone(), "targets".to_string()))
            .ok_or_else(|| {
                format!("no trust data for {wanted} (looked in {RELEASES}, then targets)")
            });
    }
    let mut reasons = Vec::new();
    for signer in signers {
        match signed_by(verified, wanted, signer) {
            Ok(target) => return Ok((target.digest.clone(), signer.role.clone())),
            Err(reason) => reasons.push(reason),
        }
    }
    let roles: Vec<&str> = signers.iter().map(|s| s.role.as_str()).collect();
    Err(format!(
        "{wanted} is not signed by any of {}: {}",
        roles.join(", "),
        reasons.join("; ")
    ))
}

const RELEASES: &str = "targets/releases";

fn signed_by<'a>(
    verified: &'a Verified,
    wanted: &Wanted,
    signer: &SignerSpec,
) -> Result<&'a Target, String> {
    let role = &signer.role;
    let targets = if role == "targets" {
        &verified.targets
    } else {
        match verified.delegations.get(role) {
            Some(result) => result.as_ref().map_err(Clone::clone)?,
            None if verified.delegated.contains(role) => {
                return Err(format!(
                    "{role}: no trust data published (snapshot.json lists no {role})"
                ))
            }
            None => return Err(format!("targets.json delegates no role {role}")),
        }
    };
    if let Some(pinned) = &signer.pinned {
        if !targets.signed_by.contains(pinned) {
            return Err(format!(
                "{role}.json is not signed by the pinned key of {role}"
            ));
        }
    }
    lookup(targets, wanted).ok_or_else(|| format!("{role} does not list {wanted}"))
}

fn lookup<'a>(role: &'a RoleTargets, wanted: &Wanted) -> Option<&'a Target> {
    let allowed = |name: &str| {
        role.paths
            .as_ref()
            .is_none_or(|paths| paths.iter().any(|p| name.starts_with(p.as_str())))
    };
    match wanted {
        Wanted::Tag(tag) => role.targets.get(tag).filter(|_| allowed(tag)),
        Wanted::Digest(digest) => role
            .targets
            .iter()
            .find(|(name, target)| &target.digest == digest && allowed(name))
            .map(|(_, target)| target),
    }
}

/// A parsed `{"signed": …, "signatures": […]}` file.
struct Envelope {
    file: String,
    signed: Value,
    signatures: Vec<(String, String, Vec<u8>)>,
}

/// Keys and threshold of one role.
struct RoleKeys {
    name: String,
    keyids: Vec<String>,
    threshold: usize,
}

impl Envelope {
    fn parse(file: &str, bytes: &[u8], expected_type: &str) -> Result<Envelope, String> {
        let doc: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("{file}: not JSON: {e}"))?;
        let signed = doc
            .get("signed")
            .cloned()
            .ok_or_else(|| format!("{file}: no signed object"))?;
        let found = signed["_type"].as_str().unwrap_or("");
        if found != expected_type {
            return Err(format!(
                "{file}: _type is {found:?}, expected {expected_type:?}"
            ));
        }
        let mut signatures = Vec::new();
        for sig in doc["signatures"].as_array().into_iter().flatten() {
            let field = |name: &str| {
                sig[name]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{file}: signature without {name}"))
            };
            let raw = B64
                .decode(field("sig")?)
                .map_err(|e| format!("{file}: signature is not base64: {e}"))?;
            signatures.push((field("keyid")?, field("method")?, raw));
        }
        Ok(Envelope {
            file: file.to_string(),
            signed,
            signatures,
        })
    }

    /// Counts valid signatures by distinct keys of `role`; returns the keys
    /// that signed once the threshold is met.
    fn check_signatures(
        &self,
        role: &RoleKeys,
        keys: &BTreeMap<String, TufKey>,
    ) -> Result<Vec<KeyMaterial>, String> {
        let file = &self.file;
        let message = canonical::to_vec(&self.signed).map_err(|e| format!("{file}: {e}"))?;
        let mut valid: Vec<KeyMaterial> = Vec::new();
        let mut bad = None;
        let mut foreign = None;
        for (keyid, method, sig) in &self.signatures {
            let key = match keys.get(keyid) {
                Some(key) if role.keyids.contains(keyid) => key,
                _ => {
                    foreign.get_or_insert(keyid.clone());
                    continue;
                }
            };
            if verify_signature(&key.material, method, &message, sig) {
                if !valid.contains(&key.material) {
                    valid.push(key.material.clone());
                }
            } else {
                bad.get_or_insert(keyid.clone());
            }
        }
        if valid.len() >= role.threshold {
            return Ok(valid);
        }
        let (count, threshold, name) = (valid.len(), role.threshold, &role.name);
        Err(match (bad, foreign) {
            (Some(keyid), _) => format!("{file}: signature by key {keyid} does not verify ({count} of {threshold} required valid)"),
            (None, Some(keyid)) if count == 0 => format!("{file}: not signed by a key of role {name} (signed by key {keyid})"),
            _ => format!("{file}: threshold not met: {count} valid signature(s) by keys of role {name}, {threshold} required"),
        })
    }

    fn check_expiry(&self, now: DateTime<Utc>) -> Result<(), String> {
        let file = &self.file;
        let text = self.signed["expires"]
            .as_str()
            .ok_or_else(|| format!("{file}: no expires"))?;
        let expires = DateTime::parse_from_rfc3339(text)
            .map_err(|e| format!("{file}: bad expires {text:?}: {e}"))?
            .with_timezone(&Utc);
        if now >= expires {
            return Err(format!(
                "{file} expired at {}",
                expires.format("%Y-%m-%dT%H:%M:%SZ")
            ));
        }
        Ok(())
    }

    fn version(&self) -> Result<u64, String> {
        self.signed["version"]
            .as_u64()
            .ok_or_else(|| format!("{}: no version", self.file))
    }
}

/// Rejects a version lower than the last one seen, and records the new one.
fn check_version(
    env: &Envelope,
    role: &str,
    seen: &Versions,
    versions: &mut Versions,
) -> Result<(), String> {
    let version = env.version()?;
    if let Some(&last) = seen.get(role) {
        if version < last {
            return Err(format!(
                "{}: version {version} is older than the last seen version {last} (rollback)",
                env.file
            ));
        }
    }
    let entry = versions.entry(role.to_string()).or_insert(version);
    *entry = (*entry).max(version);
    Ok(())
}

/// Checks `bytes` against a `{"hashes": {...}, "length": N}` entry of `parent`.
fn check_meta(file: &str, bytes: &[u8], entry: &Value, parent: &str) -> Result<(), String> {
    let length = entry["length"]
        .as_u64()
        .ok_or_else(|| format!("{parent}: entry for {file} has no length"))?;
    if usize::try_from(length).ok() != Some(bytes.len()) {
        return Err(format!(
            "{file}: length {} does not match {parent} ({length})",
            bytes.len()
        ));
    }
    let mut checked = false;
    for (name, hash) in entry["hashes"].as_object().into_iter().flatten() {
        let actual = match name.as_str() {
            "sha256" => Sha256::digest(bytes).to_vec(),
            "sha512" => Sha512::digest(bytes).to_vec(),
            _ => continue,
        };
        let expected = hash.as_str().and_then(|h| B64.decode(h).ok());
        if expected.as_deref() != Some(actual.as_slice()) {
            return Err(format!("{file}: hash does not match {parent}"));
        }
        checked = true;
    }
    if !checked {
        return Err(format!(
            "{parent}: entry for {file} has no sha256 or sha512 hash"
        ));
    }
    Ok(())
}

struct Root {
    envelope: Envelope,
    keys: BTreeMap<String, TufKey>,
    roles: BTreeMap<String, RoleKeys>,
}

impl Root {
    fn role(&self, name: &str) -> Result<&RoleKeys, String> {
        self.roles
            .get(name)
            .ok_or_else(|| format!("root.json: no role {name}"))
    }

    /// Parses keys and roles (no signature, anchor or expiry checks).
    fn parse(file: &str, bytes: &[u8]) -> Result<Root, String> {
        let envelope = Envelope::parse(file, bytes, "Root")?;
        let keys = parse_keys(file, &envelope.signed["keys"])?;
        let mut roles = BTreeMap::new();
        for name in ["root", "targets", "snapshot", "timestamp"] {
            let entry = envelope.signed["roles"]
                .get(name)
                .ok_or_else(|| format!("{file}: no role {name}"))?;
            roles.insert(name.to_string(), parse_role_keys(file, name, entry)?);
        }
        Ok(Root {
            envelope,
            keys,
            roles,
        })
    }
}

fn verify_root(
    gun: &str,
    bytes: &[u8],
    rotations: &[Vec<u8>],
    anchor: Anchor<'_>,
    now: DateTime<Utc>,
) -> Result<Root, String> {
    let root = Root::parse("root.json", bytes)?;
    let root_role = root.role("root")?;
    for keyid in &root_role.keyids {
        let Some(cert) = root.keys.get(keyid).and_then(|k| k.cert.as_ref()) else {
            continue;
        };
        if cert.common_name.as_deref() != Some(gun) {
            return Err(format!(
                "root.json: root certificate CN {:?} does not match GUN {gun:?}",
                cert.common_name.as_deref().unwrap_or("")
            ));
        }
        let secs = now.timestamp();
        if secs < cert.not_before || secs >= cert.not_after {
            return Err(format!(
                "root.json: root certificate of key {keyid} is not valid at {now}"
            ));
        }
    }
    let signed_by = root.envelope.check_signatures(root_role, &root.keys)?;
    match anchor {
        Anchor::Pinned(pins) => {
            if !signed_by.iter().any(|m| pins.contains(m)) {
                return Err("root.json: not signed by any pinned root key".to_string());
            }
        }
        Anchor::Trusted(trusted) if trusted != bytes => {
            let mut previous = Root::parse("trusted root.json", trusted)?;
            for step in rotations {
                let mut next = Root::parse("root.json (rotation)", step)?;
                next.envelope.file = format!("{}.root.json", next.envelope.version()?);
                next.envelope
                    .check_signatures(next.role("root")?, &next.keys)?;
                check_rotation(&previous, &next)?;
                previous = next;
            }
            check_rotation(&previous, &root)?;
        }
        Anchor::Trusted(_) | Anchor::FirstUse => {}
    }
    root.envelope.check_expiry(now)?;
    Ok(root)
}

/// `next` must be newer than `previous` and signed by a threshold of
/// `previous`'s root keys.
fn check_rotation(previous: &Root, next: &Root) -> Result<(), String> {
    let (old, new) = (previous.envelope.version()?, next.envelope.version()?);
    if new <= old {
        return Err(format!(
            "{}: version {new} does not follow the trusted root version {old}",
            next.envelope.file
        ));
    }
    next.envelope
        .check_signatures(previous.role("root")?, &previous.keys)
        .map(|_| ())
        .map_err(|e| {
            format!(
                "{} is not signed by the previous root (version {old}): {e}",
                next.envelope.file
            )
        })
}

fn parse_keys(file: &str, keys: &Value) -> Result<BTreeMap<String, TufKey>, String> {
    keys.as_object()
        .into_iter()
        .flatten()
        .map(|(id, entry)| {
            TufKey::parse(id, entry)
                .map(|key| (id.clone(), key))
                .map_err(|e| format!("{file}: {e}"))
        })
        .collect()
}

fn parse_role_keys(file: &str, name: &str, entry: &Value) -> Result<RoleKeys, String> {
    let keyids = entry["keyids"]
        .as_array()
        .ok_or_else(|| format!("{file}: role {name} has no keyids"))?
        .iter()
        .map(|k| {
            k.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{file}: role {name}: bad keyid"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let threshold = entry["threshold"]
        .as_u64()
        .filter(|t| *t >= 1)
        .and_then(|t| usize::try_from(t).ok())
        .ok_or_else(|| format!("{file}: role {name} has no threshold >= 1"))?;
    Ok(RoleKeys {
        name: name.to_string(),
        keyids,
        threshold,
    })
}

fn parse_delegation_roles(
    targets: &Envelope,
) -> Result<BTreeMap<String, (RoleKeys, Vec<String>)>, String> {
    let mut roles = BTreeMap::new();
    for entry in targets.signed["delegations"]["roles"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = entry["name"]
            .as_str()
            .ok_or("targets.json: delegation without name")?;
        let keys = parse_role_keys("targets.json", name, entry)?;
        // Only `paths` prefixes are honoured; `path_hash_prefixes` alone allows nothing.
        let paths = entry["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect();
        roles.insert(name.to_string(), (keys, paths));
    }
    Ok(roles)
}

fn parse_targets(env: &Envelope) -> Result<BTreeMap<String, Target>, String> {
    let mut out = BTreeMap::new();
    for (name, entry) in env.signed["targets"].as_object().into_iter().flatten() {
        let Some(hash) = entry["hashes"]["sha256"].as_str() else {
            continue;
        };
        let raw = B64
            .decode(hash)
            .ok()
            .filter(|raw| raw.len() == 32)
            .ok_or_else(|| format!("{}: target {name}: sha256 is not 32 base64 bytes", env.file))?;
        let length = entry["length"]
            .as_u64()
            .ok_or_else(|| format!("{}: target {name}: no length", env.file))?;
        out.insert(
            name.clone(),
            Target {
                digest: format!("sha256:{}", hex::encode(raw)),
                length,
            },
        );
    }
    Ok(out)
}

fn verify_delegation(
    name: &str,
    bytes: &[u8],
    snapshot_meta: &Value,
    roles: &BTreeMap<String, (RoleKeys, Vec<String>)>,
    keys: &BTreeMap<String, TufKey>,
    now: DateTime<Utc>,
) -> Result<(Envelope, RoleTargets), String> {
    let file = format!("{name}.json");
    let (role, paths) = roles
        .get(name)
        .ok_or_else(|| format!("targets.json delegates no role {name}"))?;
    let entry = snapshot_meta
        .get(name)
        .ok_or_else(|| format!("snapshot.json lists no {name}"))?;
    check_meta(&file, bytes, entry, "snapshot.json")?;
    let env = Envelope::parse(&file, bytes, "Targets")?;
    let signed_by = env.check_signatures(role, keys)?;
    env.check_expiry(now)?;
    let targets = parse_targets(&env)?;
    Ok((
        env,
        RoleTargets {
            targets,
            signed_by,
            paths: Some(paths.clone()),
        },
    ))
}
