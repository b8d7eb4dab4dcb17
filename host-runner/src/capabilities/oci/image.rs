//! The image an `oci/*` call is about, and the error texts that name it and
//! the cause (authentication, TLS, refused connection).

use oci_client::Reference;

use crate::registry::Credential;

/// A parsed image reference with the form used in messages.
#[derive(Debug, Clone)]
pub(crate) struct Image {
    pub reference: Reference,
    /// Normalized `registry/repository[:tag][@digest]`.
    pub name: String,
}

impl Image {
    /// Parses `image`, expanding short names like docker
    /// (`busybox` -> `docker.io/library/busybox:latest`).
    pub fn parse(image: &str) -> Result<Image, String> {
        let reference: Reference = image
            .parse()
            .map_err(|e| format!("Cannot parse image reference {image:?}: {e}"))?;
        let name = reference.whole();
        Ok(Image { reference, name })
    }

    /// `registry/repository`, for messages.
    pub fn repository_name(&self) -> String {
        format!(
            "{}/{}",
            self.reference.registry(),
            self.reference.repository()
        )
    }
}

/// `error: cause: cause...` over the whole source chain, skipping repeats
/// (transparent wrappers repeat their inner message), so the root cause
/// (connection refused, unknown CA, 401) is always visible.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

/// A hint appended to registry errors that are about authentication.
pub(crate) fn auth_hint(cause: &str, credential: Option<&Credential>, image: &Image) -> String {
    let unauthorized = cause.contains("Not authorized")
        || cause.contains("401")
        || cause.contains("UNAUTHORIZED")
        || cause.contains("Authentication failure");
    match (unauthorized, credential) {
        (false, _) => String::new(),
        (true, None) => format!(
            " (no credentials configured for {}: use a docker config or an image credential)",
            image.reference.registry()
        ),
        (true, Some(_)) => format!(
            " (the credentials configured for {} were rejected)",
            image.repository_name()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_expand_like_docker() {
        let image = |s| Image::parse(s).unwrap();
        assert_eq!(image("busybox").name, "docker.io/library/busybox:latest");
        assert_eq!(
            image("127.0.0.1:5000/demo/app:1.0").repository_name(),
            "127.0.0.1:5000/demo/app"
        );
        assert!(Image::parse("in valid:1")
            .unwrap_err()
            .contains("\"in valid:1\""));
    }

    #[test]
    fn error_chain_keeps_the_root_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let e = anyhow::Error::new(io).context("error sending request");
        let chain = error_chain(e.as_ref());
        assert_eq!(chain, "error sending request: Connection refused");
    }
}
