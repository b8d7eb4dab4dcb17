//! What an `oci/v*/verify` request requires, and whether a set of trusted
//! signature layers satisfies it.
//!
//! Semantics (Kubewarden policy-server's, minus one of its gaps):
//! * every listed key / keyless identity / certificate is a separate
//!   [`Requirement`], and **all** must be satisfied;
//! * a requirement is satisfied by **one** signature layer that both carries
//!   the identity and holds every requested annotation. sigstore's
//!   `verify_constraints` checks each constraint against any layer on its own,
//!   so key K1 plus an `env=prod` annotation that only K2 signed would pass;
//!   policy-server's certificate variant inherits exactly that. Here identity
//!   and annotations are always checked on the same layer;
//! * keyless identities are taken from certificates that sigstore already
//!   chained to a Fulcio CA of the trust root (with a Rekor bundle); on top of
//!   that the layer's signature must verify with the certificate's key, so a
//!   certificate copied next to someone else's signature does not count.

use serde::Serialize;
use serde_yaml_ng::Value as YamlValue;
use sigstore::cosign::signature_layers::{CertificateSignature, CertificateSubject};
use sigstore::cosign::verification_constraint::{
    AnnotationVerifier, CertificateVerifier, PublicKeyVerifier, VerificationConstraint,
};
use sigstore::cosign::SignatureLayer;
use sigstore::crypto::Signature;
use sigstore::registry::{Certificate, CertificateEncoding};
use std::collections::BTreeMap;

use imagegate_policy::wire::SigstoreVerifyRequest;

/// The OIDC issuer of GitHub Actions workflow identities.
pub(crate) const GITHUB_ACTIONS_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// One signature that must be present.
#[derive(Debug)]
pub(crate) struct Requirement {
    identity: Identity,
    annotations: Option<BTreeMap<String, String>>,
    /// How the requirement is shown when unsatisfied (YAML, like policy-server).
    description: YamlValue,
}

#[derive(Debug)]
enum Identity {
    Key(PublicKeyVerifier),
    Certificate(CertificateVerifier),
    Keyless { issuer: String, subject: Subject },
    GithubActions { owner: String, repo: Option<String> },
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
enum Subject {
    Equal(String),
    /// Always ends with `/` (anti-typosquatting: `https://github.com/corp/`
    /// does not match `https://github.com/corporate/...`).
    UrlPrefix(String),
}

/// policy-server's `Signature` YAML shape (`kind` plus the variant's
/// fields, camelCase; enums as `!tags`), so rejection messages read the same.
fn description<const N: usize>(kind: &str, fields: [(&str, YamlValue); N]) -> YamlValue {
    let mut map = serde_yaml_ng::Mapping::new();
    map.insert("kind".into(), kind.into());
    for (name, value) in fields {
        map.insert(name.into(), value);
    }
    YamlValue::Mapping(map)
}

/// One field of a [`description`] (plain data: serializing cannot fail).
fn yaml(value: impl Serialize) -> YamlValue {
    serde_yaml_ng::to_value(value).unwrap_or(YamlValue::Null)
}

/// The requirements of a request; errors are policy-server's for bad input.
pub(crate) fn requirements(req: &SigstoreVerifyRequest) -> Result<Vec<Requirement>, String> {
    // Empty annotation maps constrain nothing; keep them out of messages.
    let clean = |a: &Option<BTreeMap<String, String>>| a.clone().filter(|m| !m.is_empty());
    match req {
        SigstoreVerifyRequest::SigstorePubKeyVerify {
            pub_keys,
            annotations,
            ..
        } => {
            if pub_keys.is_empty() {
                return Err("Must provide at least one pub key".into());
            }
            pub_keys
                .iter()
                .enumerate()
                .map(|(i, key)| {
                    let verifier = PublicKeyVerifier::try_from(key.as_bytes())
                        .map_err(|e| format!("Invalid public key pub_keys[{i}]: {e}"))?;
                    Ok(Requirement {
                        identity: Identity::Key(verifier),
                        annotations: clean(annotations),
                        description: description(
                            "pubKey",
                            [
                                ("key", yaml(key)),
                                ("annotations", yaml(clean(annotations))),
                            ],
                        ),
                    })
                })
                .collect()
        }
        SigstoreVerifyRequest::SigstoreKeylessVerify {
            keyless,
            annotations,
            ..
        } => {
            if keyless.is_empty() {
                return Err("Must provide keyless info".into());
            }
            Ok(keyless
                .iter()
                .map(|k| {
                    keyless_requirement(
                        &k.issuer,
                        Subject::Equal(k.subject.clone()),
                        clean(annotations),
                    )
                })
                .collect())
        }
        SigstoreVerifyRequest::SigstoreKeylessPrefixVerify {
            keyless_prefix,
            annotations,
            ..
        } => {
            if keyless_prefix.is_empty() {
                return Err("Must provide keyless info".into());
            }
            keyless_prefix
                .iter()
                .map(|k| {
                    let prefix = url_prefix(&k.url_prefix)?;
                    Ok(keyless_requirement(
                        &k.issuer,
                        Subject::UrlPrefix(prefix),
                        clean(annotations),
                    ))
                })
                .collect()
        }
        SigstoreVerifyRequest::SigstoreGithubActionsVerify {
            owner,
            repo,
            annotations,
            ..
        } => {
            if owner.is_empty() {
                return Err("Must provide owner info".into());
            }
            Ok(vec![Requirement {
                identity: Identity::GithubActions {
                    owner: owner.clone(),
                    repo: repo.clone(),
                },
                annotations: clean(annotations),
                description: description(
                    "githubAction",
                    [
                        ("owner", yaml(owner)),
                        ("repo", yaml(repo)),
                        ("annotations", yaml(clean(annotations))),
                    ],
                ),
            }])
        }
        SigstoreVerifyRequest::SigstoreCertificateVerify {
            certificate,
            certificate_chain,
            require_rekor_bundle,
            annotations,
            ..
        } => {
            let chain: Option<Vec<Certificate>> = certificate_chain.as_ref().map(|certs| {
                certs
                    .iter()
                    .map(|data| Certificate {
                        encoding: CertificateEncoding::Pem,
                        data: data.clone(),
                    })
                    .collect()
            });
            let verifier =
                CertificateVerifier::from_pem(certificate, *require_rekor_bundle, chain.as_deref())
                    .map_err(|e| format!("Certificate not usable for verification: {e}"))?;
            Ok(vec![Requirement {
                identity: Identity::Certificate(verifier),
                annotations: clean(annotations),
                description: description(
                    "certificate",
                    [
                        ("certificate", yaml(String::from_utf8_lossy(certificate))),
                        ("requireRekorBundle", yaml(require_rekor_bundle)),
                        ("annotations", yaml(clean(annotations))),
                    ],
                ),
            }])
        }
    }
}

fn keyless_requirement(
    issuer: &str,
    subject: Subject,
    annotations: Option<BTreeMap<String, String>>,
) -> Requirement {
    Requirement {
        identity: Identity::Keyless {
            issuer: issuer.to_string(),
            subject: subject.clone(),
        },
        description: description(
            "genericIssuer",
            [
                ("issuer", yaml(issuer)),
                ("subject", yaml(&subject)),
                ("annotations", yaml(&annotations)),
            ],
        ),
        annotations,
    }
}

/// Parses a keyless `url_prefix` like policy-server (a URL, normalized, with a
/// trailing `/`), but reports a malformed one instead of crashing.
pub(crate) fn url_prefix(prefix: &str) -> Result<String, String> {
    let url = url::Url::parse(prefix)
        .map_err(|e| format!("Invalid keyless url_prefix {prefix:?}: {e}"))?;
    let mut text = url.to_string();
    if !text.ends_with('/') {
        text.push('/');
    }
    Ok(text)
}

impl Requirement {
    /// Identity and annotations, on this one layer.
    pub(crate) fn is_satisfied_by(&self, layer: &SignatureLayer) -> bool {
        let identity = match &self.identity {
            Identity::Key(v) => v.verify(layer).unwrap_or(false),
            Identity::Certificate(v) => v.verify(layer).unwrap_or(false),
            Identity::Keyless { issuer, subject } => {
                keyless_certificate(layer).is_some_and(|c| keyless_matches(c, issuer, subject))
            }
            Identity::GithubActions { owner, repo } => keyless_certificate(layer)
                .is_some_and(|c| github_matches(c, owner, repo.as_deref())),
        };
        identity
            && self.annotations.as_ref().is_none_or(|a| {
                AnnotationVerifier {
                    annotations: a.clone(),
                }
                .verify(layer)
                .unwrap_or(false)
            })
    }

    /// Whether this requirement can only be met by a layer with a Rekor
    /// bundle (a certificate check's `requireRekorBundle`).
    pub(crate) fn needs_rekor_bundle(&self) -> bool {
        self.description.get("requireRekorBundle") == Some(&YamlValue::Bool(true))
    }

    /// YAML form for the "not satisfied" message.
    pub(crate) fn describe(&self) -> String {
        serde_yaml_ng::to_string(&self.description)
            .unwrap_or_else(|e| format!("{:?} (cannot render: {e})", self.description))
    }
}

/// The layer's Fulcio certificate, when the layer's own signature verifies with
/// the certificate's key.
fn keyless_certificate(layer: &SignatureLayer) -> Option<&CertificateSignature> {
    let certificate = layer.certificate_signature.as_ref()?;
    let signature = layer.signature.as_ref()?;
    certificate
        .verification_key
        .verify_signature(
            Signature::Base64Encoded(signature.as_bytes()),
            &layer.raw_data,
        )
        .ok()?;
    Some(certificate)
}

fn subject_text(certificate: &CertificateSignature) -> &str {
    match &certificate.subject {
        CertificateSubject::Email(s) | CertificateSubject::Uri(s) => s,
    }
}

fn keyless_matches(certificate: &CertificateSignature, issuer: &str, subject: &Subject) -> bool {
    if certificate.issuer.as_deref() != Some(issuer) {
        return false;
    }
    let actual = subject_text(certificate);
    match subject {
        Subject::Equal(expected) => actual == expected,
        Subject::UrlPrefix(prefix) => actual.starts_with(prefix.as_str()),
    }
}

/// GitHub Actions identity: GitHub's issuer, a `https://github.com/<owner>/<repo>/...`
/// URI subject, and, when Fulcio recorded it, the `github_workflow_repository`
/// extension agreeing with the subject.
fn github_matches(certificate: &CertificateSignature, owner: &str, repo: Option<&str>) -> bool {
    if certificate.issuer.as_deref() != Some(GITHUB_ACTIONS_ISSUER) {
        return false;
    }
    let CertificateSubject::Uri(uri) = &certificate.subject else {
        return false;
    };
    let Some((subject_owner, subject_repo)) = github_repository(uri) else {
        return false;
    };
    if let Some(recorded) = &certificate.github_workflow_repository {
        if recorded != &format!("{subject_owner}/{subject_repo}") {
            return false;
        }
    }
    subject_owner == owner && repo.is_none_or(|r| r == subject_repo)
}

/// `https://github.com/<owner>/<repo>/...` -> `(owner, repo)`.
pub(crate) fn github_repository(uri: &str) -> Option<(&str, &str)> {
    let path = uri.strip_prefix("https://github.com/")?;
    let mut parts = path.split('/');
    let owner = parts.next().filter(|s| !s.is_empty())?;
    let repo = parts.next().filter(|s| !s.is_empty())?;
    Some((owner, repo))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use imagegate_policy::wire::{KeylessInfo, KeylessPrefixInfo};
    use rcgen::{KeyPair, SigningKey};
    use sigstore::cosign::payload::simple_signing::SimpleSigning;
    use sigstore::crypto::CosignVerificationKey;

    const DIGEST: &str = "sha256:ae9ec4294fa57373460da70ceeddd75c1e092e852db99c9d544df036ce6f91b9";

    fn payload(annotations: &[(&str, &str)]) -> Vec<u8> {
        let optional = if annotations.is_empty() {
            serde_json::Value::Null
        } else {
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        serde_json::to_vec(&serde_json::json!({
            "critical": {"identity": {"docker-reference": "127.0.0.1:5000/demo/app"},
                         "image": {"docker-manifest-digest": DIGEST},
                         "type": "cosign container image signature"},
            "optional": optional}))
        .unwrap()
    }

    /// A layer signed by `key` over a payload with `annotations`.
    fn layer(key: &KeyPair, annotations: &[(&str, &str)]) -> SignatureLayer {
        let raw_data = payload(annotations);
        let signature =
            base64::engine::general_purpose::STANDARD.encode(key.sign(&raw_data).unwrap());
        let simple_signing: SimpleSigning = serde_json::from_slice(&raw_data).unwrap();
        SignatureLayer {
            simple_signing,
            oci_digest: "sha256:not-relevant".into(),
            certificate_signature: None,
            bundle: None,
            signature: Some(signature),
            raw_data,
        }
    }

    /// A layer as sigstore builds it for a Fulcio-verified keyless signature.
    fn keyless_layer(
        key: &KeyPair,
        issuer: &str,
        subject: CertificateSubject,
        repository: Option<&str>,
        annotations: &[(&str, &str)],
    ) -> SignatureLayer {
        let mut l = layer(key, annotations);
        l.certificate_signature = Some(CertificateSignature {
            verification_key: CosignVerificationKey::try_from_pem(key.public_key_pem().as_bytes())
                .unwrap(),
            subject,
            issuer: Some(issuer.into()),
            github_workflow_trigger: None,
            github_workflow_sha: None,
            github_workflow_name: None,
            github_workflow_repository: repository.map(str::to_string),
            github_workflow_ref: None,
        });
        l
    }

    fn ann(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn pubkey_req(keys: &[&KeyPair], annotations: &[(&str, &str)]) -> Vec<Requirement> {
        requirements(&SigstoreVerifyRequest::SigstorePubKeyVerify {
            image: "x".into(),
            pub_keys: keys.iter().map(|k| k.public_key_pem()).collect(),
            annotations: ann(annotations),
        })
        .unwrap()
    }

    fn satisfied(reqs: &[Requirement], layers: &[SignatureLayer]) -> Vec<bool> {
        reqs.iter()
            .map(|r| layers.iter().any(|l| r.is_satisfied_by(l)))
            .collect()
    }

    #[test]
    fn every_key_must_have_its_own_signature() {
        let (k1, k2) = (KeyPair::generate().unwrap(), KeyPair::generate().unwrap());
        let only_k1 = [layer(&k1, &[])];
        assert_eq!(
            satisfied(&pubkey_req(&[&k1, &k2], &[]), &only_k1),
            [true, false]
        );
        let both = [layer(&k1, &[]), layer(&k2, &[])];
        assert_eq!(
            satisfied(&pubkey_req(&[&k1, &k2], &[]), &both),
            [true, true]
        );
    }

    #[test]
    fn annotations_must_be_signed_by_the_same_key() {
        // The sigstore verify_constraints gap: k1 signed nothing with env=prod,
        // k2 did. "k1 + env=prod" must fail, "k2 + env=prod" must pass.
        let (k1, k2) = (KeyPair::generate().unwrap(), KeyPair::generate().unwrap());
        let layers = [layer(&k1, &[]), layer(&k2, &[("env", "prod")])];
        assert_eq!(
            satisfied(&pubkey_req(&[&k1], &[("env", "prod")]), &layers),
            [false]
        );
        assert_eq!(
            satisfied(&pubkey_req(&[&k2], &[("env", "prod")]), &layers),
            [true]
        );
        // extra annotations in the signature are fine, wrong values are not
        let layers = [layer(&k1, &[("env", "prod"), ("team", "a")])];
        assert_eq!(
            satisfied(&pubkey_req(&[&k1], &[("env", "prod")]), &layers),
            [true]
        );
        assert_eq!(
            satisfied(&pubkey_req(&[&k1], &[("env", "dev")]), &layers),
            [false]
        );
    }

    #[test]
    fn request_errors_match_policy_server() {
        let e = requirements(&SigstoreVerifyRequest::SigstorePubKeyVerify {
            image: "x".into(),
            pub_keys: vec![],
            annotations: None,
        })
        .unwrap_err();
        assert_eq!(e, "Must provide at least one pub key");
        let e = requirements(&SigstoreVerifyRequest::SigstorePubKeyVerify {
            image: "x".into(),
            pub_keys: vec!["not a key".into()],
            annotations: None,
        })
        .unwrap_err();
        assert!(e.starts_with("Invalid public key pub_keys[0]"), "{e}");
        let e = requirements(&SigstoreVerifyRequest::SigstoreKeylessVerify {
            image: "x".into(),
            keyless: vec![],
            annotations: None,
        })
        .unwrap_err();
        assert_eq!(e, "Must provide keyless info");
        let e = requirements(&SigstoreVerifyRequest::SigstoreKeylessPrefixVerify {
            image: "x".into(),
            keyless_prefix: vec![KeylessPrefixInfo {
                issuer: "i".into(),
                url_prefix: "not a url".into(),
            }],
            annotations: None,
        })
        .unwrap_err();
        assert!(
            e.contains("Invalid keyless url_prefix \"not a url\""),
            "{e}"
        );
        let e = requirements(&SigstoreVerifyRequest::SigstoreGithubActionsVerify {
            image: "x".into(),
            owner: "".into(),
            repo: None,
            annotations: None,
        })
        .unwrap_err();
        assert_eq!(e, "Must provide owner info");
    }

    const ISSUER: &str = "https://accounts.example.com";

    fn keyless_req(issuer: &str, subject: &str, annotations: &[(&str, &str)]) -> Vec<Requirement> {
        requirements(&SigstoreVerifyRequest::SigstoreKeylessVerify {
            image: "x".into(),
            keyless: vec![KeylessInfo {
                issuer: issuer.into(),
                subject: subject.into(),
            }],
            annotations: ann(annotations),
        })
        .unwrap()
    }

    #[test]
    fn keyless_needs_exact_issuer_and_subject_on_the_annotated_layer() {
        let (alice, bob) = (KeyPair::generate().unwrap(), KeyPair::generate().unwrap());
        let email = |s: &str| CertificateSubject::Email(s.into());
        let layers = [
            keyless_layer(&alice, ISSUER, email("alice@example.com"), None, &[]),
            keyless_layer(
                &bob,
                ISSUER,
                email("bob@example.com"),
                None,
                &[("env", "prod")],
            ),
        ];
        assert_eq!(
            satisfied(&keyless_req(ISSUER, "alice@example.com", &[]), &layers),
            [true]
        );
        assert_eq!(
            satisfied(
                &keyless_req(ISSUER, "alice@example.com", &[("env", "prod")]),
                &layers
            ),
            [false]
        );
        assert_eq!(
            satisfied(
                &keyless_req(ISSUER, "bob@example.com", &[("env", "prod")]),
                &layers
            ),
            [true]
        );
        assert_eq!(
            satisfied(
                &keyless_req("https://other", "alice@example.com", &[]),
                &layers
            ),
            [false]
        );
        assert_eq!(
            satisfied(&keyless_req(ISSUER, "alice@example", &[]), &layers),
            [false]
        );
        // all of several identities
        let both = requirements(&SigstoreVerifyRequest::SigstoreKeylessVerify {
            image: "x".into(),
            keyless: vec![
                KeylessInfo {
                    issuer: ISSUER.into(),
                    subject: "alice@example.com".into(),
                },
                KeylessInfo {
                    issuer: ISSUER.into(),
                    subject: "carol@example.com".into(),
                },
            ],
            annotations: None,
        })
        .unwrap();
        assert_eq!(satisfied(&both, &layers), [true, false]);
    }

    #[test]
    fn keyless_certificate_must_match_the_layer_signature() {
        // alice's certificate attached to a payload signed by mallory
        let (alice, mallory) = (KeyPair::generate().unwrap(), KeyPair::generate().unwrap());
        let mut forged = layer(&mallory, &[]);
        forged.certificate_signature = keyless_layer(
            &alice,
            ISSUER,
            CertificateSubject::Email("alice@example.com".into()),
            None,
            &[],
        )
        .certificate_signature;
        assert_eq!(
            satisfied(&keyless_req(ISSUER, "alice@example.com", &[]), &[forged]),
            [false]
        );
        // key-only layers never satisfy keyless requirements
        assert_eq!(
            satisfied(
                &keyless_req(ISSUER, "alice@example.com", &[]),
                &[layer(&alice, &[])]
            ),
            [false]
        );
    }

    #[test]
    fn keyless_prefix_appends_a_slash_against_typosquatting() {
        let key = KeyPair::generate().unwrap();
        let uri = |s: &str| CertificateSubject::Uri(s.into());
        let good = keyless_layer(
            &key,
            GITHUB_ACTIONS_ISSUER,
            uri("https://github.com/kubewarden/app/.github/workflows/release.yml@refs/tags/v1"),
            None,
            &[],
        );
        let evil = keyless_layer(
            &key,
            GITHUB_ACTIONS_ISSUER,
            uri("https://github.com/kubewardenevil/app/.github/workflows/release.yml@refs/tags/v1"),
            None,
            &[],
        );
        let req = requirements(&SigstoreVerifyRequest::SigstoreKeylessPrefixVerify {
            image: "x".into(),
            keyless_prefix: vec![KeylessPrefixInfo {
                issuer: GITHUB_ACTIONS_ISSUER.into(),
                url_prefix: "https://github.com/kubewarden".into(),
            }],
            annotations: None,
        })
        .unwrap();
        assert_eq!(satisfied(&req, &[good]), [true]);
        assert_eq!(satisfied(&req, &[evil]), [false]);
    }

    fn github_req(owner: &str, repo: Option<&str>) -> Vec<Requirement> {
        requirements(&SigstoreVerifyRequest::SigstoreGithubActionsVerify {
            image: "x".into(),
            owner: owner.into(),
            repo: repo.map(str::to_string),
            annotations: None,
        })
        .unwrap()
    }

    #[test]
    fn github_actions_checks_issuer_owner_repo_and_recorded_repository() {
        let key = KeyPair::generate().unwrap();
        let subject = CertificateSubject::Uri(
            "https://github.com/kubewarden/app-example/.github/workflows/ci.yml@refs/heads/main"
                .into(),
        );
        let l = |issuer: &str, recorded: Option<&str>| {
            keyless_layer(&key, issuer, subject.clone(), recorded, &[])
        };
        let ok = l(GITHUB_ACTIONS_ISSUER, Some("kubewarden/app-example"));
        assert_eq!(
            satisfied(&github_req("kubewarden", None), std::slice::from_ref(&ok)),
            [true]
        );
        assert_eq!(
            satisfied(
                &github_req("kubewarden", Some("app-example")),
                std::slice::from_ref(&ok)
            ),
            [true]
        );
        assert_eq!(
            satisfied(
                &github_req("kubewarden", Some("other")),
                std::slice::from_ref(&ok)
            ),
            [false]
        );
        assert_eq!(
            satisfied(&github_req("kube", None), std::slice::from_ref(&ok)),
            [false]
        );
        assert_eq!(
            satisfied(&github_req("kubewarden", None), &[l(ISSUER, None)]),
            [false]
        );
        assert_eq!(
            satisfied(
                &github_req("kubewarden", None),
                &[l(GITHUB_ACTIONS_ISSUER, Some("evil/app-example"))]
            ),
            [false]
        );
        let email = keyless_layer(
            &key,
            GITHUB_ACTIONS_ISSUER,
            CertificateSubject::Email("kubewarden@github.com".into()),
            None,
            &[],
        );
        assert_eq!(
            satisfied(&github_req("kubewarden", None), &[email]),
            [false]
        );
    }

    #[test]
    fn unsatisfied_requirements_render_like_policy_server() {
        let text = keyless_req(ISSUER, "kubewarden@cncf.io", &[])[0].describe();
        assert!(text.contains("kind: genericIssuer"), "{text}");
        assert!(
            text.contains("subject: !equal kubewarden@cncf.io"),
            "{text}"
        );
        let k = KeyPair::generate().unwrap();
        let text = pubkey_req(&[&k], &[("env", "prod")])[0].describe();
        assert!(
            text.contains("kind: pubKey") && text.contains("env: prod"),
            "{text}"
        );
    }
}
