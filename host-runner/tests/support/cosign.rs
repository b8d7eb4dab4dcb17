//! Signatures in the format `cosign sign --key` writes (tag-based storage, no
//! Rekor upload): a simple-signing payload, an ECDSA P-256 / SHA-256 DER
//! signature, and a signature manifest at `sha256-<hex>.sig` in the image's
//! repository with one layer per signature. Byte-for-byte what cosign (Go)
//! produces: compact JSON in struct field order, HTML-escaped, go-containerregistry's
//! empty-image config.

use oci_client::Reference;
use rcgen::{KeyPair, SigningKey};
use std::collections::BTreeMap;

use super::image::{push_blob, push_manifest, sha256};
use super::registry::Registry;
use super::sigstore::FakeSigstore;

pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// A cosign key pair (P-256). `public_pem` is what `cosign.pub` contains.
pub struct CosignKey {
    pub key: KeyPair,
}

impl CosignKey {
    pub fn generate() -> CosignKey {
        CosignKey {
            key: KeyPair::generate().expect("P-256 key"),
        }
    }
    pub fn public_pem(&self) -> String {
        self.key.public_key_pem()
    }
}

/// What to sign, beyond the image digest.
#[derive(Default)]
pub struct SignOptions<'a> {
    /// `-a key=value`: the payload's `optional` claims.
    pub annotations: BTreeMap<String, String>,
    /// Keep the signatures already under the `.sig` tag (several signatures).
    pub append: bool,
    /// Write this digest into the payload instead of the signed one (negative tests).
    pub claim_digest: Option<String>,
    /// `--certificate` / `--certificate-chain`: PEM of the signing certificate
    /// and its chain, stored as layer annotations.
    pub certificate: Option<(String, Vec<String>)>,
    /// Upload to this (fake) Rekor: adds a `dev.sigstore.cosign/bundle`
    /// annotation for `certificate` (keyless signing).
    pub rekor: Option<&'a FakeSigstore>,
}

/// Go's `encoding/json` string escaping on top of serde_json's: `<`, `>`,
/// `&`, U+2028 and U+2029 become `\uXXXX`.
pub fn go_json(value: &str) -> String {
    value
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn json_string(s: &str) -> String {
    go_json(&serde_json::to_string(s).expect("string"))
}

/// The simple-signing payload cosign signs. `docker_reference` is
/// `registry/repository` without tag.
pub fn payload(
    docker_reference: &str,
    digest: &str,
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    let optional = if annotations.is_empty() {
        "null".to_string()
    } else {
        let pairs: Vec<String> = annotations
            .iter()
            .map(|(k, v)| format!("{}:{}", json_string(k), json_string(v)))
            .collect();
        format!("{{{}}}", pairs.join(","))
    };
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":{}}},"image":{{"docker-manifest-digest":{}}},"type":"cosign container image signature"}},"optional":{optional}}}"#,
        json_string(docker_reference),
        json_string(digest)
    )
    .into_bytes()
}

/// The `sha256-<hex>.sig` tag of an image digest.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replace(':', "-"))
}

/// What [`sign`] wrote.
pub struct Signed {
    pub payload: Vec<u8>,
    /// Base64 DER signature.
    pub signature: String,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
}

/// Signs `repo@digest` in `registry` with `key`, like `cosign sign --key`.
pub async fn sign(
    registry: &Registry,
    repo: &str,
    digest: &str,
    key: &CosignKey,
    options: &SignOptions<'_>,
) -> Signed {
    let payload = payload(
        &format!("{}/{repo}", registry.addr),
        options.claim_digest.as_deref().unwrap_or(digest),
        &options.annotations,
    );
    let der = key.key.sign(&payload).expect("ecdsa signature");
    let signature = base64_encode(&der);
    let bundle = options.rekor.map(|rekor| {
        let certificate = options.certificate.as_ref().map_or("", |(c, _)| c.as_str());
        rekor.bundle(&payload, &signature, certificate)
    });
    let layer = layer_json(
        &payload,
        &signature,
        bundle.as_deref(),
        options.certificate.as_ref(),
    );

    let client = registry.client();
    let auth = registry.auth();
    let sig_ref: Reference = registry
        .image(repo, &signature_tag(digest))
        .parse()
        .expect("signature reference");
    client
        .store_auth_if_needed(sig_ref.resolve_registry(), &auth)
        .await;
    let mut layers = Vec::new();
    if options.append {
        layers = existing_layers(&client, &sig_ref, &auth).await;
        layers.retain(|l| l != &layer);
    }
    layers.push(layer);
    let (config, manifest) = signature_manifest(&layers);
    push_blob(&client, &sig_ref, &payload).await;
    push_blob(&client, &sig_ref, &config).await;
    push_manifest(&client, &sig_ref, &manifest, OCI_MANIFEST).await;
    Signed {
        payload,
        signature,
        manifest_digest: sha256(&manifest),
        manifest,
    }
}

/// One layer descriptor, compact JSON in cosign's field order.
fn layer_json(
    payload: &[u8],
    signature: &str,
    bundle: Option<&str>,
    certificate: Option<&(String, Vec<String>)>,
) -> String {
    let mut annotations = vec![(SIGNATURE_ANNOTATION, signature.to_string())];
    if let Some(bundle) = bundle {
        annotations.push((BUNDLE_ANNOTATION, bundle.to_string()));
    }
    if let Some((cert, chain)) = certificate {
        annotations.push((CERTIFICATE_ANNOTATION, cert.clone()));
        annotations.push((CHAIN_ANNOTATION, chain.concat()));
    }
    let annotations: Vec<String> = annotations
        .iter()
        .map(|(k, v)| format!("{}:{}", json_string(k), json_string(v)))
        .collect();
    format!(
        r#"{{"mediaType":"{SIMPLE_SIGNING_MEDIA_TYPE}","size":{},"digest":"{}","annotations":{{{}}}}}"#,
        payload.len(),
        sha256(payload),
        annotations.join(",")
    )
}

/// The layers of the `.sig` manifest already in the registry, re-serialized
/// compactly (key order preserved), or none.
async fn existing_layers(
    client: &oci_client::Client,
    sig_ref: &Reference,
    auth: &oci_client::secrets::RegistryAuth,
) -> Vec<String> {
    match client
        .pull_manifest_raw(sig_ref, auth, &[OCI_MANIFEST])
        .await
    {
        Ok((bytes, _)) => {
            let manifest: serde_json::Value =
                serde_json::from_slice(&bytes).expect("signature manifest JSON");
            manifest["layers"]
                .as_array()
                .expect("layers")
                .iter()
                .map(|l| go_json(&l.to_string()))
                .collect()
        }
        Err(e) if is_not_found(&e) => Vec::new(),
        Err(e) => panic!("reading {sig_ref}: {e}"),
    }
}

fn is_not_found(e: &oci_client::errors::OciDistributionError) -> bool {
    use oci_client::errors::OciDistributionError as E;
    match e {
        E::ImageManifestNotFoundError(_) => true,
        E::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| e.code == oci_client::errors::OciErrorCode::ManifestUnknown),
        _ => false,
    }
}

/// go-containerregistry's `empty.Image` + `mutate.Append` config and the
/// manifest over it.
fn signature_manifest(layers: &[String]) -> (Vec<u8>, Vec<u8>) {
    let digests: Vec<String> = layers
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("layer JSON");
            format!("\"{}\"", v["digest"].as_str().expect("layer digest"))
        })
        .collect();
    let history = vec![r#"{"created":"0001-01-01T00:00:00Z"}"#; layers.len()].join(",");
    let config = format!(
        r#"{{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{history}],"os":"","rootfs":{{"type":"layers","diff_ids":[{}]}},"config":{{}}}}"#,
        digests.join(",")
    )
    .into_bytes();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","size":{},"digest":"{}"}},"layers":[{}]}}"#,
        config.len(),
        sha256(&config),
        layers.join(",")
    )
    .into_bytes();
    (config, manifest)
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
