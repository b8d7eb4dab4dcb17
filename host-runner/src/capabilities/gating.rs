//! Which capabilities a policy may call: `--allowed-host-capabilities`
//! patterns over the known capability paths, and the Kubernetes resource
//! types of the metadata's `contextAwareResources` (`--allow-context-aware`).
//! Error texts are Kubewarden's.

use std::collections::BTreeSet;

use anyhow::bail;

/// Every capability path a policy may use (`<namespace>/<operation>`).
pub const KNOWN_CAPABILITIES: &[&str] = &[
    "oci/v1/verify",
    "oci/v2/verify",
    "oci/v1/manifest_digest",
    "oci/v1/oci_manifest",
    "oci/v1/oci_manifest_config",
    "net/v1/dns_lookup_host",
    "crypto/v1/is_certificate_trusted",
    "kubernetes/list_resources_by_namespace",
    "kubernetes/list_resources_all",
    "kubernetes/get_resource",
    "kubernetes/can_i",
    "notary/v1/signed_digest",
    "imagegate/v1/check_signature",
    "imagegate/v1/check_attestation",
    "imagegate/v1/check_notation",
];

/// `--allowed-host-capabilities`: `*`, `<prefix>/*` or exact paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilityAllowList {
    patterns: Vec<String>,
}

impl CapabilityAllowList {
    /// Everything allowed (the default of kwctl and of ClusterAdmissionPolicy).
    pub fn allow_all() -> Self {
        CapabilityAllowList {
            patterns: vec!["*".into()],
        }
    }

    /// Nothing allowed (the flag given without values).
    pub fn deny_all() -> Self {
        CapabilityAllowList { patterns: vec![] }
    }

    /// Validates each pattern against the known capability tree.
    pub fn new(patterns: &[String]) -> anyhow::Result<Self> {
        for p in patterns {
            let valid = if p == "*" {
                true
            } else if let Some(prefix) = p.strip_suffix("/*") {
                KNOWN_CAPABILITIES
                    .iter()
                    .any(|k| k.starts_with(&format!("{prefix}/")))
            } else {
                KNOWN_CAPABILITIES.contains(&p.as_str())
            };
            if !valid {
                bail!(
                    "invalid host capability pattern '{p}': expected '*', '<prefix>/*' or one of {}",
                    KNOWN_CAPABILITIES.join(", ")
                );
            }
        }
        Ok(CapabilityAllowList {
            patterns: patterns.to_vec(),
        })
    }

    pub fn allows(&self, path: &str) -> bool {
        self.patterns.iter().any(|p| {
            p == "*"
                || p == path
                || p.strip_suffix('*')
                    .is_some_and(|prefix| prefix.ends_with('/') && path.starts_with(prefix))
        })
    }
}

/// Kubernetes resource types a policy may read (`contextAwareResources`).
/// `None` = context-aware access not granted at all.
pub type ContextAwareAllowList = Option<BTreeSet<(String, String)>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gating_patterns() {
        let l = CapabilityAllowList::new(&["oci/v2/*".into(), "net/v1/dns_lookup_host".into()])
            .unwrap();
        assert!(l.allows("oci/v2/verify"));
        assert!(!l.allows("oci/v1/verify"));
        assert!(l.allows("net/v1/dns_lookup_host"));
        assert!(!l.allows("notary/v1/signed_digest"));
        assert!(CapabilityAllowList::new(&["oci/*".into()])
            .unwrap()
            .allows("oci/v1/manifest_digest"));
        assert!(!CapabilityAllowList::deny_all().allows("oci/v2/verify"));
        assert!(CapabilityAllowList::new(&["oc*".into()]).is_err());
        assert!(CapabilityAllowList::new(&["cosign/*".into()]).is_err());
        assert!(CapabilityAllowList::new(&["oci/v1/nope".into()]).is_err());
    }
}
