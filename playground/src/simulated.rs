//! The playground's host: the answers the real host would give, as the user
//! chooses them.
//!
//! A browser reaches no registry and no Notary server, so each capability
//! call the engine makes is answered from the user's choice for that very
//! call (the toggles on the page): signature valid for a digest, invalid, or
//! registry unreachable; a digest lookup resolves, finds nothing, or cannot
//! reach the registry; image labels are what the user types. A call is
//! identified by [`call_id`] (capability and payload), so a choice belongs to
//! one check of one image (this key, these annotations) and survives in a
//! share link. A call nobody chose an answer for gets [`Answer::default`]:
//! valid, for the image's own digest or one made up from its name, so a
//! signed-image policy shows its pins until told otherwise.
//!
//! Answers have the real host's shapes (the guest's wire types); errors have
//! the shape of the imagegate host's texts and end with `(simulated)`.
//! imagegate's own `imagegate/v1/check_*` operations are answered as
//! policy-server answers them (unknown namespace), not listed: the engine
//! then asks `oci/v2/verify`, which is.

use std::cell::RefCell;
use std::collections::BTreeMap;

use imagegate_policy::host::Host;
use imagegate_policy::reference::Reference;
use imagegate_policy::wire::{
    ManifestConfigResponse, ManifestDigestResponse, NotaryVerifyRequest, NotaryVerifyResponse,
    SigstoreVerifyRequest, VerifyResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// What the simulated host answers to one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "camelCase", deny_unknown_fields)]
pub enum Answer {
    /// The signature verifies (the lookup resolves, the labels are read):
    /// for `digest` (default: the image's own, or [`made_up_digest`]), with
    /// `labels` for an image-labels read.
    Valid {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        labels: Option<BTreeMap<String, String>>,
    },
    /// No signature satisfies the check (a lookup finds no such image).
    Invalid,
    /// The registry or Notary server cannot be reached.
    Unreachable,
}

impl Default for Answer {
    fn default() -> Self {
        Answer::Valid {
            digest: None,
            labels: None,
        }
    }
}

/// What kind of question a call asks, which decides the answers the page offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    /// `oci/v2/verify`, `notary/v1/signed_digest`: valid for a digest, invalid, unreachable.
    Signature,
    /// `oci/v1/manifest_digest`: resolves to a digest, not found, unreachable.
    DigestLookup,
    /// `oci/v1/oci_manifest_config` (rules with `imageLabels`): labels, not found, unreachable.
    Labels,
    /// Anything else (`kubernetes/*` for `sources`): fails, there is no cluster here.
    Unanswered,
}

/// One call the engine made, with the answer it got.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostCall {
    /// [`call_id`]: the key of this call's answer in the state.
    pub id: String,
    /// `<namespace>/<operation>`, e.g. `oci/v2/verify`.
    pub capability: String,
    /// What is checked, for people: `cosign key "release" of ghcr.io/corp/app:1`.
    pub check: String,
    pub kind: Kind,
    /// The answer given (the user's, or the default).
    pub answer: Answer,
    /// Whether the user chose it.
    pub chosen: bool,
    /// The digest a valid answer carries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The JSON answer, or the error text the engine got.
    pub result: Result<Value, String>,
    /// The JSON payload the engine sent (or its text when it is not JSON).
    pub payload: Value,
}

/// A [`Host`] answering from the user's choices and remembering every call.
pub struct SimulatedHost<'a> {
    answers: &'a BTreeMap<String, Answer>,
    /// Names of the settings' `keys`, by PEM body, to name cosign keys.
    key_names: BTreeMap<String, String>,
    calls: RefCell<Vec<HostCall>>,
}

impl<'a> SimulatedHost<'a> {
    /// `settings` (as JSON) only name the keys in [`HostCall::check`].
    pub fn new(answers: &'a BTreeMap<String, Answer>, settings: &Value) -> Self {
        let key_names = settings
            .get("keys")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(name, key)| Some((pem_body(key.get("cosign")?.as_str()?), name.clone())))
            .collect();
        SimulatedHost {
            answers,
            key_names,
            calls: RefCell::new(Vec::new()),
        }
    }

    /// The calls made, in order (the engine makes each at most once per request).
    pub fn into_calls(self) -> Vec<HostCall> {
        self.calls.into_inner()
    }

    fn key_name(&self, pem: &str) -> String {
        match self.key_names.get(&pem_body(pem)) {
            Some(name) => format!("cosign key {name:?}"),
            None => "cosign inline key".to_string(),
        }
    }
}

impl Host for SimulatedHost<'_> {
    fn call(&self, namespace: &str, operation: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
        // The playground simulates the Kubewarden capabilities; imagegate's own
        // `imagegate/v1/check_*` get policy-server's answer, so the engine
        // falls back to the `oci/v2/verify` calls the page lets users answer.
        if namespace == "imagegate" {
            return Err("unknown namespace: imagegate".to_string());
        }
        let capability = format!("{namespace}/{operation}");
        let id = call_id(&capability, payload);
        let chosen = self.answers.get(&id);
        let answer = chosen.cloned().unwrap_or_default();
        let question = Question::read(&capability, payload, self);
        let digest = match &answer {
            Answer::Valid { digest, .. } if question.kind != Kind::Unanswered => Some(
                digest
                    .clone()
                    .unwrap_or_else(|| default_digest(&question.image)),
            ),
            _ => None,
        };
        let result = question.answer(&answer, digest.as_deref());
        self.calls.borrow_mut().push(HostCall {
            id,
            capability,
            check: question.check,
            kind: question.kind,
            answer,
            chosen: chosen.is_some(),
            digest,
            result: result.clone(),
            payload: serde_json::from_slice(payload)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned())),
        });
        result.map(|v| v.to_string().into_bytes())
    }
}

/// What one call asks, read from its payload.
struct Question {
    kind: Kind,
    capability: String,
    check: String,
    image: String,
    /// Notary: the server and the first signer role (a valid answer's signer).
    notary: Option<(String, String)>,
}

impl Question {
    fn read(capability: &str, payload: &[u8], host: &SimulatedHost) -> Question {
        let mut q = Question {
            kind: Kind::Unanswered,
            capability: capability.to_string(),
            check: capability.to_string(),
            image: String::new(),
            notary: None,
        };
        match capability {
            "oci/v2/verify" => {
                if let Ok(req) = serde_json::from_slice::<SigstoreVerifyRequest>(payload) {
                    q.kind = Kind::Signature;
                    q.image = req.image().to_string();
                    q.check = describe_sigstore(&req, host);
                }
            }
            "notary/v1/signed_digest" => {
                if let Ok(req) = serde_json::from_slice::<NotaryVerifyRequest>(payload) {
                    let roles: Vec<&str> = req.signers.iter().map(|s| s.role.as_str()).collect();
                    q.kind = Kind::Signature;
                    q.check = format!("Notary {} ({})", req.server, roles.join(", "));
                    q.notary = Some((
                        req.server,
                        roles.first().copied().unwrap_or("targets").to_string(),
                    ));
                    q.image = req.image;
                }
            }
            "oci/v1/manifest_digest" | "oci/v1/oci_manifest_config" => {
                if let Ok(image) = serde_json::from_slice::<String>(payload) {
                    q.image = image;
                    (q.kind, q.check) = if capability.ends_with("digest") {
                        (Kind::DigestLookup, "digest lookup".to_string())
                    } else {
                        (Kind::Labels, "image labels".to_string())
                    };
                }
            }
            _ => {}
        }
        if !q.image.is_empty() {
            q.check = format!("{} of {}", q.check, q.image);
        }
        q
    }

    /// The host's JSON answer, or its error text.
    fn answer(&self, answer: &Answer, digest: Option<&str>) -> Result<Value, String> {
        let image = &self.image;
        let not_found =
            || format!("Cannot fetch manifest of {image}: manifest unknown (simulated)");
        let unreachable = || match &self.notary {
            Some((server, _)) => format!("cannot reach the Notary server {server} (simulated)"),
            None => format!("Cannot fetch manifest of {image}: registry unreachable (simulated)"),
        };
        let digest = digest.unwrap_or_default().to_string();
        let json = |v: Result<Value, serde_json::Error>| v.map_err(|e| e.to_string());
        match (self.kind, answer) {
            (Kind::Unanswered, _) if self.capability.starts_with("kubernetes/") => Err(format!(
                "no cluster in the playground: {} needs the host's Kubernetes access (simulated)",
                self.capability
            )),
            (Kind::Unanswered, _) => Err(format!(
                "{} is not simulated in the playground",
                self.capability
            )),
            (_, Answer::Unreachable) => Err(unreachable()),
            (Kind::Signature, Answer::Invalid) => Err(match &self.notary {
                Some(_) => {
                    format!("no valid signature by the listed signers for {image} (simulated)")
                }
                None => {
                    format!("Image verification failed: missing signatures for {image} (simulated)")
                }
            }),
            (_, Answer::Invalid) => Err(not_found()),
            (Kind::Signature, Answer::Valid { .. }) => match &self.notary {
                Some((_, signer)) => json(serde_json::to_value(NotaryVerifyResponse {
                    is_trusted: true,
                    digest,
                    signer: signer.clone(),
                })),
                None => json(serde_json::to_value(VerifyResponse {
                    is_trusted: true,
                    digest,
                })),
            },
            (Kind::DigestLookup, Answer::Valid { .. }) => {
                json(serde_json::to_value(ManifestDigestResponse { digest }))
            }
            (Kind::Labels, Answer::Valid { labels, .. }) => {
                json(serde_json::to_value(ManifestConfigResponse {
                    manifest: json!({"schemaVersion": 2}),
                    digest,
                    config: json!({"config": {"Labels": labels.clone().unwrap_or_default()}}),
                }))
            }
        }
    }
}

fn describe_sigstore(req: &SigstoreVerifyRequest, host: &SimulatedHost) -> String {
    let (what, annotations) = match req {
        SigstoreVerifyRequest::SigstorePubKeyVerify {
            pub_keys,
            annotations,
            ..
        } => (joined(pub_keys, |k| host.key_name(k)), annotations),
        SigstoreVerifyRequest::SigstoreKeylessVerify {
            keyless,
            annotations,
            ..
        } => (
            joined(keyless, |k| format!("keyless {} {}", k.issuer, k.subject)),
            annotations,
        ),
        SigstoreVerifyRequest::SigstoreKeylessPrefixVerify {
            keyless_prefix,
            annotations,
            ..
        } => (
            joined(keyless_prefix, |k| {
                format!("keyless {} {}*", k.issuer, k.url_prefix)
            }),
            annotations,
        ),
        SigstoreVerifyRequest::SigstoreGithubActionsVerify {
            owner,
            repo,
            annotations,
            ..
        } => (
            match repo {
                Some(repo) => format!("GitHub Actions {owner}/{repo}"),
                None => format!("GitHub Actions {owner}"),
            },
            annotations,
        ),
        SigstoreVerifyRequest::SigstoreCertificateVerify { annotations, .. } => {
            ("certificate".to_string(), annotations)
        }
    };
    match annotations {
        Some(a) if !a.is_empty() => {
            let pairs: Vec<String> = a.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{what} with {}", pairs.join(", "))
        }
        _ => what,
    }
}

fn joined<T>(items: &[T], describe: impl Fn(&T) -> String) -> String {
    items.iter().map(describe).collect::<Vec<_>>().join(", ")
}

/// The key of a call's answer: 12 hex digits of SHA-256 over capability and
/// payload. Stable for as long as the check and the image stay the same.
pub fn call_id(capability: &str, payload: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(capability.as_bytes());
    h.update([0]);
    h.update(payload);
    hex(&h.finalize()[..6])
}

/// The digest a valid answer carries by default: the image's own when it has
/// one (so the image matches what was "signed"), else [`made_up_digest`].
fn default_digest(image: &str) -> String {
    Reference::parse(image)
        .ok()
        .and_then(|r| r.digest().map(str::to_string))
        .unwrap_or_else(|| made_up_digest(image))
}

/// `sha256:` + SHA-256 of the image name: a well-formed digest, the same for
/// every check of one image (a signature and a lookup agree), and plainly
/// not a registry's.
pub fn made_up_digest(image: &str) -> String {
    format!("sha256:{}", hex(&Sha256::digest(image.as_bytes())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The base64 body of a PEM block, without whitespace: how one key is
/// recognized however it was indented or wrapped.
fn pem_body(pem: &str) -> String {
    pem.lines()
        .filter(|l| !l.trim_start().starts_with("-----"))
        .flat_map(|l| l.split_whitespace())
        .collect()
}
