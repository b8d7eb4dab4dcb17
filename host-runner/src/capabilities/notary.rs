//! STUB: Notary v1 (TUF) verification, imagegate's `notary/v1/verify`
//! capability. Replaced by the real implementation at merge.

use imagegate_policy::wire::{NotaryVerifyRequest, NotaryVerifyResponse};

#[derive(Default)]
pub struct NotaryConfig {}

pub struct Notary {}

impl Notary {
    pub fn new(_config: NotaryConfig) -> anyhow::Result<Notary> {
        Ok(Notary {})
    }

    pub async fn verify(&self, req: &NotaryVerifyRequest) -> Result<NotaryVerifyResponse, String> {
        Err(format!(
            "notary verification of {} is not implemented yet",
            req.image
        ))
    }
}
