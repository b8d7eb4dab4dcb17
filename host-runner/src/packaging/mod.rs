//! Packaging the policy for Kubewarden: the [`metadata`] (metadata.yml and
//! the module's `io.kubewarden.metadata` section, read in one place),
//! embedding it ([`annotate`]), the Artifact Hub files ([`artifacthub`],
//! [`questions`]), the policy resource ([`scaffold`]) and the OCI artifact
//! pushed and pulled (`artifact`).

pub mod annotate;
pub mod artifact;
pub mod artifacthub;
pub mod metadata;
pub mod questions;
pub mod scaffold;
