//! What the user types, read: settings YAML into a [`Policy`], a workload
//! (object, AdmissionRequest or AdmissionReview) into an [`AdmissionRequest`].
//!
//! YAML parsing lives here, not in the policy module, which stays small.

use imagegate_policy::create::{create_request, object_namespace, Requester};
use imagegate_policy::settings::Policy;
use imagegate_policy::wire::AdmissionRequest;
use serde::Serialize;
use serde_json::{Map, Value};

/// One settings error, as the page shows it next to the settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingsError {
    /// The field's path (`rules[0].tags.deny[1]`) when the error names one.
    pub path: Option<String>,
    pub message: String,
}

/// Settings YAML (empty = `{}`) -> the compiled policy and the settings as
/// JSON, or every error the engine reports (one per line, `PATH: TEXT`).
pub fn settings(text: &str) -> Result<(Policy, Value), Vec<SettingsError>> {
    let plain = |message: String| {
        vec![SettingsError {
            path: None,
            message,
        }]
    };
    let value: Value = if text.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| plain(format!("not YAML: {e}")))?
    };
    let value = match value {
        Value::Null => Value::Object(Map::new()),
        v @ Value::Object(_) => v,
        other => return Err(plain(format!("settings must be a map, got {other}"))),
    };
    match Policy::from_json(&value.to_string()) {
        Ok(policy) => Ok((policy, value)),
        Err(text) => Err(text.lines().map(settings_error).collect()),
    }
}

/// `PATH: TEXT` -> its parts; a line whose first part is not a path (it has
/// spaces) is all message.
fn settings_error(line: &str) -> SettingsError {
    match line.split_once(": ") {
        Some((path, message)) if !path.is_empty() && !path.contains(char::is_whitespace) => {
            SettingsError {
                path: Some(path.to_string()),
                message: message.to_string(),
            }
        }
        _ => SettingsError {
            path: None,
            message: line.to_string(),
        },
    }
}

/// Who sends the playground's CREATEs: an authenticated user, in `default`
/// when the object names no namespace.
fn playground_user() -> Requester {
    let mut requester = Requester::default();
    requester.user.username = Some("playground-user".to_string());
    requester
}

/// Workload YAML -> the AdmissionRequest the engine decides. Accepts an
/// AdmissionReview, a bare AdmissionRequest, or a Kubernetes object (Pod,
/// Deployment, CronJob, ...), which becomes a CREATE by a playground user.
pub fn workload(text: &str) -> Result<AdmissionRequest, String> {
    let value: Value = serde_yaml_ng::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    if !value.is_object() {
        return Err("the workload must be a Kubernetes object (a map)".into());
    }
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let request = if kind == "AdmissionReview" {
        value
            .get("request")
            .cloned()
            .ok_or("AdmissionReview has no `request`")?
    } else if value.get("operation").is_some() && value.get("object").is_some() {
        value
    } else {
        return create_request(value, &playground_user());
    };
    serde_json::from_value(request).map_err(|e| format!("invalid AdmissionRequest: {e}"))
}

/// The object as the table names it: `Deployment shop/web` (kind,
/// namespace/name; the name alone for cluster-scoped objects).
pub fn object_name(req: &AdmissionRequest) -> String {
    let object: Option<Value> = req
        .object
        .as_ref()
        .and_then(|raw| serde_json::from_str(raw.get()).ok());
    let name = req.name.clone().or_else(|| {
        object
            .as_ref()?
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let name = name.unwrap_or_else(|| "(unnamed)".to_string());
    // A Namespace's CREATE carries its own name as namespace: not shown twice.
    let cluster_scoped = object
        .as_ref()
        .is_some_and(|o| object_namespace(o, &Requester::default()).is_none());
    match req.namespace.as_deref() {
        Some(ns) if !ns.is_empty() && !cluster_scoped => format!("{} {ns}/{name}", req.kind.kind),
        _ => format!("{} {name}", req.kind.kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_errors_name_the_field() {
        let e = settings("rules:\n  - name: a\n    images: [x]\n    tags: {requiredigest: true}\n")
            .unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(
            e[0].path.as_deref().unwrap().starts_with("rules[0].tags"),
            "{e:?}"
        );
        let e = settings("- a").unwrap_err();
        assert!(e[0].path.is_none() && e[0].message.contains("must be a map"));
        let e = settings("a: [").unwrap_err();
        assert!(e[0].message.starts_with("not YAML"), "{e:?}");
        assert!(settings("").is_ok() && settings("# nothing\n").is_ok());
    }

    #[test]
    fn one_error_per_line_each_with_its_path() {
        // The engine's format for several errors: one per line, `PATH: TEXT`.
        assert_eq!(
            settings_error("rules[2].images[0]: invalid pattern \"a b\": whitespace"),
            SettingsError {
                path: Some("rules[2].images[0]".into()),
                message: "invalid pattern \"a b\": whitespace".into()
            }
        );
        assert_eq!(settings_error("settings must be a JSON object").path, None);
        assert_eq!(settings_error("unknown field `x`: expected one").path, None);
    }

    #[test]
    fn workloads_as_objects_requests_or_reviews() {
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: 'registry.corp.example/a:1'}]}\n";
        let req = workload(pod).unwrap();
        assert_eq!(req.namespace.as_deref(), Some("default"));
        assert_eq!(req.resource.resource, "pods");
        assert_eq!(object_name(&req), "Pod default/p");
        let review = format!(
            "kind: AdmissionReview\napiVersion: admission.k8s.io/v1\nrequest:\n  uid: u\n  operation: CREATE\n  namespace: x\n  kind: {{group: '', version: v1, kind: Pod}}\n  object: {}\n",
            serde_json::to_string(&serde_yaml_ng::from_str::<Value>(pod).unwrap()).unwrap()
        );
        let req = workload(&review).unwrap();
        assert_eq!(
            (req.uid.as_str(), req.namespace.as_deref()),
            ("u", Some("x"))
        );
        assert_eq!(object_name(&req), "Pod x/p");
        assert!(workload("[1]").is_err());
        assert!(workload("metadata: {}").unwrap_err().contains("kind"));
        // As the API server sends them: a Namespace in itself, a ClusterRole in none.
        let ns = workload("apiVersion: v1\nkind: Namespace\nmetadata: {name: payments}\n").unwrap();
        assert_eq!(ns.namespace.as_deref(), Some("payments"));
        assert_eq!(object_name(&ns), "Namespace payments");
        let role =
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r}\n";
        let role = workload(role).unwrap();
        assert_eq!(
            (role.namespace, role.resource.resource.as_str()),
            (None, "clusterroles")
        );
        assert_eq!(
            req.user_info.username.as_deref(),
            None,
            "the review's own requester"
        );
        let pod = workload(pod).unwrap();
        assert_eq!(pod.user_info.username.as_deref(), Some("playground-user"));
    }
}
