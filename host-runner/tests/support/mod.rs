//! Shared test infrastructure.

pub mod registry;
