//! End to end THROUGH THE WASM MODULE: each case runs the real `imagegate run`
//! binary with the built policy module, live capabilities and a real
//! `docker-registry` / notary-server of the test lab (tests/support), and
//! checks the printed AdmissionResponse: allowed, the denial message naming
//! the rule, the check and the cause, and the JSONPatch pinning the digest.
//!
//! It also records the offline fixtures `fixtures/recorded-*`
//! (`make record-fixtures` runs the ignored [`record_fixtures_into_the_suite`]);
//! [`recording_again_gives_sessions_of_the_committed_shape`] re-records them
//! into a temp dir, replays them offline with `imagegate test` and checks they
//! have the shape of the committed set (ports and keys differ per run).
//!
//! The module: `$IMAGEGATE_POLICY`, else `<workspace>/policy.wasm`
//! (`make policy.wasm`). Skips (loudly) only when docker-registry (or, for
//! the Notary cases, notary-server) is not installed.

#[allow(dead_code)]
mod support;

use support::notary as notary_lab;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use base64::Engine as _;
use imagegate::cli::args::EvalArgs;
use imagegate::runtime::admission;
use imagegate_policy::testing::{self, Request};
use serde_json::{json, Value};
use support::bundle::{self as bundles, Signer, Statement};
use support::cosign::{sign, CosignKey, SignOptions};
use support::image::{Format, Image};
use support::notation::{self as notation_lab, Claims, NotationSigner, Subject};
use support::registry::{self, Registry, Variant};
use support::sigstore::{FakeSigstore, Identity};

/// Starts a registry, or skips the test (loudly) when the binary is missing.
macro_rules! registry_or_skip {
    ($variant:expr) => {{
        if !registry::available() {
            return;
        }
        Registry::start($variant)
    }};
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host-runner is inside the workspace")
        .to_path_buf()
}

/// The policy module under test; a clear failure when it was not built.
fn policy() -> PathBuf {
    testing::policy_wasm()
}

/// A Pod CREATE with one container `app` running `image` (the recorded
/// fixtures' request).
fn pod_request(image: &str) -> Value {
    Request::pod_with(vec![json!({"name": "app", "image": image})])
        .uid("e2e00000-0000-4000-8000-000000000001")
        .into_json()
}

/// The printed AdmissionResponse, decoded.
#[derive(Debug)]
struct Decision {
    allowed: bool,
    message: String,
    /// The decoded JSONPatch (empty without one).
    patch: Vec<Value>,
}

impl Decision {
    fn parse(stdout: &str) -> Decision {
        let response: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {stdout}"));
        let patch = match response["patch"].as_str() {
            Some(b64) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .expect("patch is base64");
                serde_json::from_slice(&bytes).expect("patch is a JSON array")
            }
            None => Vec::new(),
        };
        Decision {
            allowed: response["allowed"].as_bool().expect("allowed"),
            message: response["status"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            patch,
        }
    }

    /// Allowed, and the one container's image replaced by `pinned`.
    fn assert_pinned(&self, pinned: &str) {
        assert!(self.allowed, "expected allowed: {self:?}");
        assert_eq!(
            self.patch,
            vec![json!({"op": "replace", "path": "/spec/containers/0/image", "value": pinned})],
            "{self:?}"
        );
    }

    /// Denied, with every `needle` in the message.
    fn assert_denied(&self, needles: &[&str]) {
        assert!(!self.allowed, "expected denied: {self:?}");
        assert!(self.patch.is_empty(), "a denial has no patch: {self:?}");
        for needle in needles {
            assert!(
                self.message.contains(needle),
                "message lacks {needle:?}: {}",
                self.message
            );
        }
    }
}

/// One `imagegate run` (or `bench`) of the module: settings and request are
/// written into `dir` (as a fixture's settings.yaml / request.yaml).
/// The evaluation deadline of these runs: far above policy-server's 2 s, as
/// a debug host verifying live on a loaded 2-core machine can take longer,
/// and no test here is about the deadline.
const DEADLINE: &str = "30s";

struct Run {
    dir: PathBuf,
    settings: Value,
    image: String,
    flags: Vec<String>,
}

impl Run {
    /// `image` under `settings` against `registry` (its CA or plain HTTP),
    /// inputs written to `dir`.
    fn against(registry: &Registry, dir: &Path, image: &str, settings: Value) -> Run {
        Run {
            dir: dir.to_path_buf(),
            settings,
            image: image.to_string(),
            flags: registry_flags(registry),
        }
    }

    /// [`Run::against`] with [`cosign_settings`] for `key`.
    fn cosign(registry: &Registry, dir: &Path, image: &str, key: &CosignKey) -> Run {
        Run::against(registry, dir, image, cosign_settings(registry, key, None))
    }

    fn write_inputs(&self) {
        let yaml = |v: &Value| serde_yaml_ng::to_string(v).expect("yaml");
        std::fs::create_dir_all(&self.dir).expect("create dir");
        std::fs::write(self.dir.join("settings.yaml"), yaml(&self.settings)).expect("settings");
        std::fs::write(
            self.dir.join("request.yaml"),
            yaml(&pod_request(&self.image)),
        )
        .expect("request");
    }

    fn command(&self, subcommand: &str) -> Command {
        self.write_inputs();
        let mut command = Command::new(env!("CARGO_BIN_EXE_imagegate"));
        command
            .arg(subcommand)
            .arg("--policy")
            .arg(policy())
            .arg("--settings-path")
            .arg(self.dir.join("settings.yaml"))
            .arg("--request-path")
            .arg(self.dir.join("request.yaml"))
            .args(["--timeout", DEADLINE])
            .args(&self.flags);
        command
    }

    /// The same evaluation for the library API ([`EvalArgs::load`]).
    fn eval_args(&self) -> EvalArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            eval: EvalArgs,
        }
        self.write_inputs();
        let mut argv = vec![
            "imagegate".to_string(),
            "--policy".into(),
            policy().display().to_string(),
            "--settings-path".into(),
            self.dir.join("settings.yaml").display().to_string(),
            "--request-path".into(),
            self.dir.join("request.yaml").display().to_string(),
            "--timeout".into(),
            DEADLINE.into(),
        ];
        argv.extend(self.flags.iter().cloned());
        <Cli as clap::Parser>::parse_from(argv).eval
    }

    /// Runs the module once, recording the session to `dir/session.yml`
    /// when `record`.
    fn decide(&self, record: bool) -> Decision {
        let mut command = self.command("run");
        if record {
            command
                .arg("--record-host-capabilities-interactions")
                .arg(self.dir.join("session.yml"));
        }
        let output = command.output().expect("spawn imagegate");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        assert!(
            output.status.success(),
            "imagegate run failed: {stderr}{stdout}"
        );
        Decision::parse(&stdout)
    }

    fn run(&self) -> Decision {
        self.decide(false)
    }
}

/// Flags reaching `registry`: plain http, or https with its CA.
fn registry_flags(registry: &Registry) -> Vec<String> {
    match &registry.ca_path {
        Some(ca) => vec!["--registry-ca".into(), ca.display().to_string()],
        None => vec!["--insecure-registry".into(), registry.addr.clone()],
    }
}

/// One rule for everything in `registry`: cosign with the key `release`
/// (and `annotations` when given), pinDigest.
fn cosign_settings(registry: &Registry, key: &CosignKey, annotations: Option<Value>) -> Value {
    let mut cosign = json!({"keys": ["release"]});
    if let Some(annotations) = annotations {
        cosign["annotations"] = annotations;
    }
    json!({
        "keys": {"release": {"cosign": key.public_pem()}},
        "rules": [{
            "name": "signed",
            "images": [format!("{}/**", registry.addr)],
            "verify": {"anyOf": [{"cosign": cosign}]},
            "pinDigest": true
        }]
    })
}

/// Pushes a single-platform image `repo:1.0` made of `content`: its digest.
async fn push(registry: &Registry, repo: &str, content: &str) -> String {
    Image::single(content, Format::Oci)
        .push(registry, repo, "1.0")
        .await
}

/// Pushes `repo:1.0` and signs (or attests) it like cosign v3, a bundle as a
/// referrer: (image, digest).
async fn bundle_signed(
    registry: &Registry,
    repo: &str,
    signer: &Signer<'_>,
    statement: &Statement,
) -> (String, String) {
    let digest = push(registry, repo, repo).await;
    bundles::sign(registry, repo, &digest, signer, statement).await;
    (registry.image(repo, "1.0"), digest)
}

/// Pushes `repo:1.0` and signs it with `key`: (image, digest).
async fn signed(
    registry: &Registry,
    repo: &str,
    key: &CosignKey,
    options: &SignOptions<'_>,
) -> (String, String) {
    let digest = push(registry, repo, repo).await;
    sign(registry, repo, &digest, key, options).await;
    (registry.image(repo, "1.0"), digest)
}

/// The denial prefix the module writes for the cosign rule.
const COSIGN_FAILED: &str = "rule \"signed\": no signature check passed: cosign key \"release\"";

#[tokio::test]
async fn cosign_signed_is_allowed_and_pinned_then_benched() {
    let registry = registry_or_skip!(Variant::Plain);
    let key = CosignKey::generate();
    let (image, digest) = signed(&registry, "demo/app", &key, &SignOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let run = Run::cosign(&registry, dir.path(), &image, &key);
    let started = Instant::now();
    let decision = run.run();
    eprintln!(
        "imagegate run (process, module compile or wasmtime cache, one live cosign verify + pin): {:?}",
        started.elapsed()
    );
    decision.assert_pinned(&format!("{image}@{digest}"));

    // the library in one process: the first validate verifies live, the
    // second one is answered by the capability cache
    let args = run.eval_args();
    let (first, cached) = tokio::task::spawn_blocking(move || {
        let eval = args.load().expect("load the evaluation");
        let timed = || {
            let started = Instant::now();
            let response = admission::validate(&mut &eval.policy, &eval.request, &eval.settings);
            (response, started.elapsed())
        };
        (timed(), timed())
    })
    .await
    .unwrap();
    eprintln!(
        "validate through the module (library, debug build): first {:?} (live verify), second {:?} (cached)",
        first.1, cached.1
    );
    assert!(first.0.allowed && cached.0.allowed);
    assert_eq!(first.0.patch, cached.0.patch);
    assert!(first.0.patch.is_some(), "pinned by a patch");

    // bench: the first validate is live, the next ones hit the capability cache
    let output = run
        .command("bench")
        .args(["--iterations", "20", "--warmup", "2", "--json"])
        .output()
        .expect("spawn imagegate bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("imagegate bench against the lab: {stdout}");
    let report: Value = serde_json::from_str(&stdout).expect("bench JSON");
    assert!(
        report["cache_hits"].as_u64().unwrap_or(0) > 0,
        "bench should hit the cache: {report}"
    );
}

#[tokio::test]
async fn cosign_failures_are_denied_saying_why() {
    let registry = registry_or_skip!(Variant::Plain);
    let (key, other) = (CosignKey::generate(), CosignKey::generate());
    let dir = tempfile::tempdir().unwrap();
    let run =
        |image: &str, settings: Value| Run::against(&registry, dir.path(), image, settings).run();

    // unsigned
    let unsigned_digest = push(&registry, "demo/unsigned", "unsigned").await;
    let unsigned = registry.image("demo/unsigned", "1.0");
    run(&unsigned, cosign_settings(&registry, &key, None)).assert_denied(&[
        &format!("container \"app\": image \"{unsigned}\""),
        COSIGN_FAILED,
        "no verified signature for",
        &unsigned_digest,
    ]);

    // wrong key
    let (image, _) = signed(&registry, "demo/wrongkey", &other, &SignOptions::default()).await;
    run(&image, cosign_settings(&registry, &key, None)).assert_denied(&[
        COSIGN_FAILED,
        "Image verification failed: missing signatures",
    ]);

    // wrong annotations: signed with env=prod, the rule wants env=dev
    let options = SignOptions {
        annotations: BTreeMap::from([("env".to_string(), "prod".to_string())]),
        ..SignOptions::default()
    };
    let (image, digest) = signed(&registry, "demo/annotated", &key, &options).await;
    run(
        &image,
        cosign_settings(&registry, &key, Some(json!({"env": "dev"}))),
    )
    .assert_denied(&[COSIGN_FAILED, "missing signatures", "env: dev"]);
    run(
        &image,
        cosign_settings(&registry, &key, Some(json!({"env": "prod"}))),
    )
    .assert_pinned(&format!("{image}@{digest}"));

    // a signature made for another digest
    let options = SignOptions {
        claim_digest: Some(Image::single("something else", Format::Oci).digest()),
        ..SignOptions::default()
    };
    let (image, _) = signed(&registry, "demo/liar", &key, &options).await;
    run(&image, cosign_settings(&registry, &key, None))
        .assert_denied(&[COSIGN_FAILED, "no verified signature for"]);

    // tag moved after signing: denied naming the new digest; the signed
    // digest itself still passes and stays as it is
    let (image, signed_digest) =
        signed(&registry, "demo/moved", &key, &SignOptions::default()).await;
    let moved_digest = push(&registry, "demo/moved", "replacement").await;
    assert_ne!(moved_digest, signed_digest);
    run(&image, cosign_settings(&registry, &key, None)).assert_denied(&[
        COSIGN_FAILED,
        "no verified signature for",
        &moved_digest,
    ]);
    let by_digest = format!("{}/demo/moved@{signed_digest}", registry.addr);
    let decision = run(&by_digest, cosign_settings(&registry, &key, None));
    assert!(decision.allowed, "{decision:?}");
    assert!(decision.patch.is_empty(), "already pinned: {decision:?}");
}

/// `imagegate check --online` verifies against the registry what offline
/// it cannot: a signed image admitted and pinned (exit 0), the same
/// manifests "not verified offline" without `--online` (exit 1), and an
/// unsigned image denied online for its missing signature (exit 1).
#[tokio::test]
async fn check_online_verifies_what_offline_cannot() {
    let registry = registry_or_skip!(Variant::Plain);
    let key = CosignKey::generate();
    let (image, digest) = signed(&registry, "demo/checked", &key, &SignOptions::default()).await;
    push(&registry, "demo/unsigned", "unsigned").await;
    let unsigned = registry.image("demo/unsigned", "1.0");
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.yaml");
    let yaml = serde_yaml_ng::to_string(&cosign_settings(&registry, &key, None)).unwrap();
    std::fs::write(&settings, yaml).unwrap();
    let manifests = |name: &str, image: &str| {
        let path = dir.path().join(format!("{name}.yaml"));
        let text = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: shop}}\n\
             spec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    \
             metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: web, image: \"{image}\"}}]}}\n\
             ---\napiVersion: v1\nkind: Pod\nmetadata: {{name: job, namespace: shop}}\n\
             spec: {{containers: [{{name: app, image: \"{image}\"}}]}}\n"
        );
        std::fs::write(&path, text).unwrap();
        path
    };
    let check = |path: &Path, online: bool| {
        let output = Command::new(env!("CARGO_BIN_EXE_imagegate"))
            .arg("check")
            .arg(path)
            .arg("--policy")
            .arg(policy())
            .arg("--settings-path")
            .arg(&settings)
            .args(["--output", "json"])
            .args(online.then_some("--online"))
            .args(registry_flags(&registry))
            .output()
            .expect("spawn imagegate check");
        let report: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
        let images: Vec<Value> = report["objects"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|o| o["images"].as_array().unwrap().clone())
            .collect();
        (output.status.code(), images)
    };
    let statuses = |images: &[Value]| -> Vec<String> {
        images
            .iter()
            .map(|i| i["status"].as_str().unwrap().to_string())
            .collect()
    };

    let signed_manifests = manifests("signed", &image);
    let (code, images) = check(&signed_manifests, true);
    assert_eq!(statuses(&images), ["allowed", "allowed"], "{images:?}");
    assert_eq!(code, Some(0));
    assert_eq!(images[1]["pinned"], format!("{image}@{digest}"));
    assert_eq!(images[1]["checks"][0]["digest"], digest);

    let (code, images) = check(&signed_manifests, false);
    assert_eq!(
        statuses(&images),
        ["not-verified-offline", "not-verified-offline"],
        "{images:?}"
    );
    assert_eq!(code, Some(1));

    let (code, images) = check(&manifests("unsigned", &unsigned), true);
    assert_eq!(statuses(&images), ["denied", "denied"], "{images:?}");
    assert_eq!(code, Some(1));
    let error = images[0]["checks"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("no verified signature for"), "{images:?}");
}

#[tokio::test]
async fn cosign_multi_arch_index_is_pinned_to_the_index_digest() {
    let registry = registry_or_skip!(Variant::Plain);
    let key = CosignKey::generate();
    let repo = "demo/multi";
    let digest = Image::build("multi", &["amd64", "arm64"], Format::Oci)
        .push(&registry, repo, "1.0")
        .await;
    sign(&registry, repo, &digest, &key, &SignOptions::default()).await;
    let image = registry.image(repo, "1.0");
    let dir = tempfile::tempdir().unwrap();
    Run::cosign(&registry, dir.path(), &image, &key)
        .run()
        .assert_pinned(&format!("{image}@{digest}"));
}

#[tokio::test]
async fn cosign_auth_registry_with_and_without_credentials() {
    let (user, pass) = ("alice", "s3cret");
    let registry = registry_or_skip!(Variant::Htpasswd {
        user: user.into(),
        pass: pass.into()
    });
    let key = CosignKey::generate();
    let (image, digest) = signed(&registry, "team-a/app", &key, &SignOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut run = Run::cosign(&registry, dir.path(), &image, &key);
    run.run().assert_denied(&[
        COSIGN_FAILED,
        "Cannot fetch manifest of",
        "no credentials configured",
    ]);

    let docker_config = dir.path().join("config.json");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    std::fs::write(
        &docker_config,
        json!({"auths": {registry.addr.clone(): {"auth": auth}}}).to_string(),
    )
    .unwrap();
    run.flags.extend([
        "--docker-config".into(),
        docker_config.display().to_string(),
    ]);
    run.run().assert_pinned(&format!("{image}@{digest}"));
}

#[tokio::test]
async fn cosign_tls_registry_with_and_without_the_ca() {
    let registry = registry_or_skip!(Variant::Tls);
    let key = CosignKey::generate();
    let (image, digest) = signed(&registry, "demo/tls", &key, &SignOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut run = Run::cosign(&registry, dir.path(), &image, &key);
    run.run().assert_pinned(&format!("{image}@{digest}"));
    run.flags.clear();
    run.run()
        .assert_denied(&[COSIGN_FAILED, "Cannot fetch manifest of", "UnknownIssuer"]);
}

#[tokio::test]
async fn registry_down_is_denied_saying_why() {
    let mut registry = registry_or_skip!(Variant::Plain);
    let key = CosignKey::generate();
    let (image, _) = signed(&registry, "demo/down", &key, &SignOptions::default()).await;
    registry.stop();
    let dir = tempfile::tempdir().unwrap();
    Run::cosign(&registry, dir.path(), &image, &key)
        .run()
        .assert_denied(&[
            COSIGN_FAILED,
            "Cannot fetch manifest of",
            "Connection refused",
        ]);
}

/// One rule for everything in `registry` with these checks, pinDigest.
fn rule_settings(registry: &Registry, checks: Value) -> Value {
    json!({"rules": [{"name": "signed", "images": [format!("{}/**", registry.addr)],
                      "verify": {"anyOf": checks}, "pinDigest": true}]})
}

/// The SLSA attestation check of the module e2e cases: built on GitHub-hosted runners.
fn slsa_check(key: &CosignKey) -> Value {
    json!({"attestation": {"predicateType": "https://slsa.dev/provenance/v1", "keys": [key.public_pem()],
        "conditions": [{"path": "predicate.runDetails.builder.id", "op": "equals",
                        "value": "https://github.com/actions/runner/github-hosted"}]}})
}

fn provenance(builder: &str) -> Statement {
    Statement::attestation(
        "https://slsa.dev/provenance/v1",
        json!({"runDetails": {"builder": {"id": builder}}}),
    )
}

#[tokio::test]
async fn cosign_v3_bundles_and_attestations_through_the_module() {
    let registry = registry_or_skip!(Variant::Plain);
    let (key, other) = (CosignKey::generate(), CosignKey::generate());
    let dir = tempfile::tempdir().unwrap();
    let sigstore = FakeSigstore::new();
    let trust = sigstore.write_trust_config(dir.path());
    let run = |image: &str, settings: Value| {
        let mut run = Run::against(&registry, dir.path(), image, settings);
        run.flags.extend([
            "--sigstore-trust-config".to_string(),
            trust.display().to_string(),
        ]);
        run.run()
    };
    let cosign = |k: &CosignKey| json!([{"cosign": {"keys": [k.public_pem()]}}]);
    let by_key = Signer::Key(&key);

    // cosign v3 with a key: a bundle found through the referrers tag
    let (image, digest) =
        bundle_signed(&registry, "demo/v3", &by_key, &Statement::signature()).await;
    run(&image, rule_settings(&registry, cosign(&key))).assert_pinned(&format!("{image}@{digest}"));
    run(&image, rule_settings(&registry, cosign(&other))).assert_denied(&[
        r#"rule "signed": no signature check passed: cosign key "inline": no verified signature for"#,
        "referrers-tag: 1 entries",
        "rejected: signed with a key, and no configured key verifies the signature",
    ]);

    // keyless with the fake Sigstore: certificate, SCT, Rekor entry, timestamp
    let digest = push(&registry, "demo/keyless", "keyless").await;
    let workflow = "https://github.com/corp/app/.github/workflows/release.yml@refs/heads/main";
    let certificate = sigstore.keyless_certificate(
        Identity::Uri(workflow),
        "https://token.actions.githubusercontent.com",
        Some("corp/app"),
    );
    let keyless = Signer::Keyless {
        sigstore: &sigstore,
        certificate: &certificate,
        tlog: true,
        timestamp: true,
    };
    bundles::sign(
        &registry,
        "demo/keyless",
        &digest,
        &keyless,
        &Statement::signature(),
    )
    .await;
    let image = registry.image("demo/keyless", "1.0");
    run(
        &image,
        rule_settings(
            &registry,
            json!([{"githubActions": {"owner": "corp", "repo": "app"}}]),
        ),
    )
    .assert_pinned(&format!("{image}@{digest}"));
    run(
        &image,
        rule_settings(&registry, json!([{"githubActions": {"owner": "evil"}}])),
    )
    .assert_denied(&[
        "GitHub Actions evil: no verified signature for",
        "signed by a workflow of corp/app, not of owner evil",
    ]);

    // an attestation with conditions: the one built on GitHub's runners passes
    let (image, digest) = bundle_signed(
        &registry,
        "demo/slsa",
        &by_key,
        &provenance("https://self-hosted.corp"),
    )
    .await;
    run(&image, rule_settings(&registry, json!([slsa_check(&key)]))).assert_denied(&[
        "attestation https://slsa.dev/provenance/v1 by cosign key \"inline\": ",
        "verified, but no attestation satisfies the conditions",
        "predicate.runDetails.builder.id equals \"https://github.com/actions/runner/github-hosted\": \"https://self-hosted.corp\"",
    ]);
    bundles::sign(
        &registry,
        "demo/slsa",
        &digest,
        &by_key,
        &provenance("https://github.com/actions/runner/github-hosted"),
    )
    .await;
    run(&image, rule_settings(&registry, json!([slsa_check(&key)])))
        .assert_pinned(&format!("{image}@{digest}"));

    // multi-arch: signed on the index only; platforms: all wants every platform
    let built =
        Image::build("demo/multi", &["amd64", "arm64"], Format::Oci).with_buildkit_attestation();
    let index = built.push(&registry, "demo/multi", "1.0").await;
    bundles::sign(
        &registry,
        "demo/multi",
        &index,
        &by_key,
        &Statement::signature(),
    )
    .await;
    let image = registry.image("demo/multi", "1.0");
    run(&image, rule_settings(&registry, cosign(&key))).assert_pinned(&format!("{image}@{index}"));
    let all = json!([{"cosign": {"keys": [key.public_pem()], "platforms": "all"}}]);
    run(&image, rule_settings(&registry, all)).assert_denied(&[&format!(
        "no verified signature for {}",
        built.platform_manifests[0].0
    )]);
}

/// A `notation` check trusting `signer`'s root (`ca:lab`) and the leaf's
/// subject `identity`; `fields` replace or add check fields.
fn notation_check(signer: &NotationSigner, identity: &str, fields: Value) -> Value {
    let mut check = json!({"trustStores": {"ca:lab": signer.root_pem},
                           "trustedIdentities": [format!("x509.subject: C=US, ST=WA, O=imagegate lab, CN={identity}")]});
    check
        .as_object_mut()
        .unwrap()
        .extend(fields.as_object().cloned().unwrap_or_default());
    json!([{ "notation": check }])
}

#[tokio::test]
async fn notation_jws_and_cose_through_the_module() {
    let registry = registry_or_skip!(Variant::Plain);
    let (release, other) = (NotationSigner::new("release"), NotationSigner::new("other"));
    let dir = tempfile::tempdir().unwrap();
    let run =
        |image: &str, settings: Value| Run::against(&registry, dir.path(), image, settings).run();
    let trusted =
        |fields: Value| rule_settings(&registry, notation_check(&release, "release", fields));
    const FAILED: &str = "rule \"signed\": no signature check passed: notation trust policy \"inline\": no verified signature for";

    // JWS and COSE, as `notation sign` pushes them on a registry without the
    // referrers API: found through the referrers tag, verified, pinned
    let mut digests = Vec::new();
    for (repo, media_type) in [
        ("demo/jws", notation_lab::JWS),
        ("demo/cose", notation_lab::COSE),
    ] {
        let digest = push(&registry, repo, repo).await;
        let subject = Subject::of(&registry, repo, &digest).await;
        let claims = Claims::default();
        let envelope = if media_type == notation_lab::JWS {
            release.jws(&subject, &claims)
        } else {
            release.cose(&subject, &claims)
        };
        notation_lab::push(&registry, repo, &subject, media_type, envelope).await;
        let image = registry.image(repo, "1.0");
        run(&image, trusted(json!({}))).assert_pinned(&format!("{image}@{digest}"));
        digests.push(digest);
    }
    let image = registry.image("demo/jws", "1.0");
    // another identity of the same root; another root
    run(
        &image,
        rule_settings(&registry, notation_check(&release, "ci", json!({}))),
    )
    .assert_denied(&[
        FAILED,
        "referrers-tag: 1 entries",
        "rejected: authenticity: signing certificate subject",
        "matches none of the trusted identities of statement \"inline\"",
    ]);
    run(
        &image,
        rule_settings(&registry, notation_check(&other, "release", json!({}))),
    )
    .assert_denied(&[
        FAILED,
        "rejected: authenticity: no certificate of the signing chain of",
        "is in the trust stores ca:lab",
    ]);
    // level audit logs the failed authenticity and admits (Notation's audit)
    run(
        &image,
        rule_settings(
            &registry,
            notation_check(
                &other,
                "release",
                json!({"signatureVerification": {"level": "audit"}}),
            ),
        ),
    )
    .assert_pinned(&format!("{image}@{}", digests[0]));
    // user metadata the signature lacks
    run(&image, trusted(json!({"userMetadata": {"env": "prod"}})))
        .assert_denied(&[FAILED, "rejected: user metadata: the signature has no env"]);

    // expired; signed for another artifact (the size differs); both denied
    let digest = push(&registry, "demo/bad", "bad").await;
    let subject = Subject::of(&registry, "demo/bad", &digest).await;
    let expired = Claims {
        signed_at: Some(chrono::Utc::now().timestamp() - 120),
        expiry: Some(chrono::Utc::now().timestamp() - 60),
        ..Claims::default()
    };
    notation_lab::push(
        &registry,
        "demo/bad",
        &subject,
        notation_lab::COSE,
        release.cose(&subject, &expired),
    )
    .await;
    let image = registry.image("demo/bad", "1.0");
    run(&image, trusted(json!({})))
        .assert_denied(&[FAILED, "rejected: expiry: the signature expired at"]);
    let mut wrong = subject.clone();
    wrong.size += 1;
    notation_lab::push(
        &registry,
        "demo/bad",
        &wrong,
        notation_lab::JWS,
        release.jws(&wrong, &Claims::default()),
    )
    .await;
    run(&image, trusted(json!({}))).assert_denied(&[
        "referrers-tag: 2 entries",
        "rejected: expiry: the signature expired at",
        &format!("rejected: integrity: the signature is for another artifact: it signs size {}, the image's manifest has {}", wrong.size, subject.size),
    ]);

    // multi-arch: the index signed (its own descriptor in the payload);
    // platforms: all wants every platform manifest signed
    let built = Image::build("demo/nmulti", &["amd64", "arm64"], Format::Oci);
    let index = built.push(&registry, "demo/nmulti", "1.0").await;
    let subject = Subject::of(&registry, "demo/nmulti", &index).await;
    assert_eq!(
        subject.media_type,
        "application/vnd.oci.image.index.v1+json"
    );
    notation_lab::push(
        &registry,
        "demo/nmulti",
        &subject,
        notation_lab::JWS,
        release.jws(&subject, &Claims::default()),
    )
    .await;
    let image = registry.image("demo/nmulti", "1.0");
    run(&image, trusted(json!({}))).assert_pinned(&format!("{image}@{index}"));
    run(&image, trusted(json!({"platforms": "all"}))).assert_denied(&[&format!(
        "no verified signature for {}",
        built.platform_manifests[0].0
    )]);

    // a trust policy whose statement for the repository skips: never admitted
    let skip = json!({"trustStores": {"ca:lab": release.root_pem}, "trustPolicy": {"version": "1.0", "trustPolicies": [
        {"name": "lab", "registryScopes": [format!("{}/demo/jws", registry.addr)], "signatureVerification": {"level": "skip"}}]}});
    run(
        &registry.image("demo/jws", "1.0"),
        rule_settings(&registry, json!([{"notation": skip}])),
    )
    .assert_denied(&[
        "Notation trust policy statement \"lab\" skips verification for",
        "a verify check never admits an image without verifying its signature",
    ]);
}

/// A Notary rule for everything in `registry`: the lab's server and CA and
/// these signers; `extra` adds rule fields (`pinDigest`, `onDigestMismatch`)
/// and, under `anyOf`, more checks after the Notary one.
fn notary_settings(
    registry: &Registry,
    lab: &notary_lab::NotaryLab,
    signers: Value,
    extra: Value,
) -> Value {
    let mut rule = json!({
        "name": "dct",
        "images": [format!("{}/**", registry.addr)],
        "verify": {"anyOf": [{"notary": {
            "server": lab.url,
            "caCert": lab.ca_pem,
            "signers": signers
        }}]}
    });
    if let (Some(rule), Some(extra)) = (rule.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            match k.as_str() {
                // more checks after the notary one
                "anyOf" => rule["verify"]["anyOf"]
                    .as_array_mut()
                    .expect("anyOf")
                    .extend(v.as_array().cloned().unwrap_or_default()),
                _ => {
                    rule.insert(k.clone(), v.clone());
                }
            }
        }
    }
    json!({"rules": [rule]})
}

/// The Notary lab and a registry holding `demo/app` tags, with trust data
/// published for the GUN `<registry>/demo/app`.
struct NotaryWorld {
    registry: Registry,
    lab: notary_lab::NotaryLab,
    jenkins_pem: String,
    /// Digest of `demo/app:1.0`, signed by jenkins (and `4.0` in Notary).
    signed: String,
    /// Digest of `demo/app:4.0` in the registry (Notary says `signed`).
    moved: String,
    /// Digest of `demo/app:3.0`, signed by alice only (and by cosign key).
    alice_only: String,
    cosign: CosignKey,
}

impl NotaryWorld {
    async fn start() -> Option<NotaryWorld> {
        if !registry::available() || !notary_lab::available() {
            return None;
        }
        let registry = Registry::start(Variant::Plain);
        let mut lab = notary_lab::NotaryLab::start();
        let gun = format!("{}/demo/app", registry.addr);
        let signed = Image::single("notary signed", Format::Oci);
        let moved = Image::single("notary moved", Format::Oci);
        let alice_only = Image::single("notary alice", Format::Oci);
        let size = |image: &Image| image.top.len() as u64;
        let hex = |digest: &str| digest.trim_start_matches("sha256:").to_string();
        let signed_digest = signed.push(&registry, "demo/app", "1.0").await;
        let alice_digest = alice_only.push(&registry, "demo/app", "3.0").await;
        let moved_digest = moved.push(&registry, "demo/app", "4.0").await;
        let cosign = CosignKey::generate();
        sign(
            &registry,
            "demo/app",
            &alice_digest,
            &cosign,
            &SignOptions::default(),
        )
        .await;
        lab.init(&gun);
        let jenkins_pem = lab.add_signer(&gun, "jenkins", false, &["jenkins"]);
        lab.add_signer(&gun, "alice", false, &["alice"]);
        lab.sign(
            &gun,
            "1.0",
            &hex(&signed_digest),
            size(&signed),
            &["jenkins"],
        );
        lab.sign(
            &gun,
            "4.0",
            &hex(&signed_digest),
            size(&signed),
            &["jenkins"],
        );
        lab.sign(
            &gun,
            "3.0",
            &hex(&alice_digest),
            size(&alice_only),
            &["alice"],
        );
        Some(NotaryWorld {
            registry,
            lab,
            jenkins_pem,
            signed: signed_digest,
            moved: moved_digest,
            alice_only: alice_digest,
            cosign,
        })
    }

    fn image(&self, tag: &str) -> String {
        self.registry.image("demo/app", tag)
    }

    fn jenkins(&self) -> Value {
        json!([{"role": "jenkins", "publicKey": self.jenkins_pem}])
    }

    fn run(&self, dir: &Path, cache: &Path, image: &str, settings: Value) -> Run {
        let mut run = Run::against(&self.registry, dir, image, settings);
        run.flags
            .extend(["--notary-cache-dir".into(), cache.display().to_string()]);
        run
    }
}

const NOTARY_FAILED: &str = "rule \"dct\": no signature check passed: notary";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_through_the_module() {
    let Some(mut world) = NotaryWorld::start().await else {
        return;
    };
    let (dir, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (dir, cache) = (dir.path(), cache.path());
    let settings =
        |extra: Value| notary_settings(&world.registry, &world.lab, world.jenkins(), extra);
    let decide = |tag: &str, extra: Value| {
        world
            .run(dir, cache, &world.image(tag), settings(extra))
            .run()
    };

    // signed by an allowed (pinned) signer -> allowed, pinned to its digest
    let started = Instant::now();
    decide("1.0", json!({"pinDigest": true})).assert_pinned(&format!(
        "{}@{}",
        world.image("1.0"),
        world.signed
    ));
    eprintln!(
        "imagegate run with a notary check (TOFU, process): {:?}",
        started.elapsed()
    );
    // the TOFU root is now in the cache dir given by --notary-cache-dir
    assert!(
        std::fs::read_dir(cache).unwrap().next().is_some(),
        "--notary-cache-dir holds nothing"
    );

    // signed only by another signer -> denied, naming the signer asked for
    decide("3.0", json!({})).assert_denied(&[NOTARY_FAILED, "targets/jenkins"]);
    // ... or handed to cosign when the rule's anyOf says so
    let with_cosign = json!({
        "anyOf": [{"cosign": {"keys": [world.cosign.public_pem()]}}],
        "pinDigest": true
    });
    decide("3.0", with_cosign.clone()).assert_pinned(&format!(
        "{}@{}",
        world.image("3.0"),
        world.alice_only
    ));

    // unsigned (no trust data for the tag) -> denied; with cosign in the
    // anyOf, both checks are named
    Image::single("notary unsigned", Format::Oci)
        .push(&world.registry, "demo/app", "5.0")
        .await;
    decide("5.0", json!({})).assert_denied(&[NOTARY_FAILED, "5.0"]);
    decide("5.0", with_cosign).assert_denied(&[
        NOTARY_FAILED,
        "cosign",
        "no verified signature for",
    ]);

    // digest mismatch: 4.0 is signed for `signed` but the registry has `moved`
    decide("4.0", json!({"onDigestMismatch": "deny"})).assert_denied(&[&format!(
        "image digest {} differs from the signed digest {} (notary signer targets/jenkins)",
        world.moved, world.signed
    )]);
    decide("4.0", json!({"onDigestMismatch": "rewrite"})).assert_pinned(&format!(
        "{}@{}",
        world.image("4.0"),
        world.signed
    ));

    // server down -> denied, saying why
    let down = settings(json!({"pinDigest": true}));
    world.lab.stop_server();
    world
        .run(dir, cache, &world.image("4.0"), down)
        .run()
        .assert_denied(&[NOTARY_FAILED, world.lab.url.trim_end_matches('/')]);
}

/// Records one fixture: runs the module live with `--record` into `dir`
/// (request.yaml, settings.yaml, session.yml) and writes expect.yaml from
/// the decision, after checking it: allowed with `pinned`, or denied with
/// every `needles` substring (port-free, so a re-recording expects the same).
fn record(run: &Run, description: &str, pinned: Option<&str>, needles: &[&str]) {
    let decision = run.decide(true);
    let mut expect = json!({"description": description, "allowed": decision.allowed});
    match pinned {
        Some(pinned) => {
            decision.assert_pinned(pinned);
            expect["patch"] = Value::Array(decision.patch);
        }
        None => {
            decision.assert_denied(needles);
            expect["message_contains"] = json!(needles);
        }
    }
    std::fs::write(
        run.dir.join("expect.yaml"),
        serde_yaml_ng::to_string(&expect).expect("yaml"),
    )
    .expect("write expect.yaml");
}

/// The recorded fixtures, as `imagegate test` finds them in `fixtures/`.
const RECORDED: [&str; 10] = [
    "recorded-accept-cosign-signed-pinned",
    "recorded-accept-cosign-v3-bundle-pinned",
    "recorded-accept-notary-signed-pinned",
    "recorded-accept-notation-jws-pinned",
    "recorded-deny-cosign-registry-down",
    "recorded-deny-cosign-unsigned",
    "recorded-deny-cosign-wrong-key",
    "recorded-deny-notary-other-signer",
    "recorded-deny-notation-cose-untrusted-root",
    "recorded-deny-slsa-attestation-condition",
];

/// Records the [`RECORDED`] fixtures into `out` from live runs against a
/// fresh lab; `None` when docker-registry or notary is not installed.
async fn record_set(out: &Path) -> Option<()> {
    let world = NotaryWorld::start().await?;
    let registry = Registry::start(Variant::Plain);
    let (key, other) = (CosignKey::generate(), CosignKey::generate());
    let cosign = |name: &str, image: &str, registry: &Registry| {
        Run::cosign(registry, &out.join(name), image, &key)
    };
    let by_key = Signer::Key(&key);

    let (image, digest) = signed(&registry, "demo/signed", &key, &SignOptions::default()).await;
    record(
        &cosign(RECORDED[0], &image, &registry),
        "Recorded from a live run: an image signed with the rule's cosign key is allowed and pinned to the registry's digest.",
        Some(&format!("{image}@{digest}")),
        &[],
    );
    push(&registry, "demo/unsigned", "unsigned").await;
    record(
        &cosign(RECORDED[5], &registry.image("demo/unsigned", "1.0"), &registry),
        "Recorded from a live run: an image without cosign signatures is denied, naming the rule, the key and the cause.",
        None,
        &[COSIGN_FAILED, "no verified signature for"],
    );
    let (image, _) = signed(&registry, "demo/wrongkey", &other, &SignOptions::default()).await;
    record(
        &cosign(RECORDED[6], &image, &registry),
        "Recorded from a live run: an image signed with another key than the rule's is denied.",
        None,
        &[
            COSIGN_FAILED,
            "Image verification failed: missing signatures",
        ],
    );

    let (image, digest) =
        bundle_signed(&registry, "demo/v3", &by_key, &Statement::signature()).await;
    record(
        &cosign(RECORDED[1], &image, &registry),
        "Recorded from a live run: an image signed like cosign v3 does (a sigstore bundle as an OCI referrer, found through the referrers tag) is allowed and pinned.",
        Some(&format!("{image}@{digest}")),
        &[],
    );
    let (image, _) = bundle_signed(
        &registry,
        "demo/slsa",
        &by_key,
        &provenance("https://self-hosted.corp"),
    )
    .await;
    record(
        &Run::against(
            &registry,
            &out.join(RECORDED[9]),
            &image,
            rule_settings(&registry, json!([slsa_check(&key)])),
        ),
        "Recorded from a live run: the image carries a verified SLSA provenance attestation, but it was not built on GitHub's runners as the condition requires: denied, naming the condition and what was found.",
        None,
        &["verified, but no attestation satisfies the conditions", "predicate.runDetails.builder.id equals"],
    );

    // Notation, as `notation sign` pushes it on a registry without the
    // referrers API: a JWS envelope by the trusted signer, a COSE one by a
    // signer of another root.
    let (release, stranger) = (
        NotationSigner::new("release"),
        NotationSigner::new("stranger"),
    );
    let notation_signed = |repo: &'static str, envelope: &'static str| {
        let (registry, release, stranger) = (&registry, &release, &stranger);
        async move {
            let digest = push(registry, repo, repo).await;
            let subject = Subject::of(registry, repo, &digest).await;
            let signature = match envelope {
                notation_lab::JWS => release.jws(&subject, &Claims::default()),
                _ => stranger.cose(&subject, &Claims::default()),
            };
            notation_lab::push(registry, repo, &subject, envelope, signature).await;
            (registry.image(repo, "1.0"), digest)
        }
    };
    let trusted = rule_settings(&registry, notation_check(&release, "release", json!({})));
    let (image, digest) = notation_signed("demo/notation-jws", notation_lab::JWS).await;
    record(
        &Run::against(&registry, &out.join(RECORDED[3]), &image, trusted.clone()),
        "Recorded from a live run: a Notation JWS signature (found through the referrers tag) by a certificate of the trusted root with the trusted identity; allowed and pinned.",
        Some(&format!("{image}@{digest}")),
        &[],
    );
    let (image, _) = notation_signed("demo/notation-cose", notation_lab::COSE).await;
    record(
        &Run::against(&registry, &out.join(RECORDED[8]), &image, trusted),
        "Recorded from a live run: a Notation COSE signature by a certificate of another root than the trust store's; denied, naming the trust policy, the path and why.",
        None,
        &[
            "notation trust policy \"inline\": no verified signature for",
            "referrers-tag: 1 entries",
            "rejected: authenticity: no certificate of the signing chain of",
        ],
    );

    let mut down = Registry::start(Variant::Plain);
    let (image, _) = signed(&down, "demo/down", &key, &SignOptions::default()).await;
    down.stop();
    record(
        &cosign(RECORDED[4], &image, &down),
        "Recorded from a live run: the registry is down, so the signature cannot be checked and the image is denied, saying why.",
        None,
        &[COSIGN_FAILED, "Cannot fetch manifest of", "Connection refused"],
    );

    let cache = tempfile::tempdir().unwrap();
    let settings = notary_settings(
        &world.registry,
        &world.lab,
        world.jenkins(),
        json!({"pinDigest": true}),
    );
    let run = |name: &str, tag: &str| Run {
        dir: out.join(name),
        ..world.run(out, cache.path(), &world.image(tag), settings.clone())
    };
    record(
        &run(RECORDED[2], "1.0"),
        "Recorded from a live run: trust data on a real notary-server signs the tag by the pinned jenkins signer; the image is allowed and pinned to the signed digest.",
        Some(&format!("{}@{}", world.image("1.0"), world.signed)),
        &[],
    );
    record(
        &run(RECORDED[7], "3.0"),
        "Recorded from a live run: the tag is signed by alice only while the rule wants jenkins; denied, naming the signer asked for.",
        None,
        &[NOTARY_FAILED, "targets/jenkins"],
    );
    Some(())
}

/// `make record-fixtures`: replaces `fixtures/recorded-*` with a new
/// recording (ports and keys change; the replay stays offline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes fixtures/recorded-*; run by `make record-fixtures`"]
async fn record_fixtures_into_the_suite() {
    let fixtures = workspace().join("fixtures");
    for name in RECORDED {
        let dir = fixtures.join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
    record_set(&fixtures)
        .await
        .expect("docker-registry and notary are needed to record fixtures");
}

/// What must stay the same between recordings of one fixture: per exchange
/// the request's type tag and the response type; the expectation without
/// the (port-dependent) patch values.
fn shape(dir: &Path) -> (Vec<(String, String)>, Value) {
    let read = |file: &str| {
        let path = dir.join(file);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let session: Vec<Value> = serde_yaml_ng::from_str(&read("session.yml")).expect("session.yml");
    let exchanges = session
        .iter()
        .map(|exchange| {
            let request = exchange["request"].as_str().expect("request string");
            let tag = request.lines().next().unwrap_or_default().to_string();
            let response = exchange["response"]["type"]
                .as_str()
                .expect("response type");
            (tag, response.to_string())
        })
        .collect();
    let mut expect: Value = serde_yaml_ng::from_str(&read("expect.yaml")).expect("expect.yaml");
    if let Some(patch) = expect["patch"].as_array_mut() {
        for op in patch {
            op["value"] = json!("<pinned image>");
        }
    }
    (exchanges, expect)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_again_gives_sessions_of_the_committed_shape() {
    let out = tempfile::tempdir().unwrap();
    if record_set(out.path()).await.is_none() {
        return;
    }
    let fixtures = workspace().join("fixtures");
    let mut committed: Vec<String> = std::fs::read_dir(&fixtures)
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("recorded-"))
        .collect();
    committed.sort();
    assert_eq!(
        committed, RECORDED,
        "fixtures/recorded-* differ from the recorded set"
    );
    for name in RECORDED {
        let (again, committed) = (shape(&out.path().join(name)), shape(&fixtures.join(name)));
        assert!(!again.0.is_empty(), "{name}: nothing recorded");
        assert_eq!(again, committed, "{name}: re-recording has another shape");
    }
    // the new recording replays offline, like the committed one
    let output = Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .arg("test")
        .arg(out.path())
        .arg("--policy")
        .arg(policy())
        .output()
        .expect("spawn imagegate test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("10 passed, 0 failed"),
        "replay of the new recording: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
