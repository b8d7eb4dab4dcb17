//! `imagegate check` as CI runs it: a directory of Deployments, a CronJob, a
//! List, `kustomize build` and `helm template` output, through the real
//! module (`make policy.wasm`), in every output format.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use imagegate_policy::testing::policy_wasm;
use serde_json::Value;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/check")
}

/// `imagegate check` run from the test data directory (paths in the output
/// are relative to it, as they are in a repository).
fn check(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .current_dir(data())
        .arg("check")
        .args(["--policy", policy_wasm().to_str().unwrap()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)))
}

/// `(file:line, object, container, status, rule)` of every image.
fn rows(v: &Value) -> Vec<String> {
    let mut rows = Vec::new();
    for o in v["objects"].as_array().unwrap() {
        for i in o["images"].as_array().unwrap() {
            rows.push(format!(
                "{}:{} {} {}/{} {} {} {}",
                o["file"].as_str().unwrap(),
                i["line"],
                o["kind"].as_str().unwrap(),
                o["namespace"].as_str().unwrap(),
                o["name"].as_str().unwrap(),
                i["container"].as_str().unwrap(),
                i["status"].as_str().unwrap(),
                i["rule"].as_str().unwrap_or("-"),
            ));
        }
    }
    rows
}

const EVERY_IMAGE: [&str; 12] = [
    r#"manifests/apps/cronjob.yaml:14 CronJob default/nightly-report container "report" denied -"#,
    r#"manifests/apps/deployments.yaml:21 Deployment shop/web container "web" allowed corporate"#,
    r#"manifests/apps/deployments.yaml:24 Deployment shop/web container "cache" denied official"#,
    r#"manifests/apps/deployments.yaml:18 Deployment shop/web init container "migrate" allowed corporate"#,
    r#"manifests/apps/deployments.yaml:40 Deployment shop/api container "api" not-verified-offline signed"#,
    r#"manifests/apps/list.json:21 StatefulSet shop/db container "postgres" allowed official"#,
    r#"manifests/helm/rendered.yaml:46 Deployment default/release-name-shop container "shop" allowed official"#,
    r#"manifests/helm/rendered.yaml:69 Pod default/release-name-shop-test-connection container "wget" denied official"#,
    r#"manifests/kustomize/build.yaml:41 Deployment payments/prod-payments container "api" denied corporate"#,
    r#"manifests/kustomize/build.yaml:43 Deployment payments/prod-payments container "worker" allowed corporate"#,
    r#"manifests/kustomize/build.yaml:57 Rollout payments/prod-payments-canary /spec/template/spec/containers/0/image unchecked -"#,
    // The same directory, the signed image verified from a recorded session.
    r#"manifests/apps/deployments.yaml:40 Deployment shop/api container "api" allowed signed"#,
];

#[test]
fn a_directory_of_manifests_is_checked_image_by_image() {
    let out = check(&["manifests", "-s", "settings.yaml", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v = json_of(&out);
    assert_eq!(rows(&v), EVERY_IMAGE[..11]);

    // Every object is there, those without images too; values.yaml is skipped.
    let kinds: Vec<&str> = v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "CronJob",
            "Deployment",
            "Deployment",
            "Service",
            "StatefulSet",
            "ServiceAccount",
            "Deployment",
            "Pod",
            "Namespace",
            "ConfigMap",
            "Deployment",
            "Rollout"
        ]
    );
    assert_eq!(v["skipped"][0]["file"], "manifests/helm/values.yaml");
    // A Namespace lives in no namespace.
    assert_eq!(v["objects"][8]["name"], "payments");
    assert_eq!(v["objects"][8].get("namespace"), None);

    // Reasons and forms come from the module's verdicts.
    let image = |object: usize, image: usize| &v["objects"][object]["images"][image];
    assert_eq!(
        image(0, 0)["reason"],
        r#"matches no rule; unmatched: deny (the default because rule "corporate" allows)"#
    );
    assert_eq!(image(1, 1)["normalized"], "docker.io/library/redis:latest");
    assert_eq!(
        image(1, 1)["reason"],
        r#"tag "latest" is denied (tags.deny "latest")"#
    );
    assert_eq!(image(1, 1)["column"], 18);
    let offline = image(2, 0)["checks"][0]["error"].as_str().unwrap();
    assert!(offline.contains("not verified offline"), "{offline}");
    assert_eq!(
        v["objects"][6]["template"], "shop/templates/deployment.yaml",
        "helm's # Source: comment"
    );
    assert_eq!(v["summary"]["denied"], 4);
    assert_eq!(v["summary"]["not_verified_offline"], 1);
    assert!(
        text(&out.stderr).starts_with("imagegate check: 12 objects (5 rejected), 11 images:"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_replayed_session_verifies_and_pins_only_pods() {
    let out = check(&[
        "manifests/apps/deployments.yaml",
        "-s",
        "settings.yaml",
        "-o",
        "json",
        "--replay-host-capabilities-interactions",
        "session.yml",
    ]);
    let v = json_of(&out);
    assert!(
        rows(&v).contains(&EVERY_IMAGE[11].to_string()),
        "{:?}",
        rows(&v)
    );
    let api = &v["objects"][1];
    assert_eq!(api["allowed"], true);
    // pinDigest: pods: the Deployment is verified, its template not rewritten.
    assert_eq!(api["images"][0]["pinned"], Value::Null);
    assert_eq!(
        api["images"][0]["checks"][0]["digest"],
        "sha256:1111111111111111111111111111111111111111111111111111111111111111"
    );
    // shop/web still has redis:latest.
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn all_admitted_exits_0_and_text_is_grouped_by_object() {
    let out = check(&[
        "manifests/apps/list.json",
        "manifests/helm/values.yaml",
        "-s",
        "settings.yaml",
        "-o",
        "text",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "manifests/apps/list.json:6: Service shop/web\n  no images\n\
         manifests/apps/list.json:12: StatefulSet shop/db\n  \
         allowed    manifests/apps/list.json:21  container \"postgres\": postgres:16.2 (docker.io/library/postgres:16.2)\n             \
         rule \"official\"\n\
         manifests/helm/values.yaml: document 1 skipped: not a Kubernetes object (no apiVersion and kind)\n\
         imagegate check: 2 objects, 1 image: 1 allowed; 1 document skipped (not Kubernetes objects)\n"
    );
}

/// Objects without a namespace are named without one; the others in
/// theirs.
#[test]
fn a_namespace_is_named_alone() {
    let out = check(&[
        "manifests/kustomize/build.yaml",
        "-s",
        "settings.yaml",
        "-o",
        "text",
    ]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(
            "manifests/kustomize/build.yaml:1: Namespace payments\n  no images\n\
             manifests/kustomize/build.yaml:8: ConfigMap payments/prod-payments-config-5k2b7g8m4c\n"
        ),
        "{stdout}"
    );
}

#[test]
fn stdin_namespace_and_exemptions() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .current_dir(data())
        .args(["check", "-", "-s", "settings.yaml", "-o", "json"])
        .args(["--policy", policy_wasm().to_str().unwrap()])
        .args(["--namespace", "kube-system"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: evil.io/x}]\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = json_of(&out);
    assert_eq!(v["objects"][0]["file"], "-");
    assert_eq!(v["objects"][0]["namespace"], "kube-system");
    let image = &v["objects"][0]["images"][0];
    assert_eq!(image["status"], "exempt");
    assert_eq!(image["line"], 5);
    assert!(image["reason"]
        .as_str()
        .unwrap()
        .contains("exemptNamespaces"));
}

#[test]
fn settings_and_input_errors_exit_2_and_say_where() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.yaml");
    std::fs::write(
        &settings,
        "rules:\n- name: corp\n  images:\n  - https://ghcr.io/corp/**\n",
    )
    .unwrap();
    let out = check(&["manifests", "-s", settings.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "imagegate check: the settings are not valid:\n{}:4:5: rules[0].images[0]: invalid pattern \
             \"https://ghcr.io/corp/**\": patterns are image references, not URLs: write ghcr.io/corp/**\n",
            settings.display()
        )
    );
    // Every error at once, in document order, each where it is (a rule
    // with a value of the wrong kind is not compiled: rules[0]'s unknown key
    // "nope" waits for the next run).
    std::fs::write(
        &settings,
        "rules:\n- name: corp\n  images: [ghcr.io/corp/**]\n  pinDigest: deployments\n  verify:\n    anyOf:\n    \
         - cosign: {keys: [nope], platforms: some}\n- name: slsa\n  images: [x/y]\n  verify:\n    allOf:\n    \
         - attestation: {predicateType: p}\nunmatched: no\n",
    )
    .unwrap();
    let out = check(&["manifests", "-s", settings.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let f = settings.display();
    assert_eq!(
        text(&out.stderr),
        format!(
            "imagegate check: the settings are not valid:\n\
             {f}:4:14: rules[0].pinDigest: invalid value: string \"deployments\", expected true, false or \"pods\"\n\
             {f}:7:41: rules[0].verify.anyOf[0].cosign.platforms: unknown variant `some`, expected `index` or `all`\n\
             {f}:12:20: rules[1].verify.allOf[0].attestation: exactly one of keys, keyless, githubActions or certificate is required\n\
             {f}:13:12: unmatched: unknown variant `no`, expected one of `allow`, `warn`, `deny`\n"
        )
    );
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "kind: Pod\n  spec: [\n").unwrap();
    let out = check(&[bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("bad.yaml: document 1 is not valid YAML"),
        "{}",
        text(&out.stderr)
    );
    let out = check(&["--output", "xml", "manifests"]);
    assert_eq!(out.status.code(), Some(2), "usage errors are clap's exit 2");
}

#[test]
fn junit_lists_every_image_as_a_test_case() {
    let out = check(&["manifests", "-s", "settings.yaml", "-o", "junit"]);
    assert_eq!(out.status.code(), Some(1));
    let xml = text(&out.stdout);
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"imagegate check\" tests=\"11\" failures=\"5\" skipped=\"1\">"), "{xml}");
    assert!(xml.contains(
        "<testcase classname=\"manifests/apps/deployments.yaml:2\" name=\"Deployment shop/web: container &quot;cache&quot;: redis\">\n      \
         <failure message=\"rule &quot;official&quot;: tag &quot;latest&quot; is denied (tags.deny &quot;latest&quot;)\" type=\"denied\"/>"
    ), "{xml}");
    assert!(xml.contains("type=\"not verified offline\""), "{xml}");
}

/// The SARIF output validated against the SARIF 2.1.0 schema (OASIS,
/// vendored in tests/data/sarif) by Python's jsonschema, the reference
/// validator (Debian's python3-jsonschema, installed by scripts/deps.sh).
#[test]
fn sarif_is_valid_sarif_2_1_0_with_the_images_lines() {
    let out = check(&["manifests", "-s", "settings.yaml", "-o", "sarif"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    let results = v["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 5, "4 denied, 1 not verified offline");
    let redis = results
        .iter()
        .find(|r| r["message"]["text"].as_str().unwrap().contains("\"redis\""))
        .unwrap();
    assert_eq!(redis["ruleId"], "rule:official");
    assert_eq!(redis["level"], "error");
    assert_eq!(
        redis["locations"][0]["physicalLocation"],
        serde_json::json!({"artifactLocation": {"uri": "manifests/apps/deployments.yaml"},
                           "region": {"startLine": 24, "startColumn": 18}})
    );
    let rule_ids: Vec<&str> = v["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        rule_ids,
        [
            "unmatched",
            "rule:official",
            "rule:signed",
            "rule:corporate"
        ]
    );

    let dir = tempfile::tempdir().unwrap();
    let sarif = dir.path().join("out.sarif");
    std::fs::write(&sarif, &out.stdout).unwrap();
    let schema =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sarif/sarif-schema-2.1.0.json");
    let validate = |file: &Path| {
        Command::new("python3")
            .args([
                "-c",
                "import json, sys, jsonschema\n\
                 schema = json.load(open(sys.argv[1]))\n\
                 jsonschema.Draft4Validator.check_schema(schema)\n\
                 jsonschema.Draft4Validator(schema).validate(json.load(open(sys.argv[2])))\n",
            ])
            .arg(&schema)
            .arg(file)
            .output()
    };
    let available = Command::new("python3")
        .args(["-c", "import jsonschema"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            std::env::var_os("IMAGEGATE_E2E_REQUIRED").is_none(),
            "IMAGEGATE_E2E_REQUIRED is set but python3-jsonschema is not installed"
        );
        eprintln!(
            "skipped: python3 with jsonschema is not installed (scripts/deps.sh installs it)"
        );
        return;
    }
    let checked = validate(&sarif).unwrap();
    assert!(checked.status.success(), "{}", text(&checked.stderr));
    // The validator does catch what the schema forbids.
    let mut broken = v.clone();
    broken["runs"][0]["results"][0]["level"] = "fatal".into();
    std::fs::write(&sarif, broken.to_string()).unwrap();
    assert!(!validate(&sarif).unwrap().status.success());
}

/// What policy-server gets is what it always got: without `imagegate_explain`
/// the module answers exactly the six keys the engine writes, byte for byte;
/// with it, the same response plus `imagegate_verdicts`, and nothing else.
#[test]
fn the_explained_response_leaves_policy_servers_answer_unchanged() {
    use imagegate::capabilities::{Capabilities, CapabilityAllowList, Offline};
    use imagegate::runtime::admission;
    use imagegate::runtime::{Invoke, Policy, RuntimeConfig};
    use imagegate_policy::testing::Request;
    use imagegate_policy::wire::{ExplainedResponse, ValidationResponse};
    use std::sync::Arc;

    let wasm = std::fs::read(policy_wasm()).unwrap();
    let caps = Arc::new(Capabilities::new(
        CapabilityAllowList::allow_all(),
        None,
        Box::new(Offline),
    ));
    let policy = Policy::new(&wasm, RuntimeConfig::default(), caps).unwrap();
    let settings_text = std::fs::read_to_string(data().join("settings.yaml")).unwrap();
    let settings = admission::parse_settings(&settings_text).unwrap();
    let request = Request::pod(&["redis", "registry.corp.example/shop/web:1", "ghcr.io/x/y:1"])
        .admission_request();

    let plain = admission::validation_payload(&request, &settings, false).unwrap();
    assert!(!String::from_utf8_lossy(&plain).contains("imagegate_explain"));
    let answer = (&policy).invoke("validate", &plain).unwrap();
    let keys: Vec<String> = serde_json::from_slice::<serde_json::Map<String, Value>>(&answer)
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        keys,
        [
            "accepted",
            "message",
            "code",
            "mutated_object",
            "audit_annotations",
            "warnings"
        ]
    );
    // Byte for byte what the engine writes natively.
    let native = imagegate_policy::decide::validate(
        &request,
        &imagegate_policy::settings::Policy::from_json(
            &Value::Object(settings.clone()).to_string(),
        )
        .unwrap(),
        &imagegate_policy::testing::ScriptedHost::none(),
    );
    assert_eq!(answer, serde_json::to_vec(&native).unwrap());

    let explained_payload = admission::validation_payload(&request, &settings, true).unwrap();
    let explained = (&policy).invoke("validate", &explained_payload).unwrap();
    let mut value: serde_json::Map<String, Value> = serde_json::from_slice(&explained).unwrap();
    let verdicts = value.remove("imagegate_verdicts").unwrap();
    assert_eq!(verdicts.as_array().unwrap().len(), 3);
    assert_eq!(
        Value::Object(value),
        serde_json::from_slice::<Value>(&answer).unwrap()
    );
    let parsed: ExplainedResponse = serde_json::from_slice(&explained).unwrap();
    let response: ValidationResponse = serde_json::from_slice(&answer).unwrap();
    assert_eq!(parsed.response, response);
    assert_eq!(
        parsed.imagegate_verdicts[0].rule.as_deref(),
        Some("official")
    );
}

/// `imagegate run` takes a bare object as its CREATE, explains it with
/// `--output text`, and exits 1 on a rejection only with `--fail-on-deny`.
#[test]
fn run_explains_a_bare_object() {
    let run = |request: &str, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_imagegate"))
            .current_dir(data())
            .args(["run", "--policy", policy_wasm().to_str().unwrap()])
            .args(["-s", "settings.yaml", "-r", request])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run("manifests/apps/cronjob.yaml", &["--namespace", "batch"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "exit 0 on a rejection, as kwctl run"
    );
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["allowed"], false);
    assert_eq!(line["uid"], "imagegate-create");

    let out = run(
        "manifests/apps/cronjob.yaml",
        &["--output", "text", "--fail-on-deny"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        "REJECTED: imagegate denied 1 of 1 images: container \"report\": image \"ghcr.io/someone/report:0.9\": \
         matches no rule; unmatched: deny (the default because rule \"corporate\" allows)\n\
         \ncontainer \"report\": ghcr.io/someone/report:0.9\n  denied by `unmatched` (no rule matches)\n  \
         reason: matches no rule; unmatched: deny (the default because rule \"corporate\" allows)\n"
    );
    let out = run("manifests/apps/list.json", &["--output", "text"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).starts_with("ADMITTED\n"),
        "a List has no pod spec"
    );

    let out = run("manifests/apps/deployments.yaml", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("2 YAML documents: one request or object is evaluated at a time (`imagegate check` evaluates many)"),
        "{}",
        text(&out.stderr)
    );
}

/// Why a rule won, through the module: priority, then order, and the rules
/// it outranked.
#[test]
fn run_text_says_why_the_rule_won() {
    let dir = tempfile::tempdir().unwrap();
    let pod = dir.path().join("pod.yaml");
    std::fs::write(
        &pod,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop}\n\
         spec: {containers: [{name: api, image: registry.corp.example/signed/api:1.4.0}]}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .current_dir(data())
        .args(["run", "--policy", policy_wasm().to_str().unwrap()])
        .args([
            "-s",
            "settings.yaml",
            "-o",
            "text",
            "-r",
            pod.to_str().unwrap(),
        ])
        .args(["--replay-host-capabilities-interactions", "session.yml"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    assert_eq!(
        text(&out.stdout),
        format!(
            "ADMITTED\n\ncontainer \"api\": registry.corp.example/signed/api:1.4.0\n  allowed by rule \"signed\"\n  \
             why this rule: priority 10 (rules[1]); above \"corporate\" (priority 0, rules[0])\n  \
             check keyless https://token.actions.githubusercontent.com https://github.com/corp/*: passed ({digest})\n  \
             pinned: registry.corp.example/signed/api:1.4.0@{digest}\n\
             \naudit annotations:\n  pinned-images: registry.corp.example/signed/api:1.4.0 -> registry.corp.example/signed/api:1.4.0@{digest}\n\
             \npatch (JSONPatch): [{{\"op\":\"replace\",\"path\":\"/spec/containers/0/image\",\"value\":\"registry.corp.example/signed/api:1.4.0@{digest}\"}}]\n"
        )
    );
}
