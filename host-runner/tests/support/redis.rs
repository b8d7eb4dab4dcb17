//! A real Debian `redis-server` on 127.0.0.1, started by a test with its own
//! config on the command line (no `/etc/redis`), an ephemeral port, a
//! password, and its files in a temp dir; stopped and started again on the
//! same port by the outage tests; killed on drop.

#![allow(dead_code)] // the serve tests use it; other test binaries load the lab without it

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use super::daemon::Daemon;

const BINARY: &str = "redis-server";
pub const PASSWORD: &str = "imagegate-test-password";

pub struct Redis {
    pub port: u16,
    child: Daemon,
    dir: tempfile::TempDir,
}

/// Whether redis-server is installed (required under `make test`).
pub fn available() -> bool {
    super::installed(&[BINARY], "--version", "redis-server")
}

impl Redis {
    pub fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut redis = Redis {
            port,
            child: Daemon::default(),
            dir: tempfile::tempdir().expect("temp dir"),
        };
        redis.spawn();
        redis
    }

    /// `redis://:password@127.0.0.1:port/0`.
    pub fn url(&self) -> String {
        format!("redis://:{PASSWORD}@127.0.0.1:{}/0", self.port)
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("redis.log")).expect("log");
        let child = Command::new(BINARY)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--requirepass",
                PASSWORD,
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn redis-server");
        self.child = Daemon::new(child);
        let ready = super::wait_until(Duration::from_secs(20), || {
            (self.command(&["PING"]).as_deref() == Some("+PONG")).then_some(())
        });
        assert!(ready.is_some(), "redis-server not ready: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        self.child.stop();
    }

    /// Starts again on the same port, empty (no persistence): the outage
    /// case, where the shared cache comes back without its entries.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// One command (authenticated) with simple arguments; the first reply
    /// line, `None` when redis does not answer. For tests to look at and
    /// tamper with what imagegate stored.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        self.command_bytes(&args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>())
    }

    pub fn command_bytes(&self, args: &[&[u8]]) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut out = Vec::new();
        for command in [&[b"AUTH".as_slice(), PASSWORD.as_bytes()][..], args] {
            out.extend_from_slice(format!("*{}\r\n", command.len()).as_bytes());
            for a in command {
                out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                out.extend_from_slice(a);
                out.extend_from_slice(b"\r\n");
            }
        }
        stream.write_all(&out).ok()?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).ok()?; // AUTH's +OK (or -NOAUTH while starting)
        line.clear();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end().to_string();
        if let Some(n) = line.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
            let mut value = vec![0; n];
            reader.read_exact(&mut value).ok()?;
            return Some(String::from_utf8_lossy(&value).into_owned());
        }
        Some(line)
    }

    /// Polls until Redis holds `n` keys matching `pattern` (the cache
    /// writes in the background).
    pub fn wait_for_keys(&self, pattern: &str, n: usize) -> Vec<String> {
        super::wait_until(Duration::from_secs(20), || {
            Some(self.keys(pattern)).filter(|keys| keys.len() >= n)
        })
        .unwrap_or_else(|| {
            let keys = self.keys(pattern);
            panic!("redis never held {n} keys {pattern}: {keys:?}")
        })
    }

    /// Every key matching `pattern`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let command = format!(
            "*2\r\n$4\r\nAUTH\r\n${}\r\n{PASSWORD}\r\n*2\r\n$4\r\nKEYS\r\n${}\r\n{pattern}\r\n",
            PASSWORD.len(),
            pattern.len()
        );
        stream.write_all(command.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        line.clear();
        reader.read_line(&mut line).unwrap();
        let n: usize = line.trim_end().trim_start_matches('*').parse().unwrap();
        (0..n)
            .map(|_| {
                line.clear();
                reader.read_line(&mut line).unwrap(); // $len
                line.clear();
                reader.read_line(&mut line).unwrap();
                line.trim_end().to_string()
            })
            .collect()
    }
}
