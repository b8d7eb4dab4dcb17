//! A TCP link with a fixed one-way delay in front of a server on 127.0.0.1:
//! a registry a few milliseconds away, for load figures where round trips,
//! not the lab's CPU, set the pace (loopback has no latency to hide, and
//! `tc netem` needs privileges the tests do not have). Each chunk read is
//! written `delay` later, in order, so a round trip costs twice the delay
//! and concurrent connections overlap as they would over a real network.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::http::Server;
use tokio::time::Instant;

/// A running link. Stopped (with its connections) when dropped.
pub struct DelayedLink {
    /// `127.0.0.1:<port>`: where to connect instead of the server.
    pub addr: String,
    _server: Server,
}

impl DelayedLink {
    /// Forwards every connection to `upstream`, each direction `delay` late.
    pub fn start(upstream: &str, delay: Duration) -> DelayedLink {
        let upstream = upstream.to_string();
        let server = Server::accept(move |client| {
            let upstream = upstream.clone();
            async move {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::join!(
                    carry(client_read, server_write, delay),
                    carry(server_read, client_write, delay)
                );
            }
        });
        DelayedLink {
            addr: server.addr.clone(),
            _server: server,
        }
    }
}

/// Copies `from` to `to`, each chunk `delay` after it was read; the end of
/// `from` ends `to` once the chunks before it are written.
async fn carry(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let (queue, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let read = async move {
        let mut buf = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            if queue
                .send((Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
            {
                return;
            }
        }
    };
    let write = async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}
