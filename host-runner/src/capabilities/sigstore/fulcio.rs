//! What a Fulcio certificate says about its holder, and whether that is who
//! a check asked for.
//!
//! Claims are the subject (SAN: e-mail, URI or Fulcio's username otherName)
//! and the Fulcio extensions `1.3.6.1.4.1.57264.1.N`, named as sigstore-go
//! names them (`pkg/fulcio/certificate/extensions.go`): `.1`-`.6` hold raw
//! UTF-8 bytes, `.8` and later a DER UTF8String; the issuer is `.8`, else the
//! deprecated `.1`. Extensions without a name are exposed as
//! `oid.1.3.6.1.4.1.57264.1.N`, so conditions can reach new ones.

use std::collections::BTreeMap;
use x509_cert::der::asn1::Utf8StringRef;
use x509_cert::der::Decode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::Certificate;

use crate::capabilities::oci::verify::{github_repository, GITHUB_ACTIONS_ISSUER};

/// Fulcio's extension arc.
pub(crate) const FULCIO_ARC: &str = "1.3.6.1.4.1.57264.1.";
/// The SAN otherName type Fulcio uses for usernames.
const USERNAME_OID: &str = "1.3.6.1.4.1.57264.1.7";

/// Claim names of the Fulcio extensions `.N`.
fn extension_name(n: u32) -> Option<&'static str> {
    Some(match n {
        1 => "issuerV1",
        2 => "githubWorkflowTrigger",
        3 => "githubWorkflowSHA",
        4 => "githubWorkflowName",
        5 => "githubWorkflowRepository",
        6 => "githubWorkflowRef",
        8 => "issuer",
        9 => "buildSignerURI",
        10 => "buildSignerDigest",
        11 => "runnerEnvironment",
        12 => "sourceRepositoryURI",
        13 => "sourceRepositoryDigest",
        14 => "sourceRepositoryRef",
        15 => "sourceRepositoryIdentifier",
        16 => "sourceRepositoryOwnerURI",
        17 => "sourceRepositoryOwnerIdentifier",
        18 => "buildConfigURI",
        19 => "buildConfigDigest",
        20 => "buildTrigger",
        21 => "runInvocationURI",
        22 => "sourceRepositoryVisibilityAtSigning",
        _ => return None,
    })
}

/// The claims of a Fulcio certificate: `subject`, `issuer` and the
/// extensions by name.
pub(crate) type Claims = BTreeMap<String, String>;

/// Reads the claims; a certificate without a subject SAN is no Fulcio certificate.
pub(crate) fn claims(certificate: &Certificate) -> Result<Claims, String> {
    let mut claims = Claims::new();
    let tbs = certificate.tbs_certificate();
    for ext in tbs.extensions().into_iter().flatten() {
        let oid = ext.extn_id.to_string();
        let Some(n) = oid
            .strip_prefix(FULCIO_ARC)
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let bytes = ext.extn_value.as_bytes();
        let value = if n <= 6 {
            String::from_utf8(bytes.to_vec()).ok()
        } else {
            Utf8StringRef::from_der(bytes).ok().map(|s| s.to_string())
        };
        let Some(value) = value else {
            return Err(format!("Fulcio extension {oid} is not a UTF-8 string"));
        };
        let name = extension_name(n).map_or_else(|| format!("oid.{oid}"), str::to_string);
        claims.insert(name, value);
    }
    if !claims.contains_key("issuer") {
        if let Some(v1) = claims.get("issuerV1").cloned() {
            claims.insert("issuer".to_string(), v1);
        }
    }
    claims.remove("issuerV1");
    let san = tbs
        .get_extension::<SubjectAltName>()
        .map_err(|e| format!("the certificate's subjectAltName is malformed: {e}"))?
        .map(|(_, san)| san)
        .ok_or("the certificate has no subjectAltName (not a Fulcio certificate)")?;
    let subject = san.0.iter().find_map(|name| match name {
        GeneralName::Rfc822Name(s) | GeneralName::UniformResourceIdentifier(s) => {
            Some(s.to_string())
        }
        GeneralName::OtherName(other) if other.type_id.to_string() == USERNAME_OID => other
            .value
            .decode_as::<Utf8StringRef<'_>>()
            .ok()
            .map(|s| s.to_string()),
        _ => None,
    });
    let subject =
        subject.ok_or("the certificate's subjectAltName names no e-mail, URI or username")?;
    claims.insert("subject".to_string(), subject);
    Ok(claims)
}

/// A keyless identity a check accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Identity {
    /// Exact issuer and subject.
    Exact { issuer: String, subject: String },
    /// Exact issuer; the subject starts with `prefix` (which ends with `/`).
    Prefix { issuer: String, prefix: String },
    /// A GitHub Actions workflow of `owner` (and `repo`).
    GithubActions { owner: String, repo: Option<String> },
}

impl Identity {
    /// Whether the claims are this identity's; `Err` says what differs.
    pub(crate) fn check(&self, claims: &Claims) -> Result<(), String> {
        let get = |k: &str| claims.get(k).map(String::as_str).unwrap_or("");
        let issuer = get("issuer");
        let subject = get("subject");
        let expect_issuer = |wanted: &str| {
            if issuer == wanted {
                Ok(())
            } else {
                Err(format!("issuer {issuer:?} is not {wanted:?}"))
            }
        };
        match self {
            Identity::Exact {
                issuer,
                subject: wanted,
            } => {
                expect_issuer(issuer)?;
                if subject != wanted {
                    return Err(format!("subject {subject:?} is not {wanted:?}"));
                }
            }
            Identity::Prefix { issuer, prefix } => {
                expect_issuer(issuer)?;
                if !subject.starts_with(prefix.as_str()) {
                    return Err(format!(
                        "subject {subject:?} does not start with {prefix:?}"
                    ));
                }
            }
            Identity::GithubActions { owner, repo } => {
                expect_issuer(GITHUB_ACTIONS_ISSUER)?;
                github(claims, owner, repo.as_deref())?;
            }
        }
        Ok(())
    }
}

/// `gh attestation verify`'s owner / repository rule: the source repository
/// extensions (case-insensitive), or for certificates that predate them the
/// SAN's repository (and the workflow repository extension agreeing with it).
fn github(claims: &Claims, owner: &str, repo: Option<&str>) -> Result<(), String> {
    let subject = claims.get("subject").map(String::as_str).unwrap_or("");
    let (actual_owner, actual_repo) = match (
        claims.get("sourceRepositoryOwnerURI"),
        claims.get("sourceRepositoryURI"),
    ) {
        (Some(owner_uri), Some(repo_uri)) => {
            let owner = owner_uri
                .strip_prefix("https://github.com/")
                .filter(|o| !o.is_empty() && !o.contains('/'))
                .ok_or_else(|| {
                    format!("sourceRepositoryOwnerURI {owner_uri:?} is not a github.com owner")
                })?;
            let with_slash = format!("{repo_uri}/");
            let (o, r) = github_repository(&with_slash).ok_or_else(|| {
                format!("sourceRepositoryURI {repo_uri:?} is not a github.com repository")
            })?;
            if !o.eq_ignore_ascii_case(owner) {
                return Err(format!(
                    "sourceRepositoryURI {repo_uri:?} is not under sourceRepositoryOwnerURI {owner_uri:?}"
                ));
            }
            (owner.to_string(), r.to_string())
        }
        _ => {
            let (o, r) = github_repository(subject)
                .ok_or_else(|| format!("subject {subject:?} is not a github.com workflow"))?;
            if let Some(recorded) = claims.get("githubWorkflowRepository") {
                if recorded != &format!("{o}/{r}") {
                    return Err(format!(
                        "githubWorkflowRepository {recorded:?} disagrees with the subject {subject:?}"
                    ));
                }
            }
            (o.to_string(), r.to_string())
        }
    };
    if !actual_owner.eq_ignore_ascii_case(owner) {
        return Err(format!(
            "signed by a workflow of {actual_owner}/{actual_repo}, not of owner {owner}"
        ));
    }
    if let Some(repo) = repo {
        if !actual_repo.eq_ignore_ascii_case(repo) {
            return Err(format!(
                "signed by a workflow of {actual_owner}/{actual_repo}, not of {owner}/{repo}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Claims {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn exact_and_prefix_identities() {
        let c = with(&[
            ("issuer", "https://accounts.example"),
            (
                "subject",
                "https://github.com/corp/app/.github/workflows/r.yml@refs/tags/v1",
            ),
        ]);
        let exact = |i: &str, s: &str| Identity::Exact {
            issuer: i.into(),
            subject: s.into(),
        };
        assert!(exact(
            "https://accounts.example",
            "https://github.com/corp/app/.github/workflows/r.yml@refs/tags/v1"
        )
        .check(&c)
        .is_ok());
        assert_eq!(
            exact("https://accounts.example/", "x")
                .check(&c)
                .unwrap_err(),
            r#"issuer "https://accounts.example" is not "https://accounts.example/""#
        );
        let prefix = |p: &str| Identity::Prefix {
            issuer: "https://accounts.example".into(),
            prefix: p.into(),
        };
        assert!(prefix("https://github.com/corp/").check(&c).is_ok());
        assert!(prefix("https://github.com/corporate/").check(&c).is_err());
    }

    #[test]
    fn github_owner_and_repository() {
        let gh = |owner: &str, repo: Option<&str>| Identity::GithubActions {
            owner: owner.into(),
            repo: repo.map(str::to_string),
        };
        let modern = with(&[
            ("issuer", GITHUB_ACTIONS_ISSUER),
            ("subject", "https://github.com/github/artifact-attestations-workflows/.github/workflows/attest.yml@09b4"),
            ("sourceRepositoryURI", "https://github.com/malancas/attest-demo"),
            ("sourceRepositoryOwnerURI", "https://github.com/malancas"),
        ]);
        // A reusable workflow signs: the source repository decides, not the SAN.
        assert!(gh("malancas", Some("attest-demo")).check(&modern).is_ok());
        assert!(gh("Malancas", Some("Attest-Demo")).check(&modern).is_ok());
        assert_eq!(
            gh("github", None).check(&modern).unwrap_err(),
            "signed by a workflow of malancas/attest-demo, not of owner github"
        );
        let old = with(&[
            ("issuer", GITHUB_ACTIONS_ISSUER),
            (
                "subject",
                "https://github.com/corp/app/.github/workflows/r.yml@refs/heads/main",
            ),
            ("githubWorkflowRepository", "corp/other"),
        ]);
        assert_eq!(
            gh("corp", None).check(&old).unwrap_err(),
            r#"githubWorkflowRepository "corp/other" disagrees with the subject "https://github.com/corp/app/.github/workflows/r.yml@refs/heads/main""#
        );
        let custom = with(&[
            (
                "issuer",
                "https://token.actions.githubusercontent.com/hammer-time",
            ),
            ("subject", "https://github.com/too-legit/attest/x"),
        ]);
        assert_eq!(
            gh("too-legit", None).check(&custom).unwrap_err(),
            r#"issuer "https://token.actions.githubusercontent.com/hammer-time" is not "https://token.actions.githubusercontent.com""#
        );
    }
}
