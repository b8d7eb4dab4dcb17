//! Deterministic container images built in memory (one gzip tar layer with a
//! text file, a config, a manifest; several platforms make an index) and
//! pushed through the distribution API. Same inputs, same bytes, same digest.

use oci_client::Reference;
use sha2::{Digest, Sha256};

use super::registry::Registry;

/// Media type family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Oci,
    Docker,
}

impl Format {
    pub fn manifest(self) -> &'static str {
        match self {
            Format::Oci => "application/vnd.oci.image.manifest.v1+json",
            Format::Docker => "application/vnd.docker.distribution.manifest.v2+json",
        }
    }
    pub fn index(self) -> &'static str {
        match self {
            Format::Oci => "application/vnd.oci.image.index.v1+json",
            Format::Docker => "application/vnd.docker.distribution.manifest.list.v2+json",
        }
    }
    fn config(self) -> &'static str {
        match self {
            Format::Oci => "application/vnd.oci.image.config.v1+json",
            Format::Docker => "application/vnd.docker.container.image.v1+json",
        }
    }
    fn layer(self) -> &'static str {
        match self {
            Format::Oci => "application/vnd.oci.image.layer.v1.tar+gzip",
            Format::Docker => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        }
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A built image: every blob and manifest, and the top-level one (the
/// manifest of a single-platform image, or the index).
pub struct Image {
    pub format: Format,
    pub blobs: Vec<Vec<u8>>,
    /// Per-platform manifests (pushed by digest before an index).
    pub platform_manifests: Vec<(String, Vec<u8>)>,
    pub top: Vec<u8>,
    pub top_media_type: &'static str,
}

impl Image {
    /// A single-platform (linux/amd64) image whose file says `content`.
    pub fn single(content: &str, format: Format) -> Image {
        Image::build(content, &["amd64"], format)
    }

    /// One manifest per architecture, plus an index when there are several.
    pub fn build(content: &str, archs: &[&str], format: Format) -> Image {
        let mut blobs = Vec::new();
        let mut manifests = Vec::new();
        for arch in archs {
            let tar = tar_file("hello.txt", format!("{content} ({arch})\n").as_bytes());
            let layer = gzip_stored(&tar);
            let config = format!(
                r#"{{"architecture":"{arch}","config":{{"Cmd":["/hello.txt"]}},"created":"1970-01-01T00:00:00Z","os":"linux","rootfs":{{"diff_ids":["{}"],"type":"layers"}}}}"#,
                sha256(&tar)
            )
            .into_bytes();
            let manifest = format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{}","size":{}}}]}}"#,
                format.manifest(),
                format.config(),
                sha256(&config),
                config.len(),
                format.layer(),
                sha256(&layer),
                layer.len()
            )
            .into_bytes();
            blobs.push(layer);
            blobs.push(config);
            manifests.push((arch.to_string(), manifest));
        }
        if manifests.len() == 1 {
            let (_, top) = manifests.remove(0);
            return Image {
                format,
                blobs,
                platform_manifests: Vec::new(),
                top,
                top_media_type: format.manifest(),
            };
        }
        let entries: Vec<String> = manifests
            .iter()
            .map(|(arch, m)| {
                format!(
                    r#"{{"mediaType":"{}","digest":"{}","size":{},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#,
                    format.manifest(),
                    sha256(m),
                    m.len()
                )
            })
            .collect();
        let top = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
            format.index(),
            entries.join(",")
        )
        .into_bytes();
        Image {
            format,
            blobs,
            platform_manifests: manifests
                .into_iter()
                .map(|(_, m)| (sha256(&m), m))
                .collect(),
            top,
            top_media_type: format.index(),
        }
    }

    /// Adds what BuildKit adds to a multi-platform index: for the first
    /// platform manifest, an attestation manifest (an in-toto layer,
    /// platform `unknown/unknown`, annotations `vnd.docker.reference.type:
    /// attestation-manifest` and `vnd.docker.reference.digest`).
    pub fn with_buildkit_attestation(mut self) -> Image {
        let (platform_digest, _) = self.platform_manifests[0].clone();
        let statement = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://slsa.dev/provenance/v0.2","subject":[{{"name":"x","digest":{{"sha256":"{}"}}}}],"predicate":{{}}}}"#,
            platform_digest.trim_start_matches("sha256:")
        )
        .into_bytes();
        let config = br#"{"architecture":"unknown","os":"unknown","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.in-toto+json","digest":"{}","size":{},"annotations":{{"in-toto.io/predicate-type":"https://slsa.dev/provenance/v0.2"}}}}]}}"#,
            sha256(&config),
            config.len(),
            sha256(&statement),
            statement.len()
        )
        .into_bytes();
        let mut index: serde_json::Value = serde_json::from_slice(&self.top).expect("index");
        index["manifests"]
            .as_array_mut()
            .expect("manifests")
            .push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": sha256(&manifest), "size": manifest.len(),
                "platform": {"architecture": "unknown", "os": "unknown"},
                "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                "vnd.docker.reference.digest": platform_digest}
            }));
        self.blobs.push(config);
        self.blobs.push(statement);
        self.platform_manifests.push((sha256(&manifest), manifest));
        self.top = index.to_string().into_bytes();
        self
    }

    /// Digest of the top-level manifest or index.
    pub fn digest(&self) -> String {
        sha256(&self.top)
    }

    /// Pushes blobs, platform manifests and the top manifest as `repo:tag`;
    /// returns the digest.
    pub async fn push(&self, registry: &Registry, repo: &str, tag: &str) -> String {
        let client = registry.client();
        let auth = registry.auth();
        let reference: Reference = registry.image(repo, tag).parse().expect("reference");
        client
            .store_auth_if_needed(reference.resolve_registry(), &auth)
            .await;
        for blob in &self.blobs {
            push_blob(&client, &reference, blob).await;
        }
        for (digest, manifest) in &self.platform_manifests {
            let by_digest = reference.clone_with_digest(digest.clone());
            push_manifest(&client, &by_digest, manifest, self.format.manifest()).await;
        }
        push_manifest(&client, &reference, &self.top, self.top_media_type).await;
        self.digest()
    }
}

/// Uploads one blob (monolithic POST + PUT).
pub async fn push_blob(client: &oci_client::Client, reference: &Reference, blob: &[u8]) {
    client
        .push_blob(reference, blob.to_vec(), &sha256(blob))
        .await
        .unwrap_or_else(|e| panic!("push blob to {reference}: {e}"));
}

/// PUTs manifest bytes exactly as given.
pub async fn push_manifest(
    client: &oci_client::Client,
    reference: &Reference,
    body: &[u8],
    media_type: &str,
) {
    client
        .push_manifest_raw(
            reference,
            body.to_vec(),
            media_type.parse().expect("media type header"),
        )
        .await
        .unwrap_or_else(|e| panic!("push manifest {reference}: {e}"));
}

/// A ustar archive with one regular file (mtime 0, mode 0644).
fn tar_file(name: &str, data: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |field: &mut [u8], value: usize| {
        let text = format!("{value:0width$o}\0", width = field.len() - 1);
        field.copy_from_slice(text.as_bytes());
    };
    octal(&mut header[100..108], 0o644);
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    octal(&mut header[124..136], data.len());
    octal(&mut header[136..148], 0);
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].fill(b' ');
    let checksum: usize = header.iter().map(|&b| b as usize).sum();
    let text = format!("{checksum:06o}\0 ");
    header[148..156].copy_from_slice(text.as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// A valid gzip stream using deflate "stored" blocks (no compression needed
/// for a test layer, no compression library needed for the lab).
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let chunks: Vec<&[u8]> = data.chunks(0xffff).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
