//! Notation trust policies (the Notary Project's `trustpolicy.json`,
//! `trust-store-trust-policy.md`): read from a `notation` check's settings,
//! validated at `validate_settings` with the path of every mistake, and at
//! request time the statement that applies to an image is selected and
//! handed to the host as a [`NotationPolicy`].
//!
//! The rules are notation-go's (`verifier/trustpolicy`): version `1.0`, unique
//! statement names, registry scopes that are fully qualified repositories or
//! one `*` alone, each scope in one statement; levels `strict`, `permissive`,
//! `audit`, `skip`; `override` of any validation but integrity, `skip` only
//! for revocation; trust stores `ca:`, `signingAuthority:`, `tsa:`; trusted
//! identities `*` alone or `x509.subject:` names with C, ST (or S) and O,
//! single-valued and not overlapping. imagegate's own: the stores a statement
//! names must be in the check's `trustStores`; only `x509.subject` identities
//! (no plugins); revocation cannot be checked offline, so a statement whose
//! override demands it (`revocation: enforce`) is refused, and the level's
//! own revocation step is skipped with a note in the answer; a `skip`
//! statement is valid, but a check whose image falls under it fails (a
//! verify check never admits an image without verifying a signature).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::dn::DistinguishedName;
use crate::pem;
use crate::reference::Reference;
use crate::settings::{fields, platforms, string, string_map, strings};
use crate::wire::{
    NotationAction, NotationPolicy, NotationStoreKind, NotationTrustStore, Platforms,
    VerifyTimestamp,
};

/// A `notation` check as written: the trust stores (named PEM bundles) and
/// either a whole `trustPolicy` document or one inline statement (the
/// statement then covers every image of the rule). Read from the JSON value
/// by hand, as the attestation check is: serde's derived readers cost the
/// module more than these few fields.
struct NotationSettings {
    /// `"ca:acme": "-----BEGIN CERTIFICATE-----..."`.
    trust_stores: BTreeMap<String, String>,
    trust_policy: Option<DocumentSettings>,
    signature_verification: Option<SignatureVerificationSettings>,
    trusted_identities: Option<Vec<String>>,
    user_metadata: BTreeMap<String, String>,
    platforms: Platforms,
}

/// `trustpolicy.json`.
struct DocumentSettings {
    version: String,
    trust_policies: Vec<StatementSettings>,
}

struct StatementSettings {
    name: String,
    registry_scopes: Vec<String>,
    signature_verification: SignatureVerificationSettings,
    trust_stores: Vec<String>,
    trusted_identities: Vec<String>,
}

#[derive(Clone)]
struct SignatureVerificationSettings {
    level: String,
    r#override: BTreeMap<String, String>,
    verify_timestamp: Option<String>,
}

impl NotationSettings {
    fn read(value: &Value, at: &str) -> Result<Self, String> {
        const FIELDS: &[&str] = &[
            "trustStores",
            "trustPolicy",
            "signatureVerification",
            "trustedIdentities",
            "userMetadata",
            "platforms",
        ];
        let map = fields(value, at, FIELDS)?;
        Ok(NotationSettings {
            trust_stores: string_map(map, "trustStores", at)?
                .ok_or_else(|| format!("{at}.trustStores: at least one trust store is required"))?,
            trust_policy: map
                .get("trustPolicy")
                .map(|d| DocumentSettings::read(d, &format!("{at}.trustPolicy")))
                .transpose()?,
            signature_verification: map
                .get("signatureVerification")
                .map(|v| {
                    SignatureVerificationSettings::read(v, &format!("{at}.signatureVerification"))
                })
                .transpose()?,
            trusted_identities: strings(map, "trustedIdentities", at)?,
            user_metadata: string_map(map, "userMetadata", at)?.unwrap_or_default(),
            platforms: platforms(map, at)?,
        })
    }
}

impl DocumentSettings {
    fn read(value: &Value, at: &str) -> Result<Self, String> {
        let map = fields(value, at, &["version", "trustPolicies"])?;
        let trust_policies = match map.get("trustPolicies") {
            None => Vec::new(),
            Some(list) => list
                .as_array()
                .ok_or_else(|| format!("{at}.trustPolicies: a list of statements is required"))?
                .iter()
                .enumerate()
                .map(|(i, s)| StatementSettings::read(s, &format!("{at}.trustPolicies[{i}]")))
                .collect::<Result<_, _>>()?,
        };
        Ok(DocumentSettings {
            version: string(map, "version", at)?.unwrap_or_default(),
            trust_policies,
        })
    }
}

impl StatementSettings {
    fn read(value: &Value, at: &str) -> Result<Self, String> {
        const FIELDS: &[&str] = &[
            "name",
            "registryScopes",
            "signatureVerification",
            "trustStores",
            "trustedIdentities",
        ];
        let map = fields(value, at, FIELDS)?;
        let verification = map
            .get("signatureVerification")
            .ok_or_else(|| format!("{at}.signatureVerification: a level is required"))?;
        Ok(StatementSettings {
            name: string(map, "name", at)?.unwrap_or_default(),
            registry_scopes: strings(map, "registryScopes", at)?.unwrap_or_default(),
            signature_verification: SignatureVerificationSettings::read(
                verification,
                &format!("{at}.signatureVerification"),
            )?,
            trust_stores: strings(map, "trustStores", at)?.unwrap_or_default(),
            trusted_identities: strings(map, "trustedIdentities", at)?.unwrap_or_default(),
        })
    }
}

impl SignatureVerificationSettings {
    fn read(value: &Value, at: &str) -> Result<Self, String> {
        let map = fields(value, at, &["level", "override", "verifyTimestamp"])?;
        Ok(SignatureVerificationSettings {
            level: string(map, "level", at)?
                .ok_or_else(|| format!("{at}.level: a level is required"))?,
            r#override: string_map(map, "override", at)?.unwrap_or_default(),
            verify_timestamp: string(map, "verifyTimestamp", at)?,
        })
    }
}

/// A compiled `notation` check.
#[derive(Debug, Clone)]
pub(crate) struct NotationCheck {
    statements: Vec<Statement>,
    user_metadata: BTreeMap<String, String>,
    pub(crate) platforms: Platforms,
}

#[derive(Debug, Clone)]
struct Statement {
    /// `None`: the global `*` statement.
    scopes: Option<Vec<String>>,
    /// `None`: level `skip`.
    policy: Option<NotationPolicy>,
    name: String,
}

/// A trusted identity of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedIdentity {
    /// `*`: any signing certificate the trust stores vouch for.
    Any,
    /// `x509.subject: ...`: the leaf's subject must include this name.
    Subject(DistinguishedName),
}

/// Reads one `trustedIdentities` entry with Notation's rules: `*`, or
/// `x509.subject:` and a distinguished name with C, ST (or S) and O, no
/// multi-valued RDN and no attribute twice. The host reads the identities it
/// is sent with this too.
pub fn parse_identity(identity: &str) -> Result<TrustedIdentity, String> {
    if identity == "*" {
        return Ok(TrustedIdentity::Any);
    }
    let (prefix, value) = identity
        .split_once(':')
        .ok_or_else(|| format!("{identity:?} is neither \"*\" nor \"x509.subject:<name>\""))?;
    if prefix != "x509.subject" {
        return Err(format!(
            "{identity:?}: only x509.subject identities are supported (imagegate runs no Notation plugins)"
        ));
    }
    if value.trim().is_empty() {
        return Err(format!("{identity:?} has no distinguished name"));
    }
    let name = DistinguishedName::parse(value)?;
    check_identity_name(&name).map_err(|e| format!("{identity:?}: {e}"))?;
    Ok(TrustedIdentity::Subject(name))
}

/// Notation's rules for a name compared by subset (`ParseDistinguishedName`),
/// for identities and for the leaf certificates they are compared with.
pub fn check_identity_name(name: &DistinguishedName) -> Result<(), String> {
    let mut seen: Vec<&str> = Vec::new();
    for rdn in name.rdns() {
        if rdn.len() > 1 {
            return Err("multi-valued RDNs are not supported".to_string());
        }
        for attribute in rdn {
            if seen.contains(&attribute.kind.as_str()) {
                return Err(format!("attribute {} appears twice", attribute.kind));
            }
            seen.push(&attribute.kind);
        }
    }
    for mandatory in ["C", "ST", "O"] {
        if !seen.contains(&mandatory) {
            return Err(format!(
                "the name must have C, ST (or S) and O attributes; {mandatory} is missing"
            ));
        }
    }
    Ok(())
}

const LEVELS: [(&str, [NotationAction; 4]); 3] = {
    use NotationAction::{Enforce, Log};
    // authenticity, authenticTimestamp, expiry, revocation
    [
        ("strict", [Enforce, Enforce, Enforce, Enforce]),
        ("permissive", [Enforce, Log, Log, Log]),
        ("audit", [Log, Log, Log, Log]),
    ]
};

const VALIDATIONS: [&str; 4] = ["authenticity", "authenticTimestamp", "expiry", "revocation"];

impl NotationCheck {
    /// Reads, validates and compiles a check; `at` is its path
    /// (`rules[0].verify.anyOf[1].notation`).
    pub(crate) fn read(value: &Value, at: &str) -> Result<Self, String> {
        Self::compile(&NotationSettings::read(value, at)?, at)
    }

    fn compile(s: &NotationSettings, at: &str) -> Result<Self, String> {
        if s.trust_stores.is_empty() {
            return Err(format!(
                "{at}.trustStores: at least one trust store is required"
            ));
        }
        for (name, certificates) in &s.trust_stores {
            parse_store_name(name).map_err(|e| format!("{at}.trustStores: {e}"))?;
            pem::expect_all(certificates, &["CERTIFICATE"])
                .map_err(|e| format!("{at}.trustStores.{name}: {e}"))?;
        }
        let inline = s.signature_verification.is_some() || s.trusted_identities.is_some();
        let statements = match (&s.trust_policy, inline) {
            (Some(_), true) => {
                return Err(format!(
                    "{at}: trustPolicy and an inline statement (signatureVerification, trustedIdentities) exclude each other"
                ))
            }
            (Some(doc), false) => compile_document(doc, &format!("{at}.trustPolicy"), s)?,
            (None, _) => {
                let statement = StatementSettings {
                    name: "inline".to_string(),
                    registry_scopes: vec!["*".to_string()],
                    signature_verification: s.signature_verification.clone().unwrap_or(
                        SignatureVerificationSettings {
                            level: "strict".to_string(),
                            r#override: BTreeMap::new(),
                            verify_timestamp: None,
                        },
                    ),
                    trust_stores: s.trust_stores.keys().cloned().collect(),
                    trusted_identities: s.trusted_identities.clone().unwrap_or_default(),
                };
                vec![compile_statement(&statement, at, s)?]
            }
        };
        for key in s.user_metadata.keys() {
            if key.is_empty() {
                return Err(format!("{at}.userMetadata: keys must not be empty"));
            }
        }
        Ok(NotationCheck {
            statements,
            user_metadata: s.user_metadata.clone(),
            platforms: s.platforms,
        })
    }

    /// The host request for `image` (normalized), or why the check fails
    /// without asking: no statement applies, or the one that does skips
    /// verification.
    pub(crate) fn request(
        &self,
        image: &str,
    ) -> Result<crate::wire::NotationVerifyRequest, String> {
        let repository = Reference::parse(image)
            .map(|r| repository(&r))
            .map_err(|e| format!("{image}: {e}"))?;
        let statement = self
            .statements
            .iter()
            .find(|s| {
                s.scopes
                    .as_ref()
                    .is_some_and(|scopes| scopes.contains(&repository))
            })
            .or_else(|| self.statements.iter().find(|s| s.scopes.is_none()))
            .ok_or_else(|| {
                format!(
                    "no Notation trust policy statement applies to {repository} (registryScopes)"
                )
            })?;
        let policy = statement.policy.clone().ok_or_else(|| {
            format!(
                "Notation trust policy statement {:?} skips verification for {repository}: a verify check never admits an image without verifying its signature",
                statement.name
            )
        })?;
        Ok(crate::wire::NotationVerifyRequest {
            image: image.to_string(),
            platforms: self.platforms,
            policy,
            user_metadata: self.user_metadata.clone(),
        })
    }
}

/// `host[:port]/path`: what registry scopes name.
fn repository(r: &Reference) -> String {
    match r.port() {
        Some(port) => format!("{}:{port}/{}", r.host(), r.path()),
        None => format!("{}/{}", r.host(), r.path()),
    }
}

fn parse_store_name(store: &str) -> Result<(NotationStoreKind, &str), String> {
    let (kind, name) = store
        .split_once(':')
        .ok_or_else(|| format!("{store:?} is not <type>:<name>"))?;
    let kind = match kind {
        "ca" => NotationStoreKind::Ca,
        "signingAuthority" => NotationStoreKind::SigningAuthority,
        "tsa" => NotationStoreKind::Tsa,
        other => {
            return Err(format!(
                "{store:?}: unknown trust store type {other:?} (ca, signingAuthority, tsa)"
            ))
        }
    };
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(format!(
            "{store:?}: a trust store name is made of [a-zA-Z0-9_.-]"
        ));
    }
    Ok((kind, name))
}

fn compile_document(
    doc: &DocumentSettings,
    at: &str,
    check: &NotationSettings,
) -> Result<Vec<Statement>, String> {
    if doc.version != "1.0" {
        return Err(format!(
            "{at}.version: {:?} is not a supported version (1.0)",
            doc.version
        ));
    }
    if doc.trust_policies.is_empty() {
        return Err(format!(
            "{at}.trustPolicies: at least one statement is required"
        ));
    }
    // Linear lookups: statements are few, and a map costs the module more.
    let mut scopes: Vec<(String, usize)> = Vec::new();
    let mut statements = Vec::with_capacity(doc.trust_policies.len());
    for (i, statement) in doc.trust_policies.iter().enumerate() {
        let at = format!("{at}.trustPolicies[{i}]");
        if statement.name.is_empty() {
            return Err(format!("{at}.name: every statement needs a name"));
        }
        if let Some(first) = doc.trust_policies[..i]
            .iter()
            .position(|earlier| earlier.name == statement.name)
        {
            return Err(format!(
                "{at}.name: {:?} is also the name of trustPolicies[{first}]",
                statement.name
            ));
        }
        let compiled = compile_statement(statement, &at, check)?;
        let listed = compiled
            .scopes
            .clone()
            .unwrap_or_else(|| vec!["*".to_string()]);
        for (j, scope) in listed.into_iter().enumerate() {
            if let Some((_, first)) = scopes.iter().find(|(earlier, _)| *earlier == scope) {
                return Err(format!(
                    "{at}.registryScopes[{j}]: {scope:?} is also a scope of trustPolicies[{first}]"
                ));
            }
            scopes.push((scope, i));
        }
        statements.push(compiled);
    }
    Ok(statements)
}

fn compile_statement(
    s: &StatementSettings,
    at: &str,
    check: &NotationSettings,
) -> Result<Statement, String> {
    let scopes = compile_scopes(&s.registry_scopes, &format!("{at}.registryScopes"))?;
    let (level, actions) = compile_verification(
        &s.signature_verification,
        &format!("{at}.signatureVerification"),
    )?;
    let verify_timestamp = match s.signature_verification.verify_timestamp.as_deref() {
        None | Some("always") => VerifyTimestamp::Always,
        Some("afterCertExpiry") => VerifyTimestamp::AfterCertExpiry,
        Some(other) => {
            return Err(format!(
                "{at}.signatureVerification.verifyTimestamp: {other:?} is neither always nor afterCertExpiry"
            ))
        }
    };
    if level == "skip" {
        if !s.trust_stores.is_empty() || !s.trusted_identities.is_empty() {
            return Err(format!(
                "{at}: a statement at level skip has no trustStores or trustedIdentities"
            ));
        }
        return Ok(Statement {
            scopes,
            policy: None,
            name: s.name.clone(),
        });
    }
    if s.trust_stores.is_empty() {
        return Err(format!(
            "{at}.trustStores: at least one trust store is required"
        ));
    }
    if s.trusted_identities.is_empty() {
        return Err(format!(
            "{at}.trustedIdentities: at least one identity (or \"*\") is required"
        ));
    }
    let mut trust_stores = Vec::with_capacity(s.trust_stores.len());
    for (k, store) in s.trust_stores.iter().enumerate() {
        let (kind, name) =
            parse_store_name(store).map_err(|e| format!("{at}.trustStores[{k}]: {e}"))?;
        let certificates = check.trust_stores.get(store).ok_or_else(|| {
            format!("{at}.trustStores[{k}]: {store:?} is not one of the check's trustStores")
        })?;
        trust_stores.push(NotationTrustStore {
            kind,
            name: name.to_string(),
            certificates: certificates.clone(),
        });
    }
    if trust_stores
        .iter()
        .all(|t| t.kind == NotationStoreKind::Tsa)
    {
        return Err(format!(
            "{at}.trustStores: a ca: or signingAuthority: store is required to trust signing certificates"
        ));
    }
    compile_identities(&s.trusted_identities, &format!("{at}.trustedIdentities"))?;
    let [authenticity, authentic_timestamp, expiry, revocation] = actions;
    Ok(Statement {
        scopes,
        name: s.name.clone(),
        policy: Some(NotationPolicy {
            name: s.name.clone(),
            level: level.to_string(),
            authenticity,
            authentic_timestamp,
            expiry,
            revocation,
            verify_timestamp,
            trusted_identities: s.trusted_identities.clone(),
            trust_stores,
        }),
    })
}

/// `None`: the global scope `*`.
fn compile_scopes(scopes: &[String], at: &str) -> Result<Option<Vec<String>>, String> {
    if scopes.is_empty() {
        return Err(format!("{at}: at least one registry scope is required"));
    }
    if scopes.iter().any(|s| s == "*") {
        if scopes.len() > 1 {
            return Err(format!("{at}: the wildcard scope \"*\" must be alone"));
        }
        return Ok(None);
    }
    scopes
        .iter()
        .enumerate()
        .map(|(j, scope)| {
            let bad = |why: &str| {
                format!("{at}[{j}]: {scope:?} is not a fully qualified repository (like registry.example/team/app): {why}")
            };
            if scope.contains('*') {
                return Err(bad("wildcards are not allowed in a scope"));
            }
            if scope.contains('@') || scope.rsplit('/').next().is_some_and(|last| last.contains(':')) {
                return Err(bad("a scope has no tag or digest"));
            }
            let reference = Reference::parse(scope).map_err(|e| bad(&e.reason))?;
            // Notation scopes name their registry: `nginx` is no scope.
            let written_host = scope.split('/').next().unwrap_or_default();
            if !scope.contains('/') || !crate::reference::is_registry(written_host) {
                return Err(bad("it must start with the registry"));
            }
            Ok(repository(&reference))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The level and the action of each validation (authenticity,
/// authenticTimestamp, expiry, revocation) once `override` is applied.
fn compile_verification(
    v: &SignatureVerificationSettings,
    at: &str,
) -> Result<(&'static str, [NotationAction; 4]), String> {
    if v.level == "skip" {
        if !v.r#override.is_empty() {
            return Err(format!(
                "{at}.override: a statement at level skip cannot override validations"
            ));
        }
        return Ok(("skip", [NotationAction::Skip; 4]));
    }
    let (level, mut actions) = LEVELS
        .iter()
        .find(|(name, _)| *name == v.level)
        .copied()
        .ok_or_else(|| {
            format!(
                "{at}.level: {:?} is not strict, permissive, audit or skip",
                v.level
            )
        })?;
    for (validation, action) in &v.r#override {
        let at = format!("{at}.override.{validation}");
        if validation == "integrity" {
            return Err(format!("{at}: integrity cannot be overridden"));
        }
        let index = VALIDATIONS
            .iter()
            .position(|name| name == validation)
            .ok_or_else(|| {
                format!("{at}: unknown validation (authenticity, authenticTimestamp, expiry, revocation)")
            })?;
        let action = match action.as_str() {
            "enforce" => NotationAction::Enforce,
            "log" => NotationAction::Log,
            "skip" => NotationAction::Skip,
            other => return Err(format!("{at}: {other:?} is not enforce, log or skip")),
        };
        match (validation.as_str(), action) {
            ("revocation", NotationAction::Enforce) => {
                return Err(format!(
                    "{at}: revocation cannot be checked offline (no OCSP or CRL requests): use log or skip"
                ))
            }
            ("revocation", _) => {}
            (_, NotationAction::Skip) => {
                return Err(format!("{at}: only revocation can be skipped"))
            }
            _ => {}
        }
        actions[index] = action;
    }
    let level = if v.r#override.is_empty() {
        level
    } else {
        "custom"
    };
    Ok((level, actions))
}

fn compile_identities(identities: &[String], at: &str) -> Result<(), String> {
    if identities.len() > 1 && identities.iter().any(|i| i == "*") {
        return Err(format!("{at}: the wildcard identity \"*\" must be alone"));
    }
    let mut names = Vec::with_capacity(identities.len());
    for (k, identity) in identities.iter().enumerate() {
        if let TrustedIdentity::Subject(name) =
            parse_identity(identity).map_err(|e| format!("{at}[{k}]: {e}"))?
        {
            names.push((k, name));
        }
    }
    for (i, a) in &names {
        for (j, b) in &names {
            if i != j && a.is_subset_of(b) {
                return Err(format!(
                    "{at}[{i}]: {:?} overlaps with {at}[{j}] {:?} (every certificate matching the second matches the first)",
                    identities[*i], identities[*j]
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const E2E: &str =
        include_str!("../../host-runner/tests/data/notation/notation-e2e/config/e2e.crt");

    fn config(name: &str) -> String {
        let path = format!(
            "{}/../host-runner/tests/data/notation/notation-e2e/config/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A check with the stores `ca:e2e` and `tsa:e2e` (both `e2e.crt`) and `rest`.
    fn check(rest: &str) -> Result<NotationCheck, String> {
        let stores = serde_json::json!({"ca:e2e": E2E, "tsa:e2e": E2E});
        let json = format!(r#"{{"trustStores":{stores},{rest}}}"#);
        NotationCheck::read(&serde_json::from_str(&json).unwrap(), "n")
    }

    fn document(doc: &str) -> Result<NotationCheck, String> {
        check(&format!(r#""trustPolicy":{doc}"#))
    }

    fn statement(fields: &str) -> Result<NotationCheck, String> {
        document(&format!(
            r#"{{"version":"1.0","trustPolicies":[{{"name":"p",{fields}}}]}}"#
        ))
    }

    const OK: &str = r#""registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["*"]"#;

    #[test]
    fn notations_own_trust_policy_files_compile() {
        for name in [
            "trustpolicy.json",
            "valid_trusted_identity_trustpolicy.json",
            "registry_scope_trustpolicy.json",
            "permissive_trustpolicy.json",
            "audit_trustpolicy.json",
            "timestamp_trustpolicy.json",
            "timestamp_after_cert_expiry_trustpolicy.json",
        ] {
            document(&config(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        // the one that demands revocation checks
        assert_eq!(
            document(&config("override_permissive_trustpolicy.json")).unwrap_err(),
            "n.trustPolicy.trustPolicies[0].signatureVerification.override.revocation: revocation cannot be checked offline (no OCSP or CRL requests): use log or skip"
        );
    }

    #[test]
    fn levels_and_overrides_resolve_to_actions() {
        use NotationAction::{Enforce, Log, Skip};
        let policy = |verification: &str| {
            let c = statement(&OK.replace(r#"{"level":"strict"}"#, verification)).unwrap();
            let p = c.request("localhost:5000/app:v1").unwrap().policy;
            (
                p.level,
                [
                    p.authenticity,
                    p.authentic_timestamp,
                    p.expiry,
                    p.revocation,
                ],
                p.verify_timestamp,
            )
        };
        assert_eq!(
            policy(r#"{"level":"strict"}"#),
            ("strict".into(), [Enforce; 4], VerifyTimestamp::Always)
        );
        assert_eq!(
            policy(r#"{"level":"permissive"}"#).1,
            [Enforce, Log, Log, Log]
        );
        assert_eq!(policy(r#"{"level":"audit"}"#).1, [Log; 4]);
        assert_eq!(
            policy(
                r#"{"level":"strict","override":{"expiry":"log","revocation":"skip"},"verifyTimestamp":"afterCertExpiry"}"#
            ),
            (
                "custom".into(),
                [Enforce, Enforce, Log, Skip],
                VerifyTimestamp::AfterCertExpiry
            )
        );
    }

    #[test]
    fn statement_mistakes_have_paths() {
        let at = "n.trustPolicy.trustPolicies[0]";
        let error = |fields: &str| statement(fields).unwrap_err();
        let cases = [
            (OK.replace("strict", "paranoid"), format!("{at}.signatureVerification.level: \"paranoid\" is not strict, permissive, audit or skip")),
            (OK.replace(r#""level":"strict""#, r#""level":"strict","override":{"integrity":"log"}"#), format!("{at}.signatureVerification.override.integrity: integrity cannot be overridden")),
            (OK.replace(r#""level":"strict""#, r#""level":"strict","override":{"expiry":"skip"}"#), format!("{at}.signatureVerification.override.expiry: only revocation can be skipped")),
            (OK.replace(r#""level":"strict""#, r#""level":"strict","override":{"expiry":"warn"}"#), format!("{at}.signatureVerification.override.expiry: \"warn\" is not enforce, log or skip")),
            (OK.replace(r#""level":"strict""#, r#""level":"strict","override":{"age":"log"}"#), format!("{at}.signatureVerification.override.age: unknown validation (authenticity, authenticTimestamp, expiry, revocation)")),
            (OK.replace(r#""level":"strict""#, r#""level":"skip","override":{"expiry":"log"}"#), format!("{at}.signatureVerification.override: a statement at level skip cannot override validations")),
            (OK.replace(r#""level":"strict""#, r#""level":"strict","verifyTimestamp":"never""#), format!("{at}.signatureVerification.verifyTimestamp: \"never\" is neither always nor afterCertExpiry")),
            (OK.replace(r#""level":"strict""#, r#""level":"skip""#), format!("{at}: a statement at level skip has no trustStores or trustedIdentities")),
            (OK.replace(r#"["ca:e2e"]"#, "[]"), format!("{at}.trustStores: at least one trust store is required")),
            (OK.replace(r#""trustedIdentities":["*"]"#, r#""trustedIdentities":[]"#), format!("{at}.trustedIdentities: at least one identity (or \"*\") is required")),
            (OK.replace(r#"["ca:e2e"]"#, r#"["ca:other"]"#), format!("{at}.trustStores[0]: \"ca:other\" is not one of the check's trustStores")),
            (OK.replace(r#"["ca:e2e"]"#, r#"["ca"]"#), format!("{at}.trustStores[0]: \"ca\" is not <type>:<name>")),
            (OK.replace(r#"["ca:e2e"]"#, r#"["x509:e2e"]"#), format!("{at}.trustStores[0]: \"x509:e2e\": unknown trust store type \"x509\" (ca, signingAuthority, tsa)")),
            (OK.replace(r#"["ca:e2e"]"#, r#"["tsa:e2e"]"#), format!("{at}.trustStores: a ca: or signingAuthority: store is required to trust signing certificates")),
            (OK.replace(r#"["*"],"sig"#, r#"[],"sig"#), format!("{at}.registryScopes: at least one registry scope is required")),
            (OK.replace(r#"["*"],"sig"#, r#"["*","r.io/a"],"sig"#), format!("{at}.registryScopes: the wildcard scope \"*\" must be alone")),
            (OK.replace(r#"["*"],"sig"#, r#"["r.io/*"],"sig"#), format!("{at}.registryScopes[0]: \"r.io/*\" is not a fully qualified repository (like registry.example/team/app): wildcards are not allowed in a scope")),
            (OK.replace(r#"["*"],"sig"#, r#"["nginx"],"sig"#), format!("{at}.registryScopes[0]: \"nginx\" is not a fully qualified repository (like registry.example/team/app): it must start with the registry")),
            (OK.replace(r#"["*"],"sig"#, r#"["r.io/app:v1"],"sig"#), format!("{at}.registryScopes[0]: \"r.io/app:v1\" is not a fully qualified repository (like registry.example/team/app): a scope has no tag or digest")),
            (OK.replace(r#"["*"],"sig"#, r#"["r.io/App"],"sig"#), format!("{at}.registryScopes[0]: \"r.io/App\" is not a fully qualified repository (like registry.example/team/app): path component \"App\" has upper-case letters")),
        ];
        for (fields, expected) in cases {
            assert_eq!(error(&fields), expected, "{fields}");
        }
    }

    #[test]
    fn trusted_identities_follow_notation() {
        let at = "n.trustPolicy.trustPolicies[0].trustedIdentities";
        let identities = |list: &str| {
            statement(&OK.replace(
                r#""trustedIdentities":["*"]"#,
                &format!(r#""trustedIdentities":{list}"#),
            ))
        };
        identities(r#"["x509.subject: C=US, ST=WA, O=Notary"]"#).unwrap();
        identities(r#"["x509.subject: C=US, S=WA, O=Notary, CN=a", "x509.subject: C=US, ST=WA, O=Notary, CN=b"]"#).unwrap();
        let cases = [
            (r#"["*","x509.subject: C=US,ST=WA,O=N"]"#, format!("{at}: the wildcard identity \"*\" must be alone")),
            (r#"["x509.subject: C=US,ST=WA"]"#, format!("{at}[0]: \"x509.subject: C=US,ST=WA\": the name must have C, ST (or S) and O attributes; O is missing")),
            (r#"["x509.subject: C=US,ST=WA,O=N,S=X"]"#, format!("{at}[0]: \"x509.subject: C=US,ST=WA,O=N,S=X\": attribute ST appears twice")),
            (r#"["x509.subject: C=US,ST=WA,O=N+OU=x"]"#, format!("{at}[0]: \"x509.subject: C=US,ST=WA,O=N+OU=x\": multi-valued RDNs are not supported")),
            (r#"["x509.subject:"]"#, format!("{at}[0]: \"x509.subject:\" has no distinguished name")),
            (r#"["wabbit"]"#, format!("{at}[0]: \"wabbit\" is neither \"*\" nor \"x509.subject:<name>\"")),
            (r#"["plugin.id:abc"]"#, format!("{at}[0]: \"plugin.id:abc\": only x509.subject identities are supported (imagegate runs no Notation plugins)")),
            (r#"["x509.subject: C=US,ST=WA,O=N=#00"]"#, format!("{at}[0]: distinguished name \" C=US,ST=WA,O=N=#00\": #-encoded (BER) values are not supported")),
            (
                r#"["x509.subject: C=US,ST=WA,O=N", "x509.subject: C=US,ST=WA,O=N,CN=x"]"#,
                format!("{at}[0]: \"x509.subject: C=US,ST=WA,O=N\" overlaps with {at}[1] \"x509.subject: C=US,ST=WA,O=N,CN=x\" (every certificate matching the second matches the first)"),
            ),
        ];
        for (list, expected) in cases {
            assert_eq!(identities(list).unwrap_err(), expected, "{list}");
        }
    }

    #[test]
    fn document_mistakes_have_paths() {
        let one = format!(r#"{{"name":"p",{OK}}}"#);
        let scoped = |name: &str, scope: &str| {
            format!(
                r#"{{"name":"{name}",{}}}"#,
                OK.replace(r#"["*"],"sig"#, &format!(r#"["{scope}"],"sig"#))
            )
        };
        let cases = [
            (format!(r#"{{"version":"2.0","trustPolicies":[{one}]}}"#), "n.trustPolicy.version: \"2.0\" is not a supported version (1.0)".to_string()),
            (r#"{"version":"1.0","trustPolicies":[]}"#.to_string(), "n.trustPolicy.trustPolicies: at least one statement is required".to_string()),
            (format!(r#"{{"version":"1.0","trustPolicies":[{one},{one}]}}"#), "n.trustPolicy.trustPolicies[1].name: \"p\" is also the name of trustPolicies[0]".to_string()),
            (format!(r#"{{"version":"1.0","trustPolicies":[{},{}]}}"#, scoped("a", "r.io/x"), scoped("b", "r.io:443/x")), "n.trustPolicy.trustPolicies[1].registryScopes[0]: \"r.io/x\" is also a scope of trustPolicies[0]".to_string()),
            (format!(r#"{{"version":"1.0","trustPolicies":[{},{}]}}"#, scoped("a", "*"), scoped("b", "*")), "n.trustPolicy.trustPolicies[1].registryScopes[0]: \"*\" is also a scope of trustPolicies[0]".to_string()),
            (format!(r#"{{"version":"1.0","trustPolicies":[{{"name":"",{OK}}}]}}"#), "n.trustPolicy.trustPolicies[0].name: every statement needs a name".to_string()),
        ];
        for (doc, expected) in cases {
            assert_eq!(document(&doc).unwrap_err(), expected, "{doc}");
        }
        assert_eq!(
            check(&format!(r#""trustPolicy":{{"version":"1.0","trustPolicies":[{one}]}},"trustedIdentities":["*"]"#)).unwrap_err(),
            "n: trustPolicy and an inline statement (signatureVerification, trustedIdentities) exclude each other"
        );
        let read = |json: &str| NotationCheck::read(&serde_json::from_str(json).unwrap(), "n");
        assert_eq!(
            read(r#"{"trustStores":{"ca:e2e":"not PEM"},"trustedIdentities":["*"]}"#).unwrap_err(),
            "n.trustStores.ca:e2e: expected \"-----BEGIN ...-----\", found \"not PEM\""
        );
        assert_eq!(
            read(r#"{"trustStores":{},"trustedIdentities":["*"]}"#).unwrap_err(),
            "n.trustStores: at least one trust store is required"
        );
        assert_eq!(
            read(
                r#"{"trustStores":{},"trustPolicy":{"version":"1.0","trustPolicies":[],"extra":1}}"#
            )
            .unwrap_err(),
            "n.trustPolicy: unknown field `extra`, expected one of `version`, `trustPolicies`"
        );
        assert_eq!(
            read(r#"{"trustStores":{"ca:e2e":1}}"#).unwrap_err(),
            "n.trustStores: an object of strings is required"
        );
        assert_eq!(
            read(r#"{"trustStores":{"ca:e2e":"x"},"trustPolicy":{"version":"1.0","trustPolicies":[{"name":"p"}]}}"#)
                .unwrap_err(),
            "n.trustPolicy.trustPolicies[0].signatureVerification: a level is required"
        );
    }

    #[test]
    fn the_statement_for_the_image_repository_is_selected() {
        let doc = r#"{"version":"1.0","trustPolicies":[
            {"name":"scoped","registryScopes":["localhost:5000/test-repo","index.docker.io/library/nginx"],"signatureVerification":{"level":"audit"},"trustStores":["ca:e2e"],"trustedIdentities":["*"]},
            {"name":"open","registryScopes":["r.io/open"],"signatureVerification":{"level":"skip"}},
            {"name":"global","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e","tsa:e2e"],"trustedIdentities":["*"]}]}"#;
        let c = document(doc).unwrap();
        let name = |image: &str| c.request(image).map(|r| r.policy.name);
        assert_eq!(name("localhost:5000/test-repo:v1").unwrap(), "scoped");
        assert_eq!(
            name("nginx@sha256:1111111111111111111111111111111111111111111111111111111111111111")
                .unwrap(),
            "scoped"
        );
        assert_eq!(name("localhost:5000/test-repo/sub:v1").unwrap(), "global");
        assert_eq!(
            name("r.io/open:1").unwrap_err(),
            "Notation trust policy statement \"open\" skips verification for r.io/open: a verify check never admits an image without verifying its signature"
        );
        let global = c.request("ghcr.io/a/b:1").unwrap();
        assert_eq!(
            global
                .policy
                .trust_stores
                .iter()
                .map(|s| (s.kind, s.name.as_str()))
                .collect::<Vec<_>>(),
            [
                (NotationStoreKind::Ca, "e2e"),
                (NotationStoreKind::Tsa, "e2e")
            ]
        );
        assert_eq!(global.policy.trust_stores[0].certificates, E2E);
        let scoped_only = document(&config("registry_scope_trustpolicy.json")).unwrap();
        assert_eq!(
            scoped_only.request("localhost:5000/other:1").unwrap_err(),
            "no Notation trust policy statement applies to localhost:5000/other (registryScopes)"
        );
    }

    #[test]
    fn the_inline_form_is_one_statement_for_every_image() {
        let c = check(r#""trustedIdentities":["x509.subject: CN=e2e,O=Notary,L=Seattle,ST=WA,C=US"],"signatureVerification":{"level":"permissive","verifyTimestamp":"afterCertExpiry"},"userMetadata":{"purpose":"e2e"}"#).unwrap();
        let request = c.request("ghcr.io/a/b:1").unwrap();
        assert_eq!(request.policy.level, "permissive");
        assert_eq!(
            request.policy.verify_timestamp,
            VerifyTimestamp::AfterCertExpiry
        );
        assert_eq!(
            request.policy.trust_stores.len(),
            2,
            "every store of the check"
        );
        assert_eq!(
            request.user_metadata,
            BTreeMap::from([("purpose".to_string(), "e2e".to_string())])
        );
        // strict when no signatureVerification is given
        let strict = check(r#""trustedIdentities":["*"]"#).unwrap();
        assert_eq!(strict.request("a.io/b:1").unwrap().policy.level, "strict");
        assert_eq!(
            check(r#""signatureVerification":{"level":"audit"}"#).unwrap_err(),
            "n.trustedIdentities: at least one identity (or \"*\") is required"
        );
        assert_eq!(
            check(r#""trustedIdentities":["*"],"signatureVerification":{"level":"strict","override":{"revocation":"enforce"}}"#).unwrap_err(),
            "n.signatureVerification.override.revocation: revocation cannot be checked offline (no OCSP or CRL requests): use log or skip"
        );
    }
}
