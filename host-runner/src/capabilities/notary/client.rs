//! Fetching a GUN's TUF files from a notary server
//! (`GET <server>/v2/<gun>/_trust/tuf/<role>.json`).
//!
//! Like the notary client, it reads timestamp.json first and then every
//! other file by the sha256 its parent names (`<role>.<hex>.json`), so a
//! repository updated between two requests cannot mix versions. Files are
//! kept in memory by (GUN, role, sha256): when timestamp.json is unchanged
//! a call costs one request. Nothing here is trusted: the hashes are read
//! from unverified files only to choose what to fetch, and the pure core
//! (`tuf`) checks everything afterwards.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::tuf::RepoFiles;

/// Largest metadata file accepted (notary-server's own limit is far lower for
/// most roles; this only bounds memory).
const MAX_FILE: usize = 16 * 1024 * 1024;

/// (GUN, role) -> (sha256 hex, bytes).
/// Root rotations followed in one call (each costs a request).
const MAX_ROTATIONS: u64 = 64;

type FileCache = HashMap<(String, String), (String, Arc<Vec<u8>>)>;

pub struct Fetcher {
    timeout: Duration,
    /// One HTTP client per CA bundle (building one loads the trust roots).
    clients: Mutex<HashMap<Option<String>, reqwest::Client>>,
    /// Last file seen per (GUN, role): (sha256 hex, bytes).
    files: Mutex<FileCache>,
}

/// One repository on one server.
struct Repo<'a> {
    client: reqwest::Client,
    server: &'a str,
    base: String,
    gun: &'a str,
}

impl Fetcher {
    pub fn new(timeout: Duration) -> Fetcher {
        Fetcher {
            timeout,
            clients: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
        }
    }

    /// Fetches root, timestamp, snapshot, targets, those of `roles` that
    /// snapshot.json lists, and the root versions between `trusted_root`
    /// and the current one.
    pub async fn fetch(
        &self,
        server: &str,
        gun: &str,
        ca_cert: Option<&str>,
        roles: &[String],
        trusted_root: Option<&[u8]>,
    ) -> Result<RepoFiles, String> {
        let server = server.trim_end_matches('/');
        let repo = Repo {
            client: self.client(ca_cert)?,
            server,
            base: format!("{server}/v2/{gun}/_trust/tuf"),
            gun,
        };
        let timestamp = self.get(&repo, "timestamp").await?;
        let snapshot = self
            .get_pinned(&repo, "snapshot", &unverified_meta(&timestamp))
            .await?;
        let meta = unverified_meta(&snapshot);
        let root = self.get_pinned(&repo, "root", &meta).await?;
        let targets = self.get_pinned(&repo, "targets", &meta).await?;
        let mut delegations = std::collections::BTreeMap::new();
        for role in roles {
            if meta.get(role).is_some() {
                delegations.insert(
                    role.clone(),
                    self.get_pinned(&repo, role, &meta).await?.to_vec(),
                );
            }
        }
        let root_rotations = self.rotations(&repo, trusted_root, &root).await?;
        Ok(RepoFiles {
            root_rotations,
            root: root.to_vec(),
            timestamp: timestamp.to_vec(),
            snapshot: snapshot.to_vec(),
            targets: targets.to_vec(),
            delegations,
        })
    }

    /// `<v>.root.json` for every version strictly between the trusted root
    /// and `current` (unverified versions; the core checks the chain).
    async fn rotations(
        &self,
        repo: &Repo<'_>,
        trusted: Option<&[u8]>,
        current: &[u8],
    ) -> Result<Vec<Vec<u8>>, String> {
        let version = |bytes: &[u8]| {
            serde_json::from_slice::<Value>(bytes)
                .ok()
                .and_then(|doc| doc["signed"]["version"].as_u64())
        };
        let (Some(from), Some(to)) = (trusted.and_then(version), version(current)) else {
            return Ok(Vec::new());
        };
        if to <= from.saturating_add(1) {
            return Ok(Vec::new());
        }
        if to - from > MAX_ROTATIONS {
            return Err(format!(
                "root.json: version {to} is {} rotations past the trusted version {from}; at most {MAX_ROTATIONS} are followed",
                to - from
            ));
        }
        let mut roots = Vec::new();
        for v in from + 1..to {
            roots.push(self.get(repo, &format!("{v}.root")).await?.to_vec());
        }
        Ok(roots)
    }

    fn client(&self, ca_cert: Option<&str>) -> Result<reqwest::Client, String> {
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| "notary client lock poisoned".to_string())?;
        let key = ca_cert.map(str::to_string);
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let mut builder = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout);
        if let Some(pem) = ca_cert {
            // The CA given for a notary server is the only one trusted for it.
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| format!("ca_cert: {e}"))?;
            if certs.is_empty() {
                return Err("ca_cert: no PEM certificate".to_string());
            }
            builder = builder.tls_certs_only(certs);
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot build HTTP client: {}", chain(&e)))?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// Fetches `role` by the sha256 `meta` names for it, from memory when
    /// already seen; by name when `meta` names none.
    async fn get_pinned(
        &self,
        repo: &Repo<'_>,
        role: &str,
        meta: &Value,
    ) -> Result<Arc<Vec<u8>>, String> {
        let Some(hex) = expected_sha256(meta, role) else {
            return self.get(repo, role).await;
        };
        let key = (repo.gun.to_string(), role.to_string());
        if let Some((cached_hex, bytes)) = self.lock_files()?.get(&key) {
            if *cached_hex == hex {
                return Ok(bytes.clone());
            }
        }
        let bytes = self.get(repo, &format!("{role}.{hex}")).await?;
        if hex::encode(Sha256::digest(bytes.as_slice())) == hex {
            self.lock_files()?.insert(key, (hex, bytes.clone()));
        }
        Ok(bytes)
    }

    async fn get(&self, repo: &Repo<'_>, name: &str) -> Result<Arc<Vec<u8>>, String> {
        let url = format!("{}/{name}.json", repo.base);
        let file = format!("{name}.json");
        let server = repo.server;
        let response = repo.client.get(&url).send().await.map_err(|e| {
            if e.is_timeout() {
                format!(
                    "notary server {server} unreachable ({file}): timed out after {:?}",
                    self.timeout
                )
            } else {
                format!("notary server {server} unreachable ({file}): {}", chain(&e))
            }
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(format!(
                "{file}: not found on {server} (404): no trust data for {}",
                repo.gun
            ));
        }
        if !status.is_success() {
            return Err(format!("{file}: HTTP {status} from {server}"));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_FILE as u64)
        {
            return Err(format!("{file}: larger than {MAX_FILE} bytes"));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("{file}: reading the response from {server}: {}", chain(&e)))?;
        if bytes.len() > MAX_FILE {
            return Err(format!("{file}: larger than {MAX_FILE} bytes"));
        }
        Ok(Arc::new(bytes.to_vec()))
    }

    fn lock_files(&self) -> Result<std::sync::MutexGuard<'_, FileCache>, String> {
        self.files
            .lock()
            .map_err(|_| "notary file cache lock poisoned".to_string())
    }
}

/// `signed.meta` of a file not verified yet (`Null` when unreadable).
fn unverified_meta(bytes: &[u8]) -> Value {
    serde_json::from_slice::<Value>(bytes)
        .map(|doc| doc["signed"]["meta"].clone())
        .unwrap_or(Value::Null)
}

/// Hex sha256 that a meta map names for `role`.
fn expected_sha256(meta: &Value, role: &str) -> Option<String> {
    let b64 = meta.get(role)?["hashes"]["sha256"].as_str()?;
    B64.decode(b64)
        .ok()
        .filter(|raw| raw.len() == 32)
        .map(hex::encode)
}

/// An error with its causes (reqwest's own message omits them).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_expected_hashes_from_meta() {
        let snapshot = include_bytes!("../../../tests/data/notary-example/snapshot.json");
        let meta = unverified_meta(snapshot);
        assert_eq!(
            expected_sha256(&meta, "targets/releases").unwrap(),
            hex::encode(Sha256::digest(include_bytes!(
                "../../../tests/data/notary-example/targets/releases.json"
            )))
        );
        assert_eq!(expected_sha256(&meta, "targets/bob"), None);
        assert_eq!(expected_sha256(&unverified_meta(b"not json"), "root"), None);
    }
}
