//! JSON payloads exchanged with the Kubewarden host.
//!
//! Two families live here: the `validate` / `validate_settings` payloads
//! (request arrives camelCase, response leaves snake_case, exactly as
//! policy-evaluator serializes them) and the host-capability payloads the
//! engine sends through [`crate::host::Host`]. The host-runner reuses the same
//! types to answer those calls, so guest and host cannot drift apart.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;

/// The `validate` input: `{"request": ..., "settings": {...}}`.
///
/// `settings` stays raw so the guest can compare it byte for byte with the
/// settings of the policy it compiled last and skip recompiling.
#[derive(Debug, Deserialize)]
pub struct ValidationRequest<'a> {
    pub request: AdmissionRequest,
    #[serde(borrow, default)]
    pub settings: Option<&'a RawValue>,
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
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AdmissionRequest {
    pub uid: String,
    pub kind: GroupVersionKind,
    pub resource: GroupVersionResource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_kind: Option<GroupVersionKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_resource: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_sub_resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub operation: String,
    pub user_info: UserInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_object: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Box<RawValue>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct GroupVersionKind {
    pub group: String,
    pub version: String,
    pub kind: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct GroupVersionResource {
    pub group: String,
    pub version: String,
    pub resource: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct UserInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra: Option<Box<RawValue>>,
}

/// The `validate` output. All six keys are always written (as the SDK does);
/// the host reads snake_case only (`mutatedObject` would be ignored).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ValidationResponse {
    pub accepted: bool,
    pub message: Option<String>,
    pub code: Option<u16>,
    pub mutated_object: Option<Value>,
    pub audit_annotations: Option<BTreeMap<String, String>>,
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

/// The `validate_settings` output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SettingsValidationResponse {
    pub valid: bool,
    pub message: Option<String>,
}

// ---------------------------------------------------------------------------
// Host capabilities (binding "kubewarden")
// ---------------------------------------------------------------------------

/// `oci/v2/verify` request: internally tagged by `type`, fields snake_case.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(tag = "type")]
pub enum SigstoreVerifyRequest {
    SigstorePubKeyVerify {
        image: String,
        pub_keys: Vec<String>,
        annotations: Option<BTreeMap<String, String>>,
    },
    SigstoreKeylessVerify {
        image: String,
        keyless: Vec<KeylessInfo>,
        annotations: Option<BTreeMap<String, String>>,
    },
    SigstoreKeylessPrefixVerify {
        image: String,
        keyless_prefix: Vec<KeylessPrefixInfo>,
        annotations: Option<BTreeMap<String, String>>,
    },
    SigstoreGithubActionsVerify {
        image: String,
        owner: String,
        repo: Option<String>,
        annotations: Option<BTreeMap<String, String>>,
    },
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeylessInfo {
    pub issuer: String,
    pub subject: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeylessPrefixInfo {
    pub issuer: String,
    pub url_prefix: String,
}

/// Response of `oci/v1/verify` and `oci/v2/verify`. A failed verification is a
/// host error, never `is_trusted: false`; the engine still checks the flag.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VerifyResponse {
    pub is_trusted: bool,
    pub digest: String,
}

/// Response of `oci/v1/manifest_digest` (its request is a JSON string).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestDigestResponse {
    pub digest: String,
}

/// Response of `oci/v1/oci_manifest_config` (its request is a JSON string).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestConfigResponse {
    pub manifest: Value,
    pub digest: String,
    pub config: Value,
}

/// imagegate's own capability: binding "kubewarden", namespace "notary",
/// operation "v1/verify". Only the imagegate host answers it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct NotaryVerifyRequest {
    pub image: String,
    pub server: String,
    /// Any one of these signers suffices.
    pub signers: Vec<NotarySigner>,
    /// PEM CA bundle for the notary server's TLS certificate.
    pub ca_cert: Option<String>,
    /// Pinned root keys (PEM public keys or certificates); `None` = trust on first use.
    #[serde(default)]
    pub root_keys: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct NotarySigner {
    /// Delegation role, e.g. `targets/jenkins`.
    pub role: String,
    /// When set, the delegation's key must be this key.
    pub public_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NotaryVerifyResponse {
    pub is_trusted: bool,
    /// The digest the trust data signs for the image's tag.
    pub digest: String,
    /// The role that signed it.
    pub signer: String,
}

/// `kubernetes/get_resource` request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct GetResourceRequest {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    pub disable_cache: bool,
    #[serde(default)]
    pub field_masks: Option<Vec<String>>,
}

/// `kubernetes/list_resources_by_namespace` (with `namespace`) and
/// `kubernetes/list_resources_all` (without) request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct ListResourcesRequest {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub namespace: Option<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    #[serde(default)]
    pub field_masks: Option<Vec<String>>,
}
