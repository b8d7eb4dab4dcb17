//! `imagegate scaffold webhook` and `scaffold imagepolicywebhook` checked,
//! not only printed: every core object against the Kubernetes API schemas
//! (kubernetes-validate, strict: `IMAGEGATE_KUBE_VALIDATE` names the venv's
//! python, set by `make e2e`), then here what a schema cannot say (enums,
//! ranges, names that must agree, the certificate chain, cert-manager, the
//! AdmissionConfiguration and kubeconfig), and the path up to the API
//! server run for real: serve started with the generated certificate,
//! settings and flags, reached as the API server reaches it (the Service's
//! DNS name, the `caBundle` as the only root, the webhook's path).
//! What is not tested here: a live API server and cluster.

#[allow(dead_code)] // each test file uses part of the shared lab
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use clap::Parser;
use imagegate::packaging::metadata::Metadata;
use imagegate::serve::Server;
use serde_json::{json, Value};
use support::certs::verifies;

const KUBERNETES_VERSION: &str = "1.35";
const IMAGE: &str = "registry.example/imagegate@sha256:4d2f3e0b5a1c7f8e9d6b3a2c1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn unb64(v: &Value) -> String {
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap(),
    )
    .unwrap()
}

fn imagegate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .args(args)
        .output()
        .unwrap()
}

fn documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// `scaffold webhook ARGS` written to a file; its objects.
fn scaffold_webhook(dir: &Path, args: &[&str]) -> (PathBuf, Vec<Value>) {
    let out = dir.join("imagegate.yaml");
    let mut argv = vec!["scaffold", "webhook", "--image", IMAGE, "-o"];
    let out_str = out.display().to_string();
    let metadata = repo("metadata.yml").display().to_string();
    argv.extend([out_str.as_str(), "-m", metadata.as_str()]);
    argv.extend_from_slice(args);
    let run = imagegate(&argv);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let objects = documents(&std::fs::read_to_string(&out).unwrap());
    (out, objects)
}

/// kubernetes-validate on `file`; `None` when it is not installed (a loud
/// skip, or a failure under `make test`).
fn kube_validate(file: &Path, no_schema: &[&str]) -> Option<(bool, String)> {
    let Some(python) =
        std::env::var_os("IMAGEGATE_KUBE_VALIDATE").filter(|p| Path::new(p).exists())
    else {
        assert!(
            std::env::var_os("IMAGEGATE_E2E_REQUIRED").is_none(),
            "IMAGEGATE_E2E_REQUIRED is set but IMAGEGATE_KUBE_VALIDATE names no python (scripts/deps.sh installs .venv)"
        );
        eprintln!("\n\n!!!!!!!! SKIPPED: kubernetes-validate (set IMAGEGATE_KUBE_VALIDATE=.venv/bin/python) !!!!!!!!\n\n");
        return None;
    };
    let mut command = Command::new(python);
    command
        .arg(repo("scripts/kube-validate.py"))
        .args(["--version", KUBERNETES_VERSION]);
    for kind in no_schema {
        command.args(["--no-schema", kind]);
    }
    let out = command.arg(file).output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), report))
}

/// Passes the schemas; and a copy with a misspelt field does not (the
/// validator is strict and actually ran).
fn assert_schemas(file: &Path, no_schema: &[&str]) {
    let Some((ok, report)) = kube_validate(file, no_schema) else {
        return;
    };
    assert!(ok, "{report}");
    assert!(!report.contains("FAIL"), "{report}");
    let text = std::fs::read_to_string(file).unwrap();
    let broken = file.with_extension("broken.yaml");
    std::fs::write(&broken, text.replacen("namespace:", "namepsace:", 1)).unwrap();
    let (ok, report) = kube_validate(&broken, no_schema).unwrap();
    assert!(
        !ok && report.contains("'namepsace' was unexpected"),
        "{report}"
    );
}

fn find<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    match find(objects, kind).as_slice() {
        [o] => o,
        other => panic!("{} objects of kind {kind}", other.len()),
    }
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[derive(Parser)]
struct ServeCli {
    #[command(flatten)]
    serve: imagegate::cli::serve::Args,
}

fn parse_serve(args: &[String]) -> imagegate::cli::serve::Args {
    assert_eq!(args[0], "serve");
    ServeCli::try_parse_from(args.iter().map(String::as_str))
        .unwrap_or_else(|e| panic!("the Deployment's args are not serve's: {e}"))
        .serve
}

/// What a schema cannot say about the objects of one webhook installation.
fn assert_semantics(objects: &[Value], ns: &str, exempt: &[&str], mutating: bool) {
    let metadata = Metadata::from_yaml_file(&repo("metadata.yml")).unwrap();
    let labels =
        json!({"app.kubernetes.io/name": "imagegate", "app.kubernetes.io/instance": "imagegate"});
    let namespace = one(objects, "Namespace");
    assert_eq!(namespace["metadata"]["name"], ns);
    for o in objects.iter().filter(|o| {
        o["kind"] != "Namespace"
            && !o["kind"]
                .as_str()
                .unwrap()
                .ends_with("WebhookConfiguration")
    }) {
        assert_eq!(o["metadata"]["namespace"], ns, "{}", o["kind"]);
    }

    // The Deployment: the image given, serve's own flags, mounts that exist.
    let deployment = one(objects, "Deployment");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    assert_eq!(spec["selector"]["matchLabels"], labels);
    let pod = &spec["template"];
    assert_eq!(pod["metadata"]["labels"], labels);
    let pod_spec = &pod["spec"];
    let sa = one(objects, "ServiceAccount");
    assert_eq!(pod_spec["serviceAccountName"], sa["metadata"]["name"]);
    assert_eq!(pod_spec["automountServiceAccountToken"], false);
    assert_eq!(sa["automountServiceAccountToken"], false);
    assert!(
        find(objects, "Role").is_empty() && find(objects, "ClusterRole").is_empty(),
        "serve reads no API"
    );
    let security = &pod_spec["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["runAsUser"], 65532);
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    let term = &pod_spec["affinity"]["podAntiAffinity"]
        ["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(
        term["podAffinityTerm"]["labelSelector"]["matchLabels"],
        labels
    );
    assert_eq!(
        term["podAffinityTerm"]["topologyKey"],
        "kubernetes.io/hostname"
    );
    let [container]: [Value; 1] = pod_spec["containers"]
        .as_array()
        .unwrap()
        .clone()
        .try_into()
        .unwrap();
    assert_eq!(container["image"], IMAGE);
    assert!(["Always", "IfNotPresent", "Never"]
        .contains(&container["imagePullPolicy"].as_str().unwrap()));
    let c_sec = &container["securityContext"];
    assert_eq!(c_sec["readOnlyRootFilesystem"], true);
    assert_eq!(c_sec["allowPrivilegeEscalation"], false);
    assert_eq!(c_sec["capabilities"]["drop"], json!(["ALL"]));
    let args = strings(&container["args"]);
    let serve = parse_serve(&args);
    assert!(
        serve.policy_args.disable_wasmtime_cache,
        "the root filesystem is read-only"
    );
    assert_eq!(serve.policy, Path::new("/policy.wasm"));
    let port = container["ports"][0]["containerPort"].as_u64().unwrap();
    assert_eq!(serve.addr.port() as u64, port);
    assert_eq!(container["ports"][0]["name"], "https");
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(
            (
                get["path"].as_str(),
                get["port"].as_str(),
                get["scheme"].as_str()
            ),
            (Some(path), Some("https"), Some("HTTPS"))
        );
    }
    let memory_limit: u64 = container["resources"]["limits"]["memory"]
        .as_str()
        .unwrap()
        .trim_end_matches("Mi")
        .parse()
        .unwrap();
    assert!(
        memory_limit << 20
            > u64::from(serve.max_concurrency) * serve.policy_args.memory_limit as u64,
        "the memory limit covers every guest at its cap"
    );
    assert!(container["resources"]["requests"]["cpu"].is_string());
    let volumes: BTreeMap<String, Value> = pod_spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap().to_string(), v.clone()))
        .collect();
    let mounts: Vec<(String, String)> = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["mountPath"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (name, _) in &mounts {
        let volume = &volumes[name];
        if let Some(cm) = volume["configMap"]["name"].as_str() {
            named(objects, "ConfigMap", cm);
        }
        if let Some(secret) = volume["secret"]["secretName"].as_str() {
            let issued = find(objects, "Certificate")
                .iter()
                .any(|c| c["spec"]["secretName"] == secret);
            assert!(
                issued
                    || objects
                        .iter()
                        .any(|o| o["kind"] == "Secret" && o["metadata"]["name"] == secret),
                "no Secret {secret}"
            );
        }
    }
    let under_mount = |p: &Path| mounts.iter().any(|(_, m)| p.starts_with(m));
    let mut files = vec![
        serve.settings_path.clone().unwrap(),
        serve.tls_cert.clone().unwrap(),
        serve.tls_key.clone().unwrap(),
    ];
    files.extend(serve.live.context.clone());
    files.extend(
        container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["value"].as_str())
            .filter(|v| v.starts_with('/'))
            .map(PathBuf::from),
    );
    files.extend(serve.live.notary_cache_dir.clone());
    for file in files {
        assert!(
            under_mount(&file),
            "{} is on no volume (read-only root)",
            file.display()
        );
    }
    // The settings ConfigMap holds the file serve reads, mounted as a directory.
    let settings_volume = mounts
        .iter()
        .find(|(_, m)| serve.settings_path.as_ref().unwrap().starts_with(m))
        .unwrap();
    let cm = named(
        objects,
        "ConfigMap",
        volumes[&settings_volume.0]["configMap"]["name"]
            .as_str()
            .unwrap(),
    );
    let key = serve
        .settings_path
        .as_ref()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    assert!(cm["data"][key].is_string());
    assert!(
        container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m.get("subPath").is_none()),
        "subPath never updates"
    );

    // PodDisruptionBudget and Service select the pods.
    let pdb = one(objects, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["selector"]["matchLabels"], labels);
    assert!(pdb["spec"]["minAvailable"].as_u64().unwrap() < 2);
    let service = one(objects, "Service");
    assert_eq!(service["spec"]["selector"], labels);
    let service_port = &service["spec"]["ports"][0];
    assert_eq!(service_port["targetPort"], "https");

    // The webhooks: enums, ranges, rules, selector, the Service.
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.contains(&"MutatingWebhookConfiguration"), mutating);
    let worst = serve.queue_timeout.0.unwrap() + serve.policy_args.timeout.0.unwrap();
    for config in objects.iter().filter(|o| {
        o["kind"]
            .as_str()
            .unwrap()
            .ends_with("WebhookConfiguration")
    }) {
        let is_mutating = config["kind"] == "MutatingWebhookConfiguration";
        for hook in config["webhooks"].as_array().unwrap() {
            let name = hook["name"].as_str().unwrap();
            assert!(
                name.split('.').count() >= 3,
                "webhook names are fully qualified: {name}"
            );
            assert_eq!(hook["failurePolicy"], "Fail");
            assert_eq!(hook["sideEffects"], "None");
            assert!(["Exact", "Equivalent"].contains(&hook["matchPolicy"].as_str().unwrap()));
            assert!(strings(&hook["admissionReviewVersions"]).contains(&"v1".to_string()));
            let timeout = hook["timeoutSeconds"].as_u64().unwrap();
            assert!((1..=30).contains(&timeout), "{timeout}");
            assert!(
                Duration::from_secs(timeout) > worst,
                "the API server must outwait serve"
            );
            let rules: Vec<imagegate::packaging::metadata::Rule> =
                serde_json::from_value(hook["rules"].clone()).unwrap();
            assert_eq!(rules, metadata.rules, "the rules of metadata.yml");
            assert!(strings(&hook["rules"][0]["resources"])
                .contains(&"pods/ephemeralcontainers".to_string()));
            let [expr]: [Value; 1] = hook["namespaceSelector"]["matchExpressions"]
                .as_array()
                .unwrap()
                .clone()
                .try_into()
                .unwrap();
            assert_eq!(expr["key"], "kubernetes.io/metadata.name");
            assert_eq!(expr["operator"], "NotIn");
            let excluded = strings(&expr["values"]);
            assert!(
                excluded.contains(&ns.to_string()),
                "no lock-out: {excluded:?}"
            );
            for e in exempt {
                assert!(excluded.contains(&e.to_string()), "{e}");
            }
            let svc = &hook["clientConfig"]["service"];
            assert_eq!(svc["namespace"], ns);
            assert_eq!(svc["name"], service["metadata"]["name"]);
            assert_eq!(svc["port"], service_port["port"]);
            assert_eq!(
                svc["path"],
                if is_mutating { "/mutate" } else { "/validate" }
            );
            if is_mutating {
                assert_eq!(hook["reinvocationPolicy"], "IfNeeded");
            } else {
                assert!(hook.get("reinvocationPolicy").is_none());
            }
        }
    }
}

/// The generated Secret's certificate, verified with the `caBundle` for the
/// name the API server dials: `<service>.<namespace>.svc`.
fn assert_certificates(objects: &[Value], ns: &str) -> (String, String, String) {
    let secret = named(objects, "Secret", "imagegate-tls");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let cert = unb64(&secret["data"]["tls.crt"]);
    let key = unb64(&secret["data"]["tls.key"]);
    for config in objects.iter().filter(|o| {
        o["kind"]
            .as_str()
            .unwrap()
            .ends_with("WebhookConfiguration")
    }) {
        let bundle = unb64(&config["webhooks"][0]["clientConfig"]["caBundle"]);
        assert_eq!(bundle, unb64(&secret["data"]["ca.crt"]));
        let service = one(objects, "Service")["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        verifies(&bundle, &cert, &format!("{service}.{ns}.svc")).unwrap();
        assert!(verifies(&bundle, &cert, &format!("{service}.other.svc")).is_err());
    }
    let bundle = unb64(&secret["data"]["ca.crt"]);
    (bundle, cert, key)
}

/// The Deployment's serve arguments and environment for a run here: each
/// volume a local directory `dir/volumes/<name>` holding its ConfigMap's or
/// Secret's files (an `emptyDir` empty), every path under a mount moved
/// there, `--policy` the module given, the port 127.0.0.1:0, and test-only
/// `extra` appended to the arguments.
fn deployment_args(
    objects: &[Value],
    dir: &Path,
    policy: &Path,
    extra: &[&str],
) -> (Vec<String>, Vec<(String, String)>) {
    let pod_spec = &one(objects, "Deployment")["spec"]["template"]["spec"];
    let container = &pod_spec["containers"][0];
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    for volume in pod_spec["volumes"].as_array().unwrap() {
        let name = volume["name"].as_str().unwrap();
        let local = dir.join("volumes").join(name);
        std::fs::create_dir_all(&local).unwrap();
        let files: Vec<(String, String)> = if let Some(cm) = volume["configMap"]["name"].as_str() {
            named(objects, "ConfigMap", cm)["data"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        } else if let Some(secret) = volume["secret"]["secretName"].as_str() {
            named(objects, "Secret", secret)["data"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), unb64(v)))
                .collect()
        } else {
            assert!(volume.get("emptyDir").is_some(), "{volume}");
            Vec::new()
        };
        for (key, text) in files {
            std::fs::write(local.join(key), text).unwrap();
        }
        for mount in container["volumeMounts"].as_array().unwrap() {
            if mount["name"] == name {
                mounts.push((
                    mount["mountPath"].as_str().unwrap().to_string(),
                    local.clone(),
                ));
            }
        }
    }
    let local = |arg: &str| {
        mounts
            .iter()
            .find(|(m, _)| Path::new(arg).starts_with(m))
            .map(|(mount, local)| {
                let relative = Path::new(arg).strip_prefix(mount).unwrap();
                local.join(relative).display().to_string()
            })
    };
    let env = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let value = e["value"].as_str().unwrap();
            let name = e["name"].as_str().unwrap().to_string();
            (name, local(value).unwrap_or_else(|| value.to_string()))
        })
        .collect();
    let mut args = Vec::new();
    let mut iter = strings(&container["args"]).into_iter();
    while let Some(arg) = iter.next() {
        if arg == "--addr" {
            iter.next();
            args.extend([arg, "127.0.0.1:0".into()]);
        } else if arg == "--policy" {
            iter.next();
            args.extend([arg, policy.display().to_string()]);
        } else if let Some(local) = local(&arg) {
            args.push(local);
        } else {
            args.push(arg);
        }
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    (args, env)
}

/// serve started in this process as the Deployment starts it ([`deployment_args`]).
fn start_like_the_deployment(objects: &[Value], dir: &Path, extra: &[&str]) -> Server {
    let (args, env) = deployment_args(
        objects,
        dir,
        &imagegate_policy::testing::policy_wasm(),
        extra,
    );
    assert!(
        env.is_empty(),
        "{env:?}: run serve as a process (ServeProcess)"
    );
    imagegate::cli::serve::start(&parse_serve(&args)).unwrap()
}

/// A client that trusts only `ca` and reaches `host` at serve's address.
fn api_server_client(ca: &str, host: &str, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()])
        .resolve(host, addr)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Value {
    let r = client.post(url).json(body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn webhook_url(objects: &[Value], kind: &str, port: u16) -> String {
    let svc = &one(objects, kind)["webhooks"][0]["clientConfig"]["service"];
    format!(
        "https://{}.{}.svc:{port}{}",
        svc["name"].as_str().unwrap(),
        svc["namespace"].as_str().unwrap(),
        svc["path"].as_str().unwrap()
    )
}

/// The API server's order for one pod: the mutating webhook admits
/// `review` with a patch that pins its container to `pinned_image`, then the
/// validating webhook admits the patched object without a patch. Returns
/// the patched review.
async fn mutate_then_validate(
    client: &reqwest::Client,
    objects: &[Value],
    port: u16,
    review: &Value,
    pinned_image: &str,
) -> Value {
    let mutate = webhook_url(objects, "MutatingWebhookConfiguration", port);
    let mutated = post(client, &mutate, review).await;
    assert_eq!(mutated["response"]["allowed"], true, "{mutated}");
    let patch: json_patch::Patch =
        serde_json::from_str(&unb64(&mutated["response"]["patch"])).unwrap();
    let mut pinned = review.clone();
    json_patch::patch(&mut pinned["request"]["object"], &patch).unwrap();
    assert_eq!(
        pinned["request"]["object"]["spec"]["containers"][0]["image"],
        pinned_image
    );
    let validate = webhook_url(objects, "ValidatingWebhookConfiguration", port);
    let validated = post(client, &validate, &pinned).await;
    assert_eq!(validated["response"]["allowed"], true, "{validated}");
    assert!(validated["response"].get("patch").is_none(), "{validated}");
    pinned
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_objects_pass_the_schemas_and_deny_and_admit_through_serve() {
    let dir = tempfile::tempdir().unwrap();
    let settings = repo("examples/settings.yaml");
    let (file, objects) = scaffold_webhook(
        dir.path(),
        &["-s", settings.to_str().unwrap(), "--namespace", "shop-gate"],
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the file holds a private key");
    assert_schemas(&file, &[]);
    assert_semantics(&objects, "shop-gate", &["kube-system"], false);
    let (ca, _, _) = assert_certificates(&objects, "shop-gate");

    let server = start_like_the_deployment(&objects, dir.path(), &[]);
    let client = api_server_client(&ca, "imagegate.shop-gate.svc", server.addr());
    let url = webhook_url(
        &objects,
        "ValidatingWebhookConfiguration",
        server.addr().port(),
    );
    for probe in ["/readyz", "/healthz"] {
        let base = url.trim_end_matches("/validate");
        assert_eq!(
            client
                .get(format!("{base}{probe}"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let review = |image: &str| {
        imagegate_policy::testing::Request::pod(&[image])
            .namespace("shop")
            .review()
    };
    let denied = post(&client, &url, &review("nginx")).await;
    assert_eq!(denied["response"]["allowed"], false, "{denied}");
    assert!(
        denied["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains(r#"tag "latest" is denied"#),
        "{denied}"
    );
    let admitted = post(&client, &url, &review("nginx:1.27")).await;
    assert_eq!(admitted["response"]["allowed"], true, "{admitted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinning_goes_through_the_mutating_webhook_then_validates() {
    if !support::registry::available() {
        return;
    }
    let registry = support::registry::Registry::start(support::registry::Variant::Plain);
    let digest = support::image::Image::single("pinned", support::image::Format::Oci)
        .push(&registry, "shop/app", "1.0")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.yaml");
    std::fs::write(
        &settings,
        format!(
            "rules:\n- name: pinned\n  images: [\"{}/**\"]\n  pinDigest: true\n",
            registry.addr
        ),
    )
    .unwrap();
    let (file, objects) = scaffold_webhook(
        dir.path(),
        &["-s", settings.to_str().unwrap(), "--namespace", "gate"],
    );
    assert_schemas(&file, &[]);
    assert_semantics(&objects, "gate", &[], true);
    let (ca, _, _) = assert_certificates(&objects, "gate");
    let server = start_like_the_deployment(
        &objects,
        dir.path(),
        &["--insecure-registry", &registry.addr],
    );
    let client = api_server_client(&ca, "imagegate.gate.svc", server.addr());
    let port = server.addr().port();
    let image = registry.image("shop/app", "1.0");
    let review = imagegate_policy::testing::Request::pod(&[&image]).review();

    // The validating webhook alone cannot pin: a denial that says so.
    let validate = webhook_url(&objects, "ValidatingWebhookConfiguration", port);
    let alone = post(&client, &validate, &review).await;
    assert_eq!(alone["response"]["allowed"], false);
    assert!(
        alone["response"].get("patch").is_none(),
        "a validating webhook never patches"
    );
    let message = alone["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("which a validating webhook cannot do"),
        "{message}"
    );
    assert!(message.contains(&format!("{image}@{digest}")), "{message}");

    let pinned = mutate_then_validate(
        &client,
        &objects,
        port,
        &review,
        &format!("{image}@{digest}"),
    )
    .await;
    // Reinvoked on the pinned object, the mutating webhook changes nothing.
    let mutate = webhook_url(&objects, "MutatingWebhookConfiguration", port);
    let again = post(&client, &mutate, &pinned).await;
    assert_eq!(again["response"]["allowed"], true);
    assert!(again["response"].get("patch").is_none(), "{again}");
}

/// `--cache`: the replicas share verifications through a real
/// redis-server; its password and the HMAC key are in the `<name>-cache`
/// Secret, mounted read-only, never in the arguments. serve started as the
/// Deployment runs it admits a signed image and writes the verification to
/// Redis: it logged in with the password file and has the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_cache_from_a_secret() {
    use support::redis::{self, Redis, PASSWORD};
    if !support::registry::available() || !redis::available() {
        return;
    }
    let redis = Redis::start();
    let registry = support::registry::Registry::start(support::registry::Variant::Plain);
    let digest = support::image::Image::single("cached", support::image::Format::Oci)
        .push(&registry, "shop/app", "1.0")
        .await;
    let key = support::cosign::CosignKey::generate();
    let options = support::cosign::SignOptions::default();
    support::cosign::sign(&registry, "shop/app", &digest, &key, &options).await;
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.yaml");
    let rules = json!({
        "keys": {"release": {"cosign": key.public_pem()}},
        "rules": [{"name": "signed", "images": [format!("{}/**", registry.addr)],
                   "verify": {"anyOf": [{"cosign": {"keys": ["release"]}}]}}]
    });
    std::fs::write(&settings, rules.to_string()).unwrap();
    let hmac_key = "c2hhcmVkIGJ5IGV2ZXJ5IHJlcGxpY2Egb2YgaW1hZ2VnYXRl\n";
    let key_file = dir.path().join("hmac-key");
    std::fs::write(&key_file, hmac_key).unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let url = format!("redis://127.0.0.1:{}/0", redis.port);
    let (file, objects) = scaffold_webhook(
        dir.path(),
        &[
            "-s",
            settings.to_str().unwrap(),
            "--namespace",
            "gate",
            "--cache",
            &url,
            "--cache-hmac-key-file",
            key_file.to_str().unwrap(),
            "--cache-password-file",
            password_file.to_str().unwrap(),
        ],
    );
    assert_schemas(&file, &[]);
    assert_semantics(&objects, "gate", &[], false);
    let (ca, _, _) = assert_certificates(&objects, "gate");

    let secret = named(&objects, "Secret", "imagegate-cache");
    assert_eq!(unb64(&secret["data"]["hmac-key"]), hmac_key);
    assert_eq!(unb64(&secret["data"]["password"]), format!("{PASSWORD}\n"));
    let deployment = one(&objects, "Deployment");
    assert!(!deployment.to_string().contains(PASSWORD));
    let pod = &deployment["spec"]["template"];
    assert!(pod["metadata"]["annotations"]["imagegate.dev/cache-sha256"].is_string());
    let container = &pod["spec"]["containers"][0];
    let serve = parse_serve(&strings(&container["args"]));
    assert_eq!(serve.live.shared.cache.as_deref(), Some(url.as_str()));
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "cache")
        .unwrap();
    assert_eq!(mount["readOnly"], true);
    let mounted = Path::new(mount["mountPath"].as_str().unwrap());
    for file in [
        &serve.live.shared.cache_hmac_key_file,
        &serve.live.shared.cache_password_file,
    ] {
        assert_eq!(file.as_deref().and_then(Path::parent), Some(mounted));
    }
    assert!(pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .contains(&json!({"name": "cache", "secret": {"secretName": "imagegate-cache"}})));

    let server = start_like_the_deployment(
        &objects,
        dir.path(),
        &["--insecure-registry", &registry.addr],
    );
    let client = api_server_client(&ca, "imagegate.gate.svc", server.addr());
    let validate = webhook_url(
        &objects,
        "ValidatingWebhookConfiguration",
        server.addr().port(),
    );
    let image = registry.image("shop/app", "1.0");
    let review = imagegate_policy::testing::Request::pod(&[&image]).review();
    let admitted = post(&client, &validate, &review).await;
    assert_eq!(admitted["response"]["allowed"], true, "{admitted}");
    redis.wait_for_keys("imagegate:v1:cache:*", 1);
}

#[test]
fn cert_manager_sources_and_notary() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.yaml");
    std::fs::write(
        &settings,
        "exemptNamespaces: [kube-system, platform]\nsources: {tmax: true}\nrules:\n- name: dct\n  images: [\"registry.corp.example/**\"]\n  verify: {anyOf: [{notary: {server: \"https://notary.corp.example:4443\"}}]}\n",
    )
    .unwrap();
    let context = dir.path().join("context");
    std::fs::create_dir_all(context.join("tmax")).unwrap();
    std::fs::write(
        context.join("tmax/policies.yaml"),
        "apiVersion: tmax.io/v1\nkind: ClusterRegistrySecurityPolicy\nmetadata: {name: corp}\nspec: {registries: []}\n",
    )
    .unwrap();
    let (file, objects) = scaffold_webhook(
        dir.path(),
        &[
            "-s",
            settings.to_str().unwrap(),
            "--namespace",
            "registry-system",
            "--certificates",
            "cert-manager",
            "--context",
            context.to_str().unwrap(),
        ],
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644, "no private key in the output");
    assert_schemas(&file, &["Certificate", "Issuer"]);
    assert_semantics(
        &objects,
        "registry-system",
        &["kube-system", "platform"],
        true,
    );

    // cert-manager: self-signed issuer -> CA certificate -> CA issuer -> serving certificate.
    for o in find(&objects, "Certificate")
        .into_iter()
        .chain(find(&objects, "Issuer"))
    {
        assert_eq!(o["apiVersion"], "cert-manager.io/v1");
    }
    let selfsigned = named(&objects, "Issuer", "imagegate-selfsigned");
    assert_eq!(selfsigned["spec"], json!({"selfSigned": {}}));
    let ca_cert = named(&objects, "Certificate", "imagegate-ca");
    assert_eq!(ca_cert["spec"]["isCA"], true);
    let issuer_ref = |c: &Value, name: &str| {
        assert_eq!(
            c["spec"]["issuerRef"],
            json!({"name": name, "kind": "Issuer", "group": "cert-manager.io"})
        );
        named(&objects, "Issuer", name);
    };
    issuer_ref(ca_cert, "imagegate-selfsigned");
    let ca_issuer = named(&objects, "Issuer", "imagegate-ca");
    assert_eq!(
        ca_issuer["spec"]["ca"]["secretName"],
        ca_cert["spec"]["secretName"]
    );
    let serving = named(&objects, "Certificate", "imagegate-serving");
    issuer_ref(serving, "imagegate-ca");
    assert!(strings(&serving["spec"]["dnsNames"])
        .contains(&"imagegate.registry-system.svc".to_string()));
    let usages = strings(&serving["spec"]["usages"]);
    assert!(usages.contains(&"server auth".to_string()), "{usages:?}");
    let pod_spec = &one(&objects, "Deployment")["spec"]["template"]["spec"];
    assert!(pod_spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["secret"]["secretName"] == serving["spec"]["secretName"]));
    for config in objects.iter().filter(|o| {
        o["kind"]
            .as_str()
            .unwrap()
            .ends_with("WebhookConfiguration")
    }) {
        assert_eq!(
            config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "registry-system/imagegate-serving"
        );
        assert!(
            config["webhooks"][0]["clientConfig"]
                .get("caBundle")
                .is_none(),
            "cainjector fills it"
        );
    }

    // sources: the snapshot as a Secret serve reads with --context; Notary state on a volume.
    let snapshot = named(&objects, "Secret", "imagegate-context");
    assert_eq!(
        unb64(&snapshot["data"]["tmax.policies.yaml"]),
        std::fs::read_to_string(context.join("tmax/policies.yaml")).unwrap()
    );
    let pod = &one(&objects, "Deployment")["spec"]["template"];
    assert!(
        pod["metadata"]["annotations"]["imagegate.dev/context-sha256"]
            .as_str()
            .unwrap()
            .len()
            == 64
    );
    let serve = parse_serve(&strings(&pod["spec"]["containers"][0]["args"]));
    assert!(serve.policy_args.allow_context_aware);
    assert!(serve.live.context.is_some() && serve.live.notary_cache_dir.is_some());

    // Settings the policy rejects are refused, with the settings file named.
    std::fs::write(&settings, "rules: [{name: a, images: [\"ghcr.*/**\"]}]\n").unwrap();
    let run = imagegate(&[
        "scaffold",
        "webhook",
        "--image",
        IMAGE,
        "-m",
        repo("metadata.yml").to_str().unwrap(),
        "-s",
        settings.to_str().unwrap(),
    ]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("settings.yaml") && stderr.contains("rules[0].images[0]"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imagepolicywebhook_configuration_and_a_review_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server_url = format!("https://127.0.0.1:{port}");
    let out = dir.path().join("out");
    let run = imagegate(&[
        "scaffold",
        "imagepolicywebhook",
        "--server",
        &server_url,
        "--dir",
        "/etc/kubernetes/imagegate",
        "--allow-ttl",
        "30",
        "--deny-ttl",
        "10",
        "--retry-backoff",
        "250",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let notes = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(
        notes.contains("--admission-control-config-file=/etc/kubernetes/imagegate/admission.yaml"),
        "{notes}"
    );
    assert!(
        notes.contains("ImagePolicyWebhook") && notes.contains("alpha"),
        "{notes}"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(out.join("tls.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // Neither file has an API schema: kubernetes-validate must say so, and we check them here.
    let admission_file = out.join("admission.yaml");
    let kubeconfig_file = out.join("imagegate-kubeconfig.yaml");
    if let Some((ok, report)) = kube_validate(&admission_file, &[]) {
        assert!(!ok && report.contains("no schema"), "{report}");
        let (ok, report) = kube_validate(&kubeconfig_file, &["Config"]).unwrap();
        assert!(ok && report.contains("no-schema v1 Config"), "{report}");
    }
    let admission = &documents(&std::fs::read_to_string(&admission_file).unwrap())[0];
    assert_eq!(admission["apiVersion"], "apiserver.config.k8s.io/v1");
    assert_eq!(admission["kind"], "AdmissionConfiguration");
    let [plugin]: [Value; 1] = admission["plugins"]
        .as_array()
        .unwrap()
        .clone()
        .try_into()
        .unwrap();
    assert_eq!(plugin["name"], "ImagePolicyWebhook");
    let policy = plugin["configuration"]["imagePolicy"].as_object().unwrap();
    let keys: Vec<&str> = policy.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "kubeConfigFile",
            "allowTTL",
            "denyTTL",
            "retryBackoff",
            "defaultAllow"
        ]
    );
    assert_eq!(
        policy["kubeConfigFile"],
        "/etc/kubernetes/imagegate/imagegate-kubeconfig.yaml"
    );
    for (key, want) in [("allowTTL", 30), ("denyTTL", 10)] {
        let ttl = policy[key].as_i64().unwrap();
        assert!((1..=1800).contains(&ttl) && ttl == want, "{key} {ttl}");
    }
    assert!((1..=300_000).contains(&policy["retryBackoff"].as_i64().unwrap()));
    assert_eq!(
        policy["defaultAllow"], false,
        "an unreachable imagegate denies"
    );

    let kubeconfig = &documents(&std::fs::read_to_string(&kubeconfig_file).unwrap())[0];
    assert_eq!(
        (
            kubeconfig["apiVersion"].as_str(),
            kubeconfig["kind"].as_str()
        ),
        (Some("v1"), Some("Config"))
    );
    let current = kubeconfig["current-context"].as_str().unwrap();
    let context = kubeconfig["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == current)
        .unwrap();
    let cluster = kubeconfig["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == context["context"]["cluster"])
        .unwrap();
    assert!(kubeconfig["users"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["name"] == context["context"]["user"]));
    let url = cluster["cluster"]["server"].as_str().unwrap().to_string();
    assert_eq!(url, format!("{server_url}/imagereview"));
    let ca = unb64(&cluster["cluster"]["certificate-authority-data"]);
    assert_eq!(ca, std::fs::read_to_string(out.join("ca.crt")).unwrap());
    let cert = std::fs::read_to_string(out.join("tls.crt")).unwrap();
    verifies(&ca, &cert, "127.0.0.1").unwrap();

    // serve on that address with those files; the API server's request through the kubeconfig.
    let serve_line = notes
        .lines()
        .find(|l| {
            l.trim_start_matches('#')
                .trim()
                .starts_with("imagegate serve")
        })
        .unwrap();
    let printed: Vec<String> = serve_line
        .trim_start_matches('#')
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect();
    let printed = parse_serve(&printed);
    assert_eq!(printed.addr.to_string(), format!("127.0.0.1:{port}"));
    let settings = repo("examples/settings.yaml");
    let server = imagegate::cli::serve::start(&parse_serve(
        &[
            "serve",
            "--policy",
            imagegate_policy::testing::policy_wasm().to_str().unwrap(),
            "--addr",
            &printed.addr.to_string(),
            "-s",
            settings.to_str().unwrap(),
            "--tls-cert",
            out.join("tls.crt").to_str().unwrap(),
            "--tls-key",
            out.join("tls.key").to_str().unwrap(),
        ]
        .map(str::to_string),
    ))
    .unwrap();
    let client = api_server_client(&ca, "127.0.0.1", server.addr());
    let review = |image: &str| {
        json!({"apiVersion": "imagepolicy.k8s.io/v1alpha1", "kind": "ImageReview",
        "spec": {"containers": [{"image": image}], "namespace": "shop"}})
    };
    let denied = post(&client, &url, &review("nginx")).await;
    assert_eq!(denied["status"]["allowed"], false, "{denied}");
    assert!(denied["status"]["reason"]
        .as_str()
        .unwrap()
        .contains(r#"tag "latest" is denied"#));
    let admitted = post(&client, &url, &review("nginx:1.27")).await;
    assert_eq!(admitted["status"]["allowed"], true, "{admitted}");

    // Printed instead of written: valid YAML documents, PEM files as comments.
    let run = imagegate(&[
        "scaffold",
        "imagepolicywebhook",
        "--ca",
        out.join("ca.crt").to_str().unwrap(),
    ]);
    assert!(run.status.success());
    let printed = documents(&String::from_utf8_lossy(&run.stdout));
    assert_eq!(printed.len(), 2);
    assert_eq!(
        printed[1]["clusters"][0]["cluster"]["certificate-authority-data"],
        b64(&ca)
    );
    let bad = imagegate(&["scaffold", "imagepolicywebhook", "--deny-ttl", "0"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--deny-ttl 0"));
}

/// The Notary path of the README for tmax and sighup users, against a real
/// notary-server and registry: their objects converted (convert says the
/// settings need imagegate's host and asks for the private Notary CA, which
/// is added as `caCert`), scaffolded, and serve started as the Deployment
/// runs it. The mutating webhook pins a signed tag to the digest Notary
/// signed, the validating one admits the pinned pod, an unsigned tag is
/// denied, and the trust-on-first-use state is on the pod's `emptyDir`.
/// Then tmax's objects read at request time (`sources: {tmax: true}`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_path_for_tmax_and_sighup_users() {
    if !support::registry::available() || !support::notary::available() {
        return;
    }
    let registry = support::registry::Registry::start(support::registry::Variant::Plain);
    let mut lab = support::notary::NotaryLab::start();
    let gun = format!("{}/demo/app", registry.addr);
    let signed = support::image::Image::single("notary signed", support::image::Format::Oci);
    let digest = signed.push(&registry, "demo/app", "1.0").await;
    support::image::Image::single("notary unsigned", support::image::Format::Oci)
        .push(&registry, "demo/app", "2.0")
        .await;
    lab.init(&gun);
    let jenkins = lab.add_signer(&gun, "jenkins", false, &["jenkins"]);
    lab.sign(
        &gun,
        "1.0",
        digest.trim_start_matches("sha256:"),
        signed.top.len() as u64,
        &["jenkins"],
    );
    let sighup = format!(
        "strict: true\nrepositories:\n- name: {}/demo/.*\n  priority: 10\n  trust:\n    enabled: true\n    trustServer: {}\n    signers:\n    - role: targets/jenkins\n      publicKey: {}\n",
        registry.addr.replace('.', "\\."),
        lab.url,
        b64(&jenkins)
    );
    let tmax = format!(
        "apiVersion: tmax.io/v1\nkind: ClusterRegistrySecurityPolicy\nmetadata: {{name: corp}}\nspec:\n  registries:\n  - registry: {}\n    notary: {}\n    signer: [jenkins]\n    signCheck: true\n",
        registry.addr, lab.url
    );
    for (dialect, source) in [("sighup", sighup), ("tmax", tmax.clone())] {
        let dir = tempfile::tempdir().unwrap();
        let source_file = dir.path().join(format!("{dialect}.yaml"));
        std::fs::write(&source_file, source).unwrap();
        let run = imagegate(&["convert", "--from", dialect, source_file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{dialect}: {stderr}");
        assert!(
            stderr.contains("these settings need imagegate's own host: rules[0]")
                && stderr.contains("calls notary/v1/signed_digest")
                && stderr.contains("imagegate serve")
                && stderr.contains("caCert"),
            "{dialect}: {stderr}"
        );
        // What the note asks for: the private Notary CA on each Notary check.
        let mut settings: Value = serde_yaml_ng::from_slice(&run.stdout).unwrap();
        let mut notary_checks = 0;
        for rule in settings["rules"].as_array_mut().unwrap() {
            for checks in rule["verify"].as_object_mut().unwrap().values_mut() {
                for check in checks.as_array_mut().unwrap() {
                    if let Some(notary) = check.get_mut("notary") {
                        notary["caCert"] = json!(lab.ca_pem);
                        notary_checks += 1;
                    }
                }
            }
        }
        assert_eq!(notary_checks, 1, "{dialect}: {settings}");
        let settings_file = dir.path().join("settings.yaml");
        std::fs::write(&settings_file, serde_yaml_ng::to_string(&settings).unwrap()).unwrap();
        let ns = format!("{dialect}-gate");
        let (file, objects) = scaffold_webhook(
            dir.path(),
            &["-s", settings_file.to_str().unwrap(), "--namespace", &ns],
        );
        assert_schemas(&file, &[]);
        assert_semantics(&objects, &ns, &[], true);
        let (ca, _, _) = assert_certificates(&objects, &ns);

        let server = start_like_the_deployment(
            &objects,
            dir.path(),
            &["--insecure-registry", &registry.addr],
        );
        let client = api_server_client(&ca, &format!("imagegate.{ns}.svc"), server.addr());
        let port = server.addr().port();
        let image = registry.image("demo/app", "1.0");
        let review = imagegate_policy::testing::Request::pod(&[&image]).review();
        // Pinned to the digest Notary signed.
        mutate_then_validate(
            &client,
            &objects,
            port,
            &review,
            &format!("{image}@{digest}"),
        )
        .await;
        let mutate = webhook_url(&objects, "MutatingWebhookConfiguration", port);
        let unsigned = registry.image("demo/app", "2.0");
        let denied = post(
            &client,
            &mutate,
            &imagegate_policy::testing::Request::pod(&[&unsigned]).review(),
        )
        .await;
        assert_eq!(denied["response"]["allowed"], false, "{dialect}: {denied}");
        let message = denied["response"]["status"]["message"].as_str().unwrap();
        assert!(
            message.contains(&unsigned) && message.contains("notary"),
            "{dialect}: {message}"
        );
        assert!(
            std::fs::read_dir(dir.path().join("volumes/notary"))
                .unwrap()
                .next()
                .is_some(),
            "{dialect}: the trusted Notary root is kept on the emptyDir"
        );
    }

    // tmax policies read at request time: the objects go into the --context snapshot, and
    // the private Notary CA into the bundle replacing the image's (--ca-bundle: tmax objects
    // carry no CA). serve runs as the image runs it: its own process, the annotated module,
    // the Deployment's environment (SSL_CERT_FILE).
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("context");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("policies.yaml"), &tmax).unwrap();
    let settings_file = dir.path().join("settings.yaml");
    std::fs::write(&settings_file, "sources: {tmax: true}\n").unwrap();
    let bundle = dir.path().join("ca-certificates.crt");
    std::fs::write(&bundle, &lab.ca_pem).unwrap();
    let (file, objects) = scaffold_webhook(
        dir.path(),
        &[
            "-s",
            settings_file.to_str().unwrap(),
            "--namespace",
            "registry-system",
            "--context",
            context.to_str().unwrap(),
            "--ca-bundle",
            bundle.to_str().unwrap(),
        ],
    );
    assert_schemas(&file, &[]);
    assert_semantics(&objects, "registry-system", &[], true);
    assert_eq!(
        named(&objects, "ConfigMap", "imagegate-ca-bundle")["data"]["ca-certificates.crt"],
        lab.ca_pem
    );
    let (ca, _, _) = assert_certificates(&objects, "registry-system");
    let annotated = dir.path().join("policy.wasm");
    let run = imagegate(&[
        "annotate",
        "-m",
        repo("metadata.yml").to_str().unwrap(),
        "-o",
        annotated.to_str().unwrap(),
        imagegate_policy::testing::policy_wasm().to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let (args, env) = deployment_args(
        &objects,
        dir.path(),
        &annotated,
        &["--insecure-registry", &registry.addr],
    );
    let serve = ServeProcess::start(&args, &env);
    let client = api_server_client(&ca, "imagegate.registry-system.svc", serve.addr);
    let port = serve.addr.port();
    let image = registry.image("demo/app", "1.0");
    let review = imagegate_policy::testing::Request::pod(&[&image])
        .namespace("shop")
        .review();
    mutate_then_validate(
        &client,
        &objects,
        port,
        &review,
        &format!("{image}@{digest}"),
    )
    .await;
    let unsigned = registry.image("demo/app", "2.0");
    let mutate = webhook_url(&objects, "MutatingWebhookConfiguration", port);
    let denied = post(
        &client,
        &mutate,
        &imagegate_policy::testing::Request::pod(&[&unsigned])
            .namespace("shop")
            .review(),
    )
    .await;
    assert_eq!(denied["response"]["allowed"], false, "{denied}");
    assert!(
        denied["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains(&unsigned),
        "{denied}"
    );
}

/// The `imagegate` binary running `serve ARGS` with `env` added; killed on drop.
struct ServeProcess {
    child: std::process::Child,
    addr: SocketAddr,
}

impl ServeProcess {
    fn start(args: &[String], env: &[(String, String)]) -> ServeProcess {
        use std::io::BufRead as _;
        let mut child = Command::new(env!("CARGO_BIN_EXE_imagegate"))
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let addr = loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                let _ = child.kill();
                panic!("serve exited: {seen}");
            }
            seen.push_str(&line);
            if let Some(rest) = line.split("listening on https://").nth(1) {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        // Keep draining: serve must never see a closed stderr.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        ServeProcess { child, addr }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
