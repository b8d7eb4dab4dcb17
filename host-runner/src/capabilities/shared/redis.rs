//! A small Redis client: RESP2 over TCP or TLS (rustls), `AUTH` and
//! `SELECT` on connect, a pool of idle connections.
//!
//! Why not the `redis` crate: with the features this needs (tokio, rustls,
//! a connection manager) it added 59 s wall / 101 s CPU to a cold build on
//! 2 cores (11 s for the crate alone) for four commands. This client also
//! bounds what it reads (a reply larger than [`MAX_BULK`] or deeper than one
//! array level is an error), which matters because the cache's threat model
//! includes whoever can write to Redis.
//!
//! Concurrency: the pool is locked only to take or return a connection. A
//! connection goes back only after a complete exchange, so a caller that
//! gives up mid-command (a timeout drops its future) drops the connection
//! instead of leaving half a reply for the next caller.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context as _};
use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufStream,
};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use crate::capabilities::lock;

/// Largest bulk string accepted in a reply (cache entries are far smaller).
pub const MAX_BULK: usize = 4 * 1024 * 1024;
/// Largest array accepted in a reply.
const MAX_ARRAY: usize = 64;
/// Idle connections kept.
const MAX_IDLE: usize = 16;

/// Where Redis is and how to log in: `redis://[user:password@]host:port[/db]`,
/// `rediss://` for TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    pub host: String,
    pub port: u16,
    pub db: u32,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: bool,
    /// PEM CA bundle trusted for `rediss://` (default: the webpki roots).
    pub ca: Option<PathBuf>,
}

impl RedisConfig {
    pub fn parse(text: &str) -> anyhow::Result<RedisConfig> {
        let url = url::Url::parse(text).with_context(|| format!("invalid Redis URL {text:?}"))?;
        let tls = match url.scheme() {
            "redis" => false,
            "rediss" => true,
            other => bail!("Redis URL {text:?}: scheme {other:?}: use redis:// or rediss://"),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .with_context(|| format!("Redis URL {text:?} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let db = match url.path().trim_start_matches('/') {
            "" => 0,
            db => db
                .parse()
                .with_context(|| format!("Redis URL {text:?}: database {db:?} is not a number"))?,
        };
        let decode = |s: &str| {
            percent_decode(s).with_context(|| format!("Redis URL {text:?}: bad %-encoding"))
        };
        Ok(RedisConfig {
            port: url.port().unwrap_or(6379),
            host,
            db,
            username: Some(url.username())
                .filter(|u| !u.is_empty())
                .map(decode)
                .transpose()?,
            password: url.password().map(decode).transpose()?,
            tls,
            ca: None,
        })
    }

    /// `redis://host:port/db` without credentials, for messages.
    pub fn display(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{host}:{}/{}", self.port, self.db)
    }
}

fn percent_decode(s: &str) -> anyhow::Result<String> {
    Ok(percent_encoding::percent_decode_str(s)
        .decode_utf8()?
        .into_owned())
}

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Nil,
    Status(String),
    Int(i64),
    Bulk(Vec<u8>),
    Array(Vec<Reply>),
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Conn = BufStream<Box<dyn Io>>;

pub struct Redis {
    config: RedisConfig,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    idle: Mutex<Vec<Conn>>,
}

impl Redis {
    /// Reads the CA file now; connects on first use.
    pub fn new(config: RedisConfig) -> anyhow::Result<Redis> {
        let tls = if config.tls {
            Some(tls_connector(&config)?)
        } else {
            None
        };
        Ok(Redis {
            config,
            tls,
            idle: Mutex::new(Vec::new()),
        })
    }

    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// A connection for a sequence of commands (`WATCH` ... `EXEC` need one).
    pub async fn session(&self) -> Result<Session<'_>, String> {
        let idle = lock(&self.idle).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        Ok(Session {
            redis: self,
            conn: Some(conn),
        })
    }

    /// One command on a pooled connection.
    pub async fn command(&self, args: &[&[u8]]) -> Result<Reply, String> {
        self.session().await?.command(args).await
    }

    async fn connect(&self) -> Result<Conn, String> {
        let address = (self.config.host.as_str(), self.config.port);
        let tcp = TcpStream::connect(address)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some((connector, name)) => Box::new(
                connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS handshake failed: {e}"))?,
            ),
        };
        let mut session = Session {
            redis: self,
            conn: Some(BufStream::new(io)),
        };
        if let Some(password) = &self.config.password {
            let mut auth: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &self.config.username {
                auth.push(user.as_bytes());
            }
            auth.push(password.as_bytes());
            session
                .command(&auth)
                .await
                .map_err(|e| format!("AUTH: {e}"))?;
        }
        if self.config.db != 0 {
            let db = self.config.db.to_string();
            session
                .command(&[b"SELECT", db.as_bytes()])
                .await
                .map_err(|e| format!("SELECT {db}: {e}"))?;
        }
        session
            .conn
            .take()
            .ok_or_else(|| "connection lost".to_string())
    }
}

/// A checked-out connection; returned to the pool when dropped after
/// complete exchanges only.
pub struct Session<'a> {
    redis: &'a Redis,
    conn: Option<Conn>,
}

impl Session<'_> {
    /// Sends one command and reads its reply; a Redis error reply is `Err`.
    pub async fn command(&mut self, args: &[&[u8]]) -> Result<Reply, String> {
        let result = self.exchange(args).await;
        if result.is_err() && self.conn.is_none() {
            // A transport failure: the idle connections (from before a
            // restart of Redis, say) are suspect too.
            lock(&self.redis.idle).clear();
        }
        result
    }

    async fn exchange(&mut self, args: &[&[u8]]) -> Result<Reply, String> {
        let mut conn = self.conn.take().ok_or("connection lost")?;
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        conn.write_all(&out)
            .await
            .map_err(|e| format!("write: {e}"))?;
        conn.flush().await.map_err(|e| format!("write: {e}"))?;
        let reply = read_reply(&mut conn, 0).await?;
        // A complete exchange: the connection can be reused.
        self.conn = Some(conn);
        reply
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut idle = lock(&self.redis.idle);
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
    }
}

/// Reads one reply. The outer `Result` is the transport (the connection is
/// unusable after it), the inner one a Redis error reply.
async fn read_reply(conn: &mut Conn, depth: usize) -> Result<Result<Reply, String>, String> {
    let line = read_line(conn).await?;
    let (kind, rest) = line.split_at(1);
    let number = || {
        rest.parse::<i64>()
            .map_err(|_| format!("malformed reply {line:?}"))
    };
    Ok(Ok(match kind {
        "+" => Reply::Status(rest.to_string()),
        "-" => return Ok(Err(rest.to_string())),
        ":" => Reply::Int(number()?),
        "$" => match number()? {
            -1 => Reply::Nil,
            n if n < 0 || n as usize > MAX_BULK => {
                return Err(format!("reply of {n} bytes refused (at most {MAX_BULK})"))
            }
            n => {
                let mut data = vec![0; n as usize + 2];
                conn.read_exact(&mut data)
                    .await
                    .map_err(|e| format!("read: {e}"))?;
                if !data.ends_with(b"\r\n") {
                    return Err("malformed bulk reply".to_string());
                }
                data.truncate(n as usize);
                Reply::Bulk(data)
            }
        },
        "*" => match number()? {
            -1 => Reply::Nil,
            n if n < 0 || n as usize > MAX_ARRAY || depth > 0 => {
                return Err(format!("array reply of {n} elements refused"))
            }
            n => {
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    // An error inside an array (EXEC) is kept as a status.
                    items.push(
                        Box::pin(read_reply(conn, depth + 1))
                            .await?
                            .unwrap_or_else(Reply::Status),
                    );
                }
                Reply::Array(items)
            }
        },
        _ => return Err(format!("malformed reply {line:?}")),
    }))
}

async fn read_line(conn: &mut Conn) -> Result<String, String> {
    let mut line = Vec::new();
    let n = (&mut *conn)
        .take(1024)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| format!("read: {e}"))?;
    if n == 0 {
        return Err("connection closed by the server".to_string());
    }
    if !line.ends_with(b"\r\n") || line.len() < 3 {
        return Err("malformed reply line".to_string());
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| "reply line is not UTF-8".to_string())
}

fn tls_connector(
    config: &RedisConfig,
) -> anyhow::Result<(
    tokio_rustls::TlsConnector,
    rustls::pki_types::ServerName<'static>,
)> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca {
        Some(path) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read Redis CA {}", path.display()))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.with_context(|| format!("invalid PEM in {}", path.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("unusable CA certificate in {}", path.display()))?;
            }
            if roots.is_empty() {
                bail!("no certificate in Redis CA {}", path.display());
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot set TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(config.host.clone())
        .with_context(|| format!("Redis host {:?} is not a TLS server name", config.host))?;
    Ok((tokio_rustls::TlsConnector::from(Arc::new(tls)), name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let c = RedisConfig::parse("redis://127.0.0.1:6380/2").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.db, c.tls),
            ("127.0.0.1", 6380, 2, false)
        );
        assert_eq!(c.password, None);
        let c = RedisConfig::parse("rediss://app:p%40ss@redis.corp:6379").unwrap();
        assert_eq!(c.username.as_deref(), Some("app"));
        assert_eq!(c.password.as_deref(), Some("p@ss"));
        assert!(c.tls);
        assert_eq!(c.display(), "rediss://redis.corp:6379/0");
        let c = RedisConfig::parse("redis://:secret@[::1]").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.username.as_deref()),
            ("::1", 6379, None)
        );
        assert_eq!(c.display(), "redis://[::1]:6379/0");
        for bad in ["http://h", "redis:///0", "redis://h/x", "nope"] {
            assert!(RedisConfig::parse(bad).is_err(), "{bad}");
        }
    }
}
