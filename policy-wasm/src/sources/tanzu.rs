//! VMware Tanzu (Supply Chain Security Tools - Sign) `ClusterImagePolicy`
//! (`signing.apps.tanzu.vmware.com/v1beta1`, name `image-policy`) -> native settings.
//!
//! - `spec.verification.exclude.resources.namespaces` -> `exemptNamespaces`;
//! - `spec.verification.keys[]` (name, publicKey) -> `keys`;
//! - `spec.verification.images[]` (namePattern, keys) -> one allow rule each,
//!   verified by any of its keys, denied with Tanzu's text
//!   `The image: <image> is not signed.`;
//! - unmatched images are admitted with Tanzu's warning (AllowUnmatchedImages);
//! - no policy: every image admitted with Tanzu's "not found" warning.
//!
//! Tanzu's `*` matches any run of characters, `/`, `:` and `@` included, and a
//! pattern without tag means any tag; [`name_patterns`] rewrites it into
//! imagegate patterns (`.../cosign*` -> `.../cosign*` and `.../cosign*/**`).

use super::{describe, list_at, str_at, strings_at, unknown_fields, Converted, Out};
use crate::pattern::is_host_pattern;
use serde_json::{json, Value};

pub const API_VERSION: &str = "signing.apps.tanzu.vmware.com/v1beta1";
pub const KIND: &str = "ClusterImagePolicy";
pub const NAME: &str = "image-policy";
pub const NOT_SIGNED: &str = "The image: {image} is not signed.";
pub const UNMATCHED: &str =
    "{image} did not match any image policies. Container will be created as AllowUnmatchedImages flag is true.";
pub const NOT_FOUND: &str = "clusterimagepolicies.signing.apps.tanzu.vmware.com \"image-policy\" not found. Image policy enforcement was not applied.";

/// Most patterns one namePattern may expand to before we give up.
const MAX_EXPANSION: usize = 16;

/// CLI entry: finds the `image-policy` ClusterImagePolicy among the documents.
pub fn convert_documents(docs: &[Value]) -> Result<Converted, String> {
    let mut out = Out::default();
    let mut policy = None;
    for doc in docs {
        let is_cip = str_at(doc, "/kind") == Some(KIND)
            && str_at(doc, "/apiVersion")
                .is_some_and(|v| v.starts_with("signing.apps.tanzu.vmware.com/"));
        if is_cip && str_at(doc, "/metadata/name") == Some(NAME) {
            policy = Some(doc);
        } else if is_cip {
            out.note(
                describe(doc),
                "Tanzu only reads the ClusterImagePolicy named image-policy; ignored",
            );
        } else {
            out.note(describe(doc), "not a Tanzu ClusterImagePolicy, ignored");
        }
    }
    convert_into(policy, out)
}

/// Request-time and CLI conversion; `None` = no `image-policy` in the cluster.
pub fn convert(policy: Option<&Value>) -> Result<Converted, String> {
    convert_into(policy, Out::default())
}

fn convert_into(policy: Option<&Value>, mut out: Out) -> Result<Converted, String> {
    out.set("unmatched", json!("warn"));
    let Some(policy) = policy else {
        out.set("unmatchedMessage", json!(NOT_FOUND));
        return Ok(out.done());
    };
    out.set("unmatchedMessage", json!(UNMATCHED));
    let at = describe(policy);
    let v = &policy["spec"]["verification"];
    unknown_fields(
        &mut out,
        &format!("{at}: spec"),
        &policy["spec"],
        &["verification"],
    );
    unknown_fields(
        &mut out,
        &format!("{at}: spec.verification"),
        v,
        &["exclude", "keys", "images"],
    );
    for ns in strings_at(v, "/exclude/resources/namespaces", &at)? {
        out.push("exemptNamespaces", json!(ns));
    }
    let mut key_names = Vec::new();
    for (i, key) in list_at(v, "/keys").iter().enumerate() {
        let (Some(name), Some(pem)) = (str_at(key, "/name"), str_at(key, "/publicKey")) else {
            return Err(format!(
                "{at}: spec.verification.keys[{i}]: name and publicKey are required"
            ));
        };
        let keys = out.settings.entry("keys").or_insert_with(|| json!({}));
        keys[name] = json!({"cosign": pem});
        key_names.push(name.to_string());
    }
    for (i, image) in list_at(v, "/images").iter().enumerate() {
        let at = format!("{at}: spec.verification.images[{i}]");
        unknown_fields(&mut out, &at, image, &["namePattern", "keys", "secretRef"]);
        let Some(pattern) = str_at(image, "/namePattern") else {
            return Err(format!("{at}.namePattern: required"));
        };
        if image.get("secretRef").is_some() {
            out.note(
                format!("{at}.secretRef"),
                "registry credentials come from the host (policy-server's imagePullSecret, imagegate's docker config), not from a Secret per pattern",
            );
        }
        let (patterns, notes) = name_patterns(pattern);
        for n in notes {
            out.note(format!("{at}.namePattern {pattern:?}"), n);
        }
        let mut keys = Vec::new();
        for (k, key) in list_at(image, "/keys").iter().enumerate() {
            match str_at(key, "/name") {
                Some(name) if key_names.iter().any(|n| n == name) => keys.push(name.to_string()),
                other => out.note(
                    format!("{at}.keys[{k}]"),
                    format!(
                        "key {other:?} is not in spec.verification.keys; it cannot verify anything"
                    ),
                ),
            }
        }
        let mut rule = json!({
            "name": format!("tanzu images[{i}] {pattern}"),
            "images": patterns,
            "message": NOT_SIGNED,
        });
        if keys.is_empty() {
            rule["action"] = json!("deny");
        } else {
            rule["verify"] = json!({"anyOf": [{"cosign": {"keys": keys}}]});
        }
        out.push("rules", rule);
    }
    if list_at(v, "/images").len() > 1 {
        out.note(
            format!("{at}: spec.verification.images"),
            "an image matching several namePatterns: Tanzu accepts a key of any of them, imagegate checks the keys of the first matching entry only (stricter)",
        );
    }
    Ok(out.done())
}

/// Tanzu namePattern -> imagegate patterns, plus notes where they differ.
pub fn name_patterns(pattern: &str) -> (Vec<String>, Vec<String>) {
    let mut notes = Vec::new();
    if pattern.chars().all(|c| c == '*') {
        return (vec!["**".to_string()], notes);
    }
    let (host, path) = match pattern.split_once('/') {
        // The host stays as written: the pattern normalizes its case, and
        // lower-casing here would turn `Corp/app` (a host, by the host rule)
        // into Docker Hub's `corp/app`.
        Some((first, rest)) if is_host_pattern(first) => (Some(first.to_string()), rest),
        _ => (None, pattern),
    };
    let host = host.map(|h| {
        let rest = h.strip_prefix("*.").unwrap_or(&h);
        if h == "*" || !rest.contains('*') {
            if h.starts_with('*') {
                notes.push(
                    "Tanzu's leading `*` may also match `/`, so it matches e.g. evil.io/x.example.org/...; imagegate's host wildcard matches host labels only (looser for such names)"
                        .to_string(),
                );
            }
            h
        } else {
            notes.push("host wildcard not at the start: imagegate cannot express it safely; any host is matched instead (stricter: more images need a signature)".to_string());
            "*".to_string()
        }
    });
    // Split `@digest` and `:tag` off the last component.
    let (path, digest) = match path.split_once('@') {
        Some((p, d)) => (p, format!("@{d}")),
        None => (path, String::new()),
    };
    let (path, tag) = match path.rsplit_once('/') {
        Some((dir, last)) => match last.split_once(':') {
            Some((name, t)) => (format!("{dir}/{name}"), format!(":{t}")),
            None => (path.to_string(), String::new()),
        },
        None => match path.split_once(':') {
            Some((name, t)) => (name.to_string(), format!(":{t}")),
            None => (path.to_string(), String::new()),
        },
    };
    // Each starred component has two spellings, so the patterns are a
    // product: 2^k for k starred components, read from the cluster at
    // request time. Only the first MAX_EXPANSION are ever built (in the
    // product's order, the last component varying fastest), and a spelling
    // only when one of them uses it: the cost is linear in the pattern.
    let comps: Vec<&str> = path.split('/').collect();
    let spellings = |c: &str| if c != "*" && c.contains('*') { 2 } else { 1 };
    let spelling = |i: usize, k: usize| match (comps[i], k) {
        ("*", _) => "**".to_string(),
        (c, 0) => c.to_string(),
        (c, _) => crossing(c, host.is_some() || i > 0),
    };
    if comps[..comps.len() - 1].contains(&"*") {
        notes.push("a `*` component also matches zero components in imagegate (`**`): stricter for names one level shorter".to_string());
    }
    // 2^doubled patterns in all.
    let doubled = comps.iter().filter(|c| spellings(c) == 2).count();
    let kept = match doubled {
        d if d < MAX_EXPANSION.ilog2() as usize => 1 << d,
        _ => MAX_EXPANSION,
    };
    if doubled > MAX_EXPANSION.ilog2() as usize {
        notes.push(format!(
            "expands to 2^{doubled} patterns; only the first {MAX_EXPANSION} are kept (looser)"
        ));
    }
    // Expansion `index` takes spelling (index / stride) % count of each
    // component, the stride being the product of the later components' counts.
    let mut strides = vec![1usize; comps.len()];
    for i in (1..comps.len()).rev() {
        strides[i - 1] = strides[i].saturating_mul(spellings(comps[i]));
    }
    let expansions = (0..kept).map(|index| {
        let mut p = String::new();
        for (i, stride) in strides.iter().enumerate() {
            if !p.is_empty() {
                p.push('/');
            }
            p.push_str(&spelling(i, (index / stride) % spellings(comps[i])));
        }
        p
    });
    let mut out: Vec<String> = expansions
        .map(|p| match &host {
            Some(h) => format!("{h}/{p}{tag}{digest}"),
            None => format!("{p}{tag}{digest}"),
        })
        .collect();
    out.dedup();
    (out, notes)
}

/// A component with `*` where the `*` also crosses `/`: `cosign*` -> `cosign*/**`,
/// `*-app` -> `**/*-app`, `a*b` -> `a*/**/*b`.
fn crossing(c: &str, may_start_with_any: bool) -> String {
    let first = c.find('*').unwrap_or(0);
    let last = c.rfind('*').unwrap_or(0);
    match (c.starts_with('*') && may_start_with_any, c.ends_with('*')) {
        (true, true) => format!("**/{c}/**"),
        (true, false) => format!("**/{c}"),
        (false, true) => format!("{c}/**"),
        (false, false) => format!("{}/**/{}", &c[..=first], &c[last..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(p: &str) -> Vec<String> {
        name_patterns(p).0
    }

    #[test]
    fn documented_pattern_table() {
        let rows = [
            (
                "registry.example.org/myproject/my-image:mytag",
                vec!["registry.example.org/myproject/my-image:mytag"],
            ),
            (
                "registry.example.org/myproject/my-image",
                vec!["registry.example.org/myproject/my-image"],
            ),
            (
                "registry.example.org/myproject/my-image:*",
                vec!["registry.example.org/myproject/my-image:*"],
            ),
            (
                "registry.example.org/myproject/*",
                vec!["registry.example.org/myproject/**"],
            ),
            (
                "registry.example.org/*/my-image:mytag",
                vec!["registry.example.org/**/my-image:mytag"],
            ),
            (
                "registry.example.org/*/my-image",
                vec!["registry.example.org/**/my-image"],
            ),
            ("registry.example.org/*", vec!["registry.example.org/**"]),
            ("*.example.org/*", vec!["*.example.org/**"]),
            ("*", vec!["**"]),
        ];
        for (pattern, expected) in rows {
            assert_eq!(pats(pattern), expected, "{pattern}");
        }
    }

    #[test]
    fn star_crosses_slash() {
        assert_eq!(
            pats("gcr.io/projectsigstore/cosign*"),
            [
                "gcr.io/projectsigstore/cosign*",
                "gcr.io/projectsigstore/cosign*/**"
            ]
        );
        assert_eq!(pats("reg.io/a*b"), ["reg.io/a*b", "reg.io/a*/**/*b"]);
        assert_eq!(
            pats("reg.io/team/*-app:v1"),
            ["reg.io/team/*-app:v1", "reg.io/team/**/*-app:v1"]
        );
        let (p, notes) = name_patterns("registry.example.*/app");
        assert_eq!(p, ["*/app"]);
        assert!(notes[0].contains("stricter"));
    }

    #[test]
    fn expansions_are_cut_while_expanding_in_product_order() {
        // 25 starred components: 2^25 spellings, of which 16 are built.
        let pattern = format!("reg.io/{}", vec!["a*"; 25].join("/"));
        let (p, notes) = name_patterns(&pattern);
        assert_eq!(p.len(), MAX_EXPANSION);
        assert!(
            notes.iter().any(|n| n.contains("expands to 2^25 patterns")),
            "{notes:?}"
        );
        // The first 16 of the product, last component fastest, as if all were built.
        let comps = ["a*", "b*", "c*", "*", "d*", "e*"];
        let mut all = vec![String::new()];
        for c in comps {
            let variants = match c {
                "*" => vec!["**".to_string()],
                // The pattern has a host: every component may start with any.
                c => vec![c.to_string(), crossing(c, true)],
            };
            all = all
                .iter()
                .flat_map(|prefix| variants.iter().map(move |v| format!("{prefix}/{v}")))
                .collect();
        }
        let expected: Vec<String> = all[..MAX_EXPANSION]
            .iter()
            .map(|p| format!("reg.io{p}"))
            .collect();
        let (p, notes) = name_patterns(&format!("reg.io/{}", comps.join("/")));
        assert_eq!(p, expected);
        let once = notes
            .iter()
            .filter(|n| n.contains("zero components"))
            .count();
        assert_eq!(once, 1, "{notes:?}");
    }

    #[test]
    fn documented_example_policy() {
        let doc: Value = json!({"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": NAME},
            "spec": {"verification": {
                "exclude": {"resources": {"namespaces": ["kube-system", "kpack"]}},
                "keys": [{"name": "cosign-key", "publicKey": "PEM"}],
                "images": [{"namePattern": "gcr.io/projectsigstore/cosign*", "keys": [{"name": "cosign-key"}]}]}}});
        let c = convert_documents(&[doc]).unwrap();
        assert_eq!(
            c.settings,
            json!({"unmatched":"warn","unmatchedMessage":UNMATCHED,
                "exemptNamespaces":["kube-system","kpack"],
                "keys":{"cosign-key":{"cosign":"PEM"}},
                "rules":[{"name":"tanzu images[0] gcr.io/projectsigstore/cosign*",
                    "images":["gcr.io/projectsigstore/cosign*","gcr.io/projectsigstore/cosign*/**"],
                    "message":NOT_SIGNED,
                    "verify":{"anyOf":[{"cosign":{"keys":["cosign-key"]}}]}}]})
        );
        assert!(c.limitations.is_empty(), "{:?}", c.limitations);
    }

    #[test]
    fn no_policy_warns_and_secret_ref_is_reported() {
        let c = convert(None).unwrap();
        assert_eq!(
            c.settings,
            json!({"unmatched":"warn","unmatchedMessage":NOT_FOUND})
        );
        let doc = json!({"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": NAME},
            "spec": {"verification": {"keys": [{"name": "first-key", "publicKey": "PEM"}],
                "images": [{"namePattern": "registry.example.org/authproject/*",
                    "secretRef": {"name": "secret-name", "namespace": "namespace-name"},
                    "keys": [{"name": "first-key"}, {"name": "typo"}]}]}}});
        let c = convert(Some(&doc)).unwrap();
        let notes: Vec<String> = c.limitations.iter().map(ToString::to_string).collect();
        assert!(notes[0].contains("secretRef"), "{notes:?}");
        assert!(notes[1].contains("\"typo\""), "{notes:?}");
    }
}
