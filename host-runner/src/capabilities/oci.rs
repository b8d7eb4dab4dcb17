//! STUB: OCI registry capabilities (sigstore verification, manifests,
//! digests). Replaced by the real implementation at merge; only the
//! signatures matter here.

use imagegate_policy::wire::{
    ManifestConfigResponse, ManifestDigestResponse, SigstoreVerifyRequest, VerifyResponse,
};

#[derive(Default, Clone, Debug)]
pub struct OciConfig {}

pub struct Oci {}

impl Oci {
    pub fn new(_config: OciConfig) -> anyhow::Result<Oci> {
        Ok(Oci {})
    }

    pub async fn verify(&self, req: &SigstoreVerifyRequest) -> Result<VerifyResponse, String> {
        Err(format!(
            "oci verification of {} is not implemented yet",
            req.image()
        ))
    }

    pub async fn manifest_digest(&self, image: &str) -> Result<ManifestDigestResponse, String> {
        Err(format!("manifest digest of {image} is not implemented yet"))
    }

    pub async fn manifest(&self, image: &str) -> Result<serde_json::Value, String> {
        Err(format!("manifest of {image} is not implemented yet"))
    }

    pub async fn manifest_and_config(&self, image: &str) -> Result<ManifestConfigResponse, String> {
        Err(format!(
            "manifest and config of {image} is not implemented yet"
        ))
    }
}
