//! sighup container-signature-enforcer (opa-notary-connector) Helm values -> native settings.
//!
//! - `repositories[]`: `name` is a Go regular expression searched (unanchored,
//!   `regexp.MatchString`) in the image name -> `imageRegex: [".*(?:<name>).*"]`;
//! - `priority`: highest wins -> `priority`;
//! - `trust.enabled: false` -> allow without verification;
//! - `trust.enabled: true` -> Notary at `trust.trustServer`; every listed signer
//!   (`role`, base64 PEM `publicKey`) must have signed -> `verify.allOf`, one
//!   Notary check per signer with the pinned key;
//! - no repository matches -> denied (`unmatched: deny`);
//! - `strict: true` denies an image whose digest differs from the signed one,
//!   `strict: false` rewrites it -> `onDigestMismatch: deny | rewrite`; trusted
//!   images are pinned to their signed digest -> `pinDigest: true`.

use super::{describe, list_at, str_at, unknown_fields, Converted, Out};
use base64::Engine as _;
use serde_json::{json, Value};

/// CLI entry: one or more values files (later files override `strict`, repositories add up).
pub fn convert_documents(docs: &[Value]) -> Result<Converted, String> {
    let mut out = Out::default();
    let mut strict = true; // the chart's default
    let mut repos: Vec<(String, &Value)> = Vec::new();
    for (d, doc) in docs.iter().enumerate() {
        let at = format!("values[{d}]");
        if let Some(s) = doc.get("strict") {
            strict = s
                .as_bool()
                .ok_or_else(|| format!("{at}.strict: expected true or false, found {s}"))?;
        }
        for (i, repo) in list_at(doc, "/repositories").iter().enumerate() {
            repos.push((format!("{at}.repositories[{i}]"), repo));
        }
        if let Some(selector) = doc.pointer("/opa/admissionControllerNamespaceSelector") {
            out.namespace_selector = Some(selector.clone());
            out.note(
                format!("{at}.opa.admissionControllerNamespaceSelector"),
                "namespaces are selected by the webhook, not by the policy: carried into the ClusterAdmissionPolicy's namespaceSelector (--cluster-admission-policy)",
            );
        }
        let known = ["strict", "repositories", "opa"];
        if doc.get("kind").is_some() {
            out.note(describe(doc), "not a Helm values file, ignored");
            continue;
        }
        unknown_fields(&mut out, &at, doc, &known);
    }
    for (at, repo) in &repos {
        repository_rule(repo, at, strict, &mut out)?;
    }
    let mut priorities: Vec<i64> = repos
        .iter()
        .map(|(_, r)| r["priority"].as_i64().unwrap_or(0))
        .collect();
    priorities.sort_unstable();
    if priorities.windows(2).any(|w| w[0] == w[1]) {
        out.note(
            "repositories[].priority",
            "several repositories share a priority: sighup's order between them is unspecified (unstable sort); imagegate takes the first listed",
        );
    }
    out.set("unmatched", json!("deny"));
    Ok(out.done())
}

fn repository_rule(repo: &Value, at: &str, strict: bool, out: &mut Out) -> Result<(), String> {
    unknown_fields(out, at, repo, &["name", "priority", "trust"]);
    let Some(regex) = str_at(repo, "/name") else {
        return Err(format!("{at}.name: required"));
    };
    let index = out.rule_count();
    let mut rule = json!({
        "name": format!("sighup[{index}] {regex}"),
        "imageRegex": [format!(".*(?:{regex}).*")],
        "priority": repo["priority"].as_i64().unwrap_or(0),
    });
    out.note(
        format!("{at}.name {regex:?}"),
        "matched as sighup does (unanchored search), but against imagegate's normalized name: \
         `bitnami/nginx` is seen as docker.io/bitnami/nginx and `alpine` as docker.io/library/alpine",
    );
    let trust = &repo["trust"];
    unknown_fields(
        out,
        &format!("{at}.trust"),
        trust,
        &["enabled", "trustServer", "signers", "auth"],
    );
    if trust["enabled"].as_bool().unwrap_or(false) {
        let Some(server) = str_at(trust, "/trustServer") else {
            return Err(format!(
                "{at}.trust.trustServer: required when trust is enabled"
            ));
        };
        if trust.get("auth").is_some() {
            out.note(
                format!("{at}.trust.auth"),
                "registry/Notary credentials come from the host (imagegate's docker config), not from the values file",
            );
        }
        out.note(
            format!("{at}.trust.trustServer"),
            "sighup reads the Notary server's CA from its trust root directory: add it as caCert to this rule's Notary checks if it is private",
        );
        let mut checks = Vec::new();
        for (k, signer) in list_at(trust, "/signers").iter().enumerate() {
            let Some(role) = str_at(signer, "/role") else {
                return Err(format!("{at}.trust.signers[{k}].role: required"));
            };
            let key = match str_at(signer, "/publicKey").filter(|k| !k.is_empty()) {
                None => Value::Null,
                Some(b64) => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .map_err(|e| {
                            format!("{at}.trust.signers[{k}].publicKey: not base64: {e}")
                        })?;
                    json!(String::from_utf8(bytes).map_err(|_| format!(
                        "{at}.trust.signers[{k}].publicKey: not a PEM text"
                    ))?)
                }
            };
            let mut s = json!({"role": role});
            if !key.is_null() {
                s["publicKey"] = key;
            }
            checks.push(json!({"notary": {"server": server, "signers": [s]}}));
        }
        if checks.is_empty() {
            checks.push(json!({"notary": {"server": server}}));
        }
        rule["verify"] = json!({"allOf": checks});
        rule["pinDigest"] = json!(true);
        rule["onDigestMismatch"] = json!(if strict { "deny" } else { "rewrite" });
    }
    out.push("rules", rule);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n";

    #[test]
    fn readme_values_and_strict_modes() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(PEM);
        let values = json!({"strict": false, "repositories": [
            {"name": "localhost.*", "priority": 10, "trust": {"enabled": true,
                "trustServer": "https://notary-server.notary.svc.cluster.local:4443",
                "signers": [{"role": "targets/jenkins", "publicKey": b64}]}},
            {"name": ".*", "priority": 0, "trust": {"enabled": false}}]});
        let c = convert_documents(&[values]).unwrap();
        assert_eq!(
            c.settings,
            json!({"rules": [
                {"name": "sighup[0] localhost.*", "imageRegex": [".*(?:localhost.*).*"], "priority": 10,
                 "verify": {"allOf": [{"notary": {"server": "https://notary-server.notary.svc.cluster.local:4443",
                    "signers": [{"role": "targets/jenkins", "publicKey": PEM}]}}]},
                 "pinDigest": true, "onDigestMismatch": "rewrite"},
                {"name": "sighup[1] .*", "imageRegex": [".*(?:.*).*"], "priority": 0}],
                "unmatched": "deny"})
        );
        let strict = json!({"repositories": [{"name": "r", "trust": {"enabled": true, "trustServer": "https://n"}}]});
        let c = convert_documents(&[strict]).unwrap();
        assert_eq!(
            c.settings["rules"][0]["onDigestMismatch"], "deny",
            "strict defaults to true"
        );
        assert_eq!(
            c.settings["rules"][0]["verify"]["allOf"][0],
            json!({"notary": {"server": "https://n"}})
        );
    }

    #[test]
    fn bad_keys_and_missing_fields_are_errors() {
        let bad = json!({"repositories": [{"name": "r", "trust": {"enabled": true, "trustServer": "https://n",
            "signers": [{"role": "targets/a", "publicKey": "%%%"}]}}]});
        assert!(convert_documents(&[bad])
            .unwrap_err()
            .contains("signers[0].publicKey: not base64"));
        let no_server = json!({"repositories": [{"name": "r", "trust": {"enabled": true}}]});
        assert!(convert_documents(&[no_server])
            .unwrap_err()
            .contains("trustServer: required"));
    }

    #[test]
    fn webhook_namespace_selector_goes_to_the_admission_policy() {
        let selector = json!({"matchExpressions": [{"key": "sighup.io/webhook", "operator": "NotIn", "values": ["ignore"]}]});
        let v =
            json!({"repositories": [], "opa": {"admissionControllerNamespaceSelector": selector}});
        let c = convert_documents(&[v]).unwrap();
        assert_eq!(c.namespace_selector, Some(selector));
        assert!(c.settings.get("exemptNamespaces").is_none());
    }

    #[test]
    fn equal_priorities_are_reported() {
        let v = json!({"repositories": [{"name": "a", "trust": {}}, {"name": "b", "trust": {}}]});
        let c = convert_documents(&[v]).unwrap();
        assert!(c
            .limitations
            .iter()
            .any(|l| l.note.contains("unstable sort")));
    }
}
