//! Packaging the policy for Kubewarden.

pub mod annotate;
pub mod artifact;
pub mod artifacthub;
pub mod metadata;
pub mod questions;
pub mod scaffold;
