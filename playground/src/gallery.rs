//! The example gallery: one directory per example under
//! `playground/gallery/`, read at build time by `build.rs` into this JSON
//! array of `{id, title, about, expect, convert, state}` (`state` is what
//! [`crate::evaluate`] takes; `convert` names the original policy of a
//! converted example, its text and what the conversion could not carry over).

/// The gallery as JSON.
pub const JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/gallery.json"));
