//! Which Kubernetes resource types a policy may read: the metadata's
//! `contextAwareResources`, taken from the module's `io.kubewarden.metadata`
//! custom section (an annotated module) or from a `metadata.yml` file (an
//! un-annotated build). Granted only with `--allow-context-aware`, as kwctl.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context as _};
use serde::Deserialize;

/// Custom section kwctl annotate writes the metadata JSON into.
pub const METADATA_SECTION: &str = "io.kubewarden.metadata";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    #[serde(default)]
    context_aware_resources: Vec<Resource>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Resource {
    api_version: String,
    kind: String,
}

/// The `(apiVersion, kind)` allow-list: from `metadata_file` when given, else
/// from the module's embedded metadata, else empty.
pub fn resources(
    wasm: &[u8],
    metadata_file: Option<&Path>,
) -> anyhow::Result<BTreeSet<(String, String)>> {
    let metadata: Option<Metadata> = match metadata_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read metadata {}", path.display()))?;
            Some(
                serde_yaml::from_str(&text)
                    .with_context(|| format!("invalid metadata {}", path.display()))?,
            )
        }
        None => custom_section(wasm, METADATA_SECTION)?
            .map(|bytes| {
                serde_json::from_slice(bytes)
                    .context("invalid JSON in the module's io.kubewarden.metadata section")
            })
            .transpose()?,
    };
    Ok(metadata
        .map(|m| {
            m.context_aware_resources
                .into_iter()
                .map(|r| (r.api_version, r.kind))
                .collect()
        })
        .unwrap_or_default())
}

fn leb128(bytes: &[u8], pos: &mut usize) -> anyhow::Result<usize> {
    let mut result: u64 = 0;
    for shift in (0..35).step_by(7) {
        let Some(&b) = bytes.get(*pos) else {
            bail!("truncated wasm module");
        };
        *pos += 1;
        result |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return usize::try_from(result).context("wasm section too large");
        }
    }
    bail!("malformed LEB128 in wasm module")
}

/// The payload of the first custom section called `name` (binary modules
/// only; WAT text has none).
pub fn custom_section<'a>(wasm: &'a [u8], name: &str) -> anyhow::Result<Option<&'a [u8]>> {
    if !wasm.starts_with(b"\0asm") {
        return Ok(None);
    }
    let mut pos = 8;
    while pos < wasm.len() {
        let id = wasm[pos];
        pos += 1;
        let size = leb128(wasm, &mut pos)?;
        let end = pos
            .checked_add(size)
            .filter(|e| *e <= wasm.len())
            .context("wasm section runs past the end of the module")?;
        if id == 0 {
            let mut p = pos;
            let name_len = leb128(wasm, &mut p)?;
            let name_end = p
                .checked_add(name_len)
                .filter(|e| *e <= end)
                .context("malformed custom section name")?;
            if &wasm[p..name_end] == name.as_bytes() {
                return Ok(Some(&wasm[name_end..end]));
            }
        }
        pos = end;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module_with_section(name: &str, data: &[u8]) -> Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        let mut payload = vec![name.len() as u8];
        payload.extend_from_slice(name.as_bytes());
        payload.extend_from_slice(data);
        m.push(0);
        m.push(payload.len() as u8);
        m.extend(payload);
        m
    }

    #[test]
    fn reads_embedded_metadata() {
        let wasm = module_with_section(
            METADATA_SECTION,
            br#"{"contextAwareResources":[{"apiVersion":"v1","kind":"ConfigMap"}],"mutating":true}"#,
        );
        let set = resources(&wasm, None).unwrap();
        assert!(set.contains(&("v1".to_string(), "ConfigMap".to_string())));
        assert_eq!(set.len(), 1);
        assert!(resources(&module_with_section("other", b"x"), None)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn metadata_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.yml");
        std::fs::write(
            &path,
            "rules: []\nmutating: false\ncontextAwareResources:\n- apiVersion: tmax.io/v1\n  kind: RegistrySecurityPolicy\n",
        )
        .unwrap();
        let set = resources(b"", Some(&path)).unwrap();
        assert!(set.contains(&(
            "tmax.io/v1".to_string(),
            "RegistrySecurityPolicy".to_string()
        )));
    }

    #[test]
    fn truncated_module_is_an_error() {
        let mut wasm = module_with_section("x", b"abc");
        wasm.truncate(wasm.len() - 1);
        assert!(custom_section(&wasm, "y").is_err());
    }
}
