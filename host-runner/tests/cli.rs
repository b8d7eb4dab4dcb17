//! `imagegate run`, `test` and `bench` as a user runs them.

mod guest;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use guest::Behavior;
use serde_json::Value;

fn imagegate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `imagegate run` with only the host capabilities `allowed`.
fn run_allowing(wasm: &str, req: &str, allowed: &str) -> Output {
    imagegate(&[
        "run",
        wasm,
        "-r",
        req,
        "--allowed-host-capabilities",
        allowed,
    ])
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn setup(validate: Behavior, settings: Behavior) -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let wasm = guest::write(dir.path(), "guest.wasm", &validate, &settings);
    let req = dir.path().join("review.json");
    std::fs::write(&req, guest::pod_review()).unwrap();
    (dir, wasm.display().to_string(), req.display().to_string())
}

#[test]
fn run_prints_one_kwctl_line_and_nothing_from_the_guest() {
    let (_d, wasm, req) = setup(Behavior::WriteStdio, Behavior::Accept);
    let out = imagegate(&["run", &wasm, "-r", &req]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "{\"uid\":\"1299d386-525b-4032-98ae-1949f69f9cfc\",\"allowed\":true,\"auditAnnotations\":null,\"warnings\":null}\n"
    );
    assert!(!text(&out.stderr).contains("GUEST WROTE THIS"));
}

#[test]
fn run_reads_stdin_and_the_policy_flag() {
    let (_d, wasm, req) = setup(Behavior::Accept, Behavior::Accept);
    let child = Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .args(["run", "--policy", &wasm, "-r", "-", "--settings-json", "{}"])
        .stdin(std::fs::File::open(&req).unwrap())
        .output()
        .unwrap();
    assert!(child.status.success(), "{}", text(&child.stderr));
    let v: Value = serde_json::from_slice(&child.stdout).unwrap();
    assert_eq!(v["allowed"], true);
}

#[test]
fn invalid_settings_exit_1() {
    let (_d, wasm, req) = setup(Behavior::Accept, Behavior::dns("localhost"));
    // the settings host call is denied
    let out = run_allowing(&wasm, &req, "oci/*");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("Provided settings are not valid: host call failed"),
        "{}",
        text(&out.stderr)
    );
    // the flag without values denies everything too
    let out = imagegate(&[
        "run",
        "-r",
        &req,
        "--policy",
        &wasm,
        "--allowed-host-capabilities",
    ]);
    assert_eq!(out.status.code(), Some(1));
    // allowed
    let out = run_allowing(&wasm, &req, "net/v1/*");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // settings that are not a map
    let out = imagegate(&["run", &wasm, "-r", &req, "--settings-json", "[1]"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("settings must be a map or null"));
}

#[test]
fn rejection_still_exits_0() {
    let (_d, wasm, req) = setup(Behavior::dns("localhost"), Behavior::Accept);
    let out = run_allowing(&wasm, &req, "oci/*");
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["allowed"], false);
    assert_eq!(v["status"]["message"], "host call failed");
}

#[test]
fn record_and_replay_from_the_cli() {
    let (d, wasm, req) = setup(Behavior::dns("localhost"), Behavior::dns("localhost"));
    let session = d.path().join("s.yml").display().to_string();
    let out = imagegate(&["run", &wasm, "-r", &req, "--record", &session]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let recorded = std::fs::read_to_string(&session).unwrap();
    assert_eq!(recorded.matches("!DNSLookupHost").count(), 2, "{recorded}");

    let out = imagegate(&[
        "run",
        &wasm,
        "-r",
        &req,
        "--replay-host-capabilities-interactions",
        &session,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["allowed"],
        true
    );

    // a session recorded for another host does not replay
    std::fs::write(
        &session,
        recorded.replace("host: localhost", "host: example.com"),
    )
    .unwrap();
    let out = imagegate(&["run", &wasm, "-r", &req, "--replay", &session]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn context_aware_access_needs_the_flag_and_the_metadata() {
    let get = Behavior::HostCall {
        namespace: "kubernetes".into(),
        operation: "get_resource".into(),
        payload: r#"{"api_version":"v1","kind":"Namespace","name":"prod","namespace":null,"disable_cache":false}"#.into(),
    };
    let (d, wasm, req) = setup(get, Behavior::Accept);
    let ctx = d.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("ns.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: prod\n",
    )
    .unwrap();
    let meta = d.path().join("metadata.yml");
    std::fs::write(
        &meta,
        "contextAwareResources:\n- apiVersion: v1\n  kind: Namespace\n",
    )
    .unwrap();
    let (ctx, meta) = (ctx.display().to_string(), meta.display().to_string());
    let allowed = |extra: &[&str]| {
        let mut args = vec!["run", &wasm, "-r", &req, "--context", &ctx];
        args.extend_from_slice(extra);
        let out = imagegate(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["allowed"].clone()
    };
    assert_eq!(allowed(&[]), false);
    assert_eq!(allowed(&["--metadata", &meta]), false);
    assert_eq!(
        allowed(&["--allow-context-aware", "--metadata", &meta]),
        true
    );
}

#[test]
fn timeout_from_the_cli() {
    let (_d, wasm, req) = setup(Behavior::Loop, Behavior::Accept);
    let out = imagegate(&["run", &wasm, "-r", &req, "--timeout", "100ms"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["status"],
        serde_json::json!({"message": "Policy execution interrupted because it exceeded the allowed execution time", "code": 500})
    );
}

fn fixture(root: &Path, name: &str, expect: &str, extra: &[(&str, &str)]) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("request.json"), guest::pod_review()).unwrap();
    std::fs::write(dir.join("expect.yaml"), expect).unwrap();
    for (file, content) in extra {
        std::fs::write(dir.join(file), content).unwrap();
    }
}

#[test]
fn test_command_reports_failures_and_counts() {
    let (d, wasm, _req) = setup(Behavior::dns("localhost"), Behavior::Accept);
    let root = d.path().join("fixtures");
    let session = "- type: Exchange\n  request: |\n    !DNSLookupHost\n    host: localhost\n  response:\n    type: Success\n    payload: '{\"ips\":[\"127.0.0.1\"]}'\n";
    fixture(
        &root,
        "a-offline-denied",
        "allowed: false\nmessage_contains: [host call failed]\n",
        &[],
    );
    fixture(
        &root,
        "b-replayed",
        "description: replayed dns\nallowed: true\npatch: []\n",
        &[("session.yml", session)],
    );
    fixture(&root, "c-wrong", "allowed: true\n", &[]);
    fixture(&root, "d-typo", "alowed: true\n", &[]);
    let out = imagegate(&["test", &root.display().to_string(), "--policy", &wasm]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with("FAIL c-wrong: expected allowed=true, got allowed=false"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("FAIL d-typo: invalid expect.yaml"),
        "{stdout}"
    );
    assert_eq!(lines[2], "2 passed, 2 failed");

    std::fs::remove_dir_all(root.join("c-wrong")).unwrap();
    std::fs::remove_dir_all(root.join("d-typo")).unwrap();
    let out = imagegate(&["test", &root.display().to_string(), "--policy", &wasm]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert_eq!(text(&out.stdout), "2 passed, 0 failed\n");

    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = imagegate(&["test", &empty.display().to_string(), "--policy", &wasm]);
    assert!(!out.status.success());
    assert!(text(&out.stdout).ends_with("0 passed, 0 failed\n"));
}

#[test]
fn unused_session_exchanges_fail_a_fixture() {
    let (d, wasm, _req) = setup(Behavior::Accept, Behavior::Accept);
    let root = d.path().join("fixtures");
    let session = "- type: Exchange\n  request: |\n    !DNSLookupHost\n    host: localhost\n  response:\n    type: Error\n    message: boom\n";
    fixture(
        &root,
        "stale",
        "allowed: true\n",
        &[("session.yml", session)],
    );
    let out = imagegate(&["test", &root.display().to_string(), "--policy", &wasm]);
    assert!(
        text(&out.stdout).contains("1 of 1 recorded exchange(s) in session.yml were not used"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn bench_reports_both_modes_and_replays_every_iteration() {
    let (d, wasm, req) = setup(Behavior::dns("localhost"), Behavior::dns("localhost"));
    let session = d.path().join("s.yml").display().to_string();
    assert!(imagegate(&["run", &wasm, "-r", &req, "--record", &session])
        .status
        .success());
    let out = imagegate(&[
        "bench",
        &wasm,
        "-r",
        &req,
        "--replay",
        &session,
        "--iterations",
        "5",
        "--warmup",
        "1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in [
        "fresh_instance_validate",
        "reused_instance_validate",
        "instantiate",
    ] {
        assert_eq!(v[k]["samples"], 5, "{v}");
        assert!(v[k]["p50_us"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(v["allowed"], true);

    // live: the capability cache is not used for DNS, counters shown
    let out = imagegate(&[
        "bench",
        &wasm,
        "-r",
        &req,
        "--iterations",
        "3",
        "--warmup",
        "0",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("fresh instance + validate (policy-server)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("capability cache: 0 hits, 0 misses"),
        "{stdout}"
    );
}
