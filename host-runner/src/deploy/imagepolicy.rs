//! kube-apiserver's ImagePolicyWebhook admission plugin pointed at `imagegate
//! serve`'s `/imagereview` (`imagegate scaffold imagepolicywebhook`).
//!
//! Two files for the control-plane node: the `AdmissionConfiguration`
//! (`--admission-control-config-file`) whose ImagePolicyWebhook
//! configuration is the plugin's unversioned `imagePolicy` (kubeconfig path,
//! allow/deny TTLs, retry backoff, `defaultAllow: false`: an unreachable
//! backend denies), and the kubeconfig naming serve's URL and the CA that
//! signed serve's certificate. The plugin is alpha, sees Pods only (containers
//! and init containers; ephemeral containers on their subresource), and
//! sends no user, so `breakGlass.groups` cannot match.

use std::path::Path;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use serde_json::{json, Value};

/// What the plugin accepts (kubernetes plugin/pkg/admission/imagepolicy/config.go).
pub const TTL_RANGE_SECONDS: std::ops::RangeInclusive<i64> = 1..=1800;
pub const MAX_RETRY_BACKOFF_MS: u64 = 300_000;

/// Files in the configuration directory.
pub const ADMISSION_FILE: &str = "admission.yaml";
pub const KUBECONFIG_FILE: &str = "imagegate-kubeconfig.yaml";

/// What `imagegate scaffold imagepolicywebhook` was asked for.
pub struct Options {
    /// serve's base URL as the API server dials it (`https://host:port`).
    pub server: String,
    /// The directory on the control-plane node holding the files.
    pub dir: String,
    pub allow_ttl: i64,
    pub deny_ttl: i64,
    pub retry_backoff_ms: u64,
}

impl Options {
    /// `https://host:port/imagereview`.
    pub fn review_url(&self) -> String {
        format!("{}/imagereview", self.server.trim_end_matches('/'))
    }

    /// The host serve's certificate must name.
    pub fn host(&self) -> Result<String> {
        let url = url::Url::parse(&self.server)
            .with_context(|| format!("--server {:?} is not a URL", self.server))?;
        if url.scheme() != "https" {
            bail!("--server must be https:// (the API server sends ImageReviews over TLS only)");
        }
        if url.path() != "/" || url.query().is_some() {
            bail!("--server is serve's base URL (https://host:port); /imagereview is added");
        }
        match url.host() {
            Some(url::Host::Ipv6(ip)) => Ok(ip.to_string()),
            Some(host) => Ok(host.to_string()),
            None => bail!("--server {:?} has no host", self.server),
        }
    }
}

/// The AdmissionConfiguration and the kubeconfig trusting `ca_pem`.
pub fn files(options: &Options, ca_pem: &str) -> Result<[(&'static str, Value); 2]> {
    options.host()?;
    for (flag, ttl) in [
        ("--allow-ttl", options.allow_ttl),
        ("--deny-ttl", options.deny_ttl),
    ] {
        if !TTL_RANGE_SECONDS.contains(&ttl) {
            bail!("{flag} {ttl}: the API server accepts 1 to 1800 seconds");
        }
    }
    if options.retry_backoff_ms == 0 || options.retry_backoff_ms > MAX_RETRY_BACKOFF_MS {
        bail!(
            "--retry-backoff {}: the API server accepts 1 to {MAX_RETRY_BACKOFF_MS} ms",
            options.retry_backoff_ms
        );
    }
    let kubeconfig_path = Path::new(&options.dir).join(KUBECONFIG_FILE);
    let admission = json!({
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AdmissionConfiguration",
        "plugins": [{
            "name": "ImagePolicyWebhook",
            "configuration": {"imagePolicy": {
                "kubeConfigFile": kubeconfig_path.display().to_string(),
                "allowTTL": options.allow_ttl,
                "denyTTL": options.deny_ttl,
                "retryBackoff": options.retry_backoff_ms,
                "defaultAllow": false,
            }},
        }],
    });
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "imagegate", "cluster": {
            "server": options.review_url(),
            "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(ca_pem),
        }}],
        // serve does no client authentication.
        "users": [{"name": "kube-apiserver", "user": {}}],
        "contexts": [{"name": "imagegate", "context": {"cluster": "imagegate", "user": "kube-apiserver"}}],
        "current-context": "imagegate",
    });
    Ok([(ADMISSION_FILE, admission), (KUBECONFIG_FILE, kubeconfig)])
}

/// The kube-apiserver flags, for the message printed with the files.
pub fn apiserver_flags(options: &Options) -> Vec<String> {
    vec![
        "--enable-admission-plugins=<the plugins already enabled>,ImagePolicyWebhook".to_string(),
        format!(
            "--admission-control-config-file={}",
            Path::new(&options.dir).join(ADMISSION_FILE).display()
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(server: &str) -> Options {
        Options {
            server: server.into(),
            dir: "/etc/kubernetes/imagegate".into(),
            allow_ttl: 50,
            deny_ttl: 50,
            retry_backoff_ms: 500,
        }
    }

    #[test]
    fn admission_configuration_and_kubeconfig() {
        let [(a, admission), (k, kubeconfig)] =
            files(&options("https://127.0.0.1:8443"), "PEM").unwrap();
        assert_eq!((a, k), (ADMISSION_FILE, KUBECONFIG_FILE));
        let policy = &admission["plugins"][0]["configuration"]["imagePolicy"];
        assert_eq!(
            policy["kubeConfigFile"],
            "/etc/kubernetes/imagegate/imagegate-kubeconfig.yaml"
        );
        assert_eq!(policy["defaultAllow"], false);
        assert_eq!(
            kubeconfig["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:8443/imagereview"
        );
        assert_eq!(
            kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"],
            "UEVN"
        );
        assert_eq!(
            apiserver_flags(&options("https://x:1"))[1],
            "--admission-control-config-file=/etc/kubernetes/imagegate/admission.yaml"
        );
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let e = |o: Options| files(&o, "PEM").unwrap_err().to_string();
        assert!(e(options("http://127.0.0.1:8443")).contains("https://"));
        assert!(e(options("https://h:1/imagereview")).contains("/imagereview is added"));
        let mut o = options("https://h:1");
        o.allow_ttl = 1801;
        assert!(e(o).contains("--allow-ttl 1801"));
        let mut o = options("https://h:1");
        o.deny_ttl = 0;
        assert!(e(o).contains("--deny-ttl 0"));
        let mut o = options("https://h:1");
        o.retry_backoff_ms = 300_001;
        assert!(e(o).contains("--retry-backoff"));
        assert_eq!(options("https://[::1]:8443").host().unwrap(), "::1");
    }
}
