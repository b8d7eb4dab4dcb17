//! The decision engine: `(request, Policy, &dyn Host) -> ValidationResponse`.
//!
//! Pure Rust: the same code runs in the wasm module (with the waPC host) and
//! natively in tests (with a fake host). Every image is checked; one rejection
//! message lists every denied image with its container, rule and reason. Any
//! host error is a failed check (fail closed).

use crate::host::Host;
use crate::reference::{self, Reference};
use crate::settings::{Action, Check, Mode, OnDigestMismatch, Policy, Rule, Unmatched, Verify};
use crate::wire::{
    AdmissionRequest, ManifestDigestResponse, NotaryVerifyRequest, NotaryVerifyResponse,
    SigstoreVerifyRequest, ValidationResponse, VerifyResponse,
};
use crate::workload::{self, ImageSite};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

/// Decides one admission request.
pub fn validate(req: &AdmissionRequest, policy: &Policy, host: &dyn Host) -> ValidationResponse {
    if matches!(req.operation.as_str(), "DELETE" | "CONNECT") {
        return accept();
    }
    let sites = match workload::find_images(req) {
        Ok(None) => return accept(),
        Ok(Some(sites)) => sites,
        Err(reason) => return ValidationResponse::reject(format!("imagegate: {reason}")),
    };

    let mut audit = BTreeMap::new();
    let mut warnings = Vec::new();
    let namespace = req.namespace.as_deref().unwrap_or("");
    if let Some(glob) = policy
        .exempt_namespaces
        .iter()
        .find(|g| g.is_match(namespace))
    {
        audit.insert(
            "exempt-namespace".to_string(),
            format!(
                "namespace {namespace:?} matches exemptNamespaces {:?}",
                glob.as_str()
            ),
        );
        return accept_with(None, warnings, audit);
    }
    if let Some(bg) = &policy.break_glass {
        let object = req.object.as_ref();
        if object.and_then(|o| workload::annotation(o, &bg.annotation)) == Some("true") {
            let user = req.user_info.username.as_deref().unwrap_or("");
            let permitted =
                bg.groups.is_empty() || req.user_info.groups.iter().any(|g| bg.groups.contains(g));
            if permitted {
                warnings.push(format!(
                    "imagegate: break-glass annotation {:?} used by {user:?}: images were not checked",
                    bg.annotation
                ));
                audit.insert("break-glass".to_string(), format!("used by {user:?}"));
                return accept_with(None, warnings, audit);
            }
            warnings.push(format!(
                "imagegate: break-glass annotation {:?} ignored: {user:?} is in none of breakGlass.groups",
                bg.annotation
            ));
        }
    }

    let calls = Calls::new(host);
    let mut denials = Vec::new();
    let mut pins: Vec<(&ImageSite, String)> = Vec::new();
    let mut exempt = Vec::new();
    for site in &sites {
        let image = match Reference::parse(&site.image) {
            Ok(image) => image,
            Err(e) => {
                denials.push(format!(
                    "{}: image {:?} cannot be parsed: {e}",
                    site.describe(),
                    site.image
                ));
                continue;
            }
        };
        let label = format!("{}: image {}", site.describe(), shown(&site.image, &image));
        match evaluate(&image, policy, &calls) {
            Outcome::Exempt => exempt.push(site.image.clone()),
            Outcome::Allowed { pin } => {
                if let Some(digest) = pin {
                    if site.mutable {
                        pins.push((site, reference::pin(&site.image, &digest)));
                    } else {
                        warnings.push(format!(
                            "{label}: not pinned to {digest}: this subresource can only change ephemeral containers"
                        ));
                    }
                }
            }
            Outcome::Denied { rule, reason } => {
                let rule = rule.map(|i| &policy.rules[i]);
                match rule {
                    Some(r) if r.mode == Mode::Warn => warnings.push(format!(
                        "{label}: rule {:?} is in warn mode, would deny: {reason}{}",
                        r.name,
                        suffix(r)
                    )),
                    Some(r) => {
                        denials.push(format!("{label}: rule {:?}: {reason}{}", r.name, suffix(r)))
                    }
                    None if policy.unmatched == Unmatched::Warn => {
                        warnings.push(format!("{label}: {reason} (unmatched: warn)"))
                    }
                    None => denials.push(format!("{label}: {reason}")),
                }
            }
        }
    }
    if !exempt.is_empty() {
        audit.insert("exempt-images".to_string(), exempt.join(", "));
    }

    if !denials.is_empty() {
        let mut response = ValidationResponse::reject(format!(
            "imagegate denied {} of {} images: {}",
            denials.len(),
            sites.len(),
            denials.join("; ")
        ));
        response.warnings = non_empty(warnings);
        response.audit_annotations = non_empty_map(audit);
        return response;
    }

    let mutated = if pins.is_empty() {
        None
    } else {
        let Some(mut object) = req.object.clone() else {
            return ValidationResponse::reject(
                "imagegate: cannot pin digests: the request has no object",
            );
        };
        for (site, image) in &pins {
            if let Err(e) = workload::set_image(&mut object, &site.pointer, image.clone()) {
                return ValidationResponse::reject(format!("imagegate: cannot pin digests: {e}"));
            }
        }
        audit.insert(
            "pinned-images".to_string(),
            pins.iter()
                .map(|(s, to)| format!("{} -> {to}", s.image))
                .collect::<Vec<_>>()
                .join(", "),
        );
        Some(object)
    };
    accept_with(mutated, warnings, audit)
}

/// What the policy says about one parsed image.
enum Outcome {
    Exempt,
    /// Allowed, optionally pinned to a digest.
    Allowed {
        pin: Option<String>,
    },
    /// Denied by `rule` (an index into `policy.rules`), or by `unmatched` when `None`.
    Denied {
        rule: Option<usize>,
        reason: String,
    },
}

fn evaluate(image: &Reference, policy: &Policy, calls: &Calls) -> Outcome {
    let mut ids = Vec::new();
    policy.exempt_images.matches_into(image, &mut ids);
    if !ids.is_empty() {
        return Outcome::Exempt;
    }
    policy.patterns.matches_into(image, &mut ids);
    // Highest priority wins; on a tie the rule listed first.
    let best = ids
        .into_iter()
        .max_by_key(|&i| (policy.rules[i].priority, std::cmp::Reverse(i)));
    let Some(index) = best else {
        return match policy.unmatched {
            Unmatched::Allow => Outcome::Allowed { pin: None },
            Unmatched::Warn | Unmatched::Deny => Outcome::Denied {
                rule: None,
                reason: "matches no rule".to_string(),
            },
        };
    };
    let rule = &policy.rules[index];
    match decide_rule(image, rule, calls) {
        Ok(pin) => Outcome::Allowed { pin },
        Err(reason) => Outcome::Denied {
            rule: Some(index),
            reason,
        },
    }
}

/// Applies one rule: action, tag constraints, verification, digest handling.
/// `Ok` carries the digest to pin, if any.
fn decide_rule(image: &Reference, rule: &Rule, calls: &Calls) -> Result<Option<String>, String> {
    if rule.action == Action::Deny {
        return Err("denied".to_string());
    }
    if let Some(tag) = image.tag() {
        if let Some(glob) = rule.tags_deny.iter().find(|g| g.is_match(tag)) {
            return Err(format!(
                "tag {tag:?} is denied (tags.deny {:?})",
                glob.as_str()
            ));
        }
        if !rule.tags_allow.is_empty() && !rule.tags_allow.iter().any(|g| g.is_match(tag)) {
            return Err(format!("tag {tag:?} is not in tags.allow"));
        }
    }
    if rule.require_digest && image.digest().is_none() {
        return Err(
            "a digest is required (tags.requireDigest): write the image as name@sha256:..."
                .to_string(),
        );
    }
    let normalized = image.to_string();
    let Some(verify) = &rule.verify else {
        return match (rule.pin_digest, image.digest()) {
            (true, None) => calls.manifest_digest(&normalized).map(Some),
            _ => Ok(None),
        };
    };
    let signed = run_verify(verify, &normalized, calls)?;
    let mismatch = |actual: &str| {
        format!(
            "image digest {actual} differs from the signed digest {} ({})",
            signed.digest, signed.by
        )
    };
    match (image.digest(), rule.on_digest_mismatch) {
        (Some(actual), _) if actual == signed.digest => Ok(None),
        (Some(actual), OnDigestMismatch::Deny) => Err(mismatch(actual)),
        (Some(_), OnDigestMismatch::Rewrite) => Ok(Some(signed.digest)),
        // Notary signs tag -> digest: the tag may have moved since.
        (None, OnDigestMismatch::Rewrite) if signed.maps_tag => Ok(Some(signed.digest)),
        (None, OnDigestMismatch::Deny) if signed.maps_tag => {
            let actual = calls.manifest_digest(&normalized)?;
            if actual != signed.digest {
                return Err(mismatch(&actual));
            }
            Ok(rule.pin_digest.then_some(signed.digest))
        }
        (None, _) => Ok(rule.pin_digest.then_some(signed.digest)),
    }
}

/// A passed verification.
struct Signed {
    digest: String,
    /// What verified it, for messages: `cosign key "release"`.
    by: String,
    /// The digest comes from a signed tag mapping (Notary), not from resolving
    /// the image at the registry.
    maps_tag: bool,
}

fn run_verify(verify: &Verify, image: &str, calls: &Calls) -> Result<Signed, String> {
    match verify {
        Verify::AnyOf(checks) => {
            let mut failures = Vec::new();
            for check in checks {
                match run_check(check, image, calls) {
                    Ok(signed) => return Ok(signed),
                    Err(e) => failures.push(e),
                }
            }
            Err(format!(
                "no signature check passed: {}",
                failures.join("; ")
            ))
        }
        Verify::AllOf(checks) => {
            let mut passed: Vec<Signed> = Vec::with_capacity(checks.len());
            for check in checks {
                let signed = run_check(check, image, calls)?;
                if let Some(first) = passed.first() {
                    if first.digest != signed.digest {
                        return Err(format!(
                            "signature checks disagree on the digest: {} ({}) vs {} ({})",
                            first.digest, first.by, signed.digest, signed.by
                        ));
                    }
                }
                passed.push(signed);
            }
            let maps_tag = passed.iter().any(|s| s.maps_tag);
            let mut first = passed.swap_remove(0);
            first.maps_tag = maps_tag;
            Ok(first)
        }
    }
}

fn run_check(check: &Check, image: &str, calls: &Calls) -> Result<Signed, String> {
    let image = image.to_string();
    let sigstore = |by: String, req: SigstoreVerifyRequest| {
        calls
            .sigstore(&req)
            .map(|digest| Signed {
                digest,
                by: by.clone(),
                maps_tag: false,
            })
            .map_err(|e| format!("{by}: {e}"))
    };
    match check {
        Check::Cosign { keys, annotations } => {
            let mut failures = Vec::new();
            for key in keys {
                let req = SigstoreVerifyRequest::SigstorePubKeyVerify {
                    image: image.clone(),
                    pub_keys: vec![key.pem.clone()],
                    annotations: annotations.clone(),
                };
                match sigstore(format!("cosign key {:?}", key.name), req) {
                    Ok(signed) => return Ok(signed),
                    Err(e) => failures.push(e),
                }
            }
            Err(failures.join("; "))
        }
        Check::Keyless {
            issuer,
            subject,
            annotations,
        } => sigstore(
            format!("keyless {issuer} {subject}"),
            SigstoreVerifyRequest::SigstoreKeylessVerify {
                image,
                keyless: vec![crate::wire::KeylessInfo {
                    issuer: issuer.clone(),
                    subject: subject.clone(),
                }],
                annotations: annotations.clone(),
            },
        ),
        Check::KeylessPrefix {
            issuer,
            prefix,
            annotations,
        } => sigstore(
            format!("keyless {issuer} {prefix}*"),
            SigstoreVerifyRequest::SigstoreKeylessPrefixVerify {
                image,
                keyless_prefix: vec![crate::wire::KeylessPrefixInfo {
                    issuer: issuer.clone(),
                    url_prefix: prefix.clone(),
                }],
                annotations: annotations.clone(),
            },
        ),
        Check::GithubActions {
            owner,
            repo,
            annotations,
        } => sigstore(
            format!(
                "GitHub Actions {owner}{}",
                repo.as_ref().map(|r| format!("/{r}")).unwrap_or_default()
            ),
            SigstoreVerifyRequest::SigstoreGithubActionsVerify {
                image,
                owner: owner.clone(),
                repo: repo.clone(),
                annotations: annotations.clone(),
            },
        ),
        Check::Certificate {
            certificate,
            chain,
            require_rekor_bundle,
            annotations,
        } => sigstore(
            "certificate".to_string(),
            SigstoreVerifyRequest::SigstoreCertificateVerify {
                image,
                certificate: certificate.as_bytes().to_vec(),
                certificate_chain: (!chain.is_empty())
                    .then(|| chain.iter().map(|c| c.as_bytes().to_vec()).collect()),
                require_rekor_bundle: *require_rekor_bundle,
                annotations: annotations.clone(),
            },
        ),
        Check::Notary {
            server,
            signers,
            ca_cert,
            root_keys,
        } => {
            let roles: Vec<&str> = signers.iter().map(|s| s.role.as_str()).collect();
            let by = if roles.is_empty() {
                format!("notary {server}")
            } else {
                format!("notary {server} ({})", roles.join(", "))
            };
            let req = NotaryVerifyRequest {
                image,
                server: server.clone(),
                signers: signers.clone(),
                ca_cert: ca_cert.clone(),
                root_keys: root_keys.clone(),
            };
            let resp: NotaryVerifyResponse = calls.call("notary", "v1/verify", &req).map_err(|e| {
                if e.contains("unknown namespace: notary") {
                    format!("{by}: this host has no Notary capability (Kubewarden's policy-server answers {e:?}); Notary checks need the imagegate host")
                } else {
                    format!("{by}: {e}")
                }
            })?;
            if !resp.is_trusted {
                return Err(format!("{by}: the host answered is_trusted: false"));
            }
            check_digest(&resp.digest).map_err(|e| format!("{by}: {e}"))?;
            Ok(Signed {
                digest: resp.digest,
                by: format!("notary signer {}", resp.signer),
                maps_tag: true,
            })
        }
    }
}

/// Host calls of one request, each made at most once: two containers running
/// the same image cost one verification.
struct Calls<'a> {
    host: &'a dyn Host,
    memo: RefCell<HashMap<CallKey, Result<Vec<u8>, String>>>,
}

/// namespace, operation, payload.
type CallKey = (&'static str, &'static str, Vec<u8>);

impl<'a> Calls<'a> {
    fn new(host: &'a dyn Host) -> Self {
        Calls {
            host,
            memo: RefCell::new(HashMap::new()),
        }
    }

    fn call<T: DeserializeOwned>(
        &self,
        namespace: &'static str,
        operation: &'static str,
        payload: &impl Serialize,
    ) -> Result<T, String> {
        let payload =
            serde_json::to_vec(payload).map_err(|e| format!("cannot encode the host call: {e}"))?;
        let key = (namespace, operation, payload);
        let cached = self.memo.borrow().get(&key).cloned();
        let answer = match cached {
            Some(answer) => answer,
            None => {
                let answer = self.host.call(namespace, operation, &key.2);
                self.memo.borrow_mut().insert(key, answer.clone());
                answer
            }
        }?;
        serde_json::from_slice(&answer).map_err(|e| {
            format!("malformed answer from host capability {namespace}/{operation}: {e}")
        })
    }

    /// `oci/v2/verify`; returns the verified digest.
    fn sigstore(&self, req: &SigstoreVerifyRequest) -> Result<String, String> {
        let resp: VerifyResponse = self.call("oci", "v2/verify", req)?;
        if !resp.is_trusted {
            return Err("the host answered is_trusted: false".to_string());
        }
        check_digest(&resp.digest)?;
        Ok(resp.digest)
    }

    /// `oci/v1/manifest_digest`: the digest the image resolves to now.
    fn manifest_digest(&self, image: &str) -> Result<String, String> {
        let resp: ManifestDigestResponse = self
            .call("oci", "v1/manifest_digest", &image)
            .map_err(|e| format!("cannot resolve the digest of {image}: {e}"))?;
        check_digest(&resp.digest)
            .map_err(|e| format!("cannot resolve the digest of {image}: {e}"))?;
        Ok(resp.digest)
    }
}

/// A digest from the host goes into the object: it must be well formed.
fn check_digest(digest: &str) -> Result<(), String> {
    let ok = match digest.split_once(':') {
        Some(("sha256", hex)) => hex.len() == 64,
        Some(("sha512", hex)) => hex.len() == 128,
        _ => false,
    } && digest
        .split_once(':')
        .is_some_and(|(_, hex)| hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    if ok {
        Ok(())
    } else {
        Err(format!("the host returned an invalid digest {digest:?}"))
    }
}

/// `"nginx"` -> `"nginx" (docker.io/library/nginx:latest)`.
fn shown(written: &str, image: &Reference) -> String {
    let normalized = image.to_string();
    if normalized == written {
        format!("{written:?}")
    } else {
        format!("{written:?} ({normalized})")
    }
}

fn suffix(rule: &Rule) -> String {
    rule.message
        .as_ref()
        .map(|m| format!(" ({m})"))
        .unwrap_or_default()
}

fn accept() -> ValidationResponse {
    ValidationResponse {
        accepted: true,
        ..Default::default()
    }
}

fn accept_with(
    mutated_object: Option<serde_json::Value>,
    warnings: Vec<String>,
    audit: BTreeMap<String, String>,
) -> ValidationResponse {
    ValidationResponse {
        accepted: true,
        mutated_object,
        warnings: non_empty(warnings),
        audit_annotations: non_empty_map(audit),
        ..Default::default()
    }
}

fn non_empty(v: Vec<String>) -> Option<Vec<String>> {
    (!v.is_empty()).then_some(v)
}

fn non_empty_map(m: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!m.is_empty()).then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQTW9sqsjDyllhoVJlqBrZv/VtgKl\n9fpjLZZGCTcsG+r4h2SI/d0w/nIO0LXHbMr5eNLOw2Nd3LP7zP8ijpZqqg==\n-----END PUBLIC KEY-----\n";

    type Answer = Box<dyn Fn(&str, &str, &Value) -> Result<Value, String>>;

    /// Answers with a closure and records every call.
    struct FakeHost {
        answer: Answer,
        calls: RefCell<Vec<(String, String, Value)>>,
    }

    impl FakeHost {
        fn new(answer: impl Fn(&str, &str, &Value) -> Result<Value, String> + 'static) -> Self {
            FakeHost {
                answer: Box::new(answer),
                calls: RefCell::new(Vec::new()),
            }
        }
        fn none() -> Self {
            Self::new(|ns, op, _| panic!("unexpected host call {ns}/{op}"))
        }
        fn calls(&self) -> Vec<(String, String, Value)> {
            self.calls.borrow().clone()
        }
    }

    impl Host for FakeHost {
        fn call(&self, ns: &str, op: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
            let payload: Value = serde_json::from_slice(payload).unwrap();
            self.calls
                .borrow_mut()
                .push((ns.into(), op.into(), payload.clone()));
            (self.answer)(ns, op, &payload).map(|v| serde_json::to_vec(&v).unwrap())
        }
    }

    fn pod(images: &[&str]) -> AdmissionRequest {
        let containers: Vec<Value> = images
            .iter()
            .enumerate()
            .map(|(i, im)| json!({"name": format!("c{i}"), "image": im}))
            .collect();
        request(
            "",
            "Pod",
            json!({"metadata":{"name":"p"},"spec":{"containers": containers}}),
        )
    }

    fn request(group: &str, kind: &str, object: Value) -> AdmissionRequest {
        serde_json::from_value(json!({
            "uid": "u", "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": "x"},
            "namespace": "default", "operation": "CREATE",
            "userInfo": {"username": "alice", "groups": ["devs"]},
            "object": object
        }))
        .unwrap()
    }

    fn run(settings: Value, req: &AdmissionRequest, host: &FakeHost) -> ValidationResponse {
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
        assert!(run(deny_all.clone(), &req, &FakeHost::none()).accepted);
        req.operation = "CONNECT".into();
        assert!(run(deny_all.clone(), &req, &FakeHost::none()).accepted);
        let cm = request("", "ConfigMap", json!({"data":{"image":"evil"}}));
        assert!(run(deny_all, &cm, &FakeHost::none()).accepted);
    }

    #[test]
    fn unreadable_workload_is_denied() {
        let r = run(
            json!({}),
            &request("apps", "Deployment", json!({"metadata":{"name":"d"}})),
            &FakeHost::none(),
        );
        assert!(!r.accepted);
        assert_eq!(
            msg(&r),
            r#"imagegate: cannot read Deployment "d": spec.template.spec is missing"#
        );
    }

    #[test]
    fn unparsable_image_is_denied_even_with_empty_settings() {
        let r = run(json!({}), &pod(&["Nginx:1", "nginx"]), &FakeHost::none());
        assert!(!r.accepted);
        assert!(msg(&r).starts_with(r#"imagegate denied 1 of 2 images: container "c0": image "Nginx:1" cannot be parsed: "#), "{}", msg(&r));
    }

    #[test]
    fn every_denied_image_is_listed_once() {
        let s = json!({"rules":[{"name":"corp","images":["registry.corp.example/**"],"message":"use the corporate registry"}]});
        let r = run(
            s,
            &pod(&["nginx", "registry.corp.example/app:1", "ghcr.io/x/y:2"]),
            &FakeHost::none(),
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
        let r = run(s, &req, &FakeHost::none());
        assert!(r.accepted);
        assert_eq!(
            r.audit_annotations.unwrap()["exempt-namespace"],
            r#"namespace "kube-system" matches exemptNamespaces "kube-*""#
        );
    }

    #[test]
    fn break_glass_needs_the_exact_value_and_an_allowed_group() {
        let s = json!({"breakGlass":{"groups":["sre"]},"rules":[{"name":"none","images":["*"],"action":"deny"}]});
        let mut req = pod(&["nginx"]);
        req.object.as_mut().unwrap()["metadata"]["annotations"] =
            json!({"image-policy.k8s.io/break-glass":"true"});
        let r = run(s.clone(), &req, &FakeHost::none());
        assert!(!r.accepted, "alice is not in sre");
        assert!(r.warnings.unwrap()[0].contains("ignored"));
        req.user_info.groups.push("sre".into());
        let r = run(s.clone(), &req, &FakeHost::none());
        assert!(r.accepted);
        assert_eq!(
            r.audit_annotations.unwrap()["break-glass"],
            r#"used by "alice""#
        );
        req.object.as_mut().unwrap()["metadata"]["annotations"] =
            json!({"image-policy.k8s.io/break-glass":"True"});
        assert!(!run(s, &req, &FakeHost::none()).accepted);
    }

    #[test]
    fn highest_priority_wins_and_ties_go_to_the_first_rule() {
        let s = json!({"unmatched":"allow","rules":[
            {"name":"allow-corp","images":["corp.io/**"]},
            {"name":"deny-corp-legacy","images":["corp.io/legacy/**"],"action":"deny","priority":5},
            {"name":"allow-corp-legacy-ok","images":["corp.io/legacy/ok"],"priority":5}]});
        let r = run(s.clone(), &pod(&["corp.io/app:1"]), &FakeHost::none());
        assert!(r.accepted);
        let r = run(s.clone(), &pod(&["corp.io/legacy/x:1"]), &FakeHost::none());
        assert!(
            msg(&r).contains(r#"rule "deny-corp-legacy": denied"#),
            "{}",
            msg(&r)
        );
        let r = run(s, &pod(&["corp.io/legacy/ok:1"]), &FakeHost::none());
        assert!(
            msg(&r).contains("deny-corp-legacy"),
            "tie goes to the rule listed first"
        );
    }

    #[test]
    fn tag_rules() {
        let s = json!({"rules":[{"name":"no-latest","images":["*"],"tags":{"deny":["latest"]}}]});
        for image in ["nginx", "nginx:latest", &format!("nginx:latest@{D1}")] {
            let r = run(s.clone(), &pod(&[image]), &FakeHost::none());
            assert!(
                msg(&r).contains(r#"tag "latest" is denied (tags.deny "latest")"#),
                "{image}: {}",
                msg(&r)
            );
        }
        assert!(run(s, &pod(&[&format!("nginx@{D1}")]), &FakeHost::none()).accepted);
        let s = json!({"rules":[{"name":"pinned","images":["*"],"tags":{"requireDigest":true,"allow":["v*"]}}]});
        assert!(msg(&run(s.clone(), &pod(&["nginx:v1"]), &FakeHost::none()))
            .contains("a digest is required"));
        assert!(msg(&run(
            s.clone(),
            &pod(&[&format!("nginx:1@{D1}")]),
            &FakeHost::none()
        ))
        .contains("not in tags.allow"));
        assert!(run(s, &pod(&[&format!("nginx:v1@{D1}")]), &FakeHost::none()).accepted);
    }

    #[test]
    fn warn_mode_and_unmatched_warn_become_warnings() {
        let s = json!({"unmatched":"warn","rules":[{"name":"no-latest","images":["ghcr.io/**"],"mode":"warn","tags":{"deny":["latest"]},"message":"pin a version"}]});
        let r = run(
            s,
            &pod(&["ghcr.io/a/b", "quay.io/x/y:1"]),
            &FakeHost::none(),
        );
        assert!(r.accepted);
        let w = r.warnings.unwrap();
        assert_eq!(w.len(), 2);
        assert!(
            w[0].contains(
                r#"rule "no-latest" is in warn mode, would deny: tag "latest" is denied"#
            ),
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
        let host = FakeHost::new(|ns, op, p| {
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
        let mut req = pod(&["ghcr.io/corp/app:1.0", "ghcr.io/corp/app:1.0"]);
        req.object.as_mut().unwrap()["spec"]["x-unknown-field"] = json!({"kept": true});
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
        let host = FakeHost::new(|_, _, _| {
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
            let host = FakeHost::new(move |_, _, _| Ok(answer.clone()));
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
        let host = || FakeHost::new(|_, _, _| Ok(json!({"is_trusted": true, "digest": D1})));
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
            FakeHost::new(|ns, op, p| match (ns, op) {
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
        assert!(msg(&r).contains(&format!("image digest {D2} differs from the signed digest {D1} (notary signer targets/jenkins)")), "{}", msg(&r));
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
        let host = FakeHost::new(|_, _, _| Err("unknown namespace: notary".into()));
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
        let host = FakeHost::new(|_, op, _| {
            assert_eq!(op, "v1/manifest_digest");
            Ok(json!({"digest": D1}))
        });
        let mut req = pod(&["nginx:1"]);
        req.object.as_mut().unwrap()["spec"]["ephemeralContainers"] =
            json!([{"name":"dbg","image":"busybox:1"}]);
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
        let host = FakeHost::new(|_, _, _| {
            Err("Cannot fetch manifest of docker.io/library/nginx:1: connection refused".into())
        });
        let r = run(s, &pod(&["nginx:1"]), &host);
        assert!(msg(&r).ends_with("rule \"pin\": cannot resolve the digest of docker.io/library/nginx:1: Cannot fetch manifest of docker.io/library/nginx:1: connection refused"), "{}", msg(&r));
    }

    #[test]
    fn all_of_requires_every_check_and_one_digest() {
        let s = json!({"keys":{"k":{"cosign":KEY}},"rules":[{"name":"both","images":["*"],
            "verify":{"allOf":[{"cosign":{"keys":["k"]}},{"keyless":{"issuer":"https://i","subject":"s"}}]}}]});
        let host = FakeHost::new(|_, _, p| {
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
}
