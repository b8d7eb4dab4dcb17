//! Signature checks and digest lookups: the host calls a rule makes.
//!
//! Every host error, malformed answer, `is_trusted: false` or malformed
//! digest is a failed check whose text names the check and the cause (fail
//! closed). Each call is made at most once per request ([`Calls`]).

use crate::host::Host;
use crate::pattern::FastHash;
use crate::reference;
use crate::settings::{Check, Verify};
use crate::wire::{
    KeylessInfo, KeylessPrefixInfo, ManifestConfigResponse, ManifestDigestResponse,
    NotaryVerifyRequest, NotaryVerifyResponse, SigstoreVerifyRequest, VerifyResponse,
};
use serde::de::DeserializeOwned;
use serde::ser::{Serialize, SerializeStruct, Serializer};
use std::cell::RefCell;
use std::collections::HashMap;

/// One host check run for an image, with its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRun {
    check: String,
    result: Result<String, String>,
}

impl CheckRun {
    /// What ran, as messages name it: `cosign key "release"`,
    /// `keyless https://issuer subject`, `notary https://notary:4443 (targets/ci)`,
    /// `digest lookup`.
    pub fn check(&self) -> &str {
        &self.check
    }

    /// The digest the check vouched for (or the lookup resolved), or why it failed.
    pub fn result(&self) -> Result<&str, &str> {
        match &self.result {
            Ok(digest) => Ok(digest),
            Err(e) => Err(e),
        }
    }
}

/// `{"check": ..., "digest": ...}` or `{"check": ..., "error": ...}`.
impl Serialize for CheckRun {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_struct("CheckRun", 2)?;
        out.serialize_field("check", &self.check)?;
        match &self.result {
            Ok(digest) => out.serialize_field("digest", digest)?,
            Err(e) => out.serialize_field("error", e)?,
        }
        out.end()
    }
}

/// A passed verification.
pub(super) struct Signed {
    pub digest: String,
    /// What verified it, for messages: `cosign key "release"`.
    pub by: String,
    /// The digest comes from a signed tag mapping (Notary), not from resolving
    /// the image at the registry.
    pub maps_tag: bool,
}

/// Runs a rule's `verify` on the normalized `image`, recording every check in `runs`.
pub(super) fn verify(
    verify: &Verify,
    image: &str,
    calls: &Calls,
    runs: &mut Vec<CheckRun>,
) -> Result<Signed, String> {
    match verify {
        Verify::AnyOf(checks) => {
            let mut failures = Vec::new();
            for check in checks {
                match run_check(check, image, calls, runs) {
                    Ok(signed) => return Ok(signed),
                    Err(e) => failures.push(e),
                }
            }
            Err(format!(
                "no signature check passed: {}",
                failures.join("; ")
            ))
        }
        Verify::AllOf(checks) => {
            let mut passed: Vec<Signed> = Vec::with_capacity(checks.len());
            for check in checks {
                let signed = run_check(check, image, calls, runs)?;
                if let Some(first) = passed.first() {
                    if first.digest != signed.digest {
                        return Err(format!(
                            "signature checks disagree on the digest: {} ({}) vs {} ({})",
                            first.digest, first.by, signed.digest, signed.by
                        ));
                    }
                }
                passed.push(signed);
            }
            let maps_tag = passed.iter().any(|s| s.maps_tag);
            let mut first = passed.swap_remove(0);
            first.maps_tag = maps_tag;
            Ok(first)
        }
    }
}

/// `oci/v1/manifest_digest`: the digest the normalized `image` resolves to now.
pub(super) fn resolve_digest(
    image: &str,
    calls: &Calls,
    runs: &mut Vec<CheckRun>,
) -> Result<String, String> {
    let result = calls.manifest_digest(image);
    runs.push(CheckRun {
        check: "digest lookup".to_string(),
        result: result.clone(),
    });
    result.map_err(|e| format!("cannot resolve the digest of {image}: {e}"))
}

fn run_check(
    check: &Check,
    image: &str,
    calls: &Calls,
    runs: &mut Vec<CheckRun>,
) -> Result<Signed, String> {
    let image = image.to_string();
    let mut sigstore = |by: String, req: SigstoreVerifyRequest| {
        let result = calls.sigstore(&req);
        runs.push(CheckRun {
            check: by.clone(),
            result: result.clone(),
        });
        match result {
            Ok(digest) => Ok(Signed {
                digest,
                by,
                maps_tag: false,
            }),
            Err(e) => Err(format!("{by}: {e}")),
        }
    };
    match check {
        Check::Cosign { keys, annotations } => {
            let mut failures = Vec::new();
            for key in keys {
                let req = SigstoreVerifyRequest::SigstorePubKeyVerify {
                    image: image.clone(),
                    pub_keys: vec![key.pem.clone()],
                    annotations: annotations.clone(),
                };
                match sigstore(format!("cosign key {:?}", key.name), req) {
                    Ok(signed) => return Ok(signed),
                    Err(e) => failures.push(e),
                }
            }
            Err(failures.join("; "))
        }
        Check::Keyless {
            issuer,
            subject,
            annotations,
        } => sigstore(
            format!("keyless {issuer} {subject}"),
            SigstoreVerifyRequest::SigstoreKeylessVerify {
                image,
                keyless: vec![KeylessInfo {
                    issuer: issuer.clone(),
                    subject: subject.clone(),
                }],
                annotations: annotations.clone(),
            },
        ),
        Check::KeylessPrefix {
            issuer,
            prefix,
            annotations,
        } => sigstore(
            format!("keyless {issuer} {prefix}*"),
            SigstoreVerifyRequest::SigstoreKeylessPrefixVerify {
                image,
                keyless_prefix: vec![KeylessPrefixInfo {
                    issuer: issuer.clone(),
                    url_prefix: prefix.clone(),
                }],
                annotations: annotations.clone(),
            },
        ),
        Check::GithubActions {
            owner,
            repo,
            annotations,
        } => sigstore(
            format!(
                "GitHub Actions {owner}{}",
                repo.as_ref().map(|r| format!("/{r}")).unwrap_or_default()
            ),
            SigstoreVerifyRequest::SigstoreGithubActionsVerify {
                image,
                owner: owner.clone(),
                repo: repo.clone(),
                annotations: annotations.clone(),
            },
        ),
        Check::Certificate {
            certificate,
            chain,
            require_rekor_bundle,
            annotations,
        } => sigstore(
            "certificate".to_string(),
            SigstoreVerifyRequest::SigstoreCertificateVerify {
                image,
                certificate: certificate.as_bytes().to_vec(),
                certificate_chain: (!chain.is_empty())
                    .then(|| chain.iter().map(|c| c.as_bytes().to_vec()).collect()),
                require_rekor_bundle: *require_rekor_bundle,
                annotations: annotations.clone(),
            },
        ),
        Check::Notary {
            server,
            signers,
            ca_cert,
            root_keys,
        } => {
            let roles: Vec<&str> = signers.iter().map(|s| s.role.as_str()).collect();
            let by = if roles.is_empty() {
                format!("notary {server}")
            } else {
                format!("notary {server} ({})", roles.join(", "))
            };
            let req = NotaryVerifyRequest {
                image,
                server: server.clone(),
                signers: signers.clone(),
                ca_cert: ca_cert.clone(),
                root_keys: root_keys.clone(),
            };
            let result = calls.notary(&req);
            runs.push(CheckRun {
                check: by.clone(),
                result: result
                    .as_ref()
                    .map(|r| r.digest.clone())
                    .map_err(Clone::clone),
            });
            let resp = result.map_err(|e| {
                if e.contains("unknown namespace: notary") {
                    format!("{by}: this host has no Notary capability (Kubewarden's policy-server answers {e:?}); Notary checks need the imagegate host")
                } else {
                    format!("{by}: {e}")
                }
            })?;
            Ok(Signed {
                digest: resp.digest,
                by: format!("notary signer {}", resp.signer),
                maps_tag: true,
            })
        }
    }
}

/// Host calls of one request, each made at most once: two containers running
/// the same image cost one verification.
pub(super) struct Calls<'a> {
    host: &'a dyn Host,
    memo: RefCell<HashMap<CallKey, Result<Vec<u8>, String>, FastHash>>,
}

/// namespace, operation, payload.
type CallKey = (&'static str, &'static str, Vec<u8>);

impl<'a> Calls<'a> {
    pub(super) fn new(host: &'a dyn Host) -> Self {
        Calls {
            host,
            memo: RefCell::new(HashMap::default()),
        }
    }

    fn call<T: DeserializeOwned>(
        &self,
        namespace: &'static str,
        operation: &'static str,
        payload: &impl serde::Serialize,
    ) -> Result<T, String> {
        let payload =
            serde_json::to_vec(payload).map_err(|e| format!("cannot encode the host call: {e}"))?;
        let key = (namespace, operation, payload);
        let cached = self.memo.borrow().get(&key).cloned();
        let answer = match cached {
            Some(answer) => answer,
            None => {
                let answer = self.host.call(namespace, operation, &key.2);
                self.memo.borrow_mut().insert(key, answer.clone());
                answer
            }
        }?;
        serde_json::from_slice(&answer).map_err(|e| {
            format!("malformed answer from host capability {namespace}/{operation}: {e}")
        })
    }

    /// `oci/v2/verify`; returns the verified digest.
    fn sigstore(&self, req: &SigstoreVerifyRequest) -> Result<String, String> {
        let resp: VerifyResponse = self.call("oci", "v2/verify", req)?;
        if !resp.is_trusted {
            return Err("the host answered is_trusted: false".to_string());
        }
        host_digest(resp.digest)
    }

    /// `notary/v1/verify`: a trusted answer with a well-formed digest.
    fn notary(&self, req: &NotaryVerifyRequest) -> Result<NotaryVerifyResponse, String> {
        let mut resp: NotaryVerifyResponse = self.call("notary", "v1/verify", req)?;
        if !resp.is_trusted {
            return Err("the host answered is_trusted: false".to_string());
        }
        resp.digest = host_digest(resp.digest)?;
        Ok(resp)
    }

    /// `oci/v1/oci_manifest_config`: the labels of the image's config
    /// (`config.Labels`; none is an empty map).
    pub(super) fn labels(
        &self,
        image: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        let resp: ManifestConfigResponse = self.call("oci", "v1/oci_manifest_config", &image)?;
        Ok(resp
            .config
            .pointer("/config/Labels")
            .and_then(serde_json::Value::as_object)
            .cloned()
            .unwrap_or_default())
    }

    /// `oci/v1/manifest_digest`: the digest the image resolves to now.
    fn manifest_digest(&self, image: &str) -> Result<String, String> {
        let resp: ManifestDigestResponse = self.call("oci", "v1/manifest_digest", &image)?;
        host_digest(resp.digest)
    }
}

/// A digest from the host goes into the object: it must be one an image
/// could carry (the reference grammar's digest rule).
fn host_digest(digest: String) -> Result<String, String> {
    match reference::check_digest(&digest) {
        Ok(()) => Ok(digest),
        Err(_) => Err(format!("the host returned an invalid digest {digest:?}")),
    }
}
