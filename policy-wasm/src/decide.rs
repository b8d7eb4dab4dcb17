//! The decision engine: `(request, Policy, &dyn Host) -> ValidationResponse`.
//!
//! Pure Rust: the same code runs in the wasm module (with the waPC host) and
//! natively in tests (with a fake host). Every image is checked; one rejection
//! message lists every denied image with its container, rule and reason. Any
//! host error is a failed check (fail closed).

use crate::host::Host;
use crate::reference::{self, ParseError, Reference};
use crate::settings::{
    Action, Check, LabelCondition, Mode, OnDigestMismatch, Policy, Rule, Unmatched, Verify,
};
use crate::wire::{
    AdmissionRequest, ManifestConfigResponse, ManifestDigestResponse, NotaryVerifyRequest,
    NotaryVerifyResponse, SigstoreVerifyRequest, ValidationResponse, VerifyResponse,
};
use crate::workload::{self, ImageSite};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

/// Decides one admission request.
pub fn validate(req: &AdmissionRequest, policy: &Policy, host: &dyn Host) -> ValidationResponse {
    decide_request(req, policy, host, None)
}

/// What the engine decided for one image (shown by the playground).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageReport {
    /// `container "app"`, `init container "setup"`, ...
    pub container: String,
    /// The image as written.
    pub image: String,
    /// Its normalized form; `None` when it does not parse.
    pub normalized: Option<String>,
    pub decision: Decision,
    /// The rule that decided; `None` when no rule matched or the image was not evaluated.
    pub rule: Option<String>,
    /// Why it was denied or warned about.
    pub reason: Option<String>,
    /// The image as the mutation writes it, when a digest is pinned.
    pub pinned: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allowed,
    Warned,
    Denied,
    Exempt,
}

/// [`validate`], plus one report per image checked (none when the request
/// was decided without looking at images).
pub fn explain(
    req: &AdmissionRequest,
    policy: &Policy,
    host: &dyn Host,
) -> (ValidationResponse, Vec<ImageReport>) {
    let mut reports = Vec::new();
    let response = decide_request(req, policy, host, Some(&mut reports));
    (response, reports)
}

fn decide_request(
    req: &AdmissionRequest,
    policy: &Policy,
    host: &dyn Host,
    reports: Option<&mut Vec<ImageReport>>,
) -> ValidationResponse {
    if matches!(req.operation.as_str(), "DELETE" | "CONNECT") {
        return accept();
    }
    let sites = match workload::find_images(req) {
        Ok(None) => return accept(),
        Ok(Some(sites)) => sites,
        Err(reason) => return ValidationResponse::reject(format!("imagegate: {reason}")),
    };
    if let Some(sourced) = &policy.sources {
        return validate_sourced(req, sourced, host, reports);
    }

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
        let object = req.object.as_deref();
        if object
            .and_then(|o| workload::annotation(o, &bg.annotation))
            .as_deref()
            == Some("true")
        {
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
    // Decide every image first; words are only spent on what needs them.
    let results: Vec<Result<(Reference, Outcome), ParseError>> = sites
        .iter()
        .map(|site| {
            let image = Reference::parse(&site.image)?;
            let outcome = evaluate(&image, policy, &calls);
            Ok((image, outcome))
        })
        .collect();
    if let Some(reports) = reports {
        reports.extend(
            sites
                .iter()
                .zip(&results)
                .map(|(site, r)| report(site, r, policy)),
        );
    }
    for (site, result) in sites.iter().zip(&results) {
        let (image, outcome) = match result {
            Ok(decided) => decided,
            Err(e) => {
                denials.push(format!(
                    "{}: image {:?} cannot be parsed: {e}",
                    site.describe(),
                    site.image
                ));
                continue;
            }
        };
        let label = || format!("{}: image {}", site.describe(), shown(&site.image, image));
        let unmatched = |reason: &str| unmatched_text(policy, &site.image, reason);
        match outcome {
            Outcome::Exempt => exempt.push(site.image.clone()),
            Outcome::Allowed { pin: None, .. } => {}
            Outcome::Allowed {
                pin: Some(digest), ..
            } => {
                if site.mutable {
                    pins.push((site, reference::pin(&site.image, digest)));
                } else {
                    warnings.push(format!(
                        "{}: not pinned to {digest}: this subresource can only change ephemeral containers",
                        label()
                    ));
                }
            }
            Outcome::Denied { rule, reason } => match rule.map(|i| &policy.rules[i]) {
                Some(r) if r.mode == Mode::Warn => warnings.push(format!(
                    "{}: rule {:?} is in warn mode, would deny: {reason}{}",
                    label(),
                    r.name,
                    suffix(r, &site.image)
                )),
                Some(r) => denials.push(format!(
                    "{}: rule {:?}: {reason}{}",
                    label(),
                    r.name,
                    suffix(r, &site.image)
                )),
                // A custom unmatched text is the whole warning, worded as the tool
                // it comes from words it (Tanzu's AllowUnmatchedImages warning).
                None if policy.unmatched == Unmatched::Warn => match policy.unmatched_message {
                    Some(_) => warnings.push(unmatched(reason)),
                    None => warnings.push(format!("{}: {reason} (unmatched: warn)", label())),
                },
                None => denials.push(format!("{}: {}", label(), unmatched(reason))),
            },
        }
    }
    if !exempt.is_empty() {
        audit.insert("exempt-images".to_string(), exempt.join(", "));
    }
    // One warning per distinct text (two containers, one unmatched message).
    let mut seen = std::collections::HashSet::new();
    warnings.retain(|w| seen.insert(w.clone()));

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
        let object = req
            .object
            .as_deref()
            .map(|o| serde_json::from_str::<serde_json::Value>(o.get()));
        let mut object = match object {
            Some(Ok(object)) => object,
            Some(Err(e)) => {
                return ValidationResponse::reject(format!("imagegate: cannot pin digests: {e}"))
            }
            None => {
                return ValidationResponse::reject(
                    "imagegate: cannot pin digests: the request has no object",
                )
            }
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

/// Completes the settings with the objects of `sources` (read through the
/// host's `kubernetes/*` capabilities) and decides with the result: one
/// decision path whatever the settings came from.
fn validate_sourced(
    req: &AdmissionRequest,
    sourced: &crate::settings::SourcedSettings,
    host: &dyn Host,
    reports: Option<&mut Vec<ImageReport>>,
) -> ValidationResponse {
    let namespace = req.namespace.as_deref().unwrap_or("");
    let settings = match crate::sources::context::merged_settings(
        sourced.sources,
        &sourced.base,
        namespace,
        host,
    ) {
        Ok(settings) => settings,
        Err(e) => return ValidationResponse::reject(format!("imagegate: sources: {e}")),
    };
    match Policy::from_json(&settings.to_string()) {
        Ok(policy) => decide_request(req, &policy, host, reports),
        Err(e) => ValidationResponse::reject(format!(
            "imagegate: the settings built from sources are invalid: {e}"
        )),
    }
}

/// The report of one image, from what [`decide_request`] decided.
fn report(
    site: &ImageSite,
    result: &Result<(Reference, Outcome), ParseError>,
    policy: &Policy,
) -> ImageReport {
    let mut report = ImageReport {
        container: site.describe(),
        image: site.image.clone(),
        normalized: None,
        decision: Decision::Allowed,
        rule: None,
        reason: None,
        pinned: None,
    };
    let (image, outcome) = match result {
        Ok(decided) => decided,
        Err(e) => {
            report.decision = Decision::Denied;
            report.reason = Some(format!("cannot be parsed: {e}"));
            return report;
        }
    };
    report.normalized = Some(image.to_string());
    match outcome {
        Outcome::Exempt => report.decision = Decision::Exempt,
        Outcome::Allowed { rule, pin } => {
            report.rule = rule.map(|i| policy.rules[i].name.clone());
            report.pinned = pin
                .as_ref()
                .filter(|_| site.mutable)
                .map(|digest| reference::pin(&site.image, digest));
        }
        Outcome::Denied { rule, reason } => {
            let rule = rule.map(|i| &policy.rules[i]);
            report.rule = rule.map(|r| r.name.clone());
            report.reason = Some(match rule {
                Some(r) => format!("{reason}{}", suffix(r, &site.image)),
                None => unmatched_text(policy, &site.image, reason),
            });
            let warned = match rule {
                Some(r) => r.mode == Mode::Warn,
                None => policy.unmatched == Unmatched::Warn,
            };
            report.decision = if warned {
                Decision::Warned
            } else {
                Decision::Denied
            };
        }
    }
    report
}

/// What the policy says about one parsed image.
enum Outcome {
    Exempt,
    /// Allowed by `rule` (or by `unmatched` when `None`), optionally pinned to a digest.
    Allowed {
        rule: Option<usize>,
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
    if !policy.regexes.is_empty() {
        let name = repository(image);
        ids.extend(
            policy
                .regexes
                .iter()
                .filter(|(re, _)| re.is_match(&name))
                .map(|(_, i)| *i),
        );
    }
    // Highest priority wins; on a tie the rule listed first. A rule with
    // image label conditions matches only when the image carries them.
    ids.sort_by_key(|&i| (std::cmp::Reverse(policy.rules[i].priority), i));
    ids.dedup();
    for index in ids {
        let rule = &policy.rules[index];
        if !rule.labels.is_empty() {
            match calls.labels(&image.to_string()) {
                Ok(labels) if rule.labels.iter().all(|c| has_label(&labels, c)) => {}
                Ok(_) => continue,
                Err(_) if rule.skip_on_resolution_failure => continue,
                Err(e) => {
                    return Outcome::Denied {
                        rule: Some(index),
                        reason: format!("cannot read the image labels (imageLabels): {e}"),
                    }
                }
            }
        }
        return match decide_rule(image, rule, calls) {
            Ok(pin) => Outcome::Allowed {
                rule: Some(index),
                pin,
            },
            Err(reason) => Outcome::Denied {
                rule: Some(index),
                reason,
            },
        };
    }
    match policy.unmatched {
        Unmatched::Allow => Outcome::Allowed {
            rule: None,
            pin: None,
        },
        Unmatched::Warn | Unmatched::Deny => Outcome::Denied {
            rule: None,
            reason: "matches no rule".to_string(),
        },
    }
}

/// `host[:port]/path`: what `imageRegex` is matched against.
fn repository(image: &Reference) -> String {
    match image.port() {
        Some(port) => format!("{}:{port}/{}", image.host(), image.path()),
        None => format!("{}/{}", image.host(), image.path()),
    }
}

fn has_label(labels: &serde_json::Map<String, serde_json::Value>, c: &LabelCondition) -> bool {
    match (labels.get(&c.key), &c.value) {
        (Some(_), None) => true,
        (Some(v), Some(want)) => v.as_str() == Some(want.as_str()),
        (None, _) => false,
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

    /// `oci/v1/oci_manifest_config`: the labels of the image's config
    /// (`config.Labels`; none is an empty map).
    fn labels(&self, image: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        let resp: ManifestConfigResponse = self.call("oci", "v1/oci_manifest_config", &image)?;
        Ok(resp
            .config
            .pointer("/config/Labels")
            .and_then(serde_json::Value::as_object)
            .cloned()
            .unwrap_or_default())
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

/// Why an image no rule matches is denied or warned about: `unmatchedMessage`
/// with `{image}` replaced by the image as written, or the engine's reason.
fn unmatched_text(policy: &Policy, image: &str, reason: &str) -> String {
    match &policy.unmatched_message {
        Some(text) => text.replace("{image}", image),
        None => reason.to_string(),
    }
}

/// The rule's `message`, `{image}` replaced by the image as written.
fn suffix(rule: &Rule, image: &str) -> String {
    rule.message
        .as_ref()
        .map(|m| format!(" ({})", m.replace("{image}", image)))
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

    /// Changes the request's (raw) object.
    fn edit(req: &mut AdmissionRequest, change: impl FnOnce(&mut Value)) {
        let mut object: Value = serde_json::from_str(req.object.as_ref().unwrap().get()).unwrap();
        change(&mut object);
        req.object = Some(serde_json::value::RawValue::from_string(object.to_string()).unwrap());
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
    fn explain_reports_every_image() {
        let s = json!({"rules":[{"name":"corp","images":["corp.io/**"],"tags":{"deny":["latest"]}}],"exemptImages":["registry.k8s.io/pause"]});
        let policy = Policy::from_json(&s.to_string()).unwrap();
        let (r, reports) = explain(
            &pod(&["corp.io/a:1", "corp.io/b", "Bad", "registry.k8s.io/pause:3"]),
            &policy,
            &FakeHost::none(),
        );
        assert!(!r.accepted);
        let got: Vec<_> = reports
            .iter()
            .map(|r| (r.decision, r.rule.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (Decision::Allowed, Some("corp")),
                (Decision::Denied, Some("corp")),
                (Decision::Denied, None),
                (Decision::Exempt, None)
            ]
        );
        assert_eq!(reports[1].normalized.as_deref(), Some("corp.io/b:latest"));
        assert!(reports[2]
            .reason
            .as_deref()
            .unwrap()
            .starts_with("cannot be parsed"));
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
        edit(&mut req, |o| {
            o["metadata"]["annotations"] = json!({"image-policy.k8s.io/break-glass":"true"})
        });
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
        edit(&mut req, |o| {
            o["metadata"]["annotations"] = json!({"image-policy.k8s.io/break-glass":"True"})
        });
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
        edit(&mut req, |o| {
            o["spec"]["x-unknown-field"] = json!({"kept": true})
        });
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
        edit(&mut req, |o| {
            o["spec"]["ephemeralContainers"] = json!([{"name":"dbg","image":"busybox:1"}])
        });
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

    #[test]
    fn unmatched_message_is_the_whole_warning_once_and_messages_name_the_image() {
        let s = json!({"unmatched":"warn","unmatchedMessage":"{image} did not match any image policies.",
            "rules":[{"name":"t","images":["gcr.io/projectsigstore/cosign*"],"action":"deny",
                "message":"The image: {image} is not signed."}]});
        let r = run(s.clone(), &pod(&["busybox", "busybox"]), &FakeHost::none());
        assert!(r.accepted);
        assert_eq!(
            r.warnings.unwrap(),
            vec!["busybox did not match any image policies.".to_string()]
        );
        let r = run(
            s,
            &pod(&["gcr.io/projectsigstore/cosign:v0.3.0"]),
            &FakeHost::none(),
        );
        assert!(
            msg(&r).ends_with("(The image: gcr.io/projectsigstore/cosign:v0.3.0 is not signed.)"),
            "{}",
            msg(&r)
        );
        let s = json!({"unmatchedMessage":"Image '{image}' does not meet registry security policy",
            "rules":[{"name":"a","images":["reg.io/**"]}]});
        assert!(msg(&run(s, &pod(&["nginx"]), &FakeHost::none()))
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
            let r = run(s.clone(), &pod(&[image]), &FakeHost::none());
            assert!(
                msg(&r).contains(r#"rule "alpine": denied"#),
                "{image}: {}",
                msg(&r)
            );
        }
        assert!(run(s, &pod(&["nginx"]), &FakeHost::none()).accepted);
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
            FakeHost::new(|ns, op, p| {
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
        let host = FakeHost::new(|ns, op, p| {
            assert_eq!((ns, op), ("kubernetes", "get_resource"));
            assert_eq!(p["kind"], "ClusterImagePolicy");
            Err(
                r#"clusterimagepolicies.signing.apps.tanzu.vmware.com "image-policy" not found"#
                    .into(),
            )
        });
        let r = run(s.clone(), &pod(&["busybox"]), &host);
        assert!(r.accepted);
        assert_eq!(
            r.warnings.unwrap(),
            vec![crate::sources::tanzu::NOT_FOUND.to_string()]
        );
        let down = FakeHost::new(|_, _, _| Err("connection refused".into()));
        let r = run(s, &pod(&["busybox"]), &down);
        assert!(msg(&r).starts_with("imagegate: sources: cannot read ClusterImagePolicy image-policy: connection refused"), "{}", msg(&r));
    }
}
