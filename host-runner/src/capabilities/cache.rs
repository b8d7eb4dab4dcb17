//! TTL cache of successful capability answers, like policy-server's 60 s
//! cache of sigstore verifications and OCI digests/manifests/configs.
//!
//! Only successes are cached (a registry hiccup must not stick for a
//! minute), and only requests whose answer depends on registry content, not
//! on time (oci verify/digest/manifest/config and notary). The
//! `imagegate/v1/verify_*` answers are cached only when they verified
//! something ("nothing verified" is an answer, but not a success), and no
//! longer than the earliest `valid_until` of what they verified.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use imagegate_policy::wire::ImageVerifyResponse;

use super::{lock, Request};

/// Default time-to-live, as policy-server.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// Hit/miss counters, shared with `imagegate bench`.
#[derive(Debug, Default)]
pub struct CacheStats {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl CacheStats {
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

pub struct CapabilityCache {
    ttl: Duration,
    /// Each answer with the instant it expires.
    entries: Mutex<HashMap<Request, (Instant, Vec<u8>)>>,
    stats: Arc<CacheStats>,
}

impl CapabilityCache {
    pub fn new(ttl: Duration) -> Self {
        CapabilityCache {
            ttl,
            entries: Mutex::default(),
            stats: Arc::default(),
        }
    }

    pub fn stats(&self) -> Arc<CacheStats> {
        self.stats.clone()
    }

    /// Whether answers to `request` are cached at all.
    fn cacheable(request: &Request) -> bool {
        use Request::*;
        matches!(
            request,
            OciManifestDigest { .. }
                | OciManifest { .. }
                | OciManifestAndConfig { .. }
                | Sigstore(_)
                | NotaryVerify(_)
                | VerifySignature(_)
                | VerifyAttestation(_)
                | VerifyNotation(_)
        )
    }

    /// How long `answer` may be kept: the TTL, less for verifications that
    /// expire sooner; `None` for answers that verified nothing.
    fn lifetime(&self, request: &Request, answer: &[u8]) -> Option<Duration> {
        if !matches!(
            request,
            Request::VerifySignature(_)
                | Request::VerifyAttestation(_)
                | Request::VerifyNotation(_)
        ) {
            return Some(self.ttl);
        }
        let answer: ImageVerifyResponse = serde_json::from_slice(answer).ok()?;
        if answer.verified.is_empty() {
            return None;
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs() as i64;
        let earliest = answer.verified.iter().filter_map(|v| v.valid_until).min();
        match earliest {
            Some(until) if until <= now => None,
            Some(until) => Some(self.ttl.min(Duration::from_secs((until - now) as u64))),
            None => Some(self.ttl),
        }
    }

    /// Answers from the cache, or computes with `fetch` and remembers a
    /// success. The lock is not held while fetching: concurrent evaluations
    /// do not wait on each other's registry round trips.
    pub fn get_or_fetch(
        &self,
        request: &Request,
        fetch: impl FnOnce() -> Result<Vec<u8>, String>,
    ) -> Result<Vec<u8>, String> {
        if !Self::cacheable(request) {
            return fetch();
        }
        {
            let mut entries = lock(&self.entries);
            let now = Instant::now();
            entries.retain(|_, (until, _)| now < *until);
            if let Some((_, bytes)) = entries.get(request) {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(bytes.clone());
            }
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let answer = fetch()?;
        if let Some(lifetime) = self.lifetime(request, &answer) {
            lock(&self.entries)
                .insert(request.clone(), (Instant::now() + lifetime, answer.clone()));
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(image: &str) -> Request {
        Request::OciManifestDigest {
            image: image.into(),
        }
    }

    #[test]
    fn caches_successes_only() {
        let c = CapabilityCache::new(DEFAULT_TTL);
        let mut calls = 0;
        for _ in 0..3 {
            let r = c.get_or_fetch(&digest("a"), || {
                calls += 1;
                Ok(b"x".to_vec())
            });
            assert_eq!(r, Ok(b"x".to_vec()));
        }
        assert_eq!(calls, 1);
        assert_eq!((c.stats().hits(), c.stats().misses()), (2, 1));
        for _ in 0..2 {
            let r = c.get_or_fetch(&digest("b"), || {
                calls += 1;
                Err("down".into())
            });
            assert_eq!(r, Err("down".to_string()));
        }
        assert_eq!(calls, 3);
    }

    #[test]
    fn expired_entries_are_refetched() {
        let c = CapabilityCache::new(Duration::ZERO);
        let mut calls = 0;
        for _ in 0..2 {
            c.get_or_fetch(&digest("a"), || {
                calls += 1;
                Ok(vec![])
            })
            .unwrap();
        }
        assert_eq!(calls, 2);
    }

    #[test]
    fn verifications_are_cached_only_when_they_verified_and_not_past_validity() {
        use imagegate_policy::wire::{SignatureVerifyRequest, Verified};
        let c = CapabilityCache::new(DEFAULT_TTL);
        let request = |image: &str| {
            Request::VerifySignature(SignatureVerifyRequest {
                image: image.into(),
                platforms: Default::default(),
                identities: vec![],
                annotations: None,
            })
        };
        let answer = |verified: Vec<Verified>| {
            serde_json::to_vec(&ImageVerifyResponse {
                digest: "sha256:1".into(),
                verified,
                trace: vec![],
            })
            .unwrap()
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let cases = [
            ("nothing", answer(vec![]), None),
            (
                "expired",
                answer(vec![Verified {
                    valid_until: Some(now - 1),
                    ..Verified::default()
                }]),
                None,
            ),
            (
                "soon",
                answer(vec![Verified {
                    valid_until: Some(now + 10),
                    ..Verified::default()
                }]),
                Some(10),
            ),
            ("plain", answer(vec![Verified::default()]), Some(60)),
        ];
        for (image, bytes, lifetime) in cases {
            let got = c
                .lifetime(&request(image), &bytes)
                .map(|d| d.as_secs().div_ceil(10) * 10);
            assert_eq!(got, lifetime, "{image}");
        }
        let mut calls = 0;
        for _ in 0..2 {
            c.get_or_fetch(&request("nothing"), || {
                calls += 1;
                Ok(answer(vec![]))
            })
            .unwrap();
        }
        assert_eq!(calls, 2, "nothing verified: never cached");
    }

    #[test]
    fn uncacheable_requests_bypass_the_counters() {
        let c = CapabilityCache::new(DEFAULT_TTL);
        let dns = Request::DNSLookupHost { host: "h".into() };
        c.get_or_fetch(&dns, || Ok(vec![])).unwrap();
        c.get_or_fetch(&dns, || Ok(vec![])).unwrap();
        assert_eq!((c.stats().hits(), c.stats().misses()), (0, 0));
    }
}
