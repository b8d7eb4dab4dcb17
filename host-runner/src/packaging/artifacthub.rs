//! artifacthub-pkg.yml and questions-ui.yml generated from metadata.yml
//! (`imagegate artifacthub`), with the fields and annotations `kwctl scaffold
//! artifacthub` writes (policy-evaluator's `policy_artifacthub.rs`).
//!
//! Both files are checked in and never edited by hand; `--check` (and a unit
//! test) fails when they are stale. `createdAt` is the only field that is not
//! a function of metadata.yml: it is kept from the existing file while the
//! version is unchanged, so regenerating is idempotent, and set to the current
//! time (or `--created-at`) when the version changes.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::packaging::metadata::{keys, Metadata};
use crate::packaging::questions;

/// Header of the generated package file.
const HEADER: &str = "\
# Kubewarden Artifacthub Package config
#
# Generated from metadata.yml by `imagegate artifacthub`; do not edit.
# Use this config to submit the policy to https://artifacthub.io.
";

const QUESTIONS_HEADER: &str = "\
# Settings form for the Rancher Kubewarden UI.
# Generated from metadata.yml by `imagegate artifacthub`; do not edit.
";

/// The artifacthub-pkg.yml document (Artifact Hub's schema, Kubewarden's
/// subset and field order).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactHubPkg {
    pub version: String,
    pub name: String,
    pub display_name: String,
    pub created_at: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(rename = "homeURL", skip_serializing_if = "Option::is_none")]
    pub home_url: Option<String>,
    pub containers_images: Vec<ContainerImage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<Link>>,
    pub install: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintainers: Option<Vec<Maintainer>>,
    pub provider: Provider,
    pub recommendations: Vec<Recommendation>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ContainerImage {
    pub name: String,
    pub image: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Link {
    pub name: String,
    pub url: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Maintainer {
    pub name: String,
    pub email: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Provider {
    pub name: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub url: String,
}

/// The two generated files.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    pub package: String,
    pub questions: String,
}

/// Both files' text for `metadata`, with `created_at` as the creation time.
pub fn generate(metadata: &Metadata, created_at: &str) -> Result<Generated> {
    let questions = format!(
        "{QUESTIONS_HEADER}{}",
        questions::render(&questions::generate(metadata)?)?
    );
    let pkg = package(metadata, created_at, &questions)?;
    Ok(Generated {
        package: format!("{HEADER}{}", serde_yaml_ng::to_string(&pkg)?),
        questions,
    })
}

/// Builds the package document, failing on the annotations kwctl requires.
pub fn package(
    metadata: &Metadata,
    created_at: &str,
    questions_ui: &str,
) -> Result<ArtifactHubPkg> {
    let version_text = metadata.required_annotation(keys::VERSION)?;
    let version = semver::Version::parse(version_text)
        .with_context(|| format!("{} {version_text:?} is not semver", keys::VERSION))?;
    let oci_url = metadata.required_annotation(keys::OCI_URL)?;
    let image = imagegate_policy::reference::Reference::parse(&format!("{oci_url}:v{version}"))
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| {
            format!(
                "{} {oci_url:?} is not a repository reference",
                keys::OCI_URL
            )
        })?
        .to_string();
    if questions_ui.trim().is_empty() {
        bail!("questions-ui content cannot be empty");
    }

    let mut annotations = BTreeMap::new();
    annotations.insert(
        "kubewarden/mutation".to_string(),
        metadata.mutating.to_string(),
    );
    annotations.insert(
        "kubewarden/rules".to_string(),
        serde_yaml_ng::to_string(&metadata.rules)?,
    );
    if !metadata.context_aware_resources.is_empty() {
        annotations.insert(
            "kubewarden/contextAwareResources".to_string(),
            serde_yaml_ng::to_string(&metadata.context_aware_resources)?,
        );
    }
    annotations.insert(
        "kubewarden/questions-ui".to_string(),
        questions_ui.to_string(),
    );
    if let Some(hidden) = metadata.annotation(keys::HIDDEN_UI) {
        annotations.insert("kubewarden/hidden-ui".to_string(), hidden.to_string());
    }
    if let Some(resources) = metadata.annotation(keys::ARTIFACTHUB_RESOURCES) {
        annotations.insert("kubewarden/resources".to_string(), resources.to_string());
    }

    Ok(ArtifactHubPkg {
        version: version.to_string(),
        name: metadata.required_annotation(keys::TITLE)?.to_string(),
        display_name: metadata
            .required_annotation(keys::ARTIFACTHUB_DISPLAY_NAME)?
            .to_string(),
        created_at: created_at.to_string(),
        description: metadata.required_annotation(keys::DESCRIPTION)?.to_string(),
        license: metadata.annotation(keys::LICENSE).map(str::to_string),
        home_url: metadata
            .annotation(keys::URL)
            .map(|u| checked_url(keys::URL, u))
            .transpose()?,
        containers_images: vec![ContainerImage {
            name: "policy".to_string(),
            image: image.clone(),
        }],
        keywords: metadata
            .annotation(keys::ARTIFACTHUB_KEYWORDS)
            .map(keywords)
            .transpose()?,
        links: links(metadata, &version)?,
        install: install(&image),
        maintainers: metadata
            .annotation(keys::AUTHOR)
            .map(maintainers)
            .transpose()?,
        provider: Provider {
            name: "kubewarden".to_string(),
        },
        recommendations: vec![Recommendation {
            url: "https://artifacthub.io/packages/helm/kubewarden/kubewarden-controller"
                .to_string(),
        }],
        annotations,
    })
}

fn checked_url(key: &str, url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .with_context(|| format!("{key} {url:?} is not an http(s) URL"))?;
    if rest.is_empty() || rest.starts_with('/') || url.contains(char::is_whitespace) {
        bail!("{key} {url:?} is not an http(s) URL");
    }
    Ok(url.to_string())
}

/// Comma-separated keywords, trimmed; an empty item is an error (as in kwctl).
fn keywords(csv: &str) -> Result<Vec<String>> {
    let words: Vec<String> = csv
        .split(',')
        .map(|w| w.trim_matches(' ').to_string())
        .collect();
    if words.iter().any(String::is_empty) {
        bail!(
            "{} {csv:?} is malformed, must be comma-separated values",
            keys::ARTIFACTHUB_KEYWORDS
        );
    }
    Ok(words)
}

/// `source`, plus the release download of policy.wasm for GitHub sources
/// (tag from `com.github.release.tag`, URL-encoded, else `v<version>`).
fn links(metadata: &Metadata, version: &semver::Version) -> Result<Option<Vec<Link>>> {
    let Some(source) = metadata.annotation(keys::SOURCE) else {
        return Ok(None);
    };
    let source = checked_url(keys::SOURCE, source)?;
    let source_link = Link {
        name: "source".to_string(),
        url: source.clone(),
    };
    let host = source.split("://").nth(1).and_then(|r| r.split('/').next());
    if host != Some("github.com") {
        return Ok(Some(vec![source_link]));
    }
    let release = match metadata.annotation(keys::GITHUB_RELEASE_TAG) {
        Some(tag) => form_urlencoded::byte_serialize(tag.as_bytes()).collect::<String>(),
        None => format!("v{version}"),
    };
    Ok(Some(vec![
        Link {
            name: "policy".to_string(),
            url: format!(
                "{}/releases/download/{release}/policy.wasm",
                source.trim_end_matches('/')
            ),
        },
        source_link,
    ]))
}

fn install(image: &str) -> String {
    format!(
        r#"The policy can be obtained using [kwctl](https://docs.kubewarden.io/howtos/install-kwctl):
```console
kwctl pull {image}
```
Then, generate the policy manifest and tune it to your liking. For example:
```console
kwctl scaffold manifest -t ClusterAdmissionPolicy registry://{image}
```
"#
    )
}

/// RFC 5322 address list, restricted to `Name <addr>` and bare `addr` items.
fn maintainers(list: &str) -> Result<Vec<Maintainer>> {
    list.split(',')
        .map(|item| {
            let item = item.trim();
            let (name, email) = match item.split_once('<') {
                Some((name, rest)) => {
                    let email = rest.strip_suffix('>').with_context(|| {
                        format!("{} item {item:?} lacks a closing '>'", keys::AUTHOR)
                    })?;
                    (name.trim().trim_matches('"'), email.trim())
                }
                None => ("", item),
            };
            let valid = email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.contains('@')
            }) && !email.contains(char::is_whitespace);
            if !valid {
                bail!("{} item {item:?} has no valid email address", keys::AUTHOR);
            }
            Ok(Maintainer {
                name: name.to_string(),
                email: email.to_string(),
            })
        })
        .collect()
}

/// The createdAt to write: `given` (checked), else the one of the `existing`
/// file while it describes the same version, else now.
pub fn created_at(
    given: Option<&str>,
    existing: Option<&str>,
    metadata: &Metadata,
) -> Result<String> {
    match given {
        Some(t) => validate_timestamp(t),
        None => Ok(existing
            .and_then(|text| reusable_created_at(text, metadata))
            .unwrap_or_else(now)),
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn validate_timestamp(t: &str) -> Result<String> {
    chrono::DateTime::parse_from_rfc3339(t)
        .with_context(|| format!("--created-at {t:?} is not RFC 3339"))?;
    Ok(t.to_string())
}

/// The existing file's createdAt, when it describes the same version.
fn reusable_created_at(existing: &str, metadata: &Metadata) -> Option<String> {
    let old: ArtifactHubPkg = serde_yaml_ng::from_str(existing).ok()?;
    (Some(old.version.as_str()) == metadata.annotation(keys::VERSION)).then_some(old.created_at)
}

/// `text` with the createdAt line blanked, for staleness comparisons.
pub fn without_created_at(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with("createdAt:") {
                "createdAt:"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Fails when the file at `path` differs from `expected` (createdAt aside).
pub fn check_file(path: &Path, expected: &str) -> Result<()> {
    let actual =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if without_created_at(&actual) != without_created_at(expected) {
        bail!(
            "{} is stale: run `imagegate artifacthub` (make artifacthub)",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const CREATED: &str = "2026-01-01T00:00:00Z";

    fn repo_file(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
    }

    fn repo_metadata() -> Metadata {
        Metadata::from_yaml_file(&repo_file("metadata.yml")).unwrap()
    }

    /// The checked-in files must be what `imagegate artifacthub` generates
    /// from the checked-in metadata.yml (createdAt aside).
    #[test]
    fn checked_in_files_are_not_stale() {
        let generated = generate(&repo_metadata(), CREATED).unwrap();
        let pkg = std::fs::read_to_string(repo_file("artifacthub-pkg.yml")).unwrap();
        let questions = std::fs::read_to_string(repo_file("questions-ui.yml")).unwrap();
        assert_eq!(
            without_created_at(&pkg),
            without_created_at(&generated.package),
            "artifacthub-pkg.yml is stale: run `make artifacthub`"
        );
        assert_eq!(
            questions, generated.questions,
            "questions-ui.yml is stale: run `make artifacthub`"
        );
    }

    #[test]
    fn created_at_is_kept_while_the_version_is_unchanged() {
        let m = repo_metadata();
        let first = generate(&m, CREATED).unwrap().package;
        assert_eq!(reusable_created_at(&first, &m).as_deref(), Some(CREATED));
        let bumped = first.replace(
            &format!("version: {}", env!("CARGO_PKG_VERSION")),
            "version: 9.9.9",
        );
        assert_eq!(reusable_created_at(&bumped, &m), None);
        assert!(validate_timestamp("yesterday").is_err());
    }

    #[test]
    fn fields_follow_kwctl() {
        let m = repo_metadata();
        let pkg = package(&m, CREATED, "questions: []\n").unwrap();
        let v = env!("CARGO_PKG_VERSION");
        assert_eq!(pkg.version, v);
        assert_eq!(pkg.name, "imagegate");
        assert_eq!(pkg.display_name, "imagegate");
        assert_eq!(pkg.license.as_deref(), Some("Apache-2.0"));
        assert_eq!(
            pkg.home_url.as_deref(),
            Some("https://github.com/imagegate/imagegate")
        );
        let image = format!("ghcr.io/imagegate/policies/imagegate:v{v}");
        assert_eq!(
            pkg.containers_images,
            vec![ContainerImage {
                name: "policy".into(),
                image: image.clone()
            }]
        );
        assert!(pkg.install.contains(&format!("kwctl pull {image}\n")));
        assert!(pkg.install.contains(&format!("registry://{image}\n")));
        assert_eq!(
            pkg.links.unwrap()[0].url,
            format!("https://github.com/imagegate/imagegate/releases/download/v{v}/policy.wasm")
        );
        assert_eq!(pkg.keywords.unwrap()[0], "image");
        assert_eq!(
            pkg.maintainers.unwrap(),
            vec![Maintainer {
                name: "imagegate developers".into(),
                email: "maintainers@imagegate.dev".into()
            }]
        );
        assert_eq!(pkg.annotations["kubewarden/mutation"], "true");
        assert_eq!(
            pkg.annotations["kubewarden/questions-ui"],
            "questions: []\n"
        );
        assert!(pkg.annotations["kubewarden/resources"].starts_with("Pod, "));
        let rules: Vec<crate::packaging::metadata::Rule> =
            serde_yaml_ng::from_str(&pkg.annotations["kubewarden/rules"]).unwrap();
        assert_eq!(rules, m.rules);
        let car: Vec<crate::packaging::metadata::ContextAwareResource> =
            serde_yaml_ng::from_str(&pkg.annotations["kubewarden/contextAwareResources"]).unwrap();
        assert_eq!(
            car,
            m.context_aware_resources
                .iter()
                .cloned()
                .collect::<Vec<_>>()
        );
        assert!(!pkg.annotations.contains_key("kubewarden/hidden-ui"));
    }

    #[test]
    fn monorepo_release_tag_is_url_encoded() {
        let m = Metadata::from_yaml(
            "rules: []\nmutating: false\nannotations:\n  io.kubewarden.policy.version: 1.2.3\n  \
             io.kubewarden.policy.source: https://github.com/o/r\n  com.github.release.tag: p/v1.2.3\n",
        )
        .unwrap();
        let links = links(&m, &semver::Version::new(1, 2, 3)).unwrap().unwrap();
        assert_eq!(
            links[0].url,
            "https://github.com/o/r/releases/download/p%2Fv1.2.3/policy.wasm"
        );
        let other = Metadata::from_yaml(
            "rules: []\nmutating: false\nannotations:\n  io.kubewarden.policy.source: https://gitlab.com/o/r\n",
        )
        .unwrap();
        let links = super::links(&other, &semver::Version::new(1, 2, 3))
            .unwrap()
            .unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].name, "source");
    }

    #[test]
    fn required_annotations_and_malformed_values() {
        let mut m = repo_metadata();
        for key in [
            keys::VERSION,
            keys::TITLE,
            keys::ARTIFACTHUB_DISPLAY_NAME,
            keys::DESCRIPTION,
            keys::OCI_URL,
        ] {
            let mut broken = m.clone();
            broken.annotations.as_mut().unwrap().remove(key);
            let err = package(&broken, CREATED, "q").unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
        assert!(package(&m, CREATED, "  \n").is_err());
        assert!(keywords("a,,b").is_err());
        assert_eq!(keywords(" a, b c ").unwrap(), vec!["a", "b c"]);
        assert!(maintainers("Tux <tux.example.com>").is_err());
        assert!(maintainers("Tux <tux@example.com").is_err());
        assert_eq!(
            maintainers("Tux <tux@example.com>, pidgin@example.com").unwrap(),
            vec![
                Maintainer {
                    name: "Tux".into(),
                    email: "tux@example.com".into()
                },
                Maintainer {
                    name: "".into(),
                    email: "pidgin@example.com".into()
                }
            ]
        );
        m.annotations
            .as_mut()
            .unwrap()
            .insert(keys::URL.into(), "github.com/x".into());
        assert!(package(&m, CREATED, "q").is_err());
    }
}
