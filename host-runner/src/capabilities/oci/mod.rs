//! The `oci/*` host capabilities: cosign signature verification
//! (`oci/v1/verify`, `oci/v2/verify`), `oci/v1/manifest_digest`,
//! `oci/v1/oci_manifest` and `oci/v1/oci_manifest_config`, answered the way
//! Kubewarden's policy-server answers them.
//!
//! * A failed verification is an `Err` (the guest sees a host error), never
//!   `is_trusted: false`.
//! * `digest` is the manifest digest the reference resolved to (the index
//!   digest for a multi-arch tag); signatures are looked up for exactly that
//!   digest, so a tag moved after signing is not covered by old signatures.
//! * Every error names the image and the cause (authentication, TLS, refused
//!   connection), e.g. `Cannot fetch manifest of 127.0.0.1:5000/a:1: ...`.
//!
//! No caching here: the dispatcher caches successful answers.

pub(crate) mod discovery;
pub(crate) mod distribution;
pub(crate) mod image;
pub(crate) mod verify;

use crate::registry::{registry_auth, Credential, RegistryAccess, RegistryConfig};
use anyhow::Context;
use image::{auth_hint, error_chain, Image};
use imagegate_policy::wire::{
    ManifestConfigResponse, ManifestDigestResponse, SigstoreVerifyRequest, VerifyResponse,
};
use sigstore::cosign::{ClientBuilder, CosignCapabilities};
use sigstore::registry::{Auth, OciReference};
use sigstore::trust::ManualTrustRoot;

use super::sigstore::TrustRoot;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// How the host reaches registries and what it trusts.
#[derive(Debug, Clone, Default)]
pub struct OciConfig {
    pub registry: RegistryConfig,
    /// Sigstore `ClientTrustConfig` / `trusted_root.json` with the Fulcio CAs
    /// and Rekor keys; `None`: the embedded public-good root.
    pub sigstore_trust_config: Option<PathBuf>,
}

/// The answering side of the `oci/*` capabilities.
pub struct Oci {
    access: RegistryAccess,
    trust_root: ManualTrustRoot<'static>,
    /// One client pair per credential: oci-client stores the first credential
    /// it sees for a registry and keeps it, so images of one registry with
    /// different credentials need different clients.
    clients: Mutex<HashMap<Option<Credential>, Arc<Clients>>>,
}

struct Clients {
    oci: oci_client::Client,
    /// sigstore's client needs `&mut`; verifications with one credential run
    /// one at a time (as in policy-server, which shares one client).
    cosign: tokio::sync::Mutex<sigstore::cosign::Client>,
}

const MANIFEST_MEDIA_TYPES: &[&str] = &[
    oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
    oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

impl Oci {
    /// Reads every file the configuration names; errors say which file and why.
    pub fn new(config: OciConfig) -> anyhow::Result<Oci> {
        let access = RegistryAccess::new(&config.registry)?;
        let trust_root = TrustRoot::load(config.sigstore_trust_config.as_deref())?.manual();
        let oci = Oci {
            access,
            trust_root,
            clients: Mutex::new(HashMap::new()),
        };
        // Build the anonymous clients now so TLS / trust-root problems show at start-up.
        oci.clients_for(None)?;
        Ok(oci)
    }

    fn clients_for(&self, credential: Option<&Credential>) -> anyhow::Result<Arc<Clients>> {
        let key = credential.cloned();
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| anyhow::anyhow!("registry client cache poisoned"))?;
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let config = self.access.client_config().clone();
        let cosign = ClientBuilder::default()
            .with_oci_client_config(config)
            .with_trust_repository(&self.trust_root)
            .context("loading the Sigstore trust root into the cosign client")?
            .build()
            .context("building the cosign client")?;
        let oci = self.access.oci_client()?;
        let entry = Arc::new(Clients {
            oci,
            cosign: tokio::sync::Mutex::new(cosign),
        });
        clients.insert(key, entry.clone());
        Ok(entry)
    }

    /// How registries are reached (shared with the other registry readers).
    pub(crate) fn access(&self) -> &RegistryAccess {
        &self.access
    }

    /// Parses `image` and picks its credential and clients.
    fn prepare(&self, image: &str) -> Result<(Image, Option<Credential>, Arc<Clients>), String> {
        let image = Image::parse(image)?;
        let credential = self.access.credential_for(&image.reference)?;
        let clients = self
            .clients_for(credential.as_ref())
            .map_err(|e| format!("Cannot reach registry of {}: {e:#}", image.name))?;
        Ok((image, credential, clients))
    }

    fn fetch_error(
        image: &Image,
        credential: Option<&Credential>,
        e: &(dyn std::error::Error + 'static),
    ) -> String {
        let cause = error_chain(e);
        let hint = auth_hint(&cause, credential, image);
        format!("Cannot fetch manifest of {}: {cause}{hint}", image.name)
    }

    /// `oci/v1/manifest_digest`: the digest the reference resolves to.
    pub async fn manifest_digest(&self, image: &str) -> Result<ManifestDigestResponse, String> {
        let (image, credential, clients) = self.prepare(image)?;
        let digest = clients
            .oci
            .fetch_manifest_digest(&image.reference, &registry_auth(credential.as_ref()))
            .await
            .map_err(|e| Self::fetch_error(&image, credential.as_ref(), &e))?;
        Ok(ManifestDigestResponse { digest })
    }

    /// `oci/v1/oci_manifest`: the manifest or index exactly as the registry serves it.
    pub async fn manifest(&self, image: &str) -> Result<serde_json::Value, String> {
        let (image, credential, clients) = self.prepare(image)?;
        let (bytes, _digest) = clients
            .oci
            .pull_manifest_raw(
                &image.reference,
                &registry_auth(credential.as_ref()),
                MANIFEST_MEDIA_TYPES,
            )
            .await
            .map_err(|e| Self::fetch_error(&image, credential.as_ref(), &e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("Manifest of {} is not valid JSON: {e}", image.name))
    }

    /// `oci/v1/oci_manifest_config`: image manifest (an index is resolved to the
    /// linux/amd64-like current platform, as oci-client and policy-server do),
    /// its digest and its config.
    pub async fn manifest_and_config(&self, image: &str) -> Result<ManifestConfigResponse, String> {
        let (image, credential, clients) = self.prepare(image)?;
        let (manifest, digest, config) = clients
            .oci
            .pull_manifest_and_config(&image.reference, &registry_auth(credential.as_ref()))
            .await
            .map_err(|e| Self::fetch_error(&image, credential.as_ref(), &e))?;
        let manifest = serde_json::to_value(&manifest)
            .map_err(|e| format!("Cannot serialize manifest of {}: {e}", image.name))?;
        let config = serde_json::from_str(&config)
            .map_err(|e| format!("Config of {} is not valid JSON: {e}", image.name))?;
        Ok(ManifestConfigResponse {
            manifest,
            digest,
            config,
        })
    }

    /// `oci/v2/verify` (and `oci/v1/verify`, whose two variants map onto it).
    pub async fn verify(&self, req: &SigstoreVerifyRequest) -> Result<VerifyResponse, String> {
        let requirements = verify::requirements(req)?;
        let (image, credential, clients) = self.prepare(req.image())?;
        let auth = registry_auth(credential.as_ref());
        let digest = clients
            .oci
            .fetch_manifest_digest(&image.reference, &auth)
            .await
            .map_err(|e| Self::fetch_error(&image, credential.as_ref(), &e))?;
        // Look signatures up for the digest just resolved, not the tag again.
        let pinned = OciReference::with_digest(
            image.reference.registry().to_string(),
            image.reference.repository().to_string(),
            digest.clone(),
        );
        let layers = clients
            .cosign
            .lock()
            .await
            .trusted_signature_layers(&Auth::from(&auth), &pinned)
            .await
            .map_err(|e| {
                format!(
                    "Cannot fetch signatures of {} ({digest}): {}",
                    image.name,
                    error_chain(&e)
                )
            })?;
        if layers.is_empty() {
            return Err(format!(
                "no signatures found for image: {} (no cosign signature for {digest})",
                image.name
            ));
        }
        let unsatisfied: Vec<&verify::Requirement> = requirements
            .iter()
            .filter(|r| !layers.iter().any(|l| r.is_satisfied_by(l)))
            .collect();
        if unsatisfied.is_empty() {
            return Ok(VerifyResponse {
                is_trusted: true,
                digest,
            });
        }
        let mut message = format!(
            "Image verification failed: missing signatures for {} ({digest}, {} signature(s) found)\n\
             The following constraints were not satisfied:\n",
            image.name,
            layers.len()
        );
        for r in &unsatisfied {
            message.push_str(&r.describe());
        }
        if unsatisfied.iter().any(|r| r.needs_rekor_bundle())
            && layers.iter().all(|l| l.bundle.is_none())
        {
            message.push_str(
                "(no signature carries a Rekor bundle verified by the trust root's Rekor keys)\n",
            );
        }
        Err(message.trim_end().to_string())
    }
}
