//! Other tools' policies -> native settings.
//!
//! Each dialect is a pure function from its documents (`serde_json::Value`;
//! the host-runner parses YAML) to native settings JSON plus the list of
//! [`Limitation`]s: what cannot be expressed exactly, and where imagegate is
//! stricter or looser than the original. Nothing is dropped silently: every
//! field a converter does not carry over produces a limitation.
//!
//! The converters live in the policy crate because `sources: {tmax, tanzu}`
//! runs the tmax and Tanzu conversions inside the guest at request time
//! (`context`), so the CLI (`imagegate convert`) and the live policy can
//! never disagree about the objects. Only what a dialect's platform implies
//! rather than its objects (`requireFullyQualified` on CRI-O platforms:
//! OpenShift, tmax's HyperCloud) is the CLI's alone.

pub(crate) mod context;
mod gatekeeper;
mod openshift;
mod sighup;
pub(crate) mod tanzu;
mod tmax;

use serde_json::{Map, Value};
use std::fmt;

/// Something a dialect says that imagegate expresses differently or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limitation {
    /// Where in the input: `ClusterImagePolicy image-policy: spec.verification.images[0].secretRef`.
    pub at: String,
    /// What happens instead, and whether imagegate is stricter or looser.
    pub note: String,
}

impl fmt::Display for Limitation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.note)
    }
}

/// The result of a conversion.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// Native settings (valid input for `Policy::from_json`).
    pub settings: Value,
    /// What the conversion could not carry over exactly.
    pub limitations: Vec<Limitation>,
    /// Which namespaces the original tool looks at, when that is decided by its
    /// webhook rather than by its policy: goes into a ClusterAdmissionPolicy's
    /// `namespaceSelector`, never into settings.
    pub namespace_selector: Option<Value>,
}

/// The dialects `imagegate convert --from` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// tmax image-validation-webhook: whitelist ConfigMap, (Cluster)RegistrySecurityPolicy, key Secrets.
    Tmax,
    /// VMware Tanzu image policy webhook: ClusterImagePolicy.
    Tanzu,
    /// OpenShift: `Image` allowedRegistriesForImport and the ImagePolicy admission plugin.
    Openshift,
    /// sighup container-signature-enforcer (opa-notary-connector) Helm values.
    Sighup,
    /// Gatekeeper library constraints: K8sAllowedRepos, K8sDisallowedTags, K8sImageDigests.
    Gatekeeper,
}

impl Dialect {
    /// Every dialect, in `--help` order.
    pub const ALL: [Dialect; 5] = [
        Dialect::Tmax,
        Dialect::Tanzu,
        Dialect::Openshift,
        Dialect::Sighup,
        Dialect::Gatekeeper,
    ];

    /// The name `--from` takes.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Tmax => "tmax",
            Dialect::Tanzu => "tanzu",
            Dialect::Openshift => "openshift",
            Dialect::Sighup => "sighup",
            Dialect::Gatekeeper => "gatekeeper",
        }
    }

    /// The dialect called `name`, or an error listing the names.
    pub fn parse(name: &str) -> Result<Dialect, String> {
        Dialect::ALL
            .into_iter()
            .find(|d| d.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Dialect::ALL.iter().map(|d| d.name()).collect();
                format!(
                    "unknown dialect {name:?} (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// Options some dialects need beyond their documents.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// OpenShift: the integrated registry's host (`matchIntegratedRegistry`);
    /// default `image-registry.openshift-image-registry.svc:5000`.
    pub integrated_registry: Option<String>,
}

/// Converts every document of one dialect (several files or YAML documents
/// are one policy, as the original tool would read them together).
pub fn convert(dialect: Dialect, docs: &[Value], options: &Options) -> Result<Converted, String> {
    match dialect {
        Dialect::Tmax => tmax::convert_documents(docs),
        Dialect::Tanzu => tanzu::convert_documents(docs),
        Dialect::Openshift => openshift::convert_documents(docs, options),
        Dialect::Sighup => sighup::convert_documents(docs),
        Dialect::Gatekeeper => gatekeeper::convert_documents(docs),
    }
}

/// Collects limitations and builds settings objects; shared by every converter.
#[derive(Debug, Default)]
pub(crate) struct Out {
    pub settings: Map<String, Value>,
    pub limitations: Vec<Limitation>,
    pub namespace_selector: Option<Value>,
}

impl Out {
    pub fn note(&mut self, at: impl Into<String>, note: impl Into<String>) {
        self.limitations.push(Limitation {
            at: at.into(),
            note: note.into(),
        });
    }

    /// How many rules have been written so far: the index the next one gets
    /// (converted rules are named after it, so messages point at their source).
    pub fn rule_count(&self) -> usize {
        self.settings
            .get("rules")
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    }

    /// Appends to a top-level array (`rules`, `exemptImages`, ...).
    pub fn push(&mut self, field: &str, value: Value) {
        if let Value::Array(list) = self
            .settings
            .entry(field)
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            list.push(value);
        }
    }

    pub fn set(&mut self, field: &str, value: Value) {
        self.settings.insert(field.to_string(), value);
    }

    pub fn done(self) -> Converted {
        Converted {
            settings: Value::Object(self.settings),
            limitations: self.limitations,
            namespace_selector: self.namespace_selector,
        }
    }
}

/// `kind name` for messages: `ClusterImagePolicy image-policy`.
pub(crate) fn describe(doc: &Value) -> String {
    let kind = str_at(doc, "/kind").unwrap_or("document");
    match (
        str_at(doc, "/metadata/namespace"),
        str_at(doc, "/metadata/name"),
    ) {
        (Some(ns), Some(name)) => format!("{kind} {ns}/{name}"),
        (None, Some(name)) => format!("{kind} {name}"),
        _ => kind.to_string(),
    }
}

pub(crate) fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

pub(crate) fn list_at<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Strings of a list field; a non-string entry is an error naming its place.
pub(crate) fn strings_at(v: &Value, pointer: &str, at: &str) -> Result<Vec<String>, String> {
    list_at(v, pointer)
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{at}{pointer}/{i}: expected a string, found {s}"))
        })
        .collect()
}

/// Fields of `obj` that a converter does not know, each reported once.
pub(crate) fn unknown_fields(out: &mut Out, at: &str, obj: &Value, known: &[&str]) {
    if let Some(map) = obj.as_object() {
        for key in map.keys().filter(|k| !known.contains(&k.as_str())) {
            out.note(
                format!("{at}.{key}"),
                "unknown field, not converted (check the original tool's documentation)",
            );
        }
    }
}
