//! Where images live in each kind of object, and how to change them.
//!
//! Workloads are recognized by API group *and* kind, so a CRD whose kind
//! happens to be `Deployment` is not mistaken for one. Every image keeps the
//! JSON pointer of its string, so pinning a digest edits exactly that string
//! in the original JSON (no typed round-trip that could drop fields).

use crate::wire::AdmissionRequest;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::fmt;

/// One image found in the object: a container's, or an image volume's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSite {
    /// JSON pointer of the image string, e.g. `/spec/template/spec/containers/0/image`
    /// or `/spec/volumes/1/image/reference`.
    pub pointer: String,
    /// `containers`, `initContainers`, `ephemeralContainers` or `volumes`.
    pub list: &'static str,
    /// The container's or the volume's name (or `#<index>` when it has none).
    pub container: String,
    /// The image as written.
    pub image: String,
    /// Whether the request may change this image (on the
    /// `pods/ephemeralcontainers` subresource only ephemeral containers can).
    pub mutable: bool,
}

impl ImageSite {
    /// `container "app"`, `init container "setup"`, `ephemeral container
    /// "debugger"`, `image volume "models"`.
    pub fn describe(&self) -> String {
        let kind = match self.list {
            "initContainers" => "init container",
            "ephemeralContainers" => "ephemeral container",
            VOLUMES => "image volume",
            _ => "container",
        };
        format!("{kind} {:?}", self.container)
    }
}

const LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];
/// Image volumes (`volumes[].image.reference`, KEP-4639: beta and on by
/// default in Kubernetes 1.35) are pulled like container images, by the
/// same runtime code. No other pod spec field names an image (k8s.io/api
/// v0.36 `core/v1/types.go`).
const VOLUMES: &str = "volumes";

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
        .as_deref()
        .ok_or_else(|| format!("cannot read {what}: the request has no object"))?;
    let path: Vec<&str> = spec_ptr.split('/').skip(1).collect();
    let spec = extract(object, &path)
        .map_err(|e| format!("cannot read {what}: {e}"))?
        .ok_or_else(|| format!("cannot read {what}: {} is missing", dotted(spec_ptr)))?;
    if !spec.is_object() {
        return Err(format!(
            "cannot read {what}: {} is not an object",
            dotted(spec_ptr)
        ));
    }
    let unreadable = |at: &str, why: &str| format!("cannot read {what}: {} {why}", dotted(at));
    let mut sites = Vec::new();
    for list in LISTS.into_iter().chain([VOLUMES]) {
        let list_ptr = format!("{spec_ptr}/{list}");
        let items = match spec.get(list) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(items)) => items,
            Some(_) => return Err(unreadable(&list_ptr, "is not a list")),
        };
        for (i, item) in items.iter().enumerate() {
            let at = format!("{list_ptr}/{i}");
            let (pointer, image) = if list == VOLUMES {
                // A volume of another type has no `image`; an image volume
                // must name its image like a container.
                match item.get("image") {
                    _ if !item.is_object() => return Err(unreadable(&at, "is not an object")),
                    None | Some(Value::Null) => continue,
                    Some(source) => (
                        format!("{at}/image/reference"),
                        source
                            .get("reference")
                            .and_then(Value::as_str)
                            .ok_or_else(|| {
                                unreadable(&at, "is an image volume without a reference string")
                            })?,
                    ),
                }
            } else {
                (
                    format!("{at}/image"),
                    item.get("image")
                        .and_then(Value::as_str)
                        .ok_or_else(|| unreadable(&at, "has no image string"))?,
                )
            };
            let container = item
                .get("name")
                .and_then(Value::as_str)
                .map_or_else(|| format!("#{i}"), str::to_string);
            sites.push(ImageSite {
                pointer,
                list,
                container,
                image: image.to_string(),
                mutable: !ephemeral_only || list == "ephemeralContainers",
            });
        }
    }
    Ok(Some(sites))
}

/// Whether the request's object is a Pod (or its pre-1.23 ephemeral-containers
/// kind): the only objects `pinDigest: pods` rewrites.
pub fn is_pod(req: &AdmissionRequest) -> bool {
    req.kind.group.is_empty() && matches!(req.kind.kind.as_str(), "Pod" | "EphemeralContainers")
}

/// `Deployment "web"` for messages.
fn describe_object(req: &AdmissionRequest) -> String {
    let from_object = |key: &str| {
        let object = req.object.as_deref()?;
        match extract(object, &["metadata", key]) {
            Ok(Some(Value::String(name))) if !name.is_empty() => Some(name),
            _ => None,
        }
    };
    let name = req
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| from_object("name"))
        .or_else(|| from_object("generateName"))
        .unwrap_or_default();
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
pub fn annotation(object: &RawValue, key: &str) -> Option<String> {
    match extract(object, &["metadata", "annotations", key]) {
        Ok(Some(Value::String(value))) => Some(value),
        _ => None,
    }
}

/// Reads the value at `path` (object keys) from raw JSON, skipping everything
/// else without building it: a request carries the whole object, the engine
/// needs its pod spec. `Ok(None)` when a key is missing or a level is not an
/// object. Like a full parse, a repeated key counts with its last value.
pub fn extract(raw: &RawValue, path: &[&str]) -> Result<Option<Value>, String> {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    PathSeed(path)
        .deserialize(&mut de)
        .map_err(|e| format!("malformed object: {e}"))
}

struct PathSeed<'p>(&'p [&'p str]);

impl<'de> DeserializeSeed<'de> for PathSeed<'_> {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        match self.0.split_first() {
            None => Value::deserialize(d).map(Some),
            Some((key, rest)) => d.deserialize_any(PathVisitor { key, rest }),
        }
    }
}

struct PathVisitor<'p> {
    key: &'p str,
    rest: &'p [&'p str],
}

impl<'de> Visitor<'de> for PathVisitor<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object with {:?}", self.key)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(is_key) = map.next_key_seed(KeyIs(self.key))? {
            if is_key {
                found = map.next_value_seed(PathSeed(self.rest))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// Compares a map key with `self.0` without allocating it.
struct KeyIs<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
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

    fn raw(v: Value) -> Box<RawValue> {
        RawValue::from_string(v.to_string()).unwrap()
    }

    fn req(group: &str, kind: &str, object: Value) -> AdmissionRequest {
        AdmissionRequest {
            kind: GroupVersionKind {
                group: group.into(),
                version: "v1".into(),
                kind: kind.into(),
            },
            operation: "CREATE".into(),
            object: Some(raw(object)),
            ..Default::default()
        }
    }

    fn pod_spec() -> Value {
        json!({"containers":[{"name":"app","image":"nginx"}],
               "initContainers":[{"name":"init","image":"busybox"}],
               "ephemeralContainers":[{"name":"dbg","image":"alpine"}],
               "volumes":[{"name":"cfg","configMap":{"name":"c"}},
                          {"name":"models","image":{"reference":"ghcr.io/a/m:1","pullPolicy":"Always"}}]})
    }

    #[test]
    fn every_workload_kind_finds_all_three_lists_and_image_volumes() {
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
                    format!("{base}/ephemeralContainers/0/image"),
                    format!("{base}/volumes/1/image/reference")
                ],
                "{kind}"
            );
            assert!(sites.iter().all(|s| s.mutable));
            let volume = &sites[3];
            assert_eq!(
                (volume.describe(), volume.image.as_str()),
                (r#"image volume "models""#.to_string(), "ghcr.io/a/m:1")
            );
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
        assert_eq!(sites.len(), 4);
        let mutable: Vec<_> = sites.iter().map(|s| (s.list, s.mutable)).collect();
        assert_eq!(
            mutable,
            [
                ("containers", false),
                ("initContainers", false),
                ("ephemeralContainers", true),
                ("volumes", false)
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
    fn unreadable_image_volumes_are_errors() {
        let pod = |volumes: Value| req("", "Pod", json!({"spec":{"volumes": volumes}}));
        for (volumes, error) in [
            (json!({"a":1}), "spec.volumes is not a list"),
            (json!(["data"]), "spec.volumes[0] is not an object"),
            (
                json!([{"name":"d","image":{}}]),
                "spec.volumes[0] is an image volume without a reference string",
            ),
            (
                json!([{"name":"d","image":{"reference":7}}]),
                "spec.volumes[0] is an image volume without a reference string",
            ),
            (
                json!([{"name":"d","image":"ghcr.io/a/b"}]),
                "spec.volumes[0] is an image volume without a reference string",
            ),
        ] {
            let e = find_images(&pod(volumes)).unwrap_err();
            assert!(e.ends_with(error), "{e}");
        }
        // Other volume types, a null image and no name are fine.
        let sites = find_images(&pod(
            json!([{"name":"e","emptyDir":{}},{"name":"n","image":null},
            {"image":{"reference":""}}]),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(sites.len(), 1);
        assert_eq!(
            (sites[0].describe(), sites[0].image.as_str()),
            (r##"image volume "#2""##.to_string(), "")
        );
    }

    #[test]
    fn pod_without_containers_has_no_images() {
        let r = req("", "Pod", json!({"spec":{}}));
        assert_eq!(find_images(&r).unwrap(), Some(vec![]));
    }

    #[test]
    fn extract_reads_one_path_and_skips_the_rest() {
        let o = raw(
            json!({"a":[1,{"b":2}],"metadata":{"name":"x","annotations":{"k":"v","n":1}},"s":"t"}),
        );
        assert_eq!(
            extract(&o, &["metadata", "name"]).unwrap(),
            Some(json!("x"))
        );
        assert_eq!(annotation(&o, "k").as_deref(), Some("v"));
        assert_eq!(annotation(&o, "n"), None);
        assert_eq!(extract(&o, &["a", "b"]).unwrap(), None);
        assert_eq!(extract(&o, &["s", "x"]).unwrap(), None);
        assert_eq!(extract(&o, &["missing"]).unwrap(), None);
        // A repeated key counts with its last value, as in a full parse.
        let dup = RawValue::from_string(r#"{"k":1,"k":{"x":2}}"#.into()).unwrap();
        assert_eq!(extract(&dup, &["k", "x"]).unwrap(), Some(json!(2)));
        let escaped = RawValue::from_string(r#"{"sp\u0065c":{"a":1}}"#.into()).unwrap();
        assert_eq!(extract(&escaped, &["spec", "a"]).unwrap(), Some(json!(1)));
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
