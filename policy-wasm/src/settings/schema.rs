//! The settings as users write them: one declaration per type, read by
//! `read.rs` (JSON names are the camelCase of the fields; a field defaults
//! when absent unless it says `= required` or `= default(...)`).
//!
//! A new field is one line here; what it means is compiled in `settings.rs`.
//! Strings are [`Text`]: borrowed from the settings JSON, with their offset
//! so that an error about them names their path.

use super::read::{schema, Map, Text};
use super::DEFAULT_BREAK_GLASS_ANNOTATION;
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
        pin_digest: bool,
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
    }

    pub(crate) struct CosignSettings<'a> {
        keys: Vec<Text<'a>> = required,
        annotations: Option<Map<'a, Text<'a>>>,
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
    }

    pub(crate) struct GithubActionsSettings<'a> {
        owner: Text<'a> = required,
        repo: Option<Text<'a>>,
        annotations: Option<Map<'a, Text<'a>>>,
    }

    pub(crate) struct CertificateSettings<'a> {
        certificate: Text<'a> = required,
        chain: Vec<Text<'a>>,
        require_rekor_bundle: bool,
        annotations: Option<Map<'a, Text<'a>>>,
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
