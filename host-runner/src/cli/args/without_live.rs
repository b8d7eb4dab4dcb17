//! [`RegistryArgs`] and [`LiveArgs`] of a host built without the `live`
//! feature (`make demo`): no flags, modules read from files only, and a
//! backend that answers every capability with an error saying how to get
//! the live host.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context as _};
use clap::Args;

use crate::capabilities::{Backend, Request};

/// What a host without registry access says when asked for one.
const NOT_BUILT: &str = "this imagegate was built without the live host (cargo feature `live`: \
     registries, Notary, sigstore); build it with default features (`make install`)";

/// No registry flags: modules come from files.
#[derive(Args, Debug, Clone, Default)]
pub struct RegistryArgs {}

impl RegistryArgs {
    /// The policy module at `path`, a file (`registry://` needs `live`).
    pub fn read_module(&self, path: &Path) -> anyhow::Result<Vec<u8>> {
        if path.to_string_lossy().starts_with("registry://") {
            bail!("cannot pull {}: {NOT_BUILT}", path.display());
        }
        std::fs::read(path).with_context(|| format!("cannot read policy module {}", path.display()))
    }
}

/// No live-backend flags.
#[derive(Args, Debug, Clone, Default)]
pub struct LiveArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl LiveArgs {
    /// A backend that answers no capability, saying why.
    pub fn backend(&self) -> anyhow::Result<Box<dyn Backend>> {
        Ok(Box::new(NotBuilt))
    }
}

struct NotBuilt;

impl Backend for NotBuilt {
    fn answer(&self, _: &Request, _: Option<Instant>) -> Result<Vec<u8>, String> {
        Err(NOT_BUILT.to_string())
    }
}
