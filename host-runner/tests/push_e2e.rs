//! End to end against a real docker-registry on 127.0.0.1: annotate, push,
//! check the manifest the registry stores, pull, compare bytes and digests.

mod guest;
mod serve_lab;
#[allow(dead_code)] // each test file uses part of the shared lab
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use guest::Behavior;
use support::registry::{Registry, Variant};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A test guest whose `validate` rejects: enough to annotate, push, pull and
/// run it.
fn write_guest(dir: &Path) {
    let reject = r#"{"accepted":false,"message":"rejected by the test guest","code":null,"mutated_object":null,"audit_annotations":null,"warnings":null}"#;
    guest::write(
        dir,
        "policy.wasm",
        &Behavior::Respond(reject.into()),
        &Behavior::Accept,
    );
}

fn imagegate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .args(args)
        // No credentials from the developer's own Docker config.
        .env("DOCKER_CONFIG", dir.join("docker"))
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "imagegate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// GET over plain HTTP/1.1: (headers lower-cased, body).
fn http_get(addr: &str, path: &str, accept: &str) -> (Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (headers, raw[split + 4..].to_vec())
}

fn repo_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

#[test]
fn push_then_pull_round_trips_the_policy() {
    let registry = Registry::start(Variant::Plain);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = |n: &str| d.join(n).to_str().unwrap().to_string();
    write_guest(d);
    std::fs::write(d.join("usage.md"), "# imagegate\n\nmulti-line usage\n").unwrap();
    let metadata = repo_file("metadata.yml");

    ok(imagegate(
        d,
        &[
            "annotate",
            "-m",
            metadata.to_str().unwrap(),
            "-u",
            &path("usage.md"),
            "-o",
            &path("annotated.wasm"),
            &path("policy.wasm"),
        ],
    ));
    let annotated = std::fs::read(d.join("annotated.wasm")).unwrap();

    let addr = &registry.addr;
    let destination = format!("registry://{addr}/policies/imagegate:v0.1.0");
    let out = ok(imagegate(
        d,
        &[
            "push",
            &path("annotated.wasm"),
            &destination,
            "--insecure-registry",
            addr,
            "-o",
            "json",
        ],
    ));
    let printed: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let immutable = printed["immutable_ref"].as_str().unwrap();

    // What the registry stores.
    let (headers, body) = http_get(
        addr,
        "/v2/policies/imagegate/manifests/v0.1.0",
        OCI_MANIFEST,
    );
    let digest = &headers
        .iter()
        .find(|(k, _)| k == "docker-content-digest")
        .unwrap()
        .1;
    assert_eq!(immutable, format!("{addr}/policies/imagegate@{digest}"));
    let manifest: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(manifest["mediaType"], OCI_MANIFEST);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v1+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.wasm.content.layer.v1+wasm"
    );
    assert_eq!(layers[0]["size"], annotated.len());
    let ann = manifest["annotations"].as_object().unwrap();
    assert_eq!(ann["io.kubewarden.policy.title"], "imagegate");
    assert_eq!(
        ann["io.kubewarden.policy.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        ann["org.opencontainers.image.source"],
        ann["io.kubewarden.policy.source"]
    );
    assert!(
        !ann.contains_key("io.kubewarden.policy.usage"),
        "multi-line annotation must be dropped"
    );

    // Pull by tag and by the printed digest: identical bytes.
    for source in [destination.clone(), format!("registry://{immutable}")] {
        let _ = std::fs::remove_file(d.join("pulled.wasm"));
        ok(imagegate(
            d,
            &[
                "pull",
                &source,
                "-o",
                &path("pulled.wasm"),
                "--insecure-registry",
                addr,
            ],
        ));
        assert_eq!(
            std::fs::read(d.join("pulled.wasm")).unwrap(),
            annotated,
            "{source}"
        );
    }

    // `run registry://` pulls the module and evaluates it.
    let out = ok(imagegate(
        d,
        &[
            "run",
            &format!("registry://{immutable}"),
            "--insecure-registry",
            addr,
            "-r",
            repo_file("examples/pod.json").to_str().unwrap(),
        ],
    ));
    let response: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(response["allowed"], false, "{out}");
    assert_eq!(response["status"]["message"], "rejected by the test guest");

    // `serve registry://` pulls it with the same code and serves it.
    let policy = format!("registry://{immutable}");
    let args = serve_lab::parse(&[
        "--policy",
        &policy,
        "--insecure-registry",
        addr,
        "--insecure-http",
        "--allow-empty-settings",
    ])
    .unwrap();
    let server = imagegate::cli::serve::start(&args).expect("serve pulls the module");
    let review = serve_lab::pod_review(
        "pulled",
        &["registry.corp.example/app:1"],
        serde_json::json!({}),
    );
    let url = format!("{}/validate", server.url());
    let (status, answer) = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(serve_lab::post(&reqwest::Client::new(), url, &review));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    assert_eq!(
        answer["response"]["status"]["message"], "rejected by the test guest",
        "{answer}"
    );
    drop(server);

    // Text output prints the same immutable reference.
    let text = ok(imagegate(
        d,
        &["push", &path("annotated.wasm"), &destination, "--insecure"],
    ));
    assert_eq!(text.trim(), immutable);
}

#[test]
fn a_plain_http_registry_without_insecure_registry_says_it_is_the_fix() {
    let registry = Registry::start(Variant::Plain);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let uri = format!("registry://{}/policies/imagegate:v0.1.0", registry.addr);
    let fix = format!(
        "{} does not speak TLS: if it is a plain-HTTP registry, pass `--insecure-registry {}`",
        registry.addr, registry.addr
    );
    for args in [
        vec!["pull", uri.as_str(), "-o", "x.wasm"],
        vec!["run", uri.as_str(), "-r", "pod.json"],
    ] {
        let out = imagegate(d, &args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&fix), "{args:?}: {stderr}");
    }
}

#[test]
fn push_refuses_an_unannotated_module() {
    let registry = Registry::start(Variant::Plain);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_guest(d);
    let out = imagegate(
        d,
        &[
            "push",
            d.join("policy.wasm").to_str().unwrap(),
            &format!("registry://{}/policies/imagegate:v0.1.0", registry.addr),
            "--insecure",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not annotated"));
    // Nothing was published.
    let mut s = TcpStream::connect(&registry.addr).unwrap();
    write!(
        s,
        "GET /v2/policies/imagegate/tags/list HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
}

/// Credentials come from the Docker config, as with kwctl; without them the
/// registry refuses the push.
#[test]
fn push_and_pull_use_docker_config_credentials() {
    use base64::Engine as _;
    let (user, pass) = ("ship", "s3cret-for-test");
    let registry = Registry::start(Variant::Htpasswd {
        user: user.into(),
        pass: pass.into(),
    });
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = |n: &str| d.join(n).to_str().unwrap().to_string();
    write_guest(d);
    let metadata = repo_file("metadata.yml");
    ok(imagegate(
        d,
        &[
            "annotate",
            "-m",
            metadata.to_str().unwrap(),
            "-o",
            &path("annotated.wasm"),
            &path("policy.wasm"),
        ],
    ));
    let addr = &registry.addr;
    let destination = format!("registry://{addr}/policies/imagegate:v0.1.0");
    let push = |d: &Path| {
        imagegate(
            d,
            &[
                "push",
                &path("annotated.wasm"),
                &destination,
                "--insecure-registry",
                addr,
            ],
        )
    };

    let anonymous = push(d);
    assert!(
        !anonymous.status.success(),
        "anonymous push must be refused"
    );

    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    std::fs::create_dir_all(d.join("docker")).unwrap();
    std::fs::write(
        d.join("docker/config.json"),
        serde_json::json!({"auths": {addr.as_str(): {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let immutable = ok(push(d));
    assert!(immutable
        .trim()
        .starts_with(&format!("{addr}/policies/imagegate@sha256:")));
    ok(imagegate(
        d,
        &[
            "pull",
            &destination,
            "-o",
            &path("pulled.wasm"),
            "--insecure",
        ],
    ));
    assert_eq!(
        std::fs::read(d.join("pulled.wasm")).unwrap(),
        std::fs::read(d.join("annotated.wasm")).unwrap()
    );
}
