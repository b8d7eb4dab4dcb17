//! The container image of `imagegate serve` (`imagegate image`, `make
//! image`), assembled and pushed without a container daemon.
//!
//! One gzip layer, deterministic (fixed order, uid/gid 0, every mtime the
//! `created` time), holding:
//!
//! | path | mode | why |
//! |---|---|---|
//! | `/imagegate` | 0755 | the static binary (no libc in the image) |
//! | `/policy.wasm` | 0644 | the annotated module (`make annotate`) |
//! | `/etc/passwd`, `/etc/group` | 0644 | user `nonroot` 65532, so tools show a name |
//! | `/etc/ssl/certs/ca-certificates.crt` | 0644 | the build machine's CA bundle: the registry client refuses to start without system CAs |
//!
//! The config runs `/imagegate serve` as 65532:65532 (numeric, so the
//! kubelet can check `runAsNonRoot`), writes nothing (`--disable-wasmtime-cache`:
//! a read-only root filesystem works), and carries the
//! `org.opencontainers.image.*` labels that also go into the manifest
//! annotations: source, version and licenses from the module's metadata,
//! revision and created from the caller. There is no shell. The platform is
//! the binary's: its ELF header names the architecture, and a binary that
//! names a program interpreter (dynamically linked) is refused. The
//! repository's `Dockerfile` builds the same layout with docker.

use std::collections::BTreeMap;
use std::io::Write as _;

use anyhow::{bail, Context, Result};
use oci_client::client::{Config, ImageLayer};
use oci_client::manifest::{
    OciImageManifest, IMAGE_CONFIG_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::packaging::artifact;
use crate::packaging::metadata::{keys, Metadata};
use crate::registry::RegistryAccess;

/// Where the image keeps the binary.
pub const BINARY_PATH: &str = "/imagegate";
/// Where the image keeps the annotated policy module.
pub const POLICY_PATH: &str = "/policy.wasm";
/// The CA bundle; `SSL_CERT_FILE` points at it.
pub const CA_BUNDLE_PATH: &str = "/etc/ssl/certs/ca-certificates.crt";
/// uid and gid of the image's user.
pub const USER_ID: u32 = 65532;
/// The port `serve` listens on in the image.
pub const PORT: u16 = 8443;

/// What goes into the image.
#[derive(Clone, Copy)]
pub struct Inputs<'a> {
    /// The static `imagegate` binary.
    pub binary: &'a [u8],
    /// The annotated policy module.
    pub policy: &'a [u8],
    /// PEM CA bundle.
    pub ca_bundle: &'a [u8],
    /// `org.opencontainers.image.revision` (the commit).
    pub revision: Option<&'a str>,
    /// Creation time, seconds since the epoch (`SOURCE_DATE_EPOCH`): every
    /// mtime and the `created` fields, so equal inputs give equal digests.
    pub created: i64,
}

/// An assembled image: the gzip layer, the config and the manifest.
pub struct Image {
    pub layer: Vec<u8>,
    pub config: Vec<u8>,
    pub manifest: OciImageManifest,
}

/// The image's `Entrypoint` + `Cmd`; the Deployment `imagegate scaffold
/// webhook` writes replaces `Cmd` with its own `args`. The settings are
/// read where that Deployment mounts them: serve never starts without
/// settings, so an image run without them says which file is missing.
pub fn default_command() -> (Vec<String>, Vec<String>) {
    let settings = super::webhook::settings_path().display().to_string();
    let cmd = [
        "serve",
        "--policy",
        POLICY_PATH,
        "--settings-path",
        &settings,
        "--addr",
        &format!("0.0.0.0:{PORT}"),
        "--disable-wasmtime-cache",
    ];
    (
        vec![BINARY_PATH.to_string()],
        cmd.iter().map(|s| s.to_string()).collect(),
    )
}

/// Assembles the image; errors say which input is wrong.
pub fn build(inputs: &Inputs) -> Result<Image> {
    let architecture = static_binary_architecture(inputs.binary)?;
    let metadata = Metadata::from_module(inputs.policy)?.context(
        "the policy module is not annotated: run `make annotate` (imagegate annotate) first",
    )?;
    if !String::from_utf8_lossy(inputs.ca_bundle).contains("-----BEGIN CERTIFICATE-----") {
        bail!("the CA bundle holds no PEM certificate");
    }
    let created = time::OffsetDateTime::from_unix_timestamp(inputs.created)
        .context("created time out of range")?
        .format(&time::format_description::well_known::Rfc3339)
        .context("cannot format the created time")?;
    let tar = layer_tar(inputs)?;
    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&tar)));
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).context("cannot compress the layer")?;
    let layer = gz.finish().context("cannot compress the layer")?;

    let labels = labels(&metadata, inputs.revision, &created)?;
    let (entrypoint, cmd) = default_command();
    let user = format!("{USER_ID}:{USER_ID}");
    let config = json!({
        "created": created,
        "architecture": architecture,
        "os": "linux",
        "config": {
            "User": user,
            "Entrypoint": entrypoint,
            "Cmd": cmd,
            "Env": [format!("SSL_CERT_FILE={CA_BUNDLE_PATH}")],
            "WorkingDir": "/",
            "ExposedPorts": {format!("{PORT}/tcp"): {}},
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": "imagegate image"}],
    });
    let config = serde_json::to_vec(&config).context("cannot write the image config")?;
    let layers = [ImageLayer::new(
        layer.clone(),
        IMAGE_LAYER_GZIP_MEDIA_TYPE.to_string(),
        None,
    )];
    let config_blob = Config::new(config.clone(), IMAGE_CONFIG_MEDIA_TYPE.to_string(), None);
    let mut manifest = OciImageManifest::build(&layers, &config_blob, Some(labels));
    manifest.media_type = Some(OCI_IMAGE_MEDIA_TYPE.to_string());
    Ok(Image {
        layer,
        config,
        manifest,
    })
}

/// Pushes `image` to `destination` (`registry://host/repository:tag`);
/// returns the immutable reference.
pub async fn push(image: Image, destination: &str, registry: &RegistryAccess) -> Result<String> {
    let layers = [ImageLayer::new(
        image.layer,
        IMAGE_LAYER_GZIP_MEDIA_TYPE.to_string(),
        None,
    )];
    let config = Config::new(image.config, IMAGE_CONFIG_MEDIA_TYPE.to_string(), None);
    artifact::push_manifest(
        registry,
        destination,
        "the image",
        &layers,
        config,
        image.manifest,
    )
    .await
}

/// `org.opencontainers.image.*`: config labels and manifest annotations.
fn labels(
    metadata: &Metadata,
    revision: Option<&str>,
    created: &str,
) -> Result<BTreeMap<String, String>> {
    let oci = |k: &str| format!("org.opencontainers.image.{k}");
    let mut labels = BTreeMap::from([
        (oci("title"), "imagegate".to_string()),
        (oci("created"), created.to_string()),
        (
            oci("source"),
            metadata.required_annotation(keys::SOURCE)?.to_string(),
        ),
        (
            oci("version"),
            metadata.required_annotation(keys::VERSION)?.to_string(),
        ),
        (
            oci("licenses"),
            metadata.required_annotation(keys::LICENSE)?.to_string(),
        ),
    ]);
    if let Some(description) = metadata.annotation(keys::DESCRIPTION) {
        labels.insert(oci("description"), description.trim().to_string());
    }
    if let Some(revision) = revision {
        labels.insert(oci("revision"), revision.to_string());
    }
    Ok(labels)
}

/// The layer as an uncompressed tar (its digest is the config's diff_id).
fn layer_tar(inputs: &Inputs) -> Result<Vec<u8>> {
    let passwd = format!("nonroot:x:{USER_ID}:{USER_ID}:nonroot:/nonexistent:/sbin/nologin\n");
    let group = format!("nonroot:x:{USER_ID}:\n");
    let entries: [(&str, Option<&[u8]>, u32); 8] = [
        ("etc/", None, 0o755),
        ("etc/group", Some(group.as_bytes()), 0o644),
        ("etc/passwd", Some(passwd.as_bytes()), 0o644),
        ("etc/ssl/", None, 0o755),
        ("etc/ssl/certs/", None, 0o755),
        (&CA_BUNDLE_PATH[1..], Some(inputs.ca_bundle), 0o644),
        (&BINARY_PATH[1..], Some(inputs.binary), 0o755),
        (&POLICY_PATH[1..], Some(inputs.policy), 0o644),
    ];
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data, mode) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(inputs.created.max(0) as u64);
        header.set_entry_type(match data {
            Some(_) => tar::EntryType::Regular,
            None => tar::EntryType::Directory,
        });
        let data = data.unwrap_or_default();
        header.set_size(data.len() as u64);
        tar.append_data(&mut header, path, data)
            .with_context(|| format!("cannot add {path} to the layer"))?;
    }
    tar.into_inner().context("cannot finish the layer")
}

/// The OCI architecture of a static Linux ELF executable.
fn static_binary_architecture(elf: &[u8]) -> Result<&'static str> {
    const PT_INTERP: u32 = 3;
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" {
        bail!("the binary is not an ELF executable");
    }
    if elf[4] != 2 || elf[5] != 1 {
        bail!("the binary is not a 64-bit little-endian ELF executable");
    }
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]);
    let architecture = match u16_at(18) {
        62 => "amd64",
        183 => "arm64",
        other => bail!("the binary is for ELF machine {other}, not x86_64 or aarch64"),
    };
    let table = u64::from_le_bytes(elf[32..40].try_into().expect("8 bytes")) as usize;
    let (size, count) = (u16_at(54) as usize, u16_at(56) as usize);
    for i in 0..count {
        let at = table + i * size;
        let Some(entry) = elf.get(at..at + 4) else {
            bail!("the binary's program headers are truncated");
        };
        if u32::from_le_bytes(entry.try_into().expect("4 bytes")) == PT_INTERP {
            bail!(
                "the binary is dynamically linked (it names a program interpreter): the image has \
                 no libc, build it for x86_64-unknown-linux-musl (`make image` does)"
            );
        }
    }
    Ok(architecture)
}

/// The image's config as JSON, for tests and messages.
pub fn config_json(image: &Image) -> Result<Value> {
    serde_json::from_slice(&image.config).context("the image config is not JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packaging::annotate::{annotate, protocol_version, tests::guest};

    /// A minimal ELF header for `machine` with one program header of `kind`.
    fn elf(machine: u16, kind: u32) -> Vec<u8> {
        let mut e = vec![0u8; 64 + 56];
        e[..4].copy_from_slice(b"\x7fELF");
        e[4] = 2;
        e[5] = 1;
        e[18..20].copy_from_slice(&machine.to_le_bytes());
        e[32..40].copy_from_slice(&64u64.to_le_bytes());
        e[54..56].copy_from_slice(&56u16.to_le_bytes());
        e[56..58].copy_from_slice(&1u16.to_le_bytes());
        e[64..68].copy_from_slice(&kind.to_le_bytes());
        e
    }

    fn annotated() -> Vec<u8> {
        let metadata = Metadata::from_yaml_file(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../metadata.yml"),
        )
        .unwrap();
        annotate(&guest(r#""v1""#), metadata, None, protocol_version).unwrap()
    }

    const CA: &[u8] = b"-----BEGIN CERTIFICATE-----\nMII=\n-----END CERTIFICATE-----\n";

    #[test]
    fn static_binaries_only() {
        assert_eq!(static_binary_architecture(&elf(62, 1)).unwrap(), "amd64");
        assert_eq!(static_binary_architecture(&elf(183, 6)).unwrap(), "arm64");
        let e = static_binary_architecture(&elf(62, 3)).unwrap_err();
        assert!(e.to_string().contains("dynamically linked"), "{e}");
        assert!(static_binary_architecture(&elf(3, 1)).is_err());
        assert!(static_binary_architecture(b"#!/bin/sh\n").is_err());
        let mut truncated = elf(62, 1);
        truncated[56..58].copy_from_slice(&9u16.to_le_bytes());
        assert!(static_binary_architecture(&truncated).is_err());
    }

    #[test]
    fn layout_config_and_reproducibility() {
        let binary = elf(62, 1);
        let policy = annotated();
        let inputs = Inputs {
            binary: &binary,
            policy: &policy,
            ca_bundle: CA,
            revision: Some("abc123"),
            created: 1_700_000_000,
        };
        let image = build(&inputs).unwrap();
        let again = build(&inputs).unwrap();
        assert_eq!(image.layer, again.layer, "same inputs, same layer bytes");
        assert_eq!(image.config, again.config);
        let config = config_json(&image).unwrap();
        assert_eq!(config["architecture"], "amd64");
        assert_eq!(config["created"], "2023-11-14T22:13:20Z");
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(config["config"]["Entrypoint"], json!(["/imagegate"]));
        let label =
            |name: &str| &config["config"]["Labels"][format!("org.opencontainers.image.{name}")];
        assert_eq!(label("revision"), "abc123");
        assert_eq!(label("licenses"), "Apache-2.0");
        let annotations = image.manifest.annotations.clone().unwrap();
        assert_eq!(
            annotations["org.opencontainers.image.version"],
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(
            image.manifest.layers[0].media_type,
            IMAGE_LAYER_GZIP_MEDIA_TYPE
        );

        let mut tar = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(image.layer.as_slice()),
            &mut tar,
        )
        .unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            format!("sha256:{}", hex::encode(Sha256::digest(&tar)))
        );
        let mut archive = tar::Archive::new(tar.as_slice());
        let entries: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        let paths: Vec<&str> = entries.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "etc/",
                "etc/group",
                "etc/passwd",
                "etc/ssl/",
                "etc/ssl/certs/",
                "etc/ssl/certs/ca-certificates.crt",
                "imagegate",
                "policy.wasm"
            ]
        );
        assert!(entries.contains(&("imagegate".into(), 0o755, 1_700_000_000)));
    }

    #[test]
    fn inputs_are_checked() {
        let binary = elf(62, 1);
        let policy = annotated();
        let plain = guest(r#""v1""#);
        let ok = Inputs {
            binary: &binary,
            policy: &policy,
            ca_bundle: CA,
            revision: None,
            created: 0,
        };
        let e = build(&Inputs {
            policy: &plain,
            ..ok
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("not annotated"), "{e}");
        let e = build(&Inputs {
            ca_bundle: b"",
            policy: &policy,
            ..ok
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
    }

    /// The Dockerfile for docker users gives the same layout and command.
    #[test]
    fn dockerfile_matches_the_layout() {
        let dockerfile = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Dockerfile"),
        )
        .unwrap();
        let (entrypoint, cmd) = default_command();
        let line = |prefix: &str| -> String {
            dockerfile
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("no {prefix} line in the Dockerfile"))
                .trim()
                .to_string()
        };
        assert_eq!(
            serde_json::from_str::<Vec<String>>(&line("ENTRYPOINT ")).unwrap(),
            entrypoint
        );
        assert_eq!(
            serde_json::from_str::<Vec<String>>(&line("CMD ")).unwrap(),
            cmd
        );
        assert_eq!(line("USER "), format!("{USER_ID}:{USER_ID}"));
        assert_eq!(line("ENV "), format!("SSL_CERT_FILE={CA_BUNDLE_PATH}"));
        assert_eq!(line("EXPOSE "), PORT.to_string());
        for path in [BINARY_PATH, POLICY_PATH, CA_BUNDLE_PATH, "/etc/passwd"] {
            assert!(
                dockerfile
                    .lines()
                    .any(|l| l.starts_with("COPY ") && l.ends_with(&format!(" {path}"))),
                "the Dockerfile does not COPY {path}"
            );
        }
    }
}
