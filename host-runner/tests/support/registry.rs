//! Minimal starter for a real `docker-registry` (Debian package) on
//! 127.0.0.1 with an ephemeral port, killed on drop.
//!
//! NOTE (ship branch): stop-gap until the oci branch's shared
//! `tests/support/registry.rs` lands (same `Registry::start(Variant::Plain)`
//! and `addr` API, so this file can simply be dropped for that one).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Plain http, anonymous or with htpasswd basic auth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variant {
    Plain,
    Htpasswd { user: String, pass: String },
}

pub struct Registry {
    child: Child,
    /// `127.0.0.1:port`
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Plain-HTTP registry with filesystem storage in a temporary directory.
    pub fn start(variant: Variant) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yml");
        let auth = match &variant {
            Variant::Plain => String::new(),
            Variant::Htpasswd { user, pass } => {
                // bcrypt (-B) is the only hash distribution accepts.
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, pass])
                    .output()
                    .expect("htpasswd (Debian package apache2-utils) must be installed");
                assert!(out.status.success());
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, out.stdout).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: imagegate-test\n    path: {}\n",
                    file.display()
                )
            }
        };
        std::fs::write(
            &config,
            auth + &format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:0\n  secret: test-only\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker-registry (Debian package docker-registry) must be installed");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Keep draining the log so the registry never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr = rest
                        .split(['"', ' '])
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let _ = tx.send(addr);
                }
            }
        });
        // A generous bound on startup, not a timing assertion.
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("docker-registry did not start");
        Registry {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
