//! The settings as users write them: one declaration per type, read by
//! `read.rs` (JSON names are the camelCase of the fields; a field defaults
//! when absent unless it says `= required` or `= default(...)`).
//!
//! A new field is one line here; what it means is compiled in `settings.rs`.
//! Strings are [`Text`]: borrowed from the settings JSON, with their offset
//! so that an error about them names their path.

use super::read::{
    is_field, read_word, schema, Errors, FromJson, Got, Map, Raw, Read, Syntax, Text,
};
use super::{PinDigest, DEFAULT_BREAK_GLASS_ANNOTATION};
use crate::json::{self, Kind, Reader, Skip};
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
        rules: Rules<'a>,
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

/// `rules`, each read only as far as telling whether a request can need it
/// (its [`Outline`]); `settings::compile` reads whole the rules it needs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rules<'a>(pub(crate) Vec<RuleText<'a>>);

/// One rule as found in `rules`.
#[derive(Debug, Clone)]
pub(crate) struct RuleText<'a> {
    /// At the rule's value.
    reader: Reader<'a>,
    /// What decides a request the rule's images do not reach; `None` when
    /// the rule is not written plainly enough to tell (it is then read whole).
    pub(crate) outline: Option<Outline<'a>>,
}

/// A rule's name, action and patterns, found without reading the rest: an
/// object whose `name` is a string, `action` absent or a word, `images`
/// absent or a list of strings without escapes, and without `imageRegex`.
#[derive(Debug, Clone)]
pub(crate) struct Outline<'a> {
    pub(crate) name: Text<'a>,
    pub(crate) action: Action,
    /// At the `images` list.
    images: Option<Reader<'a>>,
}

impl<'a> RuleText<'a> {
    /// The whole rule, with its errors.
    pub(crate) fn read(&self, errors: &mut Errors) -> Read<RuleSettings<'a>> {
        RuleSettings::read(&mut self.reader.clone(), errors)
    }
}

impl<'a> Outline<'a> {
    /// The patterns of `images`, as written (they have no escapes).
    pub(crate) fn images(&self) -> impl Iterator<Item = &'a str> {
        let mut r = self.images.clone();
        let mut entries = r.as_mut().and_then(|r| r.array().ok());
        std::iter::from_fn(move || {
            let r = r.as_mut()?;
            match r.item(entries.as_mut()?) {
                Ok(true) => r.raw_string(Skip::Value).ok().map(|(text, _)| text),
                _ => None,
            }
        })
    }

    /// Reads the rule at `r` (passing over it) as far as its outline.
    fn read(r: &mut Reader<'a>) -> Result<Option<Outline<'a>>, json::Error> {
        if r.peek()? != Kind::Object {
            r.skip(Skip::Value)?;
            return Ok(None);
        }
        let mut plain = true;
        let (mut name, mut action, mut images) = (None, None, None);
        let mut entries = r.object()?;
        while let Some(key) = r.key(&mut entries)? {
            let kind = r.peek()?;
            let at = r.pos();
            if is_field(&key, "name") && name.is_none() && kind == Kind::String {
                name = Some(Text {
                    text: r.string()?,
                    at,
                });
            } else if is_field(&key, "action") && action.is_none() && kind == Kind::String {
                action = match &*r.string()? {
                    "allow" => Some(Action::Allow),
                    "deny" => Some(Action::Deny),
                    _ => {
                        plain = false;
                        None
                    }
                };
            } else if is_field(&key, "images") && images.is_none() && kind == Kind::Array {
                images = Some(r.clone());
                let mut list = r.array()?;
                while r.item(&mut list)? {
                    plain &= r.peek()? == Kind::String && !r.raw_string(Skip::Value)?.1;
                    if !plain {
                        r.skip(Skip::Value)?;
                    }
                }
            } else {
                // Another field, or one of those not written plainly (then
                // the rule is read whole, which reports it if it is wrong).
                plain &= !["name", "action", "images", "image_regex"]
                    .iter()
                    .any(|field| is_field(&key, field));
                r.skip(Skip::Value)?;
            }
        }
        Ok(match (plain, name) {
            (true, Some(name)) => Some(Outline {
                name,
                action: action.unwrap_or_default(),
                images,
            }),
            _ => None,
        })
    }
}

impl<'a> FromJson<'a> for Rules<'a> {
    fn read(r: &mut Reader<'a>, errors: &mut Errors) -> Read<Self> {
        if r.peek().map_err(|e| errors.syntax(e))? != Kind::Array {
            return errors.invalid_type(r, "a list");
        }
        let mut rules = Vec::new();
        let mut entries = r.array().map_err(|e| errors.syntax(e))?;
        loop {
            let broken = match r.item(&mut entries) {
                Ok(false) => return Ok(Got::Value(Rules(rules))),
                Ok(true) => {
                    let reader = r.clone();
                    match Outline::read(r) {
                        Ok(outline) => {
                            rules.push(RuleText { reader, outline });
                            continue;
                        }
                        Err(e) => {
                            rules.push(RuleText {
                                reader,
                                outline: None,
                            });
                            e
                        }
                    }
                }
                Err(e) => e,
            };
            // Broken JSON ends the reading. The rules before are read whole
            // so that their errors are reported too, as when nothing is
            // broken; the broken one reports where it breaks.
            for rule in &rules {
                if let Err(Syntax) = rule.read(errors) {
                    return Err(Syntax);
                }
            }
            return Err(errors.syntax(broken));
        }
    }
}
