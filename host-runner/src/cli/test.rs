//! `imagegate test DIR`: run every fixture under DIR and check its
//! expectations.
//!
//! A fixture is a directory holding `expect.yaml` and `request.json` /
//! `request.yaml` (AdmissionRequest or AdmissionReview), optionally
//! `settings.yaml` / `settings.json` (default `{}`), `session.yml` (replayed;
//! without it no capability is available, so fixtures stay offline) and
//! `context/` (Kubernetes objects for `kubernetes/*`, which also grants
//! context-aware access). Each evaluation uses a fresh instance, as
//! policy-server does.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::capabilities::kubernetes::KubeContext;
use crate::capabilities::{Backend, Capabilities, CapabilityAllowList, Offline, Request};
use crate::cli::args::{PolicyArgs, RegistryArgs};
use crate::runtime::admission::{self, AdmissionResponse};
use crate::runtime::session::Replay;
use crate::runtime::Policy;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Directory containing fixture directories (searched recursively).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// The policy module: a .wasm file, or registry://host/repository:tag.
    #[arg(long, default_value = "policy.wasm")]
    pub policy: PathBuf,

    /// Also print passing fixtures.
    #[arg(short, long)]
    pub verbose: bool,

    #[command(flatten)]
    pub policy_args: PolicyArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `expect.yaml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub allowed: Option<bool>,
    #[serde(default)]
    pub message_contains: Vec<String>,
    #[serde(default)]
    pub message_not_contains: Vec<String>,
    /// The decoded JSON patch; `[]` = no patch; absent = not checked.
    #[serde(default)]
    pub patch: Option<Value>,
    #[serde(default)]
    pub warnings_contains: Vec<String>,
    #[serde(default)]
    pub audit_annotations: Map<String, Value>,
    #[serde(default)]
    pub settings_valid: Option<bool>,
    #[serde(default)]
    pub settings_message_contains: Vec<String>,
}

/// Finds fixture directories (those holding `expect.yaml` or a request).
pub fn discover(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let is_fixture = ["expect.yaml", "request.json", "request.yaml"]
            .iter()
            .any(|f| dir.join(f).is_file());
        if is_fixture {
            out.push(dir.to_path_buf());
            return Ok(());
        }
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read fixture directory {}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, out)?;
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    out.sort();
    Ok(out)
}

fn first_existing(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// A fixture answers `kubernetes/*` from `context/` and everything else
/// from `session.yml`; without a session, nothing else is available.
struct FixtureBackend {
    kube: Option<KubeContext>,
    rest: Box<dyn Backend>,
}

impl Backend for FixtureBackend {
    fn answer(
        &self,
        request: &Request,
        deadline: Option<std::time::Instant>,
    ) -> Result<Vec<u8>, String> {
        if let Some(answer) = self.kube.as_ref().and_then(|k| k.answer(request)) {
            return answer.and_then(|v| serde_json::to_vec(&v).map_err(|e| e.to_string()));
        }
        self.rest.answer(request, deadline)
    }

    fn checkpoint(&self) -> usize {
        self.rest.checkpoint()
    }
}

/// Runs one fixture; `Err` = the reason it failed.
pub fn run_fixture(
    policy: &Policy,
    wasm: &[u8],
    args: &PolicyArgs,
    dir: &Path,
) -> anyhow::Result<()> {
    let expect_path = dir.join("expect.yaml");
    let expect: Expect = serde_yaml_ng::from_str(
        &std::fs::read_to_string(&expect_path).context("cannot read expect.yaml")?,
    )
    .context("invalid expect.yaml")?;
    let request_path = first_existing(dir, &["request.json", "request.yaml"])
        .context("no request.json or request.yaml")?;
    let request = admission::read_request(&request_path, &admission::Requester::default())?;
    let settings = match first_existing(dir, &["settings.yaml", "settings.json"]) {
        Some(p) => admission::read_settings(&p)?,
        None => Map::new(),
    };
    let session = first_existing(dir, &["session.yml", "session.yaml"]);
    let replay = session.as_deref().map(Replay::from_file).transpose()?;
    let total_recorded = replay.as_ref().map_or(0, Replay::remaining);
    let rest: Box<dyn Backend> = match replay {
        Some(r) => Box::new(r),
        None => Box::new(Offline),
    };
    let context_dir = dir.join("context");
    let kube = context_dir
        .is_dir()
        .then(|| KubeContext::load(&context_dir))
        .transpose()?;
    let has_context = kube.is_some();
    let capabilities =
        args.capabilities(wasm, has_context, Box::new(FixtureBackend { kube, rest }))?;
    let policy = policy.with_callbacks(capabilities.clone());

    let sv = admission::validate_settings(&mut &policy, &settings);
    let settings_message = sv.message.clone().unwrap_or_default();
    match (expect.settings_valid.unwrap_or(true), sv.valid) {
        (true, false) => bail!("settings rejected: {settings_message}"),
        (false, true) => bail!("settings accepted, expected them to be rejected"),
        (false, false) => {
            for s in &expect.settings_message_contains {
                if !settings_message.contains(s.as_str()) {
                    bail!("settings message {settings_message:?} does not contain {s:?}");
                }
            }
            return Ok(());
        }
        (true, true) => {}
    }
    let response = admission::validate(&mut &policy, &request, &settings);
    check(&expect, &response)?;
    let consumed = capabilities.checkpoint();
    if consumed < total_recorded {
        bail!(
            "{} of {} recorded exchange(s) in session.yml were not used",
            total_recorded - consumed,
            total_recorded
        );
    }
    Ok(())
}

/// Compares a response with the expectations.
pub fn check(expect: &Expect, response: &AdmissionResponse) -> anyhow::Result<()> {
    let message = response
        .status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    if let Some(allowed) = expect.allowed {
        if response.allowed != allowed {
            bail!(
                "expected allowed={allowed}, got allowed={} (message: {message:?})",
                response.allowed
            );
        }
    }
    for s in &expect.message_contains {
        if !message.contains(s.as_str()) {
            bail!("message {message:?} does not contain {s:?}");
        }
    }
    for s in &expect.message_not_contains {
        if message.contains(s.as_str()) {
            bail!("message {message:?} contains {s:?}");
        }
    }
    if let Some(expected) = &expect.patch {
        let actual = response
            .decoded_patch()?
            .unwrap_or_else(|| Value::Array(vec![]));
        if &actual != expected {
            bail!("patch {actual} differs from the expected {expected}");
        }
    }
    let warnings = response.warnings.clone().unwrap_or_default();
    for s in &expect.warnings_contains {
        if !warnings.iter().any(|w| w.contains(s.as_str())) {
            bail!("no warning contains {s:?} (warnings: {warnings:?})");
        }
    }
    let annotations = response.audit_annotations.clone().unwrap_or_default();
    for (k, v) in &expect.audit_annotations {
        let expected = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match annotations.get(k) {
            Some(actual) if *actual == expected => {}
            actual => bail!("audit annotation {k:?} is {actual:?}, expected {expected:?}"),
        }
    }
    Ok(())
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let wasm = args.registry.read_module(&args.policy)?;
    let fixtures = discover(&args.dir)?;
    // Compiled once; each fixture swaps in its own capabilities.
    let policy = Policy::new(
        &wasm,
        args.policy_args.runtime_config(),
        Arc::new(Capabilities::new(
            CapabilityAllowList::deny_all(),
            None,
            Box::new(Offline),
        )),
    )
    .with_context(|| format!("cannot load policy module {}", args.policy.display()))?;
    let (mut passed, mut failed) = (0usize, 0usize);
    for dir in &fixtures {
        let name = dir
            .strip_prefix(&args.dir)
            .unwrap_or(dir)
            .display()
            .to_string();
        match run_fixture(&policy, &wasm, &args.policy_args, dir) {
            Ok(()) => {
                passed += 1;
                if args.verbose {
                    println!("ok   {name}");
                }
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {name}: {e:#}");
            }
        }
    }
    if fixtures.is_empty() {
        println!("no fixtures found under {}", args.dir.display());
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn response(v: Value) -> AdmissionResponse {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn unknown_expect_keys_are_errors() {
        assert!(serde_yaml_ng::from_str::<Expect>("allowed: true\nalowed: false\n").is_err());
        let e: Expect = serde_yaml_ng::from_str("allowed: true\npatch: []\n").unwrap();
        assert_eq!(e.patch, Some(json!([])));
    }

    #[test]
    fn checks_each_expectation() {
        let r = response(json!({"uid": "u", "allowed": false,
            "status": {"message": "image nginx denied by rule corp"},
            "auditAnnotations": {"imagegate/exempt": "true"}, "warnings": ["unmatched image x"]}));
        let ok: Expect = serde_yaml_ng::from_str(
            "allowed: false\nmessage_contains: [nginx, corp]\nmessage_not_contains: [busybox]\npatch: []\nwarnings_contains: [unmatched]\naudit_annotations: {imagegate/exempt: 'true'}\n",
        )
        .unwrap();
        check(&ok, &r).unwrap();
        for bad in [
            "allowed: true",
            "message_contains: [busybox]",
            "message_not_contains: [nginx]",
            "patch: [{op: add, path: /a, value: 1}]",
            "warnings_contains: [latest]",
            "audit_annotations: {imagegate/exempt: 'false'}",
        ] {
            let e: Expect = serde_yaml_ng::from_str(bad).unwrap();
            assert!(check(&e, &r).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn discovery_is_recursive_and_sorted() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["b", "a/2", "a/1"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
            std::fs::write(dir.path().join(d).join("expect.yaml"), "allowed: true").unwrap();
        }
        std::fs::create_dir_all(dir.path().join("empty")).unwrap();
        let found: Vec<String> = discover(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(found, ["a/1", "a/2", "b"]);
    }
}
