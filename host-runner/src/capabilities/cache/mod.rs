//! The verification cache: answers of the live backend kept per process and,
//! with `--cache redis://...`, shared by every replica ([`super::shared`]).
//!
//! Rules every cached capability follows (a new verifier plugs in by
//! returning [`Caching::Image`] from [`Request::caching`] and marking its
//! refusals [`Failure::definite`]; nothing here knows a signature format):
//!
//! * **Keys bind the digest.** A request about an image's content is keyed
//!   by the canonical JSON ([`super::canonical`]) of the whole request with
//!   the image rewritten to `registry/repository@digest`: every piece of
//!   verification material counts, the tag does not. A tag is first resolved
//!   to its current digest (one manifest HEAD, itself kept for
//!   `--digest-cache-ttl`, default 5 s), and the live check then runs on
//!   `repository:tag@digest`, so the answer, the key and the image verified
//!   are about the same bytes: a tag moved to another digest never hits an
//!   entry made for the old one. Notary answers are keyed by the request
//!   itself (Notary signs tags; its trust data, not the registry, maps them).
//! * **What is kept.** Successes for `--cache-ttl` (default 60 s, as
//!   policy-server), the `imagegate/v1/check_*` answers no longer than the
//!   earliest `valid_until` of what they verified, in both tiers (one that
//!   verified nothing is no success but a definite refusal); definite refusals ([`Failure::definite`]: no or
//!   non-matching signature, trust data that does not verify) only with
//!   `--negative-cache-ttl`, off by default; transport errors and timeouts
//!   never.
//! * **Shared entries are authenticated** (HMAC, see [`super::shared`]) and
//!   carry their own expiry; a bad MAC or an expired entry is a miss. A
//!   shared store that fails or is slow is a miss too: a cache failure
//!   never admits, it only costs a live check.
//! * **No lock across a round trip.** The maps are locked to look up and to
//!   insert, never while resolving, verifying or talking to Redis; two
//!   evaluations missing the same key at once both check live (the second
//!   insert wins), which is cheaper than making one wait on the other.

mod stats;
pub use stats::CacheStats;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use imagegate_policy::wire::{ImageVerifyResponse, ManifestDigestResponse};

use super::request::Caching;
use super::shared::{Shared, SharedConfig};
use super::{canonical, lock, Failure, Request};

/// Default time-to-live of successes, as policy-server.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// Default time a tag -> digest resolution is reused.
pub const DEFAULT_DIGEST_TTL: Duration = Duration::from_secs(5);

/// What the cache keeps and where.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub ttl: Duration,
    /// Definite refusals are kept this long; `None` = never.
    pub negative_ttl: Option<Duration>,
    /// Tag -> digest resolutions are kept this long; `None` = every cached
    /// verification costs one manifest HEAD.
    pub digest_ttl: Option<Duration>,
    /// The replicas' shared store (Redis); `None` = this process only.
    pub shared: Option<SharedConfig>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: DEFAULT_TTL,
            negative_ttl: None,
            digest_ttl: Some(DEFAULT_DIGEST_TTL),
            shared: None,
        }
    }
}

/// A kept outcome.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Answer(Vec<u8>),
    Refused(String),
}

impl Outcome {
    fn result(self) -> Result<Vec<u8>, Failure> {
        match self {
            Outcome::Answer(bytes) => Ok(bytes),
            Outcome::Refused(message) => Err(Failure::definite(message)),
        }
    }

    /// Shared payload: expiry (unix ms, big endian), kind, bytes.
    fn encode(&self, expires: SystemTime) -> Vec<u8> {
        let ms = expires
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let mut out = ms.to_be_bytes().to_vec();
        match self {
            Outcome::Answer(bytes) => {
                out.push(1);
                out.extend_from_slice(bytes);
            }
            Outcome::Refused(message) => {
                out.push(0);
                out.extend_from_slice(message.as_bytes());
            }
        }
        out
    }

    /// The outcome and what is left of its life; `None` when expired or
    /// malformed (an authenticated payload is never malformed, but costs
    /// nothing to check).
    fn decode(payload: &[u8], now: SystemTime) -> Option<(Outcome, Duration)> {
        let ms = u64::from_be_bytes(payload.get(..8)?.try_into().ok()?);
        let left = (UNIX_EPOCH + Duration::from_millis(ms))
            .duration_since(now)
            .ok()?;
        let body = payload.get(9..)?.to_vec();
        let outcome = match payload[8] {
            1 => Outcome::Answer(body),
            0 => Outcome::Refused(String::from_utf8(body).ok()?),
            _ => return None,
        };
        Some((outcome, left))
    }
}

pub struct CapabilityCache {
    config: CacheConfig,
    /// Canonical key -> (expiry, outcome).
    entries: Mutex<HashMap<Vec<u8>, (Instant, Outcome)>>,
    /// Image as the guest wrote it -> (expiry, `ManifestDigestResponse` JSON).
    digests: Mutex<HashMap<String, (Instant, Vec<u8>)>>,
    shared: Option<Arc<Shared>>,
    /// Where the shared store's exchanges run (callers are blocking threads).
    runtime: tokio::runtime::Handle,
    stats: Arc<CacheStats>,
}

/// Shared-store namespace of cache entries.
const KIND: &str = "cache";

impl CapabilityCache {
    pub fn new(config: CacheConfig, runtime: tokio::runtime::Handle) -> anyhow::Result<Self> {
        let stats = Arc::<CacheStats>::default();
        let shared = config
            .shared
            .clone()
            .map(|c| Shared::new(c, stats.clone()).map(Arc::new))
            .transpose()?;
        Ok(CapabilityCache {
            config,
            entries: Mutex::default(),
            digests: Mutex::default(),
            shared,
            runtime,
            stats,
        })
    }

    pub fn stats(&self) -> Arc<CacheStats> {
        self.stats.clone()
    }

    /// The shared store, for the Notary trust state.
    pub fn shared(&self) -> Option<Arc<Shared>> {
        self.shared.clone()
    }

    /// Answers `request` from the cache or with `live`, following the
    /// module's rules. `live` may be called twice: for the tag's digest and
    /// for the pinned request.
    pub fn answer(
        &self,
        request: &Request,
        live: &dyn Fn(&Request) -> Result<Vec<u8>, Failure>,
    ) -> Result<Vec<u8>, Failure> {
        match request.caching() {
            Caching::Never => live(request),
            Caching::Digest(image) => self.digest(image, || live(request)),
            Caching::Request => self.verdict(request, request_key(request)?, || live(request)),
            Caching::Image(image) => {
                let (pinned, key_image) = self.pin(image, live)?;
                let key = request_key(&request.with_image(key_image))?;
                self.verdict(request, key, || live(&request.with_image(pinned.clone())))
            }
        }
    }

    /// `image` pinned to its digest: (`repo:tag@digest` to check,
    /// `repo@digest` for the key). An image that has a digest keeps it.
    fn pin(
        &self,
        image: &str,
        live: &dyn Fn(&Request) -> Result<Vec<u8>, Failure>,
    ) -> Result<(String, String), Failure> {
        let reference: oci_client::Reference = image.parse().map_err(|e| {
            Failure::definite(format!("Cannot parse image reference {image:?}: {e}"))
        })?;
        let name = format!("{}/{}", reference.registry(), reference.repository());
        if let Some(digest) = reference.digest() {
            return Ok((image.to_string(), format!("{name}@{digest}")));
        }
        let lookup = Request::OciManifestDigest {
            image: image.to_string(),
        };
        let answer = self.digest(image, || live(&lookup))?;
        let digest = serde_json::from_slice::<ManifestDigestResponse>(&answer)
            .map_err(|e| format!("digest answer for {image}: {e}"))?
            .digest;
        let tag = reference.tag().unwrap_or("latest");
        Ok((format!("{name}:{tag}@{digest}"), format!("{name}@{digest}")))
    }

    /// The tag -> digest cache (successes only, `--digest-cache-ttl`).
    fn digest(
        &self,
        image: &str,
        live: impl FnOnce() -> Result<Vec<u8>, Failure>,
    ) -> Result<Vec<u8>, Failure> {
        let Some(ttl) = self.config.digest_ttl else {
            return live();
        };
        let now = Instant::now();
        {
            let mut digests = lock(&self.digests);
            digests.retain(|_, (expires, _)| *expires > now);
            if let Some((_, answer)) = digests.get(image) {
                CacheStats::bump(&self.stats.digest_hits);
                return Ok(answer.clone());
            }
        }
        CacheStats::bump(&self.stats.digest_misses);
        let answer = live()?;
        lock(&self.digests).insert(image.to_string(), (Instant::now() + ttl, answer.clone()));
        Ok(answer)
    }

    /// How long the answer to `request` may be kept: the TTL, less for
    /// verifications that expire sooner; an answer that verified nothing is
    /// a refusal (`--negative-cache-ttl`); `None`: not kept.
    fn lifetime(&self, request: &Request, answer: &[u8]) -> Option<Duration> {
        if !matches!(
            request,
            Request::VerifySignature(_)
                | Request::VerifyAttestation(_)
                | Request::VerifyNotation(_)
        ) {
            return Some(self.config.ttl);
        }
        let answer: ImageVerifyResponse = serde_json::from_slice(answer).ok()?;
        if answer.verified.is_empty() {
            return self.config.negative_ttl;
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs() as i64;
        match answer.verified.iter().filter_map(|v| v.valid_until).min() {
            Some(until) if until <= now => None,
            Some(until) => Some(
                self.config
                    .ttl
                    .min(Duration::from_secs((until - now) as u64)),
            ),
            None => Some(self.config.ttl),
        }
    }

    /// A verdict from the local map, else the shared store, else `live`.
    fn verdict(
        &self,
        request: &Request,
        key: Vec<u8>,
        live: impl FnOnce() -> Result<Vec<u8>, Failure>,
    ) -> Result<Vec<u8>, Failure> {
        let now = Instant::now();
        {
            let mut entries = lock(&self.entries);
            entries.retain(|_, (expires, _)| *expires > now);
            if let Some((_, outcome)) = entries.get(&key) {
                return self.hit(outcome.clone());
            }
        }
        if let Some(shared) = &self.shared {
            let found = self.runtime.block_on(shared.get(KIND, &key));
            if let Some((outcome, left)) =
                found.and_then(|p| Outcome::decode(&p, SystemTime::now()))
            {
                CacheStats::bump(&self.stats.shared_hits);
                lock(&self.entries).insert(key, (Instant::now() + left, outcome.clone()));
                return self.hit(outcome);
            }
        }
        CacheStats::bump(&self.stats.misses);
        let result = live();
        let (outcome, ttl) = match &result {
            Ok(answer) => match self.lifetime(request, answer) {
                Some(ttl) => (Outcome::Answer(answer.clone()), ttl),
                None => return result,
            },
            Err(f) if f.definite => match self.config.negative_ttl {
                Some(ttl) => (Outcome::Refused(f.message.clone()), ttl),
                None => return result,
            },
            Err(_) => return result,
        };
        if let Some(shared) = &self.shared {
            let payload = outcome.encode(SystemTime::now() + ttl);
            // Written in the background: the answer does not wait for Redis.
            let (shared, key) = (shared.clone(), key.clone());
            self.runtime
                .spawn(async move { shared.set(KIND, &key, &payload, ttl).await });
        }
        lock(&self.entries).insert(key, (Instant::now() + ttl, outcome));
        result
    }

    fn hit(&self, outcome: Outcome) -> Result<Vec<u8>, Failure> {
        CacheStats::bump(&self.stats.hits);
        if matches!(outcome, Outcome::Refused(_)) {
            CacheStats::bump(&self.stats.negative_hits);
        }
        outcome.result()
    }
}

/// The canonical key of a request.
fn request_key(request: &Request) -> Result<Vec<u8>, Failure> {
    serde_json::to_value(request)
        .map_err(|e| e.to_string())
        .and_then(|v| canonical::to_vec(&v))
        .map_err(|e| Failure::from(format!("cannot build the cache key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagegate_policy::wire::{SignatureVerifyRequest, Verified};

    #[test]
    fn verifications_are_cached_only_when_they_verified_and_not_past_validity() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let c = CapabilityCache::new(CacheConfig::default(), rt.handle().clone()).unwrap();
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
        // "Nothing verified" is a refusal: kept with --negative-cache-ttl only.
        let negative = CacheConfig {
            negative_ttl: Some(Duration::from_secs(30)),
            ..CacheConfig::default()
        };
        let n = CapabilityCache::new(negative, rt.handle().clone()).unwrap();
        assert_eq!(
            n.lifetime(&request("nothing"), &answer(vec![])),
            Some(Duration::from_secs(30))
        );
        // Through the whole path (pinned image, so no digest lookup): a
        // verified answer is kept, "nothing verified" never.
        let pinned = format!("127.0.0.1:5000/demo/app@sha256:{}", "a".repeat(64));
        for (verified, expected_calls) in [(vec![], 2), (vec![Verified::default()], 1)] {
            let calls = std::cell::Cell::new(0);
            let bytes = answer(verified);
            let live = |_: &Request| {
                calls.set(calls.get() + 1);
                Ok(bytes.clone())
            };
            for _ in 0..2 {
                c.answer(&request(&pinned), &live).unwrap();
            }
            assert_eq!(calls.get(), expected_calls);
        }
    }
}
