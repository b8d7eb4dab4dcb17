//! Settings: the schema users write, its validation, and its compilation into
//! a [`Policy`] the engine runs.
//!
//! # Reading
//!
//! policy-server makes a fresh instance for every request and hands it the
//! settings with the request, so the settings are read, checked and compiled
//! on every admission. They are read in place (`read.rs`, over the
//! [`crate::json`] reader): strings are borrowed from the JSON text, nothing
//! is allocated for what is only checked, and paths are never built while
//! reading. The schema is plain Rust types declared once in `schema.rs`
//! (`schema!` writes their reader from the declaration), so a new field is
//! one line there plus what it means in [`compile`].
//!
//! # Errors
//!
//! Every mistake is recorded, reading goes on, and the report lists them all
//! (up to 20, then `and N more`), one per line, in document order, each as
//! `PATH: TEXT`:
//!
//! ```text
//! rules[0].tags: unknown field `requiredigest`, expected one of `allow`, `deny`, `requireDigest`
//! rules[2].verify.anyOf[0].cosign.keys[1]: unknown key "relase"
//! settings: unknown field `rule`, expected one of `exemptNamespaces`, ...
//! ```
//!
//! PATH is `settings` for the top level; fields are joined with `.`, list
//! indices are `[i]`, and a map key that is not a plain name (letters,
//! digits, `_`, `-`) is written as a quoted JSON string, `keys["my key"]`,
//! so PATH never contains `: ` and a line splits at its first `: `. An error
//! is recorded with the byte offset of the value it is about (or of the
//! object missing a field), and the path is worked out from the offsets
//! only for the report, so valid settings never pay for paths. A value with
//! errors is left out (a list item, a map entry, a struct with a bad field);
//! at the top level the bad field takes its default, so the rest of the
//! settings is still checked. Unknown fields are errors, never ignored.
//!
//! # Compiling
//!
//! [`Policy::from_json`] checks and compiles everything. A fresh instance,
//! which answers one request and dies, compiles [`Scope::Images`]: only what
//! the request's images may reach, so that the policy decides those images
//! exactly as the whole one would (a property test pins this). A rule whose
//! patterns name other paths or registries (`pattern::may_match`, read
//! from their text) is passed over as far as its name and action, and a
//! pattern that cannot match is not parsed (at 1000 rules a fresh call runs
//! 56% fewer instructions). So a fresh instance checks only what it reads. Every
//! host runs `validate_settings` ([`Policy::from_json`]) before the first
//! `validate` and never sends settings it refused (policy-server does it at
//! startup, `kwctl` and imagegate before every run), as Kubewarden's SDK
//! policies, which do not validate their settings again in `validate`, rely
//! on. Malformed JSON is still refused by every instance.

mod read;
mod schema;

use crate::conditions::Condition;
use crate::glob::Glob;
use crate::json::{Kind, Reader};
use crate::pattern::{self, FastHash, Parts, PatternSet};
use crate::pem;
use crate::reference::Reference;
use crate::wire::Platforms;
use read::{Errors, FromJson, Got, Map, Text};
pub(crate) use schema::{Action, Mode, OnDigestMismatch, Unmatched};
use schema::{CheckSettings, RuleSettings, Settings, VerifySettings};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The default break-glass annotation (Kubernetes ImagePolicyWebhook's name).
pub const DEFAULT_BREAK_GLASS_ANNOTATION: &str = "image-policy.k8s.io/break-glass";

// ---------------------------------------------------------------------------
// Compiled policy (what the engine runs)
// ---------------------------------------------------------------------------

/// `pinDigest`: which objects get the verified (or resolved) digest written
/// into their images (`true`, `false` or `"pods"`, read in `schema.rs`).
///
/// `pods` is for GitOps: Argo CD and Flux compare the Deployments (and other
/// templates) they manage with Git, so a rewritten template is drift they
/// undo and re-apply forever. With `pods`, templates are verified but never
/// rewritten, and each Pod a controller creates from them is pinned at its
/// own admission. The trade-off: the template keeps its tag, so every new
/// Pod is pinned to whatever verified digest the tag has when that Pod is
/// created (a moved tag rolls out pod by pod, each pod still verified).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum PinDigest {
    /// `false` (the default): never pin.
    #[default]
    Off,
    /// `true`: pin every object, templates included.
    All,
    /// `pods`: pin Pod objects only.
    Pods,
}

impl PinDigest {
    /// Whether images of this object are pinned (`pod`: the object is a Pod).
    pub(crate) fn pins(self, pod: bool) -> bool {
        match self {
            PinDigest::Off => false,
            PinDigest::All => true,
            PinDigest::Pods => pod,
        }
    }
}

/// Validated, compiled settings: what [`crate::decide::validate`] runs.
///
/// Compiling is done once per settings text (the module keeps the last
/// policy), but a fresh policy-server instance compiles on every request, so
/// it is kept cheap: no regex unless `imageRegex` is used, patterns indexed in
/// a [`PatternSet`].
#[derive(Debug)]
pub struct Policy {
    pub(crate) exempt_namespaces: Vec<Glob>,
    pub(crate) exempt_images: PatternSet,
    pub(crate) unmatched: Unmatched,
    /// When `unmatched` is not written and defaults to deny: the first allow
    /// rule, which made it the default (named in the reason).
    pub(crate) unmatched_because: Option<Arc<str>>,
    pub(crate) break_glass: Option<BreakGlass>,
    pub(crate) rules: Vec<Rule>,
    /// Every rule's patterns; a match yields the rule's index in `rules`.
    pub(crate) patterns: PatternSet,
    /// Every rule's `imageRegex`, anchored, with the rule's index.
    pub(crate) regexes: Vec<(regex_lite::Regex, usize)>,
    /// `unmatchedMessage`.
    pub(crate) unmatched_message: Option<String>,
    /// `sources`: the settings are completed at request time.
    pub(crate) sources: Option<SourcedSettings>,
    /// `requireFullyQualified`: short names are denied (CRI-O resolves them
    /// through its own aliases and search registries).
    pub(crate) require_fully_qualified: bool,
}

/// Settings to complete with other tools' objects for each request.
#[derive(Debug)]
pub(crate) struct SourcedSettings {
    pub(crate) sources: crate::sources::context::Sources,
    /// The settings as written, without `sources`.
    pub(crate) base: serde_json::Map<String, serde_json::Value>,
}

/// A label an image must carry for a rule to match it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LabelCondition {
    pub(crate) key: String,
    /// `None`: any value.
    pub(crate) value: Option<String>,
}

#[derive(Debug)]
pub(crate) struct BreakGlass {
    pub(crate) annotation: String,
    pub(crate) groups: Vec<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Rule {
    /// Shared with every verdict the rule decides (no copy per image).
    pub(crate) name: Arc<str>,
    pub(crate) priority: i64,
    pub(crate) action: Action,
    pub(crate) mode: Mode,
    pub(crate) message: Option<String>,
    pub(crate) tags_allow: Vec<Glob>,
    pub(crate) tags_deny: Vec<Glob>,
    pub(crate) require_digest: bool,
    pub(crate) verify: Option<Verify>,
    pub(crate) pin_digest: PinDigest,
    pub(crate) on_digest_mismatch: OnDigestMismatch,
    /// The rule matches only images carrying all these labels.
    pub(crate) labels: Vec<LabelCondition>,
    pub(crate) skip_on_resolution_failure: bool,
}

/// Signature checks of a rule.
#[derive(Debug)]
pub(crate) enum Verify {
    /// The first check that passes admits the image (checks run in order).
    AnyOf(Vec<Check>),
    /// Every check must pass, and all must agree on the digest.
    AllOf(Vec<Check>),
}

/// One signature check; each becomes host-capability calls in `decide`.
#[derive(Debug, Clone)]
pub(crate) enum Check {
    /// cosign, keyless, githubActions, certificate: a signature in any
    /// format the host reads (cosign bundles, `.sig`).
    Signature {
        signers: Signers,
        annotations: Option<BTreeMap<String, String>>,
        platforms: Platforms,
    },
    /// An in-toto attestation of `predicate_type` by one of `signers`,
    /// satisfying `conditions`.
    Attestation {
        predicate_type: String,
        signers: Signers,
        platforms: Platforms,
        conditions: Option<Condition>,
    },
    Notary {
        server: String,
        signers: Vec<crate::wire::NotarySigner>,
        ca_cert: Option<String>,
        root_keys: Option<Vec<String>>,
    },
    /// A Notation signature (JWS or COSE) trusted by the trust policy
    /// statement for the image's repository.
    Notation(crate::notation::NotationCheck),
}

/// Who may sign, for signature and attestation checks.
#[derive(Debug, Clone)]
pub(crate) enum Signers {
    /// Any one of the keys suffices.
    Keys(Vec<NamedKey>),
    Keyless {
        issuer: String,
        subject: String,
    },
    KeylessPrefix {
        issuer: String,
        prefix: String,
    },
    GithubActions {
        owner: String,
        repo: Option<String>,
    },
    Certificate {
        certificate: String,
        chain: Vec<String>,
        require_rekor_bundle: bool,
    },
}

/// A cosign public key with the name used in messages.
#[derive(Debug, Clone)]
pub(crate) struct NamedKey {
    pub(crate) name: String,
    pub(crate) pem: String,
}

/// Which patterns a compiled policy indexes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'i> {
    /// All of them: the policy decides any image.
    All,
    /// Those matching one of these images: the policy decides these images
    /// (and only these) exactly as the whole policy would.
    Images(&'i [&'i Reference]),
}

impl Scope<'_> {
    fn keeps(self, parts: &Parts<'_>, text: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Images(images) => images.iter().any(|i| parts.is_match(text, i)),
        }
    }
}

impl Policy {
    /// Parses, validates and compiles settings JSON (`{}` for none).
    ///
    /// Every mistake is reported, one per line, with the path of the bad
    /// field (see the [module docs](self)); unknown fields are errors, never
    /// ignored. Keys and certificates must be well-formed PEM, patterns must
    /// match what they say.
    ///
    /// ```
    /// use imagegate_policy::settings::Policy;
    ///
    /// assert!(Policy::from_json("{}").is_ok());
    /// let policy = Policy::from_json(
    ///     r#"{"rules":[{"name":"corp","images":["registry.corp.example/**"],"tags":{"deny":["latest"]}}]}"#,
    /// );
    /// assert!(policy.is_ok());
    ///
    /// let e = Policy::from_json(
    ///     r#"{"rules":[{"name":"a","images":["x/y"]},{"name":"b","images":["ghcr.*/**"]}]}"#,
    /// )
    /// .unwrap_err();
    /// assert!(e.starts_with(r#"rules[1].images[0]: invalid pattern "ghcr.*/**": host wildcard"#), "{e}");
    /// assert_eq!(
    ///     Policy::from_json(r#"{"rules":[{"name":"a","images":["x/y"],"tags":{"requiredigest":true}}],"unmatched":"no"}"#).unwrap_err(),
    ///     "rules[0].tags: unknown field `requiredigest`, expected one of `allow`, `deny`, `requireDigest`\n\
    ///      unmatched: unknown variant `no`, expected one of `allow`, `warn`, `deny`"
    /// );
    /// ```
    pub fn from_json(json: &str) -> Result<Policy, String> {
        Policy::compile(json, Scope::All)
    }

    /// [`Policy::from_json`], indexing only the patterns `scope` keeps.
    pub(crate) fn compile(json: &str, scope: Scope<'_>) -> Result<Policy, String> {
        let mut errors = Errors::default();
        let mut r = Reader::new(json);
        // A struct reads from a JSON object only; say so for anything else.
        let settings = match r.peek() {
            Ok(Kind::Object) => match Settings::read(&mut r, &mut errors) {
                Ok(Got::Value(s) | Got::Partial(s)) => {
                    if let Err(e) = r.end() {
                        errors.at(e.at, format!("invalid JSON: {}", e.what));
                    }
                    Some(s)
                }
                Ok(Got::Invalid) | Err(read::Syntax) => None,
            },
            _ => {
                errors.at(r.pos(), "settings must be a JSON object");
                None
            }
        };
        let policy = settings.map(|s| compile(&s, json, &mut errors, scope));
        match policy {
            Some(policy) if errors.is_empty() => Ok(policy),
            _ => Err(errors.report(json)),
        }
    }
}

/// Whether the pattern `text` is parsed and checked: without candidates
/// (`Scope::All`) always, else only if it may match one of their images
/// (see the module docs for why the others go unchecked).
fn reads<'t>(
    candidates: &Option<pattern::Candidates<'_>>,
    text: &'t str,
    hosts: &mut pattern::Hosts<'t>,
) -> bool {
    candidates
        .as_ref()
        .is_none_or(|c| pattern::may_match(text, hosts, c))
}

/// Compiles checked settings; every mistake goes to `errors` (the policy
/// is then not used).
fn compile(s: &Settings<'_>, json: &str, errors: &mut Errors, scope: Scope<'_>) -> Policy {
    let exempt_namespaces = s
        .exempt_namespaces
        .iter()
        .filter_map(|ns| namespace_glob(ns).map_err(|e| errors.at(ns.at, e)).ok())
        .collect();

    let candidates = match scope {
        Scope::All => None,
        Scope::Images(images) => Some(pattern::Candidates::new(images)),
    };
    let mut hosts = pattern::Hosts::default();
    let mut exempt_images = PatternSet::default();
    for (i, text) in s.exempt_images.iter().enumerate() {
        if !reads(&candidates, text, &mut hosts) {
            continue;
        }
        if let Some(parts) = parse_pattern(text, &mut hosts, errors) {
            if scope.keeps(&parts, text) {
                exempt_images.insert(&parts, text, i);
            }
        }
    }

    let break_glass = s.break_glass.as_ref().map(|b| {
        if !is_annotation_key(&b.annotation) {
            errors.at(
                b.annotation.at,
                format!("{:?} is not a valid annotation key", &*b.annotation),
            );
        }
        BreakGlass {
            annotation: b.annotation.to_string(),
            groups: b.groups.iter().map(|g| g.to_string()).collect(),
        }
    });

    // Key name -> PEM; `None` for an entry with errors (already reported).
    let mut keys: HashMap<&str, Option<&str>, FastHash> = HashMap::default();
    for (name, entry) in &s.keys.entries {
        let pem = entry.as_ref().map(|key| {
            if let Err(e) = pem::expect_one(&key.cosign, &["PUBLIC KEY"]) {
                errors.at(key.cosign.at, format!("not a PEM public key: {e}"));
            }
            &*key.cosign
        });
        keys.insert(name, pem);
    }

    // Each rule read whole (`true`), or only its name and action: a rule
    // the images cannot reach, under `Scope::Images`, or one with errors.
    let read: Vec<(RuleSettings<'_>, bool)> = (s.rules.0.iter())
        .map(|rule| {
            let outline = match (&candidates, &rule.outline) {
                (Some(candidates), Some(outline))
                    if !(outline.images())
                        .any(|t| pattern::may_match(t, &mut hosts, candidates)) =>
                {
                    outline
                }
                _ => match rule.read(errors) {
                    Ok(Got::Value(r)) => return (r, true),
                    _ => return (RuleSettings::default(), false),
                },
            };
            let r = RuleSettings {
                name: outline.name.clone(),
                action: outline.action,
                ..RuleSettings::default()
            };
            (r, false)
        })
        .collect();
    let mut rules = Vec::with_capacity(read.len());
    let mut patterns = PatternSet::default();
    let mut regexes = Vec::new();
    let mut names: HashMap<&str, usize, FastHash> = HashMap::default();
    for (i, (r, whole)) in read.iter().enumerate() {
        if !whole {
            // Read only as far as its action: none of its patterns is
            // indexed, so it decides nothing and its name is in no message
            // (`Arc<str>::default()` allocates nothing).
            rules.push(Rule {
                action: r.action,
                ..Rule::default()
            });
            continue;
        }
        if r.name.trim().is_empty() {
            errors.at(r.name.at, "must not be empty");
        } else if let Some(first) = names.insert(&r.name, i) {
            errors.at(
                r.name.at,
                format!("duplicate rule name {:?} (also rules[{first}])", &*r.name),
            );
        }
        if r.images.is_empty() && r.image_regex.is_empty() {
            errors.field(
                r.at,
                "images",
                "at least one pattern is required (in images or imageRegex)",
            );
        }
        for re in &r.image_regex {
            match regex_lite::Regex::new(&format!("^(?:{})$", &**re)) {
                Ok(anchored) => regexes.push((anchored, i)),
                Err(e) => errors.at(re.at, format!("invalid regular expression: {e}")),
            }
        }
        for text in &r.images {
            if !reads(&candidates, text, &mut hosts) {
                continue;
            }
            if let Some(parts) = parse_pattern(text, &mut hosts, errors) {
                if scope.keeps(&parts, text) {
                    patterns.insert(&parts, text, i);
                }
            }
        }
        rules.push(compile_rule(r, &keys, errors));
    }

    // Any allow rule (in either mode) means the user listed what is allowed:
    // everything else is denied unless they say otherwise.
    let first_allow = read.iter().find(|(r, _)| r.action == Action::Allow);
    let (unmatched, unmatched_because) = match (s.unmatched, first_allow) {
        (Some(written), _) => (written, None),
        (None, Some((rule, _))) => (Unmatched::Deny, Some(Arc::from(&*rule.name))),
        (None, None) => (Unmatched::Allow, None),
    };

    // With `sources`, the settings as written are completed per request
    // (sources::context); keep them, without `sources`, for that.
    let sources = match &s.sources {
        Some(src) if src.tmax || src.tanzu => {
            match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json) {
                Ok(mut base) => {
                    base.remove("sources");
                    Some(SourcedSettings {
                        sources: crate::sources::context::Sources {
                            tmax: src.tmax,
                            tanzu: src.tanzu,
                        },
                        base,
                    })
                }
                Err(e) => {
                    errors.at(src.at, format!("cannot keep the settings for sources: {e}"));
                    None
                }
            }
        }
        _ => None,
    };

    Policy {
        exempt_namespaces,
        exempt_images,
        unmatched,
        unmatched_because,
        break_glass,
        rules,
        patterns,
        regexes,
        unmatched_message: s.unmatched_message.as_ref().map(|m| m.to_string()),
        sources,
        require_fully_qualified: s.require_fully_qualified,
    }
}

/// Key name -> PEM text (`None`: the entry had errors).
type Keys<'k> = HashMap<&'k str, Option<&'k str>, FastHash>;

fn compile_rule(r: &RuleSettings<'_>, keys: &Keys<'_>, errors: &mut Errors) -> Rule {
    let tags = r.tags.as_ref();
    if r.action == Action::Deny {
        let extra = [
            (tags.is_some(), "tags"),
            (r.verify.is_some(), "verify"),
            (r.pin_digest != PinDigest::Off, "pinDigest"),
        ];
        if let Some((_, field)) = extra.iter().find(|(set, _)| *set) {
            errors.field(
                r.at,
                field,
                format!("only rules with action allow can have {field}"),
            );
        }
    }
    let mut tag_globs = |list: &[Text<'_>]| {
        list.iter()
            .filter_map(|t| match pattern::check_tag_glob(t) {
                Ok(()) => Some(Glob::new(t)),
                Err(e) => {
                    errors.at(t.at, e);
                    None
                }
            })
            .collect::<Vec<_>>()
    };
    let tags_allow = tag_globs(tags.map_or(&[][..], |t| &t.allow));
    let tags_deny = tag_globs(tags.map_or(&[][..], |t| &t.deny));
    if r.skip_on_resolution_failure && r.image_labels.is_empty() {
        errors.field(
            r.at,
            "skipOnResolutionFailure",
            "only rules with imageLabels resolve images",
        );
    }
    let mut labels = Vec::with_capacity(r.image_labels.len());
    for l in &r.image_labels {
        if l.key.is_empty() {
            errors.at(l.key.at, "must not be empty");
        }
        labels.push(LabelCondition {
            key: l.key.to_string(),
            value: l.value.as_ref().map(|v| v.to_string()),
        });
    }
    Rule {
        name: Arc::from(&*r.name),
        priority: r.priority,
        action: r.action,
        mode: r.mode,
        message: r.message.as_ref().map(|m| m.to_string()),
        tags_allow,
        tags_deny,
        require_digest: tags.is_some_and(|t| t.require_digest),
        verify: r
            .verify
            .as_ref()
            .and_then(|v| compile_verify(v, keys, errors)),
        pin_digest: r.pin_digest,
        on_digest_mismatch: r.on_digest_mismatch,
        labels,
        skip_on_resolution_failure: r.skip_on_resolution_failure,
    }
}

fn compile_verify(v: &VerifySettings<'_>, keys: &Keys<'_>, errors: &mut Errors) -> Option<Verify> {
    let (list, field, make): (_, _, fn(Vec<Check>) -> Verify) = match (&v.any_of, &v.all_of) {
        (Some(l), None) => (l, "anyOf", Verify::AnyOf),
        (None, Some(l)) => (l, "allOf", Verify::AllOf),
        _ => {
            errors.at(v.at, "exactly one of anyOf or allOf is required");
            return None;
        }
    };
    if list.is_empty() {
        errors.field(v.at, field, "at least one check is required");
    }
    let checks = list
        .iter()
        .filter_map(|c| compile_check(c, keys, errors))
        .collect();
    Some(make(checks))
}

/// A map of strings, owned. Inserted one by one, like [`string_map`]:
/// collecting sorts, and the sort costs the module kilobytes.
fn owned_map(map: &Option<Map<'_, Text<'_>>>) -> Option<BTreeMap<String, String>> {
    map.as_ref().map(|m| {
        let mut out = BTreeMap::new();
        for (k, v) in m.iter() {
            out.insert(k.to_string(), v.to_string());
        }
        out
    })
}

/// Checks a PEM text, reporting a mistake at the text.
fn check_pem(text: &Text<'_>, labels: &[&str], one: bool, errors: &mut Errors) {
    let checked = match one {
        true => pem::expect_one(text, labels).map(drop),
        false => pem::expect_all(text, labels).map(drop),
    };
    if let Err(e) = checked {
        errors.at(text.at, e);
    }
}

fn compile_check(c: &CheckSettings<'_>, keys: &Keys<'_>, errors: &mut Errors) -> Option<Check> {
    let signature =
        |signers, annotations: &Option<Map<'_, Text<'_>>>, platforms| Check::Signature {
            signers,
            annotations: owned_map(annotations),
            platforms,
        };
    // The signers (and attestations, Notation) are checked by the readers
    // they share with the hand-read checks: their errors are written from
    // the check's object down (`.keys[0]: ...`).
    let (at, checked) = match c {
        CheckSettings::Cosign(c) => (
            c.at,
            key_signers(&c.keys, "", keys).map(|s| signature(s, &c.annotations, c.platforms)),
        ),
        CheckSettings::Notary(n) => return Some(compile_notary(n, errors)),
        CheckSettings::Keyless(k) => (
            k.at,
            keyless_signers(
                &k.issuer,
                &k.subject.as_ref().map(|s| s.to_string()),
                &k.subject_prefix.as_ref().map(|s| s.to_string()),
                "",
            )
            .map(|s| signature(s, &k.annotations, k.platforms)),
        ),
        CheckSettings::GithubActions(g) => (
            g.at,
            github_signers(&g.owner, &g.repo.as_ref().map(|r| r.to_string()), "")
                .map(|s| signature(s, &g.annotations, g.platforms)),
        ),
        CheckSettings::Certificate(c) => {
            let chain: Vec<String> = c.chain.iter().map(|c| c.to_string()).collect();
            (
                c.at,
                certificate_signers(&c.certificate, &chain, c.require_rekor_bundle, "")
                    .map(|s| signature(s, &c.annotations, c.platforms)),
            )
        }
        CheckSettings::Attestation(raw) => (raw.at, attestation_check(&raw.value, "", keys)),
        CheckSettings::Notation(raw) => (
            raw.at,
            crate::notation::NotationCheck::read(&raw.value, "").map(Check::Notation),
        ),
    };
    checked.map_err(|e| errors.below(at, e)).ok()
}

fn compile_notary(n: &schema::NotarySettings<'_>, errors: &mut Errors) -> Check {
    if !is_url(&n.server, &["https://"]) {
        errors.at(
            n.server.at,
            format!("{:?} must be an https:// URL", &*n.server),
        );
    }
    let mut signers = Vec::with_capacity(n.signers.len());
    for s in &n.signers {
        let role = s.role.strip_prefix("targets/").unwrap_or(&s.role);
        if role.is_empty() || role.contains(char::is_whitespace) {
            errors.at(
                s.role.at,
                format!("{:?} is not a delegation role", &*s.role),
            );
        }
        if let Some(key) = &s.public_key {
            check_pem(key, &["PUBLIC KEY", "CERTIFICATE"], true, errors);
        }
        signers.push(crate::wire::NotarySigner {
            role: format!("targets/{role}"),
            public_key: s.public_key.as_ref().map(|k| k.to_string()),
        });
    }
    if let Some(ca) = &n.ca_cert {
        check_pem(ca, &["CERTIFICATE"], false, errors);
    }
    for key in n.root_keys.iter().flatten() {
        check_pem(key, &["PUBLIC KEY", "CERTIFICATE"], true, errors);
    }
    Check::Notary {
        server: n.server.trim_end_matches('/').to_string(),
        signers,
        ca_cert: n.ca_cert.as_ref().map(|c| c.to_string()),
        root_keys: n
            .root_keys
            .as_ref()
            .map(|keys| keys.iter().map(|k| k.to_string()).collect()),
    }
}

/// An `attestation` check, read from its JSON by hand: derived readers for
/// its nested signer objects would cost the module more than this does.
fn attestation_check(
    value: &serde_json::Value,
    at: &str,
    keys: &Keys<'_>,
) -> Result<Check, String> {
    let map = fields(
        value,
        at,
        &[
            "predicateType",
            "keys",
            "keyless",
            "githubActions",
            "certificate",
            "platforms",
            "conditions",
        ],
    )?;
    let predicate_type = string(map, "predicateType", at)?
        .filter(|p| !p.is_empty())
        .ok_or_else(|| format!("{at}.predicateType: a non-empty string is required"))?;
    let platforms = platforms(map, at)?;
    let given: Vec<&str> = ["keys", "keyless", "githubActions", "certificate"]
        .into_iter()
        .filter(|k| map.contains_key(*k))
        .collect();
    let signers = match given.as_slice() {
        ["keys"] => {
            let names = map["keys"]
                .as_array()
                .and_then(|list| {
                    list.iter()
                        .map(|k| k.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| format!("{at}.keys: a list of key names is required"))?;
            key_signers(&names, at, keys)?
        }
        ["keyless"] => {
            let at = format!("{at}.keyless");
            let k = fields(
                &map["keyless"],
                &at,
                &["issuer", "subject", "subjectPrefix"],
            )?;
            keyless_signers(
                &string(k, "issuer", &at)?.unwrap_or_default(),
                &string(k, "subject", &at)?,
                &string(k, "subjectPrefix", &at)?,
                &at,
            )?
        }
        ["githubActions"] => {
            let at = format!("{at}.githubActions");
            let g = fields(&map["githubActions"], &at, &["owner", "repo"])?;
            github_signers(
                &string(g, "owner", &at)?.unwrap_or_default(),
                &string(g, "repo", &at)?,
                &at,
            )?
        }
        ["certificate"] => {
            let at = format!("{at}.certificate");
            let c = fields(
                &map["certificate"],
                &at,
                &["certificate", "chain", "requireRekorBundle"],
            )?;
            let chain = match c.get("chain") {
                None => Vec::new(),
                Some(list) => list
                    .as_array()
                    .and_then(|l| {
                        l.iter()
                            .map(|c| c.as_str().map(str::to_string))
                            .collect::<Option<Vec<_>>>()
                    })
                    .ok_or_else(|| format!("{at}.chain: a list of PEM certificates is required"))?,
            };
            let require = match c.get("requireRekorBundle") {
                None => false,
                Some(b) => b
                    .as_bool()
                    .ok_or_else(|| format!("{at}.requireRekorBundle: true or false"))?,
            };
            certificate_signers(
                &string(c, "certificate", &at)?.unwrap_or_default(),
                &chain,
                require,
                &at,
            )?
        }
        _ => {
            return Err(format!(
                "{at}: exactly one of keys, keyless, githubActions or certificate is required"
            ))
        }
    };
    Ok(Check::Attestation {
        predicate_type,
        signers,
        platforms,
        conditions: map
            .get("conditions")
            .map(|c| crate::conditions::compile(c, &format!("{at}.conditions")))
            .transpose()?,
    })
}

/// `platforms` of a check: `index` (default) or `all`.
pub(crate) fn platforms(
    map: &serde_json::Map<String, serde_json::Value>,
    at: &str,
) -> Result<Platforms, String> {
    match string(map, "platforms", at)?.as_deref() {
        None | Some("index") => Ok(Platforms::Index),
        Some("all") => Ok(Platforms::All),
        Some(other) => Err(format!(
            "{at}.platforms: unknown variant `{other}`, expected `index` or `all`"
        )),
    }
}

/// An optional list of strings.
pub(crate) fn strings(
    map: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    at: &str,
) -> Result<Option<Vec<String>>, String> {
    map.get(name)
        .map(|list| {
            list.as_array()
                .and_then(|l| {
                    l.iter()
                        .map(|s| s.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| format!("{at}.{name}: a list of strings is required"))
        })
        .transpose()
}

/// An optional object of strings.
pub(crate) fn string_map(
    map: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    at: &str,
) -> Result<Option<BTreeMap<String, String>>, String> {
    let Some(value) = map.get(name) else {
        return Ok(None);
    };
    let bad = || format!("{at}.{name}: an object of strings is required");
    // Inserted one by one: collecting into a BTreeMap sorts, and the sort
    // costs the module kilobytes.
    let mut out = BTreeMap::new();
    for (k, v) in value.as_object().ok_or_else(bad)? {
        out.insert(k.clone(), v.as_str().ok_or_else(bad)?.to_string());
    }
    Ok(Some(out))
}

/// `value` as an object with only `known` fields (serde's wording).
pub(crate) fn fields<'a>(
    value: &'a serde_json::Value,
    at: &str,
    known: &[&str],
) -> Result<&'a serde_json::Map<String, serde_json::Value>, String> {
    let map = value
        .as_object()
        .ok_or_else(|| format!("{at}: an object is required"))?;
    if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
        let expected: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
        return Err(format!(
            "{at}: unknown field `{unknown}`, expected one of {}",
            expected.join(", ")
        ));
    }
    Ok(map)
}

/// An optional string field.
pub(crate) fn string(
    map: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    at: &str,
) -> Result<Option<String>, String> {
    match map.get(name) {
        None => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{at}.{name}: a string is required")),
    }
}

/// `keys` (at `{at}.keys`): names from the settings' `keys`, or inline PEM.
fn key_signers<N: std::ops::Deref<Target = str>>(
    names: &[N],
    at: &str,
    keys: &Keys<'_>,
) -> Result<Signers, String> {
    if names.is_empty() {
        return Err(format!("{at}.keys: at least one key is required"));
    }
    let mut found = Vec::with_capacity(names.len());
    for (k, name) in names.iter().enumerate() {
        let key = resolve_key(name, keys).map_err(|e| format!("{at}.keys[{k}]: {e}"))?;
        found.extend(key);
    }
    Ok(Signers::Keys(found))
}

fn keyless_signers(
    issuer: &str,
    subject: &Option<String>,
    prefix: &Option<String>,
    at: &str,
) -> Result<Signers, String> {
    if issuer.is_empty() {
        return Err(format!("{at}.issuer: must not be empty"));
    }
    match (subject, prefix) {
        (Some(subject), None) if !subject.is_empty() => Ok(Signers::Keyless {
            issuer: issuer.to_string(),
            subject: subject.clone(),
        }),
        (None, Some(prefix)) => {
            // policy-server crashes its callback on a prefix that is not a URL.
            if !is_url(prefix, &["https://", "http://"]) {
                return Err(format!(
                    "{at}.subjectPrefix: {prefix:?} must be an http(s) URL"
                ));
            }
            Ok(Signers::KeylessPrefix {
                issuer: issuer.to_string(),
                prefix: prefix.clone(),
            })
        }
        _ => Err(format!(
            "{at}: exactly one of subject or subjectPrefix is required"
        )),
    }
}

fn github_signers(owner: &str, repo: &Option<String>, at: &str) -> Result<Signers, String> {
    if owner.is_empty() {
        return Err(format!("{at}.owner: must not be empty"));
    }
    Ok(Signers::GithubActions {
        owner: owner.to_string(),
        repo: repo.clone(),
    })
}

fn certificate_signers(
    certificate: &str,
    chain: &[String],
    require_rekor_bundle: bool,
    at: &str,
) -> Result<Signers, String> {
    pem::expect_one(certificate, &["CERTIFICATE"]).map_err(|e| format!("{at}.certificate: {e}"))?;
    for (k, c) in chain.iter().enumerate() {
        pem::expect_one(c, &["CERTIFICATE"]).map_err(|e| format!("{at}.chain[{k}]: {e}"))?;
    }
    Ok(Signers::Certificate {
        certificate: certificate.to_string(),
        chain: chain.to_vec(),
        require_rekor_bundle,
    })
}

/// A key reference is the name of an entry in `keys`, or an inline PEM key
/// (`Ok(None)`: the entry has errors, reported there).
fn resolve_key(name: &str, keys: &Keys<'_>) -> Result<Option<NamedKey>, String> {
    if name.trim_start().starts_with("-----BEGIN") {
        pem::expect_one(name, &["PUBLIC KEY"]).map_err(|e| format!("not a PEM public key: {e}"))?;
        return Ok(Some(NamedKey {
            name: "inline".to_string(),
            pem: name.to_string(),
        }));
    }
    match keys.get(name) {
        Some(pem) => Ok(pem.map(|pem| NamedKey {
            name: name.to_string(),
            pem: pem.to_string(),
        })),
        None => Err(format!("unknown key {name:?}")),
    }
}

/// A pattern of the settings, checked (a mistake is reported at its text).
fn parse_pattern<'t>(
    text: &'t Text<'_>,
    hosts: &mut pattern::Hosts<'t>,
    errors: &mut Errors,
) -> Option<Parts<'t>> {
    Parts::parse_with(text, hosts)
        .map_err(|e| errors.at(text.at, format!("invalid pattern {:?}: {e}", &**text)))
        .ok()
}

/// Namespace names are DNS labels; `*` is the only wildcard.
fn namespace_glob(text: &str) -> Result<Glob, String> {
    let ok = !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'*');
    if !ok {
        return Err(format!(
            "{text:?} is not a namespace name or glob (lower-case letters, digits, '-', '*')"
        ));
    }
    Ok(Glob::new(text))
}

fn is_url(text: &str, schemes: &[&str]) -> bool {
    schemes.iter().any(|s| {
        text.strip_prefix(s).is_some_and(|rest| {
            let host = rest.split('/').next().unwrap_or("");
            !host.is_empty() && !rest.contains(char::is_whitespace)
        })
    })
}

/// `[prefix/]name` as Kubernetes annotation keys are written.
fn is_annotation_key(key: &str) -> bool {
    let name = key.rsplit_once('/').map_or(key, |(prefix, name)| {
        if prefix.is_empty() || prefix.len() > 253 {
            ""
        } else {
            name
        }
    });
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use read::REPORTED_ERRORS as REPORTED;

    const KEY: &str = "-----BEGIN PUBLIC KEY-----\\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQTW9sqsjDyllhoVJlqBrZv/VtgKl\\n9fpjLZZGCTcsG+r4h2SI/d0w/nIO0LXHbMr5eNLOw2Nd3LP7zP8ijpZqqg==\\n-----END PUBLIC KEY-----\\n";

    fn err(json: &str) -> String {
        Policy::from_json(json).expect_err("settings must be invalid")
    }

    #[test]
    fn empty_settings_are_valid_and_admit_unmatched() {
        let p = Policy::from_json("{}").unwrap();
        assert_eq!(p.unmatched, Unmatched::Allow);
        assert!(p.rules.is_empty());
    }

    #[test]
    fn unmatched_defaults_to_deny_with_an_allow_rule_even_in_warn_mode() {
        let p =
            Policy::from_json(r#"{"rules":[{"name":"a","images":["ghcr.io/**"],"mode":"warn"}]}"#)
                .unwrap();
        assert_eq!(p.unmatched, Unmatched::Deny);
        let p = Policy::from_json(
            r#"{"rules":[{"name":"a","images":["ghcr.io/**"],"action":"deny"}]}"#,
        )
        .unwrap();
        assert_eq!(p.unmatched, Unmatched::Allow);
    }

    #[test]
    fn unknown_fields_are_errors_with_their_path() {
        let e = err(r#"{"rule":[]}"#);
        assert!(e.starts_with("settings: unknown field `rule`"), "{e}");
        let e = err(
            r#"{"rules":[{"name":"a","images":["x/y"],"tags":{"deny":["latest"],"requiredigest":true}}]}"#,
        );
        assert!(
            e.starts_with("rules[0].tags: unknown field `requiredigest`"),
            "{e}"
        );
    }

    #[test]
    fn wrong_types_name_the_field() {
        let e = err(r#"{"rules":[{"name":"a","images":["x/y"],"priority":"high"}]}"#);
        assert!(e.starts_with("rules[0].priority: invalid type"), "{e}");
        let e = err(r#"{"unmatched":"maybe"}"#);
        assert!(e.starts_with("unmatched: unknown variant `maybe`"), "{e}");
        let e = err(r#"{"rules":[{"images":["x/y"]}]}"#);
        assert!(e.contains("missing field `name`"), "{e}");
    }

    #[test]
    fn require_fully_qualified_is_a_boolean_off_by_default() {
        assert!(!Policy::from_json("{}").unwrap().require_fully_qualified);
        let p = Policy::from_json(r#"{"requireFullyQualified":true}"#).unwrap();
        assert!(p.require_fully_qualified);
        let e = err(r#"{"requireFullyQualified":"yes"}"#);
        assert!(e.starts_with("requireFullyQualified: invalid type"), "{e}");
    }

    #[test]
    fn unknown_key_reference_has_the_full_path() {
        let json = format!(
            r#"{{"keys":{{"release":{{"cosign":"{KEY}"}}}},"rules":[{{"name":"a","images":["x/y"]}},{{"name":"b","images":["x/z"]}},{{"name":"c","images":["corp.io/**"],"verify":{{"anyOf":[{{"cosign":{{"keys":["release","relase"]}}}}]}}}}]}}"#
        );
        assert_eq!(
            err(&json),
            r#"rules[2].verify.anyOf[0].cosign.keys[1]: unknown key "relase""#
        );
    }

    #[test]
    fn semantic_errors() {
        assert!(err(r#"{"rules":[{"name":"a","images":[]}]}"#)
            .starts_with("rules[0].images: at least one"));
        assert!(err(r#"{"rules":[{"name":"","images":["a"]}]}"#)
            .starts_with("rules[0].name: must not be empty"));
        assert!(
            err(r#"{"rules":[{"name":"a","images":["a"]},{"name":"a","images":["b"]}]}"#)
                .starts_with(r#"rules[1].name: duplicate rule name "a" (also rules[0])"#)
        );
        assert!(err(r#"{"exemptNamespaces":["Kube-System"]}"#).starts_with("exemptNamespaces[0]:"));
        assert!(
            err(r#"{"rules":[{"name":"a","images":["a"],"tags":{"deny":["lat est"]}}]}"#)
                .starts_with("rules[0].tags.deny[0]:")
        );
        // Tags start with a letter, digit or '_': such a glob would match no tag.
        for glob in [".rc*", "-x", ""] {
            let json = format!(
                r#"{{"rules":[{{"name":"a","images":["a"],"tags":{{"allow":["{glob}"]}}}}]}}"#
            );
            assert!(err(&json).starts_with("rules[0].tags.allow[0]:"), "{glob}");
        }
        assert!(
            err(r#"{"rules":[{"name":"a","images":["a"],"action":"deny","pinDigest":true}]}"#)
                .starts_with("rules[0].pinDigest: only rules with action allow")
        );
        assert!(
            err(r#"{"rules":[{"name":"a","images":["a"],"verify":{}}]}"#)
                .starts_with("rules[0].verify: exactly one of anyOf or allOf")
        );
        assert!(
            err(r#"{"rules":[{"name":"a","images":["a"],"verify":{"anyOf":[]}}]}"#)
                .starts_with("rules[0].verify.anyOf: at least one check")
        );
        assert!(err(r#"{"keys":{"k":{"cosign":"nope"}}}"#)
            .starts_with("keys.k.cosign: not a PEM public key"));
        assert!(err(r#"{"breakGlass":{"annotation":"bad key!"}}"#)
            .starts_with("breakGlass.annotation:"));
    }

    #[test]
    fn check_errors_name_their_field() {
        let rule = |check: &str| {
            format!(r#"{{"rules":[{{"name":"a","images":["a"],"verify":{{"allOf":[{check}]}}}}]}}"#)
        };
        assert!(err(&rule(r#"{"notary":{"server":"http://n:4443"}}"#))
            .starts_with("rules[0].verify.allOf[0].notary.server:"));
        assert!(
            err(&rule(r#"{"keyless":{"issuer":"https://i"}}"#)).starts_with(
                "rules[0].verify.allOf[0].keyless: exactly one of subject or subjectPrefix"
            )
        );
        assert!(err(&rule(
            r#"{"keyless":{"issuer":"https://i","subjectPrefix":"corp"}}"#
        ))
        .starts_with("rules[0].verify.allOf[0].keyless.subjectPrefix:"));
        assert!(err(&rule(r#"{"certificate":{"certificate":"x"}}"#))
            .starts_with("rules[0].verify.allOf[0].certificate.certificate:"));
        assert!(err(&rule(r#"{"githubActions":{"owner":""}}"#))
            .starts_with("rules[0].verify.allOf[0].githubActions.owner:"));
        assert!(err(&rule(r#"{"sigstore":{}}"#))
            .starts_with("rules[0].verify.allOf[0]: unknown variant `sigstore`"));
    }

    #[test]
    fn attestation_checks_validate_their_signers_conditions_and_platforms() {
        let rule = |check: &str| {
            format!(
                r#"{{"keys":{{"k":{{"cosign":"{KEY}"}}}},"rules":[{{"name":"a","images":["a"],"verify":{{"anyOf":[{check}]}}}}]}}"#
            )
        };
        let ok = rule(
            r#"{"attestation":{"predicateType":"https://slsa.dev/provenance/v1","keys":["k"],"platforms":"all",
                "conditions":{"all":[{"path":"predicate.buildDefinition.buildType","op":"exists"}]}}}"#,
        );
        let p = Policy::from_json(&ok).unwrap();
        let Some(Verify::AnyOf(checks)) = &p.rules[0].verify else {
            panic!()
        };
        assert!(matches!(
            &checks[0],
            Check::Attestation { platforms: Platforms::All, conditions: Some(_), signers: Signers::Keys(k), .. } if k[0].name == "k"
        ));
        let cases = [
            (r#"{"attestation":{"predicateType":"p"}}"#,
             "rules[0].verify.anyOf[0].attestation: exactly one of keys, keyless, githubActions or certificate is required"),
            (r#"{"attestation":{"predicateType":"p","keys":["k"],"githubActions":{"owner":"o"}}}"#,
             "rules[0].verify.anyOf[0].attestation: exactly one of keys, keyless, githubActions or certificate is required"),
            (r#"{"attestation":{"predicateType":"","keys":["k"]}}"#,
             "rules[0].verify.anyOf[0].attestation.predicateType: a non-empty string is required"),
            (r#"{"attestation":{"predicateType":"p","keys":"k"}}"#,
             "rules[0].verify.anyOf[0].attestation.keys: a list of key names is required"),
            (r#"{"attestation":{"predicateType":"p","githubActions":{"owner":"o","rep":"x"}}}"#,
             "rules[0].verify.anyOf[0].attestation.githubActions: unknown field `rep`, expected one of `owner`, `repo`"),
            (r#"{"attestation":{"predicateType":"p","keys":["k"],"platform":"all"}}"#,
             "rules[0].verify.anyOf[0].attestation: unknown field `platform`, expected one of `predicateType`, `keys`, `keyless`, `githubActions`, `certificate`, `platforms`, `conditions`"),
            (r#"{"attestation":{"predicateType":"p","keys":["k"],"platforms":"some"}}"#,
             "rules[0].verify.anyOf[0].attestation.platforms: unknown variant `some`, expected `index` or `all`"),
            (r#"{"attestation":{"predicateType":"p","certificate":{"certificate":"x"}}}"#,
             r#"rules[0].verify.anyOf[0].attestation.certificate.certificate: expected "-----BEGIN ...-----", found "x""#),
            (r#"{"attestation":{"predicateType":"p","keys":["nope"]}}"#,
             r#"rules[0].verify.anyOf[0].attestation.keys[0]: unknown key "nope""#),
            (r#"{"attestation":{"predicateType":"p","keyless":{"issuer":"https://i"}}}"#,
             "rules[0].verify.anyOf[0].attestation.keyless: exactly one of subject or subjectPrefix is required"),
            (r#"{"attestation":{"predicateType":"p","githubActions":{"owner":"o"},"conditions":[{"path":"predicate.x","op":"regex","value":"a"}]}}"#,
             r#"rules[0].verify.anyOf[0].attestation.conditions[0].op: unknown op "regex" (equals, glob, in, exists)"#),
            (r#"{"attestation":{"predicateType":"p","githubActions":{"owner":"o"},"conditions":{"all":[{"path":"predicate..x","op":"exists"}]}}}"#,
             r#"rules[0].verify.anyOf[0].attestation.conditions.all[0].path: "predicate..x": empty segment"#),
            (r#"{"cosign":{"keys":["k"],"platforms":"some"}}"#,
             "rules[0].verify.anyOf[0].cosign.platforms: unknown variant `some`, expected `index` or `all`"),
        ];
        for (check, message) in cases {
            assert_eq!(err(&rule(check)), message, "{check}");
        }
    }

    #[test]
    fn notary_roles_are_normalized_and_inline_keys_work() {
        let json = format!(
            r#"{{"rules":[{{"name":"a","images":["a"],"verify":{{"anyOf":[{{"notary":{{"server":"https://n:4443/","signers":[{{"role":"jenkins"}},{{"role":"targets/alice"}}],"rootKeys":["{KEY}"]}}}},{{"cosign":{{"keys":["{KEY}"]}}}}]}}}}]}}"#
        );
        let p = Policy::from_json(&json).unwrap();
        let Some(Verify::AnyOf(checks)) = &p.rules[0].verify else {
            panic!()
        };
        let Check::Notary {
            server, signers, ..
        } = &checks[0]
        else {
            panic!()
        };
        assert_eq!(server, "https://n:4443");
        assert_eq!(signers[0].role, "targets/jenkins");
        assert_eq!(signers[1].role, "targets/alice");
        let Check::Signature {
            signers: Signers::Keys(keys),
            ..
        } = &checks[1]
        else {
            panic!()
        };
        assert_eq!(keys[0].name, "inline");
    }

    #[test]
    fn regex_labels_sources_and_unmatched_message() {
        let p = Policy::from_json(
            r#"{"unmatchedMessage":"{image} is not allowed","sources":{"tmax":true},"exemptNamespaces":["ops"],
                "rules":[{"name":"re","imageRegex":["docker\\.io/library/alp.*"]},
                {"name":"lab","images":["a"],"imageLabels":[{"key":"tier","value":"dev"},{"key":"any"}],"skipOnResolutionFailure":true}]}"#,
        )
        .unwrap();
        assert_eq!(
            p.unmatched_message.as_deref(),
            Some("{image} is not allowed")
        );
        assert!(p.regexes[0].0.is_match("docker.io/library/alpine"));
        assert!(
            !p.regexes[0].0.is_match("evil.io/docker.io/library/alpine"),
            "anchored"
        );
        assert_eq!(p.regexes[0].1, 0);
        assert_eq!(
            p.rules[1].labels[1],
            LabelCondition {
                key: "any".into(),
                value: None
            }
        );
        let src = p.sources.unwrap();
        assert!(src.sources.tmax && !src.sources.tanzu);
        assert!(!src.base.contains_key("sources") && src.base.contains_key("exemptNamespaces"));
        assert!(Policy::from_json(r#"{"sources":{}}"#)
            .unwrap()
            .sources
            .is_none());
        assert!(
            err(r#"{"sources":{"kyverno":true}}"#).starts_with("sources: unknown field `kyverno`")
        );
        assert!(err(r#"{"rules":[{"name":"a","imageRegex":["("]}]}"#)
            .starts_with("rules[0].imageRegex[0]: invalid regular expression"));
        assert!(
            err(r#"{"rules":[{"name":"a","images":["a"],"skipOnResolutionFailure":true}]}"#)
                .starts_with("rules[0].skipOnResolutionFailure:")
        );
        assert!(
            err(r#"{"rules":[{"name":"a"}]}"#).starts_with("rules[0].images: at least one pattern")
        );
    }

    #[test]
    fn notary_fields_are_camel_case() {
        let ca = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        let json = format!(
            r#"{{"rules":[{{"name":"a","images":["a"],"verify":{{"anyOf":[{{"notary":{{"server":"https://n:4443","caCert":"{}","rootKeys":["{KEY}"]}}}}]}}}}]}}"#,
            ca.replace('\n', "\\n")
        );
        let p = Policy::from_json(&json).unwrap();
        let Some(Verify::AnyOf(checks)) = &p.rules[0].verify else {
            panic!()
        };
        let Check::Notary {
            ca_cert, root_keys, ..
        } = &checks[0]
        else {
            panic!()
        };
        assert_eq!(ca_cert.as_deref(), Some(ca));
        assert_eq!(root_keys.as_ref().map(Vec::len), Some(1));
        let snake = r#"{"rules":[{"name":"a","images":["a"],"verify":{"anyOf":[{"notary":{"server":"https://n:4443","ca_cert":"x"}}]}}]}"#;
        assert!(err(snake).contains("unknown field `ca_cert`"));
    }

    #[test]
    fn errors_of_the_checks_read_by_hand_are_reported_with_the_others() {
        let json = r#"{"rules":[
            {"name":"a","images":["a/b"],"pinDigest":5},
            {"name":"b","images":["c/d"],"verify":{"anyOf":[{"keyless":{"issuer":"https://i","subject":"s","platforms":"any"}}]}},
            {"name":"c","images":["e/f"],"verify":{"anyOf":[{"notation":{"trustStores":{}}}]}},
            {"name":"d","images":["g/h"],"verify":{"anyOf":[{"attestation":{"predicateType":"p","keys":["nope"]}}]}},
            {"name":"e","images":["i/j"],"pinDigest":"pods","verify":{"allOf":[{"cosign":{"keys":["x"]}}]}}
        ],"requireFullyQualified":"yes"}"#;
        assert_eq!(
            err(json),
            "rules[0].pinDigest: invalid type: integer `5`, expected true, false or \"pods\"\n\
             rules[1].verify.anyOf[0].keyless.platforms: unknown variant `any`, expected `index` or `all`\n\
             rules[2].verify.anyOf[0].notation.trustStores: at least one trust store is required\n\
             rules[3].verify.anyOf[0].attestation.keys[0]: unknown key \"nope\"\n\
             rules[4].verify.allOf[0].cosign.keys[0]: unknown key \"x\"\n\
             requireFullyQualified: invalid type: string \"yes\", expected a boolean"
        );
    }

    #[test]
    fn url_looking_patterns_say_what_to_write() {
        assert_eq!(
            err(r#"{"rules":[{"name":"a","images":["https://ghcr.io/corp/**"]}]}"#),
            r#"rules[0].images[0]: invalid pattern "https://ghcr.io/corp/**": patterns are image references, not URLs: write ghcr.io/corp/**"#
        );
        assert_eq!(
            err(r#"{"exemptImages":["docker://registry.k8s.io/"]}"#),
            r#"exemptImages[0]: invalid pattern "docker://registry.k8s.io/": patterns are image references, not URLs: write registry.k8s.io/**"#
        );
    }

    #[test]
    fn a_fresh_instance_reads_only_the_rules_its_images_may_reach() {
        let image = Reference::parse("ghcr.io/corp/app:1").unwrap();
        let scoped = |json: &str| Policy::compile(json, Scope::Images(&[&image]));
        // rules[1] is invalid and names another registry: validate_settings
        // refuses it, a fresh instance deciding ghcr.io/corp/app passes it over.
        let other = r#"{"rules":[{"name":"corp","images":["ghcr.io/corp/**"]},
            {"name":"other","images":["quay.io/x/**"],"tags":{"deny":["-bad"]}}]}"#;
        assert!(
            err(other).starts_with("rules[1].tags.deny[0]: "),
            "{}",
            err(other)
        );
        let policy = scoped(other).unwrap();
        assert_eq!((policy.rules.len(), policy.patterns.len()), (2, 1));
        // What it cannot outline it reads whole, and checks: an escaped
        // pattern, an imageRegex, a repeated field.
        for rule in [
            r#"{"name":"other","images":["quay.io/\u0078/**"],"tags":{"deny":["-bad"]}}"#,
            r#"{"name":"other","imageRegex":["quay[.]io/x"],"tags":{"deny":["-bad"]}}"#,
            r#"{"name":"other","images":["quay.io/x/**"],"images":[],"tags":{"deny":["-bad"]}}"#,
        ] {
            let json =
                format!(r#"{{"rules":[{{"name":"corp","images":["ghcr.io/corp/**"]}},{rule}]}}"#);
            assert_eq!(scoped(&json).unwrap_err(), err(&json), "{rule}");
        }
        // A rule its image may reach is checked.
        let reached =
            r#"{"rules":[{"name":"corp","images":["ghcr.io/corp/**"],"tags":{"deny":["-bad"]}}]}"#;
        assert_eq!(scoped(reached).unwrap_err(), err(reached));
        // Broken JSON anywhere is refused, with what the whole read reports.
        let broken = r#"{"rules":[{"name":"a","imagez":["quay.io/x/**"]},{"name":"b","images":["quay.io/**"}]}"#;
        assert_eq!(scoped(broken).unwrap_err(), err(broken));
        assert!(
            err(broken).starts_with("rules[0]: unknown field `imagez`"),
            "{}",
            err(broken)
        );
    }

    #[test]
    fn trailing_garbage_is_rejected() {
        assert!(Policy::from_json("{} {}").is_err());
        assert!(Policy::from_json("[]").is_err());
        assert!(Policy::from_json("null").is_err());
    }

    #[test]
    fn every_error_is_reported_with_its_path_in_document_order() {
        // Schema and semantic mistakes mixed, the top level last. A rule with
        // a schema error is left out of the checks that follow (rules[0] is not
        // there to be the duplicate of rules[2], rules[1]'s tags are not checked).
        let json = format!(
            r#"{{"exemptNamespaces":["Kube-System"],
                "keys":{{"k":{{"cosign":"nope"}},"my key":{{"cosgn":"x"}}}},
                "rules":[
                  {{"name":"a","images":["ghcr.*/**","nginx"],"priority":"high"}},
                  {{"name":"b","images":["x/y",5],"tags":{{"deny":["lat est"]}}}},
                  {{"name":"a","images":["x/z"],"tags":{{"deny":["-x"]}},"verify":{{"anyOf":[{{"cosign":{{"keys":["my key","nokey","{KEY}"]}}}}]}}}},
                  {{"name":"d","images":["Registry.Example"],"action":"deny","pinDigest":true}}
                ],
                "unmatched":"maybe","rule":[]}}"#
        );
        let report = err(&json);
        let lines: Vec<&str> = report.lines().collect();
        let want = [
            "exemptNamespaces[0]: \"Kube-System\" is not a namespace name or glob",
            "keys.k.cosign: not a PEM public key",
            "keys[\"my key\"]: missing field `cosign`",
            "keys[\"my key\"]: unknown field `cosgn`, expected `cosign`",
            "rules[0].priority: invalid type: string \"high\", expected an integer (i64)",
            "rules[1].images[1]: invalid type: integer `5`, expected a string",
            "rules[2].tags.deny[0]: \"-x\" is not a tag or tag glob",
            "rules[2].verify.anyOf[0].cosign.keys[1]: unknown key \"nokey\"",
            "rules[3].images[0]: invalid pattern \"Registry.Example\"",
            "rules[3].pinDigest: only rules with action allow can have pinDigest",
            "unmatched: unknown variant `maybe`, expected one of `allow`, `warn`, `deny`",
            "settings: unknown field `rule`, expected one of",
        ];
        assert_eq!(lines.len(), want.len(), "{report}");
        for (line, want) in lines.iter().zip(want) {
            assert!(
                line.starts_with(want),
                "{line:?} should start with {want:?}\n{report}"
            );
        }
        // Every line splits into PATH and TEXT at its first ": ".
        for line in lines {
            let (path, _) = line.split_once(": ").unwrap();
            assert!(!path.contains(' ') || path.contains('"'), "{path}");
        }
    }

    #[test]
    fn the_report_is_bounded() {
        let rules: Vec<String> = (0..25)
            .map(|i| format!(r#"{{"name":"r{i}","images":["bad host/{i}"]}}"#))
            .collect();
        let report = err(&format!(r#"{{"rules":[{}]}}"#, rules.join(",")));
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines.len(), REPORTED + 1, "{report}");
        assert!(lines[0].starts_with("rules[0].images[0]: invalid pattern"));
        assert!(lines[REPORTED - 1].starts_with(&format!("rules[{}].images[0]:", REPORTED - 1)));
        assert_eq!(lines[REPORTED], format!("and {} more", 25 - REPORTED));
    }

    #[test]
    fn syntax_errors_say_where() {
        assert_eq!(
            err(r#"{"rules":[{"name":"a",}]}"#),
            "rules[0]: invalid JSON: expected a string"
        );
        assert_eq!(err("{} {}"), "settings: invalid JSON: trailing characters");
        assert_eq!(err("[]"), "settings: settings must be a JSON object");
    }
}
