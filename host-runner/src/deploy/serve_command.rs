//! The `imagegate serve` command line the generated manifests run: every
//! serve flag a scaffold writes is here, so a renamed flag is changed once
//! (tests parse the result with serve's own argument parser).

use std::path::PathBuf;
use std::time::Duration;

use super::image;

/// How long a request may wait for an evaluation slot (`--queue-timeout`).
pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(1);
/// Evaluations at once (`--max-concurrency`); with [`MEMORY_LIMIT_MIB`] it
/// bounds the guest memory a pod can need.
pub const MAX_CONCURRENCY: u32 = 4;
/// Guest memory cap per evaluation (`--memory-limit`).
pub const MEMORY_LIMIT_MIB: u32 = 128;

/// The pod's `terminationGracePeriodSeconds`: kubelet kills serve after it.
pub const TERMINATION_GRACE_PERIOD: Duration = Duration::from_secs(10);
/// How long serve drains after SIGTERM (`--shutdown-timeout`): below
/// [`TERMINATION_GRACE_PERIOD`], so it exits on its own before it is killed.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(8);
const _: () = assert!(SHUTDOWN_TIMEOUT.as_secs() < TERMINATION_GRACE_PERIOD.as_secs());

/// One serve invocation.
#[derive(Debug, Clone)]
pub struct ServeCommand {
    pub addr: String,
    pub settings: PathBuf,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// Evaluation deadline (`--timeout`).
    pub timeout: Duration,
    /// Kubernetes objects for `sources` (`--context`, with
    /// `--allow-context-aware`).
    pub context: Option<PathBuf>,
    /// Notary trust-on-first-use state (`--notary-cache-dir`).
    pub notary_cache_dir: Option<PathBuf>,
    /// The Redis cache shared by the replicas (`--cache`...).
    pub shared_cache: Option<SharedCacheFlags>,
}

/// serve's `--cache URL`, with the files it reads its secrets from.
#[derive(Debug, Clone)]
pub struct SharedCacheFlags {
    /// Without a password: the Deployment's args are readable by anyone who
    /// can read Deployments.
    pub url: String,
    pub hmac_key_file: PathBuf,
    pub password_file: Option<PathBuf>,
    /// CA certificates trusted for `rediss://` (`--cache-ca`).
    pub ca_file: Option<PathBuf>,
}

impl ServeCommand {
    /// The arguments after the binary (`serve ...`).
    pub fn args(&self) -> Vec<String> {
        let path = |p: &PathBuf| p.display().to_string();
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--policy".into(),
            image::POLICY_PATH.into(),
            "--settings-path".into(),
            path(&self.settings),
            "--addr".into(),
            self.addr.clone(),
            "--tls-cert".into(),
            path(&self.tls_cert),
            "--tls-key".into(),
            path(&self.tls_key),
            // The root filesystem is read-only; serve compiles the module once.
            "--disable-wasmtime-cache".into(),
            "--timeout".into(),
            format!("{}ms", self.timeout.as_millis()),
            "--queue-timeout".into(),
            format!("{}ms", QUEUE_TIMEOUT.as_millis()),
            "--max-concurrency".into(),
            MAX_CONCURRENCY.to_string(),
            "--memory-limit".into(),
            format!("{MEMORY_LIMIT_MIB}MiB"),
            "--shutdown-timeout".into(),
            format!("{}s", SHUTDOWN_TIMEOUT.as_secs()),
        ];
        if let Some(dir) = &self.context {
            args.extend([
                "--allow-context-aware".into(),
                "--context".into(),
                path(dir),
            ]);
        }
        if let Some(dir) = &self.notary_cache_dir {
            args.extend(["--notary-cache-dir".into(), path(dir)]);
        }
        if let Some(cache) = &self.shared_cache {
            args.extend([
                "--cache".into(),
                cache.url.clone(),
                "--cache-hmac-key-file".into(),
                path(&cache.hmac_key_file),
            ]);
            if let Some(file) = &cache.password_file {
                args.extend(["--cache-password-file".into(), path(file)]);
            }
            if let Some(file) = &cache.ca_file {
                args.extend(["--cache-ca".into(), path(file)]);
            }
        }
        args
    }

    /// The longest serve takes to answer: a wait for a slot plus the
    /// evaluation deadline. The API server's timeout must be longer.
    pub fn worst_case(&self) -> Duration {
        QUEUE_TIMEOUT + self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: crate::cli::serve::Args,
    }

    #[test]
    fn serve_accepts_every_flag() {
        let command = ServeCommand {
            addr: "0.0.0.0:8443".into(),
            settings: "/etc/imagegate/settings/settings.yaml".into(),
            tls_cert: "/tls/tls.crt".into(),
            tls_key: "/tls/tls.key".into(),
            timeout: Duration::from_millis(2500),
            context: Some("/etc/imagegate/context".into()),
            notary_cache_dir: Some("/var/cache/imagegate/notary".into()),
            shared_cache: Some(SharedCacheFlags {
                url: "rediss://redis.gate.svc:6380/1".into(),
                hmac_key_file: "/etc/imagegate/cache/hmac-key".into(),
                password_file: Some("/etc/imagegate/cache/password".into()),
                ca_file: Some("/etc/imagegate/cache/ca.crt".into()),
            }),
        };
        let args = command.args();
        assert_eq!(args[0], "serve");
        let parsed = Cli::try_parse_from(
            ["serve"]
                .into_iter()
                .chain(args[1..].iter().map(String::as_str)),
        )
        .unwrap()
        .serve;
        assert_eq!(parsed.addr.port(), 8443);
        assert_eq!(
            parsed.policy_args.timeout.0,
            Some(Duration::from_millis(2500))
        );
        assert_eq!(parsed.queue_timeout.0, Some(QUEUE_TIMEOUT));
        assert_eq!(parsed.max_concurrency, MAX_CONCURRENCY);
        assert_eq!(parsed.policy_args.memory_limit, 128 << 20);
        assert!(parsed.policy_args.disable_wasmtime_cache);
        assert_eq!(parsed.shutdown_timeout, SHUTDOWN_TIMEOUT);
        assert!(parsed.policy_args.allow_context_aware);
        assert_eq!(parsed.live.context, command.context);
        assert_eq!(parsed.live.notary_cache_dir, command.notary_cache_dir);
        let cache = command.shared_cache.as_ref().unwrap();
        assert_eq!(parsed.live.shared.cache.as_ref(), Some(&cache.url));
        assert_eq!(
            parsed.live.shared.cache_hmac_key_file.as_ref(),
            Some(&cache.hmac_key_file)
        );
        assert_eq!(parsed.live.shared.cache_password_file, cache.password_file);
        assert_eq!(parsed.live.shared.cache_ca, cache.ca_file);
        assert_eq!(command.worst_case(), Duration::from_millis(3500));
    }
}
