//! The cache's counters: shown by `/metrics` and `imagegate bench`, and
//! reported by every backend, so they exist without the `live` feature too
//! (the cache itself is `live`'s).

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shown by `/metrics` and `imagegate bench`.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) negative_hits: AtomicU64,
    pub(crate) digest_hits: AtomicU64,
    pub(crate) digest_misses: AtomicU64,
    pub(crate) shared_hits: AtomicU64,
    pub(crate) shared_errors: AtomicU64,
    pub(crate) shared_skipped: AtomicU64,
    pub(crate) shared_outages: AtomicU64,
    pub(crate) shared_bad_mac: AtomicU64,
}

impl CacheStats {
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Every counter as (Prometheus name, help, value).
    pub fn counters(&self) -> [(&'static str, &'static str, u64); 10] {
        let v = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("imagegate_capability_cache_hits_total", "Capability answers served from the cache (local or shared).", v(&self.hits)),
            ("imagegate_capability_cache_misses_total", "Cacheable capability calls answered live.", v(&self.misses)),
            ("imagegate_capability_cache_negative_hits_total", "Hits that were cached definite refusals (--negative-cache-ttl).", v(&self.negative_hits)),
            ("imagegate_digest_cache_hits_total", "Tag to digest resolutions reused (--digest-cache-ttl).", v(&self.digest_hits)),
            ("imagegate_digest_cache_misses_total", "Tag to digest resolutions asked of the registry.", v(&self.digest_misses)),
            ("imagegate_shared_cache_hits_total", "Hits found in the shared store (Redis).", v(&self.shared_hits)),
            ("imagegate_shared_cache_errors_total", "Exchanges with the shared store that failed or timed out (the call fell back to the local cache and a live check).", v(&self.shared_errors)),
            ("imagegate_shared_cache_skipped_total", "Exchanges not attempted because the shared store failed less than a second before.", v(&self.shared_skipped)),
            ("imagegate_shared_cache_outages_total", "Times the shared store became unavailable (each logged once).", v(&self.shared_outages)),
            ("imagegate_shared_cache_bad_mac_total", "Shared entries refused because their HMAC did not verify (forged or corrupted).", v(&self.shared_bad_mac)),
        ]
    }
}
