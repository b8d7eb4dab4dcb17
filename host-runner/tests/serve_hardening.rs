//! `imagegate serve` as a production service: every connection limit cuts a
//! stalled or greedy client while others are served, certificates rotate
//! without dropping connections, SIGTERM drains, and no server starts
//! without settings by accident.

mod serve_lab;

use std::time::{Duration, Instant};

use serde_json::json;
use serve_lab::{data, pod_review, wait_for, Raw, Tls};

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

const ALLOWED: &str = "registry.corp.example/team/app:1.4";

#[test]
fn serve_needs_settings_unless_told_otherwise() {
    let policy = serve_lab::policy_path().display().to_string();
    let e = serve_lab::parse(&["--policy", &policy, "--insecure-http"])
        .expect_err("started without settings");
    assert!(e.to_string().contains("--settings-path"), "{e}");
    let settings = data("settings.yaml").display().to_string();
    assert!(serve_lab::parse(&[
        "--policy",
        &policy,
        "--insecure-http",
        "--allow-empty-settings",
        "-s",
        &settings
    ])
    .is_err());
    let args = serve_lab::parse(&[
        "--policy",
        &policy,
        "--insecure-http",
        "--allow-empty-settings",
    ])
    .unwrap();
    let server = imagegate::cli::serve::start(&args).unwrap();
    drop(server);
}

/// Opens `each` connections of every stalled kind: silent TCP (no
/// ClientHello), half a request head, a head and part of its body.
async fn stall(
    addr: std::net::SocketAddr,
    tls: &Tls,
    each: usize,
) -> (Vec<tokio::net::TcpStream>, Vec<Raw>, Vec<Raw>) {
    let (mut silent, mut heads, mut bodies) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..each {
        silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        let mut head = Raw::tls(addr, &tls.ca_pem).await.unwrap();
        head.send(b"POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
            .await;
        heads.push(head);
        let mut body = Raw::tls(addr, &tls.ca_pem).await.unwrap();
        body.send(
            b"POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n{\"kind\":",
        )
        .await;
        bodies.push(body);
    }
    (silent, heads, bodies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_clients_are_served_while_others_stall() {
    // Timeouts far longer than the test: a server that made the honest
    // client wait for the stalled ones would hang it until they are cut.
    let tls = Tls::new();
    let settings = data("settings.yaml").display().to_string();
    let long = [
        "--tls-handshake-timeout",
        "--header-read-timeout",
        "--body-read-timeout",
    ]
    .into_iter()
    .flat_map(|flag| [flag, "120s"]);
    let args: Vec<&str> = ["-s", settings.as_str()].into_iter().chain(long).collect();
    let server = tls.start(&args);
    let addr = server.addr();
    let (_silent, mut heads, mut bodies) = stall(addr, &tls, 20).await;
    let review = pod_review("ok", &[ALLOWED], json!({}));
    let honest = async {
        let mut honest = Raw::tls(addr, &tls.ca_pem).await.unwrap();
        for _ in 0..5 {
            let (status, answer) = honest.post("/validate", &review).await;
            assert_eq!(
                (status, answer["response"]["allowed"].as_bool()),
                (200, Some(true))
            );
        }
    };
    tokio::time::timeout(Duration::from_secs(60), honest)
        .await
        .expect("the honest client waited for the stalled ones");
    // ... which are all still open: it was not served by cutting them.
    for c in heads.iter_mut().chain(bodies.iter_mut()) {
        assert!(!c.closed_by_server(Duration::from_millis(10)).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_are_cut_at_the_timeouts() {
    let tls = Tls::new();
    let settings = data("settings.yaml").display().to_string();
    let server = tls.start(&[
        "-s",
        &settings,
        "--tls-handshake-timeout",
        "1s",
        "--header-read-timeout",
        "1s",
        "--body-read-timeout",
        "1s",
        "--idle-timeout",
        "2s",
    ]);
    let addr = server.addr();
    const EACH: usize = 20;
    let (silent, heads, bodies) = stall(addr, &tls, EACH).await;
    let mut idle = Raw::tls(addr, &tls.ca_pem).await.unwrap();

    // An honest client is answered, then goes idle.
    let review = pod_review("ok", &[ALLOWED], json!({}));
    let mut honest = Raw::tls(addr, &tls.ca_pem).await.unwrap();
    let (status, answer) = honest.post("/validate", &review).await;
    assert_eq!(
        (status, answer["response"]["allowed"].as_bool()),
        (200, Some(true))
    );

    // Every stalled connection is closed by the server, none is left hanging.
    let bound = Duration::from_secs(30);
    for mut c in heads.into_iter().chain(bodies) {
        assert!(
            c.closed_by_server(bound).await,
            "a stalled request was never cut"
        );
    }
    assert!(
        idle.closed_by_server(bound).await,
        "an idle connection stayed open"
    );
    for s in &silent {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(bound, s.readable()).await;
        assert!(read.is_ok(), "a silent connection stayed open");
        assert!(matches!(s.try_read(&mut byte), Ok(0) | Err(_)));
    }
    let metrics = wait_for(
        &tls.client(),
        format!("{}/metrics", server.url()),
        "reason=\"idle_timeout\"} ",
    )
    .await;
    for (reason, n) in [
        ("tls_handshake_timeout", EACH as u64),
        ("header_read_timeout", EACH as u64),
        ("body_read_timeout", EACH as u64),
    ] {
        let name = format!("imagegate_connections_cut_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&metrics, &name), n, "{metrics}");
    }
    assert!(
        metric(
            &metrics,
            "imagegate_connections_cut_total{reason=\"idle_timeout\"}"
        ) >= 1
    );
    // The honest connection went idle too, and is cut like any other.
    assert!(honest.closed_by_server(bound).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_and_bodies_over_the_maximum_are_refused() {
    let tls = Tls::new();
    let settings = data("settings.yaml").display().to_string();
    let server = tls.start(&[
        "-s",
        &settings,
        "--max-connections",
        "3",
        "--max-body",
        "4KiB",
    ]);
    let addr = server.addr();
    let review = pod_review("ok", &[ALLOWED], json!({}));
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = Raw::tls(addr, &tls.ca_pem).await.unwrap();
        assert_eq!(c.post("/validate", &review).await.0, 200);
        held.push(c);
    }
    // The fourth is closed at once: no TLS handshake at all.
    assert!(Raw::tls(addr, &tls.ca_pem).await.is_err());
    let mut first = held.remove(0);
    let (_, metrics) = first.post_get("/metrics").await;
    assert!(
        metrics.contains("imagegate_connections_cut_total{reason=\"max_connections\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("imagegate_open_connections 3"),
        "{metrics}"
    );

    // Over --max-body: 413 saying why, and the connection is closed.
    let big = pod_review("big", &[ALLOWED], json!({"padding": "x".repeat(8192)}));
    let (status, answer) = first.post("/validate", &big).await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer.as_str().unwrap().contains("--max-body"), "{answer}");
    assert!(first.closed_by_server(Duration::from_secs(10)).await);
    // A slot is free again (once the server has let the connection go).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut next = loop {
        match Raw::tls(addr, &tls.ca_pem).await {
            Ok(c) => break c,
            Err(e) => assert!(Instant::now() < deadline, "no slot came free: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(next.post("/validate", &review).await.0, 200);
    let (_, metrics) = next.post_get("/metrics").await;
    assert!(metrics.contains("imagegate_connections_cut_total{reason=\"body_too_large\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_mid_run_keeps_open_connections() {
    let tls = Tls::new();
    let settings = data("settings.yaml").display().to_string();
    let server = tls.start(&["-s", &settings, "--reload-interval", "50ms"]);
    let addr = server.addr();
    let review = pod_review("ok", &[ALLOWED], json!({}));
    let mut open = Raw::tls(addr, &tls.ca_pem).await.unwrap();
    assert_eq!(open.post("/validate", &review).await.0, 200);

    // cert-manager issues a certificate from a new CA: both files change.
    let rotated = Tls::new();
    std::fs::copy(&rotated.key, &tls.key).unwrap();
    std::fs::copy(&rotated.cert, &tls.cert).unwrap();
    wait_for(
        &rotated.client(),
        format!("{}/metrics", server.url()),
        "imagegate_tls_reloads_total{result=\"applied\"} 1",
    )
    .await;
    // The connection opened before the rotation goes on being served...
    assert_eq!(open.post("/validate", &review).await.0, 200);
    // ...new connections get the new certificate only.
    assert!(Raw::tls(addr, &tls.ca_pem).await.is_err());
    let mut fresh = Raw::tls(addr, &rotated.ca_pem).await.unwrap();
    assert_eq!(fresh.post("/validate", &review).await.0, 200);

    // A half-written pair (key of another certificate) is refused; the
    // rotated certificate stays in use.
    let other = Tls::new();
    std::fs::copy(&other.key, &tls.key).unwrap();
    wait_for(
        &rotated.client(),
        format!("{}/metrics", server.url()),
        "imagegate_tls_reloads_total{result=\"refused\"} 1",
    )
    .await;
    assert!(Raw::tls(addr, &rotated.ca_pem).await.is_ok());
}

/// Settings whose every image of `registry` needs a cosign check: against
/// a port that accepts connections and never answers, each evaluation stays
/// in flight until the evaluation deadline.
fn slow_settings(dir: &std::path::Path, registry: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap().public_key_pem();
    let settings = json!({"rules": [
        {"name": "slow", "images": [format!("{registry}/**")],
         "verify": {"anyOf": [{"cosign": {"keys": [key]}}]}},
        {"name": "fast", "images": ["registry.corp.example/**"]}
    ]});
    let path = dir.join("slow.json");
    std::fs::write(&path, settings.to_string()).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_load_finishes_every_request_in_flight_then_exits() {
    let tls = Tls::new();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let registry = silent.local_addr().unwrap().to_string();
    let settings = slow_settings(tls.dir.path(), &registry);
    let mut process = serve_lab::Process::start(
        &tls,
        &[
            "-s",
            &settings,
            "--insecure-registry",
            &registry,
            "--timeout",
            "3s",
            "--disable-cache",
        ],
        tls.dir.path().join("serve.log"),
    );
    let url = process.url.clone();
    let client = tls.client();

    // Load: fast decisions on a loop, and slow ones that stay in flight.
    let fast = {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            let review = pod_review("fast", &[ALLOWED], json!({}));
            let (mut answered, mut refused) = (0, 0);
            loop {
                match client
                    .post(format!("{url}/validate"))
                    .json(&review)
                    .send()
                    .await
                {
                    Ok(r) => {
                        let v: serde_json::Value = r.json().await.expect("a whole answer");
                        assert_eq!(v["response"]["allowed"], true, "{v}");
                        answered += 1;
                    }
                    // After the drain began new connections are refused.
                    Err(e) if e.is_connect() => {
                        refused += 1;
                        if refused > 3 {
                            return answered;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => panic!("a request was lost: {e:?}"),
                }
            }
        })
    };
    let slow: Vec<_> = (0..4)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            let image = format!("{registry}/app:{i}");
            tokio::spawn(async move {
                let review = pod_review("slow", &[&image], json!({}));
                let r = client
                    .post(format!("{url}/validate"))
                    .json(&review)
                    .send()
                    .await;
                let v: serde_json::Value = r.expect("answered").json().await.unwrap();
                v["response"].clone()
            })
        })
        .collect();
    wait_for(
        &client,
        format!("{url}/metrics"),
        "imagegate_in_flight_requests 4",
    )
    .await;

    let sent = Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let status = process.terminate();
        (status, process.log())
    });
    for s in slow {
        let response = s.await.unwrap();
        assert_eq!(response["allowed"], false);
        let message = response["status"]["message"].as_str().unwrap();
        assert!(
            message.contains("deadline") || message.contains("execution time"),
            "{message}"
        );
    }
    let answered = fast.await.unwrap();
    let (status, log) = status.await.unwrap();
    assert!(status.success(), "exit {status}: {log}");
    assert!(
        log.contains("SIGTERM: draining") && log.contains("stopped"),
        "{log}"
    );
    println!(
        "{answered} fast requests answered; drained and exited {:?} after SIGTERM",
        sent.elapsed()
    );
    drop(silent);
}
