//! `imagegate convert --from DIALECT FILE...`: another tool's policy ->
//! native settings YAML, or with `--cluster-admission-policy` a ready
//! Kubewarden `ClusterAdmissionPolicy` embedding them.
//!
//! The conversion itself is `imagegate_policy::sources` (the same code the
//! policy runs for `sources: {tmax, tanzu}`); this module only reads YAML
//! (several files, several documents each), prints the result, and prints
//! every limitation on stderr so nothing is dropped silently.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};

use imagegate_policy::requirements::Requirements;
use imagegate_policy::settings::Policy;
use imagegate_policy::sources::{self, Converted, Dialect, Options};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The dialect of FILE...: tmax, tanzu, openshift, sighup or gatekeeper.
    #[arg(long = "from", value_name = "DIALECT", value_parser = parse_dialect)]
    pub from: Dialect,

    /// YAML or JSON files (multi-document YAML allowed), read together as one policy.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,

    /// Print a ready ClusterAdmissionPolicy instead of bare settings.
    #[arg(long)]
    pub cluster_admission_policy: bool,

    /// metadata.name of the ClusterAdmissionPolicy.
    #[arg(long, default_value = "imagegate")]
    pub name: String,

    /// spec.module of the ClusterAdmissionPolicy (default: this release,
    /// metadata.yml's `io.kubewarden.policy.ociUrl` at `v<version>`).
    #[arg(long, default_value = DEFAULT_MODULE)]
    pub module: String,

    /// The policy's metadata.yml, whose `rules` the ClusterAdmissionPolicy uses
    /// (default: ./metadata.yml when present, else imagegate's workload kinds).
    #[arg(long, value_name = "FILE")]
    pub metadata: Option<PathBuf>,

    /// OpenShift: host of the integrated registry for `matchIntegratedRegistry`.
    #[arg(long, value_name = "HOST")]
    pub integrated_registry: Option<String>,
}

/// The module this release publishes (`make push`'s OCI_REF): a versioned
/// tag, never `:latest`, so the policy runs the code it was converted for.
const DEFAULT_MODULE: &str = concat!(
    "registry://ghcr.io/imagegate/policies/imagegate:v",
    env!("CARGO_PKG_VERSION")
);

fn parse_dialect(name: &str) -> Result<Dialect, String> {
    Dialect::parse(name)
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut docs = Vec::new();
    for file in &args.files {
        let read = read_documents(file)?;
        if let Some((at, value)) = read.iter().find_map(|d| placeholder(d, String::new())) {
            bail!(
                "{}: {at}: {value:?} is a placeholder from documentation: write the real value",
                file.display()
            );
        }
        docs.extend(read);
    }
    let options = Options {
        integrated_registry: args.integrated_registry.clone(),
    };
    let converted = sources::convert(args.from, &docs, &options)
        .map_err(|e| anyhow::anyhow!("cannot convert from {}: {e}", args.from.name()))?;
    // What we print must be settings imagegate accepts.
    let needs = Policy::from_json(&converted.settings.to_string())
        .map_err(|e| invalid_conversion(&e, &converted.settings, &docs, args.from))?
        .requirements();
    let mut stderr = std::io::stderr().lock();
    for l in &converted.limitations {
        writeln!(stderr, "imagegate convert: {}: {l}", args.from.name())?;
    }
    if let Some(note) = host_note(&needs, args.cluster_admission_policy) {
        writeln!(stderr, "imagegate convert: {note}")?;
    }
    let output = if args.cluster_admission_policy {
        let rules = match &args.metadata {
            Some(path) => metadata_rules(path)?,
            None if Path::new("metadata.yml").is_file() => {
                metadata_rules(Path::new("metadata.yml"))?
            }
            None => default_rules(),
        };
        cluster_admission_policy(&args.name, &args.module, rules, &converted, &needs)
    } else {
        converted.settings
    };
    print!("{}", serde_yaml_ng::to_string(&output)?);
    Ok(ExitCode::SUCCESS)
}

/// Every document of a YAML (or JSON) file; `kind: List` contributes its items.
pub fn read_documents(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc)
            .with_context(|| format!("invalid YAML in {}", path.display()))?;
        match value {
            Value::Null => {}
            Value::Object(ref o)
                if o.get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List")) =>
            {
                docs.extend(
                    o.get("items")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                )
            }
            Value::Object(_) => docs.push(value),
            other => bail!("{}: expected a mapping, found {other}", path.display()),
        }
    }
    Ok(docs)
}

/// The first documentation placeholder in `value` (a key or string that is
/// `...`, `<signer1>`-style or `REPLACE_ME`-style), with its path.
fn placeholder(value: &Value, at: String) -> Option<(String, String)> {
    let is_placeholder = |s: &str| {
        let s = s.trim();
        matches!(s, "..." | "\u{2026}")
            || (s.len() > 2 && s.starts_with('<') && s.ends_with('>') && !s[1..].contains('<'))
            || ["REPLACE_ME", "REPLACEME", "CHANGE_ME", "CHANGEME"]
                .iter()
                .any(|p| s.to_ascii_uppercase().contains(p))
    };
    match value {
        Value::String(s) if is_placeholder(s) => Some((at, s.clone())),
        Value::Object(o) => o.iter().find_map(|(k, v)| {
            let at = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            if is_placeholder(k) {
                Some((at, k.clone()))
            } else {
                placeholder(v, at)
            }
        }),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, v)| placeholder(v, format!("{at}[{i}]"))),
        _ => None,
    }
}

/// The converted settings are invalid: an input error when every invalid
/// value was copied from the input (the converter copies patterns, keys and
/// servers as written, a prefix perhaps completed with `**`), else a
/// converter bug.
fn invalid_conversion(
    error: &str,
    settings: &Value,
    docs: &[Value],
    from: Dialect,
) -> anyhow::Error {
    let from_input = |line: &str| {
        let Some((path, _)) = line.split_once(": ") else {
            return false;
        };
        let mut value = settings;
        for step in crate::positions::settings_path_steps(path) {
            value = match step.parse::<usize>() {
                Ok(i) => &value[i],
                Err(_) => &value[step.as_str()],
            };
        }
        value
            .as_str()
            .is_some_and(|v| docs.iter().any(|d| contains_string(d, v)))
    };
    if error.lines().all(from_input) {
        anyhow::anyhow!(
            "the {} input has a value imagegate cannot use (copied as written into the settings):\n{error}",
            from.name()
        )
    } else {
        anyhow::anyhow!(
            "the converted settings are invalid (a converter bug, please report): {error}"
        )
    }
}

/// Whether `wanted` is a string of `value`, or one completed.
fn contains_string(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(s) => wanted == s || (s.len() >= 3 && wanted.starts_with(s.as_str())),
        Value::Array(a) => a.iter().any(|v| contains_string(v, wanted)),
        Value::Object(o) => o.values().any(|v| contains_string(v, wanted)),
        _ => false,
    }
}

fn metadata_rules(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let meta: Value = serde_yaml_ng::from_str(&text)
        .with_context(|| format!("invalid YAML in {}", path.display()))?;
    match meta.get("rules") {
        Some(rules) => Ok(rules.clone()),
        None => bail!("{}: no `rules`", path.display()),
    }
}

/// The kinds imagegate reads images from (DESIGN.md "Decision").
fn default_rules() -> Value {
    let ops = json!(["CREATE", "UPDATE"]);
    json!([
        {"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods", "pods/ephemeralcontainers", "replicationcontrollers", "podtemplates"], "operations": ops},
        {"apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments", "replicasets", "statefulsets", "daemonsets"], "operations": ops},
        {"apiGroups": ["batch"], "apiVersions": ["v1"], "resources": ["jobs", "cronjobs"], "operations": ops},
        {"apiGroups": ["apps.openshift.io"], "apiVersions": ["v1"], "resources": ["deploymentconfigs"], "operations": ops},
    ])
}

/// Says when the settings need imagegate's own host: a capability
/// Kubewarden's policy-server does not have (under it those checks deny,
/// naming the capability).
fn host_note(needs: &Requirements, cluster_admission_policy: bool) -> Option<String> {
    if needs.imagegate_host.is_empty() {
        return None;
    }
    let uses: Vec<String> = needs
        .imagegate_host
        .iter()
        .map(|h| format!("{} calls {}", h.at, h.capability))
        .collect();
    let under = if cluster_admission_policy {
        "under Kubewarden's policy-server this ClusterAdmissionPolicy denies those images"
    } else {
        "Kubewarden's policy-server does not have it and denies those images"
    };
    Some(format!(
        "these settings need imagegate's own host: {}; {under} (the message names the capability). \
         Run them with `imagegate serve`: `imagegate scaffold webhook --image IMAGE -s SETTINGS` \
         writes the deployment (README: Without Kubewarden)",
        uses.join(", ")
    ))
}

/// A ClusterAdmissionPolicy running imagegate with `converted.settings`.
pub fn cluster_admission_policy(
    name: &str,
    module: &str,
    rules: Value,
    converted: &Converted,
    needs: &Requirements,
) -> Value {
    let settings = &converted.settings;
    let mut spec = json!({
        "module": module,
        "mode": "protect",
        "mutating": needs.mutates,
        "rules": rules,
        "settings": settings,
    });
    if let Some(selector) = &converted.namespace_selector {
        spec["namespaceSelector"] = selector.clone();
    }
    if settings.get("sources").is_some() {
        spec["contextAwareResources"] = context_aware_resources();
    }
    json!({
        "apiVersion": "policies.kubewarden.io/v1",
        "kind": "ClusterAdmissionPolicy",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// What `sources: {tmax, tanzu}` reads (sources::context).
fn context_aware_resources() -> Value {
    json!([
        {"apiVersion": "v1", "kind": "ConfigMap"},
        {"apiVersion": "v1", "kind": "Secret"},
        {"apiVersion": "tmax.io/v1", "kind": "RegistrySecurityPolicy"},
        {"apiVersion": "tmax.io/v1", "kind": "ClusterRegistrySecurityPolicy"},
        {"apiVersion": "signing.apps.tanzu.vmware.com/v1beta1", "kind": "ClusterImagePolicy"},
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_documents_and_lists_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(
            &path,
            "kind: K8sAllowedRepos\nspec: {parameters: {repos: [a/]}}\n---\n---\nkind: List\nitems:\n- kind: K8sImageDigests\n",
        )
        .unwrap();
        let docs = read_documents(&path).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["kind"], "K8sImageDigests");
        std::fs::write(&path, "- a\n").unwrap();
        assert!(read_documents(&path)
            .unwrap_err()
            .to_string()
            .contains("expected a mapping"));
    }

    #[test]
    fn notary_settings_say_they_need_imagegate_serve() {
        let needs = |settings: Value| {
            Policy::from_json(&settings.to_string())
                .unwrap()
                .requirements()
        };
        assert_eq!(
            host_note(
                &needs(json!({"rules": [{"name": "r", "images": ["a"]}]})),
                false
            ),
            None
        );
        let notary = needs(json!({"rules": [{"name": "dct", "images": ["a"],
            "verify": {"anyOf": [{"notary": {"server": "https://n"}}]}}]}));
        let note = host_note(&notary, true).unwrap();
        assert!(note.starts_with(r#"these settings need imagegate's own host: rules[0] "dct" calls notary/v1/signed_digest; under Kubewarden's policy-server this ClusterAdmissionPolicy denies those images"#), "{note}");
        assert!(note.contains("imagegate scaffold webhook"), "{note}");
        assert!(host_note(&notary, false)
            .unwrap()
            .contains("policy-server does not have it"));
    }

    #[test]
    fn the_default_module_is_this_release_at_metadatas_oci_url() {
        let metadata = crate::packaging::metadata::Metadata::from_yaml_file(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../metadata.yml"),
        )
        .unwrap();
        let oci_url = metadata
            .annotation(crate::packaging::metadata::keys::OCI_URL)
            .unwrap();
        assert_eq!(
            DEFAULT_MODULE,
            format!("registry://{oci_url}:v{}", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn placeholders_are_found_with_their_path() {
        let found = |v: Value| placeholder(&v, String::new());
        assert_eq!(
            found(json!({"spec":{"signers":[{"name":"<signer1>"}]}})),
            Some(("spec.signers[0].name".into(), "<signer1>".into()))
        );
        assert_eq!(
            found(json!({"spec":{"keys":{"...":"x"}}})),
            Some(("spec.keys....".into(), "...".into()))
        );
        assert_eq!(
            found(json!({"spec":{"server":"https://REPLACE_ME.example"}})),
            Some(("spec.server".into(), "https://REPLACE_ME.example".into()))
        );
        assert_eq!(
            found(
                json!({"spec":{"images":["ghcr.io/corp/**", "a<b>"], "key": "-----BEGIN PUBLIC KEY-----"}})
            ),
            None
        );
    }

    #[test]
    fn invalid_values_from_the_input_are_input_errors_others_converter_bugs() {
        let settings = json!({"rules":[{"name":"r","images":["https://ghcr.io/corp/**"]}]});
        let docs = [json!({"spec":{"repos":["https://ghcr.io/corp/**"]}})];
        let e = r#"rules[0].images[0]: invalid pattern "https://ghcr.io/corp/**": patterns are image references, not URLs: write ghcr.io/corp/**"#;
        let gatekeeper = Dialect::parse("gatekeeper").unwrap();
        let input = invalid_conversion(e, &settings, &docs, gatekeeper);
        assert!(
            input
                .to_string()
                .starts_with("the gatekeeper input has a value imagegate cannot use"),
            "{input}"
        );
        assert!(!input.to_string().contains("converter bug"));
        let bug = invalid_conversion(e, &settings, &[json!({})], gatekeeper);
        assert!(
            bug.to_string().contains("a converter bug, please report"),
            "{bug}"
        );
    }

    #[test]
    fn cluster_admission_policy_embeds_settings_and_selector() {
        let converted = Converted {
            settings: json!({"rules": [{"name": "r", "images": ["a"], "pinDigest": true}], "sources": {"tmax": true}}),
            limitations: Vec::new(),
            namespace_selector: Some(json!({"matchLabels": {"team": "a"}})),
        };
        let needs = Policy::from_json(&converted.settings.to_string())
            .unwrap()
            .requirements();
        let cap =
            cluster_admission_policy("p", "registry://x/y:1", default_rules(), &converted, &needs);
        assert_eq!(cap["apiVersion"], "policies.kubewarden.io/v1");
        assert_eq!(cap["spec"]["mutating"], true);
        assert_eq!(cap["spec"]["settings"], converted.settings);
        assert_eq!(cap["spec"]["namespaceSelector"]["matchLabels"]["team"], "a");
        assert_eq!(
            cap["spec"]["contextAwareResources"]
                .as_array()
                .unwrap()
                .len(),
            5
        );
        assert_eq!(cap["spec"]["rules"][1]["apiGroups"], json!(["apps"]));
    }
}
