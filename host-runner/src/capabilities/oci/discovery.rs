//! Where signatures of a manifest digest are found, and what each candidate
//! is: the OCI referrers API, the referrers tag schema (`sha256-<hex>`: the
//! only one Debian's docker-registry 2.8 has) and cosign's legacy tags
//! (`sha256-<hex>.sig`, `.att`).
//!
//! A referrer's index entry is never trusted: each is opened (its manifest
//! by digest) and classified by what it holds. It must name the subject
//! (`subject.digest`), then:
//! * a sigstore bundle: exactly one layer whose media type starts with
//!   `application/vnd.dev.sigstore.bundle` (cosign's own rule);
//! * a Notation signature: artifactType or config media type
//!   `application/vnd.cncf.notary.signature`, one `application/jose+json` or
//!   `application/cose` layer;
//! * cosign attestation layers (`application/vnd.dsse.envelope.v1+json`),
//!   as the `.att` tag and cosign's in-toto referrers hold them;
//! * anything else is "not a signature", listed with what it is.
//!
//! Limits: 32 referrers opened per subject (the rest are reported), 8
//! referrers pages, signature layers of 1 MiB.

use serde::Deserialize;
use std::collections::BTreeMap;

use crate::capabilities::notation;

use super::distribution::{
    Distribution, Failure, Manifest, Repo, ANY_MANIFEST, OCI_INDEX, OCI_MANIFEST,
};

/// At most this many referrers are opened per subject.
pub(crate) const MAX_REFERRERS: usize = 32;
/// At most this many pages of the referrers API are read.
pub(crate) const MAX_PAGES: usize = 8;
/// A signature layer (bundle, envelope, DSSE) larger than this is refused.
pub(crate) const MAX_LAYER: usize = 1 << 20;

const BUNDLE_LAYER_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
const DSSE_LAYER: &str = "application/vnd.dsse.envelope.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Where a candidate was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    ReferrersApi,
    ReferrersTag,
    SigTag,
    AttTag,
}

impl Path {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Path::ReferrersApi => "referrers-api",
            Path::ReferrersTag => "referrers-tag",
            Path::SigTag => "cosign-sig-tag",
            Path::AttTag => "cosign-att-tag",
        }
    }
}

/// An OCI descriptor (index entries, layers, subject).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub(crate) media_type: String,
    pub(crate) digest: String,
    #[serde(default)]
    pub(crate) size: u64,
    #[serde(default)]
    pub(crate) artifact_type: Option<String>,
    #[serde(default)]
    pub(crate) annotations: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestDoc {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    subject: Option<Descriptor>,
}

/// One signature layer with the annotations its manifest gives it.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub(crate) bytes: Vec<u8>,
    pub(crate) annotations: BTreeMap<String, String>,
}

/// What an opened referrer holds.
#[derive(Debug)]
pub(crate) enum Found {
    /// A sigstore bundle (JSON) with its layer media type.
    Bundle { media_type: String, json: Vec<u8> },
    /// A Notation signature: its envelope layer (JWS or COSE), fetched
    /// only by Notation checks ([`Discovery::layer`]).
    Notation { layer: Descriptor },
    /// cosign DSSE attestation layers.
    Dsse(Vec<Result<Layer, String>>),
    /// Not a signature: what it is instead.
    Other(String),
}

impl Found {
    /// How the trace names it.
    pub(crate) fn kind(&self) -> String {
        match self {
            Found::Bundle { media_type, .. } => format!("sigstore bundle ({media_type})"),
            Found::Notation { layer } => format!("Notation signature ({})", layer.media_type),
            Found::Dsse(layers) => format!("cosign attestation layers ({})", layers.len()),
            Found::Other(what) => what.clone(),
        }
    }
}

/// What the referrers API answered.
pub(crate) enum Api {
    /// 404: the registry has no referrers API.
    Absent(String),
    /// Not asked: the registry answered 404 within the last minutes
    /// ([`super::distribution::NO_API_TTL`]).
    KnownAbsent,
    /// The entries, in order, and how many pages.
    Entries(Vec<Descriptor>, usize),
}

/// Discovery for one repository.
pub(crate) struct Discovery<'a> {
    pub(crate) dist: &'a Distribution,
    pub(crate) repo: &'a Repo,
}

/// `sha256:<hex>` -> `sha256-<hex>` (the referrers tag schema).
pub(crate) fn tag_of(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

fn index_entries(bytes: &[u8], what: &str) -> Result<Vec<Descriptor>, String> {
    let doc: ManifestDoc =
        serde_json::from_slice(bytes).map_err(|e| format!("{what} is not an OCI index: {e}"))?;
    doc.manifests
        .ok_or_else(|| format!("{what} is not an OCI index (no manifests)"))
}

impl Discovery<'_> {
    /// `GET /v2/<repo>/referrers/<digest>` with every page, unless the
    /// registry is known to lack the API.
    pub(crate) async fn referrers_api(&self, digest: &str) -> Result<Api, String> {
        if self.dist.lacks_referrers_api(self.repo) {
            return Ok(Api::KnownAbsent);
        }
        match self.dist.referrers(self.repo, digest, MAX_PAGES).await {
            Ok(pages) => {
                let mut entries = Vec::new();
                for page in &pages {
                    entries.extend(index_entries(page, "the referrers answer")?);
                }
                Ok(Api::Entries(entries, pages.len()))
            }
            Err(Failure::NotFound(text)) => Ok(Api::Absent(text)),
            Err(Failure::Error(text)) => Err(text),
        }
    }

    /// The `sha256-<hex>` index: `Ok(None)` when absent (404), or when the
    /// tag holds something else than an index (the spec: then there are no
    /// referrers), with what it was.
    pub(crate) async fn referrers_tag(
        &self,
        digest: &str,
    ) -> Result<Result<Vec<Descriptor>, String>, String> {
        let tag = tag_of(digest);
        match self.dist.manifest(self.repo, &tag, &[OCI_INDEX]).await {
            Ok(m) => {
                Ok(index_entries(&m.bytes, &format!("tag {tag}"))
                    .map_err(|e| format!("{e}: ignored")))
            }
            Err(Failure::NotFound(_)) => Ok(Err(format!("no tag {tag}"))),
            Err(Failure::Error(text)) => Err(text),
        }
    }

    /// A legacy cosign tag (`sig` or `att`) of `digest`: `None` when absent.
    pub(crate) async fn legacy(
        &self,
        digest: &str,
        suffix: &str,
    ) -> Result<Option<Manifest>, String> {
        let tag = format!("{}.{suffix}", tag_of(digest));
        match self
            .dist
            .manifest(self.repo, &tag, &[OCI_MANIFEST, DOCKER_MANIFEST])
            .await
        {
            Ok(m) => Ok(Some(m)),
            Err(Failure::NotFound(_)) => Ok(None),
            Err(Failure::Error(text)) => Err(text),
        }
    }

    /// The DSSE layers of a `.att` manifest.
    pub(crate) async fn att_layers(
        &self,
        manifest: &Manifest,
    ) -> Result<Vec<Result<Layer, String>>, String> {
        let doc: ManifestDoc = serde_json::from_slice(&manifest.bytes)
            .map_err(|e| format!("the .att manifest: {e}"))?;
        Ok(self.dsse_layers(&doc.layers).await)
    }

    async fn dsse_layers(&self, layers: &[Descriptor]) -> Vec<Result<Layer, String>> {
        let mut out = Vec::new();
        for layer in layers {
            if layer.media_type != DSSE_LAYER {
                out.push(Err(format!(
                    "layer {} is {}, not a DSSE envelope",
                    layer.digest, layer.media_type
                )));
                continue;
            }
            out.push(
                self.dist
                    .blob(self.repo, &layer.digest, layer.size, MAX_LAYER)
                    .await
                    .map(|bytes| Layer {
                        bytes,
                        annotations: layer.annotations.clone(),
                    })
                    .map_err(|f| f.text().to_string()),
            );
        }
        out
    }

    /// Opens one referrer of `subject`: its manifest, then its signature layer.
    pub(crate) async fn open(&self, subject: &str, entry: &Descriptor) -> Result<Found, String> {
        let manifest = self
            .dist
            .manifest(self.repo, &entry.digest, &[OCI_MANIFEST])
            .await
            .map_err(|f| f.text().to_string())?;
        let doc: ManifestDoc =
            serde_json::from_slice(&manifest.bytes).map_err(|e| format!("not a manifest: {e}"))?;
        if doc.manifests.is_some() || doc.media_type.as_deref().is_some_and(|m| m != OCI_MANIFEST) {
            return Ok(Found::Other(format!(
                "not a signature (a {})",
                doc.media_type.as_deref().unwrap_or("manifest list")
            )));
        }
        match &doc.subject {
            Some(s) if s.digest == subject => {}
            Some(s) => return Err(format!("its subject is {}, not {subject}", s.digest)),
            None => return Err(format!("it names no subject (not a referrer of {subject})")),
        }
        let artifact_type = doc
            .artifact_type
            .clone()
            .or_else(|| doc.config.as_ref().map(|c| c.media_type.clone()))
            .unwrap_or_default();
        let layer_types: Vec<&str> = doc.layers.iter().map(|l| l.media_type.as_str()).collect();
        let one = |accept: &dyn Fn(&str) -> bool| match doc.layers.as_slice() {
            [layer] if accept(&layer.media_type) => Some(layer.clone()),
            _ => None,
        };
        if let Some(layer) = one(&|t| t.starts_with(BUNDLE_LAYER_PREFIX)) {
            let json = self.layer(&layer).await?;
            return Ok(Found::Bundle {
                media_type: layer.media_type,
                json,
            });
        }
        if artifact_type == notation::ARTIFACT_TYPE {
            let Some(layer) = one(&|t| notation::Format::of(t).is_some()) else {
                return Err(format!(
                    "a Notation signature needs one JWS or COSE layer, it has {layer_types:?}"
                ));
            };
            return Ok(Found::Notation { layer });
        }
        if !doc.layers.is_empty() && doc.layers.iter().all(|l| l.media_type == DSSE_LAYER) {
            return Ok(Found::Dsse(self.dsse_layers(&doc.layers).await));
        }
        Ok(Found::Other(format!(
            "not a signature (artifactType {artifact_type:?}, layers {layer_types:?})"
        )))
    }

    /// A signature layer's bytes (size-capped, digest-checked).
    pub(crate) async fn layer(&self, layer: &Descriptor) -> Result<Vec<u8>, String> {
        self.dist
            .blob(self.repo, &layer.digest, layer.size, MAX_LAYER)
            .await
            .map_err(|f| f.text().to_string())
    }

    /// The manifest a reference (tag or digest) resolves to.
    pub(crate) async fn resolve(&self, reference: &str) -> Result<Manifest, String> {
        self.dist
            .manifest(self.repo, reference, ANY_MANIFEST)
            .await
            .map_err(|f| f.text().to_string())
    }
}

/// The descriptor of a fetched manifest: its own media type, digest and size.
pub(crate) fn descriptor_of(manifest: &Manifest) -> Result<Descriptor, String> {
    let doc: ManifestDoc = serde_json::from_slice(&manifest.bytes)
        .map_err(|e| format!("manifest {}: {e}", manifest.digest))?;
    Ok(Descriptor {
        media_type: doc.media_type.unwrap_or_default(),
        digest: manifest.digest.clone(),
        size: manifest.bytes.len() as u64,
        ..Descriptor::default()
    })
}

/// BuildKit's attestation manifests in an index (provenance/SBOM of the
/// platform images): `vnd.docker.reference.type: attestation-manifest`.
pub(crate) fn is_attestation_manifest(entry: &Descriptor) -> bool {
    entry
        .annotations
        .get("vnd.docker.reference.type")
        .map(String::as_str)
        == Some("attestation-manifest")
}

/// The layers of an image manifest (none for an index).
pub(crate) fn layers_of(manifest: &Manifest) -> Result<Vec<Descriptor>, String> {
    let doc: ManifestDoc = serde_json::from_slice(&manifest.bytes)
        .map_err(|e| format!("manifest {}: {e}", manifest.digest))?;
    Ok(doc.layers)
}

/// The entries of an index manifest, `None` for an image manifest.
pub(crate) fn index_children(manifest: &Manifest) -> Result<Option<Vec<Descriptor>>, String> {
    let doc: ManifestDoc = serde_json::from_slice(&manifest.bytes)
        .map_err(|e| format!("manifest {}: {e}", manifest.digest))?;
    Ok(doc.manifests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referrer_tags_and_index_entries() {
        assert_eq!(tag_of("sha256:abcd"), "sha256-abcd");
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":10,
             "artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json","annotations":{"dev.sigstore.bundle.predicateType":"x"}}]}"#;
        let entries = index_entries(index, "i").unwrap();
        assert_eq!(
            entries[0].artifact_type.as_deref(),
            Some("application/vnd.dev.sigstore.bundle.v0.3+json")
        );
        assert_eq!(
            index_entries(br#"{"schemaVersion":2,"layers":[]}"#, "tag t").unwrap_err(),
            "tag t is not an OCI index (no manifests)"
        );
        let buildkit = Descriptor {
            annotations: [(
                "vnd.docker.reference.type".to_string(),
                "attestation-manifest".to_string(),
            )]
            .into(),
            ..Descriptor::default()
        };
        assert!(is_attestation_manifest(&buildkit));
        assert!(!is_attestation_manifest(&Descriptor::default()));
    }
}
