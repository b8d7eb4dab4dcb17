//! Reading manifests: files, directories and stdin, as `kubectl apply -f`,
//! `helm template` and `kustomize build` produce them.
//!
//! Every document of every file (multi-document YAML, JSON), read by
//! serde_yaml_ng like every other input of the host; `List`s (`kind: List`
//! and the typed `*List` kinds) contribute their items; empty documents
//! (`helm template` writes one for a template that renders nothing) are
//! dropped, and documents that are not Kubernetes objects (no `apiVersion`
//! and `kind`: a `values.yaml`, a `Chart.yaml`) are listed as skipped. Each
//! object keeps where it came from: the file, the document, its path in the
//! document, the document's positions and the template Helm names in its
//! `# Source:` comment.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::positions::{self, Position};

/// One Kubernetes object read from the input.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub source: Source,
    pub object: Value,
    /// Where its document's values are; `None` when the text could not be
    /// indexed (then results carry no line).
    pub positions: Option<positions::Document>,
}

/// Where an object came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The file as given (`-` for stdin).
    pub file: String,
    /// The document's index in the file, from 0.
    pub document: usize,
    /// The object's path in its document: empty, or `items/3` in a List.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub path: Vec<String>,
    /// The template that rendered it (`helm template`'s `# Source:` comment).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub template: Option<String>,
}

/// A document that is not a Kubernetes object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub file: String,
    pub document: usize,
    pub reason: String,
}

impl Manifest {
    /// Where the value at `pointer` (a JSON pointer into the object) is.
    pub fn position(&self, pointer: &str) -> Option<Position> {
        let document = self.positions.as_ref()?;
        let mut steps = self.source.path.clone();
        steps.extend(positions::pointer_steps(pointer));
        match document.locate(&steps) {
            (position, true) => Some(position),
            (_, false) => None,
        }
    }

    /// Where the object starts.
    pub fn start(&self) -> Option<Position> {
        self.position("")
    }
}

/// Every object in `paths` (files, directories searched recursively for
/// `.yaml`, `.yml` and `.json` files in name order, `-` for stdin), and the
/// documents skipped.
pub fn read(paths: &[PathBuf]) -> anyhow::Result<(Vec<Manifest>, Vec<Skipped>)> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    let mut manifests = Vec::new();
    let mut skipped = Vec::new();
    for file in &files {
        let name = file.display().to_string();
        let text = if file == Path::new("-") {
            std::io::read_to_string(std::io::stdin()).context("cannot read manifests from stdin")?
        } else {
            std::fs::read_to_string(file).with_context(|| format!("cannot read {name}"))?
        };
        parse(&name, &text, &mut manifests, &mut skipped)?;
    }
    Ok((manifests, skipped))
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read directory {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("cannot read directory {}", dir.display()))?;
    entries.sort();
    for path in entries {
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            walk(&path, files)?;
        } else if path
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        {
            files.push(path);
        }
    }
    Ok(())
}

/// The objects of one file's text.
pub fn parse(
    file: &str,
    text: &str,
    manifests: &mut Vec<Manifest>,
    skipped: &mut Vec<Skipped>,
) -> anyhow::Result<()> {
    // Positions are a help, never a reason to refuse what serde_yaml_ng reads.
    let index = positions::index(text).ok();
    let lines: Vec<&str> = text.lines().collect();
    for (document, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc)
            .with_context(|| format!("{file}: document {} is not valid YAML", document + 1))?;
        let positions = index.as_ref().and_then(|docs| docs.get(document)).cloned();
        let template = positions
            .as_ref()
            .and_then(|p| helm_source(&lines, p.start().line));
        let source = Source {
            file: file.to_string(),
            document,
            path: Vec::new(),
            template,
        };
        collect(value, source, &positions, manifests, skipped)?;
    }
    Ok(())
}

fn collect(
    value: Value,
    source: Source,
    positions: &Option<positions::Document>,
    manifests: &mut Vec<Manifest>,
    skipped: &mut Vec<Skipped>,
) -> anyhow::Result<()> {
    let skip = |reason: &str| Skipped {
        file: source.file.clone(),
        document: source.document,
        reason: reason.to_string(),
    };
    let Value::Object(map) = value else {
        if !value.is_null() {
            skipped.push(skip("not a mapping"));
        }
        return Ok(());
    };
    let kind = map.get("kind").and_then(Value::as_str);
    let api_version = map.get("apiVersion").and_then(Value::as_str);
    match (api_version, kind) {
        (Some(_), Some(kind)) if kind == "List" || kind.ends_with("List") => {
            let Some(items) = map.get("items").and_then(Value::as_array) else {
                bail!(
                    "{}: document {}: a {kind} without `items`",
                    source.file,
                    source.document + 1
                );
            };
            for (i, item) in items.iter().enumerate() {
                let mut inner = source.clone();
                inner.path.extend(["items".to_string(), i.to_string()]);
                collect(item.clone(), inner, positions, manifests, skipped)?;
            }
        }
        (Some(_), Some(_)) => manifests.push(Manifest {
            source,
            object: Value::Object(map),
            positions: positions.clone(),
        }),
        _ => skipped.push(skip("not a Kubernetes object (no apiVersion and kind)")),
    }
    Ok(())
}

/// The `# Source: chart/templates/x.yaml` comment `helm template` writes
/// just above the document starting at `line` (1-based).
fn helm_source(lines: &[&str], line: usize) -> Option<String> {
    lines[..line.saturating_sub(1).min(lines.len())]
        .iter()
        .rev()
        .map(|l| l.trim())
        .take_while(|l| l.is_empty() || l.starts_with('#'))
        .find_map(|l| l.strip_prefix("# Source:").map(|s| s.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str) -> (Vec<Manifest>, Vec<Skipped>) {
        let (mut manifests, mut skipped) = (Vec::new(), Vec::new());
        parse("in.yaml", text, &mut manifests, &mut skipped).unwrap();
        (manifests, skipped)
    }

    #[test]
    fn documents_lists_and_helm_sources() {
        let text = "---\n# Source: shop/templates/empty.yaml\n---\n# Source: shop/templates/web.yaml\n\
                    apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: a, image: nginx}\n\
                    ---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: batch/v1\n  kind: Job\n  metadata: {name: j}\n\
                    ---\nreplicaCount: 3\n---\n[1]\n";
        let (manifests, skipped) = read_text(text);
        assert_eq!(manifests.len(), 2);
        assert_eq!(
            manifests[0].source.template.as_deref(),
            Some("shop/templates/web.yaml")
        );
        assert_eq!(manifests[0].source.document, 1, "the empty document counts");
        assert_eq!(
            manifests[0].position("/spec/containers/0/image"),
            Some(Position {
                line: 10,
                column: 22
            })
        );
        assert_eq!(manifests[1].source.path, ["items", "0"]);
        assert_eq!(manifests[1].object["kind"], "Job");
        assert_eq!(
            manifests[1].start(),
            Some(Position {
                line: 15,
                column: 3
            })
        );
        assert_eq!(
            skipped
                .iter()
                .map(|s| s.reason.as_str())
                .collect::<Vec<_>>(),
            [
                "not a Kubernetes object (no apiVersion and kind)",
                "not a mapping"
            ]
        );
    }

    #[test]
    fn json_and_invalid_yaml() {
        let (manifests, _) = read_text(r#"{"apiVersion": "apps/v1", "kind": "Deployment"}"#);
        assert_eq!(manifests[0].object["kind"], "Deployment");
        let e = parse("bad.yaml", "a: [\n", &mut Vec::new(), &mut Vec::new()).unwrap_err();
        assert!(
            format!("{e:#}").starts_with("bad.yaml: document 1 is not valid YAML"),
            "{e:#}"
        );
    }
}
