//! `imagegate scaffold`: writes the ClusterAdmissionPolicy (or AdmissionPolicy)
//! that installs the policy ([`crate::packaging::scaffold`]). The settings
//! are validated by the module first, as policy-server would: a resource
//! with invalid settings would install a policy that never becomes active.
//! `scaffold webhook` and `scaffold imagepolicywebhook` write what runs
//! `imagegate serve` without Kubewarden (`cli::scaffold_webhook`, cargo
//! feature `serve`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::capabilities::gating::CapabilityAllowList;
use crate::capabilities::{Capabilities, Offline};
use crate::cli::scaffold_webhook;
use crate::packaging::metadata::Metadata;
use crate::packaging::scaffold::{manifest, parse_settings, Kind, Target};
use crate::runtime::{admission, Policy, RuntimeConfig};

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    /// What runs `imagegate serve` without Kubewarden.
    #[command(subcommand)]
    pub without_kubewarden: Option<scaffold_webhook::Command>,
    /// Where the cluster gets the policy: registry://host/repo:tag (or @sha256:...), https://, file://.
    #[arg(required = true)]
    pub module: Option<String>,
    /// Read the metadata embedded in this annotated module.
    #[arg(long, conflicts_with = "metadata")]
    pub policy: Option<PathBuf>,
    /// Read the metadata from this file instead.
    #[arg(short, long, default_value = "metadata.yml")]
    pub metadata: PathBuf,
    /// Settings file (YAML mapping); default: no settings ({}).
    #[arg(short, long)]
    pub settings: Option<PathBuf>,
    /// The module that validates the settings: default the --policy module,
    /// else ./policy.wasm (`make policy.wasm`).
    #[arg(long, value_name = "FILE")]
    pub validate_with: Option<PathBuf>,
    /// Resource kind.
    #[arg(
        short = 't',
        long = "type",
        value_enum,
        default_value = "cluster-admission-policy"
    )]
    pub kind: Kind,
    /// Resource name; default: the policy title.
    #[arg(long)]
    pub title: Option<String>,
    /// Grant the contextAwareResources of the metadata (needed by `sources`).
    #[arg(long)]
    pub allow_context_aware: bool,
    /// Output file; default: stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    if let Some(command) = &args.without_kubewarden {
        return scaffold_webhook::run(command);
    }
    let metadata = Metadata::from_policy_or_file(args.policy.as_deref(), &args.metadata)?;
    let settings = match &args.settings {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read settings {}", path.display()))?;
            let settings = parse_settings(&text)
                .with_context(|| format!("invalid settings file {}", path.display()))?;
            let module = args
                .validate_with
                .as_ref()
                .or(args.policy.as_ref())
                .cloned()
                .unwrap_or_else(|| PathBuf::from("policy.wasm"));
            validate(&module, path, &settings)?;
            settings
        }
        None => Default::default(),
    };
    let target = Target {
        module: args.module.clone().context("no MODULE given")?,
        kind: args.kind,
        title: args.title.clone(),
        allow_context_aware: args.allow_context_aware,
    };
    let yaml = serde_yaml_ng::to_string(&manifest(&metadata, &target, settings)?)?;
    match &args.output {
        Some(path) => std::fs::write(path, yaml)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().lock().write_all(yaml.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The module's `validate_settings` on `settings` (read from `path`), with
/// no host capability granted: errors say where they are in the file.
fn validate(module: &Path, path: &Path, settings: &serde_yaml_ng::Mapping) -> Result<()> {
    let wasm = std::fs::read(module).with_context(|| {
        format!(
            "cannot read {} to validate the settings with: pass --validate-with FILE \
             (or --policy), or build it with `make policy.wasm`",
            module.display()
        )
    })?;
    let capabilities = Arc::new(Capabilities::new(
        CapabilityAllowList::deny_all(),
        None,
        Box::new(Offline),
    ));
    let policy = Policy::new(&wasm, RuntimeConfig::default(), capabilities)
        .with_context(|| format!("cannot load policy module {}", module.display()))?;
    let json = serde_json::to_value(settings)?;
    let json = json.as_object().cloned().unwrap_or_default();
    let validity = admission::validate_settings(&mut &policy, &json);
    if !validity.valid {
        let message =
            admission::locate_settings_errors(path, &validity.message.unwrap_or_default());
        bail!("the settings are not valid, the policy would never become active:\n{message}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packaging::annotate::{annotate, protocol_version, tests::guest};
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["scaffold"];
        argv.extend_from_slice(extra);
        Cli::parse_from(argv).args
    }

    #[test]
    fn metadata_from_annotated_module() {
        let dir = tempfile::tempdir().unwrap();
        let metadata = Metadata::from_yaml_file(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../metadata.yml"),
        )
        .unwrap();
        let module = annotate(&guest(r#""v1""#), metadata, None, protocol_version).unwrap();
        let wasm = dir.path().join("annotated.wasm");
        std::fs::write(&wasm, module).unwrap();
        let out = dir.path().join("policy.yaml");
        let a = args(&[
            "--policy",
            wasm.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "registry://x/y:z",
        ]);
        run(&a).unwrap();
        let v: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
        assert_eq!(v["metadata"]["name"], "imagegate");
        let unannotated = dir.path().join("plain.wasm");
        std::fs::write(&unannotated, guest(r#""v1""#)).unwrap();
        let err = run(&args(&[
            "--policy",
            unannotated.to_str().unwrap(),
            "registry://x/y:z",
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("not annotated"), "{err}");
    }
}
