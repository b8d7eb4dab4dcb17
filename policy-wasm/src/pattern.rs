//! Image patterns and the compiled set of all rules' patterns.
//!
//! STUB: API fixed, implementation pending (see DESIGN.md "Image references and patterns").

use crate::reference::Reference;
use std::fmt;

/// One image pattern, e.g. `registry.corp.example/**`, `nginx:1.*`, `*.corp.io:*/team/*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
}

/// Why a pattern is invalid settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub reason: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for PatternError {}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let _ = text;
        todo!()
    }
    pub fn as_str(&self) -> &str {
        &self.text
    }
    pub fn is_match(&self, image: &Reference) -> bool {
        let _ = image;
        todo!()
    }
}

/// Many patterns, each with a caller-chosen id, matched in one pass.
/// Matching cost does not grow linearly with the number of patterns.
#[derive(Debug, Clone, Default)]
pub struct PatternSet {
    patterns: Vec<(Pattern, usize)>,
}

impl PatternSet {
    pub fn new(patterns: impl IntoIterator<Item = (Pattern, usize)>) -> PatternSet {
        PatternSet { patterns: patterns.into_iter().collect() }
    }
    /// Appends the ids of every pattern matching `image` to `out` (order unspecified,
    /// an id may appear more than once).
    pub fn matches_into(&self, image: &Reference, out: &mut Vec<usize>) {
        for (p, id) in &self.patterns {
            if p.is_match(image) {
                out.push(*id);
            }
        }
    }
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}
