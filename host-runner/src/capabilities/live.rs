//! The live backend: real registries, Notary servers, DNS, certificate
//! checks, and Kubernetes objects from `--context DIR`.
//!
//! The guest runs on a plain thread, so the backend owns a tokio runtime and
//! blocks on each async call, bounded by what is left of the evaluation
//! deadline: a slow registry must not outlive the policy timeout.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;

use super::cache::{CacheConfig, CacheStats, CapabilityCache};
use super::kubernetes::KubeContext;
use super::notary::{Notary, NotaryConfig};
use super::oci::{Oci, OciConfig};
use super::signatures::Signatures;
use super::{crypto, Backend, Failure, Request};

/// Configuration of the live backend (no derives beyond what the capability
/// configs guarantee: `Default`).
pub struct LiveConfig {
    pub oci: OciConfig,
    pub notary: NotaryConfig,
    /// Directory of Kubernetes manifests answering `kubernetes/*`.
    pub context_dir: Option<PathBuf>,
    /// `None` disables the capability cache.
    pub cache: Option<CacheConfig>,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            oci: OciConfig::default(),
            notary: NotaryConfig::default(),
            context_dir: None,
            cache: Some(CacheConfig::default()),
        }
    }
}

pub struct Live {
    rt: tokio::runtime::Runtime,
    oci: Oci,
    signatures: Signatures,
    notary: Notary,
    kube: Option<KubeContext>,
    cache: Option<CapabilityCache>,
}

impl Live {
    pub fn new(config: LiveConfig) -> anyhow::Result<Live> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the tokio runtime for host capabilities")?;
        let kube = config
            .context_dir
            .as_deref()
            .map(KubeContext::load)
            .transpose()?;
        let cache = config
            .cache
            .map(|c| CapabilityCache::new(c, rt.handle().clone()))
            .transpose()
            .context("cannot set up the capability cache")?;
        let shared = cache.as_ref().and_then(CapabilityCache::shared);
        let oci = Oci::new(config.oci).context("cannot set up the OCI capabilities")?;
        let signatures = Signatures::new(&oci);
        Ok(Live {
            oci,
            signatures,
            notary: Notary::new(config.notary, shared)
                .context("cannot set up the Notary capability")?,
            rt,
            kube,
            cache,
        })
    }

    /// Runs `fut` on the runtime, giving up at `deadline`.
    fn block_on<T, E, F>(&self, what: &str, deadline: Option<Instant>, fut: F) -> Result<T, Failure>
    where
        F: std::future::Future<Output = Result<T, E>>,
        E: Into<Failure>,
    {
        match deadline {
            None => self.rt.block_on(fut).map_err(Into::into),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Failure::from(format!(
                        "{what}: not attempted, the policy evaluation deadline has passed"
                    )));
                }
                match self
                    .rt
                    .block_on(async { tokio::time::timeout(left, fut).await })
                {
                    Ok(result) => result.map_err(Into::into),
                    Err(_) => Err(Failure::from(format!(
                        "{what}: no answer within the policy evaluation deadline ({} ms left when called)",
                        left.as_millis()
                    ))),
                }
            }
        }
    }

    fn fetch(&self, request: &Request, deadline: Option<Instant>) -> Result<Vec<u8>, Failure> {
        use Request::*;
        if let Some(kube) = &self.kube {
            if let Some(answer) = kube.answer(request) {
                return Ok(answer.and_then(to_json)?);
            }
        }
        match request {
            OciManifestDigest { image } => self
                .block_on(
                    &format!("manifest digest of {image}"),
                    deadline,
                    self.oci.manifest_digest(image),
                )
                .and_then(|a| Ok(to_json(a)?)),
            OciManifest { image } => self
                .block_on(
                    &format!("manifest of {image}"),
                    deadline,
                    self.oci.manifest(image),
                )
                .and_then(|a| Ok(to_json(a)?)),
            OciManifestAndConfig { image } => self
                .block_on(
                    &format!("manifest and config of {image}"),
                    deadline,
                    self.oci.manifest_and_config(image),
                )
                .and_then(|a| Ok(to_json(a)?)),
            Sigstore(req) => self
                .block_on(
                    &format!("sigstore verification of {}", req.image()),
                    deadline,
                    self.oci.verify(req),
                )
                .and_then(|a| Ok(to_json(a)?)),
            VerifySignature(req) => self
                .block_on(
                    &format!("signature verification of {}", req.image),
                    deadline,
                    self.signatures.verify_signature(&self.oci, req),
                )
                .and_then(|a| Ok(to_json(a)?)),
            VerifyAttestation(req) => self
                .block_on(
                    &format!("attestation verification of {}", req.image),
                    deadline,
                    self.signatures.verify_attestation(req),
                )
                .and_then(|a| Ok(to_json(a)?)),
            VerifyNotation(req) => self
                .block_on(
                    &format!("Notation verification of {}", req.image),
                    deadline,
                    self.signatures.verify_notation(req),
                )
                .and_then(|a| Ok(to_json(a)?)),
            NotaryVerify(req) => self
                .block_on(
                    &format!("notary verification of {} on {}", req.image, req.server),
                    deadline,
                    self.notary.verify(req),
                )
                .and_then(|a| Ok(to_json(a)?)),
            CryptoIsCertificateTrusted(req) => {
                Ok(crypto::is_certificate_trusted(req).and_then(to_json)?)
            }
            DNSLookupHost { host } => self
                .block_on(&format!("DNS lookup of {host}"), deadline, dns_lookup(host))
                .and_then(|a| Ok(to_json(a)?)),
            KubernetesListResources(_) | KubernetesGetResource(_) | KubernetesCanI(_) => {
                Err(Failure::from(
                    "no Kubernetes context: pass --context DIR (a directory of manifests)"
                        .to_string(),
                ))
            }
        }
    }
}

impl Backend for Live {
    fn answer(&self, request: &Request, deadline: Option<Instant>) -> Result<Vec<u8>, String> {
        let result = match &self.cache {
            Some(cache) => cache.answer(request, &|r| self.fetch(r, deadline)),
            None => self.fetch(request, deadline),
        };
        result.map_err(|f| f.message)
    }

    fn cache_stats(&self) -> Option<Arc<CacheStats>> {
        self.cache.as_ref().map(CapabilityCache::stats)
    }
}

fn to_json<T: Serialize>(value: T) -> Result<Vec<u8>, String> {
    serde_json::to_vec(&value).map_err(|e| format!("cannot serialize the answer: {e}"))
}

#[derive(Serialize)]
struct DnsAnswer {
    ips: Vec<String>,
}

async fn dns_lookup(host: &str) -> Result<DnsAnswer, String> {
    let addrs = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| format!("DNS lookup of {host} failed: {e}"))?;
    let mut ips: Vec<String> = Vec::new();
    for a in addrs {
        let ip = a.ip().to_string();
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    Ok(DnsAnswer { ips })
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagegate_policy::wire::GetResourceRequest;
    use std::time::Duration;

    #[test]
    fn expired_deadline_is_a_clear_error() {
        let live = Live::new(LiveConfig::default()).unwrap();
        let past = Instant::now() - Duration::from_millis(1);
        let err = live
            .block_on("lookup", Some(past), async { Ok::<(), String>(()) })
            .unwrap_err()
            .message;
        assert!(err.contains("deadline has passed"), "{err}");
        let err = live
            .block_on(
                "slow call",
                Some(Instant::now() + Duration::from_millis(20)),
                async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok::<(), String>(())
                },
            )
            .unwrap_err()
            .message;
        assert!(
            err.contains("slow call: no answer within the policy evaluation deadline"),
            "{err}"
        );
    }

    #[test]
    fn dns_answers_localhost() {
        let live = Live::new(LiveConfig::default()).unwrap();
        let out = live
            .answer(
                &Request::DNSLookupHost {
                    host: "localhost".into(),
                },
                None,
            )
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(v["ips"].as_array().is_some_and(|a| !a.is_empty()), "{v}");
    }

    #[test]
    fn kubernetes_without_context_is_a_clear_error() {
        let live = Live::new(LiveConfig::default()).unwrap();
        let req = Request::KubernetesGetResource(GetResourceRequest {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            name: "x".into(),
            namespace: None,
            disable_cache: false,
            field_masks: None,
        });
        assert!(live.answer(&req, None).unwrap_err().contains("--context"));
    }
}
