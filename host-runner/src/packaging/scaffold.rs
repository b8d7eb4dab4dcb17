//! The Kubewarden policy resource that installs imagegate, as `kwctl scaffold
//! manifest` writes it (`imagegate scaffold`).
//!
//! Rules, `mutating`, `backgroundAudit` and (with `--allow-context-aware`)
//! `contextAwareResources` come from the metadata, read from the annotated
//! module (what will actually run) or from metadata.yml; settings come from a
//! YAML file. The resource name is the policy title (RFC 1123 checked) and
//! the severity/category annotations are copied, as kwctl does.

use anyhow::{bail, Result};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

use crate::packaging::metadata::{keys, ContextAwareResource, Metadata, Rule};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    ClusterAdmissionPolicy,
    AdmissionPolicy,
}

/// What `imagegate scaffold` writes: where the module is, which resource, its name.
#[derive(Debug, Clone)]
pub struct Target {
    /// spec.module: registry://host/repo:tag (or @sha256:...), https://, file://.
    pub module: String,
    pub kind: Kind,
    /// Resource name; default: the policy title.
    pub title: Option<String>,
    /// Grant the metadata's contextAwareResources.
    pub allow_context_aware: bool,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct PolicyResource {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: ObjectMeta,
    pub spec: Spec,
}

#[derive(Serialize, Debug)]
pub struct ObjectMeta {
    pub name: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    pub module: String,
    pub settings: serde_yaml_ng::Mapping,
    pub rules: Vec<Rule>,
    pub mutating: bool,
    /// Omitted when true (the CRD default), as kwctl does.
    #[serde(skip_serializing_if = "is_true")]
    pub background_audit: bool,
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub context_aware_resources: BTreeSet<ContextAwareResource>,
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Settings YAML: a mapping, or empty/null (= no settings).
pub fn parse_settings(text: &str) -> Result<serde_yaml_ng::Mapping> {
    match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text)? {
        serde_yaml_ng::Value::Mapping(m) => Ok(m),
        serde_yaml_ng::Value::Null => Ok(serde_yaml_ng::Mapping::new()),
        other => bail!("settings must be a mapping, not {other:?}"),
    }
}

/// The policy resource for `metadata` with `settings`.
pub fn manifest(
    metadata: &Metadata,
    target: &Target,
    settings: serde_yaml_ng::Mapping,
) -> Result<PolicyResource> {
    let name = match &target.title {
        Some(t) => t.clone(),
        None => metadata.required_annotation(keys::TITLE)?.to_string(),
    };
    validate_name(&name)?;
    let annotations = [keys::SEVERITY, keys::CATEGORY]
        .into_iter()
        .filter_map(|k| Some((k.to_string(), metadata.annotation(k)?.to_string())))
        .collect();
    let context_aware_resources = match target.kind {
        Kind::ClusterAdmissionPolicy if target.allow_context_aware => {
            metadata.context_aware_resources.clone()
        }
        Kind::ClusterAdmissionPolicy => {
            let has_sources = settings
                .get("sources")
                .is_some_and(|s| !s.is_null() && s.as_mapping().is_none_or(|m| !m.is_empty()));
            if has_sources && !metadata.context_aware_resources.is_empty() {
                eprintln!(
                    "warning: contextAwareResources left empty; settings `sources` need them: \
                     review them with care and pass --allow-context-aware"
                );
            }
            BTreeSet::new()
        }
        Kind::AdmissionPolicy => BTreeSet::new(),
    };
    Ok(PolicyResource {
        api_version: "policies.kubewarden.io/v1",
        kind: match target.kind {
            Kind::ClusterAdmissionPolicy => "ClusterAdmissionPolicy",
            Kind::AdmissionPolicy => "AdmissionPolicy",
        },
        metadata: ObjectMeta { name, annotations },
        spec: Spec {
            module: target.module.clone(),
            settings,
            rules: metadata.rules.clone(),
            mutating: metadata.mutating,
            background_audit: metadata.background_audit,
            context_aware_resources,
        },
    })
}

/// RFC 1123 label: namespaces, Service names, each part of an object name.
pub fn is_dns_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && l.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

/// RFC 1123 DNS subdomain, as Kubernetes requires of object names.
fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 253 || !name.split('.').all(is_dns_label) {
        bail!(
            "invalid name {name:?}: must conform to RFC 1123 (lowercase alphanumerics, '-' and '.', \
             starting and ending with an alphanumeric)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(module: &str) -> Target {
        Target {
            module: module.to_string(),
            kind: Kind::ClusterAdmissionPolicy,
            title: None,
            allow_context_aware: false,
        }
    }

    fn metadata() -> Metadata {
        Metadata::from_yaml_file(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../metadata.yml"),
        )
        .unwrap()
    }

    const SETTINGS: &str =
        "rules:\n- name: corp\n  images: [\"registry.corp.example/**\"]\n  action: allow\n";

    #[test]
    fn cluster_admission_policy_from_metadata_and_settings() {
        let m = metadata();
        let a = target("registry://ghcr.io/imagegate/policies/imagegate:v0.1.0");
        let r = manifest(&m, &a, parse_settings(SETTINGS).unwrap()).unwrap();
        let v: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&serde_yaml_ng::to_string(&r).unwrap()).unwrap();
        assert_eq!(v["apiVersion"], "policies.kubewarden.io/v1");
        assert_eq!(v["kind"], "ClusterAdmissionPolicy");
        assert_eq!(v["metadata"]["name"], "imagegate");
        assert_eq!(
            v["metadata"]["annotations"]["io.kubewarden.policy.severity"],
            "high"
        );
        assert_eq!(
            v["metadata"]["annotations"]["io.kubewarden.policy.category"],
            "Secure supply chain"
        );
        assert_eq!(
            v["spec"]["module"],
            "registry://ghcr.io/imagegate/policies/imagegate:v0.1.0"
        );
        assert_eq!(v["spec"]["mutating"], true);
        assert_eq!(v["spec"]["settings"]["rules"][0]["name"], "corp");
        let rules: Vec<Rule> = serde_yaml_ng::from_value(v["spec"]["rules"].clone()).unwrap();
        assert_eq!(rules, m.rules);
        assert!(
            v["spec"].get("backgroundAudit").is_none(),
            "true is the default, omitted"
        );
        assert!(
            v["spec"].get("contextAwareResources").is_none(),
            "not granted without the flag"
        );
    }

    #[test]
    fn context_aware_resources_only_when_allowed() {
        let m = metadata();
        let mut a = target("registry://x/y:z");
        a.allow_context_aware = true;
        let r = manifest(&m, &a, Default::default()).unwrap();
        assert_eq!(r.spec.context_aware_resources, m.context_aware_resources);
        a.kind = Kind::AdmissionPolicy;
        let r = manifest(&m, &a, Default::default()).unwrap();
        assert_eq!(r.kind, "AdmissionPolicy");
        assert!(
            r.spec.context_aware_resources.is_empty(),
            "namespaced policies cannot have them"
        );
    }

    #[test]
    fn names_and_settings_are_checked() {
        let m = metadata();
        for bad in ["Imagegate", "-x", "a_b", ""] {
            let a = Target {
                title: Some(bad.to_string()),
                ..target("registry://x/y:z")
            };
            assert!(manifest(&m, &a, Default::default()).is_err(), "{bad}");
        }
        let a = Target {
            title: Some("gate.prod-1".to_string()),
            ..target("registry://x/y:z")
        };
        let r = manifest(&m, &a, Default::default()).unwrap();
        assert_eq!(r.metadata.name, "gate.prod-1");
        assert!(parse_settings("- a\n- b\n").is_err());
        assert!(parse_settings("").unwrap().is_empty());
    }
}
