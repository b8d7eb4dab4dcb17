use super::*;
use simulated::{call_id, made_up_digest};

const KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEfO3FxSBVkevcBa7cZ1yspaIy+Hx/
DAwa3/xM0ixlQjq0FRI10TvZUvGa4HqSUjkSt8EHeR560w7vLf7DRhwSiA==
-----END PUBLIC KEY-----";

fn settings() -> String {
    let key = KEY.replace('\n', "\n      ");
    format!(
        r#"
keys:
  release:
    cosign: |
      {key}
rules:
  - name: corp
    images: ["registry.corp.example/**"]
    tags: {{deny: ["latest"]}}
  - name: signed
    images: ["ghcr.io/signed/**"]
    verify: {{anyOf: [{{cosign: {{keys: [release]}}}}, {{githubActions: {{owner: corp}}}}]}}
    pinDigest: true
"#
    )
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    spec:
      containers:
        - {name: app, image: "registry.corp.example/shop/web:2.1"}
        - {name: tool, image: "ghcr.io/signed/tool:1"}
"#;

fn state(answers: &[(&str, Answer)]) -> State {
    State {
        settings: settings(),
        workload: DEPLOYMENT.to_string(),
        answers: answers
            .iter()
            .map(|(id, a)| (id.to_string(), a.clone()))
            .collect(),
    }
}

fn id_of(report: &Value, capability: &str) -> String {
    report["hostCalls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["capability"] == capability)
        .unwrap_or_else(|| panic!("no {capability} call: {report}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn by_default_signatures_are_valid_and_pins_are_previewed() {
    let r = report(&state(&[]));
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["object"], "Deployment shop/web");
    let images = r["images"].as_array().unwrap();
    assert_eq!(images[0]["decision"], "allowed");
    assert_eq!(images[1]["rule"], "signed");
    let digest = made_up_digest("ghcr.io/signed/tool:1");
    assert_eq!(
        images[1]["pinned"],
        format!("ghcr.io/signed/tool:1@{digest}")
    );
    // The patch the API server would apply: only the image string changes.
    assert_eq!(
        r["patch"],
        json!([{"op": "replace", "path": "/spec/template/spec/containers/1/image",
                "value": format!("ghcr.io/signed/tool:1@{digest}")}])
    );
    let calls = r["hostCalls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{r}");
    assert_eq!(
        calls[0]["check"],
        r#"cosign key "release" of ghcr.io/signed/tool:1"#
    );
    assert_eq!(calls[0]["kind"], "signature");
    assert_eq!(calls[0]["chosen"], false);
    assert_eq!(calls[0]["digest"], digest.as_str());
    assert_eq!(calls[0]["result"]["Ok"]["is_trusted"], true);
}

#[test]
fn each_answer_changes_the_decision() {
    let cosign = id_of(&report(&state(&[])), "oci/v2/verify");
    // Invalid: anyOf goes on to the next check, which is another call.
    let r = report(&state(&[(&cosign, Answer::Invalid)]));
    let calls = r["hostCalls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{r}");
    assert_eq!(calls[0]["chosen"], true);
    assert_eq!(
        calls[1]["check"],
        "GitHub Actions corp of ghcr.io/signed/tool:1"
    );
    assert_eq!(r["allowed"], true, "{r}");
    let actions = calls[1]["id"].as_str().unwrap().to_string();
    assert_ne!(actions, cosign);

    // Both failing: denied, with the host's (simulated) words, no patch.
    let r = report(&state(&[
        (&cosign, Answer::Invalid),
        (&actions, Answer::Unreachable),
    ]));
    assert_eq!(r["allowed"], false);
    assert_eq!(r["patch"], Value::Null);
    let reason = r["images"][1]["reason"].as_str().unwrap();
    assert!(
        reason.contains("missing signatures for ghcr.io/signed/tool:1 (simulated)")
            && reason.contains("registry unreachable (simulated)"),
        "{reason}"
    );
    assert!(r["message"].as_str().unwrap().contains("tool"), "{r}");

    // Valid for a given digest: that digest is pinned.
    let digest = format!("sha256:{}", "ab".repeat(32));
    let r = report(&state(&[(
        &cosign,
        Answer::Valid {
            digest: Some(digest.clone()),
            labels: None,
        },
    )]));
    assert_eq!(
        r["images"][1]["pinned"],
        format!("ghcr.io/signed/tool:1@{digest}")
    );
    // A digest no image can carry is what the engine refuses from any host.
    let r = report(&state(&[
        (
            &cosign,
            Answer::Valid {
                digest: Some("sha256:nope".into()),
                labels: None,
            },
        ),
        (&actions, Answer::Invalid),
    ]));
    assert!(
        r["images"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("invalid digest"),
        "{r}"
    );
}

#[test]
fn lookups_labels_and_notary_are_answered_in_the_hosts_shapes() {
    let settings = r#"
rules:
  - name: pinned
    images: ["docker.io/**"]
    pinDigest: true
  - name: labelled
    images: ["quay.io/**"]
    imageLabels: [{key: tier, value: prod}]
  - name: notary
    images: ["notary.example/**"]
    verify: {anyOf: [{notary: {server: "https://notary.example:4443", signers: [{role: targets/ci}]}}]}
"#;
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: a, image: nginx:1.25}\n  - {name: b, image: quay.io/team/app:1}\n  - {name: c, image: notary.example/app:1}\n";
    let run = |answers: &[(&str, Answer)]| {
        report(&State {
            settings: settings.into(),
            workload: pod.into(),
            answers: answers
                .iter()
                .map(|(id, a)| (id.to_string(), a.clone()))
                .collect(),
        })
    };
    let r = run(&[]);
    let kinds: Vec<&str> = r["hostCalls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    // Notary signs a tag: the digest it resolves to now is compared (onDigestMismatch: deny).
    assert_eq!(
        kinds,
        ["digestLookup", "labels", "signature", "digestLookup"],
        "{r}"
    );
    // No labels by default: the labelled rule does not apply and no rule matches.
    assert_eq!(
        r["images"][0]["pinned"],
        format!(
            "nginx:1.25@{}",
            made_up_digest("docker.io/library/nginx:1.25")
        )
    );
    assert_eq!(r["images"][1]["decision"], "denied", "{r}");
    assert_eq!(r["images"][2]["decision"], "allowed", "{r}");
    assert_eq!(r["hostCalls"][2]["result"]["Ok"]["signer"], "targets/ci");

    let labels = id_of(&r, "oci/v1/oci_manifest_config");
    let notary = id_of(&r, "notary/v1/signed_digest");
    let lookup = id_of(&r, "oci/v1/manifest_digest");
    let r = run(&[
        (
            &labels,
            Answer::Valid {
                digest: None,
                labels: Some([("tier".to_string(), "prod".to_string())].into()),
            },
        ),
        (&notary, Answer::Unreachable),
        (&lookup, Answer::Invalid),
    ]);
    assert_eq!(r["images"][1]["rule"], "labelled", "{r}");
    assert_eq!(r["images"][1]["decision"], "allowed", "{r}");
    let reason = |i: usize| r["images"][i]["reason"].as_str().unwrap().to_string();
    assert!(reason(0).contains("manifest unknown (simulated)"), "{r}");
    assert!(
        reason(2)
            .contains("cannot reach the Notary server https://notary.example:4443 (simulated)"),
        "{r}"
    );
}

#[test]
fn a_cluster_is_not_simulated() {
    let r = report(&State {
        settings: "sources: {tmax: true}\n".into(),
        workload: "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop}\nspec: {containers: [{name: a, image: nginx}]}\n".into(),
        answers: BTreeMap::new(),
    });
    assert_eq!(r["allowed"], false, "{r}");
    let call = &r["hostCalls"][0];
    assert_eq!(call["kind"], "unanswered");
    assert!(call["capability"]
        .as_str()
        .unwrap()
        .starts_with("kubernetes/"));
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("no cluster in the playground"),
        "{r}"
    );
}

#[test]
fn call_ids_tell_checks_apart() {
    let a = call_id(
        "oci/v2/verify",
        br#"{"image":"a","annotations":{"signer":"1"}}"#,
    );
    let b = call_id(
        "oci/v2/verify",
        br#"{"image":"a","annotations":{"signer":"2"}}"#,
    );
    assert_ne!(a, b);
    assert_eq!(a.len(), 12);
    assert_eq!(
        a,
        call_id(
            "oci/v2/verify",
            br#"{"image":"a","annotations":{"signer":"1"}}"#
        )
    );
    assert_ne!(
        a,
        call_id(
            "notary/v1/signed_digest",
            br#"{"image":"a","annotations":{"signer":"1"}}"#
        )
    );
}

#[test]
fn the_page_gets_both_input_errors_at_once_and_never_an_exception() {
    let r = report(&State {
        settings: "rules: [{name: x, images: ['*'], action: alow}]".into(),
        workload: "kind: Pod".into(),
        answers: BTreeMap::new(),
    });
    assert_eq!(r["settingsErrors"][0]["path"], "rules[0].action", "{r}");
    assert!(
        r["workloadError"].as_str().unwrap().contains("apiVersion"),
        "{r}"
    );
    let r: Value = serde_json::from_str(&evaluate(r#"{"settings": 1}"#)).unwrap();
    assert!(r["stateError"].as_str().unwrap().contains("invalid"), "{r}");
    let r: Value =
        serde_json::from_str(&evaluate(r#"{"answers": {"x": {"outcome": "maybe"}}}"#)).unwrap();
    assert!(r["stateError"].is_string(), "{r}");
}

/// Every example shows what its `expect` says: the decision, each image's
/// decision in table order, and whether there is a patch.
#[test]
fn gallery_examples_show_what_they_say() {
    let examples: Vec<Value> = serde_json::from_str(&gallery()).unwrap();
    assert!(examples.len() >= 8, "{}", examples.len());
    for e in &examples {
        let id = e["id"].as_str().unwrap();
        let state: State = serde_json::from_value(e["state"].clone()).unwrap();
        let r = report(&state);
        let expect = &e["expect"];
        assert_eq!(r["allowed"], expect["allowed"], "{id}: {r}");
        let decisions: Vec<&Value> = r["images"]
            .as_array()
            .unwrap_or_else(|| panic!("{id}: {r}"))
            .iter()
            .map(|i| &i["decision"])
            .collect();
        let expected: Vec<&Value> = expect["decisions"].as_array().unwrap().iter().collect();
        assert_eq!(decisions, expected, "{id}: {r}");
        assert_eq!(r["patch"].is_array(), expect["patch"] == true, "{id}: {r}");
        // Preset answers are for calls this example makes.
        let ids: Vec<&Value> = r["hostCalls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["id"])
            .collect();
        for preset in state.answers.keys() {
            assert!(
                ids.contains(&&json!(preset)),
                "{id}: answer {preset} for no call: {r}"
            );
        }
        assert!(
            !e["title"].as_str().unwrap().is_empty() && !e["about"].as_str().unwrap().is_empty()
        );
    }
    let converted: Vec<&str> = examples
        .iter()
        .filter_map(|e| e["convert"]["command"].as_str())
        .collect();
    assert_eq!(converted.len(), 5, "{converted:?}");
    assert!(converted[0].starts_with("imagegate convert --from "));
}
