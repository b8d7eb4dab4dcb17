//! What a policy asks its host: one [`Request`] variant per capability,
//! wrapping the guest's own payload types ([`imagegate_policy::wire`]) so
//! guest and host read the same payloads, and [`parse`], which turns a
//! `__host_call` into one with policy-evaluator's errors.
//!
//! Variant names are those of kwctl's `CallbackRequestType`, so replay errors
//! read like kwctl's; the session file shape of a request
//! (`!SigstorePubKeyVerify ...`) is [`crate::runtime::session`]'s business.

use imagegate_policy::capability;
use imagegate_policy::wire::{
    AttestationVerifyRequest, GetResourceRequest, ListResourcesRequest, NotaryVerifyRequest,
    NotationVerifyRequest, SignatureVerifyRequest, SigstoreVerifyRequest,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A request a policy makes to its host. Serialized (externally tagged) it
/// is the verification cache's key material.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum Request {
    /// `oci/v1/manifest_digest`
    OciManifestDigest { image: String },
    /// `oci/v1/oci_manifest`
    OciManifest { image: String },
    /// `oci/v1/oci_manifest_config`
    OciManifestAndConfig { image: String },
    /// `oci/v2/verify`, and both variants of the legacy `oci/v1/verify`.
    Sigstore(SigstoreVerifyRequest),
    /// `net/v1/dns_lookup_host`
    DNSLookupHost { host: String },
    /// `kubernetes/list_resources_by_namespace` (`namespace` set) and
    /// `kubernetes/list_resources_all` (`namespace: None`).
    KubernetesListResources(ListResourcesRequest),
    /// `kubernetes/get_resource`
    KubernetesGetResource(GetResourceRequest),
    /// `kubernetes/can_i`
    KubernetesCanI(CanIRequest),
    /// `crypto/v1/is_certificate_trusted`
    CryptoIsCertificateTrusted(CertificateTrustRequest),
    /// `notary/v1/signed_digest`: imagegate's extension, no Kubewarden host knows it.
    NotaryVerify(NotaryVerifyRequest),
    /// `imagegate/v1/check_signature`: imagegate's own, every signature format.
    VerifySignature(SignatureVerifyRequest),
    /// `imagegate/v1/check_attestation`: imagegate's own.
    VerifyAttestation(AttestationVerifyRequest),
    /// `imagegate/v1/check_notation`: imagegate's own, Notation signatures.
    VerifyNotation(NotationVerifyRequest),
}

/// How the cache ([`super::cache`]) treats a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching<'a> {
    /// Never cached (answers depend on time or cluster state).
    Never,
    /// `oci/v1/manifest_digest` of this image: the tag -> digest cache.
    Digest(&'a str),
    /// The answer is about this image's content (a signature check, its
    /// manifest): cached under its *digest*, so a moved tag misses.
    Image(&'a str),
    /// The answer depends on the request alone (Notary signs tags, not
    /// registry digests: the trust data, not the registry, maps the tag).
    Request,
}

impl Request {
    /// How answers to this request may be cached. A new verification
    /// capability whose answer is about an image's content is
    /// [`Caching::Image`] and needs its arm in [`Request::with_image`].
    pub fn caching(&self) -> Caching<'_> {
        use Request::*;
        match self {
            OciManifestDigest { image } => Caching::Digest(image),
            OciManifest { image } | OciManifestAndConfig { image } => Caching::Image(image),
            Sigstore(req) => Caching::Image(req.image()),
            VerifySignature(req) => Caching::Image(&req.image),
            VerifyAttestation(req) => Caching::Image(&req.image),
            VerifyNotation(req) => Caching::Image(&req.image),
            NotaryVerify(_) => Caching::Request,
            DNSLookupHost { .. }
            | KubernetesListResources(_)
            | KubernetesGetResource(_)
            | KubernetesCanI(_)
            | CryptoIsCertificateTrusted(_) => Caching::Never,
        }
    }

    /// The same request about `image` (the cache pins tags to digests).
    pub fn with_image(&self, new: String) -> Request {
        use imagegate_policy::wire::SigstoreVerifyRequest as S;
        let mut request = self.clone();
        match &mut request {
            Request::OciManifestDigest { image }
            | Request::OciManifest { image }
            | Request::OciManifestAndConfig { image }
            | Request::Sigstore(
                S::SigstorePubKeyVerify { image, .. }
                | S::SigstoreKeylessVerify { image, .. }
                | S::SigstoreKeylessPrefixVerify { image, .. }
                | S::SigstoreGithubActionsVerify { image, .. }
                | S::SigstoreCertificateVerify { image, .. },
            ) => *image = new,
            Request::NotaryVerify(req) => req.image = new,
            Request::VerifySignature(req) => req.image = new,
            Request::VerifyAttestation(req) => req.image = new,
            Request::VerifyNotation(req) => req.image = new,
            Request::DNSLookupHost { .. }
            | Request::KubernetesListResources(_)
            | Request::KubernetesGetResource(_)
            | Request::KubernetesCanI(_)
            | Request::CryptoIsCertificateTrusted(_) => {}
        }
        request
    }

    /// The Kubernetes resource type a `kubernetes/*` read targets.
    pub fn kubernetes_resource(&self) -> Option<(&str, &str)> {
        match self {
            Request::KubernetesListResources(r) => Some((&r.api_version, &r.kind)),
            Request::KubernetesGetResource(r) => Some((&r.api_version, &r.kind)),
            _ => None,
        }
    }
}

/// The `kubernetes/can_i` payload (the guest never sends it: host only).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CanIRequest {
    pub subject_access_review: SubjectAccessReview,
    pub disable_cache: bool,
}

/// The subject access review inside a `kubernetes/can_i` payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SubjectAccessReview {
    pub groups: Option<Vec<String>>,
    pub resource_attributes: ResourceAttributes,
    pub user: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResourceAttributes {
    pub group: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub resource: String,
    pub subresource: Option<String>,
    pub verb: String,
    pub version: Option<String>,
}

fn json<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
    serde_json::from_slice(payload).map_err(|e| e.to_string())
}

/// Parses a guest call into a request, with policy-evaluator's errors.
pub fn parse(namespace: &str, operation: &str, payload: &[u8]) -> Result<Request, String> {
    // Matched by path; no namespace has a `/` (`oci/v1` + `verify` is unknown).
    if namespace.contains('/') {
        return Err(format!("unknown namespace: {namespace}"));
    }
    Ok(match format!("{namespace}/{operation}").as_str() {
        capability::OCI_VERIFY_V1 => Request::Sigstore(sigstore_v1(payload)?),
        capability::OCI_VERIFY_V2 => Request::Sigstore(json(payload)?),
        capability::OCI_MANIFEST_DIGEST => Request::OciManifestDigest {
            image: json(payload)?,
        },
        capability::OCI_MANIFEST => Request::OciManifest {
            image: json(payload)?,
        },
        capability::OCI_MANIFEST_CONFIG => Request::OciManifestAndConfig {
            image: json(payload)?,
        },
        capability::DNS_LOOKUP_HOST => Request::DNSLookupHost {
            host: json(payload)?,
        },
        capability::CERTIFICATE_TRUSTED => Request::CryptoIsCertificateTrusted(json(payload)?),
        capability::KUBERNETES_LIST_IN_NAMESPACE => {
            let r: ListResourcesRequest = json(payload)?;
            if r.namespace.is_none() {
                return Err("missing field `namespace`".to_string());
            }
            Request::KubernetesListResources(r)
        }
        capability::KUBERNETES_LIST_ALL => Request::KubernetesListResources(ListResourcesRequest {
            namespace: None,
            ..json(payload)?
        }),
        capability::KUBERNETES_GET => Request::KubernetesGetResource(json(payload)?),
        capability::KUBERNETES_CAN_I => Request::KubernetesCanI(json(payload)?),
        capability::NOTARY_SIGNED_DIGEST => Request::NotaryVerify(json(payload)?),
        capability::CHECK_SIGNATURE => Request::VerifySignature(json(payload)?),
        capability::CHECK_ATTESTATION => Request::VerifyAttestation(json(payload)?),
        capability::CHECK_NOTATION => Request::VerifyNotation(json(payload)?),
        _ if capability::ALL
            .iter()
            .any(|path| capability::split(path).0 == namespace) =>
        {
            return Err(format!("unknown operation: {operation}"))
        }
        _ => return Err(format!("unknown namespace: {namespace}")),
    })
}

/// The legacy `oci/v1/verify` payload: externally tagged
/// (`{"SigstorePubKeyVerify": {...}}`), two of the v2 variants.
fn sigstore_v1(payload: &[u8]) -> Result<SigstoreVerifyRequest, String> {
    let tagged: Map<String, Value> = json(payload)?;
    let mut entries = tagged.into_iter();
    match (entries.next(), entries.next()) {
        (Some((variant, Value::Object(fields))), None)
            if matches!(
                variant.as_str(),
                "SigstorePubKeyVerify" | "SigstoreKeylessVerify"
            ) =>
        {
            sigstore_variant(&variant, fields)
        }
        (Some((variant, _)), None) => Err(format!(
            "unknown variant `{variant}`, expected `SigstorePubKeyVerify` or `SigstoreKeylessVerify`"
        )),
        _ => Err("expected an object with a single key, the variant name".to_string()),
    }
}

/// A sigstore request written with its variant outside its fields (the
/// legacy `oci/v1/verify` payload, kwctl session files), as the internally
/// tagged `oci/v2/verify` type.
pub(crate) fn sigstore_variant(
    variant: &str,
    mut fields: Map<String, Value>,
) -> Result<SigstoreVerifyRequest, String> {
    fields.insert("type".to_string(), Value::String(variant.to_string()));
    serde_json::from_value(Value::Object(fields)).map_err(|e| e.to_string())
}

// `crypto/v1/is_certificate_trusted`, a host-only request like `kubernetes/can_i`
// (answered by `crypto`).

/// How `data` is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CertificateEncoding {
    Pem,
    Der,
}

/// A certificate: bytes of PEM text or raw DER (a JSON array of numbers).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Certificate {
    pub encoding: CertificateEncoding,
    pub data: Vec<u8>,
}

/// Request: `{"cert": {...}, "cert_chain": [...] | null, "not_after": "RFC 3339" | null}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CertificateTrustRequest {
    pub cert: Certificate,
    #[serde(default)]
    pub cert_chain: Option<Vec<Certificate>>,
    /// The time to check validity at; `None` or `""` = now.
    #[serde(default)]
    pub not_after: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_verify_map_to_the_same_request() {
        let v1 = parse(
            "oci",
            "v1/verify",
            br#"{"SigstorePubKeyVerify":{"image":"a","pub_keys":["k"],"annotations":null}}"#,
        )
        .unwrap();
        let v2 = parse(
            "oci",
            "v2/verify",
            br#"{"type":"SigstorePubKeyVerify","image":"a","pub_keys":["k"],"annotations":null}"#,
        )
        .unwrap();
        assert_eq!(v1, v2);
        for bad in [
            r#"{"SigstoreGithubActionsVerify":{"image":"a","owner":"o","repo":null,"annotations":null}}"#,
            r#"{"SigstorePubKeyVerify":{"image":"a","pub_keys":["k"]},"x":{}}"#,
            r#"{"SigstorePubKeyVerify":{"image":"a"}}"#,
        ] {
            assert!(parse("oci", "v1/verify", bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn notary_extension_parses() {
        let payload = br#"{"image":"i","server":"https://n","signers":[{"role":"targets/a","public_key":null}],"ca_cert":null}"#;
        let r = parse("notary", "v1/signed_digest", payload).unwrap();
        assert!(matches!(r, Request::NotaryVerify(n) if n.root_keys.is_none()));
        // Its name before kwctl annotate read it as oci/v1/verify.
        assert_eq!(
            parse("notary", "v1/verify", payload).unwrap_err(),
            "unknown operation: v1/verify"
        );
    }

    #[test]
    fn imagegate_operations_parse() {
        let r = parse(
            "imagegate",
            "v1/check_signature",
            br#"{"image":"i","identities":[{"kind":"keyless","issuer":"https://iss","subject":"me"}]}"#,
        )
        .unwrap();
        assert!(
            matches!(r, Request::VerifySignature(s) if s.platforms == imagegate_policy::wire::Platforms::Index)
        );
        let r = parse(
            "imagegate",
            "v1/check_attestation",
            br#"{"image":"i","platforms":"all","predicate_type":"p","identities":[{"kind":"githubActions","owner":"o","repo":null}]}"#,
        )
        .unwrap();
        assert!(
            matches!(r, Request::VerifyAttestation(a) if a.platforms == imagegate_policy::wire::Platforms::All)
        );
        let r = parse(
            "imagegate",
            "v1/check_notation",
            br#"{"image":"i","policy":{"name":"p","level":"audit","authenticity":"log","authentic_timestamp":"log","expiry":"log","revocation":"log","verify_timestamp":"always","trusted_identities":["*"],"trust_stores":[]}}"#,
        )
        .unwrap();
        assert!(
            matches!(r, Request::VerifyNotation(n) if n.policy.level == "audit" && n.user_metadata.is_empty())
        );
        assert_eq!(
            parse("imagegate", "v2/verify_signature", b"{}"),
            Err("unknown operation: v2/verify_signature".into())
        );
    }

    #[test]
    fn list_operations_differ_by_namespace() {
        let with_ns = br#"{"api_version":"v1","kind":"ConfigMap","namespace":"a","label_selector":null,"field_selector":null}"#;
        let r = parse("kubernetes", "list_resources_all", with_ns).unwrap();
        assert!(matches!(r, Request::KubernetesListResources(l) if l.namespace.is_none()));
        let r = parse("kubernetes", "list_resources_by_namespace", with_ns).unwrap();
        assert!(
            matches!(r, Request::KubernetesListResources(l) if l.namespace.as_deref() == Some("a"))
        );
        let without = br#"{"api_version":"v1","kind":"ConfigMap","label_selector":null,"field_selector":null}"#;
        assert_eq!(
            parse("kubernetes", "list_resources_by_namespace", without),
            Err("missing field `namespace`".into())
        );
    }
}
