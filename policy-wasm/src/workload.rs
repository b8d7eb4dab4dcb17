//! Where images live in each kind of object, and how to change them.
//!
//! Workloads are recognized by API group *and* kind, so a CRD whose kind
//! happens to be `Deployment` is not mistaken for one. Every image keeps the
//! JSON pointer of its string, so pinning a digest edits exactly that string
//! in the original JSON (no typed round-trip that could drop fields).

use crate::json::{self, Kind, Reader, Skip};
use crate::wire::{AdmissionRequest, GroupVersionKind, RawJson};
use serde_json::Value;

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
///
/// The object is read in place: the pod spec is found, its container lists
/// read for `name` and `image`, everything else passed over. Like a full
/// parse of the spec, a repeated key counts with its last value, and the
/// spec must be valid as a whole.
///
/// `spec`: what [`read_spec`] read of this very object, when the payload
/// reader passed it there (then it is not read a second time).
pub(crate) fn find_images(
    req: &AdmissionRequest,
    spec: Option<Spec>,
) -> Result<Option<Vec<ImageSite>>, String> {
    let Some(spec_ptr) = pod_spec_pointer(&req.kind.group, &req.kind.kind) else {
        return Ok(None);
    };
    let ephemeral_only = match req.sub_resource.as_deref() {
        None | Some("") => req.kind.kind == "EphemeralContainers",
        Some("ephemeralcontainers") => true,
        // status, scale, binding, ...: cannot change images.
        Some(_) => return Ok(None),
    };
    let cannot = |why: String| format!("cannot read {}: {why}", describe_object(req));
    let object = req
        .object
        .as_ref()
        .ok_or_else(|| cannot("the request has no object".to_string()))?;
    let found = match spec {
        Some(Spec(found)) => found,
        None => {
            let (path, depth) = spec_path(spec_ptr);
            json::lookup(object.get(), &path[..depth], Skip::Raw, &mut read_lists)
                .map_err(|e| cannot(format!("malformed object: {e}")))?
        }
    };
    let lists = found
        .ok_or_else(|| cannot(format!("{} is missing", dotted(spec_ptr))))?
        .ok_or_else(|| cannot(format!("{} is not an object", dotted(spec_ptr))))?;
    let mut sites = Vec::new();
    for (list, found) in LISTS.into_iter().chain([VOLUMES]).zip(lists) {
        let list_ptr = [spec_ptr, "/", list].concat();
        let items = match found {
            None => continue,
            Some(List::NotAList) => {
                return Err(cannot(format!("{} is not a list", dotted(&list_ptr))));
            }
            Some(List::Items(items)) => items,
        };
        for (i, item) in items.into_iter().enumerate() {
            let at = [&list_ptr, "/", &decimal(i)].concat();
            let unreadable = |why: &str| cannot(format!("{} {why}", dotted(&at)));
            let (pointer, image) = if list == VOLUMES {
                // A volume of another type has no `image`; an image volume
                // must name its image like a container.
                match item {
                    Item { object: false, .. } => return Err(unreadable("is not an object")),
                    Item { image: None, .. } => continue,
                    Item {
                        image: Some(image), ..
                    } => (
                        [&at, "/image/reference"].concat(),
                        image.ok_or_else(|| {
                            unreadable("is an image volume without a reference string")
                        })?,
                    ),
                }
            } else {
                (
                    [&at, "/image"].concat(),
                    item.image
                        .flatten()
                        .ok_or_else(|| unreadable("has no image string"))?,
                )
            };
            sites.push(ImageSite {
                pointer,
                list,
                container: item.name.unwrap_or_else(|| ["#", &decimal(i)].concat()),
                image,
                mutable: !ephemeral_only || list == "ephemeralContainers",
            });
        }
    }
    Ok(Some(sites))
}

/// The keys of a pod spec pointer (`/spec/template/spec`: `spec`,
/// `template`, `spec`), and how many.
fn spec_path(spec_ptr: &'static str) -> ([&'static str; 5], usize) {
    let mut path = [""; 5];
    let depth = spec_ptr
        .split('/')
        .skip(1)
        .zip(&mut path)
        .map(|(p, slot)| *slot = p)
        .count();
    (path, depth)
}

/// What an object holds at its pod spec, read by [`read_spec`].
pub(crate) struct Spec(Option<Option<[Option<List>; 4]>>);

/// Reads the object `r` is at for the pod spec of `kind`, as
/// [`find_images`] reads it, so that the payload's reader passes over the
/// object once. `None` (nothing read) when `kind` carries no pod spec or
/// the object does not read so: then the payload's reader passes over it
/// as any value, and [`find_images`] reads it again to say why.
pub(crate) fn read_spec(r: &mut Reader<'_>, kind: &GroupVersionKind) -> Option<Spec> {
    let spec_ptr = pod_spec_pointer(&kind.group, &kind.kind)?;
    r.peek().ok()?;
    // A reader of its own: error offsets and nesting depth count from the
    // object, as when `find_images` reads the object's text.
    let mut object = Reader::new(&r.text()[r.pos()..]);
    let (path, depth) = spec_path(spec_ptr);
    let found = json::lookup_in(&mut object, &path[..depth], Skip::Raw, &mut read_lists).ok()?;
    r.advance(object.pos());
    Some(Spec(found))
}

/// `i` in decimal (without the formatting machinery: once per container
/// of every request).
fn decimal(mut i: usize) -> String {
    let mut digits = Vec::new();
    loop {
        digits.push(b'0' + (i % 10) as u8);
        i /= 10;
        if i == 0 {
            break;
        }
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

/// What a pod spec holds under one of [`LISTS`] or [`VOLUMES`].
enum List {
    NotAList,
    Items(Vec<Item>),
}

/// What the engine reads of a container or a volume.
struct Item {
    /// Whether the item is an object (nothing else is read when not).
    object: bool,
    /// `name`, when a string.
    name: Option<String>,
    /// `None`: no `image`, or a null one. A container's `image`, a volume's
    /// `image.reference`, each `Some(None)` when not a string.
    image: Option<Option<String>>,
}

/// The container lists and the volumes of the pod spec `r` is at (`None`
/// per list when absent or null), or `None` when the spec is not an object
/// (passed over as into a `Value`, as the whole spec is read).
fn read_lists(r: &mut Reader<'_>) -> Result<Option<[Option<List>; 4]>, json::Error> {
    if r.peek()? != Kind::Object {
        r.skip(Skip::Value)?;
        return Ok(None);
    }
    let mut lists = [None, None, None, None];
    let mut entries = r.object()?;
    while let Some(key) = r.key(&mut entries)? {
        let Some(slot) = LISTS.into_iter().chain([VOLUMES]).position(|l| l == key) else {
            r.skip(Skip::Value)?;
            continue;
        };
        lists[slot] = match r.peek()? {
            Kind::Null => r.null().map(|()| None)?,
            Kind::Array => Some(List::Items(read_items(r, slot == LISTS.len())?)),
            _ => r.skip(Skip::Value).map(|()| Some(List::NotAList))?,
        };
    }
    Ok(Some(lists))
}

/// The items of a container list, or of the volumes (`volumes`).
fn read_items(r: &mut Reader<'_>, volumes: bool) -> Result<Vec<Item>, json::Error> {
    let mut found = Vec::new();
    let mut items = r.array()?;
    while r.item(&mut items)? {
        let mut item = Item {
            object: r.peek()? == Kind::Object,
            name: None,
            image: None,
        };
        if !item.object {
            r.skip(Skip::Value)?;
            found.push(item);
            continue;
        }
        let mut entries = r.object()?;
        while let Some(key) = r.key(&mut entries)? {
            match (&*key, r.peek()?) {
                ("name", Kind::String) => item.name = Some(r.string()?.into_owned()),
                ("name", _) => r.skip(Skip::Value).map(|()| item.name = None)?,
                ("image", Kind::Null) if volumes => r.null().map(|()| item.image = None)?,
                ("image", Kind::Object) if volumes => item.image = Some(read_reference(r)?),
                ("image", Kind::String) if !volumes => {
                    item.image = Some(Some(r.string()?.into_owned()))
                }
                ("image", _) => r.skip(Skip::Value).map(|()| item.image = Some(None))?,
                _ => r.skip(Skip::Value)?,
            }
        }
        found.push(item);
    }
    Ok(found)
}

/// An image volume source's `reference`, when a string.
fn read_reference(r: &mut Reader<'_>) -> Result<Option<String>, json::Error> {
    let mut reference = None;
    let mut entries = r.object()?;
    while let Some(key) = r.key(&mut entries)? {
        reference = match (&*key, r.peek()?) {
            ("reference", Kind::String) => Some(r.string()?.into_owned()),
            ("reference", _) => r.skip(Skip::Value).map(|()| None)?,
            _ => r.skip(Skip::Value).map(|()| reference)?,
        };
    }
    Ok(reference)
}

/// Whether the request's object is a Pod (or its pre-1.23 ephemeral-containers
/// kind): the only objects `pinDigest: pods` rewrites.
pub fn is_pod(req: &AdmissionRequest) -> bool {
    req.kind.group.is_empty() && matches!(req.kind.kind.as_str(), "Pod" | "EphemeralContainers")
}

/// `Deployment "web"` for messages.
fn describe_object(req: &AdmissionRequest) -> String {
    let from_object = |key: &str| {
        let object = req.object.as_ref()?;
        string_at(object, &["metadata", key]).filter(|name| !name.is_empty())
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
pub fn annotation(object: &RawJson, key: &str) -> Option<String> {
    string_at(object, &["metadata", "annotations", key])
}

/// The string at `path` (object keys) of `object`, if there is one.
fn string_at(object: &RawJson, path: &[&str]) -> Option<String> {
    let mut string = |r: &mut Reader<'_>| match r.peek()? {
        Kind::String => r.string().map(|s| Some(s.into_owned())),
        _ => r.skip(Skip::Value).map(|()| None),
    };
    json::lookup(object.get(), path, Skip::Raw, &mut string).ok()??
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

    fn raw(v: Value) -> RawJson {
        RawJson::to_raw(&v).unwrap()
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
            let sites = find_images(&req(group, kind, object), None)
                .unwrap()
                .unwrap();
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
            find_images(&req("example.com", "Deployment", object.clone()), None).unwrap(),
            None
        );
        assert_eq!(
            find_images(&req("", "ConfigMap", json!({})), None).unwrap(),
            None
        );
        assert_eq!(
            find_images(&req("extensions", "Deployment", object), None).unwrap(),
            None
        );
    }

    #[test]
    fn ephemeral_subresource_checks_all_but_mutates_only_ephemeral() {
        let mut r = req("", "Pod", json!({"spec": pod_spec()}));
        r.sub_resource = Some("ephemeralcontainers".into());
        let sites = find_images(&r, None).unwrap().unwrap();
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
        assert_eq!(find_images(&r, None).unwrap(), None);
    }

    #[test]
    fn legacy_ephemeral_containers_kind() {
        let r = req(
            "",
            "EphemeralContainers",
            json!({"ephemeralContainers":[{"name":"d","image":"alpine"}]}),
        );
        let sites = find_images(&r, None).unwrap().unwrap();
        assert_eq!(sites[0].pointer, "/ephemeralContainers/0/image");
    }

    #[test]
    fn unreadable_objects_are_errors_that_say_why() {
        let mut r = req("", "Pod", json!({"metadata":{"name":"p"}}));
        assert_eq!(
            find_images(&r, None).unwrap_err(),
            r#"cannot read Pod "p": spec is missing"#
        );
        r.object = None;
        assert!(find_images(&r, None).unwrap_err().contains("has no object"));
        let r = req(
            "apps",
            "Deployment",
            json!({"metadata":{"name":"d"},"spec":{"template":{"spec":{"containers":{"a":1}}}}}),
        );
        assert_eq!(
            find_images(&r, None).unwrap_err(),
            r#"cannot read Deployment "d": spec.template.spec.containers is not a list"#
        );
        let r = req(
            "",
            "Pod",
            json!({"spec":{"containers":[{"name":"a","image":5}]}}),
        );
        assert!(find_images(&r, None)
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
            let e = find_images(&pod(volumes), None).unwrap_err();
            assert!(e.ends_with(error), "{e}");
        }
        // Other volume types, a null image and no name are fine.
        let sites = find_images(
            &pod(json!([{"name":"e","emptyDir":{}},{"name":"n","image":null},
            {"image":{"reference":""}}])),
            None,
        )
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
        assert_eq!(find_images(&r, None).unwrap(), Some(vec![]));
    }

    #[test]
    fn annotations_are_strings_of_the_object_itself() {
        let o = raw(
            json!({"metadata":{"name":"x","annotations":{"k":"v","n":1}},"spec":{"metadata":{"annotations":{"s":"t"}}}}),
        );
        assert_eq!(annotation(&o, "k").as_deref(), Some("v"));
        assert_eq!(annotation(&o, "n"), None);
        assert_eq!(annotation(&o, "s"), None);
        assert_eq!(annotation(&o, "missing"), None);
    }

    #[test]
    fn the_spec_is_read_like_a_full_parse() {
        let pod = |spec: &str| {
            let mut r = req("", "Pod", json!({}));
            r.object = Some(RawJson(
                format!(r#"{{"metadata":{{"name":"p"}},"spec":{spec}}}"#).into(),
            ));
            find_images(&r, None)
        };
        // A repeated key counts with its last value, at every level.
        let sites = pod(r#"{"containers":[{"name":"a","image":"x"}],"containers":[{"image":"y","name":"b","image":"z"}]}"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                sites.len(),
                sites[0].container.as_str(),
                sites[0].image.as_str()
            ),
            (1, "b", "z")
        );
        // Lists come in their fixed order, whatever the order of the keys.
        let sites = pod(r#"{"initContainers":[{"image":"i"}],"containers":[{"name":7,"image":"c"}],"ephemeralContainers":null}"#)
            .unwrap()
            .unwrap();
        let found: Vec<_> = sites
            .iter()
            .map(|s| (s.list, s.container.as_str(), s.pointer.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("containers", "#0", "/spec/containers/0/image"),
                ("initContainers", "#0", "/spec/initContainers/0/image")
            ]
        );
        // The first error in that order is the one reported.
        assert_eq!(
            pod(r#"{"initContainers":5,"containers":[{"image":"c"},"x"]}"#).unwrap_err(),
            r#"cannot read Pod "p": spec.containers[1] has no image string"#
        );
        // Anything a Value could not hold makes the spec unreadable; elsewhere it is passed over.
        assert!(pod(r#"{"containers":[],"x":"\ud800"}"#)
            .unwrap_err()
            .contains("malformed object"));
        assert!(pod(r#"{"containers":[],"x":1e999}"#)
            .unwrap_err()
            .contains("malformed object"));
        let mut r = req("", "Pod", json!({}));
        r.object = Some(RawJson(
            r#"{"metadata":{"x":"\ud800","y":1e999},"spec":{"containers":[{"image":"a"}]}}"#.into(),
        ));
        assert_eq!(find_images(&r, None).unwrap().unwrap().len(), 1);
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

    /// The payload's reader reads the pod spec in passing; what it read
    /// finds exactly what reading the object again finds, errors included
    /// (then it read nothing and the object is read again).
    #[test]
    fn the_spec_read_in_passing_finds_what_a_second_read_finds() {
        // Nested as deep as a value may be (127 levels), and one deeper.
        let nested = |n: usize| {
            format!(
                r#"{{"spec":{{"containers":[{{"image":"a","x":{}1{}}}]}}}}"#,
                "[".repeat(n),
                "]".repeat(n)
            )
        };
        let (deepest, deep) = (nested(123), nested(124));
        let objects = [
            r#"{"metadata":{"name":"p"},"spec":{"initContainers":[{"name":"i","image":"busybox"}],
                "containers":[{"name":"a","image":"nginx:1"},{"image":"ghcr.io/a/b"}],
                "volumes":[{"name":"m","image":{"reference":"quay.io/m:1"}},{"name":"e","emptyDir":{}}]}}"#,
            r#"{"spec":{"containers":[{"name":"a","image":"x","l":"\ud800"}]}}"#,
            r#"{"l":"\ud800","spec":{"containers":[{"name":"a","image":"x"}]}}"#,
            r#"{"spec":[]}"#,
            r#"{"metadata":{}}"#,
            r#"{"spec":{"containers":{}}}"#,
            r#"{"spec":{"containers":[7]}}"#,
            r#"{"spec":{"containers":[{"image":"a"}]},"spec":{"containers":[{"image":"b"}]}}"#,
            &deepest,
            &deep,
        ];
        for (kind, text) in [("Pod", objects.as_slice()), ("ConfigMap", &objects[..1])]
            .into_iter()
            .flat_map(|(kind, texts)| texts.iter().map(move |t| (kind, *t)))
        {
            let mut req = req("", kind, json!({}));
            req.object = Some(RawJson(text.into()));
            let mut r = Reader::new(text);
            let spec = read_spec(&mut r, &req.kind);
            if spec.is_some() {
                assert_eq!(r.pos(), text.len(), "{text}");
            }
            // Read in passing unless the spec itself does not read.
            let unreadable = text.contains(r#""l":"\ud800"}"#) || text == deep;
            assert_eq!(spec.is_some(), kind == "Pod" && !unreadable, "{text}");
            assert_eq!(
                find_images(&req, spec),
                find_images(&req, None),
                "{kind} {text}"
            );
        }
    }
}
