//! kwctl-compatible record/replay of host-capability exchanges.
//!
//! The file is kwctl's exactly: a YAML sequence of
//! `{type: Exchange, request: "<YAML of the request with a !Variant tag>",
//! response: {type: Success, payload: '<json>'} | {type: Error, message: ...}}`,
//! so sessions recorded by `kwctl run --record-host-capabilities-interactions`
//! replay here and vice versa. Replay is FIFO with exact request equality.
//!
//! The request text is kwctl's `RequestType` serialized by
//! serde_yaml: externally tagged (`!SigstorePubKeyVerify` then the fields).
//! That shape is kwctl's, not the guest's payloads', so it lives only here:
//! [`kwctl_form`] and [`from_kwctl_form`] translate a [`Request`] to and from
//! (variant, fields).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use serde_yaml_ng::value::{Tag, TaggedValue};

use crate::capabilities::cache::CacheStats;
use crate::capabilities::request::CertificateTrustRequest;
use crate::capabilities::request::{sigstore_variant, CanIRequest, SubjectAccessReview};
use crate::capabilities::{lock, Backend, Request};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Response {
    Success { payload: String },
    Error { message: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub struct Exchange {
    /// YAML text of a request in kwctl's form.
    pub request: String,
    pub response: Response,
}

impl Exchange {
    pub fn new(request: &Request, answer: &Result<Vec<u8>, String>) -> anyhow::Result<Self> {
        let request = to_kwctl_yaml(request)
            .with_context(|| format!("cannot convert request to yaml: {request:?}"))?;
        let response = match answer {
            Ok(bytes) => Response::Success {
                payload: String::from_utf8(bytes.clone())
                    .context("cannot convert response payload to utf8")?,
            },
            Err(message) => Response::Error {
                message: message.clone(),
            },
        };
        Ok(Exchange { request, response })
    }
}

/// Reads a session file.
pub fn load(path: &Path) -> anyhow::Result<Vec<Exchange>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read session file {}", path.display()))?;
    parse(&text).with_context(|| format!("invalid session file {}", path.display()))
}

pub fn parse(text: &str) -> anyhow::Result<Vec<Exchange>> {
    let exchanges: Option<Vec<Exchange>> = serde_yaml_ng::from_str(text)?;
    Ok(exchanges.unwrap_or_default())
}

pub fn to_yaml(exchanges: &[Exchange]) -> anyhow::Result<String> {
    Ok(serde_yaml_ng::to_string(exchanges)?)
}

/// kwctl's form of `request`: its `RequestType` variant and fields,
/// in kwctl's field order.
fn kwctl_form(request: &Request) -> serde_json::Result<(String, Value)> {
    use Request::*;
    let (variant, fields) = match request {
        OciManifestDigest { image } => ("OciManifestDigest", json!({ "image": image })),
        OciManifest { image } => ("OciManifest", json!({ "image": image })),
        OciManifestAndConfig { image } => ("OciManifestAndConfig", json!({ "image": image })),
        Sigstore(r) => {
            // Internally tagged by `type`: the tag becomes the variant.
            let mut fields = serde_json::to_value(r)?;
            let variant = fields
                .as_object_mut()
                .and_then(|f| f.shift_remove("type"))
                .and_then(|t| t.as_str().map(str::to_string))
                .unwrap_or_default();
            return Ok((variant, fields));
        }
        DNSLookupHost { host } => ("DNSLookupHost", json!({ "host": host })),
        KubernetesListResources(r) if r.namespace.is_some() => {
            ("KubernetesListResourceNamespace", serde_json::to_value(r)?)
        }
        KubernetesListResources(r) => ("KubernetesListResourceAll", serde_json::to_value(r)?),
        KubernetesGetResource(r) => ("KubernetesGetResource", serde_json::to_value(r)?),
        KubernetesCanI(r) => (
            "KubernetesCanI",
            json!({ "request": r.subject_access_review, "disable_cache": r.disable_cache }),
        ),
        CryptoIsCertificateTrusted(r) => ("CryptoIsCertificateTrusted", json!({ "request": r })),
        NotaryVerify(r) => ("NotaryVerify", serde_json::to_value(r)?),
        VerifySignature(r) => ("VerifySignature", serde_json::to_value(r)?),
        VerifyAttestation(r) => ("VerifyAttestation", serde_json::to_value(r)?),
        VerifyNotation(r) => ("VerifyNotation", serde_json::to_value(r)?),
    };
    Ok((variant.to_string(), fields))
}

/// The request kwctl's `variant` with `fields` stands for.
fn from_kwctl_form(variant: &str, fields: Value) -> Result<Request, String> {
    #[derive(Deserialize)]
    struct CanI {
        request: SubjectAccessReview,
        disable_cache: bool,
    }
    #[derive(Deserialize)]
    struct Crypto {
        request: CertificateTrustRequest,
    }
    fn from<T: serde::de::DeserializeOwned>(fields: Value) -> Result<T, String> {
        serde_json::from_value(fields).map_err(|e| e.to_string())
    }
    let string = |name: &str| {
        fields
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("missing field `{name}`"))
    };
    use Request::*;
    Ok(match variant {
        "OciManifestDigest" => OciManifestDigest {
            image: string("image")?,
        },
        "OciManifest" => OciManifest {
            image: string("image")?,
        },
        "OciManifestAndConfig" => OciManifestAndConfig {
            image: string("image")?,
        },
        "DNSLookupHost" => DNSLookupHost {
            host: string("host")?,
        },
        "KubernetesListResourceNamespace" => {
            string("namespace")?;
            KubernetesListResources(from(fields)?)
        }
        "KubernetesListResourceAll" => {
            KubernetesListResources(imagegate_policy::wire::ListResourcesRequest {
                namespace: None,
                ..from(fields)?
            })
        }
        "KubernetesGetResource" => KubernetesGetResource(from(fields)?),
        "KubernetesCanI" => {
            let r: CanI = from(fields)?;
            KubernetesCanI(CanIRequest {
                subject_access_review: r.request,
                disable_cache: r.disable_cache,
            })
        }
        "CryptoIsCertificateTrusted" => CryptoIsCertificateTrusted(from::<Crypto>(fields)?.request),
        "NotaryVerify" => NotaryVerify(from(fields)?),
        "VerifySignature" => VerifySignature(from(fields)?),
        "VerifyAttestation" => VerifyAttestation(from(fields)?),
        "VerifyNotation" => VerifyNotation(from(fields)?),
        sigstore if sigstore.starts_with("Sigstore") => match fields {
            Value::Object(fields) => Sigstore(sigstore_variant(sigstore, fields)?),
            _ => return Err(format!("{sigstore}: expected a mapping of fields")),
        },
        other => return Err(format!("unknown variant `{other}`")),
    })
}

/// The request as kwctl writes it in a session file (`!Variant` + fields).
fn to_kwctl_yaml(request: &Request) -> anyhow::Result<String> {
    let (variant, fields) = kwctl_form(request)?;
    let tagged = serde_yaml_ng::Value::Tagged(Box::new(TaggedValue {
        tag: Tag::new(variant),
        value: serde_yaml_ng::to_value(fields)?,
    }));
    Ok(serde_yaml_ng::to_string(&tagged)?)
}

/// Reads a request written by kwctl (or by [`to_kwctl_yaml`]): a `!Variant`
/// tagged mapping, or the `{Variant: fields}` map serde_yaml also accepts.
fn from_kwctl_yaml(text: &str) -> anyhow::Result<Request> {
    let (variant, fields) = match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text)? {
        serde_yaml_ng::Value::Tagged(tagged) => {
            let TaggedValue { tag, value } = *tagged;
            (tag.to_string().trim_start_matches('!').to_string(), value)
        }
        serde_yaml_ng::Value::Mapping(map) if map.len() == 1 => {
            let (key, value) = map.into_iter().next().unwrap_or_default();
            match key {
                serde_yaml_ng::Value::String(variant) => (variant, value),
                other => anyhow::bail!("expected a request variant name, found {other:?}"),
            }
        }
        other => anyhow::bail!("expected a tagged request (!Variant), found {other:?}"),
    };
    let fields: Value = serde_yaml_ng::from_value(fields)?;
    from_kwctl_form(&variant, fields).map_err(|e| anyhow::anyhow!("{variant}: {e}"))
}

/// Answers from a recorded session.
pub struct Replay {
    exchanges: Vec<(Request, Response)>,
    next: AtomicUsize,
}

impl Replay {
    pub fn new(exchanges: Vec<Exchange>) -> anyhow::Result<Replay> {
        let exchanges = exchanges
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                from_kwctl_yaml(&e.request)
                    .map(|r| (r, e.response))
                    .with_context(|| {
                        format!("exchange #{}: cannot read the recorded request", i + 1)
                    })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Replay {
            exchanges,
            next: AtomicUsize::new(0),
        })
    }

    pub fn from_file(path: &Path) -> anyhow::Result<Replay> {
        Replay::new(load(path)?).with_context(|| format!("in session file {}", path.display()))
    }

    /// Exchanges not consumed yet.
    pub fn remaining(&self) -> usize {
        self.exchanges
            .len()
            .saturating_sub(self.next.load(Ordering::SeqCst))
    }
}

/// imagegate's own operations (`imagegate/v1/check_*`).
fn imagegate_own(request: &Request) -> bool {
    matches!(
        request,
        Request::VerifySignature(_) | Request::VerifyAttestation(_) | Request::VerifyNotation(_)
    )
}

impl Backend for Replay {
    fn answer(&self, request: &Request, _: Option<Instant>) -> Result<Vec<u8>, String> {
        // A kwctl session never holds imagegate's own operations: kwctl
        // answers them `unknown namespace: imagegate` before recording
        // anything. Replayed where the session holds none, they get that
        // answer, and the exchanges kwctl recorded follow.
        if imagegate_own(request) {
            let next = self.exchanges.get(self.next.load(Ordering::SeqCst));
            if !next.is_some_and(|(expected, _)| imagegate_own(expected)) {
                return Err("unknown namespace: imagegate".to_string());
            }
        }
        let index = self.next.fetch_add(1, Ordering::SeqCst);
        let Some((expected, response)) = self.exchanges.get(index) else {
            self.next.store(self.exchanges.len(), Ordering::SeqCst);
            return Err("the list of recorded responses is empty".into());
        };
        if expected != request {
            return Err(format!(
                "Replay error: unexpected request. Was expecting {expected:?}, got {request:?} instead"
            ));
        }
        match response {
            Response::Success { payload } => Ok(payload.clone().into_bytes()),
            Response::Error { message } => Err(message.clone()),
        }
    }

    fn finish(&self) -> anyhow::Result<()> {
        if self.remaining() > 0 {
            eprintln!(
                "warning: {} recorded exchange(s) have not been replayed",
                self.remaining()
            );
        }
        Ok(())
    }

    fn checkpoint(&self) -> usize {
        self.next.load(Ordering::SeqCst)
    }

    fn rewind(&self, checkpoint: usize) {
        self.next
            .store(checkpoint.min(self.exchanges.len()), Ordering::SeqCst);
    }
}

/// Forwards to another backend and writes every exchange to a session file
/// when the session ends.
pub struct Record {
    inner: Box<dyn Backend>,
    destination: PathBuf,
    exchanges: Mutex<Vec<anyhow::Result<Exchange>>>,
}

impl Record {
    pub fn new(inner: Box<dyn Backend>, destination: PathBuf) -> Record {
        Record {
            inner,
            destination,
            exchanges: Mutex::default(),
        }
    }
}

impl Backend for Record {
    fn answer(&self, request: &Request, deadline: Option<Instant>) -> Result<Vec<u8>, String> {
        let answer = self.inner.answer(request, deadline);
        lock(&self.exchanges).push(Exchange::new(request, &answer));
        answer
    }

    fn finish(&self) -> anyhow::Result<()> {
        self.inner.finish()?;
        let recorded = lock(&self.exchanges);
        let mut exchanges = Vec::with_capacity(recorded.len());
        for (i, e) in recorded.iter().enumerate() {
            match e {
                Ok(e) => exchanges.push(e.clone()),
                Err(err) => anyhow::bail!(
                    "cannot record the session: exchange #{} could not be captured: {err:#}",
                    i + 1
                ),
            }
        }
        std::fs::write(&self.destination, to_yaml(&exchanges)?)
            .with_context(|| format!("cannot write session file {}", self.destination.display()))
    }

    fn cache_stats(&self) -> Option<Arc<CacheStats>> {
        self.inner.cache_stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagegate_policy::wire::{GetResourceRequest, SigstoreVerifyRequest};

    /// The literal example of the reference (kwctl output, serde_yaml 0.9).
    const KWCTL_SESSION: &str = r#"- type: Exchange
  request: |
    !SigstorePubKeyVerify
    image: ghcr.io/kubewarden/test-verify-image-signatures:signed
    pub_keys:
    - |
      -----BEGIN PUBLIC KEY-----
      MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE
      -----END PUBLIC KEY-----
    annotations: null
  response:
    type: Success
    payload: '{"is_trusted":true,"digest":"sha256:1d9d3da4c60d27b77bb96bba738319c1c4424853fdd10f65982f9f2ca2422a72"}'
- type: Exchange
  request: |
    !OciManifestDigest
    image: ghcr.io/kubewarden/test-verify-image-signatures:unsigned
  response:
    type: Error
    message: 'no signatures found for image: ghcr.io/kubewarden/test-verify-image-signatures:unsigned '
- type: Exchange
  request: |
    !KubernetesGetResource
    api_version: v1
    kind: Namespace
    name: test-policy
    namespace: null
    disable_cache: false
  response:
    type: Success
    payload: '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"test-policy"}}'
"#;

    fn pubkey_request() -> Request {
        Request::Sigstore(SigstoreVerifyRequest::SigstorePubKeyVerify {
            image: "ghcr.io/kubewarden/test-verify-image-signatures:signed".into(),
            pub_keys: vec![
                "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"
                    .into(),
            ],
            annotations: None,
        })
    }

    #[test]
    fn reads_kwctl_sessions() {
        let ex = parse(KWCTL_SESSION).unwrap();
        assert_eq!(ex.len(), 3);
        let replay = Replay::new(ex).unwrap();
        assert!(replay
            .answer(&pubkey_request(), None)
            .unwrap()
            .starts_with(br#"{"is_trusted":true"#));
        let digest = Request::OciManifestDigest {
            image: "ghcr.io/kubewarden/test-verify-image-signatures:unsigned".into(),
        };
        assert_eq!(
            replay.answer(&digest, None),
            Err("no signatures found for image: ghcr.io/kubewarden/test-verify-image-signatures:unsigned ".into())
        );
        // An old file without `field_masks` still replays.
        let get = Request::KubernetesGetResource(GetResourceRequest {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            name: "test-policy".into(),
            namespace: None,
            disable_cache: false,
            field_masks: None,
        });
        assert!(replay.answer(&get, None).is_ok());
        assert_eq!(
            replay.answer(&get, None),
            Err("the list of recorded responses is empty".into())
        );
    }

    #[test]
    fn writes_kwctl_format() {
        let ex = vec![
            Exchange::new(
                &pubkey_request(),
                &Ok(br#"{"is_trusted":true,"digest":"sha256:1d9d3da4c60d27b77bb96bba738319c1c4424853fdd10f65982f9f2ca2422a72"}"#.to_vec()),
            )
            .unwrap(),
            Exchange::new(
                &Request::OciManifestDigest {
                    image: "ghcr.io/kubewarden/test-verify-image-signatures:unsigned".into(),
                },
                &Err("no signatures found for image: ghcr.io/kubewarden/test-verify-image-signatures:unsigned ".into()),
            )
            .unwrap(),
        ];
        let yaml = to_yaml(&ex).unwrap();
        // Identical to the first two exchanges of kwctl's file.
        let expected: String = KWCTL_SESSION
            .split("- type: Exchange\n")
            .take(3)
            .collect::<Vec<_>>()
            .join("- type: Exchange\n");
        assert_eq!(yaml, expected);
        assert_eq!(parse(&yaml).unwrap(), ex);
    }

    /// One request of every other kind, as serde_yaml wrote kwctl's
    /// `CallbackRequestType` (the file was recorded with the kwctl-shaped
    /// enum this crate used before): written identically, read back equal.
    #[test]
    fn every_request_kind_in_kwctl_format() {
        use crate::capabilities::request::ResourceAttributes;
        use crate::capabilities::request::{Certificate, CertificateEncoding};
        use imagegate_policy::wire::{
            AttestationVerifyRequest, KeylessInfo, KeylessPrefixInfo, ListResourcesRequest,
            NotarySigner, NotaryVerifyRequest, NotationAction, NotationPolicy, NotationStoreKind,
            NotationTrustStore, NotationVerifyRequest, Platforms, SignatureVerifyRequest,
            SignerIdentity, VerifyTimestamp,
        };
        let file = include_str!("../../tests/data/session/every-request.yml");
        let image = || "ghcr.io/a/b:1".to_string();
        let requests = [
            Request::OciManifest { image: image() },
            Request::OciManifestAndConfig { image: image() },
            Request::Sigstore(SigstoreVerifyRequest::SigstoreKeylessVerify {
                image: "i".into(),
                keyless: vec![KeylessInfo {
                    issuer: "https://iss".into(),
                    subject: "me@x".into(),
                }],
                annotations: Some([("env".to_string(), "prod".to_string())].into()),
            }),
            Request::Sigstore(SigstoreVerifyRequest::SigstoreKeylessPrefixVerify {
                image: "i".into(),
                keyless_prefix: vec![KeylessPrefixInfo {
                    issuer: "https://iss".into(),
                    url_prefix: "https://github.com/corp/".into(),
                }],
                annotations: None,
            }),
            Request::Sigstore(SigstoreVerifyRequest::SigstoreGithubActionsVerify {
                image: "i".into(),
                owner: "corp".into(),
                repo: Some("app".into()),
                annotations: None,
            }),
            Request::Sigstore(SigstoreVerifyRequest::SigstoreCertificateVerify {
                image: "i".into(),
                certificate: b"-----BEGIN".to_vec(),
                certificate_chain: Some(vec![b"AB".to_vec()]),
                require_rekor_bundle: true,
                annotations: None,
            }),
            Request::DNSLookupHost {
                host: "example.com".into(),
            },
            Request::KubernetesListResources(ListResourcesRequest {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                namespace: Some("ns".into()),
                label_selector: Some("a=b".into()),
                field_selector: None,
                field_masks: Some(vec!["metadata.name".into()]),
            }),
            Request::KubernetesListResources(ListResourcesRequest {
                api_version: "tmax.io/v1".into(),
                kind: "ClusterRegistrySecurityPolicy".into(),
                namespace: None,
                label_selector: None,
                field_selector: None,
                field_masks: None,
            }),
            Request::KubernetesGetResource(GetResourceRequest {
                api_version: "v1".into(),
                kind: "Secret".into(),
                name: "s".into(),
                namespace: Some("ns".into()),
                disable_cache: true,
                field_masks: None,
            }),
            Request::KubernetesCanI(CanIRequest {
                subject_access_review: SubjectAccessReview {
                    groups: Some(vec!["g".into()]),
                    resource_attributes: ResourceAttributes {
                        group: None,
                        name: None,
                        namespace: Some("ns".into()),
                        resource: "pods".into(),
                        subresource: None,
                        verb: "create".into(),
                        version: Some("v1".into()),
                    },
                    user: "u".into(),
                },
                disable_cache: false,
            }),
            Request::CryptoIsCertificateTrusted(CertificateTrustRequest {
                cert: Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: b"AB".to_vec(),
                },
                cert_chain: Some(vec![Certificate {
                    encoding: CertificateEncoding::Der,
                    data: vec![1, 2],
                }]),
                not_after: Some("2030-01-01T00:00:00Z".into()),
            }),
            Request::NotaryVerify(NotaryVerifyRequest {
                image: "127.0.0.1:5000/demo/alpine:1".into(),
                server: "https://127.0.0.1:4443".into(),
                signers: vec![NotarySigner {
                    role: "targets/jenkins".into(),
                    public_key: Some(
                        "-----BEGIN PUBLIC KEY-----\nAB\n-----END PUBLIC KEY-----\n".into(),
                    ),
                }],
                ca_cert: None,
                root_keys: Some(vec!["K".into()]),
            }),
            Request::VerifySignature(SignatureVerifyRequest {
                image: "127.0.0.1:5000/demo/app:1".into(),
                platforms: Platforms::All,
                identities: vec![
                    SignerIdentity::Key { pem: "K".into() },
                    SignerIdentity::GithubActions {
                        owner: "corp".into(),
                        repo: None,
                    },
                ],
                annotations: Some([("env".to_string(), "prod".to_string())].into()),
            }),
            Request::VerifyAttestation(AttestationVerifyRequest {
                image: "127.0.0.1:5000/demo/app:1".into(),
                platforms: Platforms::Index,
                predicate_type: "https://slsa.dev/provenance/v1".into(),
                identities: vec![SignerIdentity::Keyless {
                    issuer: "https://iss".into(),
                    subject: "me@x".into(),
                }],
            }),
            Request::VerifyNotation(NotationVerifyRequest {
                image: "127.0.0.1:5000/demo/app:1".into(),
                platforms: Platforms::Index,
                policy: NotationPolicy {
                    name: "e2e".into(),
                    level: "custom".into(),
                    authenticity: NotationAction::Enforce,
                    authentic_timestamp: NotationAction::Enforce,
                    expiry: NotationAction::Log,
                    revocation: NotationAction::Skip,
                    verify_timestamp: VerifyTimestamp::AfterCertExpiry,
                    trusted_identities: vec!["x509.subject: C=US, ST=WA, O=Notary".into()],
                    trust_stores: vec![NotationTrustStore {
                        kind: NotationStoreKind::Ca,
                        name: "e2e".into(),
                        certificates:
                            "-----BEGIN CERTIFICATE-----\nAB\n-----END CERTIFICATE-----\n".into(),
                    }],
                },
                user_metadata: [("env".to_string(), "prod".to_string())].into(),
            }),
        ];
        let exchanges: Vec<Exchange> = requests
            .iter()
            .map(|r| Exchange::new(r, &Ok(b"{}".to_vec())).unwrap())
            .collect();
        assert_eq!(to_yaml(&exchanges).unwrap(), file);
        let replay = Replay::new(parse(file).unwrap()).unwrap();
        for r in &requests {
            assert_eq!(replay.answer(r, None), Ok(b"{}".to_vec()), "{r:?}");
        }
    }

    #[test]
    fn kwctl_sessions_answer_imagegate_operations_as_kwctl_did() {
        use imagegate_policy::wire::SignatureVerifyRequest;
        let replay = Replay::new(parse(KWCTL_SESSION).unwrap()).unwrap();
        let own = Request::VerifySignature(SignatureVerifyRequest {
            image: "i".into(),
            platforms: Default::default(),
            identities: vec![],
            annotations: None,
        });
        assert_eq!(
            replay.answer(&own, None),
            Err("unknown namespace: imagegate".to_string())
        );
        assert_eq!(replay.remaining(), 3, "nothing consumed");
        replay.answer(&pubkey_request(), None).unwrap();
        // Recorded ones replay as recorded.
        let recorded =
            Replay::new(vec![Exchange::new(&own, &Ok(b"{}".to_vec())).unwrap()]).unwrap();
        assert_eq!(recorded.answer(&own, None), Ok(b"{}".to_vec()));
    }

    #[test]
    fn requests_in_serde_yaml_map_form_are_read_too() {
        let r = from_kwctl_yaml("OciManifestDigest:\n  image: busybox\n").unwrap();
        assert_eq!(
            r,
            Request::OciManifestDigest {
                image: "busybox".into()
            }
        );
        for bad in ["!Nope\nimage: x\n", "- a\n", "!OciManifestDigest\nimg: x\n"] {
            assert!(from_kwctl_yaml(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mismatch_is_reported_with_both_requests() {
        let replay = Replay::new(parse(KWCTL_SESSION).unwrap()).unwrap();
        let err = replay
            .answer(&Request::DNSLookupHost { host: "x".into() }, None)
            .unwrap_err();
        assert!(err.starts_with(
            "Replay error: unexpected request. Was expecting Sigstore(SigstorePubKeyVerify { image: \"ghcr.io/"
        ), "{err}");
        assert!(
            err.ends_with("got DNSLookupHost { host: \"x\" } instead"),
            "{err}"
        );
    }

    #[test]
    fn rewind_replays_again() {
        let replay = Replay::new(parse(KWCTL_SESSION).unwrap()).unwrap();
        let mark = replay.checkpoint();
        replay.answer(&pubkey_request(), None).unwrap();
        replay.rewind(mark);
        replay.answer(&pubkey_request(), None).unwrap();
        assert_eq!(replay.remaining(), 2);
    }

    #[test]
    fn record_writes_what_the_inner_backend_answered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session.yml");
        let inner = Replay::new(parse(KWCTL_SESSION).unwrap()).unwrap();
        let rec = Record::new(Box::new(inner), path.clone());
        rec.answer(&pubkey_request(), None).unwrap();
        rec.answer(&pubkey_request(), None).unwrap_err();
        rec.finish().unwrap();
        let written = load(&path).unwrap();
        assert_eq!(written.len(), 2);
        assert!(
            matches!(&written[1].response, Response::Error { message } if message.starts_with("Replay error"))
        );
    }
}
