//! `imagegate serve` over real HTTPS: AdmissionReview and ImageReview
//! decisions, mutation, readiness, metrics, the concurrency limit with the
//! deadline, and settings reloads.

mod serve_lab;

use base64::Engine as _;
use serde_json::{json, Value};
use serve_lab::{data, get, image_review, pod_review, post, wait_for, Tls};

fn settings_arg(name: &str) -> String {
    data(name).display().to_string()
}

fn message(review: &Value) -> String {
    review["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_reviews_readiness_and_metrics() {
    let tls = Tls::new();
    let settings = settings_arg("settings.yaml");
    let server = tls.start(&["--settings-path", &settings]);
    let client = tls.client();
    let url = |p: &str| format!("{}{p}", server.url());
    assert!(server.url().starts_with("https://127.0.0.1:"));

    let (status, body) = get(&client, url("/readyz")).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "ready: settings generation 1\n")
    );
    assert_eq!(get(&client, url("/healthz")).await.0, 200);
    assert_eq!(get(&client, url("/nope")).await.0, 404);
    assert_eq!(get(&client, url("/validate")).await.0, 405);

    // Allowed: the corporate registry with a version tag.
    let (status, review) = post(
        &client,
        url("/validate"),
        &pod_review(
            "uid-allowed",
            &["registry.corp.example/team/app:1.4"],
            json!({}),
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["kind"], "AdmissionReview");
    assert_eq!(review["response"]["uid"], "uid-allowed");
    assert_eq!(review["response"]["allowed"], true, "{review}");
    assert!(review["response"].get("patch").is_none());

    // Denied: `latest` by rule corp, and an image no rule allows; one
    // message lists both.
    let (_, review) = post(
        &client,
        url("/validate"),
        &pod_review(
            "uid-denied",
            &["registry.corp.example/team/app:latest", "quay.io/x/y:1"],
            json!({}),
        ),
    )
    .await;
    assert_eq!(review["response"]["uid"], "uid-denied");
    assert_eq!(review["response"]["allowed"], false);
    let m = message(&review);
    assert!(
        m.contains("registry.corp.example/team/app:latest") && m.contains("corp"),
        "{m}"
    );
    assert!(
        m.contains("see the image wiki") && m.contains("quay.io/x/y:1"),
        "{m}"
    );

    // A signature check: the host call fails closed and the denial says which check.
    let (_, review) = post(
        &client,
        url("/validate"),
        &pod_review("uid-signed", &["127.0.0.1:1/signed/app:2"], json!({})),
    )
    .await;
    assert_eq!(review["response"]["allowed"], false);
    let m = message(&review);
    assert!(
        m.contains("127.0.0.1:1/signed/app:2") && m.contains("signed"),
        "{m}"
    );

    // Break-glass on the object itself: admitted with a warning and an audit annotation.
    let (_, review) = post(
        &client,
        url("/validate"),
        &pod_review(
            "uid-bg",
            &["quay.io/x/y:1"],
            json!({"image-policy.k8s.io/break-glass": "true"}),
        ),
    )
    .await;
    assert_eq!(review["response"]["allowed"], true, "{review}");
    assert!(review["response"]["auditAnnotations"]["break-glass"]
        .as_str()
        .unwrap()
        .contains("alice"));

    // Not a review: 400 with the reason.
    let (status, body) = post(&client, url("/validate"), &json!({"kind": "Pod"})).await;
    assert_eq!(status, 400);
    assert!(body.as_str().unwrap().contains("AdmissionReview"), "{body}");

    let (status, metrics) = get(&client, url("/metrics")).await;
    assert_eq!(status, 200);
    for line in [
        "imagegate_requests_total{endpoint=\"validate\",decision=\"allowed\"} 2",
        "imagegate_requests_total{endpoint=\"validate\",decision=\"denied\"} 2",
        "imagegate_requests_total{endpoint=\"validate\",decision=\"bad_request\"} 1",
        "imagegate_request_duration_seconds_count{endpoint=\"validate\"} 5",
        "imagegate_request_duration_seconds_bucket{endpoint=\"validate\",le=\"+Inf\"} 5",
        "imagegate_capability_calls_total{capability=\"imagegate/v1/check_signature\",result=\"error\"} 1",
        "imagegate_capability_duration_seconds_count{capability=\"imagegate/v1/check_signature\"} 1",
        "imagegate_capability_cache_hits_total 0",
        // The tag's digest could not be resolved: no verification ran.
        "imagegate_digest_cache_misses_total 1",
        "imagegate_capability_cache_misses_total 0",
        "imagegate_in_flight_requests 0",
        "imagegate_settings_reloads_total{result=\"applied\"} 0",
        "imagegate_settings_generation 1",
        "# TYPE imagegate_request_duration_seconds histogram",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_reviews_allowed_denied_and_break_glass() {
    let tls = Tls::new();
    let settings = settings_arg("settings.yaml");
    let server = tls.start(&["--settings-path", &settings]);
    let client = tls.client();
    let url = format!("{}/imagereview", server.url());

    let (status, review) = post(
        &client,
        url.clone(),
        &image_review(&["registry.corp.example/team/app:1.4"], json!({}), "team-a"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        review,
        json!({"apiVersion": "imagepolicy.k8s.io/v1alpha1", "kind": "ImageReview", "status": {"allowed": true}})
    );

    let (_, review) = post(
        &client,
        url.clone(),
        &image_review(
            &[
                "registry.corp.example/team/app:1.4",
                "registry.corp.example/team/app:latest",
            ],
            json!({"mycluster.image-policy.k8s.io/ticket-1234": "break-glass"}),
            "team-a",
        ),
    )
    .await;
    assert_eq!(review["status"]["allowed"], false);
    let reason = review["status"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("containers[1]")
            && reason.contains("app:latest")
            && reason.contains("corp"),
        "{reason}"
    );
    assert!(!reason.contains("containers[0]"), "{reason}");

    // The documented break-glass annotation admits the same images.
    let (_, review) = post(
        &client,
        url.clone(),
        &image_review(
            &["registry.corp.example/team/app:latest"],
            json!({"alpha.image-policy.k8s.io/break-glass": "true"}),
            "team-a",
        ),
    )
    .await;
    assert_eq!(review["status"]["allowed"], true, "{review}");
    assert!(review["status"]["reason"]
        .as_str()
        .unwrap()
        .contains("break-glass"));
    assert!(review["status"]["auditAnnotations"]["break-glass"].is_string());

    // Not "true": no break-glass.
    let (_, review) = post(
        &client,
        url.clone(),
        &image_review(
            &["registry.corp.example/team/app:latest"],
            json!({"alpha.image-policy.k8s.io/break-glass": "yes"}),
            "team-a",
        ),
    )
    .await;
    assert_eq!(review["status"]["allowed"], false);

    let (status, _) = post(
        &client,
        url,
        &json!({"kind": "AdmissionReview", "spec": {}}),
    )
    .await;
    assert_eq!(status, 400);
    let (_, metrics) = get(&client, format!("{}/metrics", server.url())).await;
    assert!(metrics
        .contains("imagegate_requests_total{endpoint=\"imagereview\",decision=\"denied\"} 2"));
    assert!(metrics
        .contains("imagegate_requests_total{endpoint=\"imagereview\",decision=\"allowed\"} 2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_without_break_glass_settings_is_not_honored() {
    let tls = Tls::new();
    let settings = settings_arg("deny-corp.yaml");
    let server = tls.start(&["--settings-path", &settings]);
    let (_, review) = post(
        &tls.client(),
        format!("{}/imagereview", server.url()),
        &image_review(
            &["registry.corp.example/team/app:1"],
            json!({"alpha.image-policy.k8s.io/break-glass": "true"}),
            "",
        ),
    )
    .await;
    assert_eq!(review["status"]["allowed"], false);
    let reason = review["status"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("registry frozen")
            && reason.ends_with(
                "(break-glass annotation ignored: the settings have no breakGlass section)"
            ),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutation_is_a_base64_json_patch() {
    let tls = Tls::new();
    let settings = settings_arg("pin-settings.yaml");
    let session = settings_arg("pin-session.yml");
    let server = tls.start(&["--settings-path", &settings, "--replay", &session]);
    let (_, review) = post(
        &tls.client(),
        format!("{}/mutate", server.url()),
        &pod_review("uid-pin", &["ghcr.io/corp/app:1.0"], json!({})),
    )
    .await;
    let response = &review["response"];
    assert_eq!(response["uid"], "uid-pin");
    assert_eq!(response["allowed"], true, "{review}");
    assert_eq!(response["patchType"], "JSONPatch");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().unwrap())
        .unwrap();
    let patch: Value = serde_json::from_slice(&patch).unwrap();
    assert_eq!(
        patch,
        json!([{"op": "replace", "path": "/spec/containers/0/image",
                "value": "ghcr.io/corp/app:1.0@sha256:9a5c48a4f03fd8abc730b1dd3e8afe0904c3a717842bc133bf1430f704497be3"}])
    );
    assert!(response["auditAnnotations"]["pinned-images"]
        .as_str()
        .unwrap()
        .contains("->"));
}

/// A waPC guest whose every call spins until the deadline interrupts it.
const SPINNING_GUEST: &str = r#"
(module
  (memory (export "memory") 1)
  (func (export "__guest_call") (param i32 i32) (result i32)
    (loop $spin (br $spin))
    (i32.const 0))
  (func (export "wapc_init")))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_slots_deny_as_busy_and_the_deadline_stops_the_guest() {
    let tls = Tls::new();
    let guest = tls.dir.path().join("spin.wasm");
    std::fs::write(&guest, wat::parse_str(SPINNING_GUEST).unwrap()).unwrap();
    let guest = guest.display().to_string();
    let server = tls.start(&[
        "--policy",
        &guest,
        "--allow-empty-settings",
        "--max-concurrency",
        "1",
        "--queue-timeout",
        "off",
        "--timeout",
        "2s",
    ]);
    let client = tls.client();
    let url = server.url();

    let first = tokio::spawn({
        let client = client.clone();
        let url = format!("{url}/validate");
        async move { post(&client, url, &pod_review("uid-1", &["a:1"], json!({}))).await }
    });
    // The first review holds the only slot (it never finishes on its own).
    wait_for(
        &client,
        format!("{url}/metrics"),
        "imagegate_in_flight_requests 1",
    )
    .await;
    let (status, busy) = post(
        &client,
        format!("{url}/validate"),
        &pod_review("uid-2", &["a:1"], json!({})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(busy["response"]["uid"], "uid-2");
    assert_eq!(busy["response"]["allowed"], false);
    assert_eq!(busy["response"]["status"]["code"], 503);
    assert!(
        message(&busy).starts_with("imagegate: server busy: all 1 evaluation slots"),
        "{busy}"
    );

    let (_, timed_out) = first.await.unwrap();
    assert_eq!(timed_out["response"]["uid"], "uid-1");
    assert_eq!(timed_out["response"]["allowed"], false);
    assert_eq!(
        message(&timed_out),
        imagegate::runtime::TIMEOUT_MESSAGE,
        "{timed_out}"
    );
    let (_, metrics) = get(&client, format!("{url}/metrics")).await;
    assert!(metrics.contains("imagegate_requests_total{endpoint=\"validate\",decision=\"busy\"} 1"));
    assert!(
        metrics.contains("imagegate_requests_total{endpoint=\"validate\",decision=\"error\"} 1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_reload_applies_valid_files_and_keeps_the_old_ones_otherwise() {
    let tls = Tls::new();
    let settings = tls.dir.path().join("settings.yaml");
    std::fs::copy(data("settings.yaml"), &settings).unwrap();
    let settings = settings.display().to_string();
    let server = tls.start(&["--settings-path", &settings, "--reload-interval", "50ms"]);
    let client = tls.client();
    let url = server.url();
    let review = pod_review("uid-r", &["registry.corp.example/team/app:1.4"], json!({}));
    let decide =
        || async { post(&client, format!("{url}/validate"), &review).await.1["response"].clone() };
    assert_eq!(decide().await["allowed"], true);

    std::fs::copy(data("deny-corp.yaml"), &settings).unwrap();
    wait_for(&client, format!("{url}/readyz"), "generation 2").await;
    let denied = decide().await;
    assert_eq!(denied["allowed"], false);
    assert!(denied["status"]["message"]
        .as_str()
        .unwrap()
        .contains("registry frozen"));

    std::fs::copy(data("invalid.yaml"), &settings).unwrap();
    let metrics = wait_for(
        &client,
        format!("{url}/metrics"),
        "imagegate_settings_reloads_total{result=\"refused\"} 1",
    )
    .await;
    assert!(metrics.contains("imagegate_settings_reloads_total{result=\"applied\"} 1"));
    assert!(metrics.contains("imagegate_settings_generation 2"));
    let (_, ready) = get(&client, format!("{url}/readyz")).await;
    assert_eq!(ready, "ready: settings generation 2\n");
    assert!(decide().await["status"]["message"]
        .as_str()
        .unwrap()
        .contains("registry frozen"));

    // An empty file (as a non-atomic rewrite leaves it for a moment) is
    // refused: `{}` would admit every image.
    std::fs::write(&settings, "# nothing yet\n").unwrap();
    wait_for(
        &client,
        format!("{url}/metrics"),
        "imagegate_settings_reloads_total{result=\"refused\"} 2",
    )
    .await;
    assert_eq!(decide().await["allowed"], false);

    // Back to the first settings: applied again.
    std::fs::copy(data("settings.yaml"), &settings).unwrap();
    wait_for(&client, format!("{url}/readyz"), "generation 3").await;
    assert_eq!(decide().await["allowed"], true);
}

#[test]
fn invalid_startup_settings_and_tls_files_are_refused() {
    let tls = Tls::new();
    let policy = serve_lab::policy_path().display().to_string();
    let invalid = settings_arg("invalid.yaml");
    let err = serve_lab::start_error(&[
        "--insecure-http",
        "--policy",
        &policy,
        "--settings-path",
        &invalid,
    ]);
    assert!(err.contains("not valid") && err.contains("relase"), "{err}");
    let empty = tls.dir.path().join("empty.yaml");
    std::fs::write(&empty, "\n").unwrap();
    let err = serve_lab::start_error(&[
        "--insecure-http",
        "--policy",
        &policy,
        "--settings-path",
        &empty.display().to_string(),
    ]);
    assert!(
        err.contains("are empty; every image would be admitted"),
        "{err}"
    );

    // A TLS "key" that is a certificate is refused, naming the file.
    let cert = tls.cert.display().to_string();
    let err = serve_lab::start_error(&[
        "--policy",
        &policy,
        "--allow-empty-settings",
        "--tls-cert",
        &cert,
        "--tls-key",
        &cert,
    ]);
    assert!(err.contains("tls.crt"), "{err}");

    // Plain HTTP only with the explicit flag.
    assert!(serve_lab::parse(&["--policy", &policy]).is_err());
    assert!(
        serve_lab::parse(&["--policy", &policy, "--insecure-http", "--tls-cert", &cert]).is_err()
    );
}
