//! Gatekeeper library constraints -> native settings: `K8sAllowedRepos`
//! (string prefixes), `K8sDisallowedTags` (tags, exemptImages) and
//! `K8sImageDigests` (exemptImages).
//!
//! Gatekeeper constraints all apply (an image must satisfy each); imagegate
//! picks one rule per image, so the constraints are folded together: each
//! allowed repo becomes an allow rule carrying the tag and digest
//! requirements, exempt images become higher-priority rules carrying the
//! requirements they are not exempt from.

use super::{describe, str_at, strings_at, unknown_fields, Converted, Out};
use serde_json::{json, Value};

const ALLOWED_REPOS: &str = "K8sAllowedRepos";
const DISALLOWED_TAGS: &str = "K8sDisallowedTags";
const IMAGE_DIGESTS: &str = "K8sImageDigests";

#[derive(Default)]
struct Folded {
    repos: Vec<(String, String)>, // (at, prefix)
    repo_constraints: usize,
    tags: Vec<String>,
    tags_exempt: Vec<String>,
    tags_on: bool,
    digests_on: bool,
    digests_exempt: Vec<String>,
    warn: bool,
}

pub fn convert_documents(docs: &[Value]) -> Result<Converted, String> {
    let mut out = Out::default();
    let mut f = Folded::default();
    for doc in docs {
        let at = describe(doc);
        let kind = str_at(doc, "/kind").unwrap_or("");
        if ![ALLOWED_REPOS, DISALLOWED_TAGS, IMAGE_DIGESTS].contains(&kind) {
            out.note(
                at,
                "not a K8sAllowedRepos, K8sDisallowedTags or K8sImageDigests constraint, ignored",
            );
            continue;
        }
        unknown_fields(
            &mut out,
            &format!("{at}: spec"),
            &doc["spec"],
            &["match", "parameters", "enforcementAction"],
        );
        scope(doc, &at, &mut out)?;
        match str_at(doc, "/spec/enforcementAction").unwrap_or("deny") {
            "deny" => {}
            action => {
                f.warn = true;
                out.note(
                    format!("{at}: spec.enforcementAction {action:?}"),
                    "converted as mode: warn (images are admitted with a warning); dryrun only audits in Gatekeeper",
                );
            }
        }
        let p = &doc["spec"]["parameters"];
        match kind {
            ALLOWED_REPOS => {
                f.repo_constraints += 1;
                for r in strings_at(p, "/repos", &at)? {
                    f.repos.push((format!("{at}: parameters.repos {r:?}"), r));
                }
                unknown_fields(&mut out, &format!("{at}: parameters"), p, &["repos"]);
            }
            DISALLOWED_TAGS => {
                f.tags_on = true;
                for t in strings_at(p, "/tags", &at)? {
                    if t.contains('*') || t.is_empty() {
                        out.note(format!("{at}: parameters.tags {t:?}"), "Gatekeeper compares tags literally and no tag contains `*`: matches nothing; not converted");
                    } else {
                        f.tags.push(t);
                    }
                }
                f.tags_exempt.extend(strings_at(p, "/exemptImages", &at)?);
                unknown_fields(
                    &mut out,
                    &format!("{at}: parameters"),
                    p,
                    &["tags", "exemptImages"],
                );
            }
            _ => {
                f.digests_on = true;
                f.digests_exempt
                    .extend(strings_at(p, "/exemptImages", &at)?);
                unknown_fields(&mut out, &format!("{at}: parameters"), p, &["exemptImages"]);
            }
        }
    }
    fold(f, &mut out);
    Ok(out.done())
}

/// `spec.match`: namespaces go to exemptNamespaces or the ClusterAdmissionPolicy.
fn scope(doc: &Value, at: &str, out: &mut Out) -> Result<(), String> {
    let m = &doc["spec"]["match"];
    unknown_fields(
        out,
        &format!("{at}: spec.match"),
        m,
        &[
            "kinds",
            "namespaces",
            "excludedNamespaces",
            "labelSelector",
            "namespaceSelector",
            "scope",
        ],
    );
    for ns in strings_at(m, "/excludedNamespaces", at)? {
        out.push("exemptNamespaces", json!(ns));
    }
    let namespaces = strings_at(m, "/namespaces", at)?;
    if !namespaces.is_empty() {
        out.namespace_selector = Some(json!({"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": namespaces}]}));
        out.note(
            format!("{at}: spec.match.namespaces"),
            "settings apply in every namespace; the ClusterAdmissionPolicy (--cluster-admission-policy) gets a namespaceSelector for these namespaces",
        );
    }
    if m.get("kinds").is_some() {
        out.note(
            format!("{at}: spec.match.kinds"),
            "the library's Rego reads spec.containers of the object only (Pods); imagegate checks every workload kind's pod template too (stricter)",
        );
    }
    for field in ["labelSelector", "namespaceSelector"] {
        if m.get(field).is_some() {
            out.note(format!("{at}: spec.match.{field}"), "not converted: set it on the ClusterAdmissionPolicy (objectSelector / namespaceSelector)");
        }
    }
    Ok(())
}

fn fold(f: Folded, out: &mut Out) {
    if f.repo_constraints > 1 {
        out.note(
            "K8sAllowedRepos",
            "several constraints each require a match; imagegate admits an image matching a prefix of any of them (looser)",
        );
    }
    let mode = if f.warn { Some("warn") } else { None };
    let mut tags = f.tags.clone();
    if f.tags_on {
        if !tags.iter().any(|t| t == "latest") {
            // Gatekeeper denies an image written without a tag; imagegate's
            // implicit tag is `latest`.
            tags.push("latest".to_string());
            out.note(
                "K8sDisallowedTags",
                "an image without a tag is denied by denying `latest` (imagegate's implicit tag): an explicit `:latest` is denied too (stricter)",
            );
        }
        out.note(
            "K8sDisallowedTags",
            "`name:latest@sha256:...` counts its tag in imagegate and is denied; Gatekeeper's suffix test admits it (stricter)",
        );
    }
    if f.digests_on {
        out.note(
            "K8sImageDigests",
            "imagegate accepts only sha256/sha512 digests (any other algorithm is unparsable and denied: stricter)",
        );
    }
    let constraints = |tags_exempt: bool, digest_exempt: bool| {
        let mut c = json!({});
        if f.tags_on && !tags_exempt {
            c["deny"] = json!(tags);
        }
        if f.digests_on && !digest_exempt {
            c["requireDigest"] = json!(true);
        }
        c
    };
    let base = constraints(false, false);
    let push_rule =
        |name: String, images: Vec<String>, priority: i64, tags: Value, out: &mut Out| {
            let mut rule = json!({"name": name, "images": images});
            if priority != 0 {
                rule["priority"] = json!(priority);
            }
            if tags.as_object().is_some_and(|t| !t.is_empty()) {
                rule["tags"] = tags;
            }
            if let Some(m) = mode {
                rule["mode"] = json!(m);
            }
            out.push("rules", rule);
        };
    // Exempt images: a rule that wins over the repo rules and keeps the other constraint.
    let mut exempt: Vec<(String, bool, bool)> = Vec::new();
    for e in &f.tags_exempt {
        exempt.push((e.clone(), true, f.digests_exempt.contains(e)));
    }
    for e in f
        .digests_exempt
        .iter()
        .filter(|e| !f.tags_exempt.contains(e))
    {
        exempt.push((e.clone(), false, true));
    }
    for (i, (e, t, d)) in exempt.iter().enumerate() {
        if f.repo_constraints > 0 && !f.repos.iter().any(|(_, r)| e.starts_with(r.as_str())) {
            out.note(
                format!("exemptImages {e:?}"),
                "outside every allowed repo: Gatekeeper denies it anyway (K8sAllowedRepos); not converted",
            );
            continue;
        }
        let images = match e.strip_suffix('*') {
            Some(prefix) => prefix_patterns(prefix, out, &format!("exemptImages {e:?}")),
            None => vec![e.clone()],
        };
        push_rule(
            format!("gatekeeper exempt[{i}] {e}"),
            images,
            1,
            constraints(*t, *d),
            out,
        );
    }
    if f.repo_constraints > 0 {
        for (i, (at, r)) in f.repos.iter().enumerate() {
            let images = prefix_patterns(r, out, at);
            push_rule(
                format!("gatekeeper repos[{i}] {r}"),
                images,
                0,
                base.clone(),
                out,
            );
        }
        let repos: Vec<&str> = f.repos.iter().map(|(_, r)| r.as_str()).collect();
        out.set("unmatched", json!(if f.warn { "warn" } else { "deny" }));
        out.set(
            "unmatchedMessage",
            json!(format!(
                "has an invalid image repo <{{image}}>, allowed repos are [{}]",
                repos.join(" ")
            )),
        );
    } else if f.tags_on || f.digests_on {
        push_rule(
            "gatekeeper".to_string(),
            vec!["**".to_string()],
            0,
            base,
            out,
        );
    }
}

/// A Gatekeeper repo prefix (matched against the image as written) -> patterns
/// (matched against the normalized image).
pub(crate) fn prefix_patterns(prefix: &str, out: &mut Out, at: &str) -> Vec<String> {
    if let Some(dir) = prefix.strip_suffix('/') {
        return vec![format!("{dir}/**")];
    }
    if prefix.contains('@') {
        out.note(
            at,
            "a digest prefix cannot be expressed; not converted (stricter)",
        );
        return Vec::new();
    }
    let (dir, last) = match prefix.rsplit_once('/') {
        Some((dir, last)) => (Some(dir), last),
        None => (None, prefix),
    };
    let host_like = |h: &str| h.contains('.') || h == "localhost";
    if let Some((name, tag)) = last.split_once(':') {
        if dir.is_some() || !host_like(name) {
            // `name:1.` -> tags starting with `1.`.
            let dir = dir.map(|d| format!("{d}/")).unwrap_or_default();
            return vec![format!("{dir}{name}:{tag}*")];
        }
    }
    if dir.is_none() {
        if host_like(prefix) || prefix.contains(':') {
            out.note(at, format!("taken as the registry {prefix}/**: Gatekeeper's prefix also admits {prefix}.evil.example/... (stricter)"));
            return vec![format!("{prefix}/**")];
        }
        out.note(at, format!("taken as Docker Hub names starting with {prefix:?}; Gatekeeper's prefix also admits any registry whose host starts with it (stricter)"));
        return vec![format!("{prefix}*"), format!("{prefix}*/**")];
    }
    out.note(at, format!("taken as the repository {prefix} and everything below it: Gatekeeper's prefix also admits {prefix}-anything (stricter)"));
    vec![prefix.to_string(), format!("{prefix}/**")]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constraint(kind: &str, parameters: Value) -> Value {
        json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": kind, "metadata": {"name": "c"},
            "spec": {"match": {"kinds": [{"apiGroups": [""], "kinds": ["Pod"]}], "namespaces": ["default"]},
                "parameters": parameters}})
    }

    #[test]
    fn library_samples_allowed_repos() {
        let c = convert_documents(&[constraint(
            ALLOWED_REPOS,
            json!({"repos": ["openpolicyagent/"]}),
        )])
        .unwrap();
        assert_eq!(
            c.settings["rules"],
            json!([{"name": "gatekeeper repos[0] openpolicyagent/", "images": ["openpolicyagent/**"]}])
        );
        assert_eq!(c.settings["unmatched"], "deny");
        assert_eq!(
            c.namespace_selector.unwrap()["matchExpressions"][0]["values"],
            json!(["default"])
        );
    }

    #[test]
    fn library_samples_disallowed_tags_with_exempt_images() {
        let c = convert_documents(&[constraint(
            DISALLOWED_TAGS,
            json!({"tags": ["latest"],
            "exemptImages": ["openpolicyagent/opa-exp:latest", "openpolicyagent/opa-exp2:latest"]}),
        )])
        .unwrap();
        assert_eq!(
            c.settings["rules"],
            json!([
                {"name": "gatekeeper exempt[0] openpolicyagent/opa-exp:latest", "images": ["openpolicyagent/opa-exp:latest"], "priority": 1},
                {"name": "gatekeeper exempt[1] openpolicyagent/opa-exp2:latest", "images": ["openpolicyagent/opa-exp2:latest"], "priority": 1},
                {"name": "gatekeeper", "images": ["**"], "tags": {"deny": ["latest"]}}])
        );
        assert!(c.settings.get("unmatched").is_none());
    }

    #[test]
    fn constraints_fold_together() {
        let c = convert_documents(&[
            constraint(
                ALLOWED_REPOS,
                json!({"repos": ["gcr.io/", "docker.io/library/nginx"]}),
            ),
            constraint(
                DISALLOWED_TAGS,
                json!({"tags": ["dev"], "exemptImages": ["gcr.io/tools/*", "quay.io/x:dev"]}),
            ),
            constraint(IMAGE_DIGESTS, json!({})),
        ])
        .unwrap();
        let rules = c.settings["rules"].as_array().unwrap();
        assert_eq!(rules[0]["images"], json!(["gcr.io/tools/**"]));
        assert_eq!(rules[0]["tags"], json!({"requireDigest": true}));
        assert_eq!(rules[1]["images"], json!(["gcr.io/**"]));
        assert_eq!(
            rules[1]["tags"],
            json!({"deny": ["dev", "latest"], "requireDigest": true})
        );
        assert_eq!(
            rules[2]["images"],
            json!(["docker.io/library/nginx", "docker.io/library/nginx/**"])
        );
        assert!(c.limitations.iter().any(|l| l.at.contains("quay.io/x:dev")));
    }

    #[test]
    fn prefixes() {
        let mut out = Out::default();
        assert_eq!(
            prefix_patterns("myregistry.io", &mut out, "x"),
            ["myregistry.io/**"]
        );
        assert_eq!(prefix_patterns("nginx:1.", &mut out, "x"), ["nginx:1.*"]);
        assert_eq!(
            prefix_patterns("library/nginx:1.", &mut out, "x"),
            ["library/nginx:1.*"]
        );
        assert_eq!(
            prefix_patterns("openpolicyagent", &mut out, "x"),
            ["openpolicyagent*", "openpolicyagent*/**"]
        );
        assert!(prefix_patterns("nginx@sha256:ab", &mut out, "x").is_empty());
    }
}
