//! The waPC host and capability dispatch through the real ABI, with WAT
//! guests: host-call texts, replay/record, gating, timeout, memory limit,
//! traps.

mod guest;

use std::sync::Arc;
use std::time::Duration;

use guest::Behavior;
use imagegate::capabilities::live::{Live, LiveConfig};
use imagegate::capabilities::{Backend, Capabilities, CapabilityAllowList, Offline};
use imagegate::runtime::admission::{self, AdmissionResponse};
use imagegate::runtime::session::{self, Record, Replay};
use imagegate::runtime::{CallError, Invoke, Policy, RuntimeConfig, TIMEOUT_MESSAGE};
use serde_json::Map;

fn policy(
    validate: Behavior,
    settings: Behavior,
    config: RuntimeConfig,
    caps: Arc<Capabilities>,
) -> Policy {
    let wasm = wat::parse_str(guest::wat(&validate, &settings)).unwrap();
    Policy::new(&wasm, config, caps).unwrap()
}

fn caps(allowed: CapabilityAllowList, backend: Box<dyn Backend>) -> Arc<Capabilities> {
    Arc::new(Capabilities::new(allowed, None, backend))
}

fn forward(
    p: &Policy,
    binding: &str,
    ns: &str,
    op: &str,
    payload: &str,
) -> Result<String, CallError> {
    (&*p)
        .invoke(
            "forward",
            format!("{binding}\n{ns}\n{op}\n{payload}").as_bytes(),
        )
        .map(|b| String::from_utf8(b).unwrap())
}

fn request() -> admission::AdmissionRequest {
    admission::parse_request(&guest::pod_review(), &admission::Requester::default()).unwrap()
}

fn failure(text: &str) -> Result<String, CallError> {
    Err(CallError::GuestCallFailure(text.into()))
}

#[test]
fn host_errors_reach_the_guest_verbatim() {
    let p = policy(
        Behavior::Accept,
        Behavior::Accept,
        RuntimeConfig::default(),
        caps(CapabilityAllowList::allow_all(), Box::new(Offline)),
    );
    assert_eq!(
        forward(&p, "other", "oci", "v1/verify", "{}"),
        failure("unknown binding: other")
    );
    assert_eq!(
        forward(&p, "kubewarden", "notation", "v1/verify", "{}"),
        failure("unknown namespace: notation")
    );
    assert_eq!(
        forward(&p, "kubewarden", "oci", "v3/verify", "{}"),
        failure("unknown operation: v3/verify")
    );
    assert_eq!(
        forward(&p, "kubewarden", "net", "v1/dns_lookup_host", "42"),
        failure("invalid type: integer `42`, expected a string at line 1 column 2")
    );
    let offline = forward(
        &p,
        "kubewarden",
        "net",
        "v1/dns_lookup_host",
        "\"localhost\"",
    )
    .unwrap_err();
    assert!(
        offline
            .to_string()
            .contains("Callback evaluation failure: host capabilities are not available offline"),
        "{offline}"
    );
    // tracing/log is always answered, with an empty payload
    assert_eq!(
        forward(
            &p,
            "kubewarden",
            "tracing",
            "log",
            r#"{"level":"info","message":"hi"}"#
        ),
        Ok(String::new())
    );
}

#[test]
fn gating_denies_with_kubewardens_text() {
    let p = policy(
        Behavior::Accept,
        Behavior::Accept,
        RuntimeConfig::default(),
        caps(
            CapabilityAllowList::new(&["oci/*".into()]).unwrap(),
            Box::new(Offline),
        ),
    );
    assert_eq!(
        forward(&p, "kubewarden", "net", "v1/dns_lookup_host", "\"localhost\""),
        failure("Policy has not been granted access to the 'net/v1/dns_lookup_host' host capability. The violation has been reported.")
    );
    assert_eq!(
        forward(&p, "kubewarden", "notary", "v1/signed_digest", r#"{"image":"i","server":"s","signers":[],"ca_cert":null}"#),
        failure("Policy has not been granted access to the 'notary/v1/signed_digest' host capability. The violation has been reported.")
    );
}

#[test]
fn live_dns_answers_through_the_abi() {
    let live = Live::new(LiveConfig::default()).unwrap();
    let p = policy(
        Behavior::Accept,
        Behavior::Accept,
        RuntimeConfig::default(),
        caps(CapabilityAllowList::allow_all(), Box::new(live)),
    );
    let out = forward(
        &p,
        "kubewarden",
        "net",
        "v1/dns_lookup_host",
        "\"localhost\"",
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(!v["ips"].as_array().unwrap().is_empty(), "{out}");
}

#[test]
fn record_then_replay_the_same_session() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("session.yml");
    let live = Live::new(LiveConfig::default()).unwrap();
    let recording = caps(
        CapabilityAllowList::allow_all(),
        Box::new(Record::new(Box::new(live), file.clone())),
    );
    let p = policy(
        Behavior::dns("localhost"),
        Behavior::dns("localhost"),
        RuntimeConfig::default(),
        recording.clone(),
    );
    // host calls happen in validate_settings too
    assert!(admission::validate_settings(&mut &p, &Map::new()).valid);
    assert!(admission::validate(&mut &p, &request(), &Map::new()).allowed);
    // tracing is not recorded
    forward(
        &p,
        "kubewarden",
        "tracing",
        "log",
        r#"{"level":"debug","message":"x"}"#,
    )
    .unwrap();
    recording.finish().unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let exchanges = session::parse(&text).unwrap();
    assert_eq!(exchanges.len(), 2, "{text}");
    assert_eq!(exchanges[0].request, "!DNSLookupHost\nhost: localhost\n");
    assert!(
        text.starts_with("- type: Exchange\n  request: |\n    !DNSLookupHost\n"),
        "{text}"
    );

    let replaying = caps(
        CapabilityAllowList::allow_all(),
        Box::new(Replay::from_file(&file).unwrap()),
    );
    let p = p.with_callbacks(replaying);
    assert!(admission::validate_settings(&mut &p, &Map::new()).valid);
    assert!(admission::validate(&mut &p, &request(), &Map::new()).allowed);
    // exhausted
    assert_eq!(
        forward(
            &p,
            "kubewarden",
            "net",
            "v1/dns_lookup_host",
            "\"localhost\""
        ),
        failure("Callback evaluation failure: the list of recorded responses is empty")
    );
}

#[test]
fn replay_mismatch_is_reported() {
    let replay = Replay::new(session::parse("- type: Exchange\n  request: |\n    !DNSLookupHost\n    host: localhost\n  response:\n    type: Success\n    payload: '{\"ips\":[\"127.0.0.1\"]}'\n").unwrap()).unwrap();
    let p = policy(
        Behavior::Accept,
        Behavior::Accept,
        RuntimeConfig::default(),
        caps(CapabilityAllowList::allow_all(), Box::new(replay)),
    );
    assert_eq!(
        forward(&p, "kubewarden", "oci", "v1/manifest_digest", "\"busybox\""),
        failure("Callback evaluation failure: Replay error: unexpected request. Was expecting DNSLookupHost { host: \"localhost\" }, got OciManifestDigest { image: \"busybox\" } instead")
    );
}

fn offline_policy(validate: Behavior, config: RuntimeConfig) -> Policy {
    policy(
        validate,
        Behavior::Accept,
        config,
        caps(CapabilityAllowList::allow_all(), Box::new(Offline)),
    )
}

#[test]
fn endless_guest_is_interrupted() {
    let config = RuntimeConfig {
        timeout: Some(Duration::from_millis(100)),
        ..Default::default()
    };
    let p = offline_policy(Behavior::Loop, config);
    let r = admission::validate(&mut &p, &request(), &Map::new());
    assert_eq!(
        r,
        AdmissionResponse::reject(
            "1299d386-525b-4032-98ae-1949f69f9cfc",
            TIMEOUT_MESSAGE.into(),
            500
        )
    );
    // a reused instance is rebuilt after the interruption and keeps answering
    let mut instance = p.instantiate().unwrap();
    assert_eq!(instance.invoke("validate", b"{}"), Err(CallError::Timeout));
    assert_eq!(
        instance.invoke("protocol_version", b""),
        Ok(b"\"v1\"".to_vec())
    );
}

#[test]
fn memory_limit_is_enforced() {
    let small = RuntimeConfig {
        memory_limit: 4 << 20,
        ..Default::default()
    };
    // 8 initial pages (512 KiB) + 100 pages (6.25 MiB) > 4 MiB
    let p = offline_policy(Behavior::Grow(100), small.clone());
    let r = admission::validate(&mut &p, &request(), &Map::new());
    let status = r.status.unwrap();
    assert_eq!(status.code, Some(500));
    assert!(status
        .message
        .unwrap()
        .starts_with("internal server error: Guest call failure:"));
    // within the limit it works
    let p = offline_policy(Behavior::Grow(10), small);
    assert!(admission::validate(&mut &p, &request(), &Map::new()).allowed);
}

#[test]
fn guest_trap_is_an_internal_server_error() {
    let p = offline_policy(Behavior::Trap, RuntimeConfig::default());
    let r = admission::validate(&mut &p, &request(), &Map::new());
    assert!(!r.allowed);
    let status = r.status.unwrap();
    assert_eq!(status.code, Some(500));
    let message = status.message.unwrap();
    assert!(
        message.starts_with("internal server error: Guest call failure:"),
        "{message}"
    );
    assert!(message.contains("unreachable"), "{message}");
}

#[test]
fn unparsable_response_is_an_internal_server_error() {
    let p = offline_policy(
        Behavior::Respond("{\"allowed\":true}".into()),
        RuntimeConfig::default(),
    );
    let r = admission::validate(&mut &p, &request(), &Map::new());
    let status = r.status.unwrap();
    assert_eq!(status.code, Some(500));
    assert!(status.message.unwrap().contains("missing field `accepted`"));
}

#[test]
fn settings_failures_use_policy_evaluators_texts() {
    let p = policy(
        Behavior::Accept,
        Behavior::Trap,
        RuntimeConfig::default(),
        caps(CapabilityAllowList::allow_all(), Box::new(Offline)),
    );
    let sv = admission::validate_settings(&mut &p, &Map::new());
    assert!(!sv.valid);
    assert!(sv
        .message
        .unwrap()
        .starts_with("Error invoking settings validation callback: GuestCallFailure(\""));
    let p = policy(
        Behavior::Accept,
        Behavior::Respond("nope".into()),
        RuntimeConfig::default(),
        caps(CapabilityAllowList::allow_all(), Box::new(Offline)),
    );
    let sv = admission::validate_settings(&mut &p, &Map::new());
    assert!(sv.message.unwrap().starts_with("error: "));
}
