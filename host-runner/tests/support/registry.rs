//! A real Debian `docker-registry` (distribution v2) on 127.0.0.1, started by
//! a test with its own config file (never `/etc/docker/registry`), an
//! ephemeral port and storage in a temp dir, and killed on drop.

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::certs;
use super::daemon::Daemon;
use super::token::{TokenService, ISSUER, SERVICE};

const BINARY: &str = "docker-registry";

/// The registry flavours of the e2e lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variant {
    /// Plain http, anonymous read and write.
    Plain,
    /// Plain http with htpasswd (bcrypt) basic auth.
    Htpasswd { user: String, pass: String },
    /// https with a certificate from a CA generated for this registry.
    Tls,
    /// Plain http with bearer-token auth from a [`TokenService`] (its realm
    /// and root bundle).
    Token { realm: String, root_bundle: PathBuf },
}

/// A running registry. Killed when dropped.
pub struct Registry {
    /// `127.0.0.1:<port>`, as it appears in image references.
    pub addr: String,
    pub variant: Variant,
    /// PEM of the CA that signed the TLS certificate (TLS variant only).
    pub ca_pem: Option<String>,
    /// The CA file (TLS variant only).
    pub ca_path: Option<PathBuf>,
    config: PathBuf,
    child: Daemon,
    dir: tempfile::TempDir,
}

/// Whether the registry binary is installed; tests skip loudly when not.
pub fn available() -> bool {
    super::installed(&[BINARY], "--version", "docker-registry")
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

fn htpasswd_line(user: &str, pass: &str) -> String {
    let hash = bcrypt::hash(pass, 5).expect("bcrypt");
    format!("{user}:{hash}\n")
}

impl Registry {
    /// Starts a registry of `variant` and waits until `/v2/` answers.
    pub fn start(variant: Variant) -> Registry {
        Registry::start_with(variant, false)
    }

    /// Like [`Registry::start`], with the access log on ([`Registry::requests`]).
    pub fn start_logged(variant: Variant) -> Registry {
        Registry::start_with(variant, true)
    }

    /// A registry whose pulls and pushes need a token from `tokens`, with
    /// the access log on.
    pub fn start_with_tokens(tokens: &TokenService) -> Registry {
        Registry::start_logged(Variant::Token {
            realm: tokens.realm.clone(),
            root_bundle: tokens.root_bundle.clone(),
        })
    }

    fn start_with(variant: Variant, access_log: bool) -> Registry {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let storage = dir.path().join("storage");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: {}\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n  secret: imagegate-test-not-secret\n",
            !access_log,
            storage.display()
        );
        let (mut ca_pem, mut ca_path) = (None, None);
        match &variant {
            Variant::Plain => {}
            Variant::Htpasswd { user, pass } => {
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, htpasswd_line(user, pass)).expect("write htpasswd");
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: imagegate-test\n    path: {}\n",
                    file.display()
                ));
            }
            Variant::Token { realm, root_bundle } => {
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: {realm}\n    service: {SERVICE}\n    \
                     issuer: {ISSUER}\n    rootcertbundle: {}\n",
                    root_bundle.display()
                ));
            }
            Variant::Tls => {
                let tls = certs::write_tls_files(dir.path());
                config.push_str(&format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    tls.cert.display(),
                    tls.key.display()
                ));
                ca_pem = Some(tls.ca_pem);
                ca_path = Some(tls.ca);
            }
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write registry config");
        let mut registry = Registry {
            addr,
            variant,
            ca_pem,
            ca_path,
            config: config_path,
            child: Daemon::default(),
            dir,
        };
        registry.spawn();
        registry
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("registry.log")).expect("log file");
        // The access log goes to stdout (appended across restarts).
        let access = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("access.log"))
            .expect("access log file");
        let child = Command::new(BINARY)
            .arg("serve")
            .arg(&self.config)
            .stdout(access)
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry");
        self.child = Daemon::new(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let ready = super::wait_until(Duration::from_secs(20), || {
            if self.answers() {
                return Some(());
            }
            if let Some(status) = self.child.exited() {
                panic!(
                    "docker-registry exited with {status} before listening on {}:\n{}",
                    self.addr,
                    self.log()
                );
            }
            None
        });
        assert!(
            ready.is_some(),
            "docker-registry on {} not ready:\n{}",
            self.addr,
            self.log()
        );
    }

    /// `/v2/` answers with an HTTP status (plain variants) or the TLS port
    /// accepts connections (TLS variant, where a raw socket cannot speak http).
    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(&self.addr) else {
            return false;
        };
        if self.variant == Variant::Tls {
            return true;
        }
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr);
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
    }

    /// The requests in the access log (`GET /v2/...`), in order; needs
    /// [`Registry::start_logged`].
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let request = line.split('"').nth(1)?;
                let mut parts = request.split(' ');
                let (method, path) = (parts.next()?, parts.next()?);
                path.starts_with("/v2/").then(|| format!("{method} {path}"))
            })
            .collect()
    }

    /// The registry's own log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The registry's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.pid()
    }

    /// Kills the registry; the port stops answering (the "registry down" case).
    pub fn stop(&mut self) {
        self.child.stop();
    }

    /// Starts it again on the same port with the same storage.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The registry's temp dir (for test files that should die with it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `addr/repo:tag`
    pub fn image(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.addr)
    }

    /// The credentials that push to this registry.
    pub fn auth(&self) -> RegistryAuth {
        match &self.variant {
            Variant::Htpasswd { user, pass } => RegistryAuth::Basic(user.clone(), pass.clone()),
            Variant::Plain | Variant::Tls | Variant::Token { .. } => RegistryAuth::Anonymous,
        }
    }

    /// An oci-client that trusts this registry (http, or https with its CA),
    /// used by the lab to push images and signatures.
    pub fn client(&self) -> oci_client::Client {
        let mut config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(vec![self.addr.clone()]),
            ..ClientConfig::default()
        };
        if let Some(pem) = &self.ca_pem {
            config.protocol = ClientProtocol::Https;
            config.extra_root_certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data: pem.clone().into_bytes(),
            });
        }
        oci_client::Client::try_from(config).expect("oci client")
    }
}
