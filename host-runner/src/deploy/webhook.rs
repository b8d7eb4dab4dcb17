//! Everything that runs `imagegate serve` as an admission webhook in one
//! namespace (`imagegate scaffold webhook`), written from the policy's
//! metadata and the settings:
//!
//! * Namespace (Pod Security `restricted` enforced: the pod complies),
//!   ServiceAccount without a token (serve reads no Kubernetes API), the
//!   settings as a ConfigMap mounted as a directory (serve re-reads the file;
//!   a `subPath` mount would never see an update), and with `sources` the
//!   snapshot of the objects they read as a Secret (`--context`: it may hold
//!   Secrets; pods restart when it changes, through a checksum annotation).
//! * Deployment: replicas spread over nodes (preferred anti-affinity), a
//!   PodDisruptionBudget, probes on `/readyz` and `/healthz`, requests and a
//!   memory limit that covers serve's guest-memory bound, non-root 65532,
//!   read-only root filesystem, no capabilities, seccomp `RuntimeDefault`.
//! * Service on 443, ValidatingWebhookConfiguration at `/validate` and, when
//!   the settings pin digests, a MutatingWebhookConfiguration at `/mutate`
//!   (`reinvocationPolicy: IfNeeded`): `failurePolicy: Fail`, `sideEffects:
//!   None`, a `timeoutSeconds` above serve's own worst case, the metadata's
//!   rules, and a namespaceSelector that never sends imagegate's namespace
//!   (no lock-out) or the settings' exact `exemptNamespaces`.
//! * With `--cache`, the Redis cache the replicas share: its HMAC key (and
//!   the Redis password and CA, when given) in a Secret mounted read-only,
//!   the URL, without a password, in serve's arguments.
//! * Certificates: generated here (a Secret and the `caBundle`), or
//!   cert-manager objects (a self-signed CA issuer, a serving Certificate,
//!   and `cert-manager.io/inject-ca-from` on the webhook configurations).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

use imagegate_policy::requirements::Requirements;
use imagegate_policy::settings::Policy;

use super::certs::Certificates;
use super::image;
use super::serve_command::{ServeCommand, SharedCacheFlags, MAX_CONCURRENCY, MEMORY_LIMIT_MIB};
use crate::capabilities::shared::redis::RedisConfig;
use crate::packaging::metadata::Metadata;
use crate::packaging::scaffold::is_dns_label;

/// Where the Deployment mounts the settings ConfigMap.
const SETTINGS_DIR: &str = "/etc/imagegate/settings";
const SETTINGS_FILE: &str = "settings.yaml";
const TLS_DIR: &str = "/etc/imagegate/tls";
const CONTEXT_DIR: &str = "/etc/imagegate/context";
const CA_DIR: &str = "/etc/imagegate/ca";
const CA_FILE: &str = "ca-certificates.crt";
const NOTARY_DIR: &str = "/var/cache/imagegate/notary";
const CACHE_DIR: &str = "/etc/imagegate/cache";
/// The settings file in the Deployment's pods; the image's default command
/// reads it there too.
pub(super) fn settings_path() -> PathBuf {
    PathBuf::from(SETTINGS_DIR).join(SETTINGS_FILE)
}

/// What the API server adds to serve's worst case: TLS and the round trip.
const NETWORK_MARGIN: Duration = Duration::from_secs(2);
/// A Secret or ConfigMap holds at most 1 MiB.
const OBJECT_LIMIT: usize = 1 << 20;

/// Where the serving certificate comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CertSource {
    /// A CA and certificate generated now: a Secret, and the `caBundle`.
    Generate,
    /// cert-manager issues and renews them and injects the CA bundle.
    CertManager,
}

/// What `imagegate scaffold webhook` was asked for.
pub struct Options {
    pub namespace: String,
    /// Name of the Deployment, Service, ServiceAccount (and prefix of the rest).
    pub name: String,
    /// The container image (`make image`), used as given.
    pub image: String,
    /// The settings as the user wrote them (YAML or JSON).
    pub settings_text: String,
    /// Files of Kubernetes objects for `sources`: name -> text.
    pub context: BTreeMap<String, String>,
    /// CA certificates (PEM) replacing the image's bundle (SSL_CERT_FILE).
    pub ca_bundle: Option<String>,
    pub replicas: u32,
    /// serve's evaluation deadline.
    pub timeout: Duration,
    pub cert_source: CertSource,
    pub shared_cache: Option<SharedCache>,
}

/// The Redis cache the replicas share (serve's `--cache`).
pub struct SharedCache {
    /// `redis://host:port/db` or `rediss://`, without a password.
    pub url: String,
    /// The key file's content, as serve reads it.
    pub hmac_key: Vec<u8>,
    /// The password file's content.
    pub password: Option<Vec<u8>>,
    /// CA certificates (PEM) trusted for `rediss://`.
    pub ca: Option<String>,
}

impl SharedCache {
    /// The Secret's files, base64-encoded, and serve's flags reading them.
    fn secret(&self) -> Result<(BTreeMap<String, String>, SharedCacheFlags)> {
        let redis = RedisConfig::parse(&self.url)?;
        if redis.password.is_some() {
            bail!(
                "--cache {}: give the password with --cache-password-file (it goes into a Secret),                  not in the URL, which is in the Deployment's arguments",
                redis.display()
            );
        }
        if self.ca.is_some() && !redis.tls {
            bail!("--cache-ca is for rediss:// URLs");
        }
        if self
            .ca
            .as_ref()
            .is_some_and(|ca| !ca.contains("-----BEGIN CERTIFICATE-----"))
        {
            bail!("--cache-ca holds no PEM certificate");
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let file = |name: &str| PathBuf::from(CACHE_DIR).join(name);
        let mut data = BTreeMap::from([("hmac-key".to_string(), b64.encode(&self.hmac_key))]);
        if let Some(password) = &self.password {
            data.insert("password".into(), b64.encode(password));
        }
        if let Some(ca) = &self.ca {
            data.insert("ca.crt".into(), b64.encode(ca));
        }
        let flags = SharedCacheFlags {
            url: self.url.clone(),
            hmac_key_file: file("hmac-key"),
            password_file: self.password.as_ref().map(|_| file("password")),
            ca_file: self.ca.as_ref().map(|_| file("ca.crt")),
        };
        Ok((data, flags))
    }
}

/// The DNS names the API server uses for the Service.
pub fn service_names(name: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{name}.{namespace}.svc"),
        format!("{name}.{namespace}.svc.cluster.local"),
        format!("{name}.{namespace}"),
        name.to_string(),
    ]
}

/// The objects, in apply order. `certificates` are used with
/// [`CertSource::Generate`].
pub fn manifests(
    metadata: &Metadata,
    options: &Options,
    certificates: Option<&Certificates>,
) -> Result<Vec<Value>> {
    for (what, value) in [("namespace", &options.namespace), ("name", &options.name)] {
        if !is_dns_label(value) {
            bail!("invalid {what} {value:?}: a DNS label (lower-case letters, digits and '-', at most 63)");
        }
    }
    if options.image.trim().is_empty() || options.image.contains(char::is_whitespace) {
        bail!("invalid image {:?}", options.image);
    }
    let settings: Value = serde_yaml_ng::from_str(&options.settings_text)
        .context("the settings are not YAML or JSON")?;
    let settings = match settings {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => bail!("the settings must be a mapping, not {other}"),
    };
    let needs = Policy::from_json(&Value::Object(settings.clone()).to_string())
        .map(|p| p.requirements())
        .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
    if needs.reads_cluster && options.context.is_empty() {
        bail!(
            "the settings have `sources`, which read Kubernetes objects: serve reads them from a \
             snapshot, pass it with --context DIR (see the README)"
        );
    }
    if !needs.reads_cluster && !options.context.is_empty() {
        bail!("--context is only used by settings with `sources`");
    }
    let shared_cache = options
        .shared_cache
        .as_ref()
        .map(SharedCache::secret)
        .transpose()?;
    let command = ServeCommand {
        addr: format!("0.0.0.0:{}", image::PORT),
        settings: settings_path(),
        tls_cert: PathBuf::from(TLS_DIR).join("tls.crt"),
        tls_key: PathBuf::from(TLS_DIR).join("tls.key"),
        timeout: options.timeout,
        context: needs.reads_cluster.then(|| CONTEXT_DIR.into()),
        notary_cache_dir: (!needs.imagegate_host.is_empty()).then(|| NOTARY_DIR.into()),
        shared_cache: shared_cache.as_ref().map(|(_, flags)| flags.clone()),
    };
    let timeout_seconds = (command.worst_case() + NETWORK_MARGIN).as_secs_f64().ceil() as u64;
    if timeout_seconds > 30 {
        bail!(
            "--timeout {} ms leaves the API server no time: its webhook timeout is at most 30 s",
            options.timeout.as_millis()
        );
    }

    let ns = options.namespace.as_str();
    let name = options.name.as_str();
    let labels = json!({"app.kubernetes.io/name": "imagegate", "app.kubernetes.io/instance": name});
    let meta = |object: &str| json!({"name": object, "namespace": ns, "labels": labels});
    let tls_secret = format!("{name}-tls");
    let mut objects = vec![
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": ns, "labels": {
                   "pod-security.kubernetes.io/enforce": "restricted",
                   "pod-security.kubernetes.io/enforce-version": "latest"}}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(name),
               "automountServiceAccountToken": false}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(&format!("{name}-settings")),
               "data": {SETTINGS_FILE: options.settings_text}}),
    ];
    let mut pod_annotations = Map::new();
    if !options.context.is_empty() {
        let size: usize = options.context.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > OBJECT_LIMIT * 3 / 4 {
            bail!("the --context snapshot is {size} bytes; a Secret holds at most 1 MiB (base64 included)");
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let data: Map<String, Value> = options
            .context
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(b64.encode(v))))
            .collect();
        pod_annotations.insert(
            "imagegate.dev/context-sha256".into(),
            json!(checksum(&options.context)),
        );
        objects.push(
            json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                            "metadata": meta(&format!("{name}-context")), "data": data}),
        );
    }
    if let Some(bundle) = &options.ca_bundle {
        if !bundle.contains("-----BEGIN CERTIFICATE-----") {
            bail!("--ca-bundle holds no PEM certificate");
        }
        if bundle.len() > OBJECT_LIMIT * 3 / 4 {
            bail!(
                "the --ca-bundle is {} bytes; a ConfigMap holds at most 1 MiB",
                bundle.len()
            );
        }
        // The TLS roots are read at start: a new bundle rolls the pods.
        pod_annotations.insert(
            "imagegate.dev/ca-bundle-sha256".into(),
            json!(checksum(&BTreeMap::from([(
                CA_FILE.to_string(),
                bundle.clone()
            )]))),
        );
        objects.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": meta(&format!("{name}-ca-bundle")), "data": {CA_FILE: bundle}}));
    }
    if let Some((data, _)) = &shared_cache {
        // serve reads the key and password at start: new ones roll the pods.
        pod_annotations.insert("imagegate.dev/cache-sha256".into(), json!(checksum(data)));
        objects.push(
            json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": meta(&format!("{name}-cache")), "data": data}),
        );
    }
    let ca_bundle = match (options.cert_source, certificates) {
        (CertSource::Generate, Some(c)) => {
            let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
            // serve reads its certificate at start: new certificates roll the pods.
            pod_annotations.insert(
                "imagegate.dev/tls-sha256".into(),
                json!(checksum(&BTreeMap::from([(
                    "tls.crt".to_string(),
                    c.cert_pem.clone()
                )]))),
            );
            objects.push(json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": meta(&tls_secret),
                "data": {"tls.crt": b64(&c.cert_pem), "tls.key": b64(&c.key_pem), "ca.crt": b64(&c.ca_pem)}}));
            Some(b64(&c.ca_pem))
        }
        (CertSource::Generate, None) => bail!("certificates to generate were not given"),
        (CertSource::CertManager, _) => {
            objects.extend(cert_manager(ns, name, &tls_secret, &labels));
            None
        }
    };
    objects.push(deployment(
        options,
        &command,
        &labels,
        &tls_secret,
        pod_annotations,
        &needs,
    ));
    objects.push(
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": meta(name),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}}}),
    );
    objects.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": meta(name),
        "spec": {"selector": labels, "ports": [{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}]}}));

    let exempt: Vec<String> = settings
        .get("exemptNamespaces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|n| !n.contains('*'))
        .map(str::to_string)
        .collect();
    let mut excluded = vec![ns.to_string()];
    excluded.extend(exempt.into_iter().filter(|n| n != ns));
    let webhook = |kind: &str, path: &str| {
        let mut client =
            json!({"service": {"namespace": ns, "name": name, "path": path, "port": 443}});
        if let Some(bundle) = &ca_bundle {
            client["caBundle"] = json!(bundle);
        }
        let mut hook = json!({
            "name": format!("{}.{name}.{ns}.svc", path.trim_start_matches('/')),
            "admissionReviewVersions": ["v1"],
            "clientConfig": client,
            "rules": metadata.rules,
            "failurePolicy": "Fail",
            "matchPolicy": "Equivalent",
            "sideEffects": "None",
            "timeoutSeconds": timeout_seconds,
            "namespaceSelector": {"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": excluded}]},
        });
        if kind == "MutatingWebhookConfiguration" {
            hook["reinvocationPolicy"] = json!("IfNeeded");
        }
        let mut metadata = json!({"name": format!("{name}-{ns}"), "labels": labels});
        if options.cert_source == CertSource::CertManager {
            metadata["annotations"] =
                json!({"cert-manager.io/inject-ca-from": format!("{ns}/{name}-serving")});
        }
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
               "metadata": metadata, "webhooks": [hook]})
    };
    if needs.mutates {
        objects.push(webhook("MutatingWebhookConfiguration", "/mutate"));
    }
    objects.push(webhook("ValidatingWebhookConfiguration", "/validate"));
    Ok(objects)
}

fn deployment(
    options: &Options,
    command: &ServeCommand,
    labels: &Value,
    tls_secret: &str,
    annotations: Map<String, Value>,
    needs: &Requirements,
) -> Value {
    let name = options.name.as_str();
    let mut volumes = vec![
        json!({"name": "settings", "configMap": {"name": format!("{name}-settings")}}),
        json!({"name": "tls", "secret": {"secretName": tls_secret}}),
    ];
    let mut mounts = vec![
        json!({"name": "settings", "mountPath": SETTINGS_DIR, "readOnly": true}),
        json!({"name": "tls", "mountPath": TLS_DIR, "readOnly": true}),
    ];
    if needs.reads_cluster {
        volumes
            .push(json!({"name": "context", "secret": {"secretName": format!("{name}-context")}}));
        mounts.push(json!({"name": "context", "mountPath": CONTEXT_DIR, "readOnly": true}));
    }
    if !needs.imagegate_host.is_empty() {
        volumes.push(json!({"name": "notary", "emptyDir": {"sizeLimit": "64Mi"}}));
        mounts.push(json!({"name": "notary", "mountPath": NOTARY_DIR}));
    }
    if options.shared_cache.is_some() {
        volumes.push(json!({"name": "cache", "secret": {"secretName": format!("{name}-cache")}}));
        mounts.push(json!({"name": "cache", "mountPath": CACHE_DIR, "readOnly": true}));
    }
    let mut env = vec![];
    if options.ca_bundle.is_some() {
        volumes
            .push(json!({"name": "ca-bundle", "configMap": {"name": format!("{name}-ca-bundle")}}));
        mounts.push(json!({"name": "ca-bundle", "mountPath": CA_DIR, "readOnly": true}));
        env.push(json!({"name": "SSL_CERT_FILE", "value": format!("{CA_DIR}/{CA_FILE}")}));
    }
    let probe = |path: &str, period: u32| {
        json!({"httpGet": {"path": path, "port": "https", "scheme": "HTTPS"},
               "periodSeconds": period, "timeoutSeconds": 2, "failureThreshold": 3})
    };
    // Guest memory bound plus the host (wasmtime, caches, TLS).
    let memory_limit = MAX_CONCURRENCY * MEMORY_LIMIT_MIB + 256;
    let mut deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": options.namespace, "labels": labels},
        "spec": {
            "replicas": options.replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {
                    "serviceAccountName": name,
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "terminationGracePeriodSeconds": super::serve_command::TERMINATION_GRACE_PERIOD.as_secs(),
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": image::USER_ID,
                        "runAsGroup": image::USER_ID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                        "weight": 100,
                        "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                            "labelSelector": {"matchLabels": labels}},
                    }]}},
                    "containers": [{
                        "name": "imagegate",
                        "image": options.image,
                        "imagePullPolicy": "IfNotPresent",
                        "args": command.args(),
                        "ports": [{"name": "https", "containerPort": image::PORT, "protocol": "TCP"}],
                        "readinessProbe": probe("/readyz", 5),
                        "livenessProbe": probe("/healthz", 10),
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "128Mi"},
                            "limits": {"memory": format!("{memory_limit}Mi")},
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "runAsNonRoot": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                },
            },
        },
    });
    if !env.is_empty() {
        deployment["spec"]["template"]["spec"]["containers"][0]["env"] = json!(env);
    }
    deployment
}

/// A self-signed CA issuer and the serving Certificate signed by it
/// (cert-manager's "bootstrapping CA issuers"); the Certificate's Secret is
/// the one the Deployment mounts.
fn cert_manager(ns: &str, name: &str, tls_secret: &str, labels: &Value) -> Vec<Value> {
    let meta = |object: String| json!({"name": object, "namespace": ns, "labels": labels});
    let issuer =
        |issuer: String| json!({"name": issuer, "kind": "Issuer", "group": "cert-manager.io"});
    let key = json!({"algorithm": "ECDSA", "size": 256});
    vec![
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
               "metadata": meta(format!("{name}-selfsigned")), "spec": {"selfSigned": {}}}),
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
               "metadata": meta(format!("{name}-ca")),
               "spec": {"isCA": true, "commonName": format!("{name} webhook CA ({ns})"),
                        "secretName": format!("{name}-ca"), "privateKey": key,
                        "issuerRef": issuer(format!("{name}-selfsigned"))}}),
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
               "metadata": meta(format!("{name}-ca")), "spec": {"ca": {"secretName": format!("{name}-ca")}}}),
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
               "metadata": meta(format!("{name}-serving")),
               "spec": {"secretName": tls_secret, "dnsNames": service_names(name, ns),
                        "usages": ["server auth", "digital signature"],
                        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
                        "issuerRef": issuer(format!("{name}-ca"))}}),
    ]
}

fn checksum(files: &BTreeMap<String, String>) -> String {
    let mut hash = Sha256::new();
    for (k, v) in files {
        hash.update((k.len() as u64).to_le_bytes());
        hash.update(k);
        hash.update((v.len() as u64).to_le_bytes());
        hash.update(v);
    }
    hex::encode(hash.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> Metadata {
        Metadata::from_yaml_file(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../metadata.yml"),
        )
        .unwrap()
    }

    fn options(settings: &str) -> Options {
        Options {
            namespace: "gate".into(),
            name: "imagegate".into(),
            image: "registry.example/imagegate@sha256:0".into(),
            settings_text: settings.into(),
            context: BTreeMap::new(),
            ca_bundle: None,
            replicas: 2,
            timeout: Duration::from_secs(2),
            cert_source: CertSource::CertManager,
            shared_cache: None,
        }
    }

    fn kinds(objects: &[Value]) -> Vec<&str> {
        objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn a_mutating_webhook_only_when_something_pins() {
        let m = metadata();
        let plain = manifests(
            &m,
            &options("exemptNamespaces: [kube-system, team-*]\n"),
            None,
        )
        .unwrap();
        assert!(!kinds(&plain).contains(&"MutatingWebhookConfiguration"));
        let vwc = plain.last().unwrap();
        assert_eq!(vwc["kind"], "ValidatingWebhookConfiguration");
        assert_eq!(
            vwc["webhooks"][0]["namespaceSelector"]["matchExpressions"][0]["values"],
            json!(["gate", "kube-system"]),
            "globs stay with the policy"
        );
        assert_eq!(vwc["webhooks"][0]["timeoutSeconds"], 5);
        let pinning = "rules: [{name: p, images: ['*'], pinDigest: true}]\n";
        let both = manifests(&m, &options(pinning), None).unwrap();
        let mwc = both
            .iter()
            .find(|o| o["kind"] == "MutatingWebhookConfiguration")
            .unwrap();
        assert_eq!(
            mwc["webhooks"][0]["clientConfig"]["service"]["path"],
            "/mutate"
        );
        assert_eq!(mwc["webhooks"][0]["reinvocationPolicy"], "IfNeeded");
        assert_eq!(
            mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "gate/imagegate-serving"
        );
        assert!(mwc["webhooks"][0]["clientConfig"].get("caBundle").is_none());
    }

    #[test]
    fn a_ca_bundle_becomes_ssl_cert_file() {
        let m = metadata();
        let mut o = options("{}");
        o.ca_bundle = Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into());
        let objects = manifests(&m, &o, None).unwrap();
        let bundle = objects
            .iter()
            .find(|o| o["metadata"]["name"] == "imagegate-ca-bundle")
            .unwrap();
        assert_eq!(bundle["data"][CA_FILE], o.ca_bundle.unwrap());
        let pod = &objects.iter().find(|o| o["kind"] == "Deployment").unwrap()["spec"]["template"];
        let container = &pod["spec"]["containers"][0];
        assert_eq!(
            container["env"],
            json!([{"name": "SSL_CERT_FILE", "value": "/etc/imagegate/ca/ca-certificates.crt"}])
        );
        assert!(pod["metadata"]["annotations"]["imagegate.dev/ca-bundle-sha256"].is_string());
        let mut o = options("{}");
        o.ca_bundle = Some("not a certificate".into());
        let err = manifests(&m, &o, None).unwrap_err().to_string();
        assert!(
            err.contains("--ca-bundle holds no PEM certificate"),
            "{err}"
        );
    }

    #[test]
    fn a_shared_cache_keeps_its_secrets_out_of_the_arguments() {
        let m = metadata();
        let with = |url: &str, ca: Option<&str>| {
            let mut o = options("{}");
            o.shared_cache = Some(SharedCache {
                url: url.into(),
                hmac_key: b"k".repeat(32),
                password: None,
                ca: ca.map(str::to_string),
            });
            manifests(&m, &o, None).map_err(|e| format!("{e:#}"))
        };
        let objects = with("redis://redis.gate.svc:6379/0", None).unwrap();
        let secret = objects
            .iter()
            .find(|o| o["metadata"]["name"] == "imagegate-cache")
            .unwrap();
        assert_eq!(
            secret["data"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["hmac-key"]
        );
        let err = with("redis://:hunter2@redis.gate.svc:6379/0", None).unwrap_err();
        assert!(err.contains("--cache-password-file"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let err = with("redis://redis.gate.svc", Some(pem)).unwrap_err();
        assert!(err.contains("for rediss:// URLs"), "{err}");
        let err = with("rediss://redis.gate.svc", Some("no")).unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
        let err = with("http://redis.gate.svc", None).unwrap_err();
        assert!(err.contains("use redis:// or rediss://"), "{err}");
    }

    #[test]
    fn bad_input_is_refused() {
        let m = metadata();
        let err = |o: Options| format!("{:#}", manifests(&m, &o, None).unwrap_err());
        assert!(err(options("rules: [{name: a}]\n")).starts_with("invalid settings: rules[0]"));
        assert!(err(options("- a\n")).contains("must be a mapping"));
        assert!(err(options("sources: {tmax: true}\n")).contains("--context DIR"));
        let mut o = options("{}");
        o.namespace = "Gate".into();
        assert!(err(o).contains("invalid namespace"));
        let mut o = options("{}");
        o.timeout = Duration::from_secs(28);
        assert!(err(o).contains("at most 30 s"));
        let mut o = options("{}");
        o.cert_source = CertSource::Generate;
        assert!(err(o).contains("not given"));
    }

    #[test]
    fn notary_and_sources_get_their_volumes_and_flags() {
        let m = metadata();
        let mut o = options(
            "sources: {tmax: true}\nrules: [{name: n, images: ['*'], verify: {anyOf: [{notary: {server: 'https://n'}}]}}]\n",
        );
        o.context = BTreeMap::from([(
            "policies.yaml".to_string(),
            "kind: List\nitems: []\n".to_string(),
        )]);
        let objects = manifests(&m, &o, None).unwrap();
        let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
        let pod = &deployment["spec"]["template"];
        let args: Vec<&str> = pod["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(args.windows(2).any(|w| w == ["--context", CONTEXT_DIR]));
        assert!(args
            .windows(2)
            .any(|w| w == ["--notary-cache-dir", NOTARY_DIR]));
        assert!(pod["metadata"]["annotations"]["imagegate.dev/context-sha256"].is_string());
        let secret = objects
            .iter()
            .find(|o| o["metadata"]["name"] == "imagegate-context")
            .unwrap();
        assert_eq!(
            secret["data"]["policies.yaml"],
            "a2luZDogTGlzdAppdGVtczogW10K"
        );
        assert!(
            kinds(&objects).contains(&"MutatingWebhookConfiguration"),
            "tmax pins"
        );
    }
}
