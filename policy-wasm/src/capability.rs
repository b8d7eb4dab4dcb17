//! The host capabilities by path, `<namespace>/<operation>` as Kubewarden
//! names them, written once: the guest calls them (`decide`, `sources`),
//! [`crate::requirements`] names those only imagegate's host answers, and the
//! host gates and counts every one of them (`--allowed-host-capabilities`,
//! metrics).

/// Sigstore verification, the v1 payload (kwctl and policy-server).
pub const OCI_VERIFY_V1: &str = "oci/v1/verify";
/// Sigstore verification (keys, keyless, certificate); what signature checks
/// fall back to on policy-server.
pub const OCI_VERIFY_V2: &str = "oci/v2/verify";
/// The digest a reference resolves to.
pub const OCI_MANIFEST_DIGEST: &str = "oci/v1/manifest_digest";
/// An image's manifest.
pub const OCI_MANIFEST: &str = "oci/v1/oci_manifest";
/// An image's manifest and config (`imageLabels` reads the config's labels).
pub const OCI_MANIFEST_CONFIG: &str = "oci/v1/oci_manifest_config";
/// DNS lookup.
pub const DNS_LOOKUP_HOST: &str = "net/v1/dns_lookup_host";
/// Whether a certificate chains to a trusted root.
pub const CERTIFICATE_TRUSTED: &str = "crypto/v1/is_certificate_trusted";
/// Kubernetes objects of a kind in one namespace.
pub const KUBERNETES_LIST_IN_NAMESPACE: &str = "kubernetes/list_resources_by_namespace";
/// Kubernetes objects of a kind in every namespace (or cluster-scoped).
pub const KUBERNETES_LIST_ALL: &str = "kubernetes/list_resources_all";
/// One Kubernetes object.
pub const KUBERNETES_GET: &str = "kubernetes/get_resource";
/// A SubjectAccessReview.
pub const KUBERNETES_CAN_I: &str = "kubernetes/can_i";
/// imagegate's Notary v1 check; policy-server answers `unknown namespace: notary`.
pub const NOTARY_SIGNED_DIGEST: &str = "notary/v1/signed_digest";
/// imagegate's signature check (every format; falls back to [`OCI_VERIFY_V2`]).
pub const CHECK_SIGNATURE: &str = "imagegate/v1/check_signature";
/// imagegate's attestation check (no fallback: attestations need imagegate's host).
pub const CHECK_ATTESTATION: &str = "imagegate/v1/check_attestation";
/// imagegate's Notation check; policy-server answers `unknown namespace: imagegate`.
pub const CHECK_NOTATION: &str = "imagegate/v1/check_notation";

/// Every capability path a policy may call.
pub const ALL: &[&str] = &[
    OCI_VERIFY_V1,
    OCI_VERIFY_V2,
    OCI_MANIFEST_DIGEST,
    OCI_MANIFEST,
    OCI_MANIFEST_CONFIG,
    DNS_LOOKUP_HOST,
    CERTIFICATE_TRUSTED,
    KUBERNETES_LIST_IN_NAMESPACE,
    KUBERNETES_LIST_ALL,
    KUBERNETES_GET,
    KUBERNETES_CAN_I,
    NOTARY_SIGNED_DIGEST,
    CHECK_SIGNATURE,
    CHECK_ATTESTATION,
    CHECK_NOTATION,
];

/// A path's waPC binding: namespace and operation (`kubernetes/get_resource`
/// is `kubernetes`, `get_resource`).
pub fn split(path: &str) -> (&str, &str) {
    path.split_once('/').unwrap_or((path, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_a_namespace_and_an_operation() {
        for path in ALL {
            let (namespace, operation) = split(path);
            assert!(!namespace.is_empty() && !operation.is_empty(), "{path}");
            assert_eq!(format!("{namespace}/{operation}"), *path);
        }
        assert_eq!(split(KUBERNETES_GET), ("kubernetes", "get_resource"));
        assert_eq!(split(OCI_VERIFY_V2), ("oci", "v2/verify"));
    }
}
