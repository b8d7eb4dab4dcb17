//! What compiled settings require of the place they run in: whether the
//! webhook must be allowed to mutate (digest pinning), which host
//! capabilities only imagegate's own host answers, and whether Kubernetes
//! objects are read at request time.
//!
//! The host uses it to write what it deploys (`imagegate scaffold webhook`
//! adds a MutatingWebhookConfiguration only when something pins) and to say
//! when converted settings cannot run under Kubewarden's policy-server
//! (`imagegate convert`). `sources` count for what the objects they read
//! can turn into: tmax policies become Notary checks that pin.

use crate::capability::{CHECK_ATTESTATION, CHECK_NOTATION, NOTARY_SIGNED_DIGEST};
use crate::settings::{Check, OnDigestMismatch, PinDigest, Policy, Verify};

/// See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Requirements {
    /// Some image may be rewritten to a digest (`pinDigest`,
    /// `onDigestMismatch: rewrite`, or tmax policies read through `sources`).
    pub mutates: bool,
    /// Capabilities that only imagegate's host answers, each with where the
    /// settings use it.
    pub imagegate_host: Vec<HostOnly>,
    /// `sources` read Kubernetes objects at request time.
    pub reads_cluster: bool,
}

/// A capability path (`notary/v1/signed_digest`) and the settings that call it
/// (`rules[2] "corp"`, `sources.tmax`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostOnly {
    /// `<namespace>/<operation>`.
    pub capability: &'static str,
    /// Where in the settings.
    pub at: String,
}

impl Policy {
    /// What these settings require of the host and the webhook (module docs).
    ///
    /// ```
    /// use imagegate_policy::settings::Policy;
    ///
    /// let policy = Policy::from_json(
    ///     r#"{"rules":[{"name":"n","images":["*"],"pinDigest":true,
    ///        "verify":{"anyOf":[{"notary":{"server":"https://notary:4443"}}]}}]}"#,
    /// )
    /// .unwrap();
    /// let needs = policy.requirements();
    /// assert!(needs.mutates);
    /// assert_eq!(needs.imagegate_host[0].capability, "notary/v1/signed_digest");
    /// assert_eq!(needs.imagegate_host[0].at, r#"rules[0] "n""#);
    /// assert_eq!(Policy::from_json("{}").unwrap().requirements(), Default::default());
    /// ```
    pub fn requirements(&self) -> Requirements {
        let mut needs = Requirements::default();
        for (i, rule) in self.rules.iter().enumerate() {
            needs.mutates |= rule.pin_digest != PinDigest::Off
                || rule.on_digest_mismatch == OnDigestMismatch::Rewrite;
            let checks = match &rule.verify {
                Some(Verify::AnyOf(checks) | Verify::AllOf(checks)) => checks.as_slice(),
                None => &[],
            };
            for capability in [NOTARY_SIGNED_DIGEST, CHECK_NOTATION, CHECK_ATTESTATION] {
                let calls = |c: &Check| match c {
                    Check::Notary { .. } => capability == NOTARY_SIGNED_DIGEST,
                    Check::Notation(_) => capability == CHECK_NOTATION,
                    Check::Attestation { .. } => capability == CHECK_ATTESTATION,
                    Check::Signature { .. } => false,
                };
                if checks.iter().any(calls) {
                    needs.imagegate_host.push(HostOnly {
                        capability,
                        at: format!("rules[{i}] {:?}", &*rule.name),
                    });
                }
            }
        }
        if let Some(sourced) = &self.sources {
            needs.reads_cluster = true;
            if sourced.sources.tmax {
                // tmax's signCheck names a Notary server and pins what it verified.
                needs.mutates = true;
                needs.imagegate_host.push(HostOnly {
                    capability: NOTARY_SIGNED_DIGEST,
                    at: "sources.tmax (RegistrySecurityPolicies that name a Notary server)"
                        .to_string(),
                });
            }
        }
        needs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(settings: &str) -> Requirements {
        Policy::from_json(settings).unwrap().requirements()
    }

    #[test]
    fn pins_notary_and_sources() {
        let n = needs(
            r#"{"rules":[
                {"name":"a","images":["a/**"],"onDigestMismatch":"rewrite",
                 "verify":{"allOf":[{"keyless":{"issuer":"https://i","subject":"s"}}]}},
                {"name":"b","images":["b/**"],
                 "verify":{"anyOf":[{"keyless":{"issuer":"https://i","subject":"s"}},{"notary":{"server":"https://n"}}]}}]}"#,
        );
        assert!(n.mutates);
        assert!(!n.reads_cluster);
        assert_eq!(
            n.imagegate_host,
            vec![HostOnly {
                capability: NOTARY_SIGNED_DIGEST,
                at: r#"rules[1] "b""#.into()
            }]
        );
        let n = needs(r#"{"rules":[{"name":"a","images":["a/**"]}],"sources":{"tanzu":true}}"#);
        assert_eq!((n.mutates, n.reads_cluster), (false, true));
        assert!(n.imagegate_host.is_empty());
        let n = needs(r#"{"sources":{"tmax":true}}"#);
        assert!(n.mutates && n.reads_cluster);
        assert!(n.imagegate_host[0].at.starts_with("sources.tmax"));
        assert_eq!(
            needs(r#"{"sources":{"tmax":false}}"#),
            Requirements::default()
        );
    }
}
