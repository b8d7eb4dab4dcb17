//! The Kubewarden policy OCI artifact, pushed and pulled as `kwctl push` /
//! `kwctl pull` exchange it (policy-fetcher's registry.rs).
//!
//! The artifact is one layer `application/vnd.wasm.content.layer.v1+wasm`
//! (the annotated module, byte for byte) with config
//! `application/vnd.wasm.config.v1+json` (`{}`), and the metadata
//! annotations as manifest annotations: multi-line values (the README in
//! `io.kubewarden.policy.usage`) are dropped as the OCI annotation rules
//! require, the others trimmed, and `io.kubewarden.policy.source` is copied to
//! `org.opencontainers.image.source`. Un-annotated modules are refused:
//! policy-server would refuse to run them. Push prints the immutable
//! `registry/repo@sha256:...` reference (`-o json`: `{"immutable_ref": ...}`),
//! the form to sign and to deploy.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_client::client::{Config, ImageLayer};
use oci_client::manifest::{
    OciImageManifest, OCI_IMAGE_MEDIA_TYPE, WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;

use crate::packaging::metadata::{keys, Metadata};
use crate::registry::{registry_auth, RegistryAccess, RegistryConfig};

const SCHEME: &str = "registry://";
const OCI_SOURCE: &str = oci_client::annotations::ORG_OPENCONTAINERS_IMAGE_SOURCE;

/// The policy module at `policy`: a `.wasm` file, or `registry://...`
/// pulled as policy-server does (run, test, bench, serve).
pub fn read_module(policy: &Path, registry: &RegistryConfig) -> Result<Vec<u8>> {
    match policy.to_str().filter(|p| p.starts_with(SCHEME)) {
        Some(uri) => {
            let access = RegistryAccess::new(&registry.clone().with_user_docker_config())?;
            block_on(pull(uri, &access))
        }
        None => std::fs::read(policy)
            .with_context(|| format!("cannot read policy module {}", policy.display())),
    }
}

/// Runs an async registry exchange from synchronous code.
pub fn block_on<T>(future: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(future)
}

/// Publishes `module` at `destination`; returns the immutable reference.
pub async fn push(module: &[u8], destination: &str, registry: &RegistryAccess) -> Result<String> {
    let metadata = Metadata::from_module(module)?.context(
        "cannot push a policy that is not annotated: run `imagegate annotate` first \
         (policy-server only runs annotated modules)",
    )?;
    if metadata.protocol_version.is_none() {
        bail!("the policy metadata has no protocolVersion: annotate it with `imagegate annotate`");
    }
    let layers = vec![ImageLayer::new(
        module.to_vec(),
        WASM_LAYER_MEDIA_TYPE.to_string(),
        None,
    )];
    let config = Config::new(&b"{}"[..], WASM_CONFIG_MEDIA_TYPE.to_string(), None);
    let mut manifest = OciImageManifest::build(&layers, &config, Some(oci_annotations(&metadata)));
    // kwctl leaves it out; the image spec says SHOULD, and strict registries want it.
    manifest.media_type = Some(OCI_IMAGE_MEDIA_TYPE.to_string());
    push_manifest(
        registry,
        destination,
        "the policy",
        &layers,
        config,
        manifest,
    )
    .await
}

/// Pushes `layers`, `config` and `manifest` to the tag `destination`
/// (`registry://...`); returns the immutable reference. Also used for the
/// container image ([`crate::deploy::image`]).
pub(crate) async fn push_manifest(
    registry: &RegistryAccess,
    destination: &str,
    what: &str,
    layers: &[ImageLayer],
    config: Config,
    manifest: OciImageManifest,
) -> Result<String> {
    let reference = parse_uri(destination)?;
    if reference.digest().is_some() {
        bail!("{destination}: push to a tag, the digest is computed by the registry");
    }
    let response = registry
        .oci_client()?
        .push(
            &reference,
            layers,
            config,
            &auth(registry, &reference)?,
            Some(manifest),
        )
        .await
        .map_err(|e| plain_http_hint(e.into(), &reference))
        .with_context(|| format!("cannot push {what} to {destination}"))?;
    immutable_ref(&reference, &response.manifest_url)
}

/// Fetches the policy layer of the artifact at `uri`.
pub async fn pull(uri: &str, registry: &RegistryAccess) -> Result<Vec<u8>> {
    let reference = parse_uri(uri)?;
    let image = registry
        .oci_client()?
        .pull(
            &reference,
            &auth(registry, &reference)?,
            vec![WASM_LAYER_MEDIA_TYPE],
        )
        .await
        .map_err(|e| plain_http_hint(e.into(), &reference))
        .with_context(|| format!("cannot pull the policy from {uri}"))?;
    match image.layers.as_slice() {
        [layer] => Ok(layer.data.to_vec()),
        layers => bail!("{uri}: expected one wasm layer, found {}", layers.len()),
    }
}

/// A registry that speaks plain HTTP answers the TLS handshake with HTTP
/// bytes, which rustls reports as `received corrupt message of type
/// InvalidContentType`: say what the fix is.
fn plain_http_hint(e: anyhow::Error, reference: &Reference) -> anyhow::Error {
    if format!("{e:#}").contains("InvalidContentType") {
        let registry = reference.registry();
        e.context(format!(
            "{registry} does not speak TLS: if it is a plain-HTTP registry, pass `--insecure-registry {registry}`"
        ))
    } else {
        e
    }
}

fn parse_uri(uri: &str) -> Result<Reference> {
    let rest = uri
        .strip_prefix(SCHEME)
        .with_context(|| format!("{uri:?}: expected registry://host/repository:tag"))?;
    rest.parse()
        .with_context(|| format!("{uri:?} is not a valid OCI reference"))
}

fn auth(registry: &RegistryAccess, reference: &Reference) -> Result<RegistryAuth> {
    let credential = registry
        .credential_for(reference)
        .map_err(anyhow::Error::msg)?;
    Ok(registry_auth(credential.as_ref()))
}

/// Metadata annotations usable as OCI manifest annotations.
pub fn oci_annotations(metadata: &Metadata) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(key, value)| {
            let single = value.lines().count() <= 1;
            if !single {
                eprintln!(
                    "note: annotation {key} is multi-line, it is not copied to the OCI manifest"
                );
            }
            single
        })
        .map(|(k, v)| (k.clone(), v.trim().to_string()))
        .collect();
    if let Some(source) = out.get(keys::SOURCE).cloned() {
        out.entry(OCI_SOURCE.to_string()).or_insert(source);
    }
    out
}

/// `registry/repository@digest` from the manifest URL the registry returned
/// (`.../manifests/sha256:...`).
fn immutable_ref(reference: &Reference, manifest_url: &str) -> Result<String> {
    let digest = manifest_url
        .rsplit_once('/')
        .map(|(_, d)| d)
        .with_context(|| format!("cannot find the manifest digest in {manifest_url:?}"))?;
    let valid = match digest.split_once(':') {
        Some(("sha256", hex)) => hex.len() == 64,
        Some(("sha512", hex)) => hex.len() == 128,
        _ => false,
    } && digest.split_once(':').is_some_and(|(_, hex)| {
        hex.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    });
    if !valid {
        bail!("the registry answered an invalid manifest digest {digest:?} ({manifest_url})");
    }
    Ok(format!(
        "{}/{}@{digest}",
        reference.registry(),
        reference.repository()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(annotations: &[(&str, &str)]) -> Metadata {
        let mut m = Metadata::from_yaml("rules: []\nmutating: false\n").unwrap();
        m.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        m
    }

    #[test]
    fn multi_line_annotations_are_dropped_and_source_propagated() {
        let m = metadata(&[
            (keys::USAGE, "# README\n\nlong"),
            (keys::DESCRIPTION, "one line ending in a newline\n"),
            (keys::SOURCE, "https://github.com/imagegate/imagegate"),
        ]);
        let a = oci_annotations(&m);
        assert!(!a.contains_key(keys::USAGE));
        assert_eq!(a[keys::DESCRIPTION], "one line ending in a newline");
        assert_eq!(a[OCI_SOURCE], "https://github.com/imagegate/imagegate");
        let m = metadata(&[(keys::SOURCE, "a"), (OCI_SOURCE, "b")]);
        assert_eq!(
            oci_annotations(&m)[OCI_SOURCE],
            "b",
            "an explicit value wins"
        );
    }

    #[test]
    fn immutable_reference_from_manifest_url() {
        let r: Reference = "127.0.0.1:5000/policies/imagegate:v1".parse().unwrap();
        let hex = "ab".repeat(32);
        assert_eq!(
            immutable_ref(
                &r,
                &format!("http://127.0.0.1:5000/v2/policies/imagegate/manifests/sha256:{hex}")
            )
            .unwrap(),
            format!("127.0.0.1:5000/policies/imagegate@sha256:{hex}")
        );
        for bad in [
            "nothing",
            "http://h/v2/r/manifests/sha256:abc",
            "http://h/v2/r/manifests/md5:00",
        ] {
            assert!(immutable_ref(&r, bad).is_err(), "{bad}");
        }
        let upper = "AB".repeat(32);
        assert!(immutable_ref(&r, &format!("h/sha256:{upper}")).is_err());
    }

    #[test]
    fn uris_need_the_registry_scheme() {
        assert!(parse_uri("ghcr.io/x/y:1").is_err());
        assert!(parse_uri("registry://").is_err());
        let r = parse_uri("registry://127.0.0.1:5000/x/y:1").unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("127.0.0.1:5000", "x/y", Some("1"))
        );
    }

    #[test]
    fn unannotated_modules_are_refused() {
        let module = crate::packaging::annotate::tests::guest(r#""v1""#);
        let registry = RegistryAccess::new(&RegistryConfig::default()).unwrap();
        let err = block_on(push(&module, "registry://127.0.0.1:1/x:y", &registry)).unwrap_err();
        assert!(err.to_string().contains("not annotated"), "{err}");
    }
}
