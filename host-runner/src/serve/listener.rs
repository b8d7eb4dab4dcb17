//! Accepting and keeping connections: every limit of a connection (how many
//! at once, TLS handshake, request headers, idle keep-alive) and the drain on
//! shutdown. Request bodies and evaluations are bounded by the handler
//! ([`super`]: `--body-read-timeout`, `--max-body`, `--queue-timeout`,
//! `--timeout`), so no phase of a connection waits forever.
//!
//! * A connection over `--max-connections` is closed at once (counted in
//!   `imagegate_connections_rejected_total`): the API server retries, a
//!   flood does not take memory or file descriptors.
//! * Each connection has a watchdog: once it is idle (accepted, or its last
//!   answer given) it is closed after `--idle-timeout` unless a request
//!   starts; once a request's first byte arrives its headers must be
//!   complete within `--header-read-timeout`, however slowly they trickle
//!   in. A stalled client only ever holds its own connection, never a
//!   thread: others are served meanwhile.
//! * Drain: the accept loop stops, `/readyz` answers 503, every answer
//!   carries `Connection: close` (the client does not reuse the connection,
//!   it reconnects to another replica), connections idle for
//!   [`DRAIN_IDLE`] are closed, and the server returns once all are closed
//!   or `--shutdown-timeout` has passed. Idle connections are not closed the
//!   instant the drain starts: a client sending on one at that moment would
//!   lose its request (it cannot tell whether it was processed), which is
//!   the race that makes rolling updates drop webhook calls.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{watch, Notify, Semaphore};

use super::metrics::{Cut, Metrics};
use super::tls::Tls;
use crate::capabilities::lock;

/// How long a connection may stay idle once the drain started.
pub const DRAIN_IDLE: Duration = Duration::from_secs(1);

/// The connection limits (flags of `imagegate serve`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub tls_handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub shutdown_timeout: Duration,
}

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the next request.
    Idle,
    /// A request's first bytes came, its headers are not complete.
    Head,
    /// A request is being answered (bounded by the handler).
    Busy,
}

/// A connection's phase and since when, watched by its watchdog.
pub struct Activity {
    phase: Mutex<(Phase, Instant)>,
    changed: Notify,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            phase: Mutex::new((Phase::Idle, Instant::now())),
            changed: Notify::new(),
        })
    }

    fn set(&self, phase: Phase) {
        *lock(&self.phase) = (phase, Instant::now());
        self.changed.notify_waiters();
    }

    fn bytes_arrived(&self) {
        let mut current = lock(&self.phase);
        if current.0 == Phase::Idle {
            *current = (Phase::Head, Instant::now());
        }
    }

    fn get(&self) -> (Phase, Instant) {
        *lock(&self.phase)
    }

    /// Resolves when the connection overstayed its phase.
    async fn overstayed(&self, limits: &Limits, draining: bool) -> Cut {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (phase, since) = self.get();
            let (limit, cut) = match phase {
                Phase::Busy => {
                    changed.await;
                    continue;
                }
                Phase::Idle if draining => (limits.idle_timeout.min(DRAIN_IDLE), Cut::Idle),
                Phase::Idle => (limits.idle_timeout, Cut::Idle),
                Phase::Head => (limits.header_read_timeout, Cut::Headers),
            };
            tokio::select! {
                _ = tokio::time::sleep_until((since + limit).into()) => {
                    if self.get() == (phase, since) {
                        return cut;
                    }
                }
                _ = changed => {}
            }
        }
    }
}

/// Marks the connection busy while a request is answered.
pub struct Busy(Arc<Activity>);

impl Busy {
    pub fn new(activity: &Arc<Activity>) -> Busy {
        activity.set(Phase::Busy);
        Busy(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.set(Phase::Idle);
    }
}

/// An IO stream that tells its [`Activity`] when bytes arrive.
struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What a connection needs from the server.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        self: &Arc<Self>,
        request: Request<Incoming>,
        activity: Arc<Activity>,
    ) -> impl Future<Output = hyper::Response<http_body_util::Full<bytes::Bytes>>> + Send;
}

/// Accepts until `stop` fires, then drains.
pub async fn run<H: Handler>(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<Tls>>,
    limits: Limits,
    metrics: Arc<Metrics>,
    handler: Arc<H>,
    stop: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (drain, draining) = watch::channel(false);
    let saturated = AtomicBool::new(false);
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    eprintln!("imagegate serve: accept failed: {e}");
                    // e.g. out of file descriptors: do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.connection_cut(Cut::TooMany);
            if !saturated.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "imagegate serve: {} connections open (--max-connections): closing new ones until some end",
                    limits.max_connections
                );
            }
            drop(stream);
            continue;
        };
        saturated.store(false, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let connection = serve_connection(
            stream,
            tls.clone(),
            limits.clone(),
            metrics.clone(),
            handler.clone(),
            draining.clone(),
        );
        tokio::spawn(async move {
            let _slot = slot;
            connection.await;
        });
    }
    drop(listener);
    let _ = drain.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.shutdown_timeout, slots.acquire_many(all))
        .await
        .is_err()
    {
        eprintln!(
            "imagegate serve: {} connection(s) still open after --shutdown-timeout {} s; exiting",
            limits.max_connections - slots.available_permits(),
            limits.shutdown_timeout.as_secs_f64()
        );
    }
}

async fn serve_connection<H: Handler>(
    stream: tokio::net::TcpStream,
    tls: Option<Arc<Tls>>,
    limits: Limits,
    metrics: Arc<Metrics>,
    handler: Arc<H>,
    mut draining: watch::Receiver<bool>,
) {
    let _open = metrics.connection_open();
    let activity = Activity::new();
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request| {
            let (handler, activity) = (handler.clone(), activity.clone());
            async move { Ok::<_, std::convert::Infallible>(handler.handle(request, activity).await) }
        })
    };
    let http = hyper::server::conn::http1::Builder::new();
    let result = match tls {
        None => {
            let io = TokioIo::new(Watched {
                inner: stream,
                activity: activity.clone(),
            });
            let connection = http.serve_connection(io, service);
            supervise(connection, &activity, &limits, &metrics, &mut draining).await
        }
        Some(tls) => {
            let handshake = tls.acceptor().accept(stream);
            let stream = match tokio::time::timeout(limits.tls_handshake_timeout, handshake).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(_)) => {
                    metrics.connection_cut(Cut::Handshake);
                    return;
                }
                Err(_) => {
                    metrics.connection_cut(Cut::HandshakeTimeout);
                    return;
                }
            };
            let io = TokioIo::new(Watched {
                inner: stream,
                activity: activity.clone(),
            });
            let connection = http.serve_connection(io, service);
            supervise(connection, &activity, &limits, &metrics, &mut draining).await
        }
    };
    if let Err(e) = result {
        if !e.is_incomplete_message() {
            eprintln!("imagegate serve: connection error: {e}");
        }
    }
}

/// Runs a connection under its watchdog and the drain signal.
async fn supervise<C>(
    connection: C,
    activity: &Activity,
    limits: &Limits,
    metrics: &Metrics,
    draining: &mut watch::Receiver<bool>,
) -> hyper::Result<()>
where
    C: Future<Output = hyper::Result<()>>,
{
    tokio::pin!(connection);
    let mut drained = *draining.borrow();
    loop {
        tokio::select! {
            result = connection.as_mut() => return result,
            cut = activity.overstayed(limits, drained) => {
                if !drained {
                    metrics.connection_cut(cut);
                }
                return Ok(());
            }
            changed = draining.changed(), if !drained => {
                drained = changed.is_err() || *draining.borrow();
            }
        }
    }
}
