//! OCI 1.1 referrers in a registry without the referrers API (Debian's
//! docker-registry 2.8): the referrer manifest (with `subject`) pushed by
//! digest, and the referrers tag schema's index `sha256-<hex>` kept up to
//! date by the pusher, as ORAS, notation and cosign do on such registries.

#![allow(dead_code)] // each test binary uses a different part of the lab

use oci_client::Reference;

use super::cosign::is_not_found;
use super::image::{push_blob, push_manifest, sha256};
use super::registry::Registry;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";

/// The manifest a referrer is about.
#[derive(Debug, Clone)]
pub struct Subject {
    pub media_type: String,
    pub digest: String,
    pub size: usize,
}

impl Subject {
    /// The descriptor JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// Pushes a referrer of `subject` with `artifact_type`, the empty config and
/// `layers` (media type, bytes), and adds it to the subject's referrers tag
/// index; returns the referrer manifest's digest.
pub async fn attach(
    registry: &Registry,
    repo: &str,
    subject: &Subject,
    artifact_type: &str,
    layers: &[(&str, Vec<u8>)],
) -> String {
    let client = registry.client();
    let auth = registry.auth();
    let tag: Reference = registry
        .image(repo, &subject.digest.replacen(':', "-", 1))
        .parse()
        .expect("referrers tag reference");
    client
        .store_auth_if_needed(tag.resolve_registry(), &auth)
        .await;
    let config = b"{}".to_vec();
    push_blob(&client, &tag, &config).await;
    for (_, blob) in layers {
        push_blob(&client, &tag, blob).await;
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY_CONFIG, "digest": sha256(&config), "size": config.len()},
        "layers": layers.iter().map(|(media_type, blob)| serde_json::json!(
            {"mediaType": media_type, "digest": sha256(blob), "size": blob.len()}
        )).collect::<Vec<_>>(),
        "subject": subject.json(),
    }))
    .expect("referrer manifest");
    let digest = sha256(&manifest);
    push_manifest(
        &client,
        &tag.clone_with_digest(digest.clone()),
        &manifest,
        OCI_MANIFEST,
    )
    .await;

    let mut index = match client.pull_manifest_raw(&tag, &auth, &[OCI_INDEX]).await {
        Ok((bytes, _)) => serde_json::from_slice(&bytes).expect("referrers index JSON"),
        Err(e) if is_not_found(&e) => {
            serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
        }
        Err(e) => panic!("reading {tag}: {e}"),
    };
    index["manifests"]
        .as_array_mut()
        .expect("index manifests")
        .push(serde_json::json!({
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": manifest.len(),
            "artifactType": artifact_type,
        }));
    let index = serde_json::to_vec(&index).expect("referrers index");
    push_manifest(&client, &tag, &index, OCI_INDEX).await;
    digest
}
