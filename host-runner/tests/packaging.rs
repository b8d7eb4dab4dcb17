//! Packaging against the built module (`make policy.wasm` first): metadata.yml
//! declares exactly the host capabilities the module calls, as `kwctl
//! annotate` detects them; `scaffold` embeds only settings the module accepts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use imagegate::packaging::annotate::detected_capabilities;
use imagegate::packaging::metadata::Metadata;
use imagegate_policy::testing::policy_wasm;

fn repo_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

#[test]
fn declared_host_capabilities_are_those_the_module_calls() {
    let metadata = Metadata::from_yaml_file(&repo_file("metadata.yml")).unwrap();
    let wasm = std::fs::read(policy_wasm()).unwrap();
    let detected = detected_capabilities(&wasm).unwrap();
    assert_eq!(metadata.host_capabilities.unwrap_or_default(), detected);
    assert!(detected.contains("oci/v2/verify"), "{detected:?}");
}

fn scaffold(dir: &Path, settings: &str) -> Output {
    let file = dir.join("settings.yaml");
    std::fs::write(&file, settings).unwrap();
    Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .args(["scaffold", "--metadata"])
        .arg(repo_file("metadata.yml"))
        .arg("--validate-with")
        .arg(policy_wasm())
        .arg("-s")
        .arg(&file)
        .arg("registry://ghcr.io/imagegate/policies/imagegate:v0.1.0")
        .output()
        .unwrap()
}

#[test]
fn scaffold_refuses_invalid_settings_and_warns_about_sources_only_with_sources() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = scaffold(
        d,
        "rules:\n  - name: corp\n    images: [\"https://ghcr.io/corp/**\"]\n",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:3:14: rules[0].images[0]: invalid pattern \"https://ghcr.io/corp/**\": \
             patterns are image references, not URLs: write ghcr.io/corp/**",
            d.join("settings.yaml").display()
        )),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    let out = scaffold(
        d,
        "rules:\n  - name: corp\n    images: [\"ghcr.io/corp/**\"]\n",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let policy: serde_yaml_ng::Value = serde_yaml_ng::from_slice(&out.stdout).unwrap();
    assert_eq!(policy["spec"]["settings"]["rules"][0]["name"], "corp");

    let out = scaffold(d, "sources: {tmax: true}\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: contextAwareResources left empty; settings `sources` need them"),
        "{stderr}"
    );
}
