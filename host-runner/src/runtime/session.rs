//! kwctl-compatible record/replay of host-capability exchanges.
//!
//! The file is kwctl's exactly: a YAML sequence of
//! `{type: Exchange, request: "<YAML of the request with a !Variant tag>",
//! response: {type: Success, payload: '<json>'} | {type: Error, message: ...}}`,
//! so sessions recorded by `kwctl run --record-host-capabilities-interactions`
//! replay here and vice versa. Replay is FIFO with exact request equality.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::capabilities::cache::CacheStats;
use crate::capabilities::{lock, Backend, CallbackRequest};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Response {
    Success { payload: String },
    Error { message: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub struct Exchange {
    /// serde_yaml text of a [`CallbackRequest`].
    pub request: String,
    pub response: Response,
}

impl Exchange {
    pub fn new(
        request: &CallbackRequest,
        answer: &Result<Vec<u8>, String>,
    ) -> anyhow::Result<Self> {
        let request = serde_yaml::to_string(request)
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
    let exchanges: Option<Vec<Exchange>> = serde_yaml::from_str(text)?;
    Ok(exchanges.unwrap_or_default())
}

pub fn to_yaml(exchanges: &[Exchange]) -> anyhow::Result<String> {
    Ok(serde_yaml::to_string(exchanges)?)
}

/// Answers from a recorded session.
pub struct Replay {
    exchanges: Vec<(CallbackRequest, Response)>,
    next: AtomicUsize,
}

impl Replay {
    pub fn new(exchanges: Vec<Exchange>) -> anyhow::Result<Replay> {
        let exchanges = exchanges
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                serde_yaml::from_str::<CallbackRequest>(&e.request)
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

impl Backend for Replay {
    fn answer(&self, request: &CallbackRequest, _: Option<Instant>) -> Result<Vec<u8>, String> {
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
    fn answer(
        &self,
        request: &CallbackRequest,
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, String> {
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

    fn pubkey_request() -> CallbackRequest {
        CallbackRequest::SigstorePubKeyVerify {
            image: "ghcr.io/kubewarden/test-verify-image-signatures:signed".into(),
            pub_keys: vec![
                "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"
                    .into(),
            ],
            annotations: None,
        }
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
        let digest = CallbackRequest::OciManifestDigest {
            image: "ghcr.io/kubewarden/test-verify-image-signatures:unsigned".into(),
        };
        assert_eq!(
            replay.answer(&digest, None),
            Err("no signatures found for image: ghcr.io/kubewarden/test-verify-image-signatures:unsigned ".into())
        );
        // An old file without `field_masks` still replays.
        let get = CallbackRequest::KubernetesGetResource {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            name: "test-policy".into(),
            namespace: None,
            disable_cache: false,
            field_masks: None,
        };
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
                &CallbackRequest::OciManifestDigest {
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

    #[test]
    fn mismatch_is_reported_with_both_requests() {
        let replay = Replay::new(parse(KWCTL_SESSION).unwrap()).unwrap();
        let err = replay
            .answer(&CallbackRequest::DNSLookupHost { host: "x".into() }, None)
            .unwrap_err();
        assert!(err.starts_with(
            "Replay error: unexpected request. Was expecting SigstorePubKeyVerify { image: \"ghcr.io/"
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
