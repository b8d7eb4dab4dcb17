//! The settings as users write them: one declaration per type, read by
//! `read.rs` (JSON names are the camelCase of the fields; a field defaults
//! when absent unless it says `= required` or `= default(...)`).
//!
//! A new field is one line here; what it means is compiled in `settings.rs`.
//! Strings are [`Text`]: borrowed from the settings JSON, with their offset
//! so that an error about them names their path.

use super::read::{read_word, schema, Errors, FromJson, Got, Map, Raw, Read, Text};
use super::{PinDigest, DEFAULT_BREAK_GLASS_ANNOTATION};
use crate::json::{Kind, Reader};
use crate::wire::Platforms;
use std::borrow::Cow;

schema! {
    /// The whole settings document.
    pub(crate) struct Settings<'a> {
        exempt_namespaces: Vec<Text<'a>>,
        exempt_images: Vec<Text<'a>>,
        unmatched: Option<Unmatched>,
        break_glass: Option<BreakGlassSettings<'a>>,
        keys: Map<'a, KeySettings<'a>>,
        rules: Vec<RuleSettings<'a>>,
        /// Text for images no rule matches; `{image}` is the image as written.
        unmatched_message: Option<Text<'a>>,
        /// Other tools' objects read at request time (see `sources::context`).
        sources: Option<SourcesSettings>,
        /// Deny images whose first component is not a registry host.
        require_fully_qualified: bool,
    }

    /// `sources`: which other tools' objects complete the settings.
    pub(crate) struct SourcesSettings {
        tmax: bool,
        tanzu: bool,
    }

    /// An image label the rule requires (OpenShift `matchImageLabels`);
    /// no `value` = the label must be present with any value.
    pub(crate) struct LabelSettings<'a> {
        key: Text<'a> = required,
        value: Option<Text<'a>>,
    }

    pub(crate) struct BreakGlassSettings<'a> {
        annotation: Text<'a> = default(Text {
            text: Cow::Borrowed(DEFAULT_BREAK_GLASS_ANNOTATION),
            at: 0,
        }),
        groups: Vec<Text<'a>>,
    }

    pub(crate) struct KeySettings<'a> {
        cosign: Text<'a> = required,
    }

    pub(crate) struct RuleSettings<'a> {
        name: Text<'a> = required,
        images: Vec<Text<'a>>,
        /// Regular expressions matched (whole) against the normalized repository
        /// name `host[:port]/path`, so `alpine` and `docker.io/library/alpine`
        /// cannot be told apart.
        image_regex: Vec<Text<'a>>,
        /// The rule matches only images whose config carries these labels.
        image_labels: Vec<LabelSettings<'a>>,
        /// With `imageLabels`: an image whose labels cannot be read does not
        /// match the rule (instead of being denied).
        skip_on_resolution_failure: bool,
        priority: i64,
        action: Action,
        mode: Mode,
        message: Option<Text<'a>>,
        tags: Option<TagSettings<'a>>,
        verify: Option<VerifySettings<'a>>,
        pin_digest: PinDigest,
        on_digest_mismatch: OnDigestMismatch,
    }

    pub(crate) struct TagSettings<'a> {
        allow: Vec<Text<'a>>,
        deny: Vec<Text<'a>>,
        require_digest: bool,
    }

    pub(crate) struct VerifySettings<'a> {
        any_of: Option<Vec<CheckSettings<'a>>>,
        all_of: Option<Vec<CheckSettings<'a>>>,
    }

    /// One signature check: `{"cosign": {...}}`, `{"notary": {...}}`, ...
    pub(crate) enum CheckSettings<'a> {
        Cosign(CosignSettings<'a>),
        Notary(NotarySettings<'a>),
        Keyless(KeylessSettings<'a>),
        GithubActions(GithubActionsSettings<'a>),
        Certificate(CertificateSettings<'a>),
        /// Read by hand (`settings::attestation_check`): its signer is
        /// written like the signature checks' (keys, keyless, ...).
        Attestation(Raw),
        /// Read by hand (`crate::notation::NotationCheck::read`).
        Notation(Raw),
    }

    pub(crate) struct CosignSettings<'a> {
        keys: Vec<Text<'a>> = required,
        annotations: Option<Map<'a, Text<'a>>>,
        platforms: Platforms,
    }

    pub(crate) struct NotarySettings<'a> {
        server: Text<'a> = required,
        signers: Vec<NotarySignerSettings<'a>>,
        ca_cert: Option<Text<'a>>,
        root_keys: Option<Vec<Text<'a>>>,
    }

    pub(crate) struct KeylessSettings<'a> {
        issuer: Text<'a> = required,
        subject: Option<Text<'a>>,
        subject_prefix: Option<Text<'a>>,
        annotations: Option<Map<'a, Text<'a>>>,
        platforms: Platforms,
    }

    pub(crate) struct GithubActionsSettings<'a> {
        owner: Text<'a> = required,
        repo: Option<Text<'a>>,
        annotations: Option<Map<'a, Text<'a>>>,
        platforms: Platforms,
    }

    pub(crate) struct CertificateSettings<'a> {
        certificate: Text<'a> = required,
        chain: Vec<Text<'a>>,
        require_rekor_bundle: bool,
        annotations: Option<Map<'a, Text<'a>>>,
        platforms: Platforms,
    }

    pub(crate) struct NotarySignerSettings<'a> {
        role: Text<'a> = required,
        public_key: Option<Text<'a>>,
    }

    /// What happens to an image no rule matches.
    pub(crate) enum Unmatched {
        Allow,
        Warn,
        Deny,
    }

    #[derive(Default)]
    pub(crate) enum Action {
        #[default]
        Allow,
        Deny,
    }

    /// `warn` turns every denial of the rule into a warning (rolling a rule out).
    #[derive(Default)]
    pub(crate) enum Mode {
        #[default]
        Enforce,
        Warn,
    }

    /// What to do when the image's digest differs from the signed one.
    #[derive(Default)]
    pub(crate) enum OnDigestMismatch {
        #[default]
        Deny,
        Rewrite,
    }
}

impl Unmatched {
    /// As written in the settings.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Unmatched::Allow => "allow",
            Unmatched::Warn => "warn",
            Unmatched::Deny => "deny",
        }
    }
}

/// `platforms`: `index` (the default) or `all`.
impl<'a> FromJson<'a> for Platforms {
    fn read(r: &mut Reader<'a>, errors: &mut Errors) -> Read<Self> {
        read_word(
            r,
            errors,
            &[("Index", Platforms::Index), ("All", Platforms::All)],
        )
    }
}

/// `pinDigest`: `true`, `false` or `"pods"` (serde's errors).
impl<'a> FromJson<'a> for PinDigest {
    fn read(r: &mut Reader<'a>, errors: &mut Errors) -> Read<Self> {
        const EXPECTED: &str = r#"true, false or "pods""#;
        match r.peek() {
            Ok(Kind::Bool) => Ok(match bool::read(r, errors)? {
                Got::Value(true) => Got::Value(PinDigest::All),
                Got::Value(false) => Got::Value(PinDigest::Off),
                _ => Got::Invalid,
            }),
            Ok(Kind::String) => match Text::read(r, errors)? {
                Got::Value(word) if &*word == "pods" => Ok(Got::Value(PinDigest::Pods)),
                Got::Value(word) => {
                    errors.at(
                        word.at,
                        format!("invalid value: string {:?}, expected {EXPECTED}", &*word),
                    );
                    Ok(Got::Invalid)
                }
                _ => Ok(Got::Invalid),
            },
            _ => errors.invalid_type(r, EXPECTED),
        }
    }
}
