//! `imagegate check --output sarif`: SARIF 2.1.0 (OASIS), what code scanning
//! (GitHub, GitLab, Azure DevOps) reads. One result per denied, not verified
//! or warned image, at the image's line and column when the input is YAML or
//! JSON, and one per object rejected as a whole; the reporting rules are the
//! policy's rules (`rule:NAME`), `unmatched` and `invalid-image`. Allowed,
//! exempt and unchecked images are not problems and are not listed.

use serde_json::{json, Value};

use super::{Checked, ImageResult, ObjectResult, Status};

pub fn render(checked: &Checked) -> Value {
    let mut rules: Vec<(String, String)> = Vec::new();
    let mut results = Vec::new();
    let mut rule_index =
        |id: String, description: String| match rules.iter().position(|(known, _)| *known == id) {
            Some(i) => i,
            None => {
                rules.push((id, description));
                rules.len() - 1
            }
        };
    for object in &checked.objects {
        if object.denied_as_a_whole() {
            let index = rule_index(
                "rejected-object".to_string(),
                "The policy rejects the object itself (it cannot be read, or the policy failed)"
                    .to_string(),
            );
            let message = object.message.as_deref().unwrap_or("rejected");
            results.push(result(
                "rejected-object",
                index,
                "error",
                format!("{}: {message}", object.title()),
                object,
                object.line.map(|line| (line, 1)),
            ));
        }
        for image in &object.images {
            let level = match image.status {
                s if s.is_denial() => "error",
                Status::Warned => "warning",
                _ => continue,
            };
            let (id, description) = rule_of(image);
            let index = rule_index(id.clone(), description);
            let r = &image.report;
            let reason = r.reason.as_deref().unwrap_or_default();
            let text = format!(
                "{}: {}: image {:?}{}: {}{reason}",
                object.title(),
                r.container,
                r.image,
                r.normalized
                    .as_ref()
                    .filter(|n| **n != r.image)
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default(),
                if image.status == Status::NotVerifiedOffline {
                    "not verified offline: "
                } else {
                    ""
                }
            );
            let at = image.line.zip(image.column);
            results.push(result(&id, index, level, text, object, at));
        }
    }
    let rules: Vec<Value> = rules
        .into_iter()
        .map(|(id, description)| {
            json!({
                "id": id,
                "shortDescription": {"text": description},
                "helpUri": "https://github.com/imagegate/imagegate#settings",
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "imagegate",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/imagegate/imagegate",
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    })
}

/// The reporting rule of an image's result: the policy rule that decided,
/// `unmatched`, or `invalid-image`.
fn rule_of(image: &ImageResult) -> (String, String) {
    let r = &image.report;
    match (&r.rule, &r.normalized) {
        (Some(rule), _) => (
            format!("rule:{rule}"),
            format!("imagegate policy rule {rule:?}"),
        ),
        (None, Some(_)) => (
            "unmatched".to_string(),
            "The image matches no rule of the policy (`unmatched`)".to_string(),
        ),
        (None, None) => (
            "invalid-image".to_string(),
            "The image is not a valid image reference".to_string(),
        ),
    }
}

fn result(
    id: &str,
    index: usize,
    level: &str,
    text: String,
    object: &ObjectResult,
    at: Option<(usize, usize)>,
) -> Value {
    let mut physical = json!({"artifactLocation": {"uri": uri(&object.source.file)}});
    if let Some((line, column)) = at {
        physical["region"] = json!({"startLine": line, "startColumn": column});
    }
    json!({
        "ruleId": id,
        "ruleIndex": index,
        "level": level,
        "message": {"text": text},
        "locations": [{
            "physicalLocation": physical,
            "logicalLocations": [{
                "fullyQualifiedName": format!("{}/{}", object.kind, object.qualified_name()),
                "kind": "resource",
            }],
        }],
    })
}

/// A file path as a URI reference: relative paths stay relative (to the
/// directory `check` ran in), absolute ones become `file://` URIs; bytes
/// outside RFC 3986's unreserved set and `/` are percent-encoded.
fn uri(path: &str) -> String {
    let mut out = String::new();
    if path.starts_with('/') {
        out.push_str("file://");
    }
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::uri;

    #[test]
    fn paths_become_uri_references() {
        assert_eq!(uri("deploy/web app.yaml"), "deploy/web%20app.yaml");
        assert_eq!(uri("/repo/x.yaml"), "file:///repo/x.yaml");
        assert_eq!(uri("-"), "-");
    }
}
