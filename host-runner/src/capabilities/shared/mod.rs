//! State shared by the replicas of `imagegate serve` through Redis: the
//! verification cache ([`super::cache`]) and the Notary trust state
//! ([`super::notary`]). Everything Redis lives in this module.
//!
//! Security model (also in the README's threat model): Redis is *not*
//! trusted. Every value is `HMAC-SHA256(key file, redis key || payload) ||
//! payload`, and the Redis key itself is an HMAC of what it stands for, so
//! whoever can read or write Redis (without the key file) can delete entries
//! or make the replicas miss (more live checks, slower answers), but cannot
//! forge an entry, move one to another key, or read which images were
//! checked. A value whose MAC does not verify is a miss and counts in
//! `imagegate_shared_cache_bad_mac_total`. Payloads carry their own expiry
//! (see the cache), so an old entry written back after it expired is refused.
//!
//! Availability: every exchange is bounded (`--cache-timeout`). When Redis
//! fails or is slow, callers fall back (local cache and live checks, local
//! Notary state): the failure is logged once per outage, counted in
//! `/metrics`, and Redis is not asked again for [`RETRY_AFTER`], so an
//! unreachable Redis costs one bounded wait per second, not one per request.
//! A cache failure never admits anything: it only ever turns into a miss.

pub mod redis;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

use self::redis::{Redis, RedisConfig, Reply};
use super::cache::CacheStats;
use super::lock;

/// How long Redis is left alone after a failure.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Default bound of one exchange with Redis.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);
/// Shortest HMAC key accepted (bytes).
const MIN_KEY: usize = 32;
/// `WATCH` conflicts retried by [`Shared::update`].
const UPDATE_ATTEMPTS: usize = 16;

type HmacSha256 = Hmac<Sha256>;

/// How to reach the shared store.
#[derive(Debug, Clone)]
pub struct SharedConfig {
    pub redis: RedisConfig,
    /// The HMAC key (the content of `--cache-hmac-key-file`).
    pub hmac_key: Vec<u8>,
    /// Bound of one exchange (`--cache-timeout`).
    pub timeout: Duration,
}

impl SharedConfig {
    /// Reads the key file: at least 32 bytes once surrounding whitespace
    /// (a trailing newline) is removed.
    pub fn read_key(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
        let bytes = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("cannot read HMAC key file {}: {e}", path.display()))?;
        let key = bytes.trim_ascii().to_vec();
        if key.len() < MIN_KEY {
            anyhow::bail!(
                "HMAC key file {} holds {} bytes; use at least {MIN_KEY} random bytes (e.g. `head -c 32 /dev/urandom | base64 > {}`)",
                path.display(),
                key.len(),
                path.display()
            );
        }
        Ok(key)
    }
}

/// The authenticated store. Cheap to share (`Arc`).
pub struct Shared {
    redis: Redis,
    key: Vec<u8>,
    timeout: Duration,
    stats: Arc<CacheStats>,
    down: AtomicBool,
    retry_at: Mutex<Option<Instant>>,
}

impl Shared {
    pub fn new(config: SharedConfig, stats: Arc<CacheStats>) -> anyhow::Result<Shared> {
        if config.hmac_key.len() < MIN_KEY {
            anyhow::bail!("the shared cache needs an HMAC key of at least {MIN_KEY} bytes");
        }
        Ok(Shared {
            redis: Redis::new(config.redis)?,
            key: config.hmac_key,
            timeout: config.timeout,
            stats,
            down: AtomicBool::new(false),
            retry_at: Mutex::new(None),
        })
    }

    /// The Redis key standing for (`kind`, `key`): `imagegate:v1:<kind>:<hmac>`.
    fn redis_key(&self, kind: &str, key: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(kind.as_bytes());
        mac.update(&[0]);
        mac.update(key);
        format!(
            "imagegate:v1:{kind}:{}",
            hex::encode(mac.finalize().into_bytes())
        )
    }

    fn mac(&self) -> HmacSha256 {
        // Any key length is valid for HMAC; the length was checked in `new`.
        HmacSha256::new_from_slice(&self.key).expect("HMAC accepts every key length")
    }

    fn seal(&self, redis_key: &str, payload: &[u8]) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(redis_key.as_bytes());
        mac.update(payload);
        let mut value = mac.finalize().into_bytes().to_vec();
        value.extend_from_slice(payload);
        value
    }

    /// The payload of a value, when its MAC verifies.
    fn open(&self, redis_key: &str, value: &[u8]) -> Option<Vec<u8>> {
        if value.len() >= 32 {
            let (tag, payload) = value.split_at(32);
            let mut mac = self.mac();
            mac.update(redis_key.as_bytes());
            mac.update(payload);
            if mac.verify_slice(tag).is_ok() {
                return Some(payload.to_vec());
            }
        }
        CacheStats::bump(&self.stats.shared_bad_mac);
        None
    }

    /// Runs one bounded exchange; `None` when Redis is down, slow or
    /// refused, after logging a new outage.
    async fn exchange<T, F>(&self, what: &str, exchange: F) -> Option<T>
    where
        F: std::future::Future<Output = Result<T, String>>,
    {
        if lock(&self.retry_at).is_some_and(|at| Instant::now() < at) {
            CacheStats::bump(&self.stats.shared_skipped);
            return None;
        }
        let result = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} ms", self.timeout.as_millis())),
        };
        match result {
            Ok(value) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    eprintln!(
                        "imagegate: shared store {} is back",
                        self.redis.config().display()
                    );
                }
                Some(value)
            }
            Err(e) => {
                CacheStats::bump(&self.stats.shared_errors);
                *lock(&self.retry_at) = Some(Instant::now() + RETRY_AFTER);
                if !self.down.swap(true, Ordering::Relaxed) {
                    CacheStats::bump(&self.stats.shared_outages);
                    eprintln!(
                        "imagegate: shared store {} unavailable ({what}: {e}); using the local cache, local Notary state and live checks until it answers again",
                        self.redis.config().display()
                    );
                }
                None
            }
        }
    }

    /// The authenticated payload stored for (`kind`, `key`), if any.
    pub async fn get(&self, kind: &str, key: &[u8]) -> Option<Vec<u8>> {
        let redis_key = self.redis_key(kind, key);
        let reply = self
            .exchange("GET", self.redis.command(&[b"GET", redis_key.as_bytes()]))
            .await?;
        match reply {
            Reply::Bulk(value) => self.open(&redis_key, &value),
            _ => None,
        }
    }

    /// Stores `payload` for (`kind`, `key`) for `ttl`.
    pub async fn set(&self, kind: &str, key: &[u8], payload: &[u8], ttl: Duration) {
        let redis_key = self.redis_key(kind, key);
        let value = self.seal(&redis_key, payload);
        let ttl = ttl.as_millis().max(1).to_string();
        let args: [&[u8]; 5] = [b"SET", redis_key.as_bytes(), &value, b"PX", ttl.as_bytes()];
        self.exchange("SET", self.redis.command(&args)).await;
    }

    /// Read-modify-write of (`kind`, `key`) without a lock: `merge` gets the
    /// current authenticated payload (`None` when absent or forged) and
    /// returns what to store, or `None` when nothing changes. Concurrent
    /// writers are serialized by Redis (`WATCH`/`MULTI`/`EXEC`: a write
    /// that raced another is retried on the new value), so a merge such as
    /// "maximum of each version" never loses an update. Returns the payload
    /// in Redis afterwards (`None` when Redis is unavailable).
    pub async fn update(
        &self,
        kind: &str,
        key: &[u8],
        merge: impl Fn(Option<&[u8]>) -> Option<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        let redis_key = self.redis_key(kind, key);
        let attempt = async {
            let mut session = self.redis.session().await?;
            for _ in 0..UPDATE_ATTEMPTS {
                session.command(&[b"WATCH", redis_key.as_bytes()]).await?;
                let current = match session.command(&[b"GET", redis_key.as_bytes()]).await? {
                    Reply::Bulk(value) => self.open(&redis_key, &value),
                    _ => None,
                };
                let Some(new) = merge(current.as_deref()) else {
                    session.command(&[b"UNWATCH"]).await?;
                    return Ok(current);
                };
                let value = self.seal(&redis_key, &new);
                session.command(&[b"MULTI"]).await?;
                session
                    .command(&[b"SET", redis_key.as_bytes(), &value])
                    .await?;
                if session.command(&[b"EXEC"]).await? != Reply::Nil {
                    return Ok(Some(new));
                }
            }
            Err(format!(
                "{kind}: {UPDATE_ATTEMPTS} concurrent updates in a row"
            ))
        };
        self.exchange("update", attempt).await.flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared::new(
            SharedConfig {
                redis: RedisConfig::parse("redis://127.0.0.1:1").unwrap(),
                hmac_key: vec![7; 32],
                timeout: DEFAULT_TIMEOUT,
            },
            Arc::default(),
        )
        .unwrap()
    }

    #[test]
    fn values_are_bound_to_their_key_and_the_hmac_key() {
        let s = shared();
        let (a, b) = (s.redis_key("cache", b"a"), s.redis_key("cache", b"b"));
        assert_ne!(a, b);
        assert!(a.starts_with("imagegate:v1:cache:"), "{a}");
        let value = s.seal(&a, b"payload");
        assert_eq!(s.open(&a, &value).as_deref(), Some(&b"payload"[..]));
        // Moved to another key, tampered, truncated, or sealed with another key.
        assert_eq!(s.open(&b, &value), None);
        let mut tampered = value.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(s.open(&a, &tampered), None);
        assert_eq!(s.open(&a, &value[..31]), None);
        let mut other = shared();
        other.key = vec![8; 32];
        assert_eq!(other.open(&a, &value), None);
        assert_eq!(s.stats.shared_bad_mac.load(Ordering::Relaxed), 3);
        assert_eq!(other.stats.shared_bad_mac.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn short_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "too short\n").unwrap();
        let e = SharedConfig::read_key(&path).unwrap_err().to_string();
        assert!(e.contains("at least 32"), "{e}");
        std::fs::write(&path, format!("{}\n", "k".repeat(32))).unwrap();
        assert_eq!(SharedConfig::read_key(&path).unwrap().len(), 32);
    }

    #[tokio::test]
    async fn an_unreachable_store_is_a_miss_counted_once_per_outage() {
        let s = shared();
        assert_eq!(s.get("cache", b"k").await, None);
        s.set("cache", b"k", b"v", Duration::from_secs(1)).await;
        assert_eq!(s.stats.shared_outages.load(Ordering::Relaxed), 1);
        assert_eq!(s.stats.shared_errors.load(Ordering::Relaxed), 1);
        // Not asked again right away.
        assert_eq!(s.stats.shared_skipped.load(Ordering::Relaxed), 1);
    }
}
