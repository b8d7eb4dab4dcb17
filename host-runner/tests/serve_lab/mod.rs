//! Shared by the `imagegate serve` tests: a test CA and server certificate
//! (rcgen), a server started in-process on 127.0.0.1:0 (stopped on drop), an
//! HTTPS client trusting only the test CA, and review documents.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use imagegate::cli::serve::{start, Args as ServeArgs};
use imagegate::serve::Server;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::{json, Value};

/// The policy module: `$IMAGEGATE_POLICY` (set by `make e2e`), else the
/// repository's `policy.wasm` (`make policy.wasm`).
pub fn policy_path() -> PathBuf {
    imagegate_policy::testing::policy_wasm()
}

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/serve")
        .join(name)
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

/// `imagegate serve --addr 127.0.0.1:0 ARGS...` parsed.
pub fn parse(args: &[&str]) -> Result<ServeArgs, clap::Error> {
    let argv = ["serve", "--addr", "127.0.0.1:0"].iter().chain(args);
    Cli::try_parse_from(argv).map(|c| c.serve)
}

/// Why `imagegate serve ARGS...` does not start.
pub fn start_error(args: &[&str]) -> String {
    match start(&parse(args).unwrap()) {
        Ok(_) => panic!("the server started with {args:?}"),
        Err(e) => format!("{e:#}"),
    }
}

/// A temp dir with a CA, a server certificate for 127.0.0.1, and the key.
pub struct Tls {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Tls {
    pub fn new() -> Tls {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "imagegate test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server_params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        let server_cert = server_params.signed_by(&server_key, &ca).unwrap();
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        std::fs::write(&cert, server_cert.pem()).unwrap();
        std::fs::write(&key, server_key.serialize_pem()).unwrap();
        Tls {
            ca_pem: ca.pem(),
            dir,
            cert,
            key,
        }
    }

    /// A client that trusts the test CA and nothing else.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap()])
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap()
    }

    /// `imagegate serve --tls-cert --tls-key --addr 127.0.0.1:0 ARGS...`.
    pub fn start(&self, args: &[&str]) -> Server {
        let mut argv: Vec<String> = vec![
            "serve".into(),
            "--addr".into(),
            "127.0.0.1:0".into(),
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
        ];
        if !args.contains(&"--policy") {
            argv.push("--policy".into());
            argv.push(policy_path().display().to_string());
        }
        argv.extend(args.iter().map(|a| a.to_string()));
        let cli = Cli::try_parse_from(&argv).unwrap();
        start(&cli.serve).unwrap()
    }
}

/// An AdmissionReview for a Pod CREATE with these images.
pub fn pod_review(uid: &str, images: &[&str], annotations: Value) -> Value {
    imagegate_policy::testing::Request::pod(images)
        .uid(uid)
        .annotations(annotations)
        .review()
}

/// An ImageReview as the API server's ImagePolicyWebhook sends it.
pub fn image_review(images: &[&str], annotations: Value, namespace: &str) -> Value {
    let containers: Vec<Value> = images.iter().map(|i| json!({"image": i})).collect();
    json!({
        "apiVersion": "imagepolicy.k8s.io/v1alpha1",
        "kind": "ImageReview",
        "spec": {"containers": containers, "annotations": annotations, "namespace": namespace}
    })
}

pub async fn post(client: &reqwest::Client, url: String, body: &Value) -> (u16, Value) {
    let r = client.post(url).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

pub async fn get(client: &reqwest::Client, url: String) -> (u16, String) {
    let r = client.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Polls `url` until its body contains `needle` (a reload or a request in
/// progress becoming visible); fails after a generous bound.
/// Connection errors (a certificate not rotated yet) count as "not yet".
pub async fn wait_for(client: &reqwest::Client, url: String, needle: &str) -> String {
    for _ in 0..600 {
        if let Ok(r) = client.get(url.clone()).send().await {
            let body = r.text().await.unwrap_or_default();
            if body.contains(needle) {
                return body;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never showed {needle:?}");
}

/// `imagegate serve` as its own process (as deployed): the binary of
/// `$IMAGEGATE_BIN` (`make load` sets the release build), else the one cargo
/// built for these tests. Killed on drop; [`Process::terminate`] sends
/// SIGTERM and waits.
pub struct Process {
    child: Option<std::process::Child>,
    pub url: String,
    log: PathBuf,
}

impl Process {
    /// Starts `imagegate serve --addr 127.0.0.1:0` with the test module, the
    /// certificate of `tls` and ARGS, stderr in `log`, and waits for the line
    /// that names its URL.
    pub fn start(tls: &Tls, args: &[&str], log: PathBuf) -> Process {
        let bin = std::env::var_os("IMAGEGATE_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_imagegate")));
        let stderr = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(&bin)
            .args(["serve", "--addr", "127.0.0.1:0", "--policy"])
            .arg(policy_path())
            .arg("--tls-cert")
            .arg(&tls.cert)
            .arg("--tls-key")
            .arg(&tls.key)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut process = Process {
            child: Some(child),
            url: String::new(),
            log,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let text = process.log();
            if let Some(url) = text
                .split_once("listening on ")
                .and_then(|(_, rest)| rest.split_whitespace().next())
            {
                process.url = url.to_string();
                return process;
            }
            if let Some(status) = process.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("imagegate serve exited with {status}:\n{text}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "imagegate serve did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the server wrote on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, std::process::Child::id)
    }

    /// SIGTERM, then the exit status (what a kubelet does on a rolling update).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
        child.wait().unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A raw connection to a server (plain TCP or TLS trusting `ca_pem`), for
/// tests that must control every byte: stalls, keep-alive reuse.
pub struct Raw {
    stream: Box<dyn RawIo>,
}

pub trait RawIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> RawIo for T {}

impl Raw {
    pub async fn plain(addr: std::net::SocketAddr) -> Raw {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        Raw {
            stream: Box::new(stream),
        }
    }

    /// A TLS connection trusting only `ca_pem`; `Err` when the handshake fails.
    pub async fn tls(addr: std::net::SocketAddr, ca_pem: &str) -> Result<Raw, String> {
        use tokio_rustls::rustls;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Raw {
            stream: Box::new(stream),
        })
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt as _;
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// One POST of `body` to `path`, keeping the connection open.
    pub async fn post(&mut self, path: &str, body: &Value) -> (u16, Value) {
        let body = body.to_string();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.send(format!("{head}{body}").as_bytes()).await;
        self.response().await
    }

    /// One GET, keeping the connection open; the body as text.
    pub async fn post_get(&mut self, path: &str) -> (u16, String) {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await;
        let (status, body) = self.response().await;
        (
            status,
            body.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| body.to_string()),
        )
    }

    /// Reads one response (Content-Length bodies, as the server sends).
    pub async fn response(&mut self) -> (u16, Value) {
        use tokio::io::AsyncReadExt as _;
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if buffer.len() >= end + 4 + length {
                    let status = head[9..12].parse().unwrap();
                    let body = &buffer[end + 4..end + 4 + length];
                    let value = serde_json::from_slice(body)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into()));
                    return (status, value);
                }
            }
            let n = self.stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before a response");
            buffer.extend_from_slice(&chunk[..n]);
        }
    }

    /// Waits (at most `within`) for the server to close the connection,
    /// reading and discarding what it sends first (e.g. a 408); `true`
    /// when it did.
    pub async fn closed_by_server(&mut self, within: Duration) -> bool {
        use tokio::io::AsyncReadExt as _;
        let mut chunk = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}
