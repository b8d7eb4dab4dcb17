//! Embedding the policy metadata in the module, as `kwctl annotate` does, so
//! policy-server accepts it (`imagegate annotate`).
//!
//! The metadata (metadata.yml, plus `protocolVersion` obtained by calling the
//! module's `protocol_version` and, with `--usage`, the README as
//! `io.kubewarden.policy.usage`) is validated and written as JSON into a
//! custom section named `io.kubewarden.metadata`, appended to the module.
//! Re-annotating replaces the section instead of adding a second one (the
//! reader takes the first, so a stale one would win). Every other byte of the
//! module is kept as is.
//!
//! Unlike kwctl, no `io.kubewarden.kwctl` annotation is added: it records the
//! kwctl version that annotated the module, nothing in Kubewarden
//! (policy-server, policy-evaluator, the controller) reads it, and writing it
//! would claim a kwctl that never ran.

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use wasm_encoder::{CustomSection, Section};

use crate::packaging::metadata::{
    keys, ExecutionMode, Metadata, ProtocolVersion, METADATA_SECTION,
};
use crate::runtime::{HostCall, HostCallbacks, Invoke, Policy, RuntimeConfig};
use imagegate_policy::capability;

/// `module` with `metadata` embedded. `ask_protocol` obtains the protocol
/// version from the module (kubewarden-wapc modules only).
pub fn annotate(
    module: &[u8],
    mut metadata: Metadata,
    usage: Option<&str>,
    ask_protocol: impl FnOnce(&[u8]) -> Result<ProtocolVersion>,
) -> Result<Vec<u8>> {
    if metadata.execution_mode != ExecutionMode::KubewardenWapc {
        bail!(
            "imagegate annotates kubewarden-wapc policies only, metadata says {:?}",
            metadata.execution_mode
        );
    }
    metadata.protocol_version =
        Some(ask_protocol(module).context("cannot obtain the protocol version")?);
    if let Some(usage) = usage {
        metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(keys::USAGE.to_string(), usage.to_string());
    }
    metadata.validate()?;
    let json = serde_json::to_vec(&metadata)?;
    embed(module, &json)
}

/// `kwctl annotate`'s warnings about `metadata`'s `hostCapabilities` and
/// what `module` calls, so `imagegate annotate` says what kwctl would.
pub fn capability_warnings(module: &[u8], metadata: &Metadata) -> Result<Vec<String>> {
    let detected = detected_capabilities(module)?;
    let declared = metadata.host_capabilities.clone().unwrap_or_default();
    let undeclared: Vec<&String> = detected.difference(&declared).collect();
    let unused: Vec<&String> = declared.difference(&detected).collect();
    let mut warnings = Vec::new();
    if !undeclared.is_empty() {
        warnings.push(format!(
            "host capabilities used by the policy but not declared in metadata: {undeclared:?}"
        ));
    }
    if !unused.is_empty() {
        warnings.push(format!(
            "host capabilities declared in metadata but not detected in the policy: {unused:?}"
        ));
    }
    Ok(warnings)
}

/// The Kubewarden host capabilities `kwctl annotate` detects in `module`
/// (kwctl's `wasm_scanner::scan`): a capability is used when its namespace
/// and its operation both occur in the module's data segments (joined with
/// `0xFF`), an operation that prefixes another (`v1/oci_manifest`,
/// `v1/oci_manifest_config`) only where it is not that longer one.
/// imagegate's own `notary/...` and `imagegate/...` are no Kubewarden
/// capabilities and are not looked for.
pub fn detected_capabilities(module: &[u8]) -> Result<BTreeSet<String>> {
    let mut data = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        if let wasmparser::Payload::DataSection(reader) = payload.context("invalid wasm module")? {
            for segment in reader {
                data.extend_from_slice(segment.context("invalid data segment")?.data);
                data.push(0xFF);
            }
        }
    }
    let contains = |needle: &[u8], at: &dyn Fn(usize) -> bool| {
        data.windows(needle.len())
            .enumerate()
            .any(|(i, w)| w == needle && at(i))
    };
    let kubewarden = capability::ALL
        .iter()
        .filter(|c| !c.starts_with("notary/") && !c.starts_with("imagegate/"));
    let operations: Vec<(&str, &str)> = kubewarden
        .clone()
        .filter_map(|c| c.split_once('/'))
        .collect();
    let mut found = BTreeSet::new();
    for (namespace, operation) in &operations {
        let longer: Vec<&str> = operations
            .iter()
            .map(|(_, op)| *op)
            .filter(|op| op != operation && op.starts_with(operation))
            .collect();
        let standalone = |i: usize| longer.iter().all(|l| !data[i..].starts_with(l.as_bytes()));
        if contains(namespace.as_bytes(), &|_| true) && contains(operation.as_bytes(), &standalone)
        {
            found.insert(format!("{namespace}/{operation}"));
        }
    }
    Ok(found)
}

/// Replaces (or appends) the metadata custom section. The module is walked
/// section by section: header, then `id, size, contents` until the end.
pub fn embed(module: &[u8], json: &[u8]) -> Result<Vec<u8>> {
    let mut reader = wasmparser::BinaryReader::new(module, 0);
    let header = reader
        .read_bytes(8)
        .context("not a wasm module: too short")?;
    if header != b"\0asm\x01\0\0\0" {
        bail!("not a core wasm module (components and other versions are not policies)");
    }
    let mut out = header.to_vec();
    while !reader.eof() {
        let start = reader.current_position();
        let id = reader.read_u8().context("truncated wasm section")?;
        let size = reader.read_var_u32().context("truncated wasm section")?;
        let contents = reader
            .read_bytes(usize::try_from(size)?)
            .with_context(|| format!("wasm section at offset {start} overruns the module"))?;
        if id == 0 && is_metadata_section(contents)? {
            continue;
        }
        out.extend_from_slice(&module[start..reader.current_position()]);
    }
    CustomSection {
        name: METADATA_SECTION.into(),
        data: json.into(),
    }
    .append_to(&mut out);
    Ok(out)
}

fn is_metadata_section(contents: &[u8]) -> Result<bool> {
    let mut r = wasmparser::BinaryReader::new(contents, 0);
    Ok(r.read_string().context("malformed custom section name")? == METADATA_SECTION)
}

/// kwctl asks with a channel-less, deny-all context: every host call fails.
struct NoCapabilities;

impl HostCallbacks for NoCapabilities {
    fn host_call(&self, call: &HostCall<'_>) -> Result<Vec<u8>, String> {
        Err(format!(
            "host capability {}/{} is not available while annotating",
            call.namespace, call.operation
        ))
    }
}

/// Calls the module's `protocol_version` on a fresh instance without host
/// capabilities and parses the JSON string it answers.
pub fn protocol_version(module: &[u8]) -> Result<ProtocolVersion> {
    let policy = Policy::new(module, RuntimeConfig::default(), Arc::new(NoCapabilities))?;
    let answer = (&policy).invoke("protocol_version", b"")?;
    serde_json::from_slice(&answer).with_context(|| {
        format!(
            "protocol_version answered {:?}, expected \"v1\"",
            String::from_utf8_lossy(&answer)
        )
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::packaging::metadata::custom_section;

    #[test]
    fn capabilities_are_detected_as_kwctl_detects_them() {
        let module = |strings: &str| {
            wat::parse_str(format!(
                "(module (memory 1) (data (i32.const 0) \"{strings}\"))"
            ))
            .unwrap()
        };
        let found = |strings: &str| {
            detected_capabilities(&module(strings))
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>()
        };
        assert!(found("kubewarden").is_empty());
        assert_eq!(
            found("ociv2/verifyv1/oci_manifest_config"),
            ["oci/v1/oci_manifest_config", "oci/v2/verify"]
        );
        assert_eq!(
            found("oci v1/oci_manifest v1/oci_manifest_config"),
            ["oci/v1/oci_manifest", "oci/v1/oci_manifest_config"]
        );
        // What the Notary operation was once called reads as oci/v1/verify.
        assert_eq!(found("oci notary v1/verify"), ["oci/v1/verify"]);
    }

    /// A waPC guest whose every operation answers `answer`.
    pub(crate) fn guest(answer: &str) -> Vec<u8> {
        let escaped: String = answer.bytes().map(|b| format!("\\{b:02x}")).collect();
        wat::parse_str(format!(
            r#"(module
              (import "wapc" "__guest_request" (func $req (param i32 i32)))
              (import "wapc" "__guest_response" (func $resp (param i32 i32)))
              (memory (export "memory") 1)
              (data (i32.const 1024) "{escaped}")
              (func (export "wapc_init"))
              (func (export "__guest_call") (param i32 i32) (result i32)
                (call $req (i32.const 0) (i32.const 512))
                (call $resp (i32.const 1024) (i32.const {len}))
                (i32.const 1)))"#,
            len = answer.len()
        ))
        .unwrap()
    }

    fn metadata() -> Metadata {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../metadata.yml");
        Metadata::from_yaml_file(&path).unwrap()
    }

    fn section_count(module: &[u8]) -> usize {
        wasmparser::Parser::new(0)
            .parse_all(module)
            .filter(|p| matches!(p, Ok(wasmparser::Payload::CustomSection(r)) if r.name() == METADATA_SECTION))
            .count()
    }

    #[test]
    fn protocol_version_comes_from_the_module() {
        assert_eq!(
            protocol_version(&guest(r#""v1""#)).unwrap(),
            ProtocolVersion::V1
        );
        let err = format!(
            "{:#}",
            protocol_version(&guest(r#""Unknown""#)).unwrap_err()
        );
        assert!(err.contains("Unknown"), "{err}");
    }

    /// Annotate the real metadata.yml + a README, read the section back and
    /// check every field.
    #[test]
    fn annotated_section_reads_back_field_by_field() {
        let module = guest(r#""v1""#);
        let readme = "# imagegate\n\nUsage: see below.\n";
        let out = annotate(&module, metadata(), Some(readme), protocol_version).unwrap();
        assert!(out.starts_with(&module), "original bytes must be kept");

        let json: serde_json::Value =
            serde_json::from_slice(custom_section(&out, METADATA_SECTION).unwrap().unwrap())
                .unwrap();
        let source: serde_json::Value = serde_json::to_value(
            serde_yaml_ng::from_str::<serde_yaml_ng::Value>(
                &std::fs::read_to_string(
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../metadata.yml"),
                )
                .unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "protocolVersion",
                "rules",
                "annotations",
                "mutating",
                "backgroundAudit",
                "executionMode",
                "policyType",
                "contextAwareResources",
                "hostCapabilities"
            ]
        );
        assert_eq!(json["protocolVersion"], "v1");
        assert_eq!(json["rules"], source["rules"]);
        assert_eq!(json["mutating"], true);
        assert_eq!(json["backgroundAudit"], true);
        assert_eq!(json["executionMode"], "kubewarden-wapc");
        assert_eq!(json["policyType"], "kubernetes");
        let mut car = source["contextAwareResources"].as_array().unwrap().clone();
        car.sort_by_key(|r| (r["apiVersion"].to_string(), r["kind"].to_string()));
        assert_eq!(json["contextAwareResources"], serde_json::Value::Array(car));
        let mut caps: Vec<&str> = source["hostCapabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        caps.sort();
        assert_eq!(json["hostCapabilities"], serde_json::json!(caps));
        let annotations = json["annotations"].as_object().unwrap();
        for (k, v) in source["annotations"].as_object().unwrap() {
            assert_eq!(&annotations[k], v, "{k}");
        }
        assert_eq!(annotations[keys::USAGE], readme);
        assert_eq!(
            annotations.len(),
            source["annotations"].as_object().unwrap().len() + 1
        );
        assert!(!annotations.contains_key("io.kubewarden.kwctl"));

        let back = Metadata::from_module(&out).unwrap().unwrap();
        assert_eq!(back.protocol_version, Some(ProtocolVersion::V1));
        assert_eq!(back.rules, metadata().rules);
    }

    #[test]
    fn reannotating_replaces_the_section() {
        let once = annotate(
            &guest(r#""v1""#),
            metadata(),
            Some("first"),
            protocol_version,
        )
        .unwrap();
        let twice = annotate(&once, metadata(), Some("second"), protocol_version).unwrap();
        assert_eq!(section_count(&once), 1);
        assert_eq!(section_count(&twice), 1);
        let back = Metadata::from_module(&twice).unwrap().unwrap();
        assert_eq!(back.annotation(keys::USAGE), Some("second"));
        // The module still instantiates and answers.
        assert_eq!(protocol_version(&twice).unwrap(), ProtocolVersion::V1);
    }

    #[test]
    fn other_custom_sections_are_kept() {
        let module = wat::parse_str(
            r#"(module (@custom "producers" "x") (@custom "io.kubewarden.metadata" "{}"))"#,
        )
        .unwrap();
        let out = embed(&module, b"{\"a\":1}").unwrap();
        assert_eq!(custom_section(&out, "producers").unwrap(), Some(&b"x"[..]));
        assert_eq!(
            custom_section(&out, METADATA_SECTION).unwrap(),
            Some(&b"{\"a\":1}"[..])
        );
        assert_eq!(section_count(&out), 1);
    }

    #[test]
    fn rejects_what_is_not_a_module() {
        assert!(embed(b"\0asm", b"{}").is_err());
        assert!(embed(b"\0asm\x0d\0\x01\0", b"{}").is_err());
        let mut truncated = wat::parse_str("(module (memory 1))").unwrap();
        truncated.pop();
        assert!(embed(&truncated, b"{}").is_err());
    }

    #[test]
    fn invalid_metadata_is_not_embedded() {
        let mut m = metadata();
        m.rules[0].operations.clear();
        let err = format!(
            "{:#}",
            annotate(&guest(r#""v1""#), m, None, protocol_version).unwrap_err()
        );
        assert!(err.contains("operations"), "{err}");
    }
}
