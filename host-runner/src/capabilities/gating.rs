//! Which capabilities a policy may call: `--allowed-host-capabilities`
//! patterns over the known capability paths, and the Kubernetes resource
//! types of the metadata's `contextAwareResources` (`--allow-context-aware`).
//! Error texts are Kubewarden's.

use std::collections::BTreeSet;

use anyhow::bail;
use imagegate_policy::capability;

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
                capability::ALL
                    .iter()
                    .any(|k| k.starts_with(&format!("{prefix}/")))
            } else {
                capability::ALL.contains(&p.as_str())
            };
            if !valid {
                bail!(
                    "invalid host capability pattern '{p}': expected '*', '<prefix>/*' or one of {}",
                    capability::ALL.join(", ")
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
