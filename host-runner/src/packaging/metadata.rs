//! Kubewarden policy metadata (`metadata.yml` and the `io.kubewarden.metadata`
//! custom section).
//!
//! The types mirror policy-evaluator's `policy_metadata.rs` field for field and
//! in the same order, so the JSON that `imagegate annotate` embeds is the JSON
//! `kwctl annotate` would embed and policy-server reads it unchanged. Unlike
//! Kubewarden, unknown keys are errors: a typo in our own metadata.yml
//! (`contextAware:`, `hostCapabilites:`) must not be silently dropped.
//! Validation follows policy-evaluator (rule lists non-empty, `*` alone, the
//! Kubernetes resource/subresource exclusivity rules) and reports the path of
//! the bad field.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Name of the wasm custom section holding the metadata JSON.
pub const METADATA_SECTION: &str = "io.kubewarden.metadata";

/// Annotation keys Kubewarden and Artifact Hub give a meaning to.
pub mod keys {
    pub const TITLE: &str = "io.kubewarden.policy.title";
    pub const VERSION: &str = "io.kubewarden.policy.version";
    pub const DESCRIPTION: &str = "io.kubewarden.policy.description";
    pub const AUTHOR: &str = "io.kubewarden.policy.author";
    pub const URL: &str = "io.kubewarden.policy.url";
    pub const SOURCE: &str = "io.kubewarden.policy.source";
    pub const LICENSE: &str = "io.kubewarden.policy.license";
    pub const OCI_URL: &str = "io.kubewarden.policy.ociUrl";
    pub const USAGE: &str = "io.kubewarden.policy.usage";
    pub const SEVERITY: &str = "io.kubewarden.policy.severity";
    pub const CATEGORY: &str = "io.kubewarden.policy.category";
    pub const HIDDEN_UI: &str = "io.kubewarden.hidden-ui";
    pub const GITHUB_RELEASE_TAG: &str = "com.github.release.tag";
    pub const ARTIFACTHUB_DISPLAY_NAME: &str = "io.artifacthub.displayName";
    pub const ARTIFACTHUB_RESOURCES: &str = "io.artifacthub.resources";
    pub const ARTIFACTHUB_KEYWORDS: &str = "io.artifacthub.keywords";
}

/// Protocol spoken by a `kubewarden-wapc` module, as answered by its
/// `protocol_version` function. Kubewarden knows only `v1`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolVersion {
    #[serde(rename = "v1")]
    V1,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    #[serde(rename = "CREATE")]
    Create,
    #[serde(rename = "UPDATE")]
    Update,
    #[serde(rename = "DELETE")]
    Delete,
    #[serde(rename = "CONNECT")]
    Connect,
    #[serde(rename = "*")]
    All,
}

/// One admission webhook rule (`RuleWithOperations` without `scope`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub api_groups: Vec<String>,
    pub api_versions: Vec<String>,
    pub resources: Vec<String>,
    pub operations: Vec<Operation>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExecutionMode {
    #[default]
    #[serde(rename = "kubewarden-wapc")]
    KubewardenWapc,
    #[serde(rename = "opa")]
    Opa,
    #[serde(rename = "gatekeeper")]
    Gatekeeper,
    #[serde(rename = "wasi")]
    Wasi,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PolicyType {
    #[default]
    #[serde(rename = "kubernetes")]
    Kubernetes,
    #[serde(rename = "raw")]
    Raw,
}

/// A Kubernetes kind the policy reads at evaluation time.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContextAwareResource {
    pub api_version: String,
    pub kind: String,
}

/// The metadata document. Field order = policy-evaluator's, so serde_json
/// writes the keys in kwctl's order; sets and maps are sorted like kwctl's.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Absent in metadata.yml; written by annotate after asking the module.
    #[serde(default)]
    pub protocol_version: Option<ProtocolVersion>,
    pub rules: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    pub mutating: bool,
    #[serde(default = "default_true")]
    pub background_audit: bool,
    #[serde(default)]
    pub execution_mode: ExecutionMode,
    #[serde(default)]
    pub policy_type: PolicyType,
    #[serde(default)]
    pub context_aware_resources: BTreeSet<ContextAwareResource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_capabilities: Option<BTreeSet<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_kubewarden_version: Option<semver::Version>,
}

fn default_true() -> bool {
    true
}

const SEVERITIES: [&str; 5] = ["info", "low", "medium", "high", "critical"];

impl Metadata {
    /// Reads and validates a metadata.yml file.
    pub fn from_yaml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read metadata file {}", path.display()))?;
        Self::from_yaml(&text).with_context(|| format!("invalid metadata file {}", path.display()))
    }

    /// Parses and validates metadata YAML.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let metadata: Metadata = serde_yaml_ng::from_str(text)?;
        metadata.validate()?;
        Ok(metadata)
    }

    /// The metadata embedded in a wasm module, `None` when it is not annotated.
    pub fn from_module(module: &[u8]) -> Result<Option<Self>> {
        let Some(json) = custom_section(module, METADATA_SECTION)? else {
            return Ok(None);
        };
        let metadata: Metadata = serde_json::from_slice(json)
            .with_context(|| format!("cannot parse the {METADATA_SECTION} custom section"))?;
        metadata
            .validate()
            .with_context(|| format!("invalid {METADATA_SECTION} custom section"))?;
        Ok(Some(metadata))
    }

    /// The metadata of the annotated module at `policy` when given (what
    /// will actually run), else of the metadata.yml at `metadata_yml`.
    pub fn from_policy_or_file(policy: Option<&Path>, metadata_yml: &Path) -> Result<Self> {
        let Some(path) = policy else {
            return Self::from_yaml_file(metadata_yml);
        };
        let module = std::fs::read(path)
            .with_context(|| format!("cannot read policy {}", path.display()))?;
        Self::from_module(&module)?.with_context(|| {
            format!(
                "{} is not annotated: run `imagegate annotate` first",
                path.display()
            )
        })
    }

    /// The value of annotation `key`, if set.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }

    /// Like [`Self::annotation`], failing with the key's name when it is absent.
    pub fn required_annotation(&self, key: &str) -> Result<&str> {
        self.annotation(key)
            .with_context(|| format!("metadata annotation {key} is missing"))
    }

    /// Checks everything policy-evaluator checks, plus the annotation values
    /// whose format Kubewarden tooling relies on.
    pub fn validate(&self) -> Result<()> {
        for (i, rule) in self.rules.iter().enumerate() {
            validate_rule(rule).with_context(|| format!("rules[{i}]"))?;
        }
        for (i, res) in self.context_aware_resources.iter().enumerate() {
            if res.api_version.is_empty() || res.kind.is_empty() {
                bail!("contextAwareResources[{i}]: apiVersion and kind must not be empty");
            }
        }
        if let Some(caps) = &self.host_capabilities {
            if let Some(bad) = caps
                .iter()
                .find(|c| c.is_empty() || c.contains(char::is_whitespace))
            {
                bail!("hostCapabilities: invalid capability path {bad:?}");
            }
        }
        if let Some(severity) = self.annotation(keys::SEVERITY) {
            if !SEVERITIES.contains(&severity) {
                bail!(
                    "annotations.{}: {severity:?} is not one of {}",
                    keys::SEVERITY,
                    SEVERITIES.join(", ")
                );
            }
        }
        if let Some(hidden) = self.annotation(keys::HIDDEN_UI) {
            if hidden.parse::<bool>().is_err() {
                bail!(
                    "annotations.{}: {hidden:?} is not true or false",
                    keys::HIDDEN_UI
                );
            }
        }
        if let Some(version) = self.annotation(keys::VERSION) {
            semver::Version::parse(version).with_context(|| {
                format!("annotations.{}: {version:?} is not semver", keys::VERSION)
            })?;
        }
        Ok(())
    }
}

fn validate_rule(rule: &Rule) -> Result<()> {
    validate_list("apiGroups", &rule.api_groups, |s| s == "*")?;
    validate_list("apiVersions", &rule.api_versions, |s| s == "*")?;
    validate_list("operations", &rule.operations, |o| *o == Operation::All)?;
    if rule.resources.is_empty() {
        bail!("resources: must list at least one resource");
    }
    validate_resources(&rule.resources).context("resources")
}

/// A rule list needs at least one item, and `*` excludes every other item.
fn validate_list<T>(field: &str, items: &[T], is_wildcard: impl Fn(&T) -> bool) -> Result<()> {
    if items.is_empty() {
        bail!("{field}: must list at least one item");
    }
    if items.len() > 1 && items.iter().any(is_wildcard) {
        bail!("{field}: no other item may be listed with '*'");
    }
    Ok(())
}

/// Kubernetes' admissionregistration resource rules (policy-evaluator applies
/// the same): `x/*` excludes other `x/...`, `*/y` excludes other `.../y`,
/// `*/*` stands alone, and `*` excludes plain resources.
fn validate_resources(resources: &[String]) -> Result<()> {
    let mut any_subresource_of: HashSet<&str> = HashSet::new();
    let mut subresource_of_any: HashSet<&str> = HashSet::new();
    let mut has_star = false;
    let mut has_plain = false;
    for resource in resources {
        if resource.is_empty() {
            bail!("an empty resource is not allowed");
        }
        if resource == "*/*" && resources.len() > 1 {
            bail!("'*/*' must not be listed with other resources");
        }
        let Some((res, sub)) = resource.split_once('/') else {
            if resource == "*" {
                has_star = true;
            } else {
                has_plain = true;
            }
            continue;
        };
        if any_subresource_of.contains(res) {
            bail!("'{res}/*' is listed, so {resource} must not be");
        }
        if subresource_of_any.contains(sub) {
            bail!("'*/{sub}' is listed, so {resource} must not be");
        }
        if sub == "*" {
            any_subresource_of.insert(res);
        }
        if res == "*" {
            subresource_of_any.insert(sub);
        }
    }
    if has_star && has_plain {
        bail!("'*' is listed, so no other resource without subresource may be");
    }
    Ok(())
}

/// The `(apiVersion, kind)` pairs a policy may read through `kubernetes/*`
/// (`contextAwareResources`): from `metadata_file` when given, else from the
/// module's embedded metadata, else none. Granted only with
/// `--allow-context-aware`, as kwctl. Only that key is read, so a partial
/// metadata file, or metadata a newer kwctl annotated with keys this
/// [`Metadata`] does not know, still grants what it lists.
pub fn context_aware_resources(
    module: &[u8],
    metadata_file: Option<&Path>,
) -> Result<BTreeSet<(String, String)>> {
    let document: Option<serde_json::Value> = match metadata_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read metadata {}", path.display()))?;
            Some(
                serde_yaml_ng::from_str(&text)
                    .with_context(|| format!("invalid metadata {}", path.display()))?,
            )
        }
        // A module given as WAT text has no custom sections.
        None if !module.starts_with(b"\0asm") => None,
        None => custom_section(module, METADATA_SECTION)?
            .map(serde_json::from_slice)
            .transpose()
            .with_context(|| format!("invalid JSON in the module's {METADATA_SECTION} section"))?,
    };
    let resources: BTreeSet<ContextAwareResource> = document
        .as_ref()
        .and_then(|d| d.get("contextAwareResources"))
        .map(|r| serde_json::from_value(r.clone()))
        .transpose()
        .context("invalid contextAwareResources")?
        .unwrap_or_default();
    Ok(resources
        .into_iter()
        .map(|r| (r.api_version, r.kind))
        .collect())
}

/// Contents of the first custom section called `name`, if any.
pub fn custom_section<'a>(module: &'a [u8], name: &str) -> Result<Option<&'a [u8]>> {
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        if let wasmparser::Payload::CustomSection(reader) =
            payload.context("cannot parse the wasm module")?
        {
            if reader.name() == name {
                return Ok(Some(reader.data()));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
rules:
- apiGroups: [""]
  apiVersions: ["v1"]
  resources: ["pods"]
  operations: ["CREATE"]
mutating: false
"#;

    fn with_rule(rule: &str) -> String {
        format!("rules:\n- {rule}\nmutating: false\n")
    }

    #[test]
    fn defaults_match_policy_evaluator() {
        let m = Metadata::from_yaml(MINIMAL).unwrap();
        assert!(m.background_audit);
        assert_eq!(m.execution_mode, ExecutionMode::KubewardenWapc);
        assert_eq!(m.policy_type, PolicyType::Kubernetes);
        assert!(m.context_aware_resources.is_empty());
        assert_eq!(m.protocol_version, None);
        assert_eq!(m.host_capabilities, None);
    }

    #[test]
    fn json_keys_in_kwctl_order() {
        let mut m = Metadata::from_yaml(MINIMAL).unwrap();
        m.protocol_version = Some(ProtocolVersion::V1);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"{"protocolVersion":"v1","rules":[{"apiGroups":[""],"apiVersions":["v1"],"resources":["pods"],"operations":["CREATE"]}],"mutating":false,"backgroundAudit":true,"executionMode":"kubewarden-wapc","policyType":"kubernetes","contextAwareResources":[]}"#
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = Metadata::from_yaml(&format!("{MINIMAL}contextAware: false\n")).unwrap_err();
        assert!(format!("{err:#}").contains("contextAware"), "{err:#}");
    }

    #[test]
    fn rule_lists_must_not_be_empty() {
        for (rule, field) in [
            r#"{apiGroups: [], apiVersions: [v1], resources: [pods], operations: [CREATE]}"#,
            r#"{apiGroups: [""], apiVersions: [], resources: [pods], operations: [CREATE]}"#,
            r#"{apiGroups: [""], apiVersions: [v1], resources: [], operations: [CREATE]}"#,
            r#"{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: []}"#,
        ]
        .iter()
        .zip(["apiGroups", "apiVersions", "resources", "operations"])
        {
            let err = format!("{:#}", Metadata::from_yaml(&with_rule(rule)).unwrap_err());
            assert!(err.contains("rules[0]") && err.contains(field), "{err}");
        }
    }

    #[test]
    fn star_must_be_alone() {
        for rule in [
            r#"{apiGroups: ["", "*"], apiVersions: [v1], resources: [pods], operations: [CREATE]}"#,
            r#"{apiGroups: [""], apiVersions: ["*", v1], resources: [pods], operations: [CREATE]}"#,
            r#"{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: ["*", CREATE]}"#,
        ] {
            let err = format!("{:#}", Metadata::from_yaml(&with_rule(rule)).unwrap_err());
            assert!(err.contains("'*'"), "{err}");
        }
        let ok = r#"{apiGroups: ["*"], apiVersions: ["*"], resources: ["*"], operations: ["*"]}"#;
        Metadata::from_yaml(&with_rule(ok)).unwrap();
    }

    #[test]
    fn unknown_operation_is_an_error() {
        let rule =
            r#"{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [PATCH]}"#;
        assert!(Metadata::from_yaml(&with_rule(rule)).is_err());
    }

    #[test]
    fn resource_exclusivity_rules() {
        let bad = [
            vec!["pods/*", "pods/log"],
            vec!["*/status", "pods/status"],
            vec!["*/*", "pods"],
            vec!["*", "pods"],
            vec![""],
        ];
        for resources in bad {
            let owned: Vec<String> = resources.iter().map(|s| s.to_string()).collect();
            assert!(validate_resources(&owned).is_err(), "{resources:?}");
        }
        let good = [
            vec!["pods", "pods/ephemeralcontainers"],
            vec!["*", "pods/status"],
            vec!["*/*"],
            vec!["pods/*", "deployments"],
        ];
        for resources in good {
            let owned: Vec<String> = resources.iter().map(|s| s.to_string()).collect();
            validate_resources(&owned).unwrap();
        }
    }

    #[test]
    fn annotation_values_are_checked() {
        let m = |k: &str, v: &str| format!("{MINIMAL}annotations:\n  {k}: \"{v}\"\n");
        assert!(Metadata::from_yaml(&m(keys::SEVERITY, "urgent")).is_err());
        assert!(Metadata::from_yaml(&m(keys::HIDDEN_UI, "yes")).is_err());
        assert!(Metadata::from_yaml(&m(keys::VERSION, "1.0")).is_err());
        Metadata::from_yaml(&m(keys::SEVERITY, "critical")).unwrap();
        Metadata::from_yaml(&m(keys::HIDDEN_UI, "false")).unwrap();
        Metadata::from_yaml(&m(keys::VERSION, "1.0.0-rc.1")).unwrap();
    }

    #[test]
    fn minimum_kubewarden_version_is_semver() {
        assert!(
            Metadata::from_yaml(&format!("{MINIMAL}minimumKubewardenVersion: banana\n")).is_err()
        );
        let m =
            Metadata::from_yaml(&format!("{MINIMAL}minimumKubewardenVersion: 1.20.0\n")).unwrap();
        assert_eq!(
            m.minimum_kubewarden_version,
            Some(semver::Version::new(1, 20, 0))
        );
    }

    #[test]
    fn context_aware_resources_from_the_module_or_the_file() {
        // A key this Metadata does not know (a newer kwctl) does not matter here.
        let json = br#"{"rules":[],"mutating":true,"newerKwctlKey":1,"contextAwareResources":[{"apiVersion":"v1","kind":"ConfigMap"}]}"#;
        let wasm =
            crate::packaging::annotate::embed(&wat::parse_str("(module)").unwrap(), json).unwrap();
        let set = context_aware_resources(&wasm, None).unwrap();
        assert_eq!(
            set.into_iter().collect::<Vec<_>>(),
            [("v1".to_string(), "ConfigMap".to_string())]
        );
        let plain = wat::parse_str("(module)").unwrap();
        assert!(context_aware_resources(&plain, None).unwrap().is_empty());
        assert!(context_aware_resources(b"(module)", None)
            .unwrap()
            .is_empty());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.yml");
        std::fs::write(
            &path,
            "contextAwareResources:\n- apiVersion: tmax.io/v1\n  kind: RegistrySecurityPolicy\n",
        )
        .unwrap();
        let set = context_aware_resources(&wasm, Some(&path)).unwrap();
        assert!(set.contains(&(
            "tmax.io/v1".to_string(),
            "RegistrySecurityPolicy".to_string()
        )));
        assert_eq!(set.len(), 1, "the file wins over the embedded metadata");
    }

    #[test]
    fn truncated_module_is_an_error() {
        let mut wasm =
            crate::packaging::annotate::embed(&wat::parse_str("(module)").unwrap(), b"{}").unwrap();
        wasm.truncate(wasm.len() - 1);
        assert!(custom_section(&wasm, "y").is_err());
    }

    #[test]
    fn module_without_section_has_no_metadata() {
        let module = wat::parse_str("(module)").unwrap();
        assert_eq!(Metadata::from_module(&module).unwrap(), None);
        assert!(Metadata::from_module(b"not wasm").is_err());
    }

    /// The repository's own metadata.yml: every workload kind, the
    /// ephemeral-containers subresource, and the annotations Artifact Hub needs.
    #[test]
    fn repository_metadata_is_complete() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../metadata.yml");
        let m = Metadata::from_yaml_file(&path).unwrap();
        let covered: BTreeSet<(String, String)> = m
            .rules
            .iter()
            .flat_map(|r| {
                assert_eq!(r.operations, vec![Operation::Create, Operation::Update]);
                assert_eq!(r.api_versions, vec!["v1".to_string()]);
                r.api_groups
                    .iter()
                    .flat_map(move |g| r.resources.iter().map(move |res| (g.clone(), res.clone())))
            })
            .collect();
        let expected: BTreeSet<(String, String)> = [
            ("", "pods"),
            ("", "pods/ephemeralcontainers"),
            ("", "replicationcontrollers"),
            ("", "podtemplates"),
            ("apps", "deployments"),
            ("apps", "replicasets"),
            ("apps", "statefulsets"),
            ("apps", "daemonsets"),
            ("batch", "jobs"),
            ("batch", "cronjobs"),
            ("apps.openshift.io", "deploymentconfigs"),
        ]
        .iter()
        .map(|(g, r)| (g.to_string(), r.to_string()))
        .collect();
        assert_eq!(covered, expected);
        assert!(m.mutating);
        assert!(m.background_audit);
        assert_eq!(m.execution_mode, ExecutionMode::KubewardenWapc);
        assert_eq!(m.policy_type, PolicyType::Kubernetes);
        assert_eq!(m.context_aware_resources.len(), 5);
        let caps = m.host_capabilities.as_ref().unwrap();
        assert!(caps.contains("oci/v2/verify") && !caps.contains("notary/v1/signed_digest"));
        assert_eq!(m.annotation(keys::VERSION), Some(env!("CARGO_PKG_VERSION")));
        for key in [
            keys::TITLE,
            keys::DESCRIPTION,
            keys::AUTHOR,
            keys::URL,
            keys::SOURCE,
            keys::LICENSE,
            keys::OCI_URL,
            keys::SEVERITY,
            keys::CATEGORY,
            keys::GITHUB_RELEASE_TAG,
            keys::ARTIFACTHUB_DISPLAY_NAME,
            keys::ARTIFACTHUB_RESOURCES,
            keys::ARTIFACTHUB_KEYWORDS,
        ] {
            assert!(m.annotation(key).is_some_and(|v| !v.is_empty()), "{key}");
        }
        assert_eq!(
            m.annotation(keys::GITHUB_RELEASE_TAG),
            Some(format!("v{}", env!("CARGO_PKG_VERSION")).as_str())
        );
    }
}
