//! `*`-only globs over a single string (tags, namespaces, path components).
//!
//! STUB: API fixed, implementation pending.

/// A glob where `*` matches any run of characters and everything else is literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
}

impl Glob {
    pub fn new(text: &str) -> Glob {
        Glob { text: text.to_string() }
    }
    pub fn as_str(&self) -> &str {
        &self.text
    }
    pub fn is_match(&self, s: &str) -> bool {
        let _ = s;
        todo!()
    }
}
