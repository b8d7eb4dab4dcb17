//! `imagegate serve` under load (`make load`): N concurrent HTTPS clients on
//! loopback for a fixed time, each sending a mix of AdmissionReviews and
//! ImageReviews (allowed and denied) whose decisions need no registry. It
//! reports p50/p99 latency and throughput per client count, requires zero
//! errors (transport failures, non-200 answers, wrong decisions, busy
//! denials), and requires the resident memory to stay flat between a warmed
//! up server and the end of the run.
//!
//! A second scenario verifies cosign signatures against a real
//! `docker-registry` (tests/support), stops the registry mid-run and starts
//! it again: every answer while it is down must be a denial saying why.
//!
//! Ignored by default (it runs for `LOAD_SECONDS`, default 10, per client
//! count in `LOAD_CLIENTS`, default "8 32").

mod serve_lab;
#[allow(dead_code)] // each test file uses part of the shared lab
mod support;

use std::sync::Arc;

use std::time::{Duration, Instant};

use imagegate::cli::bench::Stats;
use serde_json::{json, Value};
use serve_lab::{data, image_review, pod_review, post, Tls};

/// Upper bound of requests per client, whatever the duration.
const MAX_REQUESTS_PER_CLIENT: usize = 100_000;
/// Growth of the process's resident set tolerated over a run.
const MAX_RSS_GROWTH_KIB: u64 = 64 * 1024;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// (endpoint, body, expected `allowed`).
type Mix = Vec<(&'static str, Value, bool)>;

/// Checks one answer beyond `allowed` (e.g. what a denial says).
type Check = Arc<dyn Fn(&Value) -> Result<(), String> + Send + Sync>;

/// Decisions that need no registry.
fn mix() -> Mix {
    vec![
        (
            "/validate",
            pod_review(
                "load-ok",
                &["registry.corp.example/team/app:1.4"],
                json!({}),
            ),
            true,
        ),
        (
            "/validate",
            pod_review(
                "load-deny",
                &["registry.corp.example/team/app:latest", "quay.io/x/y:1"],
                json!({}),
            ),
            false,
        ),
        (
            "/imagereview",
            image_review(&["registry.corp.example/team/app:2"], json!({}), "team-a"),
            true,
        ),
        (
            "/imagereview",
            image_review(&["docker.io/library/nginx:1.27"], json!({}), "team-a"),
            false,
        ),
    ]
}

fn allowed(endpoint: &str, answer: &Value) -> Option<bool> {
    match endpoint {
        "/validate" => answer["response"]["allowed"].as_bool(),
        _ => answer["status"]["allowed"].as_bool(),
    }
}

struct Run {
    latencies: Vec<Duration>,
    errors: Vec<String>,
}

async fn drive(base: &str, tls: &Tls, clients: usize, duration: Duration) -> Run {
    drive_mix(base, tls, clients, duration, &mix(), Arc::new(|_| Ok(()))).await
}

async fn drive_mix(
    base: &str,
    tls: &Tls,
    clients: usize,
    duration: Duration,
    mix: &Mix,
    check: Check,
) -> Run {
    let until = Instant::now() + duration;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = tls.client();
        let base = base.to_string();
        let requests = mix.clone();
        let check = check.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = Vec::new();
            let mut i = c;
            while Instant::now() < until && latencies.len() < MAX_REQUESTS_PER_CLIENT {
                let (endpoint, body, expected) = &requests[i % requests.len()];
                i += 1;
                let started = Instant::now();
                let (status, answer) = post(&client, format!("{base}{endpoint}"), body).await;
                latencies.push(started.elapsed());
                if status != 200 || allowed(endpoint, &answer) != Some(*expected) {
                    errors.push(format!("{endpoint}: HTTP {status}: {answer}"));
                } else if let Err(e) = check(&answer) {
                    errors.push(format!("{endpoint}: {e}: {answer}"));
                }
            }
            (latencies, errors)
        }));
    }
    let mut run = Run {
        latencies: Vec::new(),
        errors: Vec::new(),
    };
    for t in tasks {
        let (l, e) = t.await.unwrap();
        run.latencies.extend(l);
        run.errors.extend(e);
    }
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load test: run by `make load`"]
async fn concurrent_clients_get_correct_answers_with_flat_memory() {
    let seconds: f64 = env_or("LOAD_SECONDS", "10").parse().unwrap();
    let client_counts: Vec<usize> = env_or("LOAD_CLIENTS", "8 32")
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let tls = Tls::new();
    let settings = data("settings.yaml").display().to_string();
    let server = tls.start(&["--settings-path", &settings, "--max-concurrency", "8"]);
    let base = server.url();

    // Warm up (connections, allocator, wasmtime's instance pool) before the
    // memory baseline.
    let warm = drive(
        &base,
        &tls,
        *client_counts.iter().max().unwrap(),
        Duration::from_secs(2),
    )
    .await;
    assert!(
        warm.errors.is_empty(),
        "{:?}",
        &warm.errors[..warm.errors.len().min(5)]
    );
    let rss_before = rss_kib();

    let mut all_errors = Vec::new();
    for &clients in &client_counts {
        let started = Instant::now();
        let mut run = drive(&base, &tls, clients, Duration::from_secs_f64(seconds)).await;
        report("no registry", clients, started.elapsed(), &mut run);
        all_errors.extend(run.errors);
    }
    let rss_after = rss_kib();
    println!(
        "load: resident memory (server + clients, one process): {rss_before} KiB after warm-up, {rss_after} KiB at the end ({:+} KiB)",
        rss_after as i64 - rss_before as i64
    );
    assert!(
        all_errors.is_empty(),
        "{} errors, first: {:?}",
        all_errors.len(),
        &all_errors[..all_errors.len().min(5)]
    );
    assert!(
        rss_after < rss_before + MAX_RSS_GROWTH_KIB,
        "resident memory grew from {rss_before} KiB to {rss_after} KiB"
    );
}

fn report(phase: &str, clients: usize, elapsed: Duration, run: &mut Run) {
    let n = run.latencies.len();
    let stats = Stats::from_samples(&mut run.latencies).unwrap();
    println!(
        "load: {phase}: {clients} clients, {:.1} s: {n} requests ({:.0}/s), p50 {:.2} ms, p99 {:.2} ms, errors {}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        stats.p50_us / 1000.0,
        stats.p99_us / 1000.0,
        run.errors.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load test: run by `make load`"]
async fn registry_stopped_mid_run_gives_denials_that_say_why_then_recovers() {
    use support::cosign::{sign, CosignKey, SignOptions};
    use support::image::{Format, Image};
    use support::registry::{self, Registry, Variant};
    assert!(
        registry::available(),
        "docker-registry is not installed: run scripts/deps.sh"
    );
    let phase = Duration::from_secs_f64(env_or("LOAD_SECONDS", "10").parse::<f64>().unwrap() / 2.0);
    let clients = 8;

    let mut registry = Registry::start(Variant::Plain);
    let key = CosignKey::generate();
    let digest = Image::single("load", Format::Oci)
        .push(&registry, "demo/app", "1.0")
        .await;
    sign(
        &registry,
        "demo/app",
        &digest,
        &key,
        &SignOptions::default(),
    )
    .await;
    let image = registry.image("demo/app", "1.0");

    let tls = Tls::new();
    let settings = tls.dir.path().join("signed.yaml");
    let settings_json = json!({
        "rules": [{
            "name": "signed",
            "images": [format!("{}/demo/**", registry.addr)],
            "verify": {"anyOf": [{"cosign": {"keys": [key.public_pem()]}}]}
        }]
    });
    std::fs::write(&settings, settings_json.to_string()).unwrap();
    let settings = settings.display().to_string();
    // No capability cache: every request goes to the registry.
    let server = tls.start(&[
        "--settings-path",
        &settings,
        "--insecure-registry",
        &registry.addr,
        "--disable-cache",
    ]);
    let base = server.url();
    let allowed_mix: Mix = vec![
        ("/validate", pod_review("reg", &[&image], json!({})), true),
        (
            "/imagereview",
            image_review(&[&image], json!({}), "team-a"),
            true,
        ),
    ];
    let denied_mix: Mix = allowed_mix
        .iter()
        .map(|(e, b, _)| (*e, b.clone(), false))
        .collect();
    let says_why: Check = {
        let image = image.clone();
        Arc::new(move |answer: &Value| {
            let why = answer["response"]["status"]["message"]
                .as_str()
                .or(answer["status"]["reason"].as_str())
                .unwrap_or_default();
            if why.contains(&image) && why.contains("Connection refused") {
                Ok(())
            } else {
                Err("the denial does not say the registry is unreachable".into())
            }
        })
    };
    let ok: Check = Arc::new(|_| Ok(()));

    let started = Instant::now();
    let mut up = drive_mix(&base, &tls, clients, phase, &allowed_mix, ok.clone()).await;
    report("registry up", clients, started.elapsed(), &mut up);

    registry.stop();
    let started = Instant::now();
    let mut down = drive_mix(&base, &tls, clients, phase, &denied_mix, says_why).await;
    report("registry stopped", clients, started.elapsed(), &mut down);
    let (_, sample) = post(
        &tls.client(),
        format!("{base}/imagereview"),
        &denied_mix[1].1,
    )
    .await;
    println!(
        "load: a denial while stopped: {}",
        sample["status"]["reason"]
    );

    registry.restart();
    let started = Instant::now();
    let mut back = drive_mix(&base, &tls, clients, phase, &allowed_mix, ok).await;
    report("registry restarted", clients, started.elapsed(), &mut back);

    for (name, run) in [("up", &up), ("stopped", &down), ("restarted", &back)] {
        assert!(
            run.errors.is_empty(),
            "registry {name}: {} errors, first: {:?}",
            run.errors.len(),
            &run.errors[..run.errors.len().min(3)]
        );
    }
}
