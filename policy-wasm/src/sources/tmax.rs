//! tmax image-validation-webhook -> native settings.
//!
//! Inputs: the whitelist ConfigMap `registry-system/image-validation-webhook-whitelist`
//! (`whitelist-images`, `whitelist-namespaces`: newline-separated),
//! `ClusterRegistrySecurityPolicy` and `RegistrySecurityPolicy` (`tmax.io/v1`,
//! `spec.registries[]`), and the Secrets their `cosignKeyRef: k8s://<ns>/<name>`
//! point to (public keys in `data["cosign.pub"]`).
//!
//! The five flows of the tmax documentation:
//! 1. whitelisted image or namespace -> valid: `exemptImages` / `exemptNamespaces`;
//! 2. no policy -> valid: no rules, `unmatched: allow`;
//! 3. policy exists, registry not in it -> invalid: `unmatched: deny`;
//! 4. `signCheck: false` -> valid: an allow rule without `verify`;
//! 5. `signCheck: true` -> Notary, then cosign, any listed signer suffices:
//!    `verify.anyOf: [notary, cosign per signer]`.
//!
//! Cluster policies are read before namespace policies and the first policy
//! listing the registry decides, as in tmax (equal priorities: first listed wins).

use super::{describe, list_at, str_at, strings_at, unknown_fields, Converted, Out};
use base64::Engine as _;
use serde_json::{json, Value};

pub const API_VERSION: &str = "tmax.io/v1";
pub const CLUSTER_POLICY: &str = "ClusterRegistrySecurityPolicy";
pub const NAMESPACE_POLICY: &str = "RegistrySecurityPolicy";
pub const WHITELIST_NAMESPACE: &str = "registry-system";
pub const WHITELIST_NAME: &str = "image-validation-webhook-whitelist";

/// Most cosign key references one registry entry converts to: every signer
/// is a check over every key of the Secret, and both lists are read from the
/// cluster at request time, so their product is capped.
const MAX_KEY_REFERENCES: usize = 64;

/// tmax's own text for flow 3, with imagegate's `{image}` placeholder.
pub const NOT_IN_POLICY: &str =
    "Image '{image}' does not meet registry security policy. Please check the RegistrySecurityPolicy";

/// Everything tmax reads for one admission request.
#[derive(Debug, Default)]
pub struct Inputs<'a> {
    pub whitelist: Option<&'a Value>,
    pub cluster_policies: Vec<&'a Value>,
    /// RegistrySecurityPolicies of the request's namespace (at request time),
    /// or of every namespace (CLI; see the limitation it produces).
    pub namespace_policies: Vec<&'a Value>,
    /// Secrets that `cosignKeyRef`s may point to.
    pub secrets: Vec<&'a Value>,
}

/// CLI entry: sorts the documents by kind.
pub fn convert_documents(docs: &[Value]) -> Result<Converted, String> {
    let mut inputs = Inputs::default();
    let mut out = Out::default();
    for doc in docs {
        match str_at(doc, "/kind") {
            Some("ConfigMap") if str_at(doc, "/metadata/name") == Some(WHITELIST_NAME) => {
                inputs.whitelist = Some(doc)
            }
            Some(CLUSTER_POLICY) => inputs.cluster_policies.push(doc),
            Some(NAMESPACE_POLICY) => inputs.namespace_policies.push(doc),
            Some("Secret") => inputs.secrets.push(doc),
            _ => out.note(describe(doc), "not a tmax document, ignored"),
        }
    }
    let namespaces: Vec<&str> = inputs
        .namespace_policies
        .iter()
        .filter_map(|p| str_at(p, "/metadata/namespace"))
        .collect();
    if !namespaces.is_empty() {
        out.note(
            "RegistrySecurityPolicy",
            format!(
                "namespaced policies (namespaces {}) become cluster-wide rules in static settings: \
                 stricter in namespaces that have no policy of their own; use `sources: {{tmax: true}}` \
                 to read them per namespace at request time",
                namespaces.join(", ")
            ),
        );
    }
    if inputs.whitelist.is_some()
        || !inputs.cluster_policies.is_empty()
        || !inputs.namespace_policies.is_empty()
    {
        // What the platform implies, not the objects: static settings only
        // (at request time the settings as written decide).
        out.set("requireFullyQualified", json!(true));
        out.note(
            "requireFullyQualified",
            "HyperCloud, tmax's platform, runs CRI-O, which resolves short names (nginx, library/nginx) through its own \
             aliases and search registries: they are denied (stricter; with `sources: {tmax: true}` set it yourself)",
        );
    }
    convert_into(&inputs, out)
}

/// Request-time and CLI conversion.
pub fn convert(inputs: &Inputs) -> Result<Converted, String> {
    convert_into(inputs, Out::default())
}

fn convert_into(inputs: &Inputs, mut out: Out) -> Result<Converted, String> {
    if let Some(cm) = inputs.whitelist {
        whitelist(cm, &mut out)?;
    }
    let policies = inputs
        .cluster_policies
        .iter()
        .chain(&inputs.namespace_policies);
    let mut any_policy = false;
    for policy in policies {
        any_policy = true;
        let at = describe(policy);
        unknown_fields(
            &mut out,
            &format!("{at}: spec"),
            &policy["spec"],
            &["registries"],
        );
        for (i, spec) in list_at(policy, "/spec/registries").iter().enumerate() {
            registry_rule(
                spec,
                &format!("{at}: spec.registries[{i}]"),
                inputs,
                &mut out,
            )?;
        }
    }
    // Flow 2 (no policy -> valid) and flow 3 (registry not listed -> invalid).
    out.set(
        "unmatched",
        json!(if any_policy { "deny" } else { "allow" }),
    );
    if any_policy {
        out.set("unmatchedMessage", json!(NOT_IN_POLICY));
    }
    Ok(out.done())
}

fn whitelist(cm: &Value, out: &mut Out) -> Result<(), String> {
    let at = describe(cm);
    for (field, legacy) in [
        ("whitelist-images", "whitelist-image.json"),
        ("whitelist-namespaces", "whitelist-namespace.json"),
    ] {
        if cm.pointer(&format!("/data/{legacy}")).is_some() {
            out.note(
                format!("{at}: data.{legacy}"),
                format!("legacy JSON whitelist not converted: tmax rewrites it into `{field}` on start; convert the rewritten ConfigMap"),
            );
        }
    }
    for entry in lines(str_at(cm, "/data/whitelist-namespaces")) {
        out.push("exemptNamespaces", json!(entry));
    }
    for entry in lines(str_at(cm, "/data/whitelist-images")) {
        match whitelist_patterns(entry) {
            Ok(patterns) => {
                for p in patterns {
                    out.push("exemptImages", json!(p));
                }
            }
            Err(why) => out.note(format!("{at}: data.whitelist-images {entry:?}"), why),
        }
    }
    Ok(())
}

/// tmax splits on `\n` and trims every entry.
fn lines(text: Option<&str>) -> impl Iterator<Item = &str> {
    text.unwrap_or("")
        .split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
}

/// One whitelist entry -> patterns. tmax parses `[host/]name[:tag][@digest]`
/// (a host needs a dot), compares host, tag and digest only when written,
/// and the name literally unless it is exactly `*` (any name).
pub fn whitelist_patterns(entry: &str) -> Result<Vec<String>, String> {
    let (host, rest) = match entry.split_once('/') {
        Some((first, rest)) if is_tmax_host(first) => (Some(first.to_ascii_lowercase()), rest),
        Some((first, _)) if first.contains(':') => {
            return Err(
                "tmax only recognizes hosts with a dot: this entry whitelists nothing there; not converted"
                    .to_string(),
            )
        }
        _ => (None, entry),
    };
    let (name_tag, digest) = match rest.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (rest, None),
    };
    let (name, tag) = match name_tag.split_once(':') {
        Some((n, t)) => (n, Some(t)),
        None => (name_tag, None),
    };
    if name.is_empty() {
        return Err("no image name: tmax rejects this whitelist; not converted".to_string());
    }
    let suffix = format!(
        "{}{}",
        tag.map(|t| format!(":{t}")).unwrap_or_default(),
        digest.map(|d| format!("@{d}")).unwrap_or_default()
    );
    if name == "*" {
        return Ok(vec![match host {
            Some(h) => format!("{h}/**{suffix}"),
            None => format!("**{suffix}"),
        }]);
    }
    if name.contains('*') {
        return Err(
            "tmax compares names literally except a whole `*`: this entry matches no image there; not converted"
                .to_string(),
        );
    }
    Ok(match host {
        Some(h) => vec![format!("{h}/{name}{suffix}")],
        // An omitted host means any host; on Docker Hub a one-component name
        // is normalized to library/<name>, so both forms are listed.
        None if name.contains('/') => vec![format!("*/{name}{suffix}")],
        None => vec![
            format!("*/{name}{suffix}"),
            format!("docker.io/library/{name}{suffix}"),
        ],
    })
}

/// tmax's host group: `[^./]+\.[^/]+`.
fn is_tmax_host(first: &str) -> bool {
    first
        .split_once('.')
        .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
}

fn registry_rule(spec: &Value, at: &str, inputs: &Inputs, out: &mut Out) -> Result<(), String> {
    unknown_fields(
        out,
        at,
        spec,
        &["registry", "notary", "signCheck", "cosignKeyRef", "signer"],
    );
    let Some(registry) = str_at(spec, "/registry") else {
        return Err(format!("{at}.registry: required"));
    };
    if registry.contains('/') || registry.is_empty() {
        out.note(
            format!("{at}.registry {registry:?}"),
            "tmax compares this with the image's host only, so it matches nothing there; not converted",
        );
        return Ok(());
    }
    let registry = registry.to_ascii_lowercase();
    let index = out.rule_count();
    let mut rule = json!({
        "name": format!("tmax[{index}] {registry}"),
        "images": [format!("{registry}/**")],
    });
    if !spec["signCheck"].as_bool().unwrap_or(false) {
        // Flow 4.
        out.push("rules", rule);
        return Ok(());
    }
    let signers = strings_at(spec, "/signer", at)?;
    let mut checks = Vec::new();
    if let Some(server) = str_at(spec, "/notary").filter(|s| !s.is_empty()) {
        if server.starts_with("https://") {
            checks.push(json!({"notary": {
                "server": server,
                "signers": signers.iter().map(|s| json!({"role": format!("targets/{s}")})).collect::<Vec<_>>(),
            }}));
            out.note(
                format!("{at}.notary"),
                "tmax also accepts an image signed by the repository's own targets key (\"Repo Admin\") whatever `signer` lists; \
                 imagegate requires one of the listed delegations (stricter). tmax skips TLS verification of the Notary server; \
                 imagegate verifies it (add caCert for a private CA)",
            );
        } else {
            out.note(
                format!("{at}.notary {server:?}"),
                "not an https:// URL: imagegate does not talk to Notary in clear text; Notary check not converted (stricter: only cosign can admit)",
            );
        }
    }
    match str_at(spec, "/cosignKeyRef").filter(|s| !s.is_empty()) {
        None => {}
        Some(_) if signers.is_empty() => out.note(
            format!("{at}.cosignKeyRef"),
            "no `signer` listed: tmax's cosign check needs a `signer` annotation and never passes; not converted",
        ),
        Some(key_ref) => match cosign_keys(key_ref, inputs) {
            Ok(pems) => {
                let mut names = Vec::new();
                for (k, pem) in pems.into_iter().enumerate() {
                    let name = format!("tmax:{}#{k}", key_ref.trim_start_matches("k8s://"));
                    let keys = out
                        .settings
                        .entry("keys")
                        .or_insert_with(|| json!({}));
                    keys[&name] = json!({"cosign": pem});
                    names.push(name);
                }
                let fit = (MAX_KEY_REFERENCES / names.len().max(1)).max(1);
                if signers.len() > fit {
                    out.note(
                        format!("{at}.signer"),
                        format!(
                            "{} signers x {} keys: only the first {fit} signers are converted (stricter: images signed only for the others are denied)",
                            signers.len(),
                            names.len()
                        ),
                    );
                }
                for signer in signers.iter().take(fit) {
                    checks.push(json!({"cosign": {"keys": names, "annotations": {"signer": signer}}}));
                }
            }
            Err(why) => out.note(
                format!("{at}.cosignKeyRef {key_ref:?}"),
                format!("{why}; cosign check not converted (tmax fails the request in this case)"),
            ),
        },
    }
    if checks.is_empty() {
        // tmax cannot verify anything either: every image of the registry is invalid.
        rule["action"] = json!("deny");
        rule["message"] =
            json!("signCheck is true but no usable Notary server or cosign key is configured");
    } else {
        rule["verify"] = json!({"anyOf": checks});
        rule["message"] = json!(
            "Image '{image}' is not signed by any signer listed in the RegistrySecurityPolicy"
        );
        // tmax rewrites Notary-verified images to the signed digest.
        rule["pinDigest"] = json!(true);
    }
    out.push("rules", rule);
    Ok(())
}

/// The PEM public keys of `k8s://<namespace>/<secret>` (`data["cosign.pub"]`, base64).
fn cosign_keys(key_ref: &str, inputs: &Inputs) -> Result<Vec<String>, String> {
    let path = key_ref
        .strip_prefix("k8s://")
        .ok_or("not of the form k8s://<namespace>/<secret>")?;
    let (ns, name) = match path.split('/').collect::<Vec<_>>()[..] {
        [ns, name] if !ns.is_empty() && !name.is_empty() => (ns, name),
        _ => return Err("not of the form k8s://<namespace>/<secret>".to_string()),
    };
    let secret = inputs
        .secrets
        .iter()
        .find(|s| {
            str_at(s, "/metadata/namespace") == Some(ns)
                && str_at(s, "/metadata/name") == Some(name)
        })
        .ok_or_else(|| format!("Secret {ns}/{name} not found"))?;
    let text = match (
        str_at(secret, "/data/cosign.pub"),
        str_at(secret, "/stringData/cosign.pub"),
    ) {
        (Some(b64), _) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| format!("Secret {ns}/{name}: data.cosign.pub is not base64: {e}"))?;
            String::from_utf8(bytes)
                .map_err(|_| format!("Secret {ns}/{name}: cosign.pub is not text"))?
        }
        (None, Some(text)) => text.to_string(),
        (None, None) => return Err(format!("Secret {ns}/{name} has no cosign.pub")),
    };
    // The one PEM reader: a bundle is split into its blocks, each handed on
    // as PEM text (validated again as a cosign key by the settings).
    let blocks = crate::pem::decode_all(&text)
        .map_err(|e| format!("Secret {ns}/{name}: cosign.pub is not PEM: {e}"))?;
    Ok(blocks.iter().map(crate::pem::encode).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQTW9sqsjDyllhoVJlqBrZv/VtgKl\n9fpjLZZGCTcsG+r4h2SI/d0w/nIO0LXHbMr5eNLOw2Nd3LP7zP8ijpZqqg==\n-----END PUBLIC KEY-----\n";

    #[test]
    fn readme_whitelist_examples() {
        // "registry-example.com/* ... registry-example.com/image-1, image-2 are whitelisted"
        assert_eq!(
            whitelist_patterns("registry-example.com/*").unwrap(),
            ["registry-example.com/**"]
        );
        // "`registry` will treat registry-1.com/registry:tag1 and registry-2.com/registry:tag2 as whitelisted"
        assert_eq!(
            whitelist_patterns("registry").unwrap(),
            ["*/registry", "docker.io/library/registry"]
        );
        assert_eq!(
            whitelist_patterns("registry:tag1").unwrap(),
            ["*/registry:tag1", "docker.io/library/registry:tag1"]
        );
        assert_eq!(
            whitelist_patterns("Quay.IO/team/app@sha256:abc").unwrap(),
            ["quay.io/team/app@sha256:abc"]
        );
        assert_eq!(
            whitelist_patterns("bitnami/nginx").unwrap(),
            ["*/bitnami/nginx"]
        );
        assert!(whitelist_patterns("quay.io/team/app-*").is_err());
        assert!(whitelist_patterns("localhost:5000/app").is_err());
    }

    fn policy(kind: &str, ns: Option<&str>, registries: Value) -> Value {
        let mut p = json!({"apiVersion": API_VERSION, "kind": kind,
            "metadata": {"name": "sample-policy"}, "spec": {"registries": registries}});
        if let Some(ns) = ns {
            p["metadata"]["namespace"] = json!(ns);
        }
        p
    }

    #[test]
    fn no_policy_admits_and_whitelist_exempts() {
        let cm = json!({"kind":"ConfigMap","metadata":{"name":WHITELIST_NAME,"namespace":WHITELIST_NAMESPACE},
            "data":{"whitelist-images":"registry-example.com/*\n  registry\n\n","whitelist-namespaces":"kube-system\nregistry-system\n"}});
        let c = convert(&Inputs {
            whitelist: Some(&cm),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            c.settings,
            json!({"exemptNamespaces":["kube-system","registry-system"],
                "exemptImages":["registry-example.com/**","*/registry","docker.io/library/registry"],
                "unmatched":"allow"})
        );
        assert!(c.limitations.is_empty(), "{:?}", c.limitations);
    }

    #[test]
    fn quickstart_sample_policy_with_notary_then_cosign() {
        let p = policy(
            NAMESPACE_POLICY,
            Some("some-namespace"),
            json!([{"registry":"core.harbor.domain.io","notary":"https://notary.harbor.domain.io",
                "cosignKeyRef":"k8s://some-namespace/cosign-key","signer":["signer1","signer2"],"signCheck":true},
                {"registry":"docker.io","signCheck":false}]),
        );
        let secret = json!({"kind":"Secret","metadata":{"name":"cosign-key","namespace":"some-namespace"},
            "data":{"cosign.pub": base64::engine::general_purpose::STANDARD.encode(KEY)}});
        let c = convert(&Inputs {
            namespace_policies: vec![&p],
            secrets: vec![&secret],
            ..Default::default()
        })
        .unwrap();
        let s = &c.settings;
        assert_eq!(s["unmatched"], "deny");
        assert_eq!(s["unmatchedMessage"], NOT_IN_POLICY);
        assert_eq!(s["keys"]["tmax:some-namespace/cosign-key#0"]["cosign"], KEY);
        let rule = &s["rules"][0];
        assert_eq!(rule["images"], json!(["core.harbor.domain.io/**"]));
        assert_eq!(
            rule["verify"]["anyOf"],
            json!([
                {"notary":{"server":"https://notary.harbor.domain.io","signers":[{"role":"targets/signer1"},{"role":"targets/signer2"}]}},
                {"cosign":{"keys":["tmax:some-namespace/cosign-key#0"],"annotations":{"signer":"signer1"}}},
                {"cosign":{"keys":["tmax:some-namespace/cosign-key#0"],"annotations":{"signer":"signer2"}}}
            ])
        );
        assert_eq!(
            s["rules"][1],
            json!({"name":"tmax[1] docker.io","images":["docker.io/**"]})
        );
        assert_eq!(c.limitations.len(), 1, "Repo Admin / TLS note");
    }

    #[test]
    fn cluster_policies_come_first_and_missing_material_denies() {
        let cluster = policy(
            CLUSTER_POLICY,
            None,
            json!([{"registry":"Reg.io","signCheck":true,"cosignKeyRef":"k8s://ns/missing","signer":["a"]}]),
        );
        let ns = policy(
            NAMESPACE_POLICY,
            Some("x"),
            json!([{"registry":"reg.io","signCheck":false}]),
        );
        let c = convert(&Inputs {
            cluster_policies: vec![&cluster],
            namespace_policies: vec![&ns],
            ..Default::default()
        })
        .unwrap();
        let rules = c.settings["rules"].as_array().unwrap();
        assert_eq!(rules[0]["name"], "tmax[0] reg.io");
        assert_eq!(rules[0]["action"], "deny");
        assert_eq!(rules[1]["name"], "tmax[1] reg.io");
        assert!(c.limitations[0]
            .note
            .contains("Secret ns/missing not found"));
    }

    #[test]
    fn signers_times_keys_is_capped() {
        let signers: Vec<String> = (0..100).map(|i| format!("s{i}")).collect();
        let p = policy(
            NAMESPACE_POLICY,
            Some("a"),
            json!([{"registry":"reg.io","signCheck":true,"cosignKeyRef":"k8s://a/k","signer": signers}]),
        );
        let secret = json!({"kind":"Secret","metadata":{"name":"k","namespace":"a"},
            "stringData":{"cosign.pub": KEY.repeat(8)}});
        let c = convert(&Inputs {
            namespace_policies: vec![&p],
            secrets: vec![&secret],
            ..Default::default()
        })
        .unwrap();
        let checks = c.settings["rules"][0]["verify"]["anyOf"]
            .as_array()
            .unwrap();
        assert_eq!(checks.len(), MAX_KEY_REFERENCES / 8);
        assert_eq!(checks[7]["cosign"]["annotations"]["signer"], "s7");
        assert!(c.limitations[0]
            .note
            .starts_with("100 signers x 8 keys: only the first 8 signers"));
    }

    #[test]
    fn static_conversion_requires_fully_qualified_images_request_time_leaves_it() {
        let p = policy(NAMESPACE_POLICY, Some("a"), json!([{"registry": "reg.io"}]));
        let c = convert_documents(std::slice::from_ref(&p)).unwrap();
        assert_eq!(c.settings["requireFullyQualified"], true);
        assert!(c
            .limitations
            .iter()
            .any(|l| l.at == "requireFullyQualified"));
        let live = convert(&Inputs {
            namespace_policies: vec![&p],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(live.settings.get("requireFullyQualified"), None);
    }

    #[test]
    fn pem_bundles_are_split() {
        let secret = |text: &str| json!({"kind":"Secret","metadata":{"name":"k","namespace":"ns"},"stringData":{"cosign.pub": text}});
        let two = secret(&format!("{KEY}{KEY}"));
        let inputs = Inputs {
            secrets: vec![&two],
            ..Default::default()
        };
        assert_eq!(
            cosign_keys("k8s://ns/k", &inputs),
            Ok(vec![KEY.to_string(); 2])
        );
        let none = secret("nothing");
        let inputs = Inputs {
            secrets: vec![&none],
            ..Default::default()
        };
        let e = cosign_keys("k8s://ns/k", &inputs).unwrap_err();
        assert!(e.starts_with("Secret ns/k: cosign.pub is not PEM"), "{e}");
    }
}
