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
//! * Signatures are read by the host's own reader ([`sig_layers`]: 3
//!   registry requests for a tag, 2 for a digest, one less once the registry
//!   is known to lack the referrers API, plus one per layer whose bytes are
//!   not known from its digest; `imagegate/v1/check_signature` hands over the
//!   `.sig` manifest its search fetched, [`SigManifest`], so only such layers
//!   are read), keyless certificates chained by the host; images
//!   the referrers API lists anything for go through sigstore's cosign
//!   client, which reads v0.3 bundles into layers.
//!
//! No caching here: the dispatcher caches successful answers.

pub(crate) mod discovery;
pub(crate) mod distribution;
pub(crate) mod image;
pub(crate) mod sig_layers;
pub(crate) mod verify;

use super::{lock, Failure};
use crate::registry::{registry_auth, Credential, RegistryAccess, RegistryConfig};
use anyhow::Context;
use image::{auth_hint, error_chain, Image};
use imagegate_policy::wire::{
    ManifestConfigResponse, ManifestDigestResponse, SigstoreVerifyRequest, VerifyResponse,
};
use sigstore::cosign::{ClientBuilder, CosignCapabilities, SignatureLayer};
use sigstore::registry::{Auth, OciReference};
use sigstore::trust::ManualTrustRoot;

use super::sigstore::TrustRoot;
use discovery::Discovery;
use distribution::{Distribution, Manifest, Repo};
use sig_layers::{Fetched, Layers, Trust};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// How the host reaches registries and what it trusts.
#[derive(Debug, Clone, Default)]
pub struct OciConfig {
    pub registry: RegistryConfig,
    /// Sigstore `ClientTrustConfig` / `trusted_root.json` with the Fulcio CAs
    /// and Rekor keys; `None`: the embedded public-good root.
    pub sigstore_trust_config: Option<PathBuf>,
}

/// The answering side of the `oci/*` capabilities.
///
/// Concurrency: no lock is held across a registry round trip. The client
/// map and the cosign pool are locked only to look up or hand out a client.
pub struct Oci {
    access: RegistryAccess,
    trust_root: ManualTrustRoot<'static>,
    /// Reads cosign signatures without oci-client's per-request pings: one
    /// connection pool, authentication learnt once per repository and kept
    /// until the token expires. Shared with [`Signatures`](super::signatures::Signatures).
    dist: Arc<Distribution>,
    /// What [`sig_layers`] checks layers against.
    trust: Trust,
    /// One client set per credential: oci-client stores the first credential
    /// it sees for a registry and keeps it, so images of one registry with
    /// different credentials need different clients.
    clients: Mutex<HashMap<Option<Credential>, Arc<Clients>>>,
}

struct Clients {
    /// Shared by every call with this credential: one connection pool
    /// (keep-alive, HTTP/2 where the registry offers it) and one token cache.
    oci: oci_client::Client,
    /// Idle cosign clients. sigstore's client needs `&mut` for every fetch,
    /// so a verification takes one (or builds one when all are busy) and
    /// puts it back: the pool grows to the number of concurrent
    /// verifications, each client keeping its own connections alive.
    cosign: Mutex<Vec<sigstore::cosign::Client>>,
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
        let root = Arc::new(TrustRoot::load(config.sigstore_trust_config.as_deref())?);
        let oci = Oci {
            dist: Arc::new(Distribution::new(&access)?),
            trust_root: root.manual(),
            trust: Trust::new(root),
            access,
            clients: Mutex::new(HashMap::new()),
        };
        // Build the anonymous clients now so TLS / trust-root problems show at start-up.
        oci.clients_for(None)?;
        Ok(oci)
    }

    fn clients_for(&self, credential: Option<&Credential>) -> anyhow::Result<Arc<Clients>> {
        let key = credential.cloned();
        if let Some(c) = lock(&self.clients).get(&key) {
            return Ok(c.clone());
        }
        // Built outside the lock (it loads the TLS roots); a concurrent
        // first call may build a second set, the first one inserted wins.
        let entry = Arc::new(Clients {
            oci: self.access.oci_client()?,
            cosign: Mutex::new(vec![self.cosign_client()?]),
        });
        Ok(lock(&self.clients).entry(key).or_insert(entry).clone())
    }

    fn cosign_client(&self) -> anyhow::Result<sigstore::cosign::Client> {
        let config = self.access.client_config().clone();
        ClientBuilder::default()
            .with_oci_client_config(config)
            .with_trust_repository(&self.trust_root)
            .context("loading the Sigstore trust root into the cosign client")?
            .build()
            .context("building the cosign client")
    }

    /// How registries are reached (shared with the other registry readers).
    pub(crate) fn access(&self) -> &RegistryAccess {
        &self.access
    }

    /// The registry reader (shared with the other readers, so a host learns
    /// a registry's authentication once).
    pub(crate) fn reader(&self) -> Arc<Distribution> {
        self.dist.clone()
    }

    /// The Sigstore trust root, loaded once (shared with the other readers).
    pub(crate) fn trust_root(&self) -> Arc<TrustRoot> {
        self.trust.root().clone()
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

    /// `oci/v1/manifest_digest`: the digest the reference resolves to (one
    /// HEAD, without oci-client's `/v2/` ping before it).
    pub async fn manifest_digest(&self, image: &str) -> Result<ManifestDigestResponse, String> {
        let image = Image::parse(image)?;
        let repo = Distribution::repo(&image, &self.access)?;
        let reference = image.reference.digest().or(image.reference.tag());
        let digest = self
            .digest_of(&image, &repo, reference.unwrap_or("latest"))
            .await?;
        Ok(ManifestDigestResponse { digest })
    }

    /// The digest `reference` (a tag or digest) of `image` resolves to.
    async fn digest_of(
        &self,
        image: &Image,
        repo: &Repo,
        reference: &str,
    ) -> Result<String, String> {
        self.dist
            .digest(repo, reference, MANIFEST_MEDIA_TYPES)
            .await
            .map_err(|f| format!("Cannot fetch manifest of {}: {}", image.name, f.text()))
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
    ///
    /// A missing or unsatisfied signature is a [`Failure::definite`]; a
    /// registry that cannot be reached is not.
    pub async fn verify(&self, req: &SigstoreVerifyRequest) -> Result<VerifyResponse, Failure> {
        let requirements = verify::requirements(req).map_err(Failure::definite)?;
        let image = Image::parse(req.image())?;
        let repo = Distribution::repo(&image, &self.access)?;
        // A pinned reference (the cache pins tags to the digest it resolved)
        // needs no second lookup.
        let digest = match image.reference.digest() {
            Some(digest) => digest.to_string(),
            None => {
                let tag = image.reference.tag().unwrap_or("latest");
                self.digest_of(&image, &repo, tag).await?
            }
        };
        // Look signatures up for that digest, not the tag again.
        let discovery = Discovery {
            dist: &self.dist,
            repo: &repo,
        };
        let fetched = sig_layers::fetch(&discovery, &digest, &self.trust)
            .await
            .map_err(|e| format!("Cannot fetch signatures of {} ({digest}): {e}", image.name))?;
        let layers = match fetched {
            Fetched::Layers(layers) => layers,
            Fetched::Referrers => Layers {
                layers: self.sigstore_layers(&repo, &image, &digest).await?,
                ignored: Vec::new(),
            },
        };
        judge(&requirements, &image, &digest, &layers)
    }

    /// The trusted signature layers of `image` at `digest` as sigstore's
    /// cosign client reads them (`.sig` and referrers' v0.3 bundles,
    /// certificates chained to its Fulcio pool), with a pooled client.
    async fn sigstore_layers(
        &self,
        repo: &Repo,
        image: &Image,
        digest: &str,
    ) -> Result<Vec<SignatureLayer>, String> {
        let clients = self
            .clients_for(repo.credential.as_ref())
            .map_err(|e| format!("Cannot reach registry of {}: {e:#}", image.name))?;
        let auth = Auth::from(&registry_auth(repo.credential.as_ref()));
        let idle = lock(&clients.cosign).pop();
        let mut cosign = match idle {
            Some(c) => c,
            None => self
                .cosign_client()
                .map_err(|e| format!("Cannot verify {}: {e:#}", image.name))?,
        };
        let reference = OciReference::with_digest(
            image.reference.registry().to_string(),
            image.reference.repository().to_string(),
            digest.to_string(),
        );
        let layers = cosign.trusted_signature_layers(&auth, &reference).await;
        lock(&clients.cosign).push(cosign);
        layers.map_err(|e| {
            format!(
                "Cannot fetch signatures of {} ({digest}): {}",
                image.name,
                error_chain(&e)
            )
        })
    }

    /// The `.sig` manifest of `repo@digest` that `discovery` already fetched,
    /// to check identities against one by one ([`SigManifest::verify`]).
    pub(crate) fn sig_manifest<'a>(
        &'a self,
        discovery: &'a Discovery<'a>,
        digest: &'a str,
        manifest: &'a Manifest,
    ) -> SigManifest<'a> {
        SigManifest {
            oci: self,
            discovery,
            digest,
            manifest,
            layers: OnceCell::new(),
        }
    }
}

/// A `.sig` manifest the caller already fetched (`imagegate/v1/check_signature`'s
/// search): each identity is checked as `oci/v2/verify` checks it, and the
/// layers are read at most once per reader, not once per identity. The
/// caller's search judged the referrers itself, so only `.sig` layers count.
pub(crate) struct SigManifest<'a> {
    oci: &'a Oci,
    discovery: &'a Discovery<'a>,
    digest: &'a str,
    manifest: &'a Manifest,
    /// Read by [`sig_layers`] at the first identity.
    layers: OnceCell<Result<Layers, String>>,
}

impl SigManifest<'_> {
    /// `req` (an `oci/v2/verify` request for this image) against these layers.
    pub(crate) async fn verify(
        &self,
        req: &SigstoreVerifyRequest,
    ) -> Result<VerifyResponse, Failure> {
        let requirements = verify::requirements(req).map_err(Failure::definite)?;
        let image = Image::parse(req.image())?;
        let (oci, digest) = (self.oci, self.digest);
        let layers = self
            .layers
            .get_or_init(|| async {
                sig_layers::read(self.discovery, self.manifest, digest, &oci.trust)
                    .await
                    .map_err(|e| {
                        format!("Cannot fetch signatures of {} ({digest}): {e}", image.name)
                    })
            })
            .await;
        match layers {
            Ok(layers) => judge(&requirements, &image, digest, layers),
            Err(e) => Err(Failure::from(e.clone())),
        }
    }
}

/// Whether trusted `layers` of `image` at `digest` satisfy every requirement:
/// `oci/v2/verify`'s answer, or why not.
fn judge(
    requirements: &[verify::Requirement],
    image: &Image,
    digest: &str,
    Layers { layers, ignored }: &Layers,
) -> Result<VerifyResponse, Failure> {
    if layers.is_empty() {
        return Err(Failure::definite(format!(
            "no signatures found for image: {} (no cosign signature for {digest})",
            image.name
        )));
    }
    let unsatisfied: Vec<&verify::Requirement> = requirements
        .iter()
        .filter(|r| !layers.iter().any(|l| r.is_satisfied_by(l)))
        .collect();
    if unsatisfied.is_empty() {
        return Ok(VerifyResponse {
            is_trusted: true,
            digest: digest.to_string(),
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
    for why in ignored {
        message.push_str(&format!("({why})\n"));
    }
    Err(Failure::definite(message.trim_end().to_string()))
}
