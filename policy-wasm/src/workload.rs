//! Where images live in each kind of object, and how to change them.
//!
//! Workloads are recognized by API group *and* kind, so a CRD whose kind
//! happens to be `Deployment` is not mistaken for one. Every image keeps the
//! JSON pointer of its string, so pinning a digest edits exactly that string
//! in the original JSON (no typed round-trip that could drop fields).

use crate::wire::AdmissionRequest;
use serde_json::Value;

/// One container image found in the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSite {
    /// JSON pointer of the image string, e.g. `/spec/template/spec/containers/0/image`.
    pub pointer: String,
    /// `containers`, `initContainers` or `ephemeralContainers`.
    pub list: &'static str,
    /// The container's name (or `#<index>` when it has none).
    pub container: String,
    /// The image as written.
    pub image: String,
    /// Whether the request may change this image (on the
    /// `pods/ephemeralcontainers` subresource only ephemeral containers can).
    pub mutable: bool,
}

impl ImageSite {
    /// `container "app"`, `init container "setup"`, `ephemeral container "debugger"`.
    pub fn describe(&self) -> String {
        let kind = match self.list {
            "initContainers" => "init container",
            "ephemeralContainers" => "ephemeral container",
            _ => "container",
        };
        format!("{kind} {:?}", self.container)
    }
}

const LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// The JSON pointer of the pod spec for a workload kind, or `None` when the
/// kind carries no pod spec.
fn pod_spec_pointer(group: &str, kind: &str) -> Option<&'static str> {
    Some(match (group, kind) {
        ("", "Pod") => "/spec",
        ("", "PodTemplate") => "/template/spec",
        ("", "ReplicationController")
        | ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job")
        | ("apps.openshift.io", "DeploymentConfig") => "/spec/template/spec",
        ("batch", "CronJob") => "/spec/jobTemplate/spec/template/spec",
        // Kubernetes before 1.23 sent the ephemeralcontainers subresource as
        // this kind, with the list at the top level.
        ("", "EphemeralContainers") => "",
        _ => return None,
    })
}

/// Finds every image of the request's object.
///
/// `Ok(None)`: the request carries no pod spec (other kinds, other
/// subresources): nothing to check. `Err`: a supported kind whose object
/// cannot be read; the caller denies (fail closed).
pub fn find_images(req: &AdmissionRequest) -> Result<Option<Vec<ImageSite>>, String> {
    let Some(spec_ptr) = pod_spec_pointer(&req.kind.group, &req.kind.kind) else {
        return Ok(None);
    };
    let ephemeral_only = match req.sub_resource.as_deref() {
        None | Some("") => req.kind.kind == "EphemeralContainers",
        Some("ephemeralcontainers") => true,
        // status, scale, binding, ...: cannot change images.
        Some(_) => return Ok(None),
    };
    let what = describe_object(req);
    let object = req
        .object
        .as_ref()
        .ok_or_else(|| format!("cannot read {what}: the request has no object"))?;
    let spec = object
        .pointer(spec_ptr)
        .ok_or_else(|| format!("cannot read {what}: {} is missing", dotted(spec_ptr)))?;
    if !spec.is_object() {
        return Err(format!(
            "cannot read {what}: {} is not an object",
            dotted(spec_ptr)
        ));
    }
    let mut sites = Vec::new();
    for list in LISTS {
        let list_ptr = format!("{spec_ptr}/{list}");
        let containers = match spec.get(list) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(items)) => items,
            Some(_) => {
                return Err(format!(
                    "cannot read {what}: {} is not a list",
                    dotted(&list_ptr)
                ))
            }
        };
        for (i, c) in containers.iter().enumerate() {
            let at = format!("{list_ptr}/{i}");
            let image = c.get("image").and_then(Value::as_str).ok_or_else(|| {
                format!("cannot read {what}: {} has no image string", dotted(&at))
            })?;
            let container = c
                .get("name")
                .and_then(Value::as_str)
                .map_or_else(|| format!("#{i}"), str::to_string);
            sites.push(ImageSite {
                pointer: format!("{at}/image"),
                list,
                container,
                image: image.to_string(),
                mutable: !ephemeral_only || list == "ephemeralContainers",
            });
        }
    }
    Ok(Some(sites))
}

/// `Deployment "web"` for messages.
fn describe_object(req: &AdmissionRequest) -> String {
    let name = req
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            req.object
                .as_ref()?
                .pointer("/metadata/name")
                .or_else(|| req.object.as_ref()?.pointer("/metadata/generateName"))?
                .as_str()
        })
        .unwrap_or("");
    format!("{} {name:?}", req.kind.kind)
}

/// `/spec/containers/0` -> `spec.containers[0]`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').skip(1) {
        if part.bytes().all(|b| b.is_ascii_digit()) && !part.is_empty() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    if out.is_empty() {
        out.push_str("object");
    }
    out
}

/// The object's own annotation `key`, if it is a string.
pub fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object
        .get("metadata")?
        .get("annotations")?
        .get(key)?
        .as_str()
}

/// Sets the string at `pointer` (which `find_images` produced) to `value`.
pub fn set_image(object: &mut Value, pointer: &str, value: String) -> Result<(), String> {
    match object.pointer_mut(pointer) {
        Some(slot @ Value::String(_)) => {
            *slot = Value::String(value);
            Ok(())
        }
        _ => Err(format!("no image string at {pointer}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::GroupVersionKind;
    use serde_json::json;

    fn req(group: &str, kind: &str, object: Value) -> AdmissionRequest {
        AdmissionRequest {
            kind: GroupVersionKind {
                group: group.into(),
                version: "v1".into(),
                kind: kind.into(),
            },
            operation: "CREATE".into(),
            object: Some(object),
            ..Default::default()
        }
    }

    fn pod_spec() -> Value {
        json!({"containers":[{"name":"app","image":"nginx"}],
               "initContainers":[{"name":"init","image":"busybox"}],
               "ephemeralContainers":[{"name":"dbg","image":"alpine"}]})
    }

    #[test]
    fn every_workload_kind_finds_all_three_lists() {
        let template = json!({"spec": pod_spec()});
        let cases = [
            ("", "Pod", json!({"spec": pod_spec()}), "/spec"),
            (
                "",
                "PodTemplate",
                json!({"template": template}),
                "/template/spec",
            ),
            (
                "",
                "ReplicationController",
                json!({"spec":{"template": template}}),
                "/spec/template/spec",
            ),
            (
                "apps",
                "Deployment",
                json!({"spec":{"template": template}}),
                "/spec/template/spec",
            ),
            (
                "apps",
                "ReplicaSet",
                json!({"spec":{"template": template}}),
                "/spec/template/spec",
            ),
            (
                "apps",
                "StatefulSet",
                json!({"spec":{"template": template}}),
                "/spec/template/spec",
            ),
            (
                "apps",
                "DaemonSet",
                json!({"spec":{"template": template}}),
                "/spec/template/spec",
            ),
            (
                "batch",
                "Job",
                json!({"spec":{"template": template}}),
                "/spec/template/spec",
            ),
            (
                "apps.openshift.io",
                "DeploymentConfig",
                json!({"spec":{"template": template}}),
                "/spec/template/spec",
            ),
            (
                "batch",
                "CronJob",
                json!({"spec":{"jobTemplate":{"spec":{"template": template}}}}),
                "/spec/jobTemplate/spec/template/spec",
            ),
        ];
        for (group, kind, object, base) in cases {
            let sites = find_images(&req(group, kind, object)).unwrap().unwrap();
            let pointers: Vec<_> = sites.iter().map(|s| s.pointer.clone()).collect();
            assert_eq!(
                pointers,
                [
                    format!("{base}/containers/0/image"),
                    format!("{base}/initContainers/0/image"),
                    format!("{base}/ephemeralContainers/0/image")
                ],
                "{kind}"
            );
            assert!(sites.iter().all(|s| s.mutable));
        }
    }

    #[test]
    fn kinds_are_recognized_by_group_too() {
        let object = json!({"spec":{"template":{"spec": pod_spec()}}});
        assert_eq!(
            find_images(&req("example.com", "Deployment", object.clone())).unwrap(),
            None
        );
        assert_eq!(find_images(&req("", "ConfigMap", json!({}))).unwrap(), None);
        assert_eq!(
            find_images(&req("extensions", "Deployment", object)).unwrap(),
            None
        );
    }

    #[test]
    fn ephemeral_subresource_checks_all_but_mutates_only_ephemeral() {
        let mut r = req("", "Pod", json!({"spec": pod_spec()}));
        r.sub_resource = Some("ephemeralcontainers".into());
        let sites = find_images(&r).unwrap().unwrap();
        assert_eq!(sites.len(), 3);
        let mutable: Vec<_> = sites.iter().map(|s| (s.list, s.mutable)).collect();
        assert_eq!(
            mutable,
            [
                ("containers", false),
                ("initContainers", false),
                ("ephemeralContainers", true)
            ]
        );
        r.sub_resource = Some("status".into());
        assert_eq!(find_images(&r).unwrap(), None);
    }

    #[test]
    fn legacy_ephemeral_containers_kind() {
        let r = req(
            "",
            "EphemeralContainers",
            json!({"ephemeralContainers":[{"name":"d","image":"alpine"}]}),
        );
        let sites = find_images(&r).unwrap().unwrap();
        assert_eq!(sites[0].pointer, "/ephemeralContainers/0/image");
    }

    #[test]
    fn unreadable_objects_are_errors_that_say_why() {
        let mut r = req("", "Pod", json!({"metadata":{"name":"p"}}));
        assert_eq!(
            find_images(&r).unwrap_err(),
            r#"cannot read Pod "p": spec is missing"#
        );
        r.object = None;
        assert!(find_images(&r).unwrap_err().contains("has no object"));
        let r = req(
            "apps",
            "Deployment",
            json!({"metadata":{"name":"d"},"spec":{"template":{"spec":{"containers":{"a":1}}}}}),
        );
        assert_eq!(
            find_images(&r).unwrap_err(),
            r#"cannot read Deployment "d": spec.template.spec.containers is not a list"#
        );
        let r = req(
            "",
            "Pod",
            json!({"spec":{"containers":[{"name":"a","image":5}]}}),
        );
        assert!(find_images(&r)
            .unwrap_err()
            .ends_with("spec.containers[0] has no image string"));
    }

    #[test]
    fn pod_without_containers_has_no_images() {
        let r = req("", "Pod", json!({"spec":{}}));
        assert_eq!(find_images(&r).unwrap(), Some(vec![]));
    }

    #[test]
    fn set_image_edits_only_that_string() {
        let mut obj = json!({"spec":{"containers":[{"name":"a","image":"nginx","x-unknown":1}]}});
        set_image(
            &mut obj,
            "/spec/containers/0/image",
            "nginx@sha256:00".into(),
        )
        .unwrap();
        assert_eq!(
            obj,
            json!({"spec":{"containers":[{"name":"a","image":"nginx@sha256:00","x-unknown":1}]}})
        );
        assert!(set_image(&mut obj, "/spec/containers/1/image", "x".into()).is_err());
    }
}
