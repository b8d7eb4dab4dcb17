//! The policy as an HTTPS admission webhook (AdmissionReview at `/validate`
//! for a ValidatingWebhookConfiguration, at `/mutate` for a
//! MutatingWebhookConfiguration) and ImagePolicyWebhook backend (ImageReview
//! at `/imagereview`), with every host capability.
//!
//! The API server refuses a validating webhook's response that carries a
//! patch (and with `failurePolicy: Fail` denies the request with a message
//! about the webhook). So `/validate` never patches: a response that would
//! pin images is a denial naming the pins. Behind imagegate's mutating
//! webhook (reinvoked when a later webhook changes the object) the object
//! arrives pinned, nothing is left to pin and `/validate` admits it; without
//! it, admitting the unpinned object would drop what the settings ask for
//! (and, with `onDigestMismatch: rewrite`, admit a digest nobody signed).
//!
//! Evaluation follows policy-server: the module is compiled once and every
//! request gets a fresh instance, on a blocking thread (the guest and the
//! capability calls it makes block; the async runtime only does HTTP). A
//! semaphore bounds concurrent evaluations; a request that cannot get a
//! slot within `--queue-timeout` is denied with a message saying the server
//! is busy (fail closed, never a silent admission). The settings file is
//! re-read every `--reload-interval`; a changed file is validated by the
//! module before it replaces the settings in use, and an invalid one is
//! logged and ignored.

pub mod imagereview;
pub mod metrics;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use imagegate_policy::settings::DEFAULT_BREAK_GLASS_ANNOTATION;
use serde_json::{json, Map, Value};
use tokio::sync::{oneshot, Semaphore};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use crate::capabilities::Capabilities;
use crate::runtime::admission::{self, AdmissionRequest, AdmissionResponse};
use crate::runtime::{HostCall, HostCallbacks, Policy, RuntimeConfig};
use imagereview::ImageReview;
use metrics::{Endpoint, Metrics, Outcome};

/// The API server sends at most 3 MiB; anything larger is not a review.
const MAX_BODY: usize = 3 * 1024 * 1024;

/// How the server runs; built from `imagegate serve`'s flags.
#[derive(Debug, Clone)]
pub struct Config {
    /// The policy module, for messages.
    pub policy_name: String,
    /// Settings file, re-read every `reload_interval` when it changes.
    pub settings_path: Option<PathBuf>,
    /// Address to listen on (port 0 = any free port).
    pub addr: SocketAddr,
    /// Certificate chain and key (PEM); `None` = plain HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Evaluations running at once; more requests wait for a slot.
    pub max_concurrency: u32,
    /// How long a request waits for a slot before it is denied as busy.
    pub queue_timeout: Duration,
    /// How often the settings file is checked (`None` = never).
    pub reload_interval: Option<Duration>,
    pub runtime: RuntimeConfig,
}

/// Settings in use, with what the endpoints derive from them.
struct Loaded {
    settings: Map<String, Value>,
    generation: u64,
    /// The key break-glass is read from; `None` when the settings have no
    /// `breakGlass` (ImageReview break-glass is then not honored).
    break_glass_annotation: Option<String>,
}

impl Loaded {
    fn new(settings: Map<String, Value>, generation: u64) -> Loaded {
        let break_glass_annotation = settings.get("breakGlass").map(|bg| {
            bg.get("annotation")
                .and_then(Value::as_str)
                .unwrap_or(DEFAULT_BREAK_GLASS_ANNOTATION)
                .to_string()
        });
        Loaded {
            settings,
            generation,
            break_glass_annotation,
        }
    }
}

/// Counts the guest's capability calls, then lets [`Capabilities`] answer.
struct Metered {
    inner: Arc<Capabilities>,
    metrics: Arc<Metrics>,
}

impl HostCallbacks for Metered {
    fn host_call(&self, call: &HostCall<'_>) -> Result<Vec<u8>, String> {
        let result = self.inner.host_call(call);
        if call.namespace != "tracing" {
            self.metrics
                .capability_call(call.namespace, call.operation, result.is_ok());
        }
        result
    }
}

/// Everything a request handler needs.
struct State {
    policy: Policy,
    capabilities: Arc<Capabilities>,
    metrics: Arc<Metrics>,
    settings: RwLock<Arc<Loaded>>,
    settings_path: Option<PathBuf>,
    /// The settings file content last looked at (applied or refused), so a
    /// refused file is reported once, not at every check.
    last_seen: Mutex<Option<Vec<u8>>>,
    slots: Arc<Semaphore>,
    max_concurrency: u32,
    queue_timeout: Duration,
    next_uid: AtomicU64,
}

impl State {
    fn current(&self) -> Arc<Loaded> {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Runs one review: waits for a slot, evaluates on a blocking thread
    /// with a fresh instance, counts the outcome.
    async fn evaluate(
        self: &Arc<Self>,
        endpoint: Endpoint,
        request: AdmissionRequest,
        loaded: Arc<Loaded>,
    ) -> AdmissionResponse {
        let started = Instant::now();
        let _in_flight = self.metrics.in_flight();
        let uid = request.uid.clone();
        let permit = tokio::time::timeout(self.queue_timeout, self.slots.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok);
        let (response, outcome) = match permit {
            None => (
                AdmissionResponse::reject(
                    &uid,
                    format!(
                        "imagegate: server busy: all {} evaluation slots stayed taken for {} ms; the request was not evaluated, retry",
                        self.max_concurrency,
                        self.queue_timeout.as_millis()
                    ),
                    503,
                ),
                Outcome::Busy,
            ),
            Some(permit) => {
                let state = self.clone();
                let evaluated = tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    let mut policy = &state.policy;
                    admission::validate(&mut policy, &request, &loaded.settings)
                })
                .await;
                match evaluated {
                    Ok(response) => {
                        let response = match endpoint {
                            Endpoint::Validate => without_mutation(response),
                            Endpoint::Mutate | Endpoint::ImageReview => response,
                        };
                        let outcome = classify(&response);
                        (response, outcome)
                    }
                    Err(e) => (
                        AdmissionResponse::internal_server_error(
                            &uid,
                            format!("the evaluation thread failed: {e}"),
                        ),
                        Outcome::Error,
                    ),
                }
            }
        };
        self.metrics.observe(endpoint, outcome, started.elapsed());
        response
    }

    /// Re-reads the settings file; applies it when it changed and is valid.
    /// Blocking (file read, guest call): run off the async runtime.
    fn reload(&self) {
        let Some(path) = &self.settings_path else {
            return;
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                let mut last = self.last_seen.lock().unwrap_or_else(|p| p.into_inner());
                if last.is_some() {
                    eprintln!(
                        "imagegate serve: cannot read settings {}: {e}; keeping the settings in use",
                        path.display()
                    );
                    *last = None;
                    self.metrics.reload(false, self.current().generation);
                }
                return;
            }
        };
        {
            let mut last = self.last_seen.lock().unwrap_or_else(|p| p.into_inner());
            if last.as_deref() == Some(bytes.as_slice()) {
                return;
            }
            *last = Some(bytes.clone());
        }
        let generation = self.current().generation;
        match self.check_settings(path, &bytes) {
            Ok(settings) => {
                let loaded = Arc::new(Loaded::new(settings, generation + 1));
                *self.settings.write().unwrap_or_else(|p| p.into_inner()) = loaded;
                self.metrics.reload(true, generation + 1);
                eprintln!(
                    "imagegate serve: settings {} reloaded (generation {})",
                    path.display(),
                    generation + 1
                );
            }
            Err(e) => {
                self.metrics.reload(false, generation);
                eprintln!(
                    "imagegate serve: {e:#}; keeping the settings in use (generation {generation})"
                );
            }
        }
    }

    /// Parses settings text and has the module validate it.
    fn check_settings(&self, path: &Path, bytes: &[u8]) -> anyhow::Result<Map<String, Value>> {
        let text = std::str::from_utf8(bytes)
            .with_context(|| format!("settings {} are not UTF-8", path.display()))?;
        let settings = admission::parse_settings(text)
            .with_context(|| format!("in settings {}", path.display()))?;
        let mut policy = &self.policy;
        let verdict = admission::validate_settings(&mut policy, &settings);
        if !verdict.valid {
            anyhow::bail!(
                "settings {} are not valid: {}",
                path.display(),
                verdict.message.unwrap_or_default()
            );
        }
        Ok(settings)
    }
}

/// `/validate`'s answer for a response that would pin images (module docs).
fn without_mutation(response: AdmissionResponse) -> AdmissionResponse {
    if !response.allowed || response.patch.is_none() {
        return response;
    }
    let pins = match response.decoded_patch() {
        Ok(Some(Value::Array(ops))) => ops
            .iter()
            .map(|op| {
                format!(
                    "{} -> {}",
                    op["path"].as_str().unwrap_or("?"),
                    op["value"].as_str().unwrap_or("?")
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => "an unreadable patch".to_string(),
    };
    AdmissionResponse {
        warnings: response.warnings,
        ..AdmissionResponse::reject(
            &response.uid,
            format!(
                "imagegate: the policy pins images ({pins}), which a validating webhook cannot do: \
                 imagegate's MutatingWebhookConfiguration (`imagegate serve` at /mutate, written by \
                 `imagegate scaffold webhook`) must pin them first"
            ),
            403,
        )
    }
}

fn classify(response: &AdmissionResponse) -> Outcome {
    let code = response.status.as_ref().and_then(|s| s.code);
    match (response.allowed, &response.patch, code) {
        (true, Some(_), _) => Outcome::Mutated,
        (true, None, _) => Outcome::Allowed,
        (false, _, Some(500)) => Outcome::Error,
        (false, _, _) => Outcome::Denied,
    }
}

/// A running server; dropping it stops it.
pub struct Server {
    addr: SocketAddr,
    tls: bool,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Compiles the module, loads the settings (both must be valid), binds,
    /// and serves on a background thread.
    pub fn start(
        config: &Config,
        wasm: &[u8],
        capabilities: Arc<Capabilities>,
    ) -> anyhow::Result<Server> {
        let metrics = Arc::new(Metrics::default());
        let policy = Policy::new(
            wasm,
            config.runtime.clone(),
            Arc::new(Metered {
                inner: capabilities.clone(),
                metrics: metrics.clone(),
            }),
        )
        .with_context(|| format!("cannot load policy module {}", config.policy_name))?;
        let tls = match &config.tls {
            Some((cert, key)) => Some(tls_acceptor(cert, key)?),
            None => None,
        };
        let state = Arc::new(State {
            policy,
            capabilities,
            metrics,
            settings: RwLock::new(Arc::new(Loaded::new(Map::new(), 1))),
            settings_path: config.settings_path.clone(),
            last_seen: Mutex::new(None),
            slots: Arc::new(Semaphore::new(config.max_concurrency as usize)),
            max_concurrency: config.max_concurrency,
            queue_timeout: config.queue_timeout,
            next_uid: AtomicU64::new(1),
        });
        if let Some(path) = &config.settings_path {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read settings {}", path.display()))?;
            let settings = state.check_settings(path, &bytes)?;
            *state.settings.write().unwrap_or_else(|p| p.into_inner()) =
                Arc::new(Loaded::new(settings, 1));
            *state.last_seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(bytes);
        }
        state.metrics.set_generation(1);

        let listener = std::net::TcpListener::bind(config.addr)
            .with_context(|| format!("cannot listen on {}", config.addr))?;
        listener
            .set_nonblocking(true)
            .context("cannot make the listener non-blocking")?;
        let addr = listener.local_addr().context("no local address")?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(config.max_concurrency as usize + 4)
            .thread_name("imagegate-serve")
            .enable_all()
            .build()
            .context("cannot start the server runtime")?;
        let (shutdown, stop) = oneshot::channel();
        let reload_interval = config.reload_interval;
        let has_tls = tls.is_some();
        let thread = std::thread::Builder::new()
            .name("imagegate-serve".into())
            .spawn(move || {
                // The last reference to the state (and the capability
                // backend's own runtime) must be dropped here, outside the
                // server runtime: tokio refuses to drop a runtime from
                // inside another one.
                let keep = state.clone();
                runtime.block_on(serve(listener, tls, state, reload_interval, stop));
                drop(runtime);
                drop(keep);
            })
            .context("cannot start the server thread")?;
        Ok(Server {
            addr,
            tls: has_tls,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` (or `http://` with `--insecure-http`).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Blocks until the server stops (it does not, unless it fails).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The accept loop, plus the settings watcher.
async fn serve(
    listener: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    state: Arc<State>,
    reload_interval: Option<Duration>,
    mut stop: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("imagegate serve: cannot use the listener: {e}");
            return;
        }
    };
    if let (Some(every), Some(_)) = (reload_interval, &state.settings_path) {
        let state = state.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let s = state.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || s.reload()).await {
                    eprintln!("imagegate serve: settings reload failed: {e}");
                }
            }
        });
    }
    loop {
        let (stream, _peer) = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("imagegate serve: accept failed: {e}");
                    continue;
                }
            },
        };
        let state = state.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, req).await) }
            });
            let http = hyper::server::conn::http1::Builder::new();
            let served = match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(s) => http.serve_connection(TokioIo::new(s), service).await,
                    Err(e) => {
                        eprintln!("imagegate serve: TLS handshake failed: {e}");
                        return;
                    }
                },
                None => http.serve_connection(TokioIo::new(stream), service).await,
            };
            if let Err(e) = served {
                if !e.is_incomplete_message() {
                    eprintln!("imagegate serve: connection error: {e}");
                }
            }
        });
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.into())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json_response(value: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(value.to_string())));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn route(state: &Arc<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => text(
            StatusCode::OK,
            format!("ready: settings generation {}\n", state.current().generation),
        ),
        (&Method::GET, "/metrics") => {
            let cache = state.capabilities.cache_stats();
            let mut r = text(StatusCode::OK, state.metrics.render(cache.as_deref()));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        (&Method::POST, "/validate") => match read_body(req).await {
            Ok(body) => admission_review(state, Endpoint::Validate, &body).await,
            Err(r) => r,
        },
        (&Method::POST, "/mutate") => match read_body(req).await {
            Ok(body) => admission_review(state, Endpoint::Mutate, &body).await,
            Err(r) => r,
        },
        (&Method::POST, "/imagereview") => match read_body(req).await {
            Ok(body) => image_review(state, &body).await,
            Err(r) => r,
        },
        (_, "/healthz" | "/readyz" | "/metrics" | "/validate" | "/mutate" | "/imagereview") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: POST /validate and /mutate (AdmissionReview), POST /imagereview (ImageReview), GET /readyz, /healthz, /metrics\n",
        ),
    }
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, Response<Full<Bytes>>> {
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => Err(text(
            StatusCode::BAD_REQUEST,
            format!("cannot read the request body (at most {MAX_BODY} bytes): {e}\n"),
        )),
    }
}

fn bad_request(state: &State, endpoint: Endpoint, message: String) -> Response<Full<Bytes>> {
    state
        .metrics
        .observe(endpoint, Outcome::BadRequest, Duration::ZERO);
    text(StatusCode::BAD_REQUEST, format!("{message}\n"))
}

/// AdmissionReview in, AdmissionReview out (same apiVersion).
async fn admission_review(
    state: &Arc<State>,
    endpoint: Endpoint,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let review: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return bad_request(state, endpoint, format!("not JSON: {e}")),
    };
    if review.get("kind").and_then(Value::as_str) != Some("AdmissionReview") {
        return bad_request(
            state,
            endpoint,
            "expected an AdmissionReview (kind: AdmissionReview)".into(),
        );
    }
    let api_version = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("admission.k8s.io/v1")
        .to_string();
    let request = match review
        .get("request")
        .cloned()
        .map(admission::request_from_value)
    {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            return bad_request(
                state,
                endpoint,
                format!("invalid AdmissionReview request: {e}"),
            )
        }
        None => return bad_request(state, endpoint, "AdmissionReview has no `request`".into()),
    };
    let loaded = state.current();
    let response = state.evaluate(endpoint, request, loaded).await;
    json_response(&json!({
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "response": response,
    }))
}

/// ImageReview in, ImageReview out.
async fn image_review(state: &Arc<State>, body: &[u8]) -> Response<Full<Bytes>> {
    let review = match ImageReview::parse(body) {
        Ok(r) => r,
        Err(e) => return bad_request(state, Endpoint::ImageReview, e),
    };
    let loaded = state.current();
    let uid = format!(
        "imagereview-{}",
        state.next_uid.fetch_add(1, Ordering::Relaxed)
    );
    let request = review.to_admission_request(uid, loaded.break_glass_annotation.as_deref());
    let break_glass_ignored =
        review.break_glass_requested() && loaded.break_glass_annotation.is_none();
    let response = state.evaluate(Endpoint::ImageReview, request, loaded).await;
    json_response(&imagereview::answer(&imagereview::status(
        &review,
        &response,
        break_glass_ignored,
    )))
}

/// TLS from PEM files (rustls, aws-lc-rs provider, HTTP/1.1 via ALPN).
fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert_pem = std::fs::read(cert)
        .with_context(|| format!("cannot read TLS certificate {}", cert.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("invalid PEM in TLS certificate {}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("no certificate in {}", cert.display());
    }
    let key_pem =
        std::fs::read(key).with_context(|| format!("cannot read TLS key {}", key.display()))?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
        .with_context(|| format!("no usable private key in {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot set TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .with_context(|| {
            format!(
                "TLS certificate {} and key {} do not work together",
                cert.display(),
                key.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::admission::AdmissionResponseStatus;
    use std::collections::BTreeMap;

    #[test]
    fn outcomes() {
        let mut r = AdmissionResponse {
            allowed: true,
            ..Default::default()
        };
        assert_eq!(classify(&r), Outcome::Allowed);
        r.patch = Some("W10=".into());
        assert_eq!(classify(&r), Outcome::Mutated);
        let r = AdmissionResponse::reject("u", "no".into(), 403);
        assert_eq!(classify(&r), Outcome::Denied);
        let r = AdmissionResponse::internal_server_error("u", "trap");
        assert_eq!(classify(&r), Outcome::Error);
        let r = AdmissionResponse {
            status: Some(AdmissionResponseStatus::default()),
            ..Default::default()
        };
        assert_eq!(classify(&r), Outcome::Denied);
    }

    #[test]
    fn validate_turns_pins_into_a_denial() {
        let allowed = AdmissionResponse {
            uid: "u".into(),
            allowed: true,
            warnings: Some(vec!["w".into()]),
            ..Default::default()
        };
        assert_eq!(without_mutation(allowed.clone()), allowed);
        let pinned = AdmissionResponse {
            patch_type: Some("JSONPatch".into()),
            // [{"op":"replace","path":"/spec/containers/0/image","value":"a@sha256:1"}]
            patch: Some("W3sib3AiOiJyZXBsYWNlIiwicGF0aCI6Ii9zcGVjL2NvbnRhaW5lcnMvMC9pbWFnZSIsInZhbHVlIjoiYUBzaGEyNTY6MSJ9XQ==".into()),
            audit_annotations: Some(BTreeMap::from([("pinned-images".into(), "a".into())])),
            ..allowed
        };
        let denied = without_mutation(pinned);
        assert!(!denied.allowed);
        assert_eq!(denied.patch, None);
        assert_eq!(denied.audit_annotations, None);
        assert_eq!(denied.warnings, Some(vec!["w".into()]));
        let status = denied.status.unwrap();
        assert_eq!(status.code, Some(403));
        assert!(status.message.unwrap().starts_with(
            "imagegate: the policy pins images (/spec/containers/0/image -> a@sha256:1), which a validating webhook cannot do"
        ));
    }

    #[test]
    fn break_glass_key_comes_from_the_settings() {
        let s = |v: Value| v.as_object().cloned().unwrap();
        assert_eq!(Loaded::new(Map::new(), 1).break_glass_annotation, None);
        assert_eq!(
            Loaded::new(s(json!({"breakGlass": {}})), 1)
                .break_glass_annotation
                .as_deref(),
            Some(DEFAULT_BREAK_GLASS_ANNOTATION)
        );
        assert_eq!(
            Loaded::new(s(json!({"breakGlass": {"annotation": "corp/override"}})), 1)
                .break_glass_annotation
                .as_deref(),
            Some("corp/override")
        );
    }
}
