use super::*;
use crate::testing::{Request, ScriptedHost, D1, D2, KEY};
use serde_json::{json, Value};

fn pod(images: &[&str]) -> AdmissionRequest {
    Request::pod(images).admission_request()
}

fn request(group: &str, kind: &str, object: Value) -> AdmissionRequest {
    Request::object(group, kind, object).admission_request()
}

fn run(settings: Value, req: &AdmissionRequest, host: &ScriptedHost) -> ValidationResponse {
    let policy = Policy::from_json(&settings.to_string()).unwrap();
    validate(req, &policy, host)
}

fn msg(r: &ValidationResponse) -> &str {
    r.message.as_deref().unwrap_or("")
}

#[test]
fn delete_connect_and_other_kinds_are_accepted_without_looking() {
    let deny_all = json!({"rules":[{"name":"none","images":["*"],"action":"deny"}]});
    let mut req = pod(&["nginx"]);
    req.operation = "DELETE".into();
    req.object = None;
    assert!(run(deny_all.clone(), &req, &ScriptedHost::none()).accepted);
    req.operation = "CONNECT".into();
    assert!(run(deny_all.clone(), &req, &ScriptedHost::none()).accepted);
    let cm = request("", "ConfigMap", json!({"data":{"image":"evil"}}));
    assert!(run(deny_all, &cm, &ScriptedHost::none()).accepted);
}

#[test]
fn unreadable_workload_is_denied() {
    let r = run(
        json!({}),
        &request("apps", "Deployment", json!({"metadata":{"name":"d"}})),
        &ScriptedHost::none(),
    );
    assert!(!r.accepted);
    assert_eq!(
        msg(&r),
        r#"imagegate: cannot read Deployment "d": spec.template.spec is missing"#
    );
}

#[test]
fn explain_reports_every_image() {
    let s = json!({"rules":[{"name":"corp","images":["corp.io/**"],"tags":{"deny":["latest"]}}],"exemptImages":["registry.k8s.io/pause"]});
    let policy = Policy::from_json(&s.to_string()).unwrap();
    let (r, reports) = explain(
        &pod(&["corp.io/a:1", "corp.io/b", "Bad", "registry.k8s.io/pause:3"]),
        &policy,
        &ScriptedHost::none(),
    );
    assert!(!r.accepted);
    let got: Vec<_> = reports.iter().map(|r| (r.decision(), r.rule())).collect();
    assert_eq!(
        got,
        [
            (Decision::Allowed, Some("corp")),
            (Decision::Denied, Some("corp")),
            (Decision::Denied, None),
            (Decision::Exempt, None)
        ]
    );
    assert_eq!(
        reports[1].normalized().map(ToString::to_string).as_deref(),
        Some("corp.io/b:latest")
    );
    assert!(reports[2].reason().unwrap().starts_with("cannot be parsed"));
}

#[test]
fn unparsable_image_is_denied_even_with_empty_settings() {
    let r = run(
        json!({}),
        &pod(&["Nginx:1", "nginx"]),
        &ScriptedHost::none(),
    );
    assert!(!r.accepted);
    assert!(
        msg(&r).starts_with(
            r#"imagegate denied 1 of 2 images: container "c0": image "Nginx:1" cannot be parsed: "#
        ),
        "{}",
        msg(&r)
    );
}

#[test]
fn every_denied_image_is_listed_once() {
    let s = json!({"rules":[{"name":"corp","images":["registry.corp.example/**"],"message":"use the corporate registry"}]});
    let r = run(
        s,
        &pod(&["nginx", "registry.corp.example/app:1", "ghcr.io/x/y:2"]),
        &ScriptedHost::none(),
    );
    assert!(!r.accepted);
    assert_eq!(
        msg(&r),
        "imagegate denied 2 of 3 images: container \"c0\": image \"nginx\" (docker.io/library/nginx:latest): matches no rule; \
         container \"c2\": image \"ghcr.io/x/y:2\": matches no rule"
    );
}

#[test]
fn exempt_namespace_is_accepted_with_an_audit_annotation() {
    let s = json!({"exemptNamespaces":["kube-*"],"rules":[{"name":"none","images":["*"],"action":"deny"}]});
    let mut req = pod(&["nginx"]);
    req.namespace = Some("kube-system".into());
    let r = run(s, &req, &ScriptedHost::none());
    assert!(r.accepted);
    assert_eq!(
        r.audit_annotations.unwrap()["exempt-namespace"],
        r#"namespace "kube-system" matches exemptNamespaces "kube-*""#
    );
}

#[test]
fn break_glass_needs_the_exact_value_and_an_allowed_group() {
    let s = json!({"breakGlass":{"groups":["sre"]},"rules":[{"name":"none","images":["*"],"action":"deny"}]});
    let glass = |value: &str| {
        Request::pod(&["nginx"])
            .annotations(json!({"image-policy.k8s.io/break-glass": value}))
            .admission_request()
    };
    let mut req = glass("true");
    let r = run(s.clone(), &req, &ScriptedHost::none());
    assert!(!r.accepted, "alice is not in sre");
    assert!(r.warnings.unwrap()[0].contains("ignored"));
    req.user_info.groups.push("sre".into());
    let r = run(s.clone(), &req, &ScriptedHost::none());
    assert!(r.accepted);
    assert_eq!(
        r.audit_annotations.unwrap()["break-glass"],
        r#"used by "alice""#
    );
    let mut req = glass("True");
    req.user_info.groups.push("sre".into());
    assert!(!run(s, &req, &ScriptedHost::none()).accepted);
}

#[test]
fn highest_priority_wins_and_ties_go_to_the_first_rule() {
    let s = json!({"unmatched":"allow","rules":[
        {"name":"allow-corp","images":["corp.io/**"]},
        {"name":"deny-corp-legacy","images":["corp.io/legacy/**"],"action":"deny","priority":5},
        {"name":"allow-corp-legacy-ok","images":["corp.io/legacy/ok"],"priority":5}]});
    let r = run(s.clone(), &pod(&["corp.io/app:1"]), &ScriptedHost::none());
    assert!(r.accepted);
    let r = run(
        s.clone(),
        &pod(&["corp.io/legacy/x:1"]),
        &ScriptedHost::none(),
    );
    assert!(
        msg(&r).contains(r#"rule "deny-corp-legacy": denied"#),
        "{}",
        msg(&r)
    );
    let r = run(s, &pod(&["corp.io/legacy/ok:1"]), &ScriptedHost::none());
    assert!(
        msg(&r).contains("deny-corp-legacy"),
        "tie goes to the rule listed first"
    );
}

#[test]
fn tag_rules() {
    let s = json!({"rules":[{"name":"no-latest","images":["*"],"tags":{"deny":["latest"]}}]});
    for image in ["nginx", "nginx:latest", &format!("nginx:latest@{D1}")] {
        let r = run(s.clone(), &pod(&[image]), &ScriptedHost::none());
        assert!(
            msg(&r).contains(r#"tag "latest" is denied (tags.deny "latest")"#),
            "{image}: {}",
            msg(&r)
        );
    }
    assert!(run(s, &pod(&[&format!("nginx@{D1}")]), &ScriptedHost::none()).accepted);
    let s = json!({"rules":[{"name":"pinned","images":["*"],"tags":{"requireDigest":true,"allow":["v*"]}}]});
    assert!(
        msg(&run(s.clone(), &pod(&["nginx:v1"]), &ScriptedHost::none()))
            .contains("a digest is required")
    );
    assert!(msg(&run(
        s.clone(),
        &pod(&[&format!("nginx:1@{D1}")]),
        &ScriptedHost::none()
    ))
    .contains("not in tags.allow"));
    assert!(run(s, &pod(&[&format!("nginx:v1@{D1}")]), &ScriptedHost::none()).accepted);
}

#[test]
fn warn_mode_and_unmatched_warn_become_warnings() {
    let s = json!({"unmatched":"warn","rules":[{"name":"no-latest","images":["ghcr.io/**"],"mode":"warn","tags":{"deny":["latest"]},"message":"pin a version"}]});
    let r = run(
        s,
        &pod(&["ghcr.io/a/b", "quay.io/x/y:1"]),
        &ScriptedHost::none(),
    );
    assert!(r.accepted);
    let w = r.warnings.unwrap();
    assert_eq!(w.len(), 2);
    assert!(
        w[0].contains(r#"rule "no-latest" is in warn mode, would deny: tag "latest" is denied"#),
        "{}",
        w[0]
    );
    assert!(w[0].ends_with("(pin a version)"));
    assert!(
        w[1].ends_with("matches no rule (unmatched: warn)"),
        "{}",
        w[1]
    );
}

fn cosign_settings(extra: Value) -> Value {
    let mut rule = json!({"name":"signed","images":["ghcr.io/corp/**"],
        "verify":{"anyOf":[{"cosign":{"keys":["old","release"],"annotations":{"env":"prod"}}}]}});
    rule.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"keys":{"old":{"cosign":KEY},"release":{"cosign":KEY.trim_end()}},"rules":[rule]})
}

#[test]
fn cosign_any_key_suffices_and_the_digest_is_pinned() {
    // Key "old" has no signature, key "release" (same key material written
    // without the final newline, so a different request) has one.
    let host = ScriptedHost::new(|ns, op, p| {
        assert_eq!((ns, op), ("oci", "v2/verify"));
        assert_eq!(p["type"], "SigstorePubKeyVerify");
        assert_eq!(p["image"], "ghcr.io/corp/app:1.0");
        assert_eq!(p["annotations"], json!({"env":"prod"}));
        if p["pub_keys"][0] == KEY.trim_end() {
            Ok(json!({"is_trusted": true, "digest": D1}))
        } else {
            Err("no signatures found for image: ghcr.io/corp/app:1.0".into())
        }
    });
    let req = Request::pod(&["ghcr.io/corp/app:1.0", "ghcr.io/corp/app:1.0"])
        .edit_object(|o| o["spec"]["x-unknown-field"] = json!({"kept": true}))
        .admission_request();
    let r = run(cosign_settings(json!({"pinDigest": true})), &req, &host);
    assert!(r.accepted, "{:?}", r.message);
    assert_eq!(
        host.calls().len(),
        2,
        "identical calls are made once per request"
    );
    let obj = r.mutated_object.unwrap();
    assert_eq!(
        obj["spec"]["containers"][0]["image"],
        format!("ghcr.io/corp/app:1.0@{D1}")
    );
    assert_eq!(
        obj["spec"]["containers"][1]["image"],
        format!("ghcr.io/corp/app:1.0@{D1}")
    );
    assert_eq!(obj["spec"]["x-unknown-field"], json!({"kept": true}));
    assert!(r.audit_annotations.unwrap()["pinned-images"].contains("->"));
}

#[test]
fn failed_verification_is_a_denial_naming_each_key_and_the_host_error() {
    let host = ScriptedHost::new(|_, _, _| {
        Err("no signatures found for image: ghcr.io/corp/app:1.0".into())
    });
    let r = run(
        cosign_settings(json!({})),
        &pod(&["ghcr.io/corp/app:1.0"]),
        &host,
    );
    assert!(!r.accepted);
    assert_eq!(
        msg(&r),
        "imagegate denied 1 of 1 images: container \"c0\": image \"ghcr.io/corp/app:1.0\": rule \"signed\": no signature check passed: \
         cosign key \"old\": no signatures found for image: ghcr.io/corp/app:1.0; cosign key \"release\": no signatures found for image: ghcr.io/corp/app:1.0"
    );
}

#[test]
fn malformed_or_untrusted_host_answers_fail_closed() {
    for answer in [
        json!({"is_trusted": false, "digest": D1}),
        json!({"is_trusted": true, "digest": "sha256:short"}),
        json!({"unexpected": 1}),
    ] {
        let shown = answer.to_string();
        let host = ScriptedHost::new(move |_, _, _| Ok(answer.clone()));
        let r = run(
            cosign_settings(json!({})),
            &pod(&["ghcr.io/corp/app:1.0"]),
            &host,
        );
        assert!(!r.accepted, "{shown}");
    }
}

#[test]
fn digest_mismatch_deny_or_rewrite() {
    let host = || ScriptedHost::new(|_, _, _| Ok(json!({"is_trusted": true, "digest": D1})));
    let image = format!("ghcr.io/corp/app:1.0@{D2}");
    // The host verifies what it is given; a host answering another digest is a mismatch.
    let r = run(cosign_settings(json!({})), &pod(&[&image]), &host());
    assert!(
        msg(&r).contains(&format!(
            "image digest {D2} differs from the signed digest {D1}"
        )),
        "{}",
        msg(&r)
    );
    let r = run(
        cosign_settings(json!({"onDigestMismatch":"rewrite"})),
        &pod(&[&image]),
        &host(),
    );
    assert!(r.accepted);
    assert_eq!(
        r.mutated_object.unwrap()["spec"]["containers"][0]["image"],
        format!("ghcr.io/corp/app:1.0@{D1}")
    );
}

fn notary_settings(mismatch: &str) -> Value {
    json!({"rules":[{"name":"dct","images":["127.0.0.1:5000/demo/**"],"onDigestMismatch": mismatch,
        "verify":{"anyOf":[{"notary":{"server":"https://127.0.0.1:4443","signers":[{"role":"jenkins"}]}}]}}]})
}

#[test]
fn notary_tag_moved_after_signing() {
    let host = || {
        ScriptedHost::new(|ns, op, p| match (ns, op) {
            ("notary", "v1/verify") => {
                assert_eq!(
                    p["signers"],
                    json!([{"role":"targets/jenkins","public_key":null}])
                );
                Ok(json!({"is_trusted": true, "digest": D1, "signer": "targets/jenkins"}))
            }
            ("oci", "v1/manifest_digest") => {
                assert_eq!(p, &json!("127.0.0.1:5000/demo/alpine:1.0"));
                Ok(json!({"digest": D2}))
            }
            _ => Err("unexpected".into()),
        })
    };
    let r = run(
        notary_settings("deny"),
        &pod(&["127.0.0.1:5000/demo/alpine:1.0"]),
        &host(),
    );
    assert!(
        msg(&r).contains(&format!(
            "image digest {D2} differs from the signed digest {D1} (notary signer targets/jenkins)"
        )),
        "{}",
        msg(&r)
    );
    let h = host();
    let r = run(
        notary_settings("rewrite"),
        &pod(&["127.0.0.1:5000/demo/alpine:1.0"]),
        &h,
    );
    assert!(r.accepted);
    assert_eq!(
        h.calls().len(),
        1,
        "rewrite pins the signed digest without resolving the tag"
    );
    assert_eq!(
        r.mutated_object.unwrap()["spec"]["containers"][0]["image"],
        format!("127.0.0.1:5000/demo/alpine:1.0@{D1}")
    );
}

#[test]
fn notary_on_policy_server_says_it_needs_the_imagegate_host() {
    let host = ScriptedHost::new(|_, _, _| Err("unknown namespace: notary".into()));
    let r = run(
        notary_settings("deny"),
        &pod(&["127.0.0.1:5000/demo/alpine:1.0"]),
        &host,
    );
    assert!(
        msg(&r).contains("Notary checks need the imagegate host"),
        "{}",
        msg(&r)
    );
}

#[test]
fn pin_digest_without_verify_resolves_the_tag_and_respects_the_subresource() {
    let s = json!({"rules":[{"name":"pin","images":["*"],"pinDigest":true}]});
    let host = ScriptedHost::new(|_, op, _| {
        assert_eq!(op, "v1/manifest_digest");
        Ok(json!({"digest": D1}))
    });
    let mut req = Request::pod(&["nginx:1"])
        .edit_object(|o| {
            o["spec"]["ephemeralContainers"] = json!([{"name":"dbg","image":"busybox:1"}])
        })
        .admission_request();
    let r = run(s.clone(), &req, &host);
    let obj = r.mutated_object.unwrap();
    assert_eq!(
        obj["spec"]["containers"][0]["image"],
        format!("nginx:1@{D1}")
    );
    assert_eq!(
        obj["spec"]["ephemeralContainers"][0]["image"],
        format!("busybox:1@{D1}")
    );
    req.sub_resource = Some("ephemeralcontainers".into());
    let r = run(s, &req, &host);
    let obj = r.mutated_object.unwrap();
    assert_eq!(obj["spec"]["containers"][0]["image"], "nginx:1");
    assert_eq!(
        obj["spec"]["ephemeralContainers"][0]["image"],
        format!("busybox:1@{D1}")
    );
    assert!(r.warnings.unwrap()[0].contains("not pinned"));
}

#[test]
fn registry_down_denies_saying_why() {
    let s = json!({"rules":[{"name":"pin","images":["*"],"pinDigest":true}]});
    let host = ScriptedHost::new(|_, _, _| {
        Err("Cannot fetch manifest of docker.io/library/nginx:1: connection refused".into())
    });
    let r = run(s, &pod(&["nginx:1"]), &host);
    assert!(msg(&r).ends_with("rule \"pin\": cannot resolve the digest of docker.io/library/nginx:1: Cannot fetch manifest of docker.io/library/nginx:1: connection refused"), "{}", msg(&r));
}

#[test]
fn all_of_requires_every_check_and_one_digest() {
    let s = json!({"keys":{"k":{"cosign":KEY}},"rules":[{"name":"both","images":["*"],
        "verify":{"allOf":[{"cosign":{"keys":["k"]}},{"keyless":{"issuer":"https://i","subject":"s"}}]}}]});
    let host = ScriptedHost::new(|_, _, p| {
        let digest = if p["type"] == "SigstorePubKeyVerify" {
            D1
        } else {
            D2
        };
        Ok(json!({"is_trusted": true, "digest": digest}))
    });
    let r = run(s, &pod(&["nginx:1"]), &host);
    assert!(
        msg(&r).contains("signature checks disagree on the digest"),
        "{}",
        msg(&r)
    );
}

#[test]
fn unmatched_message_is_the_whole_warning_once_and_messages_name_the_image() {
    let s = json!({"unmatched":"warn","unmatchedMessage":"{image} did not match any image policies.",
        "rules":[{"name":"t","images":["gcr.io/projectsigstore/cosign*"],"action":"deny",
            "message":"The image: {image} is not signed."}]});
    let r = run(
        s.clone(),
        &pod(&["busybox", "busybox"]),
        &ScriptedHost::none(),
    );
    assert!(r.accepted);
    assert_eq!(
        r.warnings.unwrap(),
        vec!["busybox did not match any image policies.".to_string()]
    );
    let r = run(
        s,
        &pod(&["gcr.io/projectsigstore/cosign:v0.3.0"]),
        &ScriptedHost::none(),
    );
    assert!(
        msg(&r).ends_with("(The image: gcr.io/projectsigstore/cosign:v0.3.0 is not signed.)"),
        "{}",
        msg(&r)
    );
    let s = json!({"unmatchedMessage":"Image '{image}' does not meet registry security policy",
        "rules":[{"name":"a","images":["reg.io/**"]}]});
    assert!(msg(&run(s, &pod(&["nginx"]), &ScriptedHost::none()))
        .ends_with("Image 'nginx' does not meet registry security policy"));
}

#[test]
fn regex_rules_match_the_normalized_name_whatever_the_spelling() {
    let s = json!({"rules":[
        {"name":"alpine","imageRegex":[".*(?:library/alp.*).*"],"priority":1,"action":"deny"},
        {"name":"all","images":["**"]}]});
    for image in [
        "alpine:3",
        "docker.io/library/alpine",
        "index.docker.io/alpine:3.10",
    ] {
        let r = run(s.clone(), &pod(&[image]), &ScriptedHost::none());
        assert!(
            msg(&r).contains(r#"rule "alpine": denied"#),
            "{image}: {}",
            msg(&r)
        );
    }
    assert!(run(s, &pod(&["nginx"]), &ScriptedHost::none()).accepted);
}

#[test]
fn label_conditions_read_the_image_config() {
    let s = |skip: bool| {
        let mut rule = json!({"name":"no-dev","images":["**"],"priority":1,"action":"deny",
            "imageLabels":[{"key":"tier","value":"dev"}]});
        if skip {
            rule["skipOnResolutionFailure"] = json!(true);
        }
        json!({"rules":[rule, {"name":"all","images":["**"]}]})
    };
    let host = || {
        ScriptedHost::new(|ns, op, p| {
            assert_eq!((ns, op), ("oci", "v1/oci_manifest_config"));
            let image = p.as_str().unwrap();
            if image.contains("broken") {
                return Err("Cannot fetch manifest: connection refused".into());
            }
            let tier = if image.contains("dev") { "dev" } else { "prod" };
            Ok(json!({"manifest":{},"digest":D1,"config":{"config":{"Labels":{"tier":tier}}}}))
        })
    };
    let r = run(s(false), &pod(&["quay.io/x/dev-app:1"]), &host());
    assert!(msg(&r).contains(r#"rule "no-dev": denied"#), "{}", msg(&r));
    assert!(run(s(false), &pod(&["quay.io/x/app:1"]), &host()).accepted);
    let r = run(s(false), &pod(&["quay.io/x/broken:1"]), &host());
    assert!(
        msg(&r).contains("cannot read the image labels (imageLabels): Cannot fetch manifest"),
        "{}",
        msg(&r)
    );
    assert!(run(s(true), &pod(&["quay.io/x/broken:1"]), &host()).accepted);
}

#[test]
fn sources_are_read_at_request_time_through_kubernetes_capabilities() {
    let s = json!({"sources":{"tanzu":true},"exemptNamespaces":["ops"]});
    let host = ScriptedHost::new(|ns, op, p| {
        assert_eq!((ns, op), ("kubernetes", "get_resource"));
        assert_eq!(p["kind"], "ClusterImagePolicy");
        Err(r#"clusterimagepolicies.signing.apps.tanzu.vmware.com "image-policy" not found"#.into())
    });
    let r = run(s.clone(), &pod(&["busybox"]), &host);
    assert!(r.accepted);
    assert_eq!(
        r.warnings.unwrap(),
        vec![crate::sources::tanzu::NOT_FOUND.to_string()]
    );
    let down = ScriptedHost::new(|_, _, _| Err("connection refused".into()));
    let r = run(s, &pod(&["busybox"]), &down);
    assert!(
        msg(&r).starts_with(
            "imagegate: sources: cannot read ClusterImagePolicy image-policy: connection refused"
        ),
        "{}",
        msg(&r)
    );
}

#[test]
fn image_ids_are_denied_whatever_the_rules_say() {
    let full = format!("sha256:{}", "a".repeat(64));
    let images = [full.as_str(), "sha256:4a2b", "sha512:0f", "sha384:1"];
    for settings in [
        json!({}),
        json!({"unmatched":"allow","rules":[{"name":"no-evil","images":["evil.io/**"],"action":"deny"}]}),
        json!({"rules":[{"name":"all","images":["**"]}]}),
        json!({"exemptImages":["**", "*:*"],"rules":[{"name":"all","images":["*"]}]}),
    ] {
        let (r, verdicts) = explain(
            &pod(&images),
            &Policy::from_json(&settings.to_string()).unwrap(),
            &ScriptedHost::none(),
        );
        assert!(!r.accepted, "{settings}");
        assert!(verdicts.iter().all(|v| v.decision() == Decision::Denied));
        assert!(
            msg(&r).starts_with(&format!(
                "imagegate denied 4 of 4 images: container \"c0\": image \"{full}\" is an image ID (or ID prefix), not an image reference: "
            )),
            "{}",
            msg(&r)
        );
        assert!(msg(&r).contains("write the image as registry/repository@sha256:<manifest digest>"));
    }
    // Tags that look like hex are tags, and exempt namespaces still skip every image.
    assert!(
        run(
            json!({}),
            &pod(&["redis:7", "node:20", "registry:5000"]),
            &ScriptedHost::none()
        )
        .accepted
    );
    let mut req = pod(&images);
    req.namespace = Some("kube-system".into());
    assert!(
        run(
            json!({"exemptNamespaces":["kube-system"]}),
            &req,
            &ScriptedHost::none()
        )
        .accepted
    );
}

#[test]
fn image_volumes_are_matched_pinned_and_named() {
    let req = |reference: &str| {
        Request::pod(&["nginx:1"])
            .edit_object(|o| {
                o["spec"]["volumes"] = json!([{"name":"cfg","emptyDir":{}},
                    {"name":"models","image":{"reference": reference, "pullPolicy":"IfNotPresent"}}])
            })
            .admission_request()
    };
    let allow = json!({"rules":[{"name":"hub","images":["docker.io/**"]}]});
    let r = run(
        allow.clone(),
        &req("ghcr.io/evil/payload:latest"),
        &ScriptedHost::none(),
    );
    assert_eq!(
        msg(&r),
        "imagegate denied 1 of 2 images: image volume \"models\": image \"ghcr.io/evil/payload:latest\": matches no rule"
    );
    let r = run(allow, &req("sha256:4a2b"), &ScriptedHost::none());
    assert!(msg(&r).contains("image volume \"models\": image \"sha256:4a2b\" is an image ID"));
    let exempt = json!({"exemptImages":["ghcr.io/ok/**"],"rules":[{"name":"hub","images":["docker.io/**"]}]});
    let r = run(exempt, &req("ghcr.io/ok/data:1"), &ScriptedHost::none());
    assert!(r.accepted);
    assert_eq!(
        r.audit_annotations.unwrap()["exempt-images"],
        "ghcr.io/ok/data:1"
    );

    let pin = json!({"rules":[{"name":"pin","images":["*"],"pinDigest":true}]});
    let host = ScriptedHost::new(|_, _, p| {
        Ok(json!({"digest": if p == "docker.io/library/models:2" { D2 } else { D1 }}))
    });
    let mut volume = req("models:2");
    let r = run(pin.clone(), &volume, &host);
    let obj = r.mutated_object.unwrap();
    assert_eq!(
        obj["spec"]["volumes"][1]["image"]["reference"],
        format!("models:2@{D2}")
    );
    assert_eq!(
        obj["spec"]["volumes"][1]["image"]["pullPolicy"],
        "IfNotPresent"
    );
    assert_eq!(
        obj["spec"]["containers"][0]["image"],
        format!("nginx:1@{D1}")
    );
    // The ephemeralcontainers subresource checks the volume, cannot change it.
    volume.sub_resource = Some("ephemeralcontainers".into());
    let r = run(pin, &volume, &host);
    assert!(r.accepted);
    assert!(r.warnings.unwrap().iter().any(|w| w.starts_with(&format!(
        "image volume \"models\": image \"models:2\" (docker.io/library/models:2): not pinned to {D2}"
    ))));
}

#[test]
fn require_fully_qualified_denies_short_names_unless_exempt() {
    let s = |extra: Value| {
        let mut s = json!({"requireFullyQualified": true, "unmatched": "warn"});
        s.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        s
    };
    let qualified = [
        "docker.io/library/nginx:1.27",
        "docker.io/nginx",
        "GHCR.IO/corp/app:1",
        "localhost/app",
        "localhost:5000/app",
        "Localhost:5000/app",
        "127.0.0.1/app",
        "[::1]:5000/app",
    ];
    let r = run(s(json!({})), &pod(&qualified), &ScriptedHost::none());
    assert!(r.accepted, "{}", msg(&r));
    for (short, meant) in [
        ("nginx:1.27", "docker.io/library/nginx:1.27"),
        ("nginx", "docker.io/library/nginx:latest"),
        ("library/nginx", "docker.io/library/nginx:latest"),
        ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
        ("LOCALHOST/app", "localhost/app:latest"),
        ("registry:5000", "docker.io/library/registry:5000"),
    ] {
        let r = run(s(json!({})), &pod(&[short]), &ScriptedHost::none());
        assert_eq!(
            msg(&r),
            format!(
                "imagegate denied 1 of 1 images: container \"c0\": image \"{short}\" ({meant}): not fully qualified \
                 (requireFullyQualified): write it as \"{meant}\"; the node's runtime resolves a short name itself, \
                 CRI-O through its own aliases and search registries, not necessarily from Docker Hub"
            ),
            "{short}"
        );
    }
    // An allow rule does not lift it; an exemption does; off by default.
    let allow_all = s(json!({"rules":[{"name":"all","images":["**"]}]}));
    assert!(!run(allow_all, &pod(&["nginx"]), &ScriptedHost::none()).accepted);
    assert!(
        run(
            s(json!({"exemptImages":["nginx"]})),
            &pod(&["nginx"]),
            &ScriptedHost::none()
        )
        .accepted
    );
    assert!(run(json!({}), &pod(&["nginx"]), &ScriptedHost::none()).accepted);
    let mut req = pod(&["nginx"]);
    req.namespace = Some("kube-system".into());
    assert!(
        run(
            s(json!({"exemptNamespaces":["kube-*"]})),
            &req,
            &ScriptedHost::none()
        )
        .accepted
    );
}

/// Runtimes run the digest of `name:tag@digest` and ignore the tag
/// (distribution `ParseDockerRef`, CRI-O `RegistryImageReferenceFromRaw`):
/// what every rule that reads tags does with one.
#[test]
fn tag_plus_digest_tags_are_read_as_written_checks_and_pins_are_on_the_digest() {
    let deny_latest = json!({"rules":[{"name":"r","images":["**"],"tags":{"deny":["latest"]}}]});
    assert!(
        !run(
            deny_latest,
            &pod(&[&format!("nginx:latest@{D1}")]),
            &ScriptedHost::none()
        )
        .accepted
    );
    let allow_v = json!({"rules":[{"name":"r","images":["**"],"tags":{"allow":["v*"]}}]});
    assert!(
        run(
            allow_v.clone(),
            &pod(&[&format!("app:v1@{D1}")]),
            &ScriptedHost::none()
        )
        .accepted
    );
    assert!(
        !run(
            allow_v,
            &pod(&[&format!("app:dev@{D1}")]),
            &ScriptedHost::none()
        )
        .accepted
    );
    let pattern =
        json!({"unmatched":"allow","rules":[{"name":"r","images":["*:latest"],"action":"deny"}]});
    assert!(
        !run(
            pattern,
            &pod(&[&format!("nginx:latest@{D1}")]),
            &ScriptedHost::none()
        )
        .accepted
    );
    // pinDigest: the digest as written stands, no lookup, no patch.
    let pin = json!({"rules":[{"name":"pin","images":["*"],"pinDigest":true}]});
    let r = run(
        pin,
        &pod(&[&format!("nginx:1@{D2}")]),
        &ScriptedHost::none(),
    );
    assert!(r.accepted && r.mutated_object.is_none());
    // verify: the signed digest must be the written one, and rewrite keeps
    // the tag: digest_mismatch_deny_or_rewrite.
}
