//! Host capabilities answered by imagegate.

pub mod notary;
