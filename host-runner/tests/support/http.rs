//! A small HTTP/1.1 server on 127.0.0.1 for the lab's own services (the
//! referrers front, the token service; [`Server::accept`] for any TCP
//! service, the delayed link): its own thread and runtime, so a
//! test of any flavour can hold one, stopped when dropped.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// What a handler answers.
pub type Reply = Response<Full<Bytes>>;

/// A running server. Stopped when dropped.
pub struct Server {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves every request with `handler` on an ephemeral port.
    pub fn start<H, F>(handler: H) -> Server
    where
        H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
        F: Future<Output = Reply> + Send + 'static,
    {
        let handler = Arc::new(handler);
        Server::accept(move |stream| {
            let handler = handler.clone();
            async move {
                let service = hyper::service::service_fn(move |req| {
                    let answer = handler(req);
                    async move { Ok::<_, Infallible>(answer.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        })
    }

    /// Hands every connection to `connection` (as a task), whatever it
    /// speaks, on an ephemeral port.
    pub fn accept<C, F>(connection: C) -> Server
    where
        C: Fn(TcpStream) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr").to_string();
        let (stop, mut stopped) = oneshot::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    tokio::select! {
                        accepted = listener.accept() => if let Ok((stream, _)) = accepted {
                            tokio::spawn(connection(stream));
                        },
                        _ = &mut stopped => return,
                    }
                }
            });
        });
        Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A response with `status`, `headers` and `body`.
pub fn reply(status: StatusCode, headers: &[(&str, String)], body: Vec<u8>) -> Reply {
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(*name, value);
    }
    response
        .body(Full::new(Bytes::from(body)))
        .expect("response")
}
