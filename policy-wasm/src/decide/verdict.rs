//! One verdict per image: which rule decides it, what that rule requires
//! (tags, digest, signatures) and what came of it.
//!
//! The rule is the highest-priority match (ties: the rule listed first); with
//! none, `unmatched` decides. Whether a denial is a warning (a rule in warn
//! mode, `unmatched: warn`) is decided here, once: the response and the
//! playground's report read it from the [`Verdict`].

use super::checks::{self, Calls, CheckRun};
use crate::reference::{self, ParseError, Reference};
use crate::settings::{Action, LabelCondition, Mode, OnDigestMismatch, Policy, Rule, Unmatched};
use crate::wire::{ImageReport, RuleMatch};
use crate::workload::ImageSite;
use serde::ser::{Serialize, Serializer};
use std::collections::HashMap;
use std::sync::Arc;

/// What matching an image against a policy found, kept per image by a
/// reused instance for the policy it keeps: whether an `exemptImages`
/// pattern matched, and the candidate rules in order.
pub(crate) type Matches = HashMap<Reference, (bool, Vec<usize>), crate::pattern::FastHash>;

/// Matching's scratch list (the candidate rules of the image at hand) and
/// the [`Matches`] a reused instance keeps, if any.
pub(super) struct Matcher<'m> {
    pub(super) ids: Vec<usize>,
    pub(super) memo: Option<&'m mut Matches>,
}

/// What the engine decided for one image of the request.
///
/// [`explain`](crate::decide::explain) returns one per image, in the order of
/// the object's containers; the admission response is written from them.
///
/// ```
/// use imagegate_policy::decide::{self, Decision};
/// use imagegate_policy::host::Host;
/// use imagegate_policy::settings::Policy;
/// use imagegate_policy::wire::AdmissionRequest;
///
/// struct NoHost;
/// impl Host for NoHost {
///     fn call(&self, ns: &str, op: &str, _: &[u8]) -> Result<Vec<u8>, String> {
///         Err(format!("no {ns}/{op} here"))
///     }
/// }
///
/// let policy = Policy::from_json(
///     r#"{"rules":[{"name":"no-latest","images":["**"],"tags":{"deny":["latest"]}}]}"#,
/// )?;
/// let request: AdmissionRequest = serde_json::from_str(
///     r#"{"uid":"1","operation":"CREATE","namespace":"shop",
///         "kind":{"group":"","version":"v1","kind":"Pod"},
///         "object":{"spec":{"containers":[{"name":"app","image":"nginx"}]}}}"#,
/// )
/// .map_err(|e| e.to_string())?;
/// let (response, verdicts) = decide::explain(&request, &policy, &NoHost);
/// assert!(!response.accepted);
/// let v = &verdicts[0];
/// assert_eq!(v.container(), r#"container "app""#);
/// assert_eq!(v.normalized().map(|r| r.to_string()).as_deref(), Some("docker.io/library/nginx:latest"));
/// assert_eq!((v.decision(), v.rule()), (Decision::Denied, Some("no-latest")));
/// assert_eq!(v.reason(), Some(r#"tag "latest" is denied (tags.deny "latest")"#));
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    site: ImageSite,
    reference: Result<Reference, ParseError>,
    decision: Decision,
    rule: Option<Arc<str>>,
    reason: Option<String>,
    checks: Vec<CheckRun>,
    pin: Option<String>,
}

/// The outcome for one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Admitted by its rule, or by `unmatched: allow`.
    Allowed,
    /// Would be denied, but its rule is in warn mode (or `unmatched: warn`):
    /// admitted with a warning.
    Warned,
    /// Denied: the whole request is rejected.
    Denied,
    /// Matched `exemptImages`: not checked, named in an audit annotation.
    Exempt,
}

impl Decision {
    /// `allowed`, `warned`, `denied`, `exempt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Warned => "warned",
            Decision::Denied => "denied",
            Decision::Exempt => "exempt",
        }
    }
}

impl Verdict {
    /// Where the image is: `container "app"`, `init container "setup"`, `ephemeral container "debugger"`.
    pub fn container(&self) -> String {
        self.site.describe()
    }

    /// The image as written in the object.
    pub fn image(&self) -> &str {
        &self.site.image
    }

    /// Its normalized reference; `None` when it does not parse (then denied).
    pub fn normalized(&self) -> Option<&Reference> {
        self.reference.as_ref().ok()
    }

    /// Allowed, warned, denied or exempt.
    pub fn decision(&self) -> Decision {
        self.decision
    }

    /// The name of the rule that decided; `None` when no rule matched (the
    /// `unmatched` setting decided), the image is exempt or does not parse.
    pub fn rule(&self) -> Option<&str> {
        self.rule.as_deref()
    }

    /// Why the image was denied or warned about (with the rule's `message`);
    /// `None` when it was allowed or exempt.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// The host checks run for this image, in order: signature verifications
    /// and digest lookups, each with the digest it returned or why it failed.
    pub fn checks(&self) -> &[CheckRun] {
        &self.checks
    }

    /// The digest the rule pins the image to (`pinDigest`, `onDigestMismatch: rewrite`).
    pub fn pin(&self) -> Option<&str> {
        self.pin.as_deref()
    }

    /// The image as the mutation writes it (`nginx:1@sha256:...`); `None`
    /// without a pin, or when the request may not change this image (on the
    /// `pods/ephemeralcontainers` subresource only ephemeral containers can).
    pub fn pinned(&self) -> Option<String> {
        self.pin
            .as_deref()
            .filter(|_| self.site.mutable)
            .map(|digest| reference::pin(&self.site.image, digest))
    }

    /// JSON pointer of the image string in the object.
    pub(super) fn pointer(&self) -> &str {
        &self.site.pointer
    }
}

/// The report of one image ([`ImageReport`]) without `precedence`, which
/// needs the policy ([`Verdict::report`]).
impl Serialize for Verdict {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.report_with(Vec::new()).serialize(s)
    }
}

impl Verdict {
    /// The report of this verdict, decided under `policy`: with every rule
    /// that matched the image in the order they were tried, so a reader sees
    /// why the winner won (priority, then order). Matching is re-run here,
    /// only when asked, so the admission path pays nothing for it.
    pub fn report(&self, policy: &Policy) -> ImageReport {
        let mut precedence = Vec::new();
        if let (Ok(image), Decision::Allowed | Decision::Warned | Decision::Denied) =
            (&self.reference, self.decision)
        {
            let mut ids = Vec::new();
            candidates_into(image, policy, &mut ids);
            let winner = self
                .rule
                .as_deref()
                .and_then(|name| ids.iter().position(|&i| &*policy.rules[i].name == name));
            precedence = ids
                .iter()
                .enumerate()
                .map(|(at, &i)| RuleMatch {
                    rule: policy.rules[i].name.to_string(),
                    priority: policy.rules[i].priority,
                    index: i,
                    outcome: match winner {
                        Some(w) if at == w => "decided",
                        Some(w) if at > w => "outranked",
                        // Tried before the winner (or with no winner): only
                        // unmet imageLabels make a matching rule step aside.
                        _ => "skipped",
                    }
                    .to_string(),
                })
                .collect();
        }
        self.report_with(precedence)
    }

    fn report_with(&self, precedence: Vec<RuleMatch>) -> ImageReport {
        ImageReport {
            container: self.container(),
            pointer: self.site.pointer.clone(),
            image: self.site.image.clone(),
            normalized: self.normalized().map(ToString::to_string),
            decision: self.decision.as_str().to_string(),
            rule: self.rule.as_deref().map(str::to_string),
            reason: self.reason.clone(),
            pin: self.pin.clone(),
            pinned: self.pinned(),
            checks: self.checks.iter().map(CheckRun::report).collect(),
            precedence,
        }
    }
}

/// The verdict on one image of an object that is a Pod when `pod` (what
/// `pinDigest: pods` pins). `ids` is scratch space reused across images.
pub(super) fn decide(
    (site, reference): super::Image,
    policy: &Policy,
    pod: bool,
    calls: &Calls,
    matcher: &mut Matcher<'_>,
) -> Verdict {
    let mut verdict = Verdict {
        reference,
        site,
        decision: Decision::Allowed,
        rule: None,
        reason: None,
        checks: Vec::new(),
        pin: None,
    };
    let image = match &verdict.reference {
        Ok(image) => image,
        // Whatever the rules say: an unparsable image, or an image ID, which
        // no exemption pattern can match either.
        Err(e) => {
            verdict.decision = Decision::Denied;
            verdict.reason = Some(match e.is_image_id() {
                true => e.to_string(),
                false => format!("cannot be parsed: {e}"),
            });
            return verdict;
        }
    };
    match evaluate(
        image,
        &verdict.site.image,
        policy,
        pod,
        calls,
        matcher,
        &mut verdict.checks,
    ) {
        Outcome::Exempt => verdict.decision = Decision::Exempt,
        Outcome::Refused { reason } => {
            verdict.decision = Decision::Denied;
            verdict.reason = Some(reason);
        }
        Outcome::Allowed { rule, pin } => {
            verdict.rule = rule.map(|i| policy.rules[i].name.clone());
            verdict.pin = pin;
        }
        Outcome::Denied {
            rule: Some(i),
            reason,
        } => {
            let rule = &policy.rules[i];
            verdict.decision = match rule.mode {
                Mode::Warn => Decision::Warned,
                Mode::Enforce => Decision::Denied,
            };
            verdict.reason = Some(match &rule.message {
                Some(m) => format!("{reason} ({})", m.replace("{image}", &verdict.site.image)),
                None => reason,
            });
            verdict.rule = Some(rule.name.clone());
        }
        Outcome::Denied { rule: None, reason } => {
            verdict.decision = match policy.unmatched {
                Unmatched::Warn => Decision::Warned,
                Unmatched::Allow | Unmatched::Deny => Decision::Denied,
            };
            // `unmatchedMessage`, `{image}` replaced by the image as written.
            verdict.reason = Some(match &policy.unmatched_message {
                Some(text) => text.replace("{image}", &verdict.site.image),
                None => reason,
            });
        }
    }
    verdict
}

/// What the policy says about one parsed image.
enum Outcome {
    Exempt,
    /// Denied by a requirement of the whole policy (`requireFullyQualified`),
    /// whatever the rules and `unmatched` say.
    Refused {
        reason: String,
    },
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

/// `image` is `written` parsed.
fn evaluate(
    image: &Reference,
    written: &str,
    policy: &Policy,
    pod: bool,
    calls: &Calls,
    matcher: &mut Matcher<'_>,
    runs: &mut Vec<CheckRun>,
) -> Outcome {
    let Matcher { ids, memo } = matcher;
    let exempt = match memo.as_deref().and_then(|m| m.get(image)) {
        Some((exempt, candidates)) => {
            ids.clone_from(candidates);
            *exempt
        }
        None => {
            ids.clear();
            policy.exempt_images.matches_into(image, ids);
            let exempt = !ids.is_empty();
            if !exempt {
                candidates_into(image, policy, ids);
            }
            if let Some(memo) = memo {
                memo.insert(image.clone(), (exempt, ids.clone()));
            }
            exempt
        }
    };
    if exempt {
        return Outcome::Exempt;
    }
    if policy.require_fully_qualified && !reference::is_fully_qualified(written) {
        return Outcome::Refused {
            reason: format!(
                "not fully qualified (requireFullyQualified): write it as \"{image}\"; the node's \
                 runtime resolves a short name itself, CRI-O through its own aliases and search \
                 registries, not necessarily from Docker Hub"
            ),
        };
    }
    for &index in ids.iter() {
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
        return match apply(image, rule, rule.pin_digest.pins(pod), calls, runs) {
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
            reason: match &policy.unmatched_because {
                Some(rule) => format!(
                    "matches no rule; unmatched: {} (the default because rule {rule:?} allows)",
                    policy.unmatched.as_str()
                ),
                None => format!("matches no rule; unmatched: {}", policy.unmatched.as_str()),
            },
        },
    }
}

/// The rules whose patterns or `imageRegex` match `image`, in the order they
/// are tried: highest priority first, on a tie the rule listed first.
fn candidates_into(image: &Reference, policy: &Policy, ids: &mut Vec<usize>) {
    ids.clear();
    policy.patterns.matches_into(image, ids);
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
    // Unstable: the key is unique per id, so the order is the same (and the
    // module smaller than with a stable sort).
    ids.sort_unstable_by_key(|&i| (std::cmp::Reverse(policy.rules[i].priority), i));
    ids.dedup();
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
/// `Ok` carries the digest to pin, if any; `pin` is whether `pinDigest` pins
/// this object.
fn apply(
    image: &Reference,
    rule: &Rule,
    pin: bool,
    calls: &Calls,
    runs: &mut Vec<CheckRun>,
) -> Result<Option<String>, String> {
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
    let Some(verify) = &rule.verify else {
        return match (pin, image.digest()) {
            (true, None) => checks::resolve_digest(&image.to_string(), calls, runs).map(Some),
            _ => Ok(None),
        };
    };
    let normalized = image.to_string();
    let signed = checks::verify(verify, &normalized, calls, runs)?;
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
            let actual = checks::resolve_digest(&normalized, calls, runs)?;
            if actual != signed.digest {
                return Err(mismatch(&actual));
            }
            Ok(pin.then_some(signed.digest))
        }
        (None, _) => Ok(pin.then_some(signed.digest)),
    }
}
