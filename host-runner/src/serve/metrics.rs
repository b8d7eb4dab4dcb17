//! Prometheus metrics of `imagegate serve`, rendered in the text exposition
//! format (version 0.0.4) by hand: a handful of counters and one histogram do
//! not justify a metrics framework, and the label sets are closed (endpoints,
//! decisions, known capability paths), so cardinality stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::capabilities::cache::CacheStats;
use imagegate_policy::capability;

/// Upper bounds (seconds) of the latency histogram buckets: from a cached
/// decision (~1 ms with a fresh instance) to a slow registry near the
/// default 2 s deadline.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Which HTTP endpoint answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Endpoint {
    /// AdmissionReview for a ValidatingWebhookConfiguration (`/validate`).
    Validate,
    /// AdmissionReview for a MutatingWebhookConfiguration (`/mutate`).
    Mutate,
    /// ImageReview (`/imagereview`).
    ImageReview,
}

impl Endpoint {
    fn label(self) -> &'static str {
        match self {
            Endpoint::Validate => "validate",
            Endpoint::Mutate => "mutate",
            Endpoint::ImageReview => "imagereview",
        }
    }
}

/// The outcome of one review, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Allowed,
    /// Allowed with a JSON patch (digest pinning).
    Mutated,
    Denied,
    /// Denied because the evaluation failed (timeout, guest failure).
    Error,
    /// Denied because every evaluation slot stayed busy.
    Busy,
    /// The HTTP request itself was unusable (not a review).
    BadRequest,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Mutated => "mutated",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
            Outcome::Busy => "busy",
            Outcome::BadRequest => "bad_request",
        }
    }
}

/// Why the server closed a connection without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cut {
    /// Over `--max-connections`.
    TooMany,
    /// The TLS handshake failed.
    Handshake,
    /// No complete TLS handshake within `--tls-handshake-timeout`.
    HandshakeTimeout,
    /// Request headers not complete within `--header-read-timeout`.
    Headers,
    /// No request within `--idle-timeout`.
    Idle,
    /// Request body not received within `--body-read-timeout`.
    Body,
    /// Request body over `--max-body`.
    BodyTooLarge,
}

impl Cut {
    pub const ALL: [Cut; 7] = [
        Cut::TooMany,
        Cut::Handshake,
        Cut::HandshakeTimeout,
        Cut::Headers,
        Cut::Idle,
        Cut::Body,
        Cut::BodyTooLarge,
    ];

    fn label(self) -> &'static str {
        match self {
            Cut::TooMany => "max_connections",
            Cut::Handshake => "tls_handshake_failed",
            Cut::HandshakeTimeout => "tls_handshake_timeout",
            Cut::Headers => "header_read_timeout",
            Cut::Idle => "idle_timeout",
            Cut::Body => "body_read_timeout",
            Cut::BodyTooLarge => "body_too_large",
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Per bucket, observations `<=` its bound (not cumulative yet).
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.counts[i] += 1;
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// Every metric of one server.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(Endpoint, Outcome), u64>>,
    latency: Mutex<BTreeMap<Endpoint, Histogram>>,
    in_flight: AtomicI64,
    capability_calls: Mutex<BTreeMap<(&'static str, bool), u64>>,
    capability_latency: Mutex<BTreeMap<&'static str, Histogram>>,
    reloads: Mutex<BTreeMap<bool, u64>>,
    settings_generation: AtomicU64,
    open_connections: AtomicI64,
    cuts: Mutex<BTreeMap<Cut, u64>>,
    tls_reloads: Mutex<BTreeMap<bool, u64>>,
}

/// Decrements the open-connections gauge when the connection ends.
pub struct Open<'m>(&'m Metrics);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Decrements the in-flight gauge when the request ends, however it ends.
pub struct InFlight<'m>(&'m Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
    *m.entry(key).or_default() += 1;
}

fn record<K: Ord>(map: &Mutex<BTreeMap<K, Histogram>>, key: K, elapsed: Duration) {
    let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
    m.entry(key).or_default().observe(elapsed.as_secs_f64());
}

impl Metrics {
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    pub fn connection_open(&self) -> Open<'_> {
        self.open_connections.fetch_add(1, Ordering::Relaxed);
        Open(self)
    }

    pub fn connection_cut(&self, cut: Cut) {
        bump(&self.cuts, cut);
    }

    /// A changed certificate pair was applied (`true`) or refused.
    pub fn tls_reload(&self, applied: bool) {
        bump(&self.tls_reloads, applied);
    }

    /// One answered review and how long it took (queueing included).
    pub fn observe(&self, endpoint: Endpoint, outcome: Outcome, elapsed: Duration) {
        bump(&self.requests, (endpoint, outcome));
        record(&self.latency, endpoint, elapsed);
    }

    /// One host-capability call by the guest and how long the host took to
    /// answer it. Paths outside the known capability tree are counted as
    /// `other` (labels stay bounded).
    pub fn capability_call(&self, namespace: &str, operation: &str, ok: bool, elapsed: Duration) {
        let path = format!("{namespace}/{operation}");
        let label = capability::ALL
            .iter()
            .find(|k| **k == path)
            .copied()
            .unwrap_or("other");
        bump(&self.capability_calls, (label, ok));
        record(&self.capability_latency, label, elapsed);
    }

    /// A settings file change was applied (`true`) or refused (`false`).
    pub fn reload(&self, applied: bool, generation: u64) {
        bump(&self.reloads, applied);
        self.settings_generation
            .store(generation, Ordering::Relaxed);
    }

    pub fn set_generation(&self, generation: u64) {
        self.settings_generation
            .store(generation, Ordering::Relaxed);
    }

    /// The text exposition format.
    pub fn render(&self, cache: Option<&CacheStats>) -> String {
        let mut out = String::new();
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        header(
            &mut out,
            "imagegate_requests_total",
            "counter",
            "Reviews answered, by endpoint and outcome.",
        );
        for ((endpoint, outcome), n) in &requests {
            let _ = writeln!(
                out,
                "imagegate_requests_total{{endpoint=\"{}\",decision=\"{}\"}} {n}",
                endpoint.label(),
                outcome.label()
            );
        }

        let latency = self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        histograms(
            &mut out,
            "imagegate_request_duration_seconds",
            "Time from request to answer, waiting for a slot included.",
            latency.iter().map(|(e, h)| (("endpoint", e.label()), h)),
        );

        header(
            &mut out,
            "imagegate_in_flight_requests",
            "gauge",
            "Reviews being evaluated or waiting for a slot.",
        );
        let _ = writeln!(
            out,
            "imagegate_in_flight_requests {}",
            self.in_flight.load(Ordering::Relaxed)
        );

        let calls = self
            .capability_calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        header(
            &mut out,
            "imagegate_capability_calls_total",
            "counter",
            "Host-capability calls made by the policy, by capability and result.",
        );
        for ((capability, ok), n) in &calls {
            let result = if *ok { "ok" } else { "error" };
            let _ = writeln!(
                out,
                "imagegate_capability_calls_total{{capability=\"{capability}\",result=\"{result}\"}} {n}"
            );
        }

        let latency = self
            .capability_latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        histograms(
            &mut out,
            "imagegate_capability_duration_seconds",
            "Time the host took to answer the policy's capability calls (registry, Notary and Rekor round trips, signature checks), by capability.",
            latency.iter().map(|(c, h)| (("capability", *c), h)),
        );

        if let Some(cache) = cache {
            for (name, help, value) in cache.counters() {
                header(&mut out, name, "counter", help);
                let _ = writeln!(out, "{name} {value}");
            }
        }

        header(
            &mut out,
            "imagegate_open_connections",
            "gauge",
            "Client connections open now.",
        );
        let _ = writeln!(
            out,
            "imagegate_open_connections {}",
            self.open_connections.load(Ordering::Relaxed)
        );
        let cuts = self.cuts.lock().unwrap_or_else(|p| p.into_inner()).clone();
        header(
            &mut out,
            "imagegate_connections_cut_total",
            "counter",
            "Connections closed by a limit (over --max-connections, TLS handshake, timeouts, body size).",
        );
        for cut in Cut::ALL {
            let n = cuts.get(&cut).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "imagegate_connections_cut_total{{reason=\"{}\"}} {n}",
                cut.label()
            );
        }
        let tls = self
            .tls_reloads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        header(
            &mut out,
            "imagegate_tls_reloads_total",
            "counter",
            "Certificate file changes seen, applied or refused.",
        );
        for applied in [true, false] {
            let result = if applied { "applied" } else { "refused" };
            let n = tls.get(&applied).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "imagegate_tls_reloads_total{{result=\"{result}\"}} {n}"
            );
        }

        let reloads = self
            .reloads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        header(
            &mut out,
            "imagegate_settings_reloads_total",
            "counter",
            "Settings file changes seen, applied or refused as invalid.",
        );
        for applied in [true, false] {
            let result = if applied { "applied" } else { "refused" };
            let n = reloads.get(&applied).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "imagegate_settings_reloads_total{{result=\"{result}\"}} {n}"
            );
        }
        header(
            &mut out,
            "imagegate_settings_generation",
            "gauge",
            "Settings in use: 1 at start, +1 per applied reload.",
        );
        let _ = writeln!(
            out,
            "imagegate_settings_generation {}",
            self.settings_generation.load(Ordering::Relaxed)
        );
        out
    }
}

/// One histogram family: a series per `(label name, label value)`.
fn histograms<'h>(
    out: &mut String,
    name: &str,
    help: &str,
    series: impl Iterator<Item = ((&'static str, &'static str), &'h Histogram)>,
) {
    header(out, name, "histogram", help);
    for ((label, value), h) in series {
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(&h.counts) {
            cumulative += n;
            let _ = writeln!(
                out,
                "{name}_bucket{{{label}=\"{value}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{label}=\"{value}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(out, "{name}_sum{{{label}=\"{value}\"}} {}", h.sum);
        let _ = writeln!(out, "{name}_count{{{label}=\"{value}\"}} {}", h.count);
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.observe(
            Endpoint::Validate,
            Outcome::Allowed,
            Duration::from_micros(500),
        );
        m.observe(
            Endpoint::Validate,
            Outcome::Denied,
            Duration::from_millis(30),
        );
        m.observe(Endpoint::Validate, Outcome::Denied, Duration::from_secs(60));
        let text = m.render(None);
        assert!(
            text.contains("imagegate_requests_total{endpoint=\"validate\",decision=\"denied\"} 2")
        );
        assert!(
            text.contains("imagegate_requests_total{endpoint=\"validate\",decision=\"allowed\"} 1")
        );
        assert!(text.contains(
            "imagegate_request_duration_seconds_bucket{endpoint=\"validate\",le=\"0.001\"} 1"
        ));
        assert!(text.contains(
            "imagegate_request_duration_seconds_bucket{endpoint=\"validate\",le=\"0.05\"} 2"
        ));
        assert!(text.contains(
            "imagegate_request_duration_seconds_bucket{endpoint=\"validate\",le=\"10\"} 2"
        ));
        assert!(text.contains(
            "imagegate_request_duration_seconds_bucket{endpoint=\"validate\",le=\"+Inf\"} 3"
        ));
        assert!(text.contains("imagegate_request_duration_seconds_count{endpoint=\"validate\"} 3"));
    }

    #[test]
    fn unknown_capabilities_share_one_label() {
        let m = Metrics::default();
        let ms = Duration::from_millis;
        m.capability_call("oci", "v2/verify", false, ms(3));
        m.capability_call("evil", "x\"}", true, ms(1));
        m.capability_call("other", "y", true, ms(20));
        let text = m.render(None);
        assert!(text.contains(
            "imagegate_capability_duration_seconds_bucket{capability=\"oci/v2/verify\",le=\"0.0025\"} 0"
        ));
        assert!(text.contains(
            "imagegate_capability_duration_seconds_bucket{capability=\"oci/v2/verify\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "imagegate_capability_duration_seconds_bucket{capability=\"other\",le=\"0.001\"} 1"
        ));
        assert!(
            text.contains("imagegate_capability_duration_seconds_count{capability=\"other\"} 2")
        );
        assert!(text.contains(
            "imagegate_capability_calls_total{capability=\"oci/v2/verify\",result=\"error\"} 1"
        ));
        assert!(
            text.contains("imagegate_capability_calls_total{capability=\"other\",result=\"ok\"} 2")
        );
        assert!(!text.contains("evil"));
    }

    #[test]
    fn in_flight_gauge_follows_guards() {
        let m = Metrics::default();
        let a = m.in_flight();
        let b = m.in_flight();
        assert!(m.render(None).contains("imagegate_in_flight_requests 2"));
        drop(a);
        drop(b);
        assert!(m.render(None).contains("imagegate_in_flight_requests 0"));
    }

    #[test]
    fn reloads_and_cache_counters() {
        let m = Metrics::default();
        m.set_generation(1);
        m.reload(false, 1);
        m.reload(true, 2);
        let text = m.render(Some(&CacheStats::default()));
        assert!(text.contains("imagegate_settings_reloads_total{result=\"applied\"} 1"));
        assert!(text.contains("imagegate_settings_reloads_total{result=\"refused\"} 1"));
        assert!(text.contains("imagegate_settings_generation 2"));
        assert!(text.contains("imagegate_capability_cache_hits_total 0"));
    }
}
