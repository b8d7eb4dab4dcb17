//! Settings: the schema users write, its validation, and its compilation into
//! a [`Policy`] the engine runs.
//!
//! Every mistake is reported with the path of the bad field
//! (`rules[2].verify.anyOf[0].cosign.keys[1]: unknown key "relase"`); unknown
//! fields are errors, never ignored. Parsing and compiling happen in one pass
//! ([`Policy::from_json`]) because a fresh policy-server instance pays for
//! both on every request.

use crate::conditions::Condition;
use crate::glob::Glob;
use crate::pattern::{self, Pattern, PatternSet};
use crate::pem;
use crate::wire::Platforms;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The default break-glass annotation (Kubernetes ImagePolicyWebhook's name).
pub const DEFAULT_BREAK_GLASS_ANNOTATION: &str = "image-policy.k8s.io/break-glass";

// ---------------------------------------------------------------------------
// Schema (what users write)
// ---------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Settings {
    #[serde(default)]
    exempt_namespaces: Vec<String>,
    #[serde(default)]
    exempt_images: Vec<String>,
    #[serde(default)]
    unmatched: Option<Unmatched>,
    #[serde(default)]
    break_glass: Option<BreakGlassSettings>,
    #[serde(default)]
    keys: BTreeMap<String, KeySettings>,
    #[serde(default)]
    rules: Vec<RuleSettings>,
    /// Text for images no rule matches; `{image}` is the image as written.
    #[serde(default)]
    unmatched_message: Option<String>,
    #[serde(default)]
    sources: Option<SourcesSettings>,
    /// Deny images whose first component is not a registry host.
    #[serde(default)]
    require_fully_qualified: bool,
}

/// Other tools' objects read at request time (see `sources::context`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SourcesSettings {
    #[serde(default)]
    tmax: bool,
    #[serde(default)]
    tanzu: bool,
}

/// An image label the rule requires (OpenShift `matchImageLabels`);
/// no `value` = the label must be present with any value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LabelSettings {
    key: String,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BreakGlassSettings {
    #[serde(default = "default_break_glass_annotation")]
    annotation: String,
    #[serde(default)]
    groups: Vec<String>,
}

fn default_break_glass_annotation() -> String {
    DEFAULT_BREAK_GLASS_ANNOTATION.to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KeySettings {
    cosign: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuleSettings {
    name: String,
    #[serde(default)]
    images: Vec<String>,
    /// Regular expressions matched (whole) against the normalized repository
    /// name `host[:port]/path`, so `alpine` and `docker.io/library/alpine`
    /// cannot be told apart.
    #[serde(default)]
    image_regex: Vec<String>,
    /// The rule matches only images whose config carries these labels.
    #[serde(default)]
    image_labels: Vec<LabelSettings>,
    /// With `imageLabels`: an image whose labels cannot be read does not
    /// match the rule (instead of being denied).
    #[serde(default)]
    skip_on_resolution_failure: bool,
    #[serde(default)]
    priority: i64,
    #[serde(default)]
    action: Action,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    tags: Option<TagSettings>,
    #[serde(default)]
    verify: Option<VerifySettings>,
    #[serde(default)]
    pin_digest: PinDigest,
    #[serde(default)]
    on_digest_mismatch: OnDigestMismatch,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TagSettings {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
    #[serde(default)]
    require_digest: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VerifySettings {
    #[serde(default)]
    any_of: Option<Vec<CheckSettings>>,
    #[serde(default)]
    all_of: Option<Vec<CheckSettings>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
enum CheckSettings {
    Cosign {
        keys: Vec<String>,
        #[serde(default)]
        annotations: Option<BTreeMap<String, String>>,
        #[serde(default)]
        platforms: Platforms,
    },
    #[serde(rename_all = "camelCase")]
    Notary {
        server: String,
        #[serde(default)]
        signers: Vec<NotarySignerSettings>,
        #[serde(default)]
        ca_cert: Option<String>,
        #[serde(default)]
        root_keys: Option<Vec<String>>,
    },
    #[serde(rename_all = "camelCase")]
    Keyless {
        issuer: String,
        #[serde(default)]
        subject: Option<String>,
        #[serde(default)]
        subject_prefix: Option<String>,
        #[serde(default)]
        annotations: Option<BTreeMap<String, String>>,
        #[serde(default)]
        platforms: Platforms,
    },
    GithubActions {
        owner: String,
        #[serde(default)]
        repo: Option<String>,
        #[serde(default)]
        annotations: Option<BTreeMap<String, String>>,
        #[serde(default)]
        platforms: Platforms,
    },
    #[serde(rename_all = "camelCase")]
    Certificate {
        certificate: String,
        #[serde(default)]
        chain: Vec<String>,
        #[serde(default)]
        require_rekor_bundle: bool,
        #[serde(default)]
        annotations: Option<BTreeMap<String, String>>,
        #[serde(default)]
        platforms: Platforms,
    },
    /// Read by [`attestation_check`] (its signer is written like the
    /// signature checks': keys, keyless, githubActions, certificate).
    Attestation(serde_json::Value),
    /// Read by [`crate::notation::NotationCheck::read`].
    Notation(serde_json::Value),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NotarySignerSettings {
    role: String,
    #[serde(default)]
    public_key: Option<String>,
}

// ---------------------------------------------------------------------------
// Compiled policy (what the engine runs)
// ---------------------------------------------------------------------------

/// What happens to an image no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Unmatched {
    Allow,
    Warn,
    Deny,
}

impl Unmatched {
    /// As written in the settings.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Unmatched::Allow => "allow",
            Unmatched::Warn => "warn",
            Unmatched::Deny => "deny",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Action {
    #[default]
    Allow,
    Deny,
}

/// `warn` turns every denial of the rule into a warning (rolling a rule out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    #[default]
    Enforce,
    Warn,
}

/// `pinDigest`: which objects get the verified (or resolved) digest written
/// into their images.
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

/// `true`, `false` or `"pods"`.
impl<'de> Deserialize<'de> for PinDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = PinDigest;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#"true, false or "pods""#)
            }
            fn visit_bool<E>(self, pin: bool) -> Result<PinDigest, E> {
                Ok(if pin { PinDigest::All } else { PinDigest::Off })
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<PinDigest, E> {
                match text {
                    "pods" => Ok(PinDigest::Pods),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(text), &self)),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// What to do when the image's digest differs from the signed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OnDigestMismatch {
    #[default]
    Deny,
    Rewrite,
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

#[derive(Debug)]
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

impl Policy {
    /// Parses, validates and compiles settings JSON (`{}` for none).
    ///
    /// Every mistake is an error naming the path of the bad field; unknown
    /// fields are errors, never ignored. Keys and certificates must be
    /// well-formed PEM, patterns must match what they say.
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
    ///     Policy::from_json(r#"{"rules":[{"name":"a","images":["x/y"],"tags":{"requiredigest":true}}]}"#).unwrap_err(),
    ///     "rules[0].tags: unknown field `requiredigest`, expected one of `allow`, `deny`, `requireDigest`"
    /// );
    /// ```
    pub fn from_json(json: &str) -> Result<Policy, String> {
        // serde reads a struct from a JSON array too; settings are an object.
        if !json.trim_start().starts_with('{') {
            return Err("settings must be a JSON object".to_string());
        }
        // Path tracking doubles the parse time, and a fresh policy-server
        // instance parses the settings on every request: parse plainly, and
        // only when that fails parse again to say where.
        let settings = match serde_json::from_str::<Settings>(json) {
            Ok(settings) => settings,
            Err(plain) => {
                let mut de = serde_json::Deserializer::from_str(json);
                let tracked: Result<Settings, _> = serde_path_to_error::deserialize(&mut de);
                return Err(match tracked {
                    Err(e) => schema_error(e.path().to_string(), e.into_inner()),
                    Ok(_) => plain.to_string(),
                });
            }
        };
        // With `sources`, the settings as written are completed per request
        // (sources::context); keep them, without `sources`, for that.
        let sources = match &settings.sources {
            Some(s) if s.tmax || s.tanzu => {
                let mut base: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(json).map_err(|e| e.to_string())?;
                base.remove("sources");
                Some(SourcedSettings {
                    sources: crate::sources::context::Sources {
                        tmax: s.tmax,
                        tanzu: s.tanzu,
                    },
                    base,
                })
            }
            _ => None,
        };
        let mut policy = compile(settings)?;
        policy.sources = sources;
        Ok(policy)
    }
}

/// `rules[0].tags: unknown field `requiredigest`, expected ...`: the path of
/// the object that has the bad field, without serde_json's line and column
/// (settings arrive re-serialized by the host, so positions mean nothing).
fn schema_error(path: String, inner: serde_json::Error) -> String {
    let mut message = inner.to_string();
    if let Some(at) = message.rfind(" at line ") {
        message.truncate(at);
    }
    let path = if message.starts_with("unknown field") {
        // serde_path_to_error's path ends with the unknown field itself.
        match path.rfind('.') {
            Some(dot) => path[..dot].to_string(),
            None => ".".to_string(),
        }
    } else {
        path
    };
    if path == "." {
        message
    } else {
        format!("{path}: {message}")
    }
}

fn compile(s: Settings) -> Result<Policy, String> {
    let exempt_namespaces = s
        .exempt_namespaces
        .iter()
        .enumerate()
        .map(|(i, ns)| namespace_glob(ns).map_err(|e| format!("exemptNamespaces[{i}]: {e}")))
        .collect::<Result<Vec<_>, _>>()?;

    let exempt_images = PatternSet::new(
        s.exempt_images
            .iter()
            .enumerate()
            .map(|(i, p)| {
                parse_pattern(p)
                    .map(|p| (p, i))
                    .map_err(|e| format!("exemptImages[{i}]: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?,
    );

    let break_glass = match s.break_glass {
        None => None,
        Some(b) => {
            if !is_annotation_key(&b.annotation) {
                return Err(format!(
                    "breakGlass.annotation: {:?} is not a valid annotation key",
                    b.annotation
                ));
            }
            Some(BreakGlass {
                annotation: b.annotation,
                groups: b.groups,
            })
        }
    };

    let mut keys = HashMap::new();
    for (name, key) in &s.keys {
        pem::expect_one(&key.cosign, &["PUBLIC KEY"])
            .map_err(|e| format!("keys.{name}.cosign: not a PEM public key: {e}"))?;
        keys.insert(name.as_str(), key.cosign.as_str());
    }

    let mut rules = Vec::with_capacity(s.rules.len());
    let mut patterns = Vec::new();
    let mut regexes = Vec::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, r) in s.rules.iter().enumerate() {
        let at = format!("rules[{i}]");
        if r.name.trim().is_empty() {
            return Err(format!("{at}.name: must not be empty"));
        }
        if let Some(first) = names.insert(&r.name, i) {
            return Err(format!(
                "{at}.name: duplicate rule name {:?} (also rules[{first}])",
                r.name
            ));
        }
        if r.images.is_empty() && r.image_regex.is_empty() {
            return Err(format!(
                "{at}.images: at least one pattern is required (in images or imageRegex)"
            ));
        }
        for (j, re) in r.image_regex.iter().enumerate() {
            let anchored = regex_lite::Regex::new(&format!("^(?:{re})$"))
                .map_err(|e| format!("{at}.imageRegex[{j}]: invalid regular expression: {e}"))?;
            regexes.push((anchored, i));
        }
        for (j, p) in r.images.iter().enumerate() {
            patterns.push((
                parse_pattern(p).map_err(|e| format!("{at}.images[{j}]: {e}"))?,
                i,
            ));
        }
        rules.push(compile_rule(r, &at, &keys)?);
    }

    // Any allow rule (in either mode) means the user listed what is allowed:
    // everything else is denied unless they say otherwise.
    let first_allow = rules.iter().find(|r| r.action == Action::Allow);
    let (unmatched, unmatched_because) = match (s.unmatched, first_allow) {
        (Some(written), _) => (written, None),
        (None, Some(rule)) => (Unmatched::Deny, Some(rule.name.clone())),
        (None, None) => (Unmatched::Allow, None),
    };

    Ok(Policy {
        exempt_namespaces,
        exempt_images,
        unmatched,
        unmatched_because,
        break_glass,
        rules,
        patterns: PatternSet::new(patterns),
        regexes,
        unmatched_message: s.unmatched_message,
        sources: None,
        require_fully_qualified: s.require_fully_qualified,
    })
}

fn compile_rule(r: &RuleSettings, at: &str, keys: &HashMap<&str, &str>) -> Result<Rule, String> {
    let tags = r.tags.as_ref();
    if r.action == Action::Deny {
        let extra = [
            (tags.is_some(), "tags"),
            (r.verify.is_some(), "verify"),
            (r.pin_digest != PinDigest::Off, "pinDigest"),
        ];
        if let Some((_, field)) = extra.iter().find(|(set, _)| *set) {
            return Err(format!(
                "{at}.{field}: only rules with action allow can have {field}"
            ));
        }
    }
    let tag_globs = |list: &[String], field: &str| {
        list.iter()
            .enumerate()
            .map(|(k, t)| pattern::tag_glob(t).map_err(|e| format!("{at}.tags.{field}[{k}]: {e}")))
            .collect::<Result<Vec<_>, _>>()
    };
    if r.skip_on_resolution_failure && r.image_labels.is_empty() {
        return Err(format!(
            "{at}.skipOnResolutionFailure: only rules with imageLabels resolve images"
        ));
    }
    let mut labels = Vec::with_capacity(r.image_labels.len());
    for (k, l) in r.image_labels.iter().enumerate() {
        if l.key.is_empty() {
            return Err(format!("{at}.imageLabels[{k}].key: must not be empty"));
        }
        labels.push(LabelCondition {
            key: l.key.clone(),
            value: l.value.clone(),
        });
    }
    let verify = match &r.verify {
        None => None,
        Some(v) => Some(compile_verify(v, &format!("{at}.verify"), keys)?),
    };
    Ok(Rule {
        name: Arc::from(r.name.as_str()),
        priority: r.priority,
        action: r.action,
        mode: r.mode,
        message: r.message.clone(),
        tags_allow: tag_globs(tags.map_or(&[][..], |t| &t.allow), "allow")?,
        tags_deny: tag_globs(tags.map_or(&[][..], |t| &t.deny), "deny")?,
        require_digest: tags.is_some_and(|t| t.require_digest),
        verify,
        pin_digest: r.pin_digest,
        on_digest_mismatch: r.on_digest_mismatch,
        labels,
        skip_on_resolution_failure: r.skip_on_resolution_failure,
    })
}

fn compile_verify(
    v: &VerifySettings,
    at: &str,
    keys: &HashMap<&str, &str>,
) -> Result<Verify, String> {
    let (list, field, make): (_, _, fn(Vec<Check>) -> Verify) = match (&v.any_of, &v.all_of) {
        (Some(l), None) => (l, "anyOf", Verify::AnyOf),
        (None, Some(l)) => (l, "allOf", Verify::AllOf),
        _ => return Err(format!("{at}: exactly one of anyOf or allOf is required")),
    };
    if list.is_empty() {
        return Err(format!("{at}.{field}: at least one check is required"));
    }
    let checks = list
        .iter()
        .enumerate()
        .map(|(i, c)| compile_check(c, &format!("{at}.{field}[{i}]"), keys))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(make(checks))
}

fn compile_check(c: &CheckSettings, at: &str, keys: &HashMap<&str, &str>) -> Result<Check, String> {
    let signature =
        |signers, annotations: &Option<BTreeMap<String, String>>, platforms: &Platforms| {
            Ok(Check::Signature {
                signers,
                annotations: annotations.clone(),
                platforms: *platforms,
            })
        };
    match c {
        CheckSettings::Cosign {
            keys: names,
            annotations,
            platforms,
        } => signature(
            key_signers(names, &format!("{at}.cosign"), keys)?,
            annotations,
            platforms,
        ),
        CheckSettings::Notary {
            server,
            signers,
            ca_cert,
            root_keys,
        } => {
            let at = format!("{at}.notary");
            if !is_url(server, &["https://"]) {
                return Err(format!("{at}.server: {server:?} must be an https:// URL"));
            }
            let mut out = Vec::with_capacity(signers.len());
            for (k, s) in signers.iter().enumerate() {
                let role = s.role.strip_prefix("targets/").unwrap_or(&s.role);
                if role.is_empty() || role.contains(char::is_whitespace) {
                    return Err(format!(
                        "{at}.signers[{k}].role: {:?} is not a delegation role",
                        s.role
                    ));
                }
                if let Some(key) = &s.public_key {
                    pem::expect_one(key, &["PUBLIC KEY", "CERTIFICATE"])
                        .map_err(|e| format!("{at}.signers[{k}].publicKey: {e}"))?;
                }
                out.push(crate::wire::NotarySigner {
                    role: format!("targets/{role}"),
                    public_key: s.public_key.clone(),
                });
            }
            if let Some(ca) = ca_cert {
                pem::expect_all(ca, &["CERTIFICATE"]).map_err(|e| format!("{at}.caCert: {e}"))?;
            }
            for (k, key) in root_keys.iter().flatten().enumerate() {
                pem::expect_one(key, &["PUBLIC KEY", "CERTIFICATE"])
                    .map_err(|e| format!("{at}.rootKeys[{k}]: {e}"))?;
            }
            Ok(Check::Notary {
                server: server.trim_end_matches('/').to_string(),
                signers: out,
                ca_cert: ca_cert.clone(),
                root_keys: root_keys.clone(),
            })
        }
        CheckSettings::Keyless {
            issuer,
            subject,
            subject_prefix,
            annotations,
            platforms,
        } => signature(
            keyless_signers(issuer, subject, subject_prefix, &format!("{at}.keyless"))?,
            annotations,
            platforms,
        ),
        CheckSettings::GithubActions {
            owner,
            repo,
            annotations,
            platforms,
        } => signature(
            github_signers(owner, repo, &format!("{at}.githubActions"))?,
            annotations,
            platforms,
        ),
        CheckSettings::Certificate {
            certificate,
            chain,
            require_rekor_bundle,
            annotations,
            platforms,
        } => signature(
            certificate_signers(
                certificate,
                chain,
                *require_rekor_bundle,
                &format!("{at}.certificate"),
            )?,
            annotations,
            platforms,
        ),
        CheckSettings::Attestation(value) => {
            attestation_check(value, &format!("{at}.attestation"), keys)
        }
        CheckSettings::Notation(value) => Ok(Check::Notation(
            crate::notation::NotationCheck::read(value, &format!("{at}.notation"))?,
        )),
    }
}

/// An `attestation` check, read from its JSON by hand: derived readers for
/// its nested signer objects would cost the module more than this does.
fn attestation_check(
    value: &serde_json::Value,
    at: &str,
    keys: &HashMap<&str, &str>,
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
fn key_signers(names: &[String], at: &str, keys: &HashMap<&str, &str>) -> Result<Signers, String> {
    if names.is_empty() {
        return Err(format!("{at}.keys: at least one key is required"));
    }
    names
        .iter()
        .enumerate()
        .map(|(k, name)| resolve_key(name, keys).map_err(|e| format!("{at}.keys[{k}]: {e}")))
        .collect::<Result<Vec<_>, _>>()
        .map(Signers::Keys)
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

/// A key reference is the name of an entry in `keys`, or an inline PEM key.
fn resolve_key(name: &str, keys: &HashMap<&str, &str>) -> Result<NamedKey, String> {
    if name.trim_start().starts_with("-----BEGIN") {
        pem::expect_one(name, &["PUBLIC KEY"]).map_err(|e| format!("not a PEM public key: {e}"))?;
        return Ok(NamedKey {
            name: "inline".to_string(),
            pem: name.to_string(),
        });
    }
    match keys.get(name) {
        Some(pem) => Ok(NamedKey {
            name: name.to_string(),
            pem: pem.to_string(),
        }),
        None => Err(format!("unknown key {name:?}")),
    }
}

fn parse_pattern(text: &str) -> Result<Pattern, String> {
    Pattern::parse(text).map_err(|e| format!("invalid pattern {text:?}: {e}"))
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
        assert!(e.starts_with("unknown field `rule`"), "{e}");
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
    fn trailing_garbage_is_rejected() {
        assert!(Policy::from_json("{} {}").is_err());
        assert!(Policy::from_json("[]").is_err());
        assert!(Policy::from_json("null").is_err());
    }
}
