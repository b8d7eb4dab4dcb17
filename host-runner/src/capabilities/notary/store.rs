//! What Notary verification remembers between calls, per GUN: the trusted
//! root.json (trust on first use, when no root keys are pinned) and the last
//! seen version of every role (rollback detection).
//!
//! With a cache directory the state lives in
//! `<dir>/<escaped GUN>/root.json` and `versions.json` and survives restarts;
//! without one it lives in memory only, so TOFU then trusts whatever root the
//! server presents first after each start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::tuf::Versions;

/// Trust state of one GUN.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GunState {
    /// The root.json bytes trusted last time.
    pub root: Option<Vec<u8>>,
    pub versions: Versions,
}

pub struct TrustStore {
    dir: Option<PathBuf>,
    memory: Mutex<HashMap<String, GunState>>,
}

impl TrustStore {
    pub fn new(dir: Option<PathBuf>) -> TrustStore {
        TrustStore {
            dir,
            memory: Mutex::new(HashMap::new()),
        }
    }

    /// The state of `gun`: from memory, else from the cache directory.
    pub fn load(&self, gun: &str) -> Result<GunState, String> {
        if let Some(state) = self.lock()?.get(gun) {
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
        let state = GunState { root, versions };
        self.lock()?.insert(gun.to_string(), state.clone());
        Ok(state)
    }

    /// Remembers `root` as trusted for `gun` and raises the seen versions.
    pub fn save(&self, gun: &str, root: &[u8], versions: &Versions) -> Result<(), String> {
        let state = {
            let mut memory = self.lock()?;
            let state = memory.entry(gun.to_string()).or_default();
            state.root = Some(root.to_vec());
            for (role, version) in versions {
                let seen = state.versions.entry(role.clone()).or_insert(*version);
                *seen = (*seen).max(*version);
            }
            state.clone()
        };
        let Some(dir) = self.gun_dir(gun) else {
            return Ok(());
        };
        let versions =
            serde_json::to_vec_pretty(&state.versions).map_err(|e| format!("trust cache: {e}"))?;
        std::fs::create_dir_all(&dir).map_err(|e| format!("trust cache {}: {e}", dir.display()))?;
        write_atomic(&dir.join("root.json"), root)?;
        write_atomic(&dir.join("versions.json"), &versions)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, GunState>>, String> {
        self.memory
            .lock()
            .map_err(|_| "trust cache lock poisoned".to_string())
    }

    fn gun_dir(&self, gun: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|dir| dir.join(escape(gun)))
    }
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

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("trust cache {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let store = TrustStore::new(Some(dir.path().to_path_buf()));
        let gun = "127.0.0.1:5000/demo/alpine";
        assert_eq!(store.load(gun).unwrap(), GunState::default());
        store
            .save(
                gun,
                b"root-v1",
                &Versions::from([("timestamp".to_string(), 5)]),
            )
            .unwrap();
        store
            .save(
                gun,
                b"root-v2",
                &Versions::from([("timestamp".to_string(), 3)]),
            )
            .unwrap();
        let reopened = TrustStore::new(Some(dir.path().to_path_buf()))
            .load(gun)
            .unwrap();
        assert_eq!(reopened.root.as_deref(), Some(&b"root-v2"[..]));
        assert_eq!(reopened.versions["timestamp"], 5);
    }

    #[test]
    fn memory_only_store_forgets_on_restart() {
        let store = TrustStore::new(None);
        store.save("g", b"root", &Versions::new()).unwrap();
        assert!(store.load("g").unwrap().root.is_some());
        assert!(TrustStore::new(None).load("g").unwrap().root.is_none());
    }
}
