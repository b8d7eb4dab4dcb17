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
//! logged and ignored. The TLS certificate is reloaded the same way
//! ([`tls`]). Connection limits, timeouts and the drain on SIGTERM are
//! [`listener`]'s.

pub mod imagereview;
pub mod listener;
pub mod metrics;
pub mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use imagegate_policy::settings::DEFAULT_BREAK_GLASS_ANNOTATION;
use serde_json::{json, Map, Value};
use tokio::sync::{oneshot, Semaphore};

use crate::capabilities::Capabilities;
use crate::runtime::admission::{self, AdmissionRequest, AdmissionResponse};
use crate::runtime::{HostCall, HostCallbacks, Policy, RuntimeConfig};
use imagereview::ImageReview;
use listener::{Activity, Busy, Handler, Limits};
use metrics::{Cut, Endpoint, Metrics, Outcome};
use tls::{Reload, Tls};

/// Default `--max-body`. The API server refuses request bodies over 3 MiB
/// and etcd objects over 1.5 MiB (protobuf, which JSON can double), and an
/// AdmissionReview of an UPDATE carries the object *and* oldObject, JSON
/// encoded, plus the request around them: 2 x 3 MiB + headroom.
pub const DEFAULT_MAX_BODY: usize = 8 * 1024 * 1024;

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
    /// How often the settings and certificate files are checked (`None` = never).
    pub reload_interval: Option<Duration>,
    pub limits: Limits,
    /// Largest request body accepted (`--max-body`).
    pub max_body: usize,
    /// Time to receive a whole request body (`--body-read-timeout`).
    pub body_timeout: Duration,
    /// Drain and return on SIGTERM or SIGINT (the CLI does; tests stop the
    /// server by dropping it).
    pub signals: bool,
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

/// Counts and times the guest's capability calls, then lets [`Capabilities`] answer.
struct Metered {
    inner: Arc<Capabilities>,
    metrics: Arc<Metrics>,
}

impl HostCallbacks for Metered {
    fn host_call(&self, call: &HostCall<'_>) -> Result<Vec<u8>, String> {
        let started = Instant::now();
        let result = self.inner.host_call(call);
        if call.namespace != "tracing" {
            self.metrics.capability_call(
                call.namespace,
                call.operation,
                result.is_ok(),
                started.elapsed(),
            );
        }
        result
    }
}

/// The settings file contents the reloads have read.
#[derive(Default)]
struct Seen {
    /// Last looked at (applied or refused), so a refused file is reported
    /// once, not at every check.
    decided: Option<Vec<u8>>,
    /// New content read once: applied only when the next check reads the
    /// same, so a file caught mid-write (truncated: fewer rules, or none) is
    /// never applied.
    pending: Option<Vec<u8>>,
}

/// Everything a request handler needs.
struct State {
    policy: Policy,
    capabilities: Arc<Capabilities>,
    metrics: Arc<Metrics>,
    settings: RwLock<Arc<Loaded>>,
    settings_path: Option<PathBuf>,
    /// What the settings file held at the last checks.
    seen: Mutex<Seen>,
    slots: Arc<Semaphore>,
    max_concurrency: u32,
    queue_timeout: Duration,
    next_uid: AtomicU64,
    tls: Option<Arc<Tls>>,
    max_body: usize,
    body_timeout: Duration,
    /// Set once the drain started: `/readyz` answers 503.
    draining: AtomicBool,
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
                let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                if seen.decided.is_some() {
                    eprintln!(
                        "imagegate serve: cannot read settings {}: {e}; keeping the settings in use",
                        path.display()
                    );
                    seen.decided = None;
                    self.metrics.reload(false, self.current().generation);
                }
                return;
            }
        };
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.decided.as_deref() == Some(bytes.as_slice()) {
                return;
            }
            if seen.pending.as_deref() != Some(bytes.as_slice()) {
                seen.pending = Some(bytes);
                return;
            }
            seen.pending = None;
            seen.decided = Some(bytes.clone());
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

    /// Re-reads the certificate pair; applies it when it changed and loads.
    fn reload_tls(&self) {
        let Some(tls) = &self.tls else {
            return;
        };
        match tls.reload() {
            Reload::Unchanged => {}
            Reload::Applied => {
                self.metrics.tls_reload(true);
                eprintln!("imagegate serve: TLS certificate reloaded");
            }
            Reload::Refused(e) => {
                self.metrics.tls_reload(false);
                eprintln!("imagegate serve: {e}; keeping the certificate in use");
            }
        }
    }

    /// Parses settings text and has the module validate it.
    fn check_settings(&self, path: &Path, bytes: &[u8]) -> anyhow::Result<Map<String, Value>> {
        let text = std::str::from_utf8(bytes)
            .with_context(|| format!("settings {} are not UTF-8", path.display()))?;
        let blank = |l: &str| l.trim().is_empty() || l.trim_start().starts_with('#');
        if text.lines().all(blank) {
            // `{}` would admit every image: an empty file is a mistake or a
            // file caught while it is rewritten, never settings to apply.
            anyhow::bail!(
                "settings {} are empty; every image would be admitted (run with --allow-empty-settings, \
                 without --settings-path, to try the server without settings)",
                path.display()
            );
        }
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

/// A running server; dropping it drains and stops it.
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
            Some((cert, key)) => Some(Arc::new(Tls::load(cert, key)?)),
            None => None,
        };
        let state = Arc::new(State {
            policy,
            capabilities,
            metrics,
            settings: RwLock::new(Arc::new(Loaded::new(Map::new(), 1))),
            settings_path: config.settings_path.clone(),
            seen: Mutex::default(),
            slots: Arc::new(Semaphore::new(config.max_concurrency as usize)),
            max_concurrency: config.max_concurrency,
            queue_timeout: config.queue_timeout,
            next_uid: AtomicU64::new(1),
            tls: tls.clone(),
            max_body: config.max_body,
            body_timeout: config.body_timeout,
            draining: AtomicBool::new(false),
        });
        if let Some(path) = &config.settings_path {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read settings {}", path.display()))?;
            let settings = state.check_settings(path, &bytes)?;
            *state.settings.write().unwrap_or_else(|p| p.into_inner()) =
                Arc::new(Loaded::new(settings, 1));
            state.seen.lock().unwrap_or_else(|p| p.into_inner()).decided = Some(bytes);
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
        let (reload_interval, limits, signals) = (
            config.reload_interval,
            config.limits.clone(),
            config.signals,
        );
        let has_tls = tls.is_some();
        let thread = std::thread::Builder::new()
            .name("imagegate-serve".into())
            .spawn(move || {
                // The last reference to the state (and the capability
                // backend's own runtime) must be dropped here, outside the
                // server runtime: tokio refuses to drop a runtime from
                // inside another one.
                let keep = state.clone();
                runtime.block_on(serve(
                    listener,
                    state,
                    limits,
                    reload_interval,
                    stop,
                    signals,
                ));
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

    /// Blocks until the server stops (after a drain on SIGTERM, when
    /// [`Config::signals`] is set).
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

/// SIGTERM (the kubelet, also when imagegate is PID 1, where a signal
/// without a handler is ignored) or SIGINT.
async fn termination() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            eprintln!("imagegate serve: {name}: draining (no new connections, finishing the requests in flight)");
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("imagegate serve: cannot handle SIGTERM/SIGINT ({e}); stop the process with SIGKILL");
            std::future::pending::<()>().await
        }
    }
}

/// The accept loop, plus the settings and certificate watcher.
async fn serve(
    listener: std::net::TcpListener,
    state: Arc<State>,
    limits: Limits,
    reload_interval: Option<Duration>,
    stop: oneshot::Receiver<()>,
    signals: bool,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("imagegate serve: cannot use the listener: {e}");
            return;
        }
    };
    if let Some(every) =
        reload_interval.filter(|_| state.settings_path.is_some() || state.tls.is_some())
    {
        let state = state.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let s = state.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || {
                    s.reload();
                    s.reload_tls();
                })
                .await
                {
                    eprintln!("imagegate serve: reload failed: {e}");
                }
            }
        });
    }
    let stop = {
        let state = state.clone();
        async move {
            if signals {
                tokio::select! {
                    _ = stop => {}
                    _ = termination() => {}
                }
            } else {
                let _ = stop.await;
            }
            state.draining.store(true, Ordering::Relaxed);
        }
    };
    let (tls, metrics) = (state.tls.clone(), state.metrics.clone());
    listener::run(listener, tls, limits, metrics, state, stop).await;
}

impl Handler for State {
    async fn handle(
        self: &Arc<Self>,
        request: Request<Incoming>,
        activity: Arc<Activity>,
    ) -> Response<Full<Bytes>> {
        let _busy = Busy::new(&activity);
        let mut response = route(self, request).await;
        if self.draining.load(Ordering::Relaxed) {
            // Not reused: the client's next request goes to another replica.
            response.headers_mut().insert(
                hyper::header::CONNECTION,
                hyper::header::HeaderValue::from_static("close"),
            );
        }
        response
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
        (&Method::GET, "/readyz") if state.draining.load(Ordering::Relaxed) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining: shutting down, finishing the requests in flight\n",
        ),
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
        (&Method::POST, "/validate") => match read_body(state, req).await {
            Ok(body) => admission_review(state, Endpoint::Validate, &body).await,
            Err(r) => *r,
        },
        (&Method::POST, "/mutate") => match read_body(state, req).await {
            Ok(body) => admission_review(state, Endpoint::Mutate, &body).await,
            Err(r) => *r,
        },
        (&Method::POST, "/imagereview") => match read_body(state, req).await {
            Ok(body) => image_review(state, &body).await,
            Err(r) => *r,
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

/// The whole body, within `--max-body` bytes and `--body-read-timeout`;
/// otherwise an answer saying which, and the connection is closed (its
/// unread rest cannot be skipped). The refusal is boxed: it is the rare path.
async fn read_body(
    state: &State,
    req: Request<Incoming>,
) -> Result<Bytes, Box<Response<Full<Bytes>>>> {
    let max = state.max_body;
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let refuse = |status: StatusCode, cut: Cut, message: String| {
        state.metrics.connection_cut(cut);
        let mut r = text(status, message);
        r.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
        Err(Box::new(r))
    };
    let too_large = || {
        format!("request body over {max} bytes (--max-body); an AdmissionReview is far smaller\n")
    };
    if declared.is_some_and(|n| n > max as u64) {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            Cut::BodyTooLarge,
            too_large(),
        );
    }
    match tokio::time::timeout(
        state.body_timeout,
        Limited::new(req.into_body(), max).collect(),
    )
    .await
    {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            Cut::BodyTooLarge,
            too_large(),
        ),
        Ok(Err(e)) => Err(Box::new(text(
            StatusCode::BAD_REQUEST,
            format!("cannot read the request body: {e}\n"),
        ))),
        Err(_) => refuse(
            StatusCode::REQUEST_TIMEOUT,
            Cut::Body,
            format!(
                "request body not received within {} ms (--body-read-timeout)\n",
                state.body_timeout.as_millis()
            ),
        ),
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
