//! What Notary verification remembers between calls, per GUN: the trusted
//! root.json (trust on first use, when no root keys are pinned) and the last
//! seen version of every role (rollback detection).
//!
//! Three places, each optional beyond memory:
//! * memory (always): what this process has seen;
//! * a directory (`--notary-cache-dir`): `<dir>/<escaped GUN>/root.json` and
//!   `versions.json`, so a restart is not a new first use;
//! * the replicas' shared store (`--cache redis://...`, HMAC-authenticated
//!   like the cache, [`crate::capabilities::shared`]), so trust on first use
//!   and rollback protection are per cluster, not per pod.
//!
//! States merge by taking, per role, the highest version anyone has seen, and
//! the root with the highest version: a version number is never lowered,
//! whatever order replicas write in. Two replicas updating a GUN at once are
//! serialized by Redis (`WATCH`/`EXEC`, retried on conflict), so neither
//! overwrites the other's higher versions. A shared store that is down or
//! holds a forged state only leaves each replica with its own (memory and
//! directory) protection; it never lowers what a replica has seen.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::tuf::Versions;
use crate::capabilities::shared::Shared;

/// Shared-store namespace of Notary trust states.
const KIND: &str = "notary";

/// Trust state of one GUN.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GunState {
    /// The root.json bytes trusted last time.
    pub root: Option<Vec<u8>>,
    pub versions: Versions,
}

/// The shared store's form of a [`GunState`].
#[derive(Serialize, Deserialize)]
struct Stored {
    root: Option<String>,
    versions: Versions,
}

impl GunState {
    /// Per role the higher version; the root with the higher `version`
    /// (ours on a tie). Roots here were verified by whoever stored them.
    fn merge(&self, other: &GunState) -> GunState {
        let mut versions = self.versions.clone();
        for (role, version) in &other.versions {
            let seen = versions.entry(role.clone()).or_insert(*version);
            *seen = (*seen).max(*version);
        }
        let root = match (&self.root, &other.root) {
            (Some(ours), Some(theirs)) if root_version(theirs) > root_version(ours) => {
                Some(theirs.clone())
            }
            (None, theirs) => theirs.clone(),
            (ours, _) => ours.clone(),
        };
        GunState { root, versions }
    }

    fn encode(&self) -> Vec<u8> {
        let stored = Stored {
            root: self
                .root
                .as_ref()
                .map(|r| String::from_utf8_lossy(r).into_owned()),
            versions: self.versions.clone(),
        };
        serde_json::to_vec(&stored).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Option<GunState> {
        let stored: Stored = serde_json::from_slice(bytes).ok()?;
        Some(GunState {
            root: stored.root.map(String::into_bytes),
            versions: stored.versions,
        })
    }
}

/// `signed.version` of a root.json (0 when unreadable).
fn root_version(root: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(root)
        .ok()
        .and_then(|doc| doc["signed"]["version"].as_u64())
        .unwrap_or(0)
}

pub struct TrustStore {
    dir: Option<PathBuf>,
    memory: Mutex<HashMap<String, GunState>>,
    shared: Option<Arc<Shared>>,
}

impl TrustStore {
    pub fn new(dir: Option<PathBuf>, shared: Option<Arc<Shared>>) -> TrustStore {
        TrustStore {
            dir,
            memory: Mutex::new(HashMap::new()),
            shared,
        }
    }

    /// The state of `gun`: memory (else the directory), merged with the
    /// shared store's.
    pub async fn load(&self, gun: &str) -> Result<GunState, String> {
        let local = self.local(gun)?;
        let Some(shared) = &self.shared else {
            return Ok(local);
        };
        let Some(remote) = shared
            .get(KIND, gun.as_bytes())
            .await
            .and_then(|p| GunState::decode(&p))
        else {
            return Ok(local);
        };
        Ok(self.remember(gun, &remote))
    }

    /// Remembers `root` as trusted for `gun` and raises the seen versions,
    /// everywhere; writes nothing when `before` (what [`TrustStore::load`]
    /// gave) already says it all.
    pub async fn save(
        &self,
        gun: &str,
        before: &GunState,
        root: &[u8],
        versions: &Versions,
    ) -> Result<(), String> {
        let verified = GunState {
            root: Some(root.to_vec()),
            versions: versions.clone(),
        };
        let state = self.remember(gun, &before.merge(&verified));
        if state == *before {
            return Ok(());
        }
        if let Some(dir) = self.gun_dir(gun) {
            let versions = serde_json::to_vec_pretty(&state.versions)
                .map_err(|e| format!("trust cache: {e}"))?;
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("trust cache {}: {e}", dir.display()))?;
            if let Some(root) = &state.root {
                write_atomic(&dir.join("root.json"), root)?;
            }
            write_atomic(&dir.join("versions.json"), &versions)?;
        }
        if let Some(shared) = &self.shared {
            let merged = shared
                .update(KIND, gun.as_bytes(), |current| {
                    let current = current.and_then(GunState::decode).unwrap_or_default();
                    let merged = current.merge(&state);
                    (merged != current).then(|| merged.encode())
                })
                .await;
            if let Some(merged) = merged.as_deref().and_then(GunState::decode) {
                self.remember(gun, &merged);
            }
        }
        Ok(())
    }

    /// Merges `state` into memory; returns the result.
    fn remember(&self, gun: &str, state: &GunState) -> GunState {
        let mut memory = lock(&self.memory);
        let entry = memory.entry(gun.to_string()).or_default();
        *entry = entry.merge(state);
        entry.clone()
    }

    /// Memory, else the directory.
    fn local(&self, gun: &str) -> Result<GunState, String> {
        if let Some(state) = lock(&self.memory).get(gun) {
            return Ok(state.clone());
        }
        let Some(dir) = self.gun_dir(gun) else {
            return Ok(GunState::default());
        };
        let root = read_optional(&dir.join("root.json"))?;
        let versions = match read_optional(&dir.join("versions.json"))? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("trust cache {}: {e}", dir.join("versions.json").display()))?,
            None => Versions::new(),
        };
        Ok(self.remember(gun, &GunState { root, versions }))
    }

    fn gun_dir(&self, gun: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|dir| dir.join(escape(gun)))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    crate::capabilities::lock(m)
}

/// File-name-safe, reversible form of a GUN (`127.0.0.1:5000/a` ->
/// `127.0.0.1%3A5000%2Fa`).
fn escape(gun: &str) -> String {
    gun.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, String> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("trust cache {}: {e}", path.display())),
    }
}

/// Writes through a temporary file unique to this write (concurrent
/// verifications of one GUN in one process must not share it), then renames.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("trust cache {}: {e}", path.display())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn escapes_guns_into_single_path_components() {
        assert_eq!(
            escape("127.0.0.1:5000/demo/alpine"),
            "127.0.0.1%3A5000%2Fdemo%2Falpine"
        );
        assert_eq!(escape("../x"), "..%2Fx");
    }

    #[test]
    fn persists_root_and_only_raises_versions() {
        let dir = tempfile::tempdir().unwrap();
        let store = TrustStore::new(Some(dir.path().to_path_buf()), None);
        let gun = "127.0.0.1:5000/demo/alpine";
        let root = |v: u64| format!(r#"{{"signed":{{"version":{v}}}}}"#).into_bytes();
        let before = block_on(store.load(gun)).unwrap();
        assert_eq!(before, GunState::default());
        let v5 = Versions::from([("timestamp".to_string(), 5)]);
        block_on(store.save(gun, &before, &root(2), &v5)).unwrap();
        // An older root or a lower version (a stale `before`, a concurrent
        // writer) never replaces what was seen.
        let v3 = Versions::from([("timestamp".to_string(), 3), ("targets".to_string(), 1)]);
        block_on(store.save(gun, &before, &root(1), &v3)).unwrap();
        let reopened =
            block_on(TrustStore::new(Some(dir.path().to_path_buf()), None).load(gun)).unwrap();
        assert_eq!(reopened.root, Some(root(2)));
        assert_eq!(reopened.versions["timestamp"], 5);
        assert_eq!(reopened.versions["targets"], 1);
    }

    #[test]
    fn memory_only_store_forgets_on_restart() {
        let store = TrustStore::new(None, None);
        block_on(store.save("g", &GunState::default(), b"root", &Versions::new())).unwrap();
        assert!(block_on(store.load("g")).unwrap().root.is_some());
        assert!(block_on(TrustStore::new(None, None).load("g"))
            .unwrap()
            .root
            .is_none());
    }
}
