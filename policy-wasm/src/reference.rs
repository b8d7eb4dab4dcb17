//! Image reference parsing and normalization (distribution reference grammar).
//!
//! STUB: API fixed, implementation pending (see DESIGN.md "Image references and patterns").

use std::fmt;

/// A parsed, normalized image reference.
///
/// `nginx` -> host `docker.io`, path `library/nginx`, tag `latest` (implicit).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    host: String,
    port: Option<u16>,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Why an image string is not a valid reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ParseError {}

impl Reference {
    /// Parses and normalizes `image`.
    pub fn parse(image: &str) -> Result<Reference, ParseError> {
        let _ = image;
        todo!()
    }
    /// Lower-case host without port: `docker.io`, `127.0.0.1`, `[::1]`.
    pub fn host(&self) -> &str {
        &self.host
    }
    /// Port, `None` when absent (`:443` is dropped by normalization).
    pub fn port(&self) -> Option<u16> {
        self.port
    }
    /// Repository path: `library/nginx`.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The tag: explicit, or `latest` when the image has neither tag nor digest;
    /// `None` for a digest-only image.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    /// `sha256:<hex>` when present.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }
}

/// The normalized form: `docker.io/library/nginx:latest`, `host:5000/a/b@sha256:...`.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "/{}", self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `image` as written with its digest set to `digest` (an existing `@...` is
/// replaced, the tag is kept): `nginx:1.0` -> `nginx:1.0@sha256:...`.
pub fn pin(image: &str, digest: &str) -> String {
    let name = image.split_once('@').map_or(image, |(n, _)| n);
    format!("{name}@{digest}")
}
