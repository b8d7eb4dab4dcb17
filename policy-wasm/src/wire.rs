//! JSON payloads exchanged with the Kubewarden host.
//!
//! Two families live here: the `validate` / `validate_settings` payloads
//! (request arrives camelCase, response leaves snake_case, exactly as
//! policy-evaluator serializes them) and the host-capability payloads the
//! engine sends through [`crate::host::Host`]. The host-runner reuses the same
//! types to answer those calls, so guest and host cannot drift apart.

use crate::json::{self, Kind, Reader, Skip};
use crate::workload::{self, Spec};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;

/// The `validate` input: `{"request": ..., "settings": {...}}`.
///
/// `settings` stays text so the guest can compare it byte for byte with the
/// settings of the policy it compiled last and skip recompiling.
#[derive(Debug, Deserialize, PartialEq)]
pub struct ValidationRequest<'a> {
    /// The admission request to decide.
    pub request: AdmissionRequest,
    /// The policy's settings as the host sends them (`None` when absent).
    #[serde(borrow, default, deserialize_with = "raw_text")]
    pub settings: Option<&'a str>,
    /// imagegate hosts only (`imagegate check`, `run --output text`): answer
    /// an [`ExplainedResponse`], the response plus one [`ImageReport`] per
    /// image. A top-level key of the payload, not a setting: policy-server
    /// builds the payload itself (`request` and `settings` only), so nothing
    /// in a cluster can ask for it and its answers never change.
    #[serde(default)]
    pub imagegate_explain: bool,
}

fn raw_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de str>, D::Error> {
    Option::<&'de RawValue>::deserialize(d).map(|raw| raw.map(RawValue::get))
}

impl<'a> ValidationRequest<'a> {
    /// Reads a `validate` payload. What the host writes is read in place:
    /// the raw parts (the objects) are copied as text, nothing else is built
    /// for what the engine does not read, `settings` is borrowed. Anything
    /// else, invalid payloads included, goes through serde_json, whose error
    /// is returned.
    pub fn from_slice(payload: &'a [u8]) -> Result<ValidationRequest<'a>, String> {
        read(payload, None, false).map(|(vr, ..)| vr)
    }
}

/// What [`read`] knows of the settings text it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SettingsText {
    /// The `known` text (compared, not scanned).
    Known,
    /// Scanned: one JSON value.
    Checked,
    /// Taken unscanned as the payload's last value (`lazy`): the settings
    /// reader checks it; if it does not read, read the payload again
    /// without `lazy` (then it is [`SettingsText::Checked`]).
    Unchecked,
}

/// [`ValidationRequest::from_slice`], knowing the settings `known` (read by
/// an earlier call, so valid JSON): when the payload's settings are that
/// text, they are compared, not scanned again. With `lazy`, settings that
/// end the payload (as policy-evaluator writes it) are not scanned either:
/// whoever reads them checks them ([`SettingsText::Unchecked`]).
///
/// Also what was read of the object's pod spec on the way
/// ([`workload::read_spec`]), when the object was read in place.
pub(crate) fn read<'a>(
    payload: &'a [u8],
    known: Option<&str>,
    lazy: bool,
) -> Result<(ValidationRequest<'a>, SettingsText, Option<Spec>), String> {
    let fast = std::str::from_utf8(payload)
        .ok()
        .and_then(|text| read_validation_request(text, known, lazy));
    match fast {
        Some(read) => Ok(read),
        None => {
            let vr: ValidationRequest =
                serde_json::from_slice(payload).map_err(|e| e.to_string())?;
            let same = known.is_some_and(|k| {
                vr.settings
                    .is_some_and(|s| json::same(s.as_bytes(), k.as_bytes()))
            });
            Ok((
                vr,
                [SettingsText::Checked, SettingsText::Known][same as usize],
                None,
            ))
        }
    }
}

/// A JSON value kept as its text: the parts of a request the engine reads
/// only in part (the objects, `workload`) or never (passed on as they came).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawJson(pub(crate) Box<str>);

impl RawJson {
    /// The JSON text.
    pub fn get(&self) -> &str {
        &self.0
    }

    /// The JSON of `value`.
    pub fn to_raw(value: &impl Serialize) -> Result<RawJson, serde_json::Error> {
        serde_json::to_string(value).map(|text| RawJson(text.into()))
    }
}

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawJson, D::Error> {
        Box::<RawValue>::deserialize(d).map(|raw| RawJson(raw.into()))
    }
}

/// `admission.k8s.io/v1` AdmissionRequest as policy-evaluator re-serializes it.
/// Every field defaults, so a partial request is read, never rejected by serde;
/// the engine decides what a missing field means.
///
/// The objects stay raw JSON: the engine reads only the parts it needs
/// (`workload`) and parses a whole object only to mutate it.
///
/// The host reads requests into this type too (after checking the fields
/// policy-evaluator requires); `request_resource`, `options` and
/// `user_info.extra` are never read by the engine, only passed on raw.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct AdmissionRequest {
    /// Identifies the request; the host copies it into the response.
    pub uid: String,
    /// The object's kind; workloads are recognized by group *and* kind.
    pub kind: GroupVersionKind,
    /// The resource requested (`pods`, `deployments`, ...).
    pub resource: GroupVersionResource,
    /// `ephemeralcontainers`, `status`, ...; only `ephemeralcontainers` can
    /// change images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_resource: Option<String>,
    /// The kind originally requested, before any conversion by the API server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_kind: Option<GroupVersionKind>,
    /// The resource originally requested; passed on raw (the engine never
    /// reads it, the host forwards it as policy-evaluator does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_resource: Option<RawJson>,
    /// The subresource originally requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_sub_resource: Option<String>,
    /// The object's name (may be empty on CREATE with `generateName`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The namespace the request is in: what `exemptNamespaces` and
    /// `sources` look at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: String,
    /// The requester: break-glass groups are decided on it.
    pub user_info: UserInfo,
    /// The object as it would be stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<RawJson>,
    /// The stored object, on UPDATE and DELETE (never trusted for images:
    /// every image of `object` is checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_object: Option<RawJson>,
    /// The request will not be persisted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// The operation's options (`CreateOptions`, ...); passed on raw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<RawJson>,
}

/// An API group, version and kind (`apps`, `v1`, `Deployment`; core is `""`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct GroupVersionKind {
    /// API group, `""` for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Pod`.
    pub kind: String,
}

/// An API group, version and resource (`apps`, `v1`, `deployments`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct GroupVersionResource {
    /// API group, `""` for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Resource, e.g. `pods`.
    pub resource: String,
}

/// Who sent the request, as the API server authenticated them.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct UserInfo {
    /// The user name (named in break-glass warnings and audit annotations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The user's uid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The user's groups (`breakGlass.groups` is matched against them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Extra attributes of the requester; passed on raw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra: Option<RawJson>,
}

/// The `validate` output. All six keys are always written (as the SDK does);
/// the host reads snake_case only (`mutatedObject` would be ignored).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ValidationResponse {
    /// Whether the request is admitted.
    pub accepted: bool,
    /// Why it was rejected (every denied image, with its container, rule and reason).
    pub message: Option<String>,
    /// HTTP status code for a rejection; `None` lets the host choose.
    pub code: Option<u16>,
    /// The whole object with pinned digests written in, when any image was
    /// pinned: the host turns it into a JSON patch.
    pub mutated_object: Option<Value>,
    /// Audit annotations: exemptions, break-glass, pinned images.
    pub audit_annotations: Option<BTreeMap<String, String>>,
    /// Warnings shown to the requester (warn-mode rules, `unmatched: warn`, ...).
    pub warnings: Option<Vec<String>>,
}

impl ValidationResponse {
    /// A rejection carrying only a message.
    pub fn reject(message: impl Into<String>) -> Self {
        ValidationResponse {
            accepted: false,
            message: Some(message.into()),
            ..Default::default()
        }
    }
}

/// The `validate` output when the payload asks `imagegate_explain`: the very
/// response policy-server would get (its six keys), plus the verdicts it was
/// written from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExplainedResponse {
    /// The response, unchanged.
    #[serde(flatten)]
    pub response: ValidationResponse,
    /// One report per image of the request, in the object's order.
    pub imagegate_verdicts: Vec<ImageReport>,
}

/// What the engine decided for one image, as `imagegate check`, `run
/// --output text` and the playground show it (built from the engine's
/// `Verdict`, never from the message text).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageReport {
    /// Where the image is: `container "app"`, `init container "setup"`.
    pub container: String,
    /// JSON pointer of the image string in the object
    /// (`/spec/template/spec/containers/0/image`).
    pub pointer: String,
    /// The image as written.
    pub image: String,
    /// Its normalized form; `None` when it does not parse (then denied).
    pub normalized: Option<String>,
    /// `allowed`, `warned`, `denied` or `exempt`.
    pub decision: String,
    /// The rule that decided; `None` when `unmatched` did, or the image is
    /// exempt or does not parse.
    pub rule: Option<String>,
    /// Why it was denied, warned about or exempt; `None` when allowed.
    pub reason: Option<String>,
    /// The digest the image is pinned to.
    pub pin: Option<String>,
    /// The image as the mutation writes it (`nginx:1@sha256:...`).
    pub pinned: Option<String>,
    /// The host checks run for the image, in order.
    pub checks: Vec<CheckReport>,
    /// Every rule whose patterns match the image, in the order they are
    /// tried (priority, then the order of `rules`), with what each did.
    pub precedence: Vec<RuleMatch>,
}

/// One host check run for an image: the digest it vouched for, or why it failed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckReport {
    /// What ran: `cosign key "release"`, `digest lookup`, ...
    pub check: String,
    /// The digest the check returned.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub digest: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

/// A rule whose patterns match an image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RuleMatch {
    /// The rule's name.
    pub rule: String,
    /// Its `priority`.
    pub priority: i64,
    /// Its position in `rules` (ties in priority go to the lower index).
    pub index: usize,
    /// `decided` (the winner), `skipped` (its `imageLabels` do not hold for
    /// the image, so the next rule was tried) or `outranked`.
    pub outcome: String,
}

/// The `validate_settings` output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SettingsValidationResponse {
    /// Whether the settings compile into a policy.
    pub valid: bool,
    /// Why not, with the path of the bad field.
    pub message: Option<String>,
}

// ---------------------------------------------------------------------------
// Host capabilities (binding "kubewarden")
// ---------------------------------------------------------------------------

/// `oci/v2/verify` request: internally tagged by `type`, fields snake_case.
///
/// Every variant names the normalized `image` to verify and, optionally,
/// `annotations` the signature must carry; the other fields are the
/// variant's trust material.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(tag = "type")]
#[allow(missing_docs)] // fields documented together above: they repeat across variants
pub enum SigstoreVerifyRequest {
    /// Signed with one of `pub_keys` (PEM public keys).
    SigstorePubKeyVerify {
        image: String,
        pub_keys: Vec<String>,
        annotations: Option<BTreeMap<String, String>>,
    },
    /// Keyless: a certificate for one of these exact issuer / subject pairs.
    SigstoreKeylessVerify {
        image: String,
        keyless: Vec<KeylessInfo>,
        annotations: Option<BTreeMap<String, String>>,
    },
    /// Keyless: a certificate whose subject URL starts with a prefix.
    SigstoreKeylessPrefixVerify {
        image: String,
        keyless_prefix: Vec<KeylessPrefixInfo>,
        annotations: Option<BTreeMap<String, String>>,
    },
    /// Keyless, signed by a GitHub Actions workflow of `owner` (and `repo`).
    SigstoreGithubActionsVerify {
        image: String,
        owner: String,
        repo: Option<String>,
        annotations: Option<BTreeMap<String, String>>,
    },
    /// Signed with the key of `certificate`, which must chain to `certificate_chain`.
    SigstoreCertificateVerify {
        image: String,
        /// UTF-8 bytes of the PEM text (not base64).
        certificate: Vec<u8>,
        certificate_chain: Option<Vec<Vec<u8>>>,
        require_rekor_bundle: bool,
        annotations: Option<BTreeMap<String, String>>,
    },
}

impl SigstoreVerifyRequest {
    /// The image to verify, whatever the variant.
    pub fn image(&self) -> &str {
        match self {
            Self::SigstorePubKeyVerify { image, .. }
            | Self::SigstoreKeylessVerify { image, .. }
            | Self::SigstoreKeylessPrefixVerify { image, .. }
            | Self::SigstoreGithubActionsVerify { image, .. }
            | Self::SigstoreCertificateVerify { image, .. } => image,
        }
    }
}

/// An OIDC issuer and the exact certificate subject it must have issued.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeylessInfo {
    /// OIDC issuer URL, e.g. `https://accounts.google.com`.
    pub issuer: String,
    /// Certificate subject (an e-mail or a URL).
    pub subject: String,
}

/// An OIDC issuer and a prefix of the certificate's subject URL.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeylessPrefixInfo {
    /// OIDC issuer URL.
    pub issuer: String,
    /// The subject URL must start with it, e.g. `https://github.com/corp/`.
    pub url_prefix: String,
}

/// Response of `oci/v1/verify` and `oci/v2/verify`. A failed verification is a
/// host error, never `is_trusted: false`; the engine still checks the flag.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VerifyResponse {
    /// Whether the signature verified.
    pub is_trusted: bool,
    /// The manifest digest the signature covers.
    pub digest: String,
}

/// Response of `oci/v1/manifest_digest` (its request is a JSON string).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestDigestResponse {
    /// The digest the image's tag resolves to now.
    pub digest: String,
}

/// Response of `oci/v1/oci_manifest_config` (its request is a JSON string).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestConfigResponse {
    /// The image manifest.
    pub manifest: Value,
    /// The manifest's digest.
    pub digest: String,
    /// The image config (labels are under `config.Labels`).
    pub config: Value,
}

/// imagegate's own capability: binding "kubewarden", namespace "notary",
/// operation "v1/signed_digest". Only the imagegate host answers it. Not
/// `v1/verify`: `kwctl annotate` finds a module's host capabilities by the
/// operation strings in its data, and would take `v1/verify` beside `oci`
/// for `oci/v1/verify`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct NotaryVerifyRequest {
    /// The normalized image; its tag is looked up in the trust data.
    pub image: String,
    /// The Notary server's base URL (`https://...`).
    pub server: String,
    /// Any one of these signers suffices.
    pub signers: Vec<NotarySigner>,
    /// PEM CA bundle for the notary server's TLS certificate.
    pub ca_cert: Option<String>,
    /// Pinned root keys (PEM public keys or certificates); `None` = trust on first use.
    #[serde(default)]
    pub root_keys: Option<Vec<String>>,
}

/// A delegation role allowed to sign, optionally with its pinned key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct NotarySigner {
    /// Delegation role, e.g. `targets/jenkins`.
    pub role: String,
    /// When set, the delegation's key must be this key.
    pub public_key: Option<String>,
}

/// Response of `notary/v1/signed_digest`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NotaryVerifyResponse {
    /// Whether the tag is signed by one of the signers.
    pub is_trusted: bool,
    /// The digest the trust data signs for the image's tag.
    pub digest: String,
    /// The role that signed it.
    pub signer: String,
}

/// Which manifests of a multi-arch image a check requires signed.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Platforms {
    /// The digest the reference resolves to (an index for a multi-arch tag):
    /// what `cosign sign` signs.
    #[default]
    Index,
    /// Every platform manifest of the index, each on its own digest
    /// (BuildKit attestation manifests skipped); a single manifest is itself.
    All,
}

/// Who may have signed: one entry of a check. Any one suffices.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum SignerIdentity {
    /// A public key (PEM).
    Key {
        /// `-----BEGIN PUBLIC KEY-----...`
        pem: String,
    },
    /// A Fulcio certificate for exactly this issuer and subject.
    Keyless {
        /// OIDC issuer URL.
        issuer: String,
        /// Certificate subject (an e-mail or a URI).
        subject: String,
    },
    /// A Fulcio certificate for this issuer whose subject URI starts with a prefix.
    KeylessPrefix {
        /// OIDC issuer URL.
        issuer: String,
        /// E.g. `https://github.com/corp/`.
        url_prefix: String,
    },
    /// A Fulcio certificate issued to a GitHub Actions workflow of `owner` (and `repo`).
    GithubActions {
        /// Repository owner (user or organization).
        owner: String,
        /// Repository name; any when `None`.
        repo: Option<String>,
    },
    /// The key of this certificate, which must chain to `chain` (PEM each).
    Certificate {
        /// The signing certificate.
        pem: String,
        /// Its chain up to a root, in order; empty: the certificate alone.
        chain: Vec<String>,
        /// The signature must be in a transparency log the trust root knows.
        require_tlog: bool,
    },
}

impl SignerIdentity {
    /// The `oci/v2/verify` request that checks a legacy `.sig` signature of
    /// `image` by this identity: the guest's fallback on hosts without
    /// `imagegate/v1/check_signature`, and that capability's `.sig` path.
    pub fn legacy_request(
        &self,
        image: String,
        annotations: Option<BTreeMap<String, String>>,
    ) -> SigstoreVerifyRequest {
        match self {
            SignerIdentity::Key { pem } => SigstoreVerifyRequest::SigstorePubKeyVerify {
                image,
                pub_keys: vec![pem.clone()],
                annotations,
            },
            SignerIdentity::Keyless { issuer, subject } => {
                SigstoreVerifyRequest::SigstoreKeylessVerify {
                    image,
                    keyless: vec![KeylessInfo {
                        issuer: issuer.clone(),
                        subject: subject.clone(),
                    }],
                    annotations,
                }
            }
            SignerIdentity::KeylessPrefix { issuer, url_prefix } => {
                SigstoreVerifyRequest::SigstoreKeylessPrefixVerify {
                    image,
                    keyless_prefix: vec![KeylessPrefixInfo {
                        issuer: issuer.clone(),
                        url_prefix: url_prefix.clone(),
                    }],
                    annotations,
                }
            }
            SignerIdentity::GithubActions { owner, repo } => {
                SigstoreVerifyRequest::SigstoreGithubActionsVerify {
                    image,
                    owner: owner.clone(),
                    repo: repo.clone(),
                    annotations,
                }
            }
            SignerIdentity::Certificate {
                pem,
                chain,
                require_tlog,
            } => SigstoreVerifyRequest::SigstoreCertificateVerify {
                image,
                certificate: pem.as_bytes().to_vec(),
                certificate_chain: (!chain.is_empty())
                    .then(|| chain.iter().map(|c| c.as_bytes().to_vec()).collect()),
                require_rekor_bundle: *require_tlog,
                annotations,
            },
        }
    }
}

/// imagegate's own capability `imagegate/v1/check_signature`: is the image
/// signed by one of `identities`, in any format the host knows (cosign
/// bundles found as OCI referrers, legacy `.sig` tags)?
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct SignatureVerifyRequest {
    /// The normalized image.
    pub image: String,
    /// Which manifests must be signed.
    #[serde(default)]
    pub platforms: Platforms,
    /// Any one suffices; the answer says which one verified.
    pub identities: Vec<SignerIdentity>,
    /// Claims the signature itself must carry (cosign `-a key=value`).
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// imagegate's own capability `imagegate/v1/check_attestation`: in-toto
/// statements of `predicate_type` about the image, signed by one of
/// `identities` (cosign bundles as referrers, legacy `.att` tags). The guest
/// evaluates its conditions on what the host returns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct AttestationVerifyRequest {
    /// The normalized image.
    pub image: String,
    /// Which manifests must carry a verified attestation.
    #[serde(default)]
    pub platforms: Platforms,
    /// E.g. `https://slsa.dev/provenance/v1`.
    pub predicate_type: String,
    /// Any one suffices.
    pub identities: Vec<SignerIdentity>,
}

/// The answer of the `imagegate/v1/check_*` capabilities. "Nothing verified"
/// is an answer (empty `verified`, the trace says why); errors are for
/// requests the host cannot work on (bad input, registry unreachable).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ImageVerifyResponse {
    /// What the reference resolved to: the digest to pin.
    pub digest: String,
    /// Every signature or attestation that verified.
    pub verified: Vec<Verified>,
    /// Per manifest checked: every path tried and what each found.
    pub trace: Vec<SubjectTrace>,
}

/// One signature or attestation that verified.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Verified {
    /// The digest it covers (the index, or a platform manifest).
    pub subject: String,
    /// Which of the request's identities signed it.
    #[serde(default)]
    pub identity: Option<usize>,
    /// `cosign-bundle-v0.3`, `cosign-sig`, `cosign-att`, ...
    pub format: String,
    /// Where it was found: `referrers-api`, `referrers-tag`, `cosign-sig-tag`, `cosign-att-tag`.
    pub path: String,
    /// The signature manifest's digest.
    pub manifest: String,
    /// Who signed: `key sha256:...`, a certificate subject.
    pub signer: String,
    /// The earliest time (unix seconds) after which this verification must be
    /// redone (a certificate without a verified timestamp expires).
    #[serde(default)]
    pub valid_until: Option<i64>,
    /// Attestations: the verified in-toto statement.
    #[serde(default)]
    pub statement: Option<Value>,
    /// Attestations: the signing certificate's claims (`subject`, `issuer`,
    /// Fulcio extensions by name).
    #[serde(default)]
    pub certificate: Option<BTreeMap<String, String>>,
}

/// What was looked at for one manifest digest.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SubjectTrace {
    /// The manifest digest signatures were looked up for.
    pub subject: String,
    /// One line per path, in order (referrers API, referrers tag, legacy
    /// tag): what the registry answered and every candidate with its
    /// verdict, `referrers-tag: 1 entries [sha256:... sigstore bundle (...): rejected: ...]`.
    pub paths: Vec<String>,
}

/// `kubernetes/get_resource` request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct GetResourceRequest {
    /// `v1`, `tmax.io/v1`, ...
    pub api_version: String,
    /// `ConfigMap`, `Secret`, ...
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// Its namespace; `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// Ask the API server rather than the host's cache.
    pub disable_cache: bool,
    /// Only these fields of the object (policy-server's field masks).
    #[serde(default)]
    pub field_masks: Option<Vec<String>>,
}

/// `kubernetes/list_resources_by_namespace` (with `namespace`) and
/// `kubernetes/list_resources_all` (without) request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct ListResourcesRequest {
    /// `v1`, `tmax.io/v1`, ...
    pub api_version: String,
    /// The kind to list.
    pub kind: String,
    /// List in this namespace only; `None` lists every namespace.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub namespace: Option<String>,
    /// Kubernetes label selector.
    pub label_selector: Option<String>,
    /// Kubernetes field selector.
    pub field_selector: Option<String>,
    /// Only these fields of each object.
    #[serde(default)]
    pub field_masks: Option<Vec<String>>,
}

/// imagegate's own capability `imagegate/v1/check_notation`: is the image
/// signed with Notation (JWS or COSE envelopes found as OCI referrers) as
/// the trust policy statement that applies to it requires? The guest selects
/// the statement (by registry scope) and resolves its verification level;
/// `skip` statements never reach the host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct NotationVerifyRequest {
    /// The normalized image.
    pub image: String,
    /// Which manifests must be signed.
    #[serde(default)]
    pub platforms: Platforms,
    /// The trust policy statement for the image's repository.
    pub policy: NotationPolicy,
    /// Annotations the signed payload must carry (`notation verify -m`).
    #[serde(default)]
    pub user_metadata: BTreeMap<String, String>,
}

/// A trust policy statement with its level resolved and its trust stores'
/// certificates attached.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct NotationPolicy {
    /// The statement's name, for messages.
    pub name: String,
    /// `strict`, `permissive`, `audit`, or `custom` when overridden.
    pub level: String,
    /// What a failed authenticity validation does (integrity is always enforced).
    pub authenticity: NotationAction,
    /// What a failed authentic-timestamp validation does.
    pub authentic_timestamp: NotationAction,
    /// What an expired signature does.
    pub expiry: NotationAction,
    /// Revocation: never checked (offline); `enforce` never reaches the host.
    pub revocation: NotationAction,
    /// When an RFC 3161 countersignature is verified.
    pub verify_timestamp: VerifyTimestamp,
    /// `*`, or `x509.subject:` followed by a distinguished name.
    pub trusted_identities: Vec<String>,
    /// The statement's trust stores.
    pub trust_stores: Vec<NotationTrustStore>,
}

/// What a failed validation does.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum NotationAction {
    /// The signature is rejected.
    Enforce,
    /// The failure is reported, the signature passes.
    Log,
    /// The validation is not run.
    Skip,
}

/// Notation's `verifyTimestamp`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum VerifyTimestamp {
    /// Whenever a `tsa` trust store is configured.
    #[default]
    Always,
    /// Only when a certificate of the signing chain has expired.
    AfterCertExpiry,
}

/// A named trust store: `ca:acme` is `{kind: ca, name: acme}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct NotationTrustStore {
    /// What the certificates are trusted for.
    pub kind: NotationStoreKind,
    /// The store's name.
    pub name: String,
    /// PEM certificates (one or more).
    pub certificates: String,
}

/// Notation's trust store types.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub enum NotationStoreKind {
    /// Roots (or intermediates) of `notary.x509` signing chains.
    Ca,
    /// Roots of `notary.x509.signingAuthority` signing chains.
    SigningAuthority,
    /// Roots of timestamp authorities.
    Tsa,
}

// ---------------------------------------------------------------------------
// The `validate` payload, read in place
// ---------------------------------------------------------------------------

/// Reads what serde_json would read into [`ValidationRequest`], or `None`
/// (then serde_json decides, and says why if it is invalid). Stricter than
/// serde_json where that is simpler (a repeated field, a struct written as a
/// list, a lone surrogate anywhere), never laxer; a property test holds both
/// to the same result.
fn read_validation_request<'a>(
    text: &'a str,
    known: Option<&str>,
    lazy: bool,
) -> Option<(ValidationRequest<'a>, SettingsText, Option<Spec>)> {
    let mut r = Reader::new(text);
    let mut request = None;
    let mut spec = None;
    let mut settings = None;
    let mut explain = None;
    let mut state = SettingsText::Checked;
    let mut entries = r.object().ok()?;
    while let Some(key) = r.key(&mut entries).ok()? {
        match &*key {
            "request" if request.is_none() => request = Some(admission_request(&mut r, &mut spec)?),
            "settings" if settings.is_none() => {
                settings = Some(match r.peek().ok()? {
                    Kind::Null => r.null().ok().map(|()| None)?,
                    _ => {
                        let (text, read) = settings_text(&mut r, known, lazy)?;
                        state = read;
                        Some(text)
                    }
                })
            }
            "imagegate_explain" if explain.is_none() => explain = Some(r.bool().ok()?),
            "request" | "settings" | "imagegate_explain" => return None,
            _ => r.skip(Skip::Raw).ok()?,
        }
    }
    r.end().ok()?;
    let vr = ValidationRequest {
        request: request?,
        settings: settings.flatten(),
        imagegate_explain: explain.unwrap_or(false),
    };
    Some((vr, state, spec))
}

/// The settings' text: `known` is compared, not scanned (a whole JSON value
/// followed by what a value may be followed by); with `lazy`, the rest of
/// the payload before its closing `}` is taken unscanned. That is the
/// settings value exactly when it is one JSON value: a value the settings
/// were not (another key after them) does not read as one.
fn settings_text<'a>(
    r: &mut Reader<'a>,
    known: Option<&str>,
    lazy: bool,
) -> Option<(&'a str, SettingsText)> {
    r.peek().ok()?;
    let start = r.pos();
    let rest = &r.text().as_bytes()[start..];
    if let Some(known) = known.filter(|k| {
        rest.get(..k.len())
            .is_some_and(|r| json::same(r, k.as_bytes()))
    }) {
        r.advance(known.len());
        return Some((&r.text()[start..r.pos()], SettingsText::Known));
    }
    if lazy {
        let rest = r.text()[start..].trim_end();
        if let Some(value) = rest.strip_suffix('}').map(str::trim_end) {
            if !value.is_empty() {
                r.advance(value.len());
                return Some((value, SettingsText::Unchecked));
            }
        }
    }
    r.raw(Skip::Raw)
        .ok()
        .map(|text| (text, SettingsText::Checked))
}

/// Reads an object's fields with `field`, which returns the field's number
/// (`None`: a field it does not know, then skipped); a repeated field is refused.
fn fields<'a>(
    r: &mut Reader<'a>,
    mut field: impl FnMut(&str, &mut Reader<'a>) -> Option<Option<u32>>,
) -> Option<()> {
    let mut seen = 0u32;
    let mut entries = r.object().ok()?;
    while let Some(key) = r.key(&mut entries).ok()? {
        match field(&key, r)? {
            None => r.skip(Skip::Raw).ok()?,
            Some(n) if seen & (1 << n) != 0 => return None,
            Some(n) => seen |= 1 << n,
        }
    }
    Some(())
}

fn string(r: &mut Reader<'_>) -> Option<String> {
    r.string().ok().map(|s| s.into_owned())
}

/// `null` is `None`, as serde reads an `Option`.
fn optional<'a, T>(
    r: &mut Reader<'a>,
    read: impl FnOnce(&mut Reader<'a>) -> Option<T>,
) -> Option<Option<T>> {
    if r.peek().ok()? == Kind::Null {
        return r.null().ok().map(|()| None);
    }
    read(r).map(Some)
}

fn raw(r: &mut Reader<'_>) -> Option<RawJson> {
    r.raw(Skip::Raw).ok().map(|text| RawJson(text.into()))
}

fn group_version_kind(r: &mut Reader<'_>) -> Option<GroupVersionKind> {
    let mut gvk = GroupVersionKind::default();
    fields(r, |key, r| {
        let (n, slot) = match key {
            "group" => (0, &mut gvk.group),
            "version" => (1, &mut gvk.version),
            "kind" => (2, &mut gvk.kind),
            _ => return Some(None),
        };
        *slot = string(r)?;
        Some(Some(n))
    })?;
    Some(gvk)
}

fn group_version_resource(r: &mut Reader<'_>) -> Option<GroupVersionResource> {
    let mut gvr = GroupVersionResource::default();
    fields(r, |key, r| {
        let (n, slot) = match key {
            "group" => (0, &mut gvr.group),
            "version" => (1, &mut gvr.version),
            "resource" => (2, &mut gvr.resource),
            _ => return Some(None),
        };
        *slot = string(r)?;
        Some(Some(n))
    })?;
    Some(gvr)
}

fn user_info(r: &mut Reader<'_>) -> Option<UserInfo> {
    let mut user = UserInfo::default();
    fields(r, |key, r| {
        Some(Some(match key {
            "username" => {
                user.username = optional(r, string)?;
                0
            }
            "uid" => {
                user.uid = optional(r, string)?;
                1
            }
            "groups" => {
                let mut entries = r.array().ok()?;
                while r.item(&mut entries).ok()? {
                    user.groups.push(string(r)?);
                }
                2
            }
            "extra" => {
                user.extra = optional(r, raw)?;
                3
            }
            _ => return Some(None),
        }))
    })?;
    Some(user)
}

/// The request; `spec` is what was read of its object's pod spec, when
/// `kind` came before `object` (as policy-evaluator writes them).
fn admission_request(r: &mut Reader<'_>, spec: &mut Option<Spec>) -> Option<AdmissionRequest> {
    let mut req = AdmissionRequest::default();
    fields(r, |key, r| {
        Some(Some(match key {
            "uid" => {
                req.uid = string(r)?;
                0
            }
            "kind" => {
                req.kind = group_version_kind(r)?;
                1
            }
            "resource" => {
                req.resource = group_version_resource(r)?;
                2
            }
            "subResource" => {
                req.sub_resource = optional(r, string)?;
                3
            }
            "requestKind" => {
                req.request_kind = optional(r, group_version_kind)?;
                4
            }
            "requestResource" => {
                req.request_resource = optional(r, raw)?;
                5
            }
            "requestSubResource" => {
                req.request_sub_resource = optional(r, string)?;
                6
            }
            "name" => {
                req.name = optional(r, string)?;
                7
            }
            "namespace" => {
                req.namespace = optional(r, string)?;
                8
            }
            "operation" => {
                req.operation = string(r)?;
                9
            }
            "userInfo" => {
                req.user_info = user_info(r)?;
                10
            }
            "object" => {
                req.object = optional(r, |r| {
                    let start = r.pos();
                    *spec = workload::read_spec(r, &req.kind);
                    match spec {
                        Some(_) => Some(RawJson(r.text()[start..r.pos()].into())),
                        None => raw(r),
                    }
                })?;
                11
            }
            "oldObject" => {
                req.old_object = optional(r, raw)?;
                12
            }
            "dryRun" => {
                req.dry_run = optional(r, |r| r.bool().ok())?;
                13
            }
            "options" => {
                req.options = optional(r, raw)?;
                14
            }
            _ => return Some(None),
        }))
    })?;
    Some(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Request;
    use serde_json::json;

    /// The payload of `request` as policy-evaluator writes it (and the host-runner).
    fn payload(request: &Value, settings: &Value) -> String {
        serde_json::to_string(&json!({"request": request, "settings": settings})).unwrap()
    }

    #[test]
    fn what_hosts_write_is_read_in_place_as_serde_reads_it() {
        let settings = json!({"rules":[{"name":"a","images":["x/y"]}]});
        let full = Request::pod(&["nginx", "ghcr.io/a/b:1"])
            .set("subResource", json!(null))
            .set(
                "requestKind",
                json!({"group":"","version":"v1","kind":"Pod"}),
            )
            .set(
                "requestResource",
                json!({"group":"","version":"v1","resource":"pods"}),
            )
            .set("oldObject", json!({"spec":{}}))
            .set("dryRun", json!(false))
            .set(
                "options",
                json!({"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}),
            )
            .set("unknownField", json!([1, {"x": null}]));
        let pod = payload(&Request::pod(&["nginx"]).into_json(), &settings);
        // A lone surrogate where no string is decoded passes, as in serde_json.
        let lone = pod.replacen("\"object\":{", "\"object\":{\"l\":\"\\ud800\",", 1);
        for text in [pod, payload(&full.into_json(), &settings), lone] {
            let fast = read_validation_request(&text, None, false).expect("read in place");
            let slow: ValidationRequest = serde_json::from_str(&text).unwrap();
            assert_eq!(fast.0, slow);
            assert_eq!(fast.1, SettingsText::Checked);
            // The pod spec was read on the way (`kind` comes before `object`).
            assert!(fast.2.is_some(), "{text}");
            // Settings that end the payload are taken, not scanned.
            let lazy = read_validation_request(&text, None, true).unwrap();
            assert_eq!((&lazy.0, lazy.1), (&slow, SettingsText::Unchecked));
            // Settings seen before are compared, not scanned.
            let known = settings.to_string();
            let again = read_validation_request(&text, Some(&known), true).unwrap();
            assert_eq!((again.0, again.1), (slow, SettingsText::Known));
        }
    }

    #[test]
    fn lazy_settings_are_the_rest_of_the_payload_and_checked_by_their_reader() {
        let request = Request::pod(&["nginx"]).into_json();
        let last = payload(&request, &json!({"rules": []}));
        let (vr, state, _) = read(last.as_bytes(), None, true).unwrap();
        assert_eq!(
            (vr.settings, state),
            (Some(r#"{"rules":[]}"#), SettingsText::Unchecked)
        );
        // Not last: the candidate swallows what follows (here the request,
        // so serde reads the payload); after an object key, the settings
        // reader refuses it and the strict read finds the settings.
        let first = format!(
            r#"{{"settings":{{"rules":[]}},"request":{}}}"#,
            serde_json::to_string(&request).unwrap()
        );
        let (vr, state, _) = read(first.as_bytes(), None, true).unwrap();
        assert_eq!(
            (vr.settings, state),
            (Some(r#"{"rules":[]}"#), SettingsText::Checked)
        );
        let middle = last.replacen(
            r#""settings":{"rules":[]}"#,
            r#""settings":{"rules":[]},"x":1"#,
            1,
        );
        let (vr, state, _) = read(middle.as_bytes(), None, true).unwrap();
        assert_eq!(
            (vr.settings, state),
            (Some(r#"{"rules":[]},"x":1"#), SettingsText::Unchecked)
        );
        assert!(crate::settings::Policy::from_json(vr.settings.unwrap()).is_err());
        let (vr, state, _) = read(middle.as_bytes(), None, false).unwrap();
        assert_eq!(
            (vr.settings, state),
            (Some(r#"{"rules":[]}"#), SettingsText::Checked)
        );
    }

    #[test]
    fn what_the_reader_refuses_goes_to_serde() {
        let ok = payload(&Request::pod(&["nginx"]).into_json(), &json!({}));
        for (text, serde_ok) in [
            (ok.replacen("\"uid\"", "\"uid\":\"x\",\"uid\"", 1), false),
            (
                ok.replacen("\"kind\":{", "\"kind\":[\"\",\"v1\",\"Pod\"],\"x\":{", 1),
                true,
            ),
            (
                ok.replacen("{\"request\"", "{\"settings\":null,\"settings\"", 1),
                false,
            ),
            (ok[..ok.len() - 1].to_string(), false),
        ] {
            assert!(
                read_validation_request(&text, None, false).is_none(),
                "{text}"
            );
            let serde = serde_json::from_str::<ValidationRequest>(&text);
            assert_eq!(serde.is_ok(), serde_ok, "{text}");
            assert_eq!(
                ValidationRequest::from_slice(text.as_bytes()).ok(),
                serde.ok(),
                "{text}"
            );
        }
    }
}
