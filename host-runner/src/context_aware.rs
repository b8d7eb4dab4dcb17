//! Which Kubernetes resource types a policy may read: the metadata's
//! `contextAwareResources`, taken from the module's `io.kubewarden.metadata`
//! custom section (an annotated module) or from a `metadata.yml` file (an
//! un-annotated build). Granted only with `--allow-context-aware`, as kwctl.

use std::collections::BTreeSet;
use std::path::Path;

use crate::metadata::Metadata;

/// The `(apiVersion, kind)` allow-list: from `metadata_file` when given, else
/// from the module's embedded metadata, else empty. WAT text (accepted by the
/// runtime for tests) has no custom sections.
pub fn resources(
    wasm: &[u8],
    metadata_file: Option<&Path>,
) -> anyhow::Result<BTreeSet<(String, String)>> {
    let metadata = match metadata_file {
        Some(path) => Some(Metadata::from_yaml_file(path)?),
        None if !wasm.starts_with(b"\0asm") => None,
        None => Metadata::from_module(wasm)?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::METADATA_SECTION;

    fn module_with_section(name: &str, data: &[u8]) -> Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        wasm_encoder::Section::append_to(
            &wasm_encoder::CustomSection {
                name: name.into(),
                data: data.into(),
            },
            &mut m,
        );
        m
    }

    #[test]
    fn reads_embedded_metadata() {
        let wasm = module_with_section(
            METADATA_SECTION,
            br#"{"rules":[],"contextAwareResources":[{"apiVersion":"v1","kind":"ConfigMap"}],"mutating":true}"#,
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
        assert!(resources(&wasm, None).is_err());
        assert!(resources(b"(module)", None).unwrap().is_empty(), "WAT text");
    }
}
