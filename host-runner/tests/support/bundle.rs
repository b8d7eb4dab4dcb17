//! Signatures and attestations in the formats of cosign v3 and later: a
//! sigstore bundle v0.3 (a DSSE envelope over an in-toto statement) stored
//! as an OCI 1.1 referrer of the image (`subject`, `artifactType`, an empty
//! config, one bundle layer), listed in the referrers tag-schema index
//! `sha256-<hex>` (Debian's docker-registry 2.8 has no referrers API and
//! does not maintain that index: the lab writes it, as cosign does on such
//! registries); and cosign's older attestation layers under `.att`.

use oci_client::Reference;
use rcgen::SigningKey;
use serde_json::{json, Value};
use std::collections::BTreeMap;

use super::certs::Leaf;
use super::cosign::{go_json, CosignKey};
use super::image::{push_blob, push_manifest, sha256};
use super::registry::Registry;
use super::sigstore::{b64, FakeSigstore};

pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
pub const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
const IN_TOTO: &str = "application/vnd.in-toto+json";
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// Who signs.
pub enum Signer<'a> {
    /// `cosign sign --key` (no transparency log: `--tlog-upload=false`).
    Key(&'a CosignKey),
    /// Keyless: a certificate of the fake Fulcio, logged in the fake Rekor,
    /// timestamped by the fake TSA (each optional, for negative tests).
    Keyless {
        sigstore: &'a FakeSigstore,
        certificate: &'a Leaf,
        tlog: bool,
        timestamp: bool,
    },
}

impl Signer<'_> {
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Signer::Key(key) => key.key.sign(message),
            Signer::Keyless { certificate, .. } => certificate.key.sign(message),
        }
        .expect("signature")
    }
}

/// What is signed, beyond the image digest.
pub struct Statement {
    pub predicate_type: String,
    pub predicate: Value,
    /// The subject's annotations (`cosign sign -a k=v`).
    pub annotations: BTreeMap<String, String>,
    /// Write this digest into the statement instead of the signed one (negative tests).
    pub claim_digest: Option<String>,
}

impl Statement {
    /// What `cosign sign` signs.
    pub fn signature() -> Statement {
        Statement {
            predicate_type: SIGN_PREDICATE.to_string(),
            predicate: Value::Null,
            annotations: BTreeMap::new(),
            claim_digest: None,
        }
    }

    /// An attestation with this predicate.
    pub fn attestation(predicate_type: &str, predicate: Value) -> Statement {
        Statement {
            predicate_type: predicate_type.to_string(),
            predicate,
            ..Statement::signature()
        }
    }

    fn payload(&self, digest: &str, version: &str) -> Vec<u8> {
        let digest = self.claim_digest.as_deref().unwrap_or(digest);
        json!({"_type": format!("https://in-toto.io/Statement/{version}"),
               "subject": [{"name": "", "digest": {"sha256": digest.trim_start_matches("sha256:")},
                            "annotations": self.annotations}],
               "predicateType": self.predicate_type,
               "predicate": self.predicate})
        .to_string()
        .into_bytes()
    }
}

fn pae(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {IN_TOTO} {} ", IN_TOTO.len(), payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

fn der_of(pem: &str) -> Vec<u8> {
    rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
        .map(|c: rustls_pki_types::CertificateDer<'_>| c.to_vec())
        .expect("certificate der")
}

/// The bundle JSON for `statement` about `digest`.
pub fn bundle(digest: &str, signer: &Signer<'_>, statement: &Statement) -> Vec<u8> {
    let payload = statement.payload(digest, "v1");
    let signature = signer.sign(&pae(&payload));
    let material = match signer {
        Signer::Key(key) => json!({
            "publicKey": {"hint": key_hint(&key.key)},
            "tlogEntries": []
        }),
        Signer::Keyless {
            sigstore,
            certificate,
            tlog,
            timestamp,
        } => {
            let mut m = json!({
                "certificate": {"rawBytes": b64(&der_of(&certificate.cert_pem))},
                "tlogEntries": if *tlog {
                    vec![sigstore.tlog_entry(&payload, &signature, &certificate.cert_pem)]
                } else {
                    vec![]
                }
            });
            if *timestamp {
                m["timestampVerificationData"] = json!({"rfc3161Timestamps": [{"signedTimestamp": b64(&sigstore.timestamp(&signature))}]});
            }
            m
        }
    };
    json!({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": material,
        "dsseEnvelope": {"payload": b64(&payload), "payloadType": IN_TOTO,
                         "signatures": [{"sig": b64(&signature)}]}
    })
    .to_string()
    .into_bytes()
}

/// The hint cosign writes for a key: base64 sha256 of its public key.
fn key_hint(key: &rcgen::KeyPair) -> String {
    use rcgen::PublicKeyData;
    use sha2::Digest;
    b64(&sha2::Sha256::digest(key.subject_public_key_info()))
}

/// The manifest `repo@digest` as stored, and its media type.
pub async fn subject(registry: &Registry, repo: &str, digest: &str) -> (Vec<u8>, String) {
    let client = registry.client();
    let reference: Reference = format!("{}/{repo}@{digest}", registry.addr)
        .parse()
        .expect("reference");
    client
        .store_auth_if_needed(reference.resolve_registry(), &registry.auth())
        .await;
    let (bytes, _) = client
        .pull_manifest_raw(
            &reference,
            &registry.auth(),
            &[
                OCI_MANIFEST,
                OCI_INDEX,
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
            ],
        )
        .await
        .expect("subject manifest");
    let media_type = serde_json::from_slice::<Value>(&bytes).expect("subject JSON")["mediaType"]
        .as_str()
        .unwrap_or(OCI_MANIFEST)
        .to_string();
    (bytes.to_vec(), media_type)
}

/// Stores `bundle` as a referrer of `repo@digest` and lists it in the
/// referrers tag index; returns the referrer manifest's digest.
pub async fn attach(
    registry: &Registry,
    repo: &str,
    digest: &str,
    bundle: &[u8],
    predicate_type: &str,
) -> String {
    let (subject_bytes, subject_type) = subject(registry, repo, digest).await;
    let empty = b"{}".to_vec();
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE_MEDIA_TYPE,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": sha256(&empty), "size": 2},
        "layers": [{"mediaType": BUNDLE_MEDIA_TYPE, "digest": sha256(bundle), "size": bundle.len()}],
        "subject": {"mediaType": subject_type, "digest": digest, "size": subject_bytes.len()},
        "annotations": {"dev.sigstore.bundle.content": "dsse-envelope",
                        "dev.sigstore.bundle.predicateType": predicate_type}
    })
    .to_string()
    .into_bytes();
    let manifest_digest = push_artifact(registry, repo, &[&empty, bundle], &manifest).await;
    add_referrer(
        registry,
        repo,
        digest,
        json!({"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": manifest.len(),
               "artifactType": BUNDLE_MEDIA_TYPE,
               "annotations": {"dev.sigstore.bundle.predicateType": predicate_type}}),
    )
    .await;
    manifest_digest
}

/// Pushes `blobs` and then `manifest` (an OCI image manifest) by digest
/// into `repo`; returns the manifest's digest.
pub async fn push_artifact(
    registry: &Registry,
    repo: &str,
    blobs: &[&[u8]],
    manifest: &[u8],
) -> String {
    let client = registry.client();
    let base: Reference = registry.image(repo, "unused").parse().expect("reference");
    client
        .store_auth_if_needed(base.resolve_registry(), &registry.auth())
        .await;
    for blob in blobs {
        push_blob(&client, &base, blob).await;
    }
    let digest = sha256(manifest);
    push_manifest(
        &client,
        &base.clone_with_digest(digest.clone()),
        manifest,
        OCI_MANIFEST,
    )
    .await;
    digest
}

/// Appends `entry` to the `sha256-<hex>` referrers index of `digest`.
pub async fn add_referrer(registry: &Registry, repo: &str, digest: &str, entry: Value) {
    let client = registry.client();
    let tag: Reference = registry
        .image(repo, &digest.replace(':', "-"))
        .parse()
        .expect("tag");
    client
        .store_auth_if_needed(tag.resolve_registry(), &registry.auth())
        .await;
    let mut entries: Vec<Value> = match client
        .pull_manifest_raw(&tag, &registry.auth(), &[OCI_INDEX])
        .await
    {
        Ok((bytes, _)) => serde_json::from_slice::<Value>(&bytes).expect("index")["manifests"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    entries.push(entry);
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
        .to_string()
        .into_bytes();
    push_manifest(&client, &tag, &index, OCI_INDEX).await;
}

/// Signs (or attests) `repo@digest` like cosign v3: a bundle as a referrer.
pub async fn sign(
    registry: &Registry,
    repo: &str,
    digest: &str,
    signer: &Signer<'_>,
    statement: &Statement,
) -> String {
    let bundle = bundle(digest, signer, statement);
    attach(registry, repo, digest, &bundle, &statement.predicate_type).await
}

/// `cosign attest` before bundles: a DSSE envelope layer under
/// `sha256-<hex>.att`, with the certificate and the Rekor bundle as layer
/// annotations (keyless) or nothing more (a key).
pub async fn attest_legacy(
    registry: &Registry,
    repo: &str,
    digest: &str,
    signer: &Signer<'_>,
    statement: &Statement,
) -> String {
    let payload = statement.payload(digest, "v0.1");
    let signature = signer.sign(&pae(&payload));
    let envelope = format!(
        r#"{{"payloadType":"{IN_TOTO}","payload":"{}","signatures":[{{"keyid":"","sig":"{}"}}]}}"#,
        b64(&payload),
        b64(&signature)
    )
    .into_bytes();
    let mut annotations = vec![
        (
            "dev.cosignproject.cosign/signature".to_string(),
            String::new(),
        ),
        (
            "predicateType".to_string(),
            statement.predicate_type.clone(),
        ),
    ];
    if let Signer::Keyless {
        sigstore,
        certificate,
        ..
    } = signer
    {
        let body = json!({
            "apiVersion": "0.0.1", "kind": "dsse",
            "spec": {"payloadHash": {"algorithm": "sha256", "value": sha256(&payload).trim_start_matches("sha256:")},
                     "signatures": [{"signature": b64(&signature), "verifier": b64(certificate.cert_pem.as_bytes())}]}
        });
        annotations.push((
            "dev.sigstore.cosign/bundle".to_string(),
            sigstore.legacy_bundle(body.to_string().as_bytes()),
        ));
        annotations.push((
            "dev.sigstore.cosign/certificate".to_string(),
            certificate.cert_pem.clone(),
        ));
        annotations.push((
            "dev.sigstore.cosign/chain".to_string(),
            sigstore.fulcio.cert_pem.clone(),
        ));
    }
    let annotations: Vec<String> = annotations
        .iter()
        .map(|(k, v)| {
            format!(
                "{}:{}",
                go_json(&serde_json::to_string(k).unwrap()),
                go_json(&serde_json::to_string(v).unwrap())
            )
        })
        .collect();
    let layer = format!(
        r#"{{"mediaType":"application/vnd.dsse.envelope.v1+json","size":{},"digest":"{}","annotations":{{{}}}}}"#,
        envelope.len(),
        sha256(&envelope),
        annotations.join(",")
    );
    let config = format!(
        r#"{{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{{"created":"0001-01-01T00:00:00Z"}}],"os":"","rootfs":{{"type":"layers","diff_ids":["{}"]}},"config":{{}}}}"#,
        sha256(&envelope)
    )
    .into_bytes();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","size":{},"digest":"{}"}},"layers":[{layer}]}}"#,
        config.len(),
        sha256(&config)
    )
    .into_bytes();
    let client = registry.client();
    let att: Reference = registry
        .image(repo, &format!("{}.att", digest.replace(':', "-")))
        .parse()
        .expect("att tag");
    client
        .store_auth_if_needed(att.resolve_registry(), &registry.auth())
        .await;
    push_blob(&client, &att, &envelope).await;
    push_blob(&client, &att, &config).await;
    push_manifest(&client, &att, &manifest, OCI_MANIFEST).await;
    sha256(&manifest)
}
