//! OpenShift image policy -> native settings.
//!
//! Two documents are understood:
//! - registries allowed for import: `Image` (`config.openshift.io/v1`,
//!   `spec.allowedRegistriesForImport`) or OpenShift 3 master-config's
//!   `imagePolicyConfig.allowedRegistriesForImport`: `domainName` with `*`/`?`
//!   wildcards and an optional `:port`, `insecure` choosing port 80 instead of 443;
//! - the ImagePolicy admission plugin (`kind: ImagePolicyConfig`, or nested in
//!   master-config `admissionConfig.pluginConfig["openshift.io/ImagePolicy"]`):
//!   `executionRules` (reject, matchRegistries, matchIntegratedRegistry,
//!   matchImageLabels / matchDockerImageLabels, matchImageAnnotations,
//!   skipOnResolutionFailure, onResources) and `resolveImages`.
//!   Reject rules win over accept rules; any accept rule makes the default deny.

use super::{describe, list_at, str_at, strings_at, unknown_fields, Converted, Options, Out};
use serde_json::{json, Value};

/// The integrated registry's service host in OpenShift 4.
pub const DEFAULT_INTEGRATED_REGISTRY: &str = "image-registry.openshift-image-registry.svc:5000";

pub fn convert_documents(docs: &[Value], options: &Options) -> Result<Converted, String> {
    let mut out = Out::default();
    let mut allow_lists = 0;
    let mut accept_rules = false;
    let mut converted = false;
    for doc in docs {
        let at = describe(doc);
        let mut used = false;
        for pointer in [
            "/spec/allowedRegistriesForImport",
            "/imagePolicyConfig/allowedRegistriesForImport",
        ] {
            if let Some(list) = doc.pointer(pointer).and_then(Value::as_array) {
                used = true;
                allow_lists += 1;
                for (i, entry) in list.iter().enumerate() {
                    allowed_registry(
                        entry,
                        &format!("{at}: {}[{i}]", &pointer[1..].replace('/', ".")),
                        &mut out,
                    );
                }
            }
        }
        let plugin = if str_at(doc, "/kind") == Some("ImagePolicyConfig") {
            Some(doc)
        } else {
            doc.pointer("/admissionConfig/pluginConfig/openshift.io~1ImagePolicy/configuration")
        };
        if let Some(config) = plugin {
            used = true;
            accept_rules |= image_policy(config, &at, options, &mut out)?;
        }
        if !used {
            out.note(
                at,
                "neither allowedRegistriesForImport nor an ImagePolicyConfig; ignored",
            );
        }
        converted |= used;
    }
    if converted {
        // OpenShift's nodes run CRI-O, which resolves a short name through
        // registries.conf (aliases, unqualified-search-registries), not as
        // Docker Hub the way these rules read it.
        out.set("requireFullyQualified", json!(true));
        out.note(
            "requireFullyQualified",
            "OpenShift nodes run CRI-O, which resolves short names (nginx, library/nginx) through its own aliases and search \
             registries: they are denied (stricter; OpenShift's image policy reads them as docker.io)",
        );
    }
    if allow_lists > 0 {
        out.note(
            "allowedRegistriesForImport",
            "OpenShift applies this list to image stream imports; imagegate applies it to the images workloads run (stricter)",
        );
    }
    if allow_lists > 0 && accept_rules {
        out.note(
            "allowedRegistriesForImport + executionRules",
            "both lists are merged: an image allowed by either is admitted (looser than applying both)",
        );
    }
    if allow_lists > 0 || accept_rules {
        out.set("unmatched", json!("deny"));
    }
    Ok(out.done())
}

fn allowed_registry(entry: &Value, at: &str, out: &mut Out) {
    let Some(domain) = str_at(entry, "/domainName") else {
        out.note(at, "no domainName; not converted");
        return;
    };
    let insecure = entry["insecure"].as_bool().unwrap_or(false);
    match registry_patterns(domain, insecure) {
        Ok((patterns, note)) => {
            if let Some(n) = note {
                out.note(format!("{at} {domain:?}"), n);
            }
            let index = out.rule_count();
            out.push(
                "rules",
                json!({"name": format!("openshift[{index}] {domain}{}", if insecure {" (insecure)"} else {""}), "images": patterns}),
            );
        }
        Err(why) => out.note(format!("{at} {domain:?}"), why),
    }
}

/// `domainName` (+ `insecure`) -> host patterns `host[:port]/**`.
pub fn registry_patterns(
    domain: &str,
    insecure: bool,
) -> Result<(Vec<String>, Option<String>), String> {
    let (host, port) = match domain.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (domain, None),
    };
    let host = host.to_ascii_lowercase();
    let host_ok = host == "*"
        || (!host.contains('?') && !host.strip_prefix("*.").unwrap_or(&host).contains('*'));
    if !host_ok {
        return Err("imagegate host wildcards are `*` or a leading `*.`; this rule is not converted (stricter: its registries are denied)".to_string());
    }
    let mut note = None;
    let patterns = match port {
        Some("*") => vec![format!("{host}:*/**")],
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            if p == "443" {
                vec![format!("{host}/**")]
            } else {
                vec![format!("{host}:{p}/**")]
            }
        }
        Some(_) => {
            return Err(
                "port wildcards other than `*` cannot be expressed; not converted (stricter)"
                    .to_string(),
            )
        }
        None => {
            if host == "*" {
                note = Some("`*` without a port means any host on port 443 in OpenShift; imagegate's `*` host also matches other ports (looser)".to_string());
            }
            if insecure {
                vec![format!("{host}/**"), format!("{host}:80/**")]
            } else {
                vec![format!("{host}/**")]
            }
        }
    };
    Ok((patterns, note))
}

/// One ImagePolicyConfig. Returns whether it has an accept rule.
fn image_policy(
    config: &Value,
    at: &str,
    options: &Options,
    out: &mut Out,
) -> Result<bool, String> {
    let at = format!("{at}: ImagePolicyConfig");
    unknown_fields(
        out,
        &at,
        config,
        &[
            "kind",
            "apiVersion",
            "resolveImages",
            "executionRules",
            "resolutionRules",
        ],
    );
    let resolve = str_at(config, "/resolveImages").unwrap_or("Attempt");
    let pin = match resolve {
        "AttemptRewrite" | "RequiredRewrite" => {
            if resolve == "AttemptRewrite" {
                out.note(format!("{at}.resolveImages"), "AttemptRewrite: imagegate pins every allowed image to its digest and denies when the digest cannot be resolved (stricter)");
            }
            true
        }
        "Required" => {
            out.note(format!("{at}.resolveImages"), "Required without rewrite: imagegate resolves and also rewrites the image to its digest (pinDigest)");
            true
        }
        "Attempt" | "DoNotAttempt" => false,
        other => return Err(format!("{at}.resolveImages: unknown value {other:?}")),
    };
    if config.get("resolutionRules").is_some() {
        out.note(format!("{at}.resolutionRules"), "per-resource resolution rules are not converted; resolveImages applies to every workload");
    }
    let integrated = options
        .integrated_registry
        .as_deref()
        .unwrap_or(DEFAULT_INTEGRATED_REGISTRY);
    let mut any_accept = false;
    for (i, rule) in list_at(config, "/executionRules").iter().enumerate() {
        let rat = format!("{at}.executionRules[{i}]");
        unknown_fields(
            out,
            &rat,
            rule,
            &[
                "name",
                "onResources",
                "reject",
                "matchIntegratedRegistry",
                "matchRegistries",
                "matchImageLabels",
                "matchDockerImageLabels",
                "matchImageAnnotations",
                "skipOnResolutionFailure",
                "ignoreNamespaceOverride",
                "invertMatch",
            ],
        );
        let name = str_at(rule, "/name").unwrap_or("unnamed");
        let reject = rule["reject"].as_bool().unwrap_or(false);
        if rule["invertMatch"].as_bool().unwrap_or(false) {
            out.note(
                format!("{rat}.invertMatch"),
                "cannot be expressed; rule not converted",
            );
            continue;
        }
        if !list_at(rule, "/matchImageAnnotations").is_empty() {
            out.note(
                format!("{rat}.matchImageAnnotations"),
                if reject {
                    "annotations of OpenShift Image objects are not visible to imagegate; this reject rule is not converted (looser: flagged images are not rejected)"
                } else {
                    "annotations of OpenShift Image objects are not visible to imagegate; this accept rule is not converted (stricter)"
                },
            );
            continue;
        }
        let mut images: Vec<String> = strings_at(rule, "/matchRegistries", &rat)?
            .iter()
            .map(|r| format!("{}/**", r.to_ascii_lowercase()))
            .collect();
        if rule["matchIntegratedRegistry"].as_bool().unwrap_or(false) {
            if !images.is_empty() {
                out.note(rat.clone(), "matchIntegratedRegistry and matchRegistries both set: OpenShift requires both, imagegate matches either (looser)");
            }
            images.push(format!("{integrated}/**"));
            out.note(format!("{rat}.matchIntegratedRegistry"), format!("the integrated registry is taken to be {integrated} (--integrated-registry to change)"));
        }
        if images.is_empty() {
            images.push("**".to_string());
        }
        let mut native = json!({"name": format!("openshift {name}"), "images": images});
        let mut labels = Vec::new();
        for (k, c) in list_at(rule, "/matchDockerImageLabels").iter().enumerate() {
            match str_at(c, "/key") {
                Some(key) => labels.push(
                    json!({"key": key, "value": c.get("value").cloned().unwrap_or(Value::Null)}),
                ),
                None => return Err(format!("{rat}.matchDockerImageLabels[{k}].key: required")),
            }
        }
        for (k, sel) in list_at(rule, "/matchImageLabels").iter().enumerate() {
            // The 3.x docs write {key, value}; the API type is a LabelSelector.
            if let Some(key) = str_at(sel, "/key") {
                labels.push(
                    json!({"key": key, "value": sel.get("value").cloned().unwrap_or(Value::Null)}),
                );
            }
            if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
                for (key, value) in m {
                    labels.push(json!({"key": key, "value": value}));
                }
            }
            if sel.get("matchExpressions").is_some() {
                out.note(
                    format!("{rat}.matchImageLabels[{k}].matchExpressions"),
                    "label expressions are not converted (only equality)",
                );
            }
        }
        if !labels.is_empty() {
            native["imageLabels"] = json!(labels);
            if rule["skipOnResolutionFailure"].as_bool().unwrap_or(false) {
                native["skipOnResolutionFailure"] = json!(true);
            }
        }
        if reject {
            native["action"] = json!("deny");
            native["priority"] = json!(1);
        } else {
            any_accept = true;
            if pin {
                native["pinDigest"] = json!(true);
            }
        }
        if rule.get("onResources").is_some() {
            out.note(format!("{rat}.onResources"), "imagegate checks every workload kind's images; builds and image streams are not checked");
        }
        if rule.get("ignoreNamespaceOverride").is_some() {
            out.note(format!("{rat}.ignoreNamespaceOverride"), "the namespace annotation alpha.image.policy.openshift.io/ignore-rules is not honoured: rules always apply (stricter)");
        }
        out.push("rules", native);
    }
    Ok(any_accept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_allowed_registries() {
        let doc = json!({"imagePolicyConfig": {"allowedRegistriesForImport": [
            {"domainName": "registry.redhat.io"},
            {"domainName": "*.mydomain.com", "insecure": true},
            {"domainName": "local.registry.corp:5000"}]}});
        let c = convert_documents(&[doc], &Options::default()).unwrap();
        assert_eq!(
            c.settings,
            json!({"rules": [
                {"name": "openshift[0] registry.redhat.io", "images": ["registry.redhat.io/**"]},
                {"name": "openshift[1] *.mydomain.com (insecure)", "images": ["*.mydomain.com/**", "*.mydomain.com:80/**"]},
                {"name": "openshift[2] local.registry.corp:5000", "images": ["local.registry.corp:5000/**"]}],
                "unmatched": "deny", "requireFullyQualified": true})
        );
        assert!(c
            .limitations
            .iter()
            .any(|l| l.at == "requireFullyQualified"));
        let other =
            convert_documents(&[json!({"kind": "ConfigMap"})], &Options::default()).unwrap();
        assert_eq!(
            other.settings,
            json!({}),
            "nothing converted, nothing implied"
        );
    }

    #[test]
    fn domain_wildcards_and_ports() {
        assert_eq!(registry_patterns("*:*", false).unwrap().0, ["*:*/**"]);
        assert!(registry_patterns("*", false).unwrap().1.is_some());
        assert_eq!(
            registry_patterns("quay.io:443", false).unwrap().0,
            ["quay.io/**"]
        );
        assert!(registry_patterns("reg?.io", false).is_err());
        assert!(registry_patterns("registry.*.io", false).is_err());
        assert!(registry_patterns("reg.io:50*", false).is_err());
    }

    #[test]
    fn documented_execution_rules() {
        let master = json!({"admissionConfig": {"pluginConfig": {"openshift.io/ImagePolicy": {"configuration": {
            "kind": "ImagePolicyConfig", "apiVersion": "v1", "resolveImages": "AttemptRewrite",
            "executionRules": [
                {"name": "execution-denied", "onResources": [{"resource": "pods"}, {"resource": "builds"}],
                 "reject": true, "matchImageAnnotations": [{"key": "images.openshift.io/deny-execution", "value": "true"}],
                 "skipOnResolutionFailure": true},
                {"name": "allow-images-from-internal-registry", "onResources": [{"resource": "pods"}], "matchIntegratedRegistry": true},
                {"name": "allow-images-from-dockerhub", "onResources": [{"resource": "pods"}], "matchRegistries": ["docker.io"]}]}}}}});
        let c = convert_documents(&[master], &Options::default()).unwrap();
        assert_eq!(
            c.settings,
            json!({"rules": [
                {"name": "openshift allow-images-from-internal-registry", "images": [format!("{DEFAULT_INTEGRATED_REGISTRY}/**")], "pinDigest": true},
                {"name": "openshift allow-images-from-dockerhub", "images": ["docker.io/**"], "pinDigest": true}],
                "unmatched": "deny", "requireFullyQualified": true})
        );
        assert!(c
            .limitations
            .iter()
            .any(|l| l.note.contains("looser: flagged images are not rejected")));
    }

    #[test]
    fn label_rules_and_reject_only_default_allow() {
        let config = json!({"kind": "ImagePolicyConfig", "executionRules": [
            {"name": "no-root-labelled", "reject": true, "matchDockerImageLabels": [{"key": "run-as-root", "value": "true"}],
             "skipOnResolutionFailure": true},
            {"name": "sel", "reject": true, "matchImageLabels": [{"matchLabels": {"tier": "dev"}}]}]});
        let c = convert_documents(
            &[config],
            &Options {
                integrated_registry: None,
            },
        )
        .unwrap();
        assert_eq!(
            c.settings,
            json!({"rules": [
                {"name": "openshift no-root-labelled", "images": ["**"], "imageLabels": [{"key": "run-as-root", "value": "true"}],
                 "skipOnResolutionFailure": true, "action": "deny", "priority": 1},
                {"name": "openshift sel", "images": ["**"], "imageLabels": [{"key": "tier", "value": "dev"}], "action": "deny", "priority": 1}],
                "requireFullyQualified": true}),
            "only reject rules: unmatched stays allow (the default)"
        );
    }
}
