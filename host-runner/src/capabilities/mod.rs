//! Host capabilities answered by imagegate.

pub mod crypto;
pub mod oci;
