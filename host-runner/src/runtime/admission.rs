//! What policy-evaluator does around the two waPC calls: read the request
//! and settings the way kwctl does, build the `validate` payload, and turn the
//! guest's ValidationResponse into an AdmissionResponse (JSON patch diff,
//! status, internal-server-error and timeout rejections).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

use anyhow::{bail, Context as _};
use base64::Engine as _;
use imagegate_policy::wire::{
    ExplainedResponse, ImageReport, SettingsValidationResponse, ValidationResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{CallError, Invoke};

/// The CREATE of a bare object is built as the playground builds it.
pub use imagegate_policy::create::{create_request, object_namespace, Requester};
/// The request is the guest's type; what the host reads differently is
/// [`request_from_value`]'s business.
pub use imagegate_policy::wire::AdmissionRequest;

/// What policy-evaluator's typed AdmissionRequest requires, which the
/// guest's lenient type defaults: `(field, required, its inner fields)`; an
/// optional field, when present, needs its inner fields.
const REQUIRED_FIELDS: &[(&str, bool, &[&str])] = &[
    ("uid", true, &[]),
    ("kind", true, &["group", "version", "kind"]),
    ("resource", true, &["group", "version", "resource"]),
    ("requestKind", false, &["group", "version", "kind"]),
    ("requestResource", false, &["group", "version", "resource"]),
    ("operation", true, &[]),
    ("userInfo", true, &[]),
];

/// Reads an AdmissionRequest as policy-evaluator does: the fields it
/// requires must be there (a broken request is an error, not a denial),
/// unknown fields are dropped. Errors are serde's texts.
pub fn request_from_value(value: Value) -> Result<AdmissionRequest, String> {
    if value.is_object() {
        for (field, required, inner) in REQUIRED_FIELDS {
            match value.get(field) {
                None if *required => return Err(format!("missing field `{field}`")),
                None => {}
                Some(v) => {
                    if let Some(missing) = inner.iter().find(|f| v.get(f).is_none()) {
                        return Err(format!("missing field `{missing}`"));
                    }
                }
            }
        }
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// The AdmissionResponse exactly as `kwctl run` prints it (key order,
/// omitted and null keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    pub uid: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<AdmissionResponseStatus>,
    pub audit_annotations: Option<BTreeMap<String, String>>,
    pub warnings: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionResponseStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
}

/// Rejection for a mutation of a request without `object` (DELETE).
pub const MUTATION_WITHOUT_OBJECT: &str = "Incoming object is null, which happens only with DELETE operations, but the policy is attempting a mutation. This is not allowed";

impl AdmissionResponse {
    pub fn reject(uid: &str, message: String, code: u16) -> Self {
        AdmissionResponse {
            uid: uid.to_string(),
            allowed: false,
            status: Some(AdmissionResponseStatus {
                message: Some(message),
                code: Some(code),
            }),
            ..Default::default()
        }
    }

    pub fn internal_server_error(uid: &str, message: impl std::fmt::Display) -> Self {
        Self::reject(uid, format!("internal server error: {message}"), 500)
    }

    /// The decoded JSON patch, if any.
    pub fn decoded_patch(&self) -> anyhow::Result<Option<Value>> {
        let Some(patch) = &self.patch else {
            return Ok(None);
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .context("patch is not base64")?;
        Ok(Some(
            serde_json::from_slice(&bytes).context("patch is not JSON")?,
        ))
    }

    /// policy-evaluator's `from_policy_validation_response`.
    pub fn from_validation(
        uid: &str,
        object: Option<&Value>,
        resp: ValidationResponse,
    ) -> anyhow::Result<Self> {
        let patch = match (&resp.mutated_object, object) {
            (Some(_), None) => {
                return Ok(AdmissionResponse {
                    uid: uid.to_string(),
                    allowed: false,
                    status: Some(AdmissionResponseStatus {
                        message: Some(MUTATION_WITHOUT_OBJECT.to_string()),
                        code: None,
                    }),
                    ..Default::default()
                })
            }
            (Some(mutated), Some(original)) => {
                let diff = json_patch::diff(original, mutated);
                if diff.0.is_empty() {
                    None
                } else {
                    let text =
                        serde_json::to_string(&diff).context("cannot serialize JSONPatch")?;
                    Some(base64::engine::general_purpose::STANDARD.encode(text))
                }
            }
            (None, _) => None,
        };
        let status =
            (resp.message.is_some() || resp.code.is_some()).then(|| AdmissionResponseStatus {
                message: resp.message.clone(),
                code: resp.code,
            });
        Ok(AdmissionResponse {
            uid: uid.to_string(),
            allowed: resp.accepted,
            patch_type: patch.as_ref().map(|_| "JSONPatch".to_string()),
            patch,
            status,
            audit_annotations: resp.audit_annotations,
            warnings: resp.warnings,
        })
    }
}

/// Reads an AdmissionRequest, a whole AdmissionReview (top-level `kind:
/// AdmissionReview`, then `.request`) or a bare object (any other string
/// `kind`: a Pod, a Deployment..., wrapped as the CREATE the API server would
/// send, see [`create_request`]) from JSON or YAML text.
pub fn parse_request(text: &str, requester: &Requester) -> anyhow::Result<AdmissionRequest> {
    let documents = serde_yaml_ng::Deserializer::from_str(text).count();
    if documents > 1 {
        bail!("{documents} YAML documents: one request or object is evaluated at a time (`imagegate check` evaluates many)");
    }
    let value: Value = serde_yaml_ng::from_str(text).context("request is neither JSON nor YAML")?;
    let value = match value.get("kind").and_then(Value::as_str) {
        Some("AdmissionReview") => value
            .get("request")
            .cloned()
            .context("AdmissionReview has no `request`")?,
        // An AdmissionRequest's `kind` is a group/version/kind map.
        Some(_) => return create_request(value, requester).map_err(anyhow::Error::msg),
        None => value,
    };
    request_from_value(value)
        .map_err(anyhow::Error::msg)
        .context("invalid AdmissionRequest")
}

/// `-r PATH`, `-` = stdin.
pub fn read_request(path: &Path, requester: &Requester) -> anyhow::Result<AdmissionRequest> {
    let text = if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the request from stdin")?;
        s
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read request {}", path.display()))?
    };
    parse_request(&text, requester).with_context(|| format!("in request {}", path.display()))
}

/// Settings from YAML or JSON text: a map, or null/empty (= `{}`).
pub fn parse_settings(text: &str) -> anyhow::Result<Map<String, Value>> {
    let value: Value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_yaml_ng::from_str(text).context("settings are neither JSON nor YAML")?
    };
    match value {
        Value::Null => Ok(Map::new()),
        Value::Object(m) => Ok(m),
        other => bail!("settings must be a map or null, got {other}"),
    }
}

pub fn read_settings(path: &Path) -> anyhow::Result<Map<String, Value>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read settings {}", path.display()))?;
    parse_settings(&text).with_context(|| format!("in settings {}", path.display()))
}

/// The module's settings errors (one per line, `PATH: TEXT`, the path as
/// `rules[2].images[0]`) with where each is in the settings file `path`:
/// `settings.yaml:12:7: rules[2].images[0]: ...`. An error whose path is not
/// in the file (a missing field) points at the nearest node that is; an
/// unknown field at its key. Lines without a path, or a file that is not
/// YAML, are left as they are.
pub fn locate_settings_errors(path: &Path, message: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let Some(document) = crate::positions::index(&text)
        .ok()
        .and_then(|docs| docs.into_iter().next())
    else {
        return message.to_string();
    };
    let file = path.display();
    message
        .lines()
        .map(|line| {
            // `PATH: TEXT`, PATH without spaces but in a quoted key
            // (`keys["my key"]`); `settings` or no path: the top level;
            // `and N more` as it is.
            let (settings_path, text) = match line.split_once(": ") {
                Some((p, t)) if is_settings_path(p) => (p, t),
                _ if line.starts_with("and ") && line.ends_with(" more") => {
                    return line.to_string()
                }
                _ => ("", line),
            };
            let mut steps = match settings_path {
                "settings" => Vec::new(),
                path => crate::positions::settings_path_steps(path),
            };
            if let Some(field) = text
                .strip_prefix("unknown field `")
                .and_then(|t| t.split_once('`'))
            {
                steps.push(field.0.to_string());
            }
            let (at, _) = document.locate(&steps);
            format!("{file}:{}:{}: {line}", at.line, at.column)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `p` is a settings path (`rules[1].images[0]`, `keys["my key"]`).
fn is_settings_path(p: &str) -> bool {
    let outside_quotes = p.split("[\"").next().unwrap_or(p);
    !p.is_empty() && !p.contains('`') && !outside_quotes.contains(' ')
}

/// `validate_settings`, with policy-evaluator's error handling.
pub fn validate_settings(
    invoker: &mut impl Invoke,
    settings: &Map<String, Value>,
) -> SettingsValidationResponse {
    let payload = Value::Object(settings.clone()).to_string();
    match invoker.invoke("validate_settings", payload.as_bytes()) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| SettingsValidationResponse {
                valid: false,
                message: Some(format!("error: {e}")),
            })
        }
        Err(err) => SettingsValidationResponse {
            valid: false,
            message: Some(format!(
                "Error invoking settings validation callback: {}",
                settings_error(&err)
            )),
        },
    }
}

/// kwctl prints the waPC error's Debug form here (`GuestCallFailure("…")`).
fn settings_error(err: &CallError) -> String {
    match err {
        CallError::GuestCallFailure(m) => format!("GuestCallFailure({m:?})"),
        other => other.to_string(),
    }
}

/// The `validate` payload: `{"request": ..., "settings": {...}}`, exactly as
/// policy-evaluator writes it; with `explain`, also `"imagegate_explain":
/// true` (imagegate's own key: the module then adds its per-image reports).
pub fn validation_payload(
    request: &AdmissionRequest,
    settings: &Map<String, Value>,
    explain: bool,
) -> anyhow::Result<Vec<u8>> {
    #[derive(Serialize)]
    struct Payload<'a> {
        request: &'a AdmissionRequest,
        settings: &'a Map<String, Value>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        imagegate_explain: bool,
    }
    serde_json::to_vec(&Payload {
        request,
        settings,
        imagegate_explain: explain,
    })
    .context("cannot serialize validation params")
}

/// `validate`, turned into the AdmissionResponse policy-server would send.
pub fn validate(
    invoker: &mut impl Invoke,
    request: &AdmissionRequest,
    settings: &Map<String, Value>,
) -> AdmissionResponse {
    evaluate(invoker, request, settings, false).0
}

/// [`validate`], plus the module's report on every image (`imagegate check`,
/// `run --output text`): the same module, host and response, asked
/// `imagegate_explain`. No reports when the module could not answer (a
/// timeout, a trap) or the request was decided without looking at images.
pub fn explain(
    invoker: &mut impl Invoke,
    request: &AdmissionRequest,
    settings: &Map<String, Value>,
) -> (AdmissionResponse, Vec<ImageReport>) {
    evaluate(invoker, request, settings, true)
}

fn evaluate(
    invoker: &mut impl Invoke,
    request: &AdmissionRequest,
    settings: &Map<String, Value>,
    explain: bool,
) -> (AdmissionResponse, Vec<ImageReport>) {
    let uid = request.uid.as_str();
    let payload = match validation_payload(request, settings, explain) {
        Ok(p) => p,
        Err(e) => {
            return (
                AdmissionResponse::internal_server_error(uid, format!("{e:#}")),
                Vec::new(),
            )
        }
    };
    let mut reports = Vec::new();
    let response = match invoker.invoke("validate", &payload) {
        Ok(bytes) => read_response(&bytes, explain, &mut reports)
            .and_then(|resp| {
                // The object is parsed only to diff a mutation against it.
                let object = match (&resp.mutated_object, &request.object) {
                    (Some(_), Some(raw)) => Some(
                        serde_json::from_str::<Value>(raw.get())
                            .context("cannot read the request object")?,
                    ),
                    _ => None,
                };
                AdmissionResponse::from_validation(uid, object.as_ref(), resp)
            })
            .unwrap_or_else(|e| AdmissionResponse::internal_server_error(uid, format!("{e:#}"))),
        Err(CallError::Timeout) => {
            AdmissionResponse::reject(uid, crate::runtime::TIMEOUT_MESSAGE.to_string(), 500)
        }
        Err(e) => AdmissionResponse::internal_server_error(uid, e),
    };
    (response, reports)
}

/// The guest's answer: a ValidationResponse, or with `explain` an
/// ExplainedResponse whose reports go to `reports`.
fn read_response(
    bytes: &[u8],
    explain: bool,
    reports: &mut Vec<ImageReport>,
) -> anyhow::Result<ValidationResponse> {
    if !explain {
        return serde_json::from_slice(bytes)
            .map_err(|e| anyhow::anyhow!("invalid ValidationResponse: {e}"));
    }
    let explained: ExplainedResponse = serde_json::from_slice(bytes)
        .map_err(|e| anyhow::anyhow!("invalid ValidationResponse with imagegate_verdicts: {e}"))?;
    *reports = explained.imagegate_verdicts;
    Ok(explained.response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resp(v: Value) -> ValidationResponse {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn kwctl_line_format() {
        let r = AdmissionResponse::from_validation(
            "u",
            Some(&json!({"a": 1})),
            resp(json!({"accepted": true})),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"uid":"u","allowed":true,"auditAnnotations":null,"warnings":null}"#
        );
    }

    #[test]
    fn patch_is_the_base64_json_patch_diff() {
        let original = json!({"spec": {"containers": [{"image": "nginx"}]}});
        let mutated = json!({"spec": {"containers": [{"image": "nginx@sha256:abc"}]}});
        let r = AdmissionResponse::from_validation(
            "u",
            Some(&original),
            resp(json!({"accepted": true, "mutated_object": mutated})),
        )
        .unwrap();
        assert_eq!(r.patch_type.as_deref(), Some("JSONPatch"));
        assert_eq!(
            r.decoded_patch().unwrap().unwrap(),
            json!([{"op": "replace", "path": "/spec/containers/0/image", "value": "nginx@sha256:abc"}])
        );
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.starts_with(r#"{"uid":"u","allowed":true,"patchType":"JSONPatch","patch":""#));
    }

    #[test]
    fn unchanged_mutation_gives_no_patch() {
        let o = json!({"a": 1});
        let r = AdmissionResponse::from_validation(
            "u",
            Some(&o),
            resp(json!({"accepted": true, "mutated_object": o})),
        )
        .unwrap();
        assert!(r.patch.is_none() && r.patch_type.is_none());
    }

    #[test]
    fn mutation_without_object_is_rejected() {
        let r = AdmissionResponse::from_validation(
            "u",
            None,
            resp(json!({"accepted": true, "mutated_object": {"a": 1}})),
        )
        .unwrap();
        assert!(!r.allowed);
        assert_eq!(
            r.status.unwrap().message.as_deref(),
            Some(MUTATION_WITHOUT_OBJECT)
        );
    }

    #[test]
    fn status_only_when_message_or_code() {
        let r = AdmissionResponse::from_validation(
            "u",
            None,
            resp(json!({"accepted": true, "code": 299})),
        )
        .unwrap();
        assert_eq!(serde_json::to_string(&r.status).unwrap(), r#"{"code":299}"#);
        let r = AdmissionResponse::from_validation(
            "u",
            None,
            resp(json!({"accepted": false, "message": "no", "warnings": ["w"], "audit_annotations": {"k": "v"}})),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"uid":"u","allowed":false,"status":{"message":"no"},"auditAnnotations":{"k":"v"},"warnings":["w"]}"#
        );
    }

    #[test]
    fn request_or_review_in_json_or_yaml() {
        let bare = r#"{"uid":"1","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"operation":"CREATE","userInfo":{},"unknownField":1}"#;
        let r = parse_request(bare, &Requester::default()).unwrap();
        assert_eq!(r.uid, "1");
        let review =
            format!("apiVersion: admission.k8s.io/v1\nkind: AdmissionReview\nrequest: {bare}\n");
        assert_eq!(
            parse_request(&review, &Requester::default()).unwrap().uid,
            "1"
        );
        // unknown fields are dropped, absent ones omitted
        let payload = validation_payload(&r, &Map::new(), false).unwrap();
        assert_eq!(
            String::from_utf8(payload).unwrap(),
            r#"{"request":{"uid":"1","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"operation":"CREATE","userInfo":{}},"settings":{}}"#
        );
    }

    #[test]
    fn requests_need_what_policy_evaluator_requires() {
        let full = json!({"uid": "1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE", "userInfo": {"extra": {"k": ["v"]}}, "options": {"a": 1},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"}});
        let r = request_from_value(full.clone()).unwrap();
        // What the engine never reads is passed on as it came.
        let payload =
            String::from_utf8(validation_payload(&r, &Map::new(), false).unwrap()).unwrap();
        assert!(
            payload.contains(r#""requestResource":{"group":"","version":"v1","resource":"pods"}"#),
            "{payload}"
        );
        assert!(
            payload.contains(r#""userInfo":{"extra":{"k":["v"]}}"#),
            "{payload}"
        );
        assert!(payload.contains(r#""options":{"a":1}"#), "{payload}");
        let without = |pointer: &str| {
            let mut v = full.clone();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            v.pointer_mut(parent)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .remove(key);
            request_from_value(v).map(|_| ()).unwrap_err()
        };
        assert_eq!(without("/uid"), "missing field `uid`");
        assert_eq!(without("/userInfo"), "missing field `userInfo`");
        assert_eq!(without("/kind/group"), "missing field `group`");
        assert_eq!(without("/resource/resource"), "missing field `resource`");
        assert_eq!(
            without("/requestResource/version"),
            "missing field `version`"
        );
        assert!(request_from_value(json!("x")).is_err());
    }

    #[test]
    fn settings_errors_say_where_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("settings.yaml");
        std::fs::write(
            &file,
            "# comment\nrules:\n- name: a\n  images: [x/y]\n- name: b\n  images:\n  - ok/x\n  - https://ghcr.io/corp/**\n  tagz: {}\nrulez: 1\n",
        )
        .unwrap();
        let f = file.display();
        let located = locate_settings_errors(
            &file,
            "rules[1].images[1]: invalid pattern \"https://ghcr.io/corp/**\": patterns are image references\n\
             rules[1]: unknown field `tagz`, expected one of `name`, `images`\n\
             rules[0].verify: missing\n\
             settings: unknown field `rulez`, expected one of `rules`\n\
             settings must be a JSON object\n\
             and 3 more",
        );
        assert_eq!(
            located,
            format!(
                "{f}:8:5: rules[1].images[1]: invalid pattern \"https://ghcr.io/corp/**\": patterns are image references\n\
                 {f}:9:9: rules[1]: unknown field `tagz`, expected one of `name`, `images`\n\
                 {f}:3:3: rules[0].verify: missing\n\
                 {f}:10:8: settings: unknown field `rulez`, expected one of `rules`\n\
                 {f}:2:1: settings must be a JSON object\n\
                 and 3 more"
            )
        );
        std::fs::write(&file, "a: [\n").unwrap();
        assert_eq!(locate_settings_errors(&file, "x: y"), "x: y");
    }

    #[test]
    fn settings_must_be_a_map_or_null() {
        assert!(parse_settings("").unwrap().is_empty());
        assert!(parse_settings("null").unwrap().is_empty());
        assert_eq!(parse_settings("a: 1").unwrap()["a"], 1);
        assert_eq!(parse_settings(r#"{"a": [1]}"#).unwrap()["a"], json!([1]));
        assert!(parse_settings("[1]").is_err());
    }

    /// The scalars YAML 1.1 and YAML 1.2 parsers read differently: settings
    /// files (and requests) must keep meaning what they meant, whatever YAML
    /// crate reads them.
    #[test]
    fn yaml_scalars_keep_their_meaning() {
        let s = parse_settings(
            "yes: yes\non: on\noff: off\ny: y\nNO: NO\ntrue: True\noctal: 0o17\nleading_zero: 017\n\
             hex: 0x1f\nsexagesimal: 1:30\ntilde: ~\ninf: .inf\nunderscore: 1_000\n\
             date: 2001-12-14\nfloat: 1.0\nexp: 1e3\n",
        )
        .unwrap();
        // YAML 1.2 core schema booleans and octal; what 1.1 would read as
        // booleans, octal 017, sexagesimal or a date stays a string.
        assert_eq!(
            Value::Object(s),
            json!({
                "yes": "yes", "on": "on", "off": "off", "y": "y", "NO": "NO", "true": true,
                "octal": 15, "leading_zero": "017", "hex": 31, "sexagesimal": "1:30",
                "tilde": null, "inf": null, "underscore": "1_000", "date": "2001-12-14",
                "float": 1.0, "exp": 1000.0,
            })
        );
    }
}
