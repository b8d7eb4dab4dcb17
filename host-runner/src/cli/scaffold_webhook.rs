//! `imagegate scaffold webhook` ([`crate::deploy::webhook`]) and `imagegate
//! scaffold imagepolicywebhook` ([`crate::deploy::imagepolicy`]): what runs
//! `imagegate serve` without Kubewarden, with its certificates.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use crate::capabilities::kubernetes::{self, KubeContext};
use crate::capabilities::shared::SharedConfig;
use crate::cli::args::{parse_timeout, SharedCacheArgs, Timeout};
use crate::deploy::certs::{self, Certificates};
use crate::deploy::imagepolicy;
use crate::deploy::serve_command::ServeCommand;
use crate::deploy::webhook::{self, CertSource};
use crate::packaging::metadata::Metadata;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Namespace, Deployment, Service, certificates and webhook configurations
    /// that run `imagegate serve` as an admission webhook (kubectl apply -f).
    Webhook(Box<WebhookArgs>),
    /// kube-apiserver's AdmissionConfiguration and kubeconfig for its
    /// ImagePolicyWebhook plugin (alpha) pointed at `imagegate serve`.
    Imagepolicywebhook(ImagePolicyWebhookArgs),
}

#[derive(clap::Args, Debug)]
pub struct WebhookArgs {
    /// The imagegate container image (`make image`), preferably by digest.
    #[arg(long)]
    pub image: String,
    /// Settings file (YAML or JSON), stored in a ConfigMap serve re-reads.
    #[arg(short, long)]
    pub settings: PathBuf,
    /// Namespace of the webhook (never sent to it).
    #[arg(long, default_value = "imagegate-system")]
    pub namespace: String,
    /// Name of the Deployment, Service and ServiceAccount.
    #[arg(long, default_value = "imagegate")]
    pub name: String,
    /// Take the webhook rules from this annotated module (the image's).
    #[arg(long, conflicts_with = "metadata")]
    pub policy: Option<PathBuf>,
    /// Take the webhook rules from this metadata file instead.
    #[arg(short, long, default_value = "metadata.yml")]
    pub metadata: PathBuf,
    /// Serving certificate: generated now (with its CA in `caBundle`), or by cert-manager.
    #[arg(long, value_enum, default_value = "generate")]
    pub certificates: CertSource,
    /// Validity of generated certificates, in days.
    #[arg(long, default_value_t = 730, value_parser = clap::value_parser!(u32).range(1..))]
    pub cert_days: u32,
    /// Snapshot of the Kubernetes objects `sources` read (YAML/JSON files),
    /// stored in a Secret serve reads as `--context`.
    #[arg(long, value_name = "DIR")]
    pub context: Option<PathBuf>,
    /// CA certificates (PEM) serve trusts instead of the image's bundle, for
    /// registries and Notary servers without their own `caCert` (e.g. a
    /// private Notary CA under `sources: {tmax: true}`): include the public
    /// CAs you still need. Stored in a ConfigMap, set as SSL_CERT_FILE.
    #[arg(long, value_name = "PEM")]
    pub ca_bundle: Option<PathBuf>,
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub replicas: u32,
    /// The shared cache serve uses (`--cache` without a password: it would
    /// be in the Deployment's arguments). Key, password and CA go into the
    /// Secret `<name>-cache`, mounted read-only.
    #[command(flatten)]
    pub shared: SharedCacheArgs,
    /// serve's evaluation deadline; the webhook timeout is derived from it.
    #[arg(long, default_value = "2s", value_parser = parse_timeout)]
    pub timeout: Timeout,
    /// Output file (mode 0600 when it holds a private or HMAC key); default: stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ImagePolicyWebhookArgs {
    /// serve's base URL as kube-apiserver dials it; `/imagereview` is added.
    #[arg(long, default_value = "https://127.0.0.1:8443")]
    pub server: String,
    /// Directory on the control-plane nodes that holds these files.
    #[arg(long, default_value = "/etc/kubernetes/imagegate")]
    pub dir: String,
    /// The CA that signed serve's certificate (PEM); default: generate a CA
    /// and a certificate for the --server host.
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Validity of generated certificates, in days.
    #[arg(long, default_value_t = 730, value_parser = clap::value_parser!(u32).range(1..))]
    pub cert_days: u32,
    /// Seconds an admission is cached by kube-apiserver (1-1800).
    #[arg(long, default_value_t = 50)]
    pub allow_ttl: i64,
    /// Seconds a denial is cached by kube-apiserver (1-1800).
    #[arg(long, default_value_t = 50)]
    pub deny_ttl: i64,
    /// Initial retry backoff in milliseconds (at most 300000).
    #[arg(long, default_value_t = 500)]
    pub retry_backoff: u64,
    /// Write the files into this directory instead of printing them.
    #[arg(short, long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
}

pub fn run(command: &Command) -> Result<ExitCode> {
    match command {
        Command::Webhook(args) => run_webhook(args),
        Command::Imagepolicywebhook(args) => run_imagepolicywebhook(args),
    }
}

fn run_webhook(args: &WebhookArgs) -> Result<ExitCode> {
    let metadata = Metadata::from_policy_or_file(args.policy.as_deref(), &args.metadata)?;
    let settings_text = std::fs::read_to_string(&args.settings)
        .with_context(|| format!("cannot read settings {}", args.settings.display()))?;
    let context = match &args.context {
        Some(dir) => context_files(dir)?,
        None => BTreeMap::new(),
    };
    let ca_bundle = match &args.ca_bundle {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read CA bundle {}", path.display()))?,
        ),
        None => None,
    };
    let shared_cache = match (&args.shared.cache, &args.shared.cache_hmac_key_file) {
        (Some(url), Some(key)) => {
            // Validated as serve validates it; stored as serve reads it.
            SharedConfig::read_key(key)?;
            let read = |path: &Path, what: &str| {
                std::fs::read(path)
                    .with_context(|| format!("cannot read {what} {}", path.display()))
            };
            Some(webhook::SharedCache {
                url: url.clone(),
                hmac_key: read(key, "HMAC key file")?,
                password: args
                    .shared
                    .cache_password_file
                    .as_deref()
                    .map(|p| read(p, "Redis password file"))
                    .transpose()?,
                ca: args
                    .shared
                    .cache_ca
                    .as_deref()
                    .map(|p| read(p, "Redis CA").map(|b| String::from_utf8_lossy(&b).into_owned()))
                    .transpose()?,
            })
        }
        _ => None,
    };
    let Some(timeout) = args.timeout.0 else {
        bail!("--timeout off: the API server gives a webhook at most 30 s");
    };
    let options = webhook::Options {
        namespace: args.namespace.clone(),
        name: args.name.clone(),
        image: args.image.clone(),
        settings_text,
        context,
        ca_bundle,
        replicas: args.replicas,
        timeout,
        cert_source: args.certificates,
        shared_cache,
    };
    let certificates = match args.certificates {
        CertSource::Generate => Some(certs::generate(
            &format!("{} webhook CA ({})", args.name, args.namespace),
            &webhook::service_names(&args.name, &args.namespace),
            args.cert_days,
        )?),
        CertSource::CertManager => None,
    };
    let objects = webhook::manifests(&metadata, &options, certificates.as_ref())
        .with_context(|| format!("in settings {}", args.settings.display()))?;
    let mut yaml = format!(
        "# imagegate {} as an admission webhook in namespace {}: kubectl apply -f this file\n",
        env!("CARGO_PKG_VERSION"),
        args.namespace
    );
    for object in &objects {
        yaml.push_str("---\n");
        yaml.push_str(&serde_yaml_ng::to_string(object)?);
    }
    // A private key, or the cache's HMAC key.
    let has_secret = certificates.is_some() || args.shared.cache.is_some();
    write_output(args.output.as_deref(), &yaml, has_secret)?;
    Ok(ExitCode::SUCCESS)
}

fn run_imagepolicywebhook(args: &ImagePolicyWebhookArgs) -> Result<ExitCode> {
    let options = imagepolicy::Options {
        server: args.server.clone(),
        dir: args.dir.clone(),
        allow_ttl: args.allow_ttl,
        deny_ttl: args.deny_ttl,
        retry_backoff_ms: args.retry_backoff,
    };
    let host = options.host()?;
    let (ca_pem, generated): (String, Option<Certificates>) = match &args.ca {
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read CA {}", path.display()))?,
            None,
        ),
        None => {
            let c = certs::generate("imagegate ImageReview CA", &[host], args.cert_days)?;
            (c.ca_pem.clone(), Some(c))
        }
    };
    let files = imagepolicy::files(&options, &ca_pem)?;
    let dir = Path::new(&args.dir);
    let serve = ServeCommand {
        addr: listen_addr(&args.server)?,
        settings: dir.join("settings.yaml"),
        tls_cert: dir.join("tls.crt"),
        tls_key: dir.join("tls.key"),
        timeout: crate::runtime::DEFAULT_TIMEOUT,
        context: None,
        notary_cache_dir: None,
        shared_cache: None,
    };
    let mut notes = vec![
        "# ImagePolicyWebhook is alpha and proposed for deprecation (kubernetes/kubernetes#131953);".to_string(),
        "# a validating admission webhook (`imagegate scaffold webhook`) is the supported path.".to_string(),
        format!("# Put these files in {} on every control-plane node and add to kube-apiserver:", args.dir),
    ];
    notes.extend(
        imagepolicy::apiserver_flags(&options)
            .iter()
            .map(|f| format!("#   {f}")),
    );
    notes.push(format!(
        "# (kubeadm: also mount {} into the kube-apiserver static pod). Run serve there, e.g.:",
        args.dir
    ));
    notes.push(format!("#   imagegate {}", serve.args().join(" ")));
    if generated.is_some() {
        notes.push(format!(
            "# with the generated tls.crt and tls.key (for {}), and your settings.yaml.",
            args.server
        ));
    }
    let mut outputs: Vec<(String, String)> = files
        .iter()
        .map(|(name, value)| Ok((name.to_string(), serde_yaml_ng::to_string(value)?)))
        .collect::<Result<_>>()?;
    if let Some(c) = &generated {
        outputs.push(("ca.crt".into(), c.ca_pem.clone()));
        outputs.push(("tls.crt".into(), c.cert_pem.clone()));
        outputs.push(("tls.key".into(), c.key_pem.clone()));
    }
    match &args.output_dir {
        Some(out) => {
            std::fs::create_dir_all(out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            for (name, text) in &outputs {
                let secret = name.ends_with(".key");
                write_file(&out.join(name), text, secret)?;
            }
            println!("{}", notes.join("\n"));
        }
        None => {
            let mut text = notes.join("\n");
            text.push('\n');
            for (name, body) in &outputs {
                let body = if name.ends_with(".yaml") {
                    body.clone()
                } else {
                    // PEM files as comments: the output stays valid multi-document YAML.
                    body.lines().map(|l| format!("# {l}\n")).collect()
                };
                text.push_str(&format!("---\n# {}/{name}\n{body}", args.dir));
            }
            write_output(None, &text, generated.is_some())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where serve listens for `server`: its IP address, or every address
/// when it is a name; the port of the URL.
fn listen_addr(server: &str) -> Result<String> {
    let url = url::Url::parse(server)?;
    let port = url.port_or_known_default().unwrap_or(443);
    Ok(match url.host() {
        Some(url::Host::Ipv4(ip)) => format!("{ip}:{port}"),
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]:{port}"),
        _ => format!("0.0.0.0:{port}"),
    })
}

/// The `--context` files as Secret keys (`sub/x.yaml` -> `sub.x.yaml`);
/// the directory must load as serve loads it.
fn context_files(dir: &Path) -> Result<BTreeMap<String, String>> {
    KubeContext::load(dir)?;
    let mut out = BTreeMap::new();
    for (path, text) in kubernetes::read_files(dir)? {
        let relative = path.strip_prefix(dir).unwrap_or(&path);
        let key = relative
            .iter()
            .map(|c| c.to_string_lossy())
            .collect::<Vec<_>>()
            .join(".");
        if !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        {
            bail!(
                "context file {}: Secret keys allow only letters, digits, '-', '_' and '.': rename it",
                path.display()
            );
        }
        if out.insert(key.clone(), text).is_some() {
            bail!(
                "context files {} and another one both become the key {key}: rename one",
                path.display()
            );
        }
    }
    if out.is_empty() {
        bail!("--context {}: no YAML or JSON files", dir.display());
    }
    Ok(out)
}

fn write_output(path: Option<&Path>, text: &str, has_key: bool) -> Result<()> {
    match path {
        Some(path) => write_file(path, text, has_key),
        None => {
            if has_key {
                eprintln!(
                    "note: the output holds a secret key: write it to a file (-o, mode 0600), not to a log"
                );
            }
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(())
        }
    }
}

/// Writes `text` to `path`; only the owner may read it when it is secret.
fn write_file(path: &Path, text: &str, secret: bool) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    if secret {
        // `mode` applies to new files only.
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", path.display()))?;
    }
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
