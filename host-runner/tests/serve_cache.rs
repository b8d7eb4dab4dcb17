//! The verification cache of `imagegate serve` with real parts: a
//! docker-registry, a redis-server and notary-servers on 127.0.0.1, started
//! here. What the cache must never do (admit because of a forged entry, a
//! moved tag, or a Redis outage) and what it must do (share answers and
//! Notary trust between replicas).

mod serve_lab;
#[allow(dead_code)] // each test file uses part of the shared lab
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use imagegate::capabilities::cache::CacheStats;
use imagegate::capabilities::shared::redis::RedisConfig;
use imagegate::capabilities::shared::{Shared, SharedConfig};
use serde_json::json;
use serve_lab::{get, pod_review, post, wait_for, Tls};
use support::cosign::{sign, CosignKey, SignOptions};
use support::image::{Format, Image};
use support::redis::{self, Redis};
use support::registry::{self, Registry, Variant};

/// A registry with `signed/app:1.0` (cosign-signed) and `unsigned/app:1.0`,
/// settings requiring the signature, and an HMAC key file.
struct Lab {
    registry: Registry,
    tls: Tls,
    settings: String,
    hmac_key: String,
}

impl Lab {
    async fn new() -> Option<Lab> {
        if !registry::available() || !redis::available() {
            return None;
        }
        let registry = Registry::start(Variant::Plain);
        let key = CosignKey::generate();
        let digest = Image::single("signed", Format::Oci)
            .push(&registry, "signed/app", "1.0")
            .await;
        sign(
            &registry,
            "signed/app",
            &digest,
            &key,
            &SignOptions::default(),
        )
        .await;
        Image::single("unsigned", Format::Oci)
            .push(&registry, "unsigned/app", "1.0")
            .await;
        let tls = Tls::new();
        let settings = tls.dir.path().join("settings.json");
        let rule = json!({
            "rules": [{"name": "signed", "images": [format!("{}/**", registry.addr)],
                       "verify": {"anyOf": [{"cosign": {"keys": [key.public_pem()]}}]}}]
        });
        std::fs::write(&settings, rule.to_string()).unwrap();
        let hmac_key = tls.dir.path().join("hmac.key");
        std::fs::write(&hmac_key, "0123456789abcdef0123456789abcdef\n").unwrap();
        Some(Lab {
            settings: settings.display().to_string(),
            hmac_key: hmac_key.display().to_string(),
            registry,
            tls,
        })
    }

    fn image(&self, repo: &str) -> String {
        self.registry.image(repo, "1.0")
    }

    /// A server for the lab's settings and registry, plus `extra`.
    fn serve(&self, extra: &[&str]) -> imagegate::serve::Server {
        let mut args = vec![
            "--settings-path",
            &self.settings,
            "--insecure-registry",
            &self.registry.addr,
            "--allowed-host-capabilities",
            "oci/*,imagegate/*",
            // Far above the 2 s default: a live check on a loaded 2-core
            // machine can take longer, and no test here is about deadlines.
            "--timeout",
            "30s",
        ];
        args.extend_from_slice(extra);
        self.tls.start(&args)
    }

    /// The same, sharing `redis`.
    fn serve_shared(&self, redis: &Redis, extra: &[&str]) -> imagegate::serve::Server {
        let url = redis.url();
        let mut args = vec!["--cache", &url, "--cache-hmac-key-file", &self.hmac_key];
        args.extend_from_slice(extra);
        self.serve(&args)
    }

    /// `allowed` and the message of one Pod with `image`.
    async fn decide(&self, server: &imagegate::serve::Server, image: &str) -> (bool, String) {
        let (status, review) = post(
            &self.tls.client(),
            format!("{}/validate", server.url()),
            &pod_review("u", &[image], json!({})),
        )
        .await;
        assert_eq!(status, 200, "{review}");
        let response = &review["response"];
        (
            response["allowed"].as_bool().unwrap(),
            response["status"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    }

    async fn metric(&self, server: &imagegate::serve::Server, name: &str) -> u64 {
        let (_, text) = get(&self.tls.client(), format!("{}/metrics", server.url())).await;
        metric(&text, name)
    }
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_redis_entry_for_an_unsigned_image_does_not_admit_it() {
    let Some(lab) = Lab::new().await else { return };
    let redis = Redis::start();
    let (signed, unsigned) = (lab.image("signed/app"), lab.image("unsigned/app"));
    // Refusals are shared too, so the unsigned image gets a Redis key the
    // attacker can overwrite.
    let first = lab.serve_shared(&redis, &["--negative-cache-ttl", "60s"]);
    assert!(lab.decide(&first, &signed).await.0);
    let signed_key = redis.wait_for_keys("imagegate:v1:cache:*", 1).remove(0);
    let (allowed, why) = lab.decide(&first, &unsigned).await;
    assert!(
        !allowed && why.contains("no verified signature for"),
        "{why}"
    );
    let unsigned_key = redis
        .wait_for_keys("imagegate:v1:cache:*", 2)
        .into_iter()
        .find(|k| *k != signed_key)
        .unwrap();
    // The attacker writes the signed image's valid entry (a genuine
    // "trusted" answer, MAC and all) under the unsigned image's key.
    assert_eq!(
        redis
            .command(&["COPY", &signed_key, &unsigned_key, "REPLACE"])
            .as_deref(),
        Some(":1")
    );
    drop(first);

    // A fresh replica (empty local cache) reads Redis: the moved entry's MAC
    // does not verify for that key, so the image is checked live, denied.
    let second = lab.serve_shared(&redis, &["--negative-cache-ttl", "60s"]);
    let (allowed, why) = lab.decide(&second, &unsigned).await;
    assert!(
        !allowed && why.contains("no verified signature for"),
        "{why}"
    );
    assert_eq!(
        lab.metric(&second, "imagegate_shared_cache_bad_mac_total")
            .await,
        1
    );
    // Garbage is refused the same way.
    redis.command(&["SET", &unsigned_key, "forged"]).unwrap();
    let third = lab.serve_shared(&redis, &[]);
    assert!(!lab.decide(&third, &unsigned).await.0);
    assert_eq!(
        lab.metric(&third, "imagegate_shared_cache_bad_mac_total")
            .await,
        1
    );
    // While the genuine entry is shared: the signed image is a Redis hit.
    assert!(lab.decide(&third, &signed).await.0);
    assert_eq!(
        lab.metric(&third, "imagegate_shared_cache_hits_total")
            .await,
        1
    );
    // A replica with another HMAC key finds none of them (key names are
    // HMACs too) and checks live.
    let other_key = lab.tls.dir.path().join("other.key");
    std::fs::write(&other_key, "another key of at least 32 bytes!!").unwrap();
    let other_key = other_key.display().to_string();
    let url = redis.url();
    let stranger = lab.serve(&["--cache", &url, "--cache-hmac-key-file", &other_key]);
    assert!(lab.decide(&stranger, &signed).await.0, "checked live");
    assert_eq!(
        lab.metric(&stranger, "imagegate_shared_cache_hits_total")
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_moved_to_an_unsigned_digest_within_the_ttl_is_denied() {
    let Some(lab) = Lab::new().await else { return };
    let signed = lab.image("signed/app");
    // Successes kept for a minute; the tag's digest re-resolved each time.
    let server = lab.serve(&["--cache-ttl", "60s", "--digest-cache-ttl", "off"]);
    assert!(lab.decide(&server, &signed).await.0);
    assert!(lab.decide(&server, &signed).await.0);
    assert_eq!(
        lab.metric(&server, "imagegate_capability_cache_hits_total")
            .await,
        1
    );

    // The tag now points to an image nobody signed.
    Image::single("moved", Format::Oci)
        .push(&lab.registry, "signed/app", "1.0")
        .await;
    let (allowed, why) = lab.decide(&server, &signed).await;
    assert!(!allowed, "a moved tag hit the entry of its old digest");
    assert!(why.contains("no verified signature for"), "{why}");
    assert_eq!(
        lab.metric(&server, "imagegate_capability_cache_hits_total")
            .await,
        1
    );
}

/// One pass over `images`: every decision must be `expected`.
async fn pass(lab: &Lab, server: &imagegate::serve::Server, images: &[(String, bool)]) -> usize {
    let mut wrong = 0;
    for (image, expected) in images {
        let (allowed, why) = lab.decide(server, image).await;
        if allowed != *expected {
            eprintln!("wrong decision for {image}: allowed {allowed}: {why}");
            wrong += 1;
        }
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_started_mid_run_keeps_every_decision_correct() {
    let Some(lab) = Lab::new().await else { return };
    let mut redis = Redis::start();
    // Short TTLs so that every pass goes through Redis again.
    let server = lab.serve_shared(
        &redis,
        &["--cache-ttl", "200ms", "--digest-cache-ttl", "off"],
    );
    let images = vec![
        (lab.image("signed/app"), true),
        (lab.image("unsigned/app"), false),
    ];
    let until = |d: u64| Instant::now() + Duration::from_millis(d);
    let mut wrong = 0;
    let (mut up, mut down, mut back) = (0, 0, 0);
    let phase = until(1500);
    while Instant::now() < phase {
        wrong += pass(&lab, &server, &images).await;
        up += 1;
    }
    redis.stop();
    let phase = until(1500);
    while Instant::now() < phase {
        wrong += pass(&lab, &server, &images).await;
        down += 1;
    }
    redis.restart();
    let phase = until(1500);
    while Instant::now() < phase {
        wrong += pass(&lab, &server, &images).await;
        back += 1;
    }
    let (_, metrics) = get(&lab.tls.client(), format!("{}/metrics", server.url())).await;
    println!("passes: {up} with Redis, {down} without, {back} after its restart");
    assert_eq!(wrong, 0, "decisions changed with the cache's health");
    assert_eq!(
        metric(&metrics, "imagegate_shared_cache_outages_total"),
        1,
        "{metrics}"
    );
    assert!(metric(&metrics, "imagegate_shared_cache_errors_total") >= 1);
    assert!(up > 0 && down > 0 && back > 0);
    // Back in use after the restart: entries written again. Counted by the
    // restarted redis-server's own statistics, not by its keys: with a
    // 200 ms TTL the last entries can expire before a slow machine looks.
    let sets = redis.command(&["INFO", "commandstats"]).unwrap_or_default();
    let calls = sets
        .lines()
        .find_map(|l| {
            l.strip_prefix("cmdstat_set:calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0u64);
    assert!(calls >= 1, "no SET since redis restarted:\n{sets}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_never_answers_costs_a_bounded_wait() {
    let Some(lab) = Lab::new().await else { return };
    // Accepts connections (kernel backlog), never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}/0", silent.local_addr().unwrap());
    let server = lab.serve(&[
        "--cache",
        &url,
        "--cache-hmac-key-file",
        &lab.hmac_key,
        "--cache-timeout",
        "50ms",
    ]);
    let started = Instant::now();
    assert!(lab.decide(&server, &lab.image("signed/app")).await.0);
    assert!(!lab.decide(&server, &lab.image("unsigned/app")).await.0);
    let elapsed = started.elapsed();
    let text = wait_for(
        &lab.tls.client(),
        format!("{}/metrics", server.url()),
        "imagegate_shared_cache_outages_total 1",
    )
    .await;
    assert!(
        metric(&text, "imagegate_shared_cache_errors_total") >= 1,
        "{text}"
    );
    // Reported, not asserted: how long two decisions took with a dead Redis.
    println!("two decisions with a silent Redis: {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_racing_to_raise_a_shared_state_never_lower_it() {
    if !redis::available() {
        return;
    }
    let redis = Redis::start();
    let config = SharedConfig {
        redis: RedisConfig::parse(&redis.url()).unwrap(),
        hmac_key: vec![42; 32],
        timeout: Duration::from_secs(5),
    };
    // Eight "replicas", each raising the stored maximum to its own values.
    let stats = Arc::new(CacheStats::default());
    let replicas: Vec<Arc<Shared>> = (0..8)
        .map(|_| Arc::new(Shared::new(config.clone(), stats.clone()).unwrap()))
        .collect();
    let mut tasks = Vec::new();
    for (i, shared) in replicas.iter().enumerate() {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            for v in 0..20u64 {
                let mine = v * 8 + i as u64;
                shared
                    .update("test", b"gun", |current| {
                        let seen = current
                            .map(|c| std::str::from_utf8(c).unwrap().parse::<u64>().unwrap())
                            .unwrap_or(0);
                        (mine > seen).then(|| mine.to_string().into_bytes())
                    })
                    .await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stored = replicas[0].get("test", b"gun").await.unwrap();
    assert_eq!(stored, b"159", "the highest value written by any replica");
    let errors = stats
        .counters()
        .into_iter()
        .find(|(name, _, _)| *name == "imagegate_shared_cache_errors_total")
        .unwrap()
        .2;
    assert_eq!(errors, 0, "an update gave up (conflicts) or failed");
}

/// Two notary-servers serving the same GUN with different roots: what one
/// replica trusted first is what every replica trusts (per cluster TOFU),
/// and a restart with the same directory keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_trust_on_first_use_is_shared_through_redis_and_survives_restarts() {
    use support::notary::{self, NotaryLab};
    if !notary::available() {
        return;
    }
    let Some(lab) = Lab::new().await else { return };
    let redis = Redis::start();
    let gun = format!("{}/notary/app", lab.registry.addr);
    let image = Image::single("notary", Format::Oci);
    let digest = image.push(&lab.registry, "notary/app", "1.0").await;
    let (first_lab, impostor) = (NotaryLab::start(), NotaryLab::start());
    for l in [&first_lab, &impostor] {
        l.init(&gun);
        l.sign(
            &gun,
            "1.0",
            digest.trim_start_matches("sha256:"),
            image.top.len() as u64,
            &[],
        );
    }
    let settings = |name: &str, server: &NotaryLab| {
        let path = lab.tls.dir.path().join(name);
        let rule = json!({"rules": [{"name": "dct", "images": [format!("{gun}:*")],
            "verify": {"anyOf": [{"notary": {"server": server.url, "caCert": server.ca_pem}}]}}]});
        std::fs::write(&path, rule.to_string()).unwrap();
        path.display().to_string()
    };
    let (genuine, forged) = (
        settings("genuine.json", &first_lab),
        settings("forged.json", &impostor),
    );
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().display().to_string();
    let url = redis.url();
    let serve = |settings: &str, extra: &[&str]| {
        let mut args = vec![
            "--settings-path",
            settings,
            "--insecure-registry",
            &lab.registry.addr,
        ];
        args.extend_from_slice(extra);
        lab.tls.start(&args)
    };
    let shared = [
        "--cache",
        url.as_str(),
        "--cache-hmac-key-file",
        lab.hmac_key.as_str(),
    ];
    let image = format!("{gun}:1.0");

    // Replica 1 meets the genuine server first: its root is trusted.
    let one = serve(
        &genuine,
        &[&shared[..], &["--notary-cache-dir", &state]].concat(),
    );
    assert!(lab.decide(&one, &image).await.0);
    redis.wait_for_keys("imagegate:v1:notary:*", 1);
    drop(one);

    // Replica 2, new pod, no directory: the impostor's root is not signed by
    // the trusted one.
    let two = serve(&forged, &shared);
    let (allowed, why) = lab.decide(&two, &image).await;
    assert!(
        !allowed,
        "per-pod trust on first use: the impostor was trusted"
    );
    assert!(why.contains("root.json"), "{why}");

    // Control: a replica with neither Redis nor the directory trusts whoever
    // answers first.
    let alone = serve(&forged, &[]);
    assert!(lab.decide(&alone, &image).await.0);

    // Restarted with the directory only (Redis gone): still refused.
    drop(redis);
    let restarted = serve(&forged, &["--notary-cache-dir", &state]);
    assert!(!lab.decide(&restarted, &image).await.0);
}

/// A verification valid for less than the TTL (a certificate that expires
/// within it) is kept in Redis no longer than its `valid_until`, as in
/// memory: Redis' own expiry (PTTL) says so. A plain answer keeps the TTL.
#[test]
fn a_shared_entry_expires_no_later_than_the_answers_valid_until() {
    use imagegate::capabilities::cache::{CacheConfig, CapabilityCache};
    use imagegate::capabilities::Request;
    use imagegate_policy::wire::{ImageVerifyResponse, SignatureVerifyRequest, Verified};
    if !redis::available() {
        return;
    }
    let redis = Redis::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = CacheConfig {
        shared: Some(SharedConfig {
            redis: RedisConfig::parse(&redis.url()).unwrap(),
            hmac_key: vec![7; 32],
            timeout: Duration::from_secs(5),
        }),
        ..CacheConfig::default()
    };
    let cache = CapabilityCache::new(config, rt.handle().clone()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // The Redis expiry in ms of the entry made for `image` answered with `verified`.
    let pttl = |image: &str, verified: Verified| -> i64 {
        let request = Request::VerifySignature(SignatureVerifyRequest {
            image: format!("127.0.0.1:5000/{image}@sha256:{}", "a".repeat(64)),
            platforms: Default::default(),
            identities: vec![],
            annotations: None,
        });
        let answer = serde_json::to_vec(&ImageVerifyResponse {
            digest: format!("sha256:{}", "a".repeat(64)),
            verified: vec![verified],
            trace: vec![],
        })
        .unwrap();
        let before = redis.keys("*");
        cache.answer(&request, &|_| Ok(answer.clone())).unwrap();
        // Written in the background: wait for the new key.
        let key = support::wait_until(Duration::from_secs(10), || {
            redis.keys("*").into_iter().find(|k| !before.contains(k))
        })
        .expect("no new key in redis within 10 s");
        let reply = redis.command(&["PTTL", &key]).unwrap();
        reply.trim_start_matches(':').parse().unwrap()
    };
    let soon = pttl(
        "demo/soon",
        Verified {
            valid_until: Some(now + 10),
            ..Verified::default()
        },
    );
    assert!(soon > 0 && soon <= 10_000, "PTTL {soon} ms, valid for 10 s");
    let plain = pttl("demo/plain", Verified::default());
    assert!(
        plain > 10_000 && plain <= 60_000,
        "PTTL {plain} ms, TTL 60 s"
    );
}

/// Notation answers (`imagegate/v1/check_notation`) under the cache's rules:
/// kept, bound to the digest (a moved tag is checked again), and never
/// longer than the signature's expiry: with `--cache-ttl 120m`, the shared
/// entry of a signature expiring in 30 minutes lives at most 30 minutes,
/// one without expiry the whole TTL (Redis's own expiry, read with PTTL:
/// no clock in the test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notation_answers_are_cached_digest_bound_and_no_longer_than_their_expiry() {
    use support::notation::{self, Claims, NotationSigner, Subject};
    let Some(lab) = Lab::new().await else { return };
    let redis = Redis::start();
    let signer = NotationSigner::new("release");
    let expiry = chrono::Utc::now().timestamp() + 30 * 60;
    for (repo, expiry) in [
        ("notation/expiring", Some(expiry)),
        ("notation/lasting", None),
    ] {
        let digest = Image::single(repo, Format::Oci)
            .push(&lab.registry, repo, "1.0")
            .await;
        let subject = Subject::of(&lab.registry, repo, &digest).await;
        let claims = Claims {
            expiry,
            ..Claims::default()
        };
        let envelope = signer.jws(&subject, &claims);
        notation::push(&lab.registry, repo, &subject, notation::JWS, envelope).await;
    }
    let settings = lab.tls.dir.path().join("notation.json");
    let rule = json!({"rules": [{"name": "signed", "images": [format!("{}/**", lab.registry.addr)],
        "verify": {"anyOf": [{"notation": {"trustStores": {"ca:lab": signer.root_pem},
            "trustedIdentities": ["x509.subject: C=US, ST=WA, O=imagegate lab, CN=release"]}}]}}]});
    std::fs::write(&settings, rule.to_string()).unwrap();
    let url = redis.url();
    let server = lab.tls.start(&[
        "--settings-path",
        &settings.display().to_string(),
        "--insecure-registry",
        &lab.registry.addr,
        "--allowed-host-capabilities",
        "oci/*,imagegate/*",
        "--cache",
        &url,
        "--cache-hmac-key-file",
        &lab.hmac_key,
        "--cache-ttl",
        "120m",
        "--digest-cache-ttl",
        "off",
    ]);
    let hits = "imagegate_capability_cache_hits_total";

    // Kept: the second decision is a hit.
    let expiring = lab.image("notation/expiring");
    for _ in 0..2 {
        let (allowed, why) = lab.decide(&server, &expiring).await;
        assert!(allowed, "{why}");
    }
    assert_eq!(lab.metric(&server, hits).await, 1);
    let first = redis.wait_for_keys("imagegate:v1:cache:*", 1).remove(0);
    assert!(lab.decide(&server, &lab.image("notation/lasting")).await.0);
    let second = redis
        .wait_for_keys("imagegate:v1:cache:*", 2)
        .into_iter()
        .find(|k| *k != first)
        .unwrap();
    let seconds_left = |key: &str| {
        let reply = redis.command(&["PTTL", key]).unwrap();
        reply.trim_start_matches(':').parse::<i64>().unwrap() / 1000
    };
    // No later than the expiry, and not much earlier (the TTL is not simply
    // cut short for every Notation answer).
    let (left, cap) = (seconds_left(&first), 30 * 60);
    assert!(
        left <= cap && left > cap - 300,
        "{left} s left, expiry in {cap} s"
    );
    let left = seconds_left(&second);
    assert!(
        left > cap && left <= 120 * 60,
        "{left} s left without expiry"
    );

    // Bound to the digest: the tag moved to an unsigned image is denied.
    Image::single("moved", Format::Oci)
        .push(&lab.registry, "notation/expiring", "1.0")
        .await;
    let (allowed, why) = lab.decide(&server, &expiring).await;
    assert!(!allowed, "a moved tag hit the entry of its old digest");
    assert!(why.contains("no verified signature for"), "{why}");
    assert_eq!(lab.metric(&server, hits).await, 1);
}
