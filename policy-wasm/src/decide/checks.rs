//! Signature checks and digest lookups: the host calls a rule makes.
//!
//! Every host error, malformed answer, `is_trusted: false` or malformed
//! digest is a failed check whose text names the check and the cause (fail
//! closed). Each call is made at most once per request ([`Calls`]).

use crate::capability;
use crate::conditions::{Condition, Facts};
use crate::host::Host;
use crate::pattern::FastHash;
use crate::reference;
use crate::settings::{Check, Signers, Verify};
use crate::wire::{
    AttestationVerifyRequest, CheckReport, ImageVerifyResponse, ManifestConfigResponse,
    ManifestDigestResponse, NotaryVerifyRequest, NotaryVerifyResponse, NotationVerifyRequest,
    Platforms, SignatureVerifyRequest, SignerIdentity, SigstoreVerifyRequest, Verified,
    VerifyResponse,
};
use serde::de::DeserializeOwned;
use serde::ser::{Serialize, Serializer};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

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

    /// The wire form of this run.
    pub fn report(&self) -> CheckReport {
        CheckReport {
            check: self.check.clone(),
            digest: self.result.as_ref().ok().cloned(),
            error: self.result.as_ref().err().cloned(),
        }
    }
}

/// `{"check": ..., "digest": ...}` or `{"check": ..., "error": ...}`.
impl Serialize for CheckRun {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.report().serialize(s)
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
    match check {
        Check::Signature {
            signers,
            annotations,
            platforms,
        } => {
            let by = signers.describe();
            let req = SignatureVerifyRequest {
                image: image.clone(),
                platforms: *platforms,
                identities: signers.identities(),
                annotations: annotations.clone(),
            };
            match calls.verify_signature(&req) {
                Err(e) if unknown_to_host(&e) => {
                    if *platforms == Platforms::All {
                        runs.push(CheckRun {
                            check: by.clone(),
                            result: Err(e.clone()),
                        });
                        return Err(format!(
                            "{by}: platforms: all needs the imagegate host (this host answered {e:?})"
                        ));
                    }
                    legacy_signature(signers, &image, annotations, calls, runs)
                }
                answer => record(by, answer, *platforms, runs, None, Some(signers)),
            }
        }
        Check::Attestation {
            predicate_type,
            signers,
            platforms,
            conditions,
        } => {
            let by = format!("attestation {predicate_type} by {}", signers.describe());
            let req = AttestationVerifyRequest {
                image,
                platforms: *platforms,
                predicate_type: predicate_type.clone(),
                identities: signers.identities(),
            };
            let answer = calls.verify_attestation(&req);
            record(
                by,
                answer,
                *platforms,
                runs,
                conditions.as_ref(),
                Some(signers),
            )
        }
        Check::Notation(notation) => {
            let req = notation.request(&image).inspect_err(|e| {
                runs.push(CheckRun {
                    check: "notation".to_string(),
                    result: Err(e.clone()),
                })
            });
            let req = req.map_err(|e| format!("notation: {e}"))?;
            let by = format!("notation trust policy {:?}", req.policy.name);
            let answer = calls.verify_notation(&req);
            record(by, answer, req.platforms, runs, None, None)
        }
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
            let resp = result.map_err(|e| format!("{by}: {e}"))?;
            Ok(Signed {
                digest: resp.digest,
                by: format!("notary signer {}", resp.signer),
                maps_tag: true,
            })
        }
    }
}

/// A Kubewarden host without imagegate's own capabilities (policy-server).
fn unknown_to_host(error: &str) -> bool {
    error.contains("unknown namespace: imagegate")
}

/// What an `imagegate/v1/check_*` answer means for the check: every
/// manifest it must cover (the resolved digest, or each platform manifest
/// with `platforms: all`) has a verified entry satisfying the conditions.
fn record(
    by: String,
    answer: Result<ImageVerifyResponse, String>,
    platforms: Platforms,
    runs: &mut Vec<CheckRun>,
    conditions: Option<&Condition>,
    signers: Option<&Signers>,
) -> Result<Signed, String> {
    let accept = |v: &Verified| match conditions {
        None => Ok(()),
        Some(c) => facts(v).and_then(|(statement, subject, certificate)| {
            c.check(&Facts {
                statement: &statement,
                subject: &subject,
                certificate: &certificate,
            })
        }),
    };
    let result = answer.and_then(|resp| {
        let digest = host_digest(resp.digest.clone())?;
        let subjects: Vec<&str> = match platforms {
            Platforms::Index => vec![digest.as_str()],
            Platforms::All => resp.trace.iter().map(|t| t.subject.as_str()).collect(),
        };
        if subjects.is_empty() {
            return Err("the host checked no platform manifest".to_string());
        }
        let mut first = None;
        for subject in subjects {
            let candidates: Vec<&Verified> = resp
                .verified
                .iter()
                .filter(|v| v.subject == subject)
                .collect();
            let mut refused = Vec::new();
            let found = candidates.iter().find(|v| match accept(v) {
                Ok(()) => true,
                Err(e) => {
                    refused.push(format!("{} ({}): {e}", v.manifest, v.format));
                    false
                }
            });
            match found {
                Some(v) => {
                    first.get_or_insert(*v);
                }
                None if !refused.is_empty() => {
                    return Err(format!(
                        "{subject}: verified, but no attestation satisfies the conditions: {}",
                        refused.join("; ")
                    ))
                }
                None => {
                    let trace = resp.trace.iter().find(|t| t.subject == subject);
                    return Err(format!(
                        "no verified signature for {subject}: {}",
                        trace.map_or("the host traced nothing".to_string(), |t| t
                            .paths
                            .join(", "))
                    ));
                }
            }
        }
        let v = first.ok_or("nothing verified")?;
        let who = v
            .identity
            .zip(signers)
            .map_or_else(|| v.signer.clone(), |(i, signers)| signers.label(i));
        Ok((digest, format!("{who} ({} via {})", v.format, v.path)))
    });
    runs.push(CheckRun {
        check: by.clone(),
        result: result
            .as_ref()
            .map(|(d, _)| d.clone())
            .map_err(Clone::clone),
    });
    let (digest, who) = result.map_err(|e| format!("{by}: {e}"))?;
    Ok(Signed {
        digest,
        by: who,
        maps_tag: false,
    })
}

/// The statement, the subject naming the verified digest, and the
/// certificate claims of a verified attestation, for its conditions.
fn facts(v: &Verified) -> Result<(Value, Value, Value), String> {
    let statement = v
        .statement
        .clone()
        .ok_or("the host returned no statement")?;
    let (algorithm, hex) = v.subject.split_once(':').unwrap_or_default();
    let subject = statement
        .get("subject")
        .and_then(Value::as_array)
        .and_then(|list| {
            list.iter().find(|s| {
                s.pointer(&format!("/digest/{algorithm}"))
                    .and_then(Value::as_str)
                    .is_some_and(|h| h.eq_ignore_ascii_case(hex))
            })
        })
        .cloned()
        .ok_or("the statement's subject does not name the verified digest")?;
    let certificate = v
        .certificate
        .as_ref()
        .map(|c| {
            Value::Object(
                c.iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            )
        })
        .unwrap_or(Value::Object(Default::default()));
    Ok((statement, subject, certificate))
}

/// On a host without imagegate's capabilities: `oci/v2/verify`, which only
/// reads legacy `.sig` signatures (one call per key).
fn legacy_signature(
    signers: &Signers,
    image: &str,
    annotations: &Option<BTreeMap<String, String>>,
    calls: &Calls,
    runs: &mut Vec<CheckRun>,
) -> Result<Signed, String> {
    let mut failures = Vec::new();
    for (by, req) in signers.legacy_requests(image, annotations) {
        let result = calls.sigstore(&req);
        runs.push(CheckRun {
            check: by.clone(),
            result: result.clone(),
        });
        match result {
            Ok(digest) => {
                return Ok(Signed {
                    digest,
                    by,
                    maps_tag: false,
                })
            }
            Err(e) => failures.push(format!("{by}: {e}")),
        }
    }
    Err(format!(
        "{} (this host only checks legacy .sig signatures; cosign v3 bundles need the imagegate host)",
        failures.join("; ")
    ))
}

impl Signers {
    /// The identities the host is asked about, in order.
    fn identities(&self) -> Vec<SignerIdentity> {
        match self {
            Signers::Keys(keys) => keys
                .iter()
                .map(|k| SignerIdentity::Key { pem: k.pem.clone() })
                .collect(),
            Signers::Keyless { issuer, subject } => vec![SignerIdentity::Keyless {
                issuer: issuer.clone(),
                subject: subject.clone(),
            }],
            Signers::KeylessPrefix { issuer, prefix } => vec![SignerIdentity::KeylessPrefix {
                issuer: issuer.clone(),
                url_prefix: prefix.clone(),
            }],
            Signers::GithubActions { owner, repo } => vec![SignerIdentity::GithubActions {
                owner: owner.clone(),
                repo: repo.clone(),
            }],
            Signers::Certificate {
                certificate,
                chain,
                require_rekor_bundle,
            } => vec![SignerIdentity::Certificate {
                pem: certificate.clone(),
                chain: chain.clone(),
                require_tlog: *require_rekor_bundle,
            }],
        }
    }

    /// How the `i`th identity is named: `cosign key "release"`.
    fn label(&self, i: usize) -> String {
        match self {
            Signers::Keys(keys) => keys
                .get(i)
                .map_or_else(|| self.describe(), |k| format!("cosign key {:?}", k.name)),
            _ => self.describe(),
        }
    }

    /// How the check is named: `cosign key "release"`, `keyless https://issuer subject`.
    fn describe(&self) -> String {
        match self {
            Signers::Keys(keys) => {
                let names: Vec<String> = keys.iter().map(|k| format!("{:?}", k.name)).collect();
                format!("cosign key {}", names.join(" or "))
            }
            Signers::Keyless { issuer, subject } => format!("keyless {issuer} {subject}"),
            Signers::KeylessPrefix { issuer, prefix } => format!("keyless {issuer} {prefix}*"),
            Signers::GithubActions { owner, repo } => format!(
                "GitHub Actions {owner}{}",
                repo.as_ref().map(|r| format!("/{r}")).unwrap_or_default()
            ),
            Signers::Certificate { .. } => "certificate".to_string(),
        }
    }

    /// The `oci/v2/verify` requests of the check, one per key.
    fn legacy_requests(
        &self,
        image: &str,
        annotations: &Option<BTreeMap<String, String>>,
    ) -> Vec<(String, SigstoreVerifyRequest)> {
        self.identities()
            .iter()
            .enumerate()
            .map(|(i, identity)| {
                (
                    self.label(i),
                    identity.legacy_request(image.to_string(), annotations.clone()),
                )
            })
            .collect()
    }
}

/// Host calls of one request, each made at most once: two containers running
/// the same image cost one verification.
pub(super) struct Calls<'a> {
    host: &'a dyn Host,
    memo: RefCell<HashMap<CallKey, Result<Vec<u8>, String>, FastHash>>,
    /// The host said it does not know imagegate's namespace: asked once
    /// per request, the later calls get the same answer.
    imagegate_unknown: RefCell<Option<String>>,
}

/// capability path, payload.
type CallKey = (&'static str, Vec<u8>);

impl<'a> Calls<'a> {
    pub(super) fn new(host: &'a dyn Host) -> Self {
        Calls {
            host,
            memo: RefCell::new(HashMap::default()),
            imagegate_unknown: RefCell::new(None),
        }
    }

    /// Calls the `capability` (a [`crate::capability`] path).
    fn call<T: DeserializeOwned>(
        &self,
        capability: &'static str,
        payload: &impl serde::Serialize,
    ) -> Result<T, String> {
        let answer = self.answer(capability, serde_json::to_vec(payload))?;
        serde_json::from_slice(&answer).map_err(|e| malformed_answer(capability, e))
    }

    /// What [`Calls::call`] does for every answer type, once in the module
    /// rather than once per type: the memo and the host's errors.
    fn answer(
        &self,
        capability: &'static str,
        payload: serde_json::Result<Vec<u8>>,
    ) -> Result<Vec<u8>, String> {
        let (namespace, operation) = capability::split(capability);
        if namespace == "imagegate" {
            if let Some(e) = self.imagegate_unknown.borrow().clone() {
                return Err(e);
            }
        }
        let payload = payload.map_err(|e| format!("cannot encode the host call: {e}"))?;
        let key = (capability, payload);
        let cached = self.memo.borrow().get(&key).cloned();
        match cached {
            Some(answer) => answer,
            None => {
                let answer = self.host.call(namespace, operation, &key.1);
                if let Err(e) = &answer {
                    if namespace == "imagegate" && unknown_to_host(e) {
                        *self.imagegate_unknown.borrow_mut() = Some(e.clone());
                    }
                }
                self.memo.borrow_mut().insert(key, answer.clone());
                answer
            }
        }
        .map_err(|e| not_on_this_host(capability, e))
    }

    /// `oci/v2/verify`; returns the verified digest.
    fn sigstore(&self, req: &SigstoreVerifyRequest) -> Result<String, String> {
        let resp: VerifyResponse = self.call(capability::OCI_VERIFY_V2, req)?;
        if !resp.is_trusted {
            return Err("the host answered is_trusted: false".to_string());
        }
        host_digest(resp.digest)
    }

    /// `imagegate/v1/check_signature`.
    fn verify_signature(
        &self,
        req: &SignatureVerifyRequest,
    ) -> Result<ImageVerifyResponse, String> {
        self.call(capability::CHECK_SIGNATURE, req)
    }

    /// `imagegate/v1/check_notation`.
    fn verify_notation(&self, req: &NotationVerifyRequest) -> Result<ImageVerifyResponse, String> {
        self.call(capability::CHECK_NOTATION, req)
    }

    /// `imagegate/v1/check_attestation`.
    fn verify_attestation(
        &self,
        req: &AttestationVerifyRequest,
    ) -> Result<ImageVerifyResponse, String> {
        self.call(capability::CHECK_ATTESTATION, req)
    }

    /// `notary/v1/signed_digest`: a trusted answer with a well-formed digest.
    fn notary(&self, req: &NotaryVerifyRequest) -> Result<NotaryVerifyResponse, String> {
        let mut resp: NotaryVerifyResponse = self.call(capability::NOTARY_SIGNED_DIGEST, req)?;
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
        let resp: ManifestConfigResponse = self.call(capability::OCI_MANIFEST_CONFIG, &image)?;
        Ok(resp
            .config
            .pointer("/config/Labels")
            .and_then(serde_json::Value::as_object)
            .cloned()
            .unwrap_or_default())
    }

    /// `oci/v1/manifest_digest`: the digest the image resolves to now.
    fn manifest_digest(&self, image: &str) -> Result<String, String> {
        let resp: ManifestDigestResponse = self.call(capability::OCI_MANIFEST_DIGEST, &image)?;
        host_digest(resp.digest)
    }
}

/// An answer that does not read as the type asked for.
fn malformed_answer(capability: &str, e: serde_json::Error) -> String {
    format!("malformed answer from host capability {capability}: {e}")
}

/// policy-server's answer to a capability it does not have (`unknown
/// namespace: notary`, `unknown operation: ...`, which waPC prefixes with
/// `Callback evaluation failure: `) says what runs it instead.
fn not_on_this_host(capability: &str, error: String) -> String {
    if error.contains("unknown namespace: ") || error.contains("unknown operation: ") {
        format!(
            "this host does not have the capability {capability} (it answered {error:?}); \
             Kubewarden's policy-server lacks it, imagegate's own host answers it: run the policy with `imagegate serve`"
        )
    } else {
        error
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
