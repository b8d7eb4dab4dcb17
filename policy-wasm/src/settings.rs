//! Settings: the schema users write, its validation, and its compilation into
//! a [`Policy`] the engine runs.
//!
//! Every mistake is reported with the path of the bad field
//! (`rules[2].verify.anyOf[0].cosign.keys[1]: unknown key "relase"`); unknown
//! fields are errors, never ignored. Parsing and compiling happen in one pass
//! ([`Policy::from_json`]) because a fresh policy-server instance pays for
//! both on every request.

use crate::glob::Glob;
use crate::pattern::{self, Pattern, PatternSet};
use crate::pem;
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
    pin_digest: bool,
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
    },
    GithubActions {
        owner: String,
        #[serde(default)]
        repo: Option<String>,
        #[serde(default)]
        annotations: Option<BTreeMap<String, String>>,
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
    },
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
    pub(crate) pin_digest: bool,
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
    /// Any one of the keys suffices (one `oci/v2/verify` call per key).
    Cosign {
        keys: Vec<NamedKey>,
        annotations: Option<BTreeMap<String, String>>,
    },
    Notary {
        server: String,
        signers: Vec<crate::wire::NotarySigner>,
        ca_cert: Option<String>,
        root_keys: Option<Vec<String>>,
    },
    Keyless {
        issuer: String,
        subject: String,
        annotations: Option<BTreeMap<String, String>>,
    },
    KeylessPrefix {
        issuer: String,
        prefix: String,
        annotations: Option<BTreeMap<String, String>>,
    },
    GithubActions {
        owner: String,
        repo: Option<String>,
        annotations: Option<BTreeMap<String, String>>,
    },
    Certificate {
        certificate: String,
        chain: Vec<String>,
        require_rekor_bundle: bool,
        annotations: Option<BTreeMap<String, String>>,
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
    let unmatched = s.unmatched.unwrap_or_else(|| {
        if rules.iter().any(|r| r.action == Action::Allow) {
            Unmatched::Deny
        } else {
            Unmatched::Allow
        }
    });

    Ok(Policy {
        exempt_namespaces,
        exempt_images,
        unmatched,
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
            (r.pin_digest, "pinDigest"),
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
    Ok(match c {
        CheckSettings::Cosign {
            keys: names,
            annotations,
        } => {
            if names.is_empty() {
                return Err(format!("{at}.cosign.keys: at least one key is required"));
            }
            let keys = names
                .iter()
                .enumerate()
                .map(|(k, name)| {
                    resolve_key(name, keys).map_err(|e| format!("{at}.cosign.keys[{k}]: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Check::Cosign {
                keys,
                annotations: annotations.clone(),
            }
        }
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
            Check::Notary {
                server: server.trim_end_matches('/').to_string(),
                signers: out,
                ca_cert: ca_cert.clone(),
                root_keys: root_keys.clone(),
            }
        }
        CheckSettings::Keyless {
            issuer,
            subject,
            subject_prefix,
            annotations,
        } => {
            if issuer.is_empty() {
                return Err(format!("{at}.keyless.issuer: must not be empty"));
            }
            match (subject, subject_prefix) {
                (Some(subject), None) if !subject.is_empty() => Check::Keyless {
                    issuer: issuer.clone(),
                    subject: subject.clone(),
                    annotations: annotations.clone(),
                },
                (None, Some(prefix)) => {
                    // policy-server crashes its callback on a prefix that is not a URL.
                    if !is_url(prefix, &["https://", "http://"]) {
                        return Err(format!(
                            "{at}.keyless.subjectPrefix: {prefix:?} must be an http(s) URL"
                        ));
                    }
                    Check::KeylessPrefix {
                        issuer: issuer.clone(),
                        prefix: prefix.clone(),
                        annotations: annotations.clone(),
                    }
                }
                _ => {
                    return Err(format!(
                        "{at}.keyless: exactly one of subject or subjectPrefix is required"
                    ))
                }
            }
        }
        CheckSettings::GithubActions {
            owner,
            repo,
            annotations,
        } => {
            if owner.is_empty() {
                return Err(format!("{at}.githubActions.owner: must not be empty"));
            }
            Check::GithubActions {
                owner: owner.clone(),
                repo: repo.clone(),
                annotations: annotations.clone(),
            }
        }
        CheckSettings::Certificate {
            certificate,
            chain,
            require_rekor_bundle,
            annotations,
        } => {
            pem::expect_one(certificate, &["CERTIFICATE"])
                .map_err(|e| format!("{at}.certificate.certificate: {e}"))?;
            for (k, c) in chain.iter().enumerate() {
                pem::expect_one(c, &["CERTIFICATE"])
                    .map_err(|e| format!("{at}.certificate.chain[{k}]: {e}"))?;
            }
            Check::Certificate {
                certificate: certificate.clone(),
                chain: chain.clone(),
                require_rekor_bundle: *require_rekor_bundle,
                annotations: annotations.clone(),
            }
        }
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
        let Check::Cosign { keys, .. } = &checks[1] else {
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
    fn trailing_garbage_is_rejected() {
        assert!(Policy::from_json("{} {}").is_err());
        assert!(Policy::from_json("[]").is_err());
        assert!(Policy::from_json("null").is_err());
    }
}
