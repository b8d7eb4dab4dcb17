//! A throw-away Notary v1 lab for integration tests: a test CA, Debian's
//! `notary-signer` and `notary-server` (memory backends, TLS, loopback,
//! ephemeral ports) and the `notary` CLI to publish trust data. Everything
//! lives in a temp directory and both servers are killed on drop.
//!
//! Reusable by other tests (e.g. the module-level e2e through the wasm
//! policy): `NotaryLab::start()` -> `lab.url`, `lab.ca_pem`, then
//! `lab.publish(...)` and `lab.signer_pem(...)`.
#![allow(dead_code)] // each test binary uses a different part of the lab

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rcgen::{CertificateParams, DnType, KeyPair, PKCS_RSA_SHA256};

use super::certs::TestCa;
use super::daemon::Daemon;

/// Passphrases the `notary` CLI reads from the environment.
const PASSPHRASES: [(&str, &str); 4] = [
    ("NOTARY_ROOT_PASSPHRASE", "root-pass"),
    ("NOTARY_TARGETS_PASSPHRASE", "targets-pass"),
    ("NOTARY_SNAPSHOT_PASSPHRASE", "snapshot-pass"),
    ("NOTARY_DELEGATION_PASSPHRASE", "delegation-pass"),
];

/// A delegation signer the lab created: role `targets/<name>`.
pub struct LabSigner {
    pub name: String,
    /// What `notary delegation add` was given and settings pin
    /// (`PUBLIC KEY` for ECDSA signers, `CERTIFICATE` for RSA ones).
    pub public_pem: String,
}

pub struct NotaryLab {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// PEM of the CA that signed the server certificate.
    pub ca_pem: String,
    pub dir: tempfile::TempDir,
    server: Daemon,
    signer: Daemon,
    signers: Vec<LabSigner>,
}

/// Whether the Debian `notary` package is installed. Tests skip loudly
/// without it.
pub fn available() -> bool {
    super::installed(
        &["notary-server", "notary-signer", "notary"],
        "--help",
        "notary",
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

impl NotaryLab {
    /// Starts signer and server and waits until the server reports healthy
    /// (which includes its link to the signer).
    pub fn start() -> NotaryLab {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ca_pem = write_tls(d);
        let (signer_port, server_port) = (free_port(), free_port());
        let p = |name: &str| d.join(name).display().to_string();
        write(
            &d.join("signer.json"),
            &serde_json::json!({
                "server": {"grpc_addr": format!("127.0.0.1:{signer_port}"), "tls_cert_file": p("signer.crt"),
                           "tls_key_file": p("signer.key"), "client_ca_file": p("ca.crt")},
                "logging": {"level": "info"}, "storage": {"backend": "memory"}})
            .to_string(),
        );
        write(
            &d.join("server.json"),
            &serde_json::json!({
                "server": {"http_addr": format!("127.0.0.1:{server_port}"), "tls_cert_file": p("server.crt"),
                           "tls_key_file": p("server.key")},
                "trust_service": {"type": "remote", "hostname": "127.0.0.1", "port": signer_port.to_string(),
                                  "key_algorithm": "ecdsa", "tls_ca_file": p("ca.crt"),
                                  "tls_client_cert": p("server.crt"), "tls_client_key": p("server.key")},
                "storage": {"backend": "memory"}, "logging": {"level": "info"}})
            .to_string(),
        );
        let url = format!("https://127.0.0.1:{server_port}");
        write(
            &d.join("client.json"),
            &serde_json::json!({"trust_dir": p("trust"), "remote_server": {"url": url, "root_ca": p("ca.crt")}})
                .to_string(),
        );
        let mut lab = NotaryLab {
            url,
            ca_pem,
            signer: Daemon::default(),
            server: Daemon::default(),
            signers: Vec::new(),
            dir,
        };
        lab.signer = Daemon::new(lab.spawn("notary-signer", "signer.json"));
        // The server's health check polls the signer only periodically, so
        // wait for the signer itself before starting the server.
        lab.wait_until("notary-signer listening", || {
            std::net::TcpStream::connect(("127.0.0.1", signer_port)).is_ok()
        });
        lab.server = Daemon::new(lab.spawn("notary-server", "server.json"));
        lab.wait_healthy();
        lab
    }

    fn spawn(&self, bin: &str, config: &str) -> Child {
        let log = std::fs::File::create(self.dir.path().join(format!("{bin}.log"))).unwrap();
        Command::new(bin)
            .arg("-config")
            .arg(self.dir.path().join(config))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}"))
    }

    fn wait_healthy(&self) {
        let health = format!("{}/_notary_server/health", self.url);
        self.wait_until(&format!("notary-server healthy at {health}"), || {
            Command::new("curl")
                .args(["-sf", "-o", "/dev/null", "--cacert"])
                .arg(self.dir.path().join("ca.crt"))
                .arg(&health)
                .status()
                .is_ok_and(|s| s.success())
        });
    }

    fn wait_until(&self, what: &str, ready: impl Fn() -> bool) {
        let done = super::wait_until(Duration::from_secs(20), || ready().then_some(()));
        assert!(
            done.is_some(),
            "timed out waiting for {what}; logs: {}",
            self.logs()
        );
    }

    /// The process ids of notary-server and notary-signer while they run.
    pub fn pids(&self) -> Vec<u32> {
        [&self.server, &self.signer]
            .iter()
            .filter_map(|d| d.pid())
            .collect()
    }

    /// Both servers' logs (for failure messages).
    pub fn logs(&self) -> String {
        ["notary-signer", "notary-server"]
            .iter()
            .map(|b| {
                std::fs::read_to_string(self.dir.path().join(format!("{b}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Runs the `notary` CLI against this lab; panics with its output on failure.
    pub fn notary(&self, args: &[&str]) -> String {
        self.notary_with_input(args, "")
    }

    /// Like [`NotaryLab::notary`], answering prompts with `input`.
    pub fn notary_with_input(&self, args: &[&str], input: &str) -> String {
        let mut child = Command::new("notary")
            .arg("-c")
            .arg(self.dir.path().join("client.json"))
            .args(args)
            .envs(PASSPHRASES)
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "notary {args:?} failed: {text}\nserver logs:\n{}",
            self.logs()
        );
        text
    }

    /// Rotates the root key (new root signed by the old and the new key) and publishes.
    pub fn rotate_root(&self, gun: &str) {
        let out = self.notary_with_input(&["key", "rotate", gun, "root"], "yes\n");
        assert!(
            out.contains("Successfully rotated root key"),
            "root rotation: {out}"
        );
    }

    /// `notary init` + server-managed snapshot key (what `docker trust` does).
    pub fn init(&self, gun: &str) {
        self.notary(&["init", gun]);
        self.notary(&["key", "rotate", gun, "snapshot", "-r"]);
    }

    /// Creates signer `name` (ECDSA public key, or RSA certificate with
    /// `rsa`), imports its private key and delegates `targets/<role>` to it
    /// for each of `roles`.
    pub fn add_signer(&mut self, gun: &str, name: &str, rsa: bool, roles: &[&str]) -> String {
        let existing = self.signers.iter().position(|s| s.name == name);
        let index = match existing {
            Some(i) => i,
            None => {
                let signer = self.create_signer(name, rsa);
                self.signers.push(signer);
                self.signers.len() - 1
            }
        };
        let public = self.dir.path().join(format!("{name}.pub.pem"));
        for role in roles {
            self.notary(&[
                "delegation",
                "add",
                gun,
                &format!("targets/{role}"),
                public.to_str().unwrap(),
                "--all-paths",
            ]);
        }
        self.signers[index].public_pem.clone()
    }

    fn create_signer(&self, name: &str, rsa: bool) -> LabSigner {
        let key = if rsa {
            KeyPair::generate_for(&PKCS_RSA_SHA256).unwrap()
        } else {
            KeyPair::generate().unwrap()
        };
        let public_pem = if rsa {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.self_signed(&key).unwrap().pem()
        } else {
            key.public_key_pem()
        };
        let private: PathBuf = self.dir.path().join(format!("{name}.key"));
        write(&private, &key.serialize_pem());
        write(
            &self.dir.path().join(format!("{name}.pub.pem")),
            &public_pem,
        );
        self.notary(&["key", "import", private.to_str().unwrap(), "--role", name]);
        LabSigner {
            name: name.to_string(),
            public_pem,
        }
    }

    /// Signs `tag` -> (`sha256` hex, `length`) into the given roles
    /// (`[]` = top-level targets) and publishes.
    pub fn sign(&self, gun: &str, tag: &str, sha256_hex: &str, length: u64, roles: &[&str]) {
        let length = length.to_string();
        let mut args = vec!["addhash", gun, tag, &length, "--sha256", sha256_hex];
        let roles: Vec<String> = roles.iter().map(|r| format!("targets/{r}")).collect();
        for role in &roles {
            args.extend(["-r", role.as_str()]);
        }
        self.notary(&args);
        self.notary(&["publish", gun]);
    }

    /// Kills notary-server (the signer stays), e.g. to test an unreachable server.
    pub fn stop_server(&mut self) {
        self.server.stop();
    }
}

/// Writes ca.crt, server.{crt,key}, signer.{crt,key}; returns the CA PEM.
fn write_tls(d: &Path) -> String {
    let ca = TestCa::root("imagegate notary test CA");
    for name in ["server", "signer"] {
        let leaf = ca.server();
        write(&d.join(format!("{name}.crt")), &leaf.cert_pem);
        write(&d.join(format!("{name}.key")), &leaf.key.serialize_pem());
    }
    write(&d.join("ca.crt"), &ca.cert_pem);
    ca.cert_pem
}
