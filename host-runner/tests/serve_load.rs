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
//! A third measures verification itself: distinct images, each signed with
//! a cosign key, keyless (fake Fulcio/Rekor) and in Notary (notary-server),
//! through an `imagegate serve` *process* (`$IMAGEGATE_BIN`, the release
//! build under `make load`): uncached (`--disable-cache`) with 1 and 8
//! clients, then the cosign-key and keyless cases again with the registry
//! behind a link that delays each direction by `LOAD_LINK_DELAY_MS` (default
//! 5), then cached, then answered from the shared Redis cache by fresh
//! replicas (one pass over every image). It prints p50, p99 and throughput
//! per case, the 8-client/1-client ratio, how much of serve's time went to
//! answering capability calls (from its `/metrics`), and for the cosign
//! cases the registry floor: the check's registry requests from a bare
//! client, what a check costs before imagegate does anything. The targets
//! (cosign-key p50 <= 3 ms, ratio >= 4) are reported, not asserted: a
//! benchmark, not a timed test. Every answer must still be correct.
//!
//! Ignored by default (it runs for `LOAD_SECONDS`, default 10, per client
//! count in `LOAD_CLIENTS`, default "8 32"; verification cases for
//! `LOAD_VERIFY_SECONDS`, default 5, each).

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

/// Prints one line; returns (throughput per second, p50 in ms).
fn report(phase: &str, clients: usize, elapsed: Duration, run: &mut Run) -> (f64, f64) {
    let n = run.latencies.len();
    let stats = Stats::from_samples(&mut run.latencies).unwrap();
    let throughput = n as f64 / elapsed.as_secs_f64();
    println!(
        "load: {phase}: {clients} clients, {:.1} s: {n} requests ({throughput:.0}/s), p50 {:.2} ms, p99 {:.2} ms, errors {}",
        elapsed.as_secs_f64(),
        stats.p50_us / 1000.0,
        stats.p99_us / 1000.0,
        run.errors.len()
    );
    (throughput, stats.p50_us / 1000.0)
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

/// Images signed every way the verification benchmark measures.
struct SignedLab {
    registry: support::registry::Registry,
    /// Kept running for the Notary case (stopped on drop).
    notary: support::notary::NotaryLab,
    dir: tempfile::TempDir,
    settings: std::path::PathBuf,
    trust_config: std::path::PathBuf,
    /// (case name, images), every image allowed by exactly that check.
    cases: Vec<(&'static str, Vec<String>)>,
}

/// Distinct images per case: enough that 8 clients never ask for the same
/// one at the same time.
const SIGNED_IMAGES: usize = 32;

async fn signed_lab() -> SignedLab {
    use support::cosign::{sign, CosignKey, SignOptions};
    use support::image::{Format, Image};
    use support::notary::NotaryLab;
    use support::registry::{self, Registry, Variant};
    use support::sigstore::{FakeSigstore, Identity};
    assert!(
        registry::available() && support::notary::available(),
        "docker-registry and notary are not installed: run scripts/deps.sh"
    );
    let registry = Registry::start_logged(Variant::Plain);
    let dir = tempfile::tempdir().unwrap();
    let key = CosignKey::generate();
    let fake = FakeSigstore::new();
    let issuer = "https://accounts.example.com";
    let subject = "release@example.com";
    let (mut cosign_images, mut keyless_images, mut notary_images) = (vec![], vec![], vec![]);
    for i in 0..SIGNED_IMAGES {
        let repo = format!("cosign/app{i}");
        let digest = Image::single(&repo, Format::Oci)
            .push(&registry, &repo, "1.0")
            .await;
        sign(&registry, &repo, &digest, &key, &SignOptions::default()).await;
        cosign_images.push(registry.image(&repo, "1.0"));

        let repo = format!("keyless/app{i}");
        let digest = Image::single(&repo, Format::Oci)
            .push(&registry, &repo, "1.0")
            .await;
        let leaf = fake.keyless_certificate(Identity::Email(subject), issuer, None);
        let options = SignOptions {
            certificate: Some((leaf.cert_pem.clone(), vec![fake.fulcio.cert_pem.clone()])),
            rekor: Some(&fake),
            ..SignOptions::default()
        };
        sign(
            &registry,
            &repo,
            &digest,
            &CosignKey { key: leaf.key },
            &options,
        )
        .await;
        keyless_images.push(registry.image(&repo, "1.0"));
    }
    let notary = NotaryLab::start();
    let gun = format!("{}/notary/app", registry.addr);
    notary.init(&gun);
    for i in 0..SIGNED_IMAGES {
        // The guest compares the signed digest with the registry's.
        let (tag, image) = (
            format!("t{i}"),
            Image::single(&format!("notary {i}"), Format::Oci),
        );
        let digest = image.push(&registry, "notary/app", &tag).await;
        let hex = digest.trim_start_matches("sha256:");
        let length = image.top.len().to_string();
        notary.notary(&["addhash", &gun, &tag, &length, "--sha256", hex]);
        notary_images.push(format!("{gun}:{tag}"));
    }
    notary.notary(&["publish", &gun]);

    let trust_config = fake.write_trust_config(dir.path());
    let settings = dir.path().join("signed.json");
    let addr = &registry.addr;
    let settings_json = json!({
        "unmatched": "deny",
        "rules": [
            {"name": "cosign", "images": [format!("{addr}/cosign/**")],
             "verify": {"anyOf": [{"cosign": {"keys": [key.public_pem()]}}]}},
            {"name": "keyless", "images": [format!("{addr}/keyless/**")],
             "verify": {"anyOf": [{"keyless": {"issuer": issuer, "subject": subject}}]}},
            {"name": "notary", "images": [format!("{addr}/notary/**")],
             "verify": {"anyOf": [{"notary": {"server": notary.url, "caCert": notary.ca_pem}}]}}
        ]
    });
    std::fs::write(&settings, settings_json.to_string()).unwrap();
    SignedLab {
        cases: vec![
            ("cosign-key", cosign_images),
            ("keyless", keyless_images),
            ("notary", notary_images),
        ],
        registry,
        notary,
        dir,
        settings,
        trust_config,
    }
}

impl SignedLab {
    /// `imagegate serve` over HTTPS for these images, plus `extra` flags.
    fn serve(&self, tls: &Tls, name: &str, extra: &[&str]) -> serve_lab::Process {
        self.serve_at(tls, name, &self.registry.addr, &self.settings, extra)
    }

    /// [`SignedLab::serve`] with the registry reached at `link` (a
    /// [`DelayedLink`](support::link::DelayedLink) in front of it).
    fn serve_via(&self, tls: &Tls, name: &str, link: &str, extra: &[&str]) -> serve_lab::Process {
        let settings = std::fs::read_to_string(&self.settings).unwrap();
        let linked = self.dir.path().join(format!("settings-{name}.json"));
        std::fs::write(&linked, self.via(&settings, link)).unwrap();
        self.serve_at(tls, name, link, &linked, extra)
    }

    /// `text` with the registry's address (before a `/`) replaced by `link`.
    fn via(&self, text: &str, link: &str) -> String {
        text.replace(&format!("{}/", self.registry.addr), &format!("{link}/"))
    }

    fn serve_at(
        &self,
        tls: &Tls,
        name: &str,
        registry: &str,
        settings: &std::path::Path,
        extra: &[&str],
    ) -> serve_lab::Process {
        let settings = settings.display().to_string();
        let trust = self.trust_config.display().to_string();
        let notary_dir = self.dir.path().join(format!("notary-{name}"));
        let notary_dir = notary_dir.display().to_string();
        let mut args = vec![
            "-s",
            &settings,
            "--insecure-registry",
            registry,
            "--sigstore-trust-config",
            &trust,
            "--notary-cache-dir",
            &notary_dir,
        ];
        args.extend_from_slice(extra);
        serve_lab::Process::start(tls, &args, self.dir.path().join(format!("{name}.log")))
    }

    /// The registry requests one (warm) check of `case` costs, in order
    /// (repository and digests elided).
    async fn round_trips(&self, tls: &Tls, base: &str, case: &str) -> String {
        let (endpoint, body, _) = self.mix(case).remove(0);
        let client = tls.client();
        post(&client, format!("{base}{endpoint}"), &body).await;
        let before = self.registry.requests().len();
        let (status, answer) = post(&client, format!("{base}{endpoint}"), &body).await;
        assert_eq!(
            (status, allowed(endpoint, &answer)),
            (200, Some(true)),
            "{answer}"
        );
        let requests = self.registry.requests();
        let sequence: Vec<String> = requests[before..]
            .iter()
            .map(|r| {
                let (method, path) = r.split_once(' ').unwrap();
                let short = ["/manifests/", "/blobs/", "/referrers/"]
                    .into_iter()
                    .find_map(|k| {
                        let reference = path.split_once(k)?.1;
                        let reference = match reference.split_once(['-', ':']) {
                            Some((algorithm, rest)) if rest.len() > 12 => {
                                let tail = rest.find('.').map_or("", |d| &rest[d..]);
                                format!("{algorithm}…{tail}")
                            }
                            _ => reference.to_string(),
                        };
                        Some(format!("{}{reference}", &k[1..]))
                    })
                    .unwrap_or_else(|| path.to_string());
                format!("{method} {short}")
            })
            .collect();
        format!("{}: {}", sequence.len(), sequence.join(", "))
    }

    /// `server` and the lab's servers, by role; `clients` is this process.
    fn processes(&self, server: &serve_lab::Process) -> Processes {
        Processes(vec![
            ("serve", vec![server.pid()]),
            ("registry", self.registry.pid().into_iter().collect()),
            ("notary", self.notary.pids()),
            ("clients", vec![std::process::id()]),
        ])
    }

    fn mix(&self, case: &str) -> Mix {
        self.mix_via(case, &self.registry.addr)
    }

    /// [`SignedLab::mix`] with the images named at `link`.
    fn mix_via(&self, case: &str, link: &str) -> Mix {
        let images = &self.cases.iter().find(|(c, _)| *c == case).unwrap().1;
        images
            .iter()
            .map(|image| {
                let image = self.via(image, link);
                ("/validate", pod_review("v", &[&image], json!({})), true)
            })
            .collect()
    }
}

/// Every request of `mix` exactly once, spread over `clients`.
async fn one_pass(base: &str, tls: &Tls, clients: usize, mix: &Mix) -> Run {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = tls.client();
        let base = base.to_string();
        let mine: Mix = mix.iter().skip(c).step_by(clients).cloned().collect();
        tasks.push(tokio::spawn(async move {
            let mut run = Run {
                latencies: Vec::new(),
                errors: Vec::new(),
            };
            for (endpoint, body, expected) in &mine {
                let started = Instant::now();
                let (status, answer) = post(&client, format!("{base}{endpoint}"), body).await;
                run.latencies.push(started.elapsed());
                if status != 200 || allowed(endpoint, &answer) != Some(*expected) {
                    run.errors
                        .push(format!("{endpoint}: HTTP {status}: {answer}"));
                }
            }
            run
        }));
    }
    let mut run = Run {
        latencies: Vec::new(),
        errors: Vec::new(),
    };
    for t in tasks {
        let r = t.await.unwrap();
        run.latencies.extend(r.latencies);
        run.errors.extend(r.errors);
    }
    run
}

/// CPU time (user + system, every thread) `pid` has used so far, from
/// `/proc/<pid>/stat`: what a phase cost each process, whatever the load.
fn cpu_time(pid: u32) -> Duration {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        let out = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .expect("getconf CLK_TCK");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (in parentheses, maybe with
    // spaces): utime and stime are proc(5)'s fields 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_secs_f64((field(11) + field(12)) as f64 / ticks)
}

/// The processes a verification phase runs on, by role.
struct Processes(Vec<(&'static str, Vec<u32>)>);

impl Processes {
    fn cpu(&self) -> Vec<Duration> {
        self.0
            .iter()
            .map(|(_, pids)| pids.iter().map(|&p| cpu_time(p)).sum())
            .collect()
    }

    /// `serve 3.10 ms, registry 1.20 ms, ...`: CPU per request since `before`.
    fn per_request(&self, before: &[Duration], requests: usize) -> String {
        let after = self.cpu();
        self.0
            .iter()
            .zip(before.iter().zip(&after))
            .map(|((name, _), (b, a))| {
                let ms = (*a - *b).as_secs_f64() * 1000.0 / requests.max(1) as f64;
                format!("{name} {ms:.2} ms")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The registry's own floor for one check: the requests a warm cosign
/// check sends (tests/signatures_e2e.rs counts them), in its order, from a
/// bare keep-alive HTTP client, one image after another for `seconds`:
/// the tag's manifest, then the `.sig` tag and the referrers tag together.
/// Its p50 (ms) is what a check costs before imagegate does anything.
async fn registry_floor(registry: &str, images: &[String], seconds: Duration) -> f64 {
    const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
        application/vnd.oci.image.index.v1+json, \
        application/vnd.docker.distribution.manifest.v2+json, \
        application/vnd.docker.distribution.manifest.list.v2+json";
    let client = reqwest::Client::new();
    let get = |path: String| {
        let request = client
            .get(format!("http://{registry}/v2/{path}"))
            .header("accept", ACCEPT)
            .send();
        async move {
            let response = request.await.expect("registry answers");
            let digest = response
                .headers()
                .get("docker-content-digest")
                .map(|d| d.to_str().unwrap().replace(':', "-"));
            response.bytes().await.expect("registry body");
            digest
        }
    };
    let until = Instant::now() + seconds;
    let mut latencies = Vec::new();
    for image in images.iter().cycle() {
        if Instant::now() >= until {
            break;
        }
        let name = image.strip_prefix(&format!("{registry}/")).unwrap();
        let (repo, tag) = name.rsplit_once(':').unwrap();
        let started = Instant::now();
        let digest = get(format!("{repo}/manifests/{tag}")).await.unwrap();
        tokio::join!(
            get(format!("{repo}/manifests/{digest}.sig")),
            get(format!("{repo}/manifests/{digest}"))
        );
        latencies.push(started.elapsed());
    }
    Stats::from_samples(&mut latencies).unwrap().p50_us / 1000.0
}

/// Seconds spent answering reviews and answering capability calls so far:
/// the sums of serve's two duration histograms.
async fn spent(base: &str, tls: &Tls) -> (f64, f64) {
    let (_, metrics) = serve_lab::get(&tls.client(), format!("{base}/metrics")).await;
    let sum = |family: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(&format!("{family}_sum{{")))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    (
        sum("imagegate_request_duration_seconds"),
        sum("imagegate_capability_duration_seconds"),
    )
}

/// Drives `case` with 1 and 8 clients; prints both, their ratio and the CPU
/// each process spent per request.
async fn scaling(
    base: &str,
    tls: &Tls,
    phase: &str,
    mix: &Mix,
    seconds: Duration,
    processes: &Processes,
) -> Vec<String> {
    let ok: Check = Arc::new(|_| Ok(()));
    let mut errors = Vec::new();
    let mut throughput = Vec::new();
    for clients in [1, 8] {
        // Read before the CPU snapshot: the `/metrics` requests are not the phase's.
        let (reviews, capabilities) = spent(base, tls).await;
        let before = processes.cpu();
        let started = Instant::now();
        let mut run = drive_mix(base, tls, clients, seconds, mix, ok.clone()).await;
        let elapsed = started.elapsed();
        println!(
            "load: {phase}: {clients} clients: CPU per request: {}",
            processes.per_request(&before, run.latencies.len())
        );
        let (reviews_after, capabilities_after) = spent(base, tls).await;
        let per = |seconds: f64| seconds * 1000.0 / run.latencies.len().max(1) as f64;
        println!(
            "load: {phase}: {clients} clients: mean time per review in serve {:.2} ms, of which answering capability calls {:.2} ms",
            per(reviews_after - reviews),
            per(capabilities_after - capabilities)
        );
        throughput.push(report(phase, clients, elapsed, &mut run));
        errors.extend(run.errors.into_iter().map(|e| format!("{phase}: {e}")));
    }
    println!(
        "load: {phase}: 8 clients = {:.1}x the 1-client throughput; 1-client p50 {:.2} ms",
        throughput[1].0 / throughput[0].0,
        throughput[0].1
    );
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load test: run by `make load`"]
async fn verification_latency_and_scaling_uncached_cached_and_shared() {
    let seconds = Duration::from_secs_f64(env_or("LOAD_VERIFY_SECONDS", "5").parse().unwrap());
    let lab = signed_lab().await;
    let tls = Tls::new();
    let mut errors = Vec::new();

    let server = lab.serve(&tls, "uncached", &["--disable-cache"]);
    let processes = lab.processes(&server);
    for (case, _) in &lab.cases {
        let phase = format!("uncached {case}");
        let trips = lab.round_trips(&tls, &server.url, case).await;
        println!("load: {phase}: registry requests of one check: {trips}");
        errors.extend(
            scaling(
                &server.url,
                &tls,
                &phase,
                &lab.mix(case),
                seconds,
                &processes,
            )
            .await,
        );
        if *case != "notary" {
            let images = &lab.cases.iter().find(|(c, _)| c == case).unwrap().1;
            let floor = registry_floor(&lab.registry.addr, images, seconds).await;
            println!(
                "load: {phase}: registry floor (the check's registry requests from a bare client, 1 client): p50 {floor:.2} ms"
            );
        }
    }
    drop(server);

    // The same checks over a link with a delay each way (a registry a few
    // milliseconds away, as in a cluster): round trips rather than the lab's
    // CPU set the pace, so 8 clients show what checking concurrently is
    // worth. Notary is left out: its names carry the registry's address.
    let delay_ms: u64 = env_or("LOAD_LINK_DELAY_MS", "5").parse().unwrap();
    let link =
        support::link::DelayedLink::start(&lab.registry.addr, Duration::from_millis(delay_ms));
    let server = lab.serve_via(&tls, "linked", &link.addr, &["--disable-cache"]);
    let processes = lab.processes(&server);
    for case in ["cosign-key", "keyless"] {
        let phase = format!("uncached {case}, registry {delay_ms} ms away each way");
        let mix = lab.mix_via(case, &link.addr);
        errors.extend(scaling(&server.url, &tls, &phase, &mix, seconds, &processes).await);
    }
    drop(server);
    drop(link);

    let server = lab.serve(&tls, "cached", &[]);
    let all: Mix = lab.cases.iter().flat_map(|(c, _)| lab.mix(c)).collect();
    let client = tls.client();
    for (endpoint, body, _) in &all {
        let (status, answer) = post(&client, format!("{}{endpoint}", server.url), body).await;
        assert_eq!(
            (status, allowed(endpoint, &answer)),
            (200, Some(true)),
            "{answer}"
        );
    }
    let processes = lab.processes(&server);
    errors.extend(
        scaling(
            &server.url,
            &tls,
            "cached (all cases)",
            &all,
            seconds,
            &processes,
        )
        .await,
    );
    drop(server);

    // With the shared Redis cache: one replica verifies every image live and
    // stores the answers; fresh replicas (their own caches empty) then answer
    // every image from Redis once (a digest HEAD and one Redis GET each),
    // with 1 client, then with 8. Steady state is the local cache above.
    let redis = support::redis::Redis::start();
    let (url, key) = (redis.url(), lab.dir.path().join("hmac.key"));
    std::fs::write(&key, "load-test-key-0123456789abcdef0123456789\n").unwrap();
    let key = key.display().to_string();
    let shared = ["--cache", &url, "--cache-hmac-key-file", &key];
    let writer = lab.serve(&tls, "shared-writer", &shared);
    let mut run = one_pass(&writer.url, &tls, 8, &all).await;
    errors.extend(
        run.errors
            .drain(..)
            .map(|e| format!("shared (writer): {e}")),
    );
    drop(writer);
    for clients in [1, 8] {
        let reader = lab.serve(&tls, &format!("shared-reader-{clients}"), &shared);
        let started = Instant::now();
        let mut run = one_pass(&reader.url, &tls, clients, &all).await;
        let phase = "shared Redis hits (fresh replica, one pass)";
        report(phase, clients, started.elapsed(), &mut run);
        errors.extend(run.errors.into_iter().map(|e| format!("{phase}: {e}")));
        let (_, metrics) = serve_lab::get(&client, format!("{}/metrics", reader.url)).await;
        let hits = metrics
            .lines()
            .find_map(|l| l.strip_prefix("imagegate_shared_cache_hits_total "))
            .and_then(|v| v.parse::<usize>().ok());
        assert_eq!(
            hits,
            Some(all.len()),
            "every answer came from Redis:\n{metrics}"
        );
    }

    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
}
