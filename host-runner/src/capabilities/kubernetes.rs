//! `kubernetes/*` answered from a directory of YAML/JSON manifests
//! (`--context DIR`) instead of an API server, so context-aware policies run
//! offline and reproducibly.
//!
//! Every `*.yaml`, `*.yml` and `*.json` file under the directory (recursively)
//! may hold one or more documents; `kind: *List` documents contribute their
//! `items`. Answers have the shapes policy-server returns: the object itself
//! for `get_resource`, a List for the list operations.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde_json::{json, Map, Value};

use imagegate_policy::wire::{GetResourceRequest, ListResourcesRequest};

use super::Request;

pub struct KubeContext {
    objects: Vec<Value>,
}

impl KubeContext {
    pub fn load(dir: &Path) -> anyhow::Result<KubeContext> {
        let mut objects = Vec::new();
        for (file, text) in read_files(dir)? {
            for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                let value: Value = serde::Deserialize::deserialize(doc)
                    .with_context(|| format!("invalid YAML in context file {}", file.display()))?;
                add_object(value, &mut objects)
                    .with_context(|| format!("in context file {}", file.display()))?;
            }
        }
        Ok(KubeContext { objects })
    }

    pub fn objects(&self) -> &[Value] {
        &self.objects
    }

    /// Answers a `kubernetes/*` request; `None` when `request` is not one.
    pub fn answer(&self, request: &Request) -> Option<Result<Value, String>> {
        Some(match request {
            Request::KubernetesGetResource(r) => self.get(r),
            Request::KubernetesListResources(r) => self.list(r),
            Request::KubernetesCanI(_) => Err(
                "kubernetes/can_i cannot be answered from a context directory (no RBAC data)"
                    .to_string(),
            ),
            _ => return None,
        })
    }

    fn get(&self, r: &GetResourceRequest) -> Result<Value, String> {
        self.objects
            .iter()
            .find(|o| {
                is_type(o, &r.api_version, &r.kind)
                    && str_at(o, "/metadata/name") == Some(r.name.as_str())
                    && str_at(o, "/metadata/namespace") == r.namespace.as_deref()
            })
            .map(|o| mask(o, r.field_masks.as_deref()))
            .ok_or_else(|| {
                let at = r
                    .namespace
                    .as_deref()
                    .map(|ns| format!(" in namespace {ns}"))
                    .unwrap_or_default();
                format!(
                    "{}/{} \"{}\"{at} not found in the context",
                    r.api_version, r.kind, r.name
                )
            })
    }

    fn list(&self, r: &ListResourcesRequest) -> Result<Value, String> {
        let labels = parse_selector(r.label_selector.as_deref().unwrap_or(""))?;
        let fields = parse_selector(r.field_selector.as_deref().unwrap_or(""))?;
        let mut items = Vec::new();
        for o in &self.objects {
            if !is_type(o, &r.api_version, &r.kind) {
                continue;
            }
            if let Some(ns) = r.namespace.as_deref() {
                if str_at(o, "/metadata/namespace") != Some(ns) {
                    continue;
                }
            }
            let label_map = o.pointer("/metadata/labels").and_then(Value::as_object);
            if !labels.iter().all(|r| {
                r.matches(
                    label_map
                        .and_then(|m| m.get(&r.key))
                        .and_then(Value::as_str),
                )
            }) {
                continue;
            }
            let mut field_ok = true;
            for r in &fields {
                let pointer = format!("/{}", r.key.replace('.', "/"));
                let actual = o.pointer(&pointer).map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
                if !r.matches(actual.as_deref()) {
                    field_ok = false;
                    break;
                }
            }
            if field_ok {
                items.push(mask(o, r.field_masks.as_deref()));
            }
        }
        Ok(json!({
            "apiVersion": "v1",
            "kind": "List",
            "metadata": {"resourceVersion": ""},
            "items": items,
        }))
    }
}

/// The context's files (`*.yaml`, `*.yml`, `*.json` under `dir`,
/// recursively, sorted) with their text. Hidden entries are skipped: a
/// Secret or ConfigMap volume keeps each file a second and third time under
/// `..data/` and `..<timestamp>/`.
pub fn read_files(dir: &Path) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    collect_files(dir, &mut files)
        .with_context(|| format!("cannot read context directory {}", dir.display()))?;
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read context file {}", file.display()))?;
            Ok((file, text))
        })
        .collect()
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

fn add_object(value: Value, out: &mut Vec<Value>) -> anyhow::Result<()> {
    match value {
        Value::Null => Ok(()),
        Value::Object(ref map) => {
            let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
            if kind.ends_with("List") {
                if let Some(Value::Array(items)) = map.get("items") {
                    for item in items {
                        add_object(item.clone(), out)?;
                    }
                    return Ok(());
                }
            }
            if map.get("apiVersion").and_then(Value::as_str).is_none() || kind.is_empty() {
                bail!("a document has no apiVersion or kind");
            }
            out.push(value);
            Ok(())
        }
        _ => bail!("a document is not a Kubernetes object"),
    }
}

fn str_at<'a>(o: &'a Value, pointer: &str) -> Option<&'a str> {
    o.pointer(pointer).and_then(Value::as_str)
}

fn is_type(o: &Value, api_version: &str, kind: &str) -> bool {
    str_at(o, "/apiVersion") == Some(api_version) && str_at(o, "/kind") == Some(kind)
}

/// One requirement of an equality-based selector.
#[derive(Debug, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

#[derive(Debug, PartialEq, Eq)]
enum Op {
    Equals(String),
    NotEquals(String),
    Exists,
    NotExists,
}

impl Requirement {
    fn matches(&self, actual: Option<&str>) -> bool {
        match &self.op {
            Op::Equals(v) => actual == Some(v.as_str()),
            Op::NotEquals(v) => actual != Some(v.as_str()),
            Op::Exists => actual.is_some(),
            Op::NotExists => actual.is_none(),
        }
    }
}

/// `a=b,c==d,e!=f,g,!h`; set-based syntax (`in`, `notin`) is refused.
fn parse_selector(selector: &str) -> Result<Vec<Requirement>, String> {
    let mut out = Vec::new();
    for part in selector.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let requirement = if let Some((k, v)) = part.split_once("!=") {
            Requirement {
                key: k.trim().into(),
                op: Op::NotEquals(v.trim().into()),
            }
        } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            Requirement {
                key: k.trim().into(),
                op: Op::Equals(v.trim().into()),
            }
        } else if let Some(k) = part.strip_prefix('!') {
            Requirement {
                key: k.trim().into(),
                op: Op::NotExists,
            }
        } else if part.contains(' ') || part.contains('(') {
            return Err(format!(
                "unsupported selector '{part}': only equality-based selectors are supported"
            ));
        } else {
            Requirement {
                key: part.into(),
                op: Op::Exists,
            }
        };
        if requirement.key.is_empty() {
            return Err(format!("invalid selector '{part}': empty key"));
        }
        out.push(requirement);
    }
    Ok(out)
}

/// Keeps only the dotted paths in `masks` (`None` = the whole object).
fn mask(o: &Value, masks: Option<&[String]>) -> Value {
    let Some(masks) = masks else {
        return o.clone();
    };
    let mut out = Value::Object(Map::new());
    for m in masks {
        let parts: Vec<&str> = m.split('.').collect();
        if let Some(v) = o.pointer(&format!("/{}", parts.join("/"))) {
            let mut cursor = &mut out;
            for (i, p) in parts.iter().enumerate() {
                let Value::Object(map) = cursor else { break };
                if i + 1 == parts.len() {
                    map.insert((*p).to_string(), v.clone());
                    break;
                }
                cursor = map
                    .entry((*p).to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBJECTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {env: prod}}
---
apiVersion: v1
kind: Namespace
metadata: {name: dev, labels: {env: dev, team: a}}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: cm, namespace: prod}
  data: {k: v}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: cm, namespace: dev}
"#;

    /// A Secret volume: `key -> ..data/key`, `..data -> ..<timestamp>`.
    #[test]
    fn a_mounted_secret_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let stamp = dir.path().join("..2025_01_01_00_00_00.1");
        std::fs::create_dir(&stamp).unwrap();
        std::fs::write(stamp.join("objects.yaml"), OBJECTS).unwrap();
        std::os::unix::fs::symlink(&stamp, dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("..data/objects.yaml"),
            dir.path().join("objects.yaml"),
        )
        .unwrap();
        assert_eq!(KubeContext::load(dir.path()).unwrap().objects().len(), 4);
    }

    fn ctx() -> KubeContext {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/objects.yaml"), OBJECTS).unwrap();
        std::fs::write(dir.path().join("ignored.txt"), "not yaml: [").unwrap();
        KubeContext::load(dir.path()).unwrap()
    }

    fn get(name: &str, ns: Option<&str>, kind: &str) -> Request {
        Request::KubernetesGetResource(GetResourceRequest {
            api_version: "v1".into(),
            kind: kind.into(),
            name: name.into(),
            namespace: ns.map(str::to_string),
            disable_cache: false,
            field_masks: None,
        })
    }

    fn list_all(labels: Option<&str>) -> Request {
        Request::KubernetesListResources(ListResourcesRequest {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            namespace: None,
            label_selector: labels.map(str::to_string),
            field_selector: None,
            field_masks: None,
        })
    }

    fn names(v: &Value) -> Vec<&str> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn get_by_name_and_namespace() {
        let c = ctx();
        assert_eq!(c.objects().len(), 4);
        let cm = c
            .answer(&get("cm", Some("prod"), "ConfigMap"))
            .unwrap()
            .unwrap();
        assert_eq!(cm["data"]["k"], "v");
        let ns = c.answer(&get("dev", None, "Namespace")).unwrap().unwrap();
        assert_eq!(ns["metadata"]["labels"]["team"], "a");
        let err = c
            .answer(&get("cm", None, "ConfigMap"))
            .unwrap()
            .unwrap_err();
        assert!(err.contains("not found"), "{err}");
    }

    #[test]
    fn list_with_label_selectors() {
        let c = ctx();
        let all = c.answer(&list_all(None)).unwrap().unwrap();
        assert_eq!(all["kind"], "List");
        assert_eq!(names(&all), ["prod", "dev"]);
        let v = c.answer(&list_all(Some("env=prod"))).unwrap().unwrap();
        assert_eq!(names(&v), ["prod"]);
        let v = c.answer(&list_all(Some("env!=prod"))).unwrap().unwrap();
        assert_eq!(names(&v), ["dev"]);
        let v = c.answer(&list_all(Some("team"))).unwrap().unwrap();
        assert_eq!(names(&v), ["dev"]);
        let v = c.answer(&list_all(Some("!team"))).unwrap().unwrap();
        assert_eq!(names(&v), ["prod"]);
        let err = c
            .answer(&list_all(Some("env in (a)")))
            .unwrap()
            .unwrap_err();
        assert!(err.contains("equality-based"), "{err}");
    }

    #[test]
    fn list_by_namespace_and_masks() {
        let c = ctx();
        let req = Request::KubernetesListResources(ListResourcesRequest {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("prod".into()),
            label_selector: None,
            field_selector: Some("metadata.name=cm".into()),
            field_masks: Some(vec!["metadata.name".into()]),
        });
        let v = c.answer(&req).unwrap().unwrap();
        assert_eq!(v["items"], json!([{"metadata": {"name": "cm"}}]));
    }

    #[test]
    fn non_kubernetes_requests_are_not_answered() {
        let c = ctx();
        assert!(c
            .answer(&Request::DNSLookupHost { host: "x".into() })
            .is_none());
    }
}
