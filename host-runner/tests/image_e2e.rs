//! The container image (`make image-test`): `imagegate image` pushes the
//! static binary and the annotated module to a real docker-registry on
//! 127.0.0.1; the test pulls it back, checks the config (entrypoint, user,
//! annotations) and the layer, and runs the extracted binary: `--version`,
//! and `serve` with nothing but the image's CA bundle (and with none: a
//! clear error, not a panic).
//!
//! Ignored by default: it needs the static binary, a second cold build of
//! the whole dependency graph (`make image-test` builds it and sets
//! IMAGEGATE_STATIC_BINARY and IMAGEGATE_ANNOTATED_POLICY).

#[allow(dead_code)] // each test file uses part of the shared lab
mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use oci_client::manifest::{OciDescriptor, IMAGE_LAYER_GZIP_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE};
use serde_json::Value;
use support::registry::{Registry, Variant};

fn input(var: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{var} is not set: run `make image-test`"));
    assert!(path.is_file(), "{var}={} does not exist", path.display());
    path
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Where, below the image's root, `scaffold webhook`'s Deployment mounts the
/// settings (the image's default command reads them there).
const SETTINGS: &str = "etc/imagegate/settings/settings.yaml";

/// Starts the extracted binary's `serve` with only `env` and the settings
/// at [`SETTINGS`]; returns the child and its stderr up to the line that
/// says where it listens.
fn start_serve(root: &Path, env: &[(&str, &Path)]) -> (std::process::Child, String) {
    let mut command = Command::new(root.join("imagegate"));
    command
        .env_clear()
        .args(["serve", "--policy"])
        .arg(root.join("policy.wasm"))
        .arg("--settings-path")
        .arg(root.join(SETTINGS))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--insecure-http",
            "--disable-wasmtime-cache",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    // Up to the line that says where it listens (warnings may come first),
    // or all of it when serve exits.
    let mut line = String::new();
    while !line.contains("http://") && stderr.read_line(&mut line).unwrap() > 0 {}
    // Keep draining: serve must never see a closed stderr.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    (child, line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the static binary: make image-test"]
async fn the_image_pushes_pulls_and_runs() {
    let binary = input("IMAGEGATE_STATIC_BINARY");
    let policy = input("IMAGEGATE_ANNOTATED_POLICY");
    assert!(support::registry::available());
    let registry = Registry::start(Variant::Plain);
    let destination = format!("registry://{}", registry.image("imagegate", "test"));
    let out = Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .args(["image", "--binary"])
        .arg(&binary)
        .arg("--policy")
        .arg(&policy)
        .args(["--revision", "0123abcd", "--created", "1700000000"])
        .args(["--insecure-registry", &registry.addr, "-o", "json"])
        .arg(&destination)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pushed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let immutable = pushed["immutable_ref"].as_str().unwrap().to_string();
    assert!(
        immutable.starts_with(&format!("{}/imagegate@sha256:", registry.addr)),
        "{immutable}"
    );

    // Pull it back by digest, as a kubelet would.
    let client = registry.client();
    let reference: oci_client::Reference = immutable.parse().unwrap();
    let (manifest, digest, config) = client
        .pull_manifest_and_config(&reference, &registry.auth())
        .await
        .unwrap();
    assert_eq!(format!("{}/imagegate@{digest}", registry.addr), immutable);
    assert_eq!(manifest.media_type.as_deref(), Some(OCI_IMAGE_MEDIA_TYPE));
    let version = env!("CARGO_PKG_VERSION");
    let annotations = manifest.annotations.clone().unwrap();
    for (key, want) in [
        (
            "org.opencontainers.image.source",
            "https://github.com/imagegate/imagegate",
        ),
        ("org.opencontainers.image.version", version),
        ("org.opencontainers.image.revision", "0123abcd"),
        ("org.opencontainers.image.licenses", "Apache-2.0"),
        ("org.opencontainers.image.created", "2023-11-14T22:13:20Z"),
    ] {
        assert_eq!(
            annotations.get(key).map(String::as_str),
            Some(want),
            "{key}"
        );
    }
    let config: Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/imagegate"])
    );
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!([
            "serve",
            "--policy",
            "/policy.wasm",
            "--settings-path",
            "/etc/imagegate/settings/settings.yaml",
            "--addr",
            "0.0.0.0:8443",
            "--disable-wasmtime-cache"
        ])
    );
    assert_eq!(
        config["config"]["Env"],
        serde_json::json!(["SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"])
    );
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.revision"],
        "0123abcd"
    );

    // The one layer, unpacked as a runtime would.
    let [layer]: [OciDescriptor; 1] = manifest.layers.clone().try_into().unwrap();
    assert_eq!(layer.media_type, IMAGE_LAYER_GZIP_MEDIA_TYPE);
    let mut blob = Vec::new();
    client
        .pull_blob(&reference, &layer, &mut blob)
        .await
        .unwrap();
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(blob.as_slice())
        .read_to_end(&mut tar)
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    tar::Archive::new(tar.as_slice())
        .unpack(root.path())
        .unwrap();
    let root = root.path();
    // What the settings ConfigMap's mount would put there.
    std::fs::create_dir_all(root.join(SETTINGS).parent().unwrap()).unwrap();
    std::fs::write(root.join(SETTINGS), "rules: []\n").unwrap();
    assert_eq!(
        std::fs::read(root.join("policy.wasm")).unwrap(),
        std::fs::read(&policy).unwrap()
    );
    assert_eq!(
        std::fs::read(root.join("imagegate")).unwrap(),
        std::fs::read(&binary).unwrap()
    );
    assert!(!root.join("bin/sh").exists(), "no shell in the image");
    let bundle = root.join("etc/ssl/certs/ca-certificates.crt");
    assert!(text(&std::fs::read(&bundle).unwrap()).contains("BEGIN CERTIFICATE"));
    assert!(text(&std::fs::read(root.join("etc/passwd")).unwrap()).contains(":65532:65532:"));

    // The extracted binary runs with an empty environment.
    let out = Command::new(root.join("imagegate"))
        .env_clear()
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("imagegate {version}"));

    // serve starts with the image's CA bundle only, and answers /healthz.
    let (mut child, line) = start_serve(root, &[("SSL_CERT_FILE", &bundle)]);
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("serve did not start: {line}"))
        .to_string();
    let health = reqwest::Client::new()
        .get(format!("{url}/healthz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    child.kill().unwrap();
    child.wait().unwrap();

    // Without a CA bundle: a clear error and exit 1, not a panic (101).
    let (mut child, line) = start_serve(root, &[("SSL_CERT_FILE", Path::new("/dev/null"))]);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{line}");
    assert!(line.contains("no usable system CA certificates"), "{line}");
}
