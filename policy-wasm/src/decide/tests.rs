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
        "imagegate denied 2 of 3 images: container \"c0\": image \"nginx\" (docker.io/library/nginx:latest): \
         matches no rule; unmatched: deny (the default because rule \"corp\" allows); \
         container \"c2\": image \"ghcr.io/x/y:2\": matches no rule; unmatched: deny (the default because rule \"corp\" allows)"
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
        w[1].ends_with("matches no rule; unmatched: warn"),
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
    let host = ScriptedHost::policy_server(|ns, op, p| {
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
        3,
        "identical calls are made once per request (one asks for imagegate's capability)"
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
    let host = ScriptedHost::policy_server(|_, _, _| {
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
         cosign key \"old\": no signatures found for image: ghcr.io/corp/app:1.0; cosign key \"release\": no signatures found for image: ghcr.io/corp/app:1.0 \
         (this host only checks legacy .sig signatures; cosign v3 bundles need the imagegate host)"
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
        let host = ScriptedHost::policy_server(move |_, _, _| Ok(answer.clone()));
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
    let host =
        || ScriptedHost::policy_server(|_, _, _| Ok(json!({"is_trusted": true, "digest": D1})));
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
            ("notary", "v1/signed_digest") => {
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
        msg(&r).contains(
            r#"notary https://127.0.0.1:4443 (targets/jenkins): this host does not have the capability notary/v1/signed_digest (it answered "unknown namespace: notary"); Kubewarden's policy-server lacks it, imagegate's own host answers it: run the policy with `imagegate serve`"#
        ),
        "{}",
        msg(&r)
    );
}

#[test]
fn any_capability_policy_server_lacks_points_to_imagegate_serve() {
    let host = ScriptedHost::new(|_, _, _| {
        Err("Callback evaluation failure: unknown operation: v1/oci_manifest_config".into())
    });
    let s = json!({"rules":[{"name":"labelled","images":["*"],
        "imageLabels":[{"key":"io.openshift.build.source-location"}]}]});
    let r = run(s, &pod(&["nginx:1"]), &host);
    assert!(
        msg(&r).contains("this host does not have the capability oci/v1/oci_manifest_config (it answered \"Callback evaluation failure: unknown operation: v1/oci_manifest_config\"); Kubewarden's policy-server lacks it, imagegate's own host answers it: run the policy with `imagegate serve`"),
        "{}",
        msg(&r)
    );
    let host = ScriptedHost::new(|_, _, _| Err("connection refused".into()));
    let r = run(
        notary_settings("deny"),
        &pod(&["127.0.0.1:5000/demo/alpine:1.0"]),
        &host,
    );
    assert!(msg(&r).ends_with("connection refused"), "{}", msg(&r));
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
    let host = ScriptedHost::policy_server(|_, _, p| {
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

/// An `imagegate/v1/check_*` answer: `verified` subjects, one trace per
/// `traced` subject.
fn image_answer(digest: &str, verified: &[(&str, Value)], traced: &[&str]) -> Value {
    let verified: Vec<Value> = verified
        .iter()
        .map(|(subject, extra)| {
            let mut v = json!({"subject": subject, "identity": 1, "format": "sigstore-bundle-v0.3",
                               "path": "referrers-tag", "manifest": "sha256:aa", "signer": "key sha256:0123"});
            v.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
            v
        })
        .collect();
    let trace: Vec<Value> = traced
        .iter()
        .map(|s| json!({"subject": s, "paths": [
            "referrers-api: no referrers API (404)",
            "referrers-tag: 1 entries [sha256:bb sigstore bundle (application/vnd.dev.sigstore.bundle.v0.3+json): rejected: signed with a key, and no configured key verifies the signature]",
            "cosign-sig-tag: no tag sha256-x.sig"]}))
        .collect();
    json!({"digest": digest, "verified": verified, "trace": trace})
}

#[test]
fn the_imagegate_host_verifies_every_format_in_one_call_and_the_digest_is_pinned() {
    let host = ScriptedHost::new(|ns, op, p| {
        assert_eq!((ns, op), ("imagegate", "v1/check_signature"));
        assert_eq!(p["image"], "ghcr.io/corp/app:1.0");
        assert_eq!(p["platforms"], "index");
        assert_eq!(p["annotations"], json!({"env": "prod"}));
        assert_eq!(
            p["identities"][1],
            json!({"kind": "key", "pem": KEY.trim_end()})
        );
        Ok(image_answer(D1, &[(D1, json!({}))], &[D1]))
    });
    let req = Request::pod(&["ghcr.io/corp/app:1.0"]).admission_request();
    let policy =
        Policy::from_json(&cosign_settings(json!({"pinDigest": true})).to_string()).unwrap();
    let (r, verdicts) = explain(&req, &policy, &host);
    assert!(r.accepted, "{:?}", r.message);
    assert_eq!(host.calls().len(), 1);
    assert_eq!(
        r.mutated_object.unwrap()["spec"]["containers"][0]["image"],
        format!("ghcr.io/corp/app:1.0@{D1}")
    );
    let run = &verdicts[0].checks()[0];
    assert_eq!(
        (run.check(), run.result()),
        (r#"cosign key "old" or "release""#, Ok(D1))
    );
}

#[test]
fn nothing_verified_is_a_denial_naming_every_path_tried() {
    let host = ScriptedHost::new(|_, _, _| Ok(image_answer(D1, &[], &[D1])));
    let r = run(
        cosign_settings(json!({})),
        &pod(&["ghcr.io/corp/app:1.0"]),
        &host,
    );
    assert_eq!(
        msg(&r),
        format!(
            "imagegate denied 1 of 1 images: container \"c0\": image \"ghcr.io/corp/app:1.0\": rule \"signed\": no signature check passed: \
             cosign key \"old\" or \"release\": no verified signature for {D1}: referrers-api: no referrers API (404), \
             referrers-tag: 1 entries [sha256:bb sigstore bundle (application/vnd.dev.sigstore.bundle.v0.3+json): rejected: signed with a key, \
             and no configured key verifies the signature], cosign-sig-tag: no tag sha256-x.sig"
        )
    );
    // Verified for another digest than the one the reference resolved to: not this image.
    let host = ScriptedHost::new(|_, _, _| Ok(image_answer(D1, &[(D2, json!({}))], &[D1])));
    assert!(msg(&run(
        cosign_settings(json!({})),
        &pod(&["ghcr.io/corp/app:1.0"]),
        &host
    ))
    .contains(&format!("no verified signature for {D1}")));
    let host = ScriptedHost::new(|_, _, _| {
        Ok(image_answer(
            "sha256:short",
            &[("sha256:short", json!({}))],
            &[],
        ))
    });
    assert!(msg(&run(
        cosign_settings(json!({})),
        &pod(&["ghcr.io/corp/app:1.0"]),
        &host
    ))
    .contains("the host returned an invalid digest \"sha256:short\""));
}

#[test]
fn platforms_all_needs_every_platform_manifest_signed() {
    const INDEX: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
    let settings = || {
        json!({"rules":[{"name":"all","images":["**"],"pinDigest":true,
            "verify":{"anyOf":[{"githubActions":{"owner":"corp","platforms":"all"}}]}}]})
    };
    let one = ScriptedHost::new(|_, _, p| {
        assert_eq!(p["platforms"], "all");
        Ok(image_answer(INDEX, &[(D1, json!({}))], &[D1, D2]))
    });
    let r = run(settings(), &pod(&["ghcr.io/corp/app:1.0"]), &one);
    assert!(
        msg(&r).contains(&format!(
            "GitHub Actions corp: no verified signature for {D2}"
        )),
        "{}",
        msg(&r)
    );
    let both = ScriptedHost::new(|_, _, _| {
        Ok(image_answer(
            INDEX,
            &[(D1, json!({})), (D2, json!({}))],
            &[D1, D2],
        ))
    });
    let r = run(settings(), &pod(&["ghcr.io/corp/app:1.0"]), &both);
    assert!(r.accepted, "{:?}", r.message);
    // The multi-arch reference is what is pinned, not a platform manifest.
    assert_eq!(
        r.mutated_object.unwrap()["spec"]["containers"][0]["image"],
        format!("ghcr.io/corp/app:1.0@{INDEX}")
    );
    let r = run(
        settings(),
        &pod(&["ghcr.io/corp/app:1.0"]),
        &ScriptedHost::policy_server(|_, _, _| Err("unexpected".into())),
    );
    assert!(
        msg(&r).contains("GitHub Actions corp: platforms: all needs the imagegate host"),
        "{}",
        msg(&r)
    );
}

fn attestation_settings(conditions: Value) -> Value {
    json!({"rules":[{"name":"slsa","images":["**"],"verify":{"anyOf":[{"attestation":{
        "predicateType": "https://slsa.dev/provenance/v1",
        "githubActions": {"owner": "corp", "repo": "app"},
        "conditions": conditions}}]}}]})
}

fn provenance(builder: &str, git_ref: &str) -> Value {
    json!({
        "statement": {"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://slsa.dev/provenance/v1",
                      "subject": [{"name": "app", "digest": {"sha256": &D1[7..]}}],
                      "predicate": {"runDetails": {"builder": {"id": builder}}}},
        "certificate": {"sourceRepositoryRef": git_ref, "runnerEnvironment": "github-hosted"}
    })
}

#[test]
fn attestation_conditions_choose_among_verified_statements() {
    let conditions = json!([
        {"path": "certificate.sourceRepositoryRef", "op": "glob", "value": "refs/tags/v*"},
        {"path": "predicate.runDetails.builder.id", "op": "equals", "value": "https://github.com/actions/runner/github-hosted"},
        {"path": "subject.name", "op": "equals", "value": "app"}
    ]);
    let host = ScriptedHost::new(|ns, op, p| {
        assert_eq!((ns, op), ("imagegate", "v1/check_attestation"));
        assert_eq!(p["predicate_type"], "https://slsa.dev/provenance/v1");
        assert_eq!(
            p["identities"],
            json!([{"kind": "githubActions", "owner": "corp", "repo": "app"}])
        );
        Ok(image_answer(
            D1,
            &[
                (
                    D1,
                    provenance(
                        "https://github.com/actions/runner/github-hosted",
                        "refs/heads/main",
                    ),
                ),
                (
                    D1,
                    provenance(
                        "https://github.com/actions/runner/github-hosted",
                        "refs/tags/v1.2",
                    ),
                ),
            ],
            &[D1],
        ))
    });
    let r = run(
        attestation_settings(conditions.clone()),
        &pod(&["ghcr.io/corp/app:1.0"]),
        &host,
    );
    assert!(r.accepted, "{:?}", r.message);
    let host = ScriptedHost::new(|_, _, _| {
        Ok(image_answer(
            D1,
            &[(D1, provenance("https://self-hosted", "refs/tags/v1"))],
            &[D1],
        ))
    });
    let r = run(
        attestation_settings(conditions),
        &pod(&["ghcr.io/corp/app:1.0"]),
        &host,
    );
    assert!(
        msg(&r).ends_with(&format!(
            "attestation https://slsa.dev/provenance/v1 by GitHub Actions corp/app: {D1}: verified, but no attestation satisfies the conditions: \
             sha256:aa (sigstore-bundle-v0.3): predicate.runDetails.builder.id equals \"https://github.com/actions/runner/github-hosted\": \"https://self-hosted\""
        )),
        "{}",
        msg(&r)
    );
}

#[test]
fn imagegate_checks_on_policy_server_fail_closed_naming_the_capability() {
    let host = ScriptedHost::policy_server(|_, _, _| Err("unexpected".into()));
    for (settings, operation) in [
        (
            attestation_settings(json!([{"path": "predicate", "op": "exists"}])),
            "check_attestation",
        ),
        (notation_settings(Value::Null), "check_notation"),
    ] {
        let r = run(settings, &pod(&["ghcr.io/corp/app:1.0"]), &host);
        let expected = format!(
            "this host does not have the capability imagegate/v1/{operation} (it answered \"unknown namespace: imagegate\"); \
             Kubewarden's policy-server lacks it, imagegate's own host answers it: run the policy with `imagegate serve`"
        );
        assert!(msg(&r).contains(&expected), "{}", msg(&r));
    }
}

#[test]
fn unmatched_reason_names_the_default_and_what_made_it() {
    let defaulted = json!({"rules":[{"name":"corp","images":["corp.io/**"]}]});
    let r = run(defaulted, &pod(&["nginx:1"]), &ScriptedHost::none());
    assert!(
        msg(&r).ends_with(
            r#"matches no rule; unmatched: deny (the default because rule "corp" allows)"#
        ),
        "{}",
        msg(&r)
    );
    let written = json!({"unmatched":"deny","rules":[{"name":"corp","images":["corp.io/**"]}]});
    let r = run(written, &pod(&["nginx:1"]), &ScriptedHost::none());
    assert!(
        msg(&r).ends_with("matches no rule; unmatched: deny"),
        "{}",
        msg(&r)
    );
    let warn = json!({"unmatched":"warn"});
    let r = run(warn, &pod(&["nginx:1"]), &ScriptedHost::none());
    assert!(r.accepted);
    assert_eq!(
        r.warnings.unwrap(),
        [
            r#"container "c0": image "nginx:1" (docker.io/library/nginx:1): matches no rule; unmatched: warn"#
        ]
    );
}

#[test]
fn pin_digest_pods_pins_pods_and_only_verifies_templates() {
    let s = json!({"keys":{"k":{"cosign":KEY}},"rules":[{"name":"signed","images":["*"],
        "verify":{"anyOf":[{"cosign":{"keys":["k"]}}]},"pinDigest":"pods"}]});
    let host = ScriptedHost::policy_server(|_, op, _| {
        assert_eq!(op, "v2/verify");
        Ok(json!({"is_trusted": true, "digest": D1}))
    });
    let r = run(s.clone(), &pod(&["nginx:1"]), &host);
    assert_eq!(
        r.mutated_object.unwrap()["spec"]["containers"][0]["image"],
        format!("nginx:1@{D1}")
    );
    let deployment = request(
        "apps",
        "Deployment",
        json!({"spec":{"template":{"spec":{"containers":[{"name":"c","image":"nginx:1"}]}}}}),
    );
    let r = run(s, &deployment, &host);
    assert!(r.accepted && r.mutated_object.is_none(), "{r:?}");
    let verified = host.calls().iter().filter(|c| c.namespace == "oci").count();
    assert_eq!(verified, 2, "the template was verified");

    // Without verify, a template needs no digest lookup at all.
    let s = json!({"rules":[{"name":"pin","images":["*"],"pinDigest":"pods"}]});
    let r = run(s, &deployment, &ScriptedHost::none());
    assert!(r.accepted && r.mutated_object.is_none(), "{r:?}");
    let e =
        Policy::from_json(r#"{"rules":[{"name":"p","images":["*"],"pinDigest":"deployments"}]}"#)
            .unwrap_err();
    assert!(
        e.starts_with(r#"rules[0].pinDigest: invalid value: string "deployments", expected true, false or "pods""#),
        "{e}"
    );
}

#[test]
fn reports_say_why_the_winning_rule_won() {
    let s = json!({"rules":[
        {"name":"any","images":["**"],"tags":{"deny":["latest"]}},
        {"name":"labelled","images":["corp.io/**"],"priority":20,
         "imageLabels":[{"key":"tier","value":"prod"}],"skipOnResolutionFailure":true},
        {"name":"corp","images":["corp.io/**"],"priority":10},
        {"name":"corp-too","images":["corp.io/app"],"priority":10}]});
    let policy = Policy::from_json(&s.to_string()).unwrap();
    let host = ScriptedHost::failing("registry down");
    let (response, reports) = report(&pod(&["corp.io/app:1", "nginx"]), &policy, &host);
    assert!(!response.accepted);
    let precedence: Vec<_> = reports[0]
        .precedence
        .iter()
        .map(|m| (m.rule.as_str(), m.priority, m.index, m.outcome.as_str()))
        .collect();
    assert_eq!(
        precedence,
        [
            ("labelled", 20, 1, "skipped"),
            ("corp", 10, 2, "decided"),
            ("corp-too", 10, 3, "outranked"),
            ("any", 0, 0, "outranked"),
        ]
    );
    assert_eq!(reports[0].decision, "allowed");
    assert_eq!(reports[1].rule.as_deref(), Some("any"));
    assert_eq!(
        reports[1].reason.as_deref(),
        Some(r#"tag "latest" is denied (tags.deny "latest")"#)
    );
    assert_eq!(reports[1].pointer, "/spec/containers/1/image");
    // The report is the verdict's, and the response the one validate writes.
    assert_eq!(
        response,
        validate(&pod(&["corp.io/app:1", "nginx"]), &policy, &host)
    );
}

#[test]
fn reports_name_images_an_exemption_admitted_unchecked() {
    let s = json!({"exemptNamespaces":["kube-*"],"rules":[{"name":"none","images":["*"],"action":"deny"}]});
    let policy = Policy::from_json(&s.to_string()).unwrap();
    let req = Request::pod(&["nginx"])
        .namespace("kube-system")
        .admission_request();
    let (response, reports) = report(&req, &policy, &ScriptedHost::none());
    assert!(response.accepted);
    assert_eq!(reports.len(), 1);
    assert_eq!(
        (reports[0].decision.as_str(), reports[0].reason.as_deref()),
        (
            "exempt",
            Some(r#"exempt-namespace: namespace "kube-system" matches exemptNamespaces "kube-*""#)
        )
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
        "imagegate denied 1 of 2 images: image volume \"models\": image \"ghcr.io/evil/payload:latest\": matches no rule; unmatched: deny (the default because rule \"hub\" allows)"
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

const NOTATION_CA: &str =
    include_str!("../../../host-runner/tests/data/notation/notation-e2e/config/e2e.crt");

/// One rule for `**` with a `notation` check: the inline statement, or
/// `extra` fields (e.g. a `trustPolicy` document) instead.
fn notation_settings(extra: Value) -> Value {
    let mut notation = json!({"trustStores": {"ca:e2e": NOTATION_CA}});
    let fields = match extra {
        Value::Null => json!({"trustedIdentities": ["x509.subject: C=US, ST=WA, O=Notary"]}),
        other => other,
    };
    notation
        .as_object_mut()
        .unwrap()
        .extend(fields.as_object().cloned().unwrap());
    json!({"rules":[{"name":"notation","images":["**"],"pinDigest":true,"verify":{"anyOf":[{"notation": notation}]}}]})
}

#[test]
fn notation_checks_send_the_statement_for_the_image_and_pin_what_verified() {
    let host = ScriptedHost::new(|ns, op, p| {
        assert_eq!((ns, op), ("imagegate", "v1/check_notation"));
        assert_eq!(p["image"], "ghcr.io/corp/app:1.0");
        assert_eq!(p["platforms"], "index");
        assert_eq!(p["policy"]["name"], "inline");
        assert_eq!(p["policy"]["level"], "strict");
        assert_eq!(
            p["policy"]["trusted_identities"],
            json!(["x509.subject: C=US, ST=WA, O=Notary"])
        );
        assert_eq!(p["policy"]["trust_stores"][0]["certificates"], NOTATION_CA);
        let mut answer = image_answer(
            D1,
            &[(
                D1,
                json!({"identity": null, "format": "notation-jws", "signer": "CN=e2e,O=Notary,L=Seattle,ST=WA,C=US"}),
            )],
            &[D1],
        );
        answer["verified"][0]["path"] = "referrers-api".into();
        Ok(answer)
    });
    let req = Request::pod(&["ghcr.io/corp/app:1.0"]).admission_request();
    let policy = Policy::from_json(&notation_settings(Value::Null).to_string()).unwrap();
    let (r, verdicts) = explain(&req, &policy, &host);
    assert!(r.accepted, "{:?}", r.message);
    assert_eq!(
        r.mutated_object.unwrap()["spec"]["containers"][0]["image"],
        format!("ghcr.io/corp/app:1.0@{D1}")
    );
    let run = &verdicts[0].checks()[0];
    assert_eq!(
        (run.check(), run.result()),
        ("notation trust policy \"inline\"", Ok(D1))
    );
}

#[test]
fn notation_checks_fail_when_nothing_verified_or_no_statement_verifies() {
    let host = ScriptedHost::new(|_, _, _| Ok(image_answer(D1, &[], &[D1])));
    let r = run(
        notation_settings(Value::Null),
        &pod(&["ghcr.io/corp/app:1.0"]),
        &host,
    );
    assert!(
        msg(&r).contains(&format!("notation trust policy \"inline\": no verified signature for {D1}: referrers-api: no referrers API (404)")),
        "{}",
        msg(&r)
    );
    // scoped statements: none for this repository, one that skips
    let document = json!({"trustPolicy": {"version": "1.0", "trustPolicies": [
        {"name": "corp", "registryScopes": ["ghcr.io/corp/app"], "signatureVerification": {"level": "skip"}},
        {"name": "other", "registryScopes": ["ghcr.io/corp/other"], "signatureVerification": {"level": "strict"},
         "trustStores": ["ca:e2e"], "trustedIdentities": ["*"]}]}});
    let host = ScriptedHost::new(|_, _, _| Err("must not be asked".into()));
    let r = run(
        notation_settings(document.clone()),
        &pod(&["ghcr.io/corp/app:1.0"]),
        &host,
    );
    assert!(
        msg(&r).contains("notation: Notation trust policy statement \"corp\" skips verification for ghcr.io/corp/app: a verify check never admits an image without verifying its signature"),
        "{}",
        msg(&r)
    );
    let r = run(
        notation_settings(document),
        &pod(&["ghcr.io/corp/third:1.0"]),
        &host,
    );
    assert!(
        msg(&r).contains("notation: no Notation trust policy statement applies to ghcr.io/corp/third (registryScopes)"),
        "{}",
        msg(&r)
    );
    assert!(host.calls().is_empty());
}

#[test]
fn notation_settings_mistakes_have_their_path() {
    let e = Policy::from_json(
        &notation_settings(json!({"trustedIdentities": ["x509.subject: CN=x"]})).to_string(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        "rules[0].verify.anyOf[0].notation.trustedIdentities[0]: \"x509.subject: CN=x\": the name must have C, ST (or S) and O attributes; C is missing"
    );
    let e = Policy::from_json(
        &notation_settings(json!({"trustedIdentities": ["*"], "signatureVerification": {"level": "strict", "verifyTimestamps": "always"}})).to_string(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        "rules[0].verify.anyOf[0].notation.signatureVerification: unknown field `verifyTimestamps`, expected one of `level`, `override`, `verifyTimestamp`"
    );
}
