//! Limits and host failures, through the real policy module and runtime.
//!
//! Needs the built module: `make policy.wasm` (or `IMAGEGATE_POLICY=path`).
//! Sizes: 10 000 containers, a 10 MiB object, 100 000 rules, a Tanzu
//! namePattern of 2^25 spellings read at request time. Each test
//! checks the answer, or — where a limit is hit — that the denial names the
//! limit; time and peak guest memory are printed (`--nocapture`), never
//! asserted (performance belongs in benchmarks).
//!
//! Host failures: every error, malformed answer and timeout of a host
//! capability is a denial whose message names the cause.

use std::sync::Arc;
use std::time::{Duration, Instant};

use imagegate::capabilities::{Backend, Capabilities, CapabilityAllowList, Request};
use imagegate::runtime::admission::{self, AdmissionRequest, AdmissionResponse};
use imagegate::runtime::{Policy, RuntimeConfig, TIMEOUT_MESSAGE};
use imagegate_policy::testing::{self, D1, KEY};
use imagegate_policy::wire::SigstoreVerifyRequest;
use serde_json::{json, Map, Value};

const MIB: usize = 1024 * 1024;

type Answer = Box<dyn Fn(&Request, Option<Instant>) -> Result<Vec<u8>, String> + Send + Sync>;

/// A capability backend answering with a closure, and imagegate's own
/// operations as Kubewarden's policy-server does: these tests are about the
/// answers of the Kubewarden capabilities (`oci/v2/verify`, ...), which the
/// module falls back to.
struct Scripted(Answer);

impl Backend for Scripted {
    fn answer(&self, request: &Request, deadline: Option<Instant>) -> Result<Vec<u8>, String> {
        match request {
            Request::VerifySignature(_) | Request::VerifyAttestation(_) => {
                Err("unknown namespace: imagegate".to_string())
            }
            _ => (self.0)(request, deadline),
        }
    }
}

fn wasm() -> Vec<u8> {
    let path = testing::policy_wasm();
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("cannot read the policy module {}: {e}", path.display()))
}

fn policy(config: RuntimeConfig, answer: Answer) -> Policy {
    let caps = Capabilities::new(
        CapabilityAllowList::allow_all(),
        None,
        Box::new(Scripted(answer)),
    );
    Policy::new(&wasm(), config, Arc::new(caps)).unwrap()
}

fn offline() -> Answer {
    Box::new(|r, _| Err(format!("unexpected host call {r:?}")))
}

fn settings(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn pod(containers: Vec<Value>, annotations: Value) -> AdmissionRequest {
    testing::Request::pod_with(containers)
        .annotations(annotations)
        .admission_request()
}

fn containers(n: usize, image: impl Fn(usize) -> String) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"name": format!("c{i}"), "image": image(i)}))
        .collect()
}

/// Evaluates in one instance (so its peak memory can be read) under the
/// deadline; prints time and peak memory.
fn evaluate(
    label: &str,
    p: &Policy,
    req: &AdmissionRequest,
    s: &Map<String, Value>,
) -> AdmissionResponse {
    let started = Instant::now();
    let mut instance = p.instantiate().unwrap();
    let response = admission::validate(&mut instance, req, s);
    println!(
        "{label}: {:?}, peak guest memory {:.1} MiB, allowed={}",
        started.elapsed(),
        instance.peak_memory() as f64 / MIB as f64,
        response.allowed
    );
    response
}

fn message(r: &AdmissionResponse) -> String {
    r.status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default()
}

fn corp_rules() -> Map<String, Value> {
    settings(
        json!({"rules": [{"name": "corp", "images": ["registry.corp.io/**"],
        "tags": {"deny": ["latest"]}}]}),
    )
}

#[test]
fn ten_thousand_containers_are_all_checked() {
    let p = policy(RuntimeConfig::default(), offline());
    let ok = pod(
        containers(10_000, |i| format!("registry.corp.io/team/app{i}:1")),
        json!({}),
    );
    let r = evaluate("10 000 allowed containers", &p, &ok, &corp_rules());
    assert!(r.allowed, "{}", message(&r));

    // The last one is hidden among 9 999 good ones; every third one is latest.
    let mut bad = containers(10_000, |i| {
        if i % 3 == 0 {
            format!("registry.corp.io/team/app{i}")
        } else {
            format!("registry.corp.io/team/app{i}:1")
        }
    });
    bad[9_999] = json!({"name": "last", "image": "evil.io/x:1"});
    let r = evaluate(
        "10 000 containers, 3 334 denied",
        &p,
        &pod(bad, json!({})),
        &corp_rules(),
    );
    let m = message(&r);
    assert!(!r.allowed);
    assert!(
        m.starts_with("imagegate denied 3334 of 10000 images: "),
        "{}",
        &m[..200.min(m.len())]
    );
    assert!(
        m.ends_with(
            r#"container "last": image "evil.io/x:1": matches no rule; unmatched: deny (the default because rule "corp" allows)"#
        ),
        "{}",
        &m[m.len().saturating_sub(200)..]
    );
}

#[test]
fn ten_mib_object_is_answered() {
    let p = policy(RuntimeConfig::default(), offline());
    let big = json!({"blob": "x".repeat(10 * MIB)});
    let req = pod(containers(2, |_| "registry.corp.io/a:1".into()), big);
    let r = evaluate("10 MiB object", &p, &req, &corp_rules());
    assert!(r.allowed, "{}", message(&r));
}

#[test]
fn memory_limit_denial_names_the_limit() {
    let config = RuntimeConfig {
        memory_limit: 16 * MIB,
        ..Default::default()
    };
    let p = policy(config, offline());
    let big = json!({"blob": "x".repeat(10 * MIB)});
    let req = pod(containers(2, |_| "registry.corp.io/a:1".into()), big);
    let r = evaluate("10 MiB object, 16 MiB limit", &p, &req, &corp_rules());
    assert!(!r.allowed);
    assert!(
        message(&r).contains("policy exceeded its memory limit of 16 MiB"),
        "{}",
        message(&r)
    );
}

#[test]
fn hundred_thousand_rules() {
    let rules: Vec<Value> = (0..100_000)
        .map(
            |i| json!({"name": format!("r{i}"), "images": [format!("registry{i}.corp.io/app/**")]}),
        )
        .collect();
    let s = settings(json!({ "rules": rules }));
    let req = pod(
        vec![
            json!({"name": "a", "image": "registry99999.corp.io/app/x:1"}),
            json!({"name": "b", "image": "registry100000.corp.io/app/x:1"}),
        ],
        json!({}),
    );
    // No deadline: what it costs.
    let p = policy(
        RuntimeConfig {
            timeout: None,
            ..Default::default()
        },
        offline(),
    );
    let r = evaluate("100 000 rules, no deadline", &p, &req, &s);
    assert!(!r.allowed);
    assert_eq!(
        message(&r),
        r#"imagegate denied 1 of 2 images: container "b": image "registry100000.corp.io/app/x:1": matches no rule; unmatched: deny (the default because rule "r0" allows)"#
    );
    // Under a deadline it cannot meet: the denial says so.
    let p = policy(
        RuntimeConfig {
            timeout: Some(Duration::from_millis(20)),
            ..Default::default()
        },
        offline(),
    );
    let r = evaluate("100 000 rules, 20 ms deadline", &p, &req, &s);
    assert!(!r.allowed);
    assert_eq!(message(&r), TIMEOUT_MESSAGE);
}

fn verify_settings() -> Map<String, Value> {
    settings(json!({"keys": {"k": {"cosign": KEY}},
        "rules": [{"name": "signed", "images": ["ghcr.io/corp/**"],
                   "verify": {"anyOf": [{"cosign": {"keys": ["k"]}}]}}]}))
}

fn signed_pod() -> AdmissionRequest {
    pod(
        vec![json!({"name": "app", "image": "ghcr.io/corp/app:1.0"})],
        json!({}),
    )
}

/// Each broken host answer is a denial whose message names the cause.
#[test]
fn host_failures_fail_closed_naming_the_cause() {
    // (label, the host's answer, what the denial must say)
    type Case = (&'static str, Result<Vec<u8>, String>, &'static str);
    let cases: Vec<Case> = vec![
        (
            "error",
            Err("connection refused".into()),
            "connection refused",
        ),
        (
            "not JSON",
            Ok(b"<html>502 Bad Gateway</html>".to_vec()),
            "malformed answer from host capability oci/v2/verify",
        ),
        (
            "wrong shape",
            Ok(br#"{"trusted": true}"#.to_vec()),
            "malformed answer from host capability oci/v2/verify",
        ),
        (
            "is_trusted false",
            Ok(json!({"is_trusted": false, "digest": D1})
                .to_string()
                .into_bytes()),
            "the host answered is_trusted: false",
        ),
        (
            "digest not a digest",
            Ok(json!({"is_trusted": true, "digest": "latest"})
                .to_string()
                .into_bytes()),
            r#"the host returned an invalid digest "latest""#,
        ),
        (
            "upper-case digest",
            Ok(json!({"is_trusted": true, "digest": D1.to_uppercase()})
                .to_string()
                .into_bytes()),
            "the host returned an invalid digest",
        ),
        (
            "huge answer",
            Ok(
                json!({"is_trusted": false, "digest": D1, "pad": "x".repeat(8 * MIB)})
                    .to_string()
                    .into_bytes(),
            ),
            "the host answered is_trusted: false",
        ),
    ];
    for (label, answer, cause) in cases {
        let p = policy(
            RuntimeConfig::default(),
            Box::new(move |r, _| match r {
                Request::Sigstore(SigstoreVerifyRequest::SigstorePubKeyVerify {
                    image, ..
                }) => {
                    assert_eq!(image, "ghcr.io/corp/app:1.0");
                    answer.clone()
                }
                other => Err(format!("unexpected {other:?}")),
            }),
        );
        let r = evaluate(label, &p, &signed_pod(), &verify_settings());
        assert!(!r.allowed, "{label}");
        let m = message(&r);
        assert!(
            m.starts_with(r#"imagegate denied 1 of 1 images: container "app": image "ghcr.io/corp/app:1.0": rule "signed": no signature check passed: cosign key "k": "#),
            "{label}: {m}"
        );
        assert!(m.contains(cause), "{label}: {m}");
    }
    // Sanity: the same host answering properly admits the image.
    let p = policy(
        RuntimeConfig::default(),
        Box::new(|_, _| {
            Ok(json!({"is_trusted": true, "digest": D1})
                .to_string()
                .into_bytes())
        }),
    );
    assert!(evaluate("trusted", &p, &signed_pod(), &verify_settings()).allowed);
}

/// A capability that outlives the deadline: the evaluation is interrupted
/// with policy-server's message, never admitted.
#[test]
fn capability_timeout_fails_closed() {
    let p = policy(
        RuntimeConfig {
            timeout: Some(Duration::from_millis(300)),
            ..Default::default()
        },
        Box::new(|_, deadline| {
            let until = deadline.expect("host calls get the deadline") + Duration::from_millis(50);
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
            Ok(json!({"is_trusted": true, "digest": D1})
                .to_string()
                .into_bytes())
        }),
    );
    let r = evaluate(
        "capability past the deadline",
        &p,
        &signed_pod(),
        &verify_settings(),
    );
    assert!(!r.allowed);
    assert_eq!(message(&r), TIMEOUT_MESSAGE);
}

/// Garbled `validate` and `validate_settings` payloads through the real
/// module: always an answer (a rejection that says why), never a trap.
#[test]
fn garbled_payloads_are_answered_not_trapped() {
    use imagegate::runtime::Invoke;
    let p = policy(RuntimeConfig::default(), offline());
    let good = serde_json::to_vec(&json!({"request": signed_pod(), "settings": {}})).unwrap();
    let deep = format!(
        "{{\"request\":{{\"kind\":{{\"kind\":\"Pod\"}},\"object\":{}{}}}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    // Deep inside a container: read or not, the unparsable image is denied.
    let deep_container = format!(
        "{{\"request\":{{\"kind\":{{\"kind\":\"Pod\"}},\"object\":{{\"spec\":{{\"containers\":[{{\"image\":\"UPPER\",\"x\":{}{}}}]}}}}}}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let payloads: Vec<(&str, Vec<u8>)> = vec![
        (
            "100 000 nested arrays in a container",
            deep_container.into_bytes(),
        ),
        ("empty", Vec::new()),
        ("not UTF-8", vec![0xff, 0xfe, 0x00, 0x7b]),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("a JSON string", br#""validate""#.to_vec()),
        ("request is a number", br#"{"request": 1}"#.to_vec()),
        (
            "settings are a list",
            br#"{"request": {}, "settings": []}"#.to_vec(),
        ),
        ("100 000 nested arrays", deep.into_bytes()),
        ("10 MiB of spaces", vec![b' '; 10 * MIB]),
    ];
    for (label, payload) in payloads {
        let mut instance = p.instantiate().unwrap();
        let out = instance
            .invoke("validate", &payload)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let r: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(r["accepted"], json!(false), "{label}: {r}");
        let m = r["message"].as_str().unwrap_or_default();
        assert!(m.starts_with("imagegate: "), "{label}: {m}");
        println!("{label}: {}", &m[..m.len().min(120)]);

        let out = instance
            .invoke("validate_settings", &payload)
            .unwrap_or_else(|e| panic!("{label} (settings): {e}"));
        let r: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(r["valid"], json!(false), "{label}: {r}");
        assert!(
            !r["message"].as_str().unwrap_or_default().is_empty(),
            "{label}: {r}"
        );
    }
}

/// A Tanzu ClusterImagePolicy read at request time whose namePattern has
/// 25 starred components (2^25 spellings, which the guest once built on
/// every request) is converted and answered within the default limits.
#[test]
fn tanzu_name_pattern_of_25_stars_is_answered() {
    let pattern = format!("reg.io/{}", vec!["a*"; 25].join("/"));
    let cip = json!({"apiVersion": "signing.apps.tanzu.vmware.com/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": "image-policy"},
        "spec": {"verification": {"keys": [{"name": "k", "publicKey": KEY}],
            "images": [{"namePattern": pattern, "keys": [{"name": "k"}]}]}}});
    let answer: Answer = Box::new(move |r, _| match r {
        Request::KubernetesGetResource(_) => Ok(serde_json::to_vec(&cip).unwrap()),
        other => Err(format!("unexpected host call {other:?}")),
    });
    let context_aware = [(
        "signing.apps.tanzu.vmware.com/v1beta1".to_string(),
        "ClusterImagePolicy".to_string(),
    )];
    let caps = Capabilities::new(
        CapabilityAllowList::allow_all(),
        Some(context_aware.into_iter().collect()),
        Box::new(Scripted(answer)),
    );
    let p = Policy::new(&wasm(), RuntimeConfig::default(), Arc::new(caps)).unwrap();
    let req = pod(containers(1, |_| "reg.io/team/app:1".into()), json!({}));
    let s = settings(json!({"sources": {"tanzu": true}}));
    let r = evaluate("Tanzu namePattern of 25 stars", &p, &req, &s);
    // The image matches none of the 16 patterns kept: Tanzu's unmatched warning.
    assert!(r.allowed, "{}", message(&r));
    assert!(
        r.warnings.unwrap_or_default()[0].ends_with("did not match any image policies. Container will be created as AllowUnmatchedImages flag is true."),
    );
}
