//! Image patterns and the compiled set of all rules' patterns.
//!
//! Patterns are written against the normalized reference and are normalized the
//! same way (see DESIGN.md "Image references and patterns"): `nginx` means
//! `docker.io/library/nginx`, `bitnami/*` means `docker.io/bitnami/*`.
//!
//! Only `*` and `**` are wildcards. A pattern that could match an unintended
//! registry (`ghcr.*`, `registry.corp.example*`) or that cannot match any valid
//! reference (upper case or `[` in a path) is rejected when settings are
//! validated, so a typo never silently turns into "matches nothing" or
//! "matches too much".
//!
//! Parsing a pattern ([`Parts::parse`]) builds nothing: its parts are ranges
//! of its text plus its normalized host, borrowed unless normalizing changed
//! it, and matching ([`Parts::is_match`]) reads them in place. So a fresh
//! instance checks every pattern of the settings without allocating, and
//! indexes only the patterns its request's images can match.
//!
//! [`PatternSet`] indexes many patterns so that matching does not scan every
//! rule: by literal registry, by `*.suffix`, plus an any-host bucket, each with a
//! trie over path components. No regex and no globset: both would make the
//! per-request build cost and the wasm module larger (see `benches/engine.rs`).

use crate::glob::{self, Glob};
use crate::reference::{self, Reference, DOCKER_HUB, OFFICIAL_NAMESPACE};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;

/// One image pattern, e.g. `registry.corp.example/**`, `nginx:1.*`, `*.corp.io:*/team/*`.
///
/// Written against the normalized reference and normalized the same way, so
/// `nginx` covers every spelling of `docker.io/library/nginx`.
///
/// ```
/// use imagegate_policy::pattern::Pattern;
/// use imagegate_policy::reference::Reference;
///
/// let p = Pattern::parse("nginx:1.*")?;
/// assert!(p.is_match(&Reference::parse("index.docker.io/library/nginx:1.25").unwrap()));
/// assert!(!p.is_match(&Reference::parse("nginx:latest").unwrap()));
/// assert!(!p.is_match(&Reference::parse("ghcr.io/library/nginx:1.25").unwrap()));
///
/// let p = Pattern::parse("*.corp.io/**")?;
/// assert!(p.is_match(&Reference::parse("a.corp.io/team/app").unwrap()));
/// assert!(!p.is_match(&Reference::parse("corp.io/app").unwrap()), "not the apex");
/// assert!(!p.is_match(&Reference::parse("a.corp.io:5000/app").unwrap()), "no port unless named");
///
/// // A pattern that could match another party's registry is invalid settings.
/// assert!(Pattern::parse("registry.corp.example*/**").is_err());
/// # Ok::<(), imagegate_policy::pattern::PatternError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// As written, for messages; `parts` are ranges of it.
    text: String,
    parts: Parts<'static>,
}

/// A parsed pattern: its normalized host, and the rest as ranges of its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parts<'t> {
    host: HostPattern<'t>,
    path: PathPattern,
    /// `:glob`; `None` = any tag, or none.
    tag: Option<Range<usize>>,
    /// `@sha256:...`; `None` = any digest, or none.
    digest: Option<Range<usize>>,
}

/// Which registries a pattern covers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern<'t> {
    /// `*`: every host, with or without any port.
    Any,
    /// A literal (normalized) host.
    Exact {
        host: Cow<'t, str>,
        port: PortPattern,
    },
    /// `*.suffix`: every strict subdomain of `suffix` (never `suffix` itself).
    Subdomain {
        suffix: Cow<'t, str>,
        port: PortPattern,
    },
}

/// The port part of a host pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    /// No port written: only images without a port (`:443` counts as none).
    Absent,
    /// `:5000`.
    Exact(u16),
    /// `:*`: any port or none.
    Any,
}

impl PortPattern {
    fn matches(self, port: Option<u16>) -> bool {
        match self {
            PortPattern::Absent => port.is_none(),
            PortPattern::Exact(p) => port == Some(p),
            PortPattern::Any => true,
        }
    }
}

/// The repository path a pattern covers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathPattern {
    /// `*` or `**` alone: every path.
    Any,
    /// `/`-separated components (validated) at `range` of the text; with
    /// `official`, `library/` goes first (a Docker Hub name without namespace).
    Written { range: Range<usize>, official: bool },
}

/// One `/`-separated path component of a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment<'t> {
    /// No wildcard.
    Literal(&'t str),
    /// `*` inside one component.
    Glob(&'t str),
    /// `**`: zero or more components.
    AnyDepth,
}

impl Segment<'_> {
    fn of(component: &str) -> Segment<'_> {
        if component == "**" {
            Segment::AnyDepth
        } else if reference::has_byte(component, b'*') {
            Segment::Glob(component)
        } else {
            Segment::Literal(component)
        }
    }

    fn matches(self, component: &str) -> bool {
        match self {
            Segment::Literal(s) => s == component,
            Segment::Glob(g) => glob::is_match(g, component),
            Segment::AnyDepth => true,
        }
    }
}

/// The tag / digest part of a pattern, read from its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Constraint<'t> {
    /// `:glob`; `None` = any tag, or none.
    tag: Option<&'t str>,
    /// `@sha256:...`; `None` = any digest, or none.
    digest: Option<&'t str>,
}

impl Constraint<'_> {
    fn matches(&self, image: &Reference) -> bool {
        let tag_ok = match (self.tag, image.tag()) {
            (None, _) => true,
            (Some(glob), Some(tag)) => glob::is_match(glob, tag),
            // A digest-only image has no tag: only `:*` covers it.
            (Some(glob), None) => glob::matches_everything(glob),
        };
        tag_ok && self.digest.is_none_or(|d| image.digest() == Some(d))
    }
}

/// Why a pattern is invalid settings. The reason names the offending part but
/// not the whole pattern: callers show it next to the pattern and its settings path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// What is wrong and, where it helps, what to write instead.
    pub reason: String,
}

impl PatternError {
    fn new(reason: impl fmt::Display) -> PatternError {
        PatternError {
            reason: reason.to_string(),
        }
    }
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for PatternError {}

impl Pattern {
    /// Parses and normalizes a pattern; what could match more than it says,
    /// or nothing at all, is an error.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let parts = Parts::parse(text)?.into_owned();
        Ok(Pattern {
            text: text.to_string(),
            parts,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the normalized `image` matches.
    pub fn is_match(&self, image: &Reference) -> bool {
        self.parts.is_match(&self.text, image)
    }
}

/// The text as written.
impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Where `part` (a slice of `text`) is in `text`.
fn range_in(text: &str, part: &str) -> Range<usize> {
    let start = part.as_ptr() as usize - text.as_ptr() as usize;
    start..start + part.len()
}

/// The registries of the patterns parsed so far: the patterns of a
/// settings document share a few (`registry.corp.example/...`), and checking
/// one again would be a good part of the cost of each pattern.
#[derive(Default)]
pub(crate) struct Hosts<'t> {
    /// First component -> the registry it names (`None`: a path component).
    seen: HashMap<&'t str, Option<HostPattern<'t>>, FastHash>,
}

impl<'t> Hosts<'t> {
    /// The registry `first` names, `None` when it is a path component.
    fn host(&mut self, first: &'t str) -> Result<Option<HostPattern<'t>>, PatternError> {
        if let Some(host) = self.seen.get(first) {
            return Ok(host.clone());
        }
        let host = match is_host_pattern(first) {
            true => Some(parse_host_pattern(first).map_err(PatternError::new)?),
            false => None,
        };
        self.seen.insert(first, host.clone());
        Ok(host)
    }
}

impl<'t> Parts<'t> {
    /// Parses and normalizes the pattern `text`, building nothing unless
    /// its host needs normalizing (upper case, an IPv6 literal).
    pub(crate) fn parse(text: &'t str) -> Result<Parts<'t>, PatternError> {
        Parts::parse_with(text, &mut Hosts::default())
    }

    /// [`Parts::parse`], remembering the registry in `hosts` for the next pattern.
    pub(crate) fn parse_with(
        text: &'t str,
        hosts: &mut Hosts<'t>,
    ) -> Result<Parts<'t>, PatternError> {
        reference::check_characters(text).map_err(PatternError::new)?;
        if let Some(rest) = reference::without_scheme(text) {
            let rest = rest.trim_end_matches('/');
            let registry_only = !rest.contains('/');
            return Err(PatternError::new(format!(
                "patterns are image references, not URLs: write {rest}{}",
                if registry_only { "/**" } else { "" }
            )));
        }
        let (rest, digest) = match reference::split_byte(text, b'@') {
            Some((rest, digest)) => {
                reference::check_digest(digest).map_err(PatternError::new)?;
                (rest, Some(range_in(text, digest)))
            }
            None => (text, None),
        };
        let (name, tag_text) = reference::split_tag(rest);
        if let Some(tag) = tag_text {
            check_tag_glob(tag).map_err(PatternError::new)?;
        }
        let tag = tag_text.map(|t| range_in(text, t));
        if name.is_empty() {
            return Err(PatternError::new(
                "missing image name (use `*` for every image)",
            ));
        }
        if name == "*" || name == "**" {
            return Ok(Parts {
                host: HostPattern::Any,
                path: PathPattern::Any,
                tag,
                digest,
            });
        }
        let (host, path) = match reference::split_byte(name, b'/') {
            // A single component is a Docker Hub path; one that looks like a
            // host is most likely a registry written without its path.
            None if reference::looks_like_host(name) => {
                // `registry.corp.example` alone would mean docker.io/library/registry.corp.example.
                let registry = match tag_text {
                    Some(port) if port == "*" || port.bytes().all(|b| b.is_ascii_digit()) => rest,
                    _ => name,
                };
                return Err(PatternError::new(format!(
                    "{name:?} looks like a registry, but a pattern without '/' names a Docker Hub image; \
                     write \"{registry}/**\" for every image in that registry"
                )));
            }
            Some((first, path)) => match hosts.host(first)? {
                Some(host) => (host, path),
                None => (
                    HostPattern::Exact {
                        host: Cow::Borrowed(DOCKER_HUB),
                        port: PortPattern::Absent,
                    },
                    name,
                ),
            },
            None => (
                HostPattern::Exact {
                    host: Cow::Borrowed(DOCKER_HUB),
                    port: PortPattern::Absent,
                },
                name,
            ),
        };
        // Checked before anything is built: patterns also come from objects
        // read at request time (`sources`), and one that cannot fit in an
        // image path would match nothing anyway.
        let shortest = shortest_match(path);
        if shortest > reference::PATH_LENGTH_MAX {
            return Err(PatternError::new(format!(
                "the path part matches only paths of {shortest} characters or more, and an image path has at most {}: it can match no image",
                reference::PATH_LENGTH_MAX
            )));
        }
        for component in reference::components(path) {
            check_segment(component).map_err(PatternError::new)?;
        }
        let docker_hub = matches!(&host, HostPattern::Exact { host, port: PortPattern::Absent } if host == DOCKER_HUB);
        Ok(Parts {
            host,
            path: PathPattern::Written {
                range: range_in(text, path),
                official: docker_hub && !reference::has_byte(path, b'/') && path != "**",
            },
            tag,
            digest,
        })
    }

    fn into_owned(self) -> Parts<'static> {
        let owned = |s: Cow<'_, str>| Cow::Owned(s.into_owned());
        Parts {
            host: match self.host {
                HostPattern::Any => HostPattern::Any,
                HostPattern::Exact { host, port } => HostPattern::Exact {
                    host: owned(host),
                    port,
                },
                HostPattern::Subdomain { suffix, port } => HostPattern::Subdomain {
                    suffix: owned(suffix),
                    port,
                },
            },
            path: self.path,
            tag: self.tag,
            digest: self.digest,
        }
    }

    /// The path components, `library` first when implied.
    fn segments<'s>(&self, text: &'s str) -> Segments<'s> {
        match &self.path {
            PathPattern::Any => Segments {
                official: false,
                any: true,
                written: None,
            },
            PathPattern::Written { range, official } => Segments {
                official: *official,
                any: false,
                written: Some(reference::components(&text[range.clone()])),
            },
        }
    }

    fn constraint<'s>(&self, text: &'s str) -> Constraint<'s> {
        Constraint {
            tag: self.tag.clone().map(|t| &text[t]),
            digest: self.digest.clone().map(|d| &text[d]),
        }
    }

    /// Whether the normalized `image` matches the pattern, whose text is `text`.
    pub(crate) fn is_match(&self, text: &str, image: &Reference) -> bool {
        self.host.matches(image)
            && path_matches(self.segments(text), image.path())
            && self.constraint(text).matches(image)
    }
}

impl HostPattern<'_> {
    fn matches(&self, image: &Reference) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact { host, port } => host == image.host() && port.matches(image.port()),
            HostPattern::Subdomain { suffix, port } => {
                is_subdomain(image.host(), suffix) && port.matches(image.port())
            }
        }
    }
}

/// The images a fresh instance decides, as [`may_match`] reads them.
pub(crate) struct Candidates<'i> {
    images: &'i [&'i Reference],
    /// Every path component of every image, `library` included.
    components: Vec<&'i str>,
}

impl<'i> Candidates<'i> {
    /// The candidates for `images`.
    pub(crate) fn new(images: &'i [&'i Reference]) -> Candidates<'i> {
        let mut components: Vec<&str> = images
            .iter()
            .flat_map(|image| reference::components(image.path()))
            .collect();
        components.sort_unstable();
        components.dedup();
        Candidates { images, components }
    }
}

/// Whether the pattern `text` may match one of the `candidates`, read from
/// its text without checking it: each of its path components without a
/// wildcard must be one of the image's path components, and its registry
/// the image's. For a valid pattern `false` means it matches none of them
/// (the parser splits the text with the same functions); for an invalid one
/// it says nothing. A pattern of a large policy usually names a path no
/// image has, which is found before its registry is looked up: this costs
/// a tenth of [`Parts::parse_with`] and [`Parts::is_match`], which a fresh
/// instance then spends only on the patterns that pass.
pub(crate) fn may_match<'t>(
    text: &'t str,
    hosts: &mut Hosts<'t>,
    candidates: &Candidates<'_>,
) -> bool {
    let rest = reference::split_byte(text, b'@').map_or(text, |(rest, _)| rest);
    let (name, _) = reference::split_tag(rest);
    if name == "*" || name == "**" {
        return true;
    }
    let (first, path) = match reference::split_byte(name, b'/') {
        Some((first, path)) if is_host_pattern(first) => (Some(first), path),
        _ => (None, name),
    };
    let literal = |c| match Segment::of(c) {
        Segment::Literal(c) => Some(c),
        Segment::Glob(_) | Segment::AnyDepth => None,
    };
    let known = |c: &str| {
        let first = c.as_bytes().first();
        (candidates.components.iter())
            .any(|k| k.len() == c.len() && k.as_bytes().first() == first && *k == c)
    };
    if !reference::components(path).filter_map(literal).all(known) {
        return false;
    }
    // A subdomain pattern's suffix is a host that normalizes by case only:
    // it is compared before the registry is parsed.
    if let Some(suffix) = first.and_then(|first| first.strip_prefix("*.")) {
        let suffix = reference::split_byte(suffix, b':').map_or(suffix, |(host, _)| host);
        if !(candidates.images.iter()).any(|image| is_subdomain(image.host(), suffix)) {
            return false;
        }
    }
    let host = match first.map(|first| hosts.host(first)) {
        Some(Ok(Some(host))) => host,
        Some(Ok(None)) | None => HostPattern::Exact {
            host: Cow::Borrowed(DOCKER_HUB),
            port: PortPattern::Absent,
        },
        Some(Err(_)) => return true,
    };
    candidates.images.iter().any(|image| {
        host.matches(image)
            && reference::components(path)
                .filter_map(literal)
                .all(|c| reference::components(image.path()).any(|i| i == c))
    })
}

/// A pattern's path segments (see [`Parts::segments`]).
#[derive(Clone)]
struct Segments<'s> {
    /// `library` comes first.
    official: bool,
    /// `**` alone.
    any: bool,
    written: Option<reference::Split<'s>>,
}

impl<'s> Iterator for Segments<'s> {
    type Item = Segment<'s>;

    fn next(&mut self) -> Option<Segment<'s>> {
        if std::mem::take(&mut self.official) {
            return Some(Segment::Literal(OFFICIAL_NAMESPACE));
        }
        if std::mem::take(&mut self.any) {
            return Some(Segment::AnyDepth);
        }
        self.written.as_mut()?.next().map(Segment::of)
    }
}

/// The registry part of a pattern (first component, known to be a host).
fn parse_host_pattern(first: &str) -> Result<HostPattern<'_>, String> {
    if first == "*" {
        return Ok(HostPattern::Any);
    }
    if first.starts_with("**") {
        return Err(
            "`**` cannot be a registry; `*` alone matches every registry (e.g. `*/**/app`)"
                .to_string(),
        );
    }
    if first.starts_with("*:") {
        return Err(
            "`*` as host already matches every registry and port; remove the port".to_string(),
        );
    }
    let (host, port) = reference::split_port(first).map_err(|e| e.reason)?;
    let port = match port {
        None => PortPattern::Absent,
        Some("*") => PortPattern::Any,
        Some(p) => reference::parse_port(p)
            .map_err(|e| e.reason)?
            .map_or(PortPattern::Absent, PortPattern::Exact),
    };
    if let Some(suffix) = host.strip_prefix("*.") {
        if suffix.contains('*') || suffix.starts_with('[') {
            return Err(host_wildcard_error(host));
        }
        let suffix = reference::parse_host(suffix).map_err(|e| e.reason)?;
        return Ok(HostPattern::Subdomain { suffix, port });
    }
    if reference::has_byte(host, b'*') {
        return Err(host_wildcard_error(host));
    }
    // Case and the canonical IPv6 form fold like in references; Docker Hub's
    // aliases too, except with a port (`index.docker.io:5000` is another registry).
    let host = match port {
        PortPattern::Exact(_) => reference::parse_host(host),
        PortPattern::Absent | PortPattern::Any => {
            reference::parse_registry(host).map(|(host, _)| host)
        }
    };
    let host = host.map_err(|e| e.reason)?;
    if port == PortPattern::Absent && !reference::is_registry(&host) {
        // Only upper case made `first` a host (or a port that normalizes away).
        return Err(if first.contains(':') {
            format!(
                "registry {first:?} normalizes to {host:?} without a port, which no image can name \
                 (it would read as a Docker Hub namespace); give its port, or `:*`"
            )
        } else {
            format!(
                "{first:?} has upper-case letters: a path must be lower-case, and a registry \
                 host in a pattern needs a '.' or a port"
            )
        });
    }
    Ok(HostPattern::Exact { host, port })
}

fn host_wildcard_error(host: &str) -> String {
    format!(
        "host wildcard {host:?} is not allowed: a host wildcard is `*` alone or a leading `*.` label \
         (`*.example.com`), anything else could match another party's registry (e.g. \"{}.evil.io\")",
        host.replace('*', "x")
    )
}

/// Checks one path component of a pattern.
fn check_segment(component: &str) -> Result<(), String> {
    if component == "**" {
        return Ok(());
    }
    if component.as_bytes().windows(2).any(|w| w == b"**") {
        return Err(format!(
            "`**` must be a whole path component (`a/**/b`), not part of {component:?}"
        ));
    }
    if !reference::has_byte(component, b'*') {
        return reference::check_path_component(component).map_err(|e| e.reason);
    }
    if component.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "path component {component:?} has upper-case letters (image paths are lower-case)"
        ));
    }
    if let Some(c) = component
        .chars()
        .find(|&c| c != '*' && !reference::is_path_char(c))
    {
        return Err(format!(
            "path component {component:?} contains {c:?}: only `*` and `**` are wildcards, \
             and image paths contain only a-z, 0-9, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// The length of the shortest path a pattern path can match: every
/// component but `**` takes its literal characters, at least one, and a `/`.
fn shortest_match(path: &str) -> usize {
    let mut total = 0usize;
    for component in path.split('/').filter(|c| *c != "**") {
        let literal = component.bytes().filter(|&b| b != b'*').count();
        total += literal.max(1) + usize::from(total > 0);
    }
    total
}

/// Whether a pattern's first `/`-component is its registry: the host rule of
/// references ([`reference::is_registry`]), or a `*` host wildcard.
pub(crate) fn is_host_pattern(first: &str) -> bool {
    reference::has_byte(first, b'*') || reference::is_registry(first)
}

/// A tag or a `*` glob over tags: the one tag-glob rule, for the `:tag` of
/// patterns and for `tags.allow` / `tags.deny`. A glob is accepted only if it
/// can match a tag of the distribution grammar (`[\w][\w.-]{0,127}`): tag
/// characters and `*`, no leading `.` or `-`, at most 128 characters besides
/// the stars. Anything else would silently match nothing.
pub(crate) fn check_tag_glob(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("empty tag or tag glob".to_string());
    }
    let literal = text.bytes().filter(|&b| b != b'*').count();
    let ok = literal <= reference::TAG_LENGTH_MAX
        && !text.starts_with(['.', '-'])
        && text
            .bytes()
            .all(|b| b == b'*' || reference::is_tag_char(char::from(b)));
    if !ok {
        return Err(format!(
            "{text:?} is not a tag or tag glob, it can match no tag: tags are letters, digits, \
             '_', '.' and '-', start with a letter, digit or '_' and are at most \
             {} characters long; `*` is the only wildcard",
            reference::TAG_LENGTH_MAX
        ));
    }
    Ok(())
}

/// Every strict parent domain of `host`: `a.b.example.com` -> `b.example.com`,
/// `example.com`, `com`. `*.example.com` matches a host iff `example.com` is among them.
fn subdomain_suffixes(host: &str) -> impl Iterator<Item = &str> {
    host.match_indices('.').map(move |(i, _)| &host[i + 1..])
}

/// Whether `suffix`, in any case, is one of [`subdomain_suffixes`] of the
/// lower-case `host`, without searching `host` for dots.
fn is_subdomain(host: &str, suffix: &str) -> bool {
    let Some(dot) = host.len().checked_sub(suffix.len() + 1) else {
        return false;
    };
    host.as_bytes()[dot] == b'.'
        && host.as_bytes()[dot + 1..].eq_ignore_ascii_case(suffix.as_bytes())
}

/// Most components a repository path can have (255 characters).
const PATH_COMPONENTS_MAX: usize = 128;

/// Whether `segments` match the `/`-separated `path` (dynamic programming over
/// components, O(segments x components), no backtracking, nothing allocated).
fn path_matches<'s>(segments: impl Iterator<Item = Segment<'s>>, path: &str) -> bool {
    let count = 1 + path.bytes().filter(|&b| b == b'/').count();
    if count > PATH_COMPONENTS_MAX {
        return false;
    }
    // matched[j]: the segments so far match the first j components.
    let mut matched = [false; PATH_COMPONENTS_MAX + 1];
    matched[0] = true;
    for segment in segments {
        if segment == Segment::AnyDepth {
            // Zero or more components: reachable from any earlier prefix.
            let mut any = false;
            for m in matched[..=count].iter_mut() {
                any |= *m;
                *m = any;
            }
        } else {
            // Right to left, so that matched[j - 1] is still the previous row.
            let mut next = false;
            for (j, component) in reference::components(path).enumerate() {
                let here = matched[j] && segment.matches(component);
                matched[j] = next;
                next = here;
                if j + 1 == count {
                    matched[j + 1] = here;
                }
            }
            matched[0] = false;
        }
        if !matched[..=count].contains(&true) {
            return false;
        }
    }
    matched[count]
}

type NodeId = usize;

/// FNV-1a. The maps are keyed by settings (trusted) and only probed with image
/// strings, so a seeded hash buys nothing here, while std's `RandomState` would
/// draw WASI randomness in every fresh instance and SipHash is slow on short keys.
#[derive(Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

pub(crate) type FastHash = BuildHasherDefault<Fnv>;

/// Many patterns, each with a caller-chosen id, matched in one pass.
/// Matching cost does not grow linearly with the number of patterns.
///
/// ```
/// use imagegate_policy::pattern::{Pattern, PatternSet};
/// use imagegate_policy::reference::Reference;
///
/// let set = PatternSet::new([
///     (Pattern::parse("registry.corp.example/**")?, 0),
///     (Pattern::parse("*:latest")?, 1),
///     (Pattern::parse("ghcr.io/corp/*")?, 2),
/// ]);
/// let mut ids = Vec::new();
/// set.matches_into(&Reference::parse("registry.corp.example/app").unwrap(), &mut ids);
/// ids.sort();
/// assert_eq!(ids, [0, 1], "no tag means latest");
/// # Ok::<(), imagegate_policy::pattern::PatternError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct PatternSet {
    /// Trie nodes of every registry bucket.
    nodes: Vec<Node>,
    /// Literal hosts.
    exact: HashMap<String, PortRoots, FastHash>,
    /// `*.suffix` patterns, keyed by `suffix`.
    subdomain: HashMap<String, PortRoots, FastHash>,
    /// Patterns whose host is `*`.
    any_host: Option<NodeId>,
    len: usize,
}

/// Trie roots of one host (or host suffix), by port pattern.
#[derive(Debug, Clone, Default)]
struct PortRoots {
    absent: Option<NodeId>,
    any: Option<NodeId>,
    exact: HashMap<u16, NodeId, FastHash>,
}

/// A path trie node: edges by component kind, and the patterns ending here.
#[derive(Debug, Clone, Default)]
struct Node {
    literal: HashMap<String, NodeId, FastHash>,
    globs: Vec<(Glob, NodeId)>,
    any_depth: Option<NodeId>,
    /// Tag glob and digest of each pattern ending here, with its id.
    terminals: Vec<(Option<String>, Option<String>, usize)>,
}

fn new_node(nodes: &mut Vec<Node>) -> NodeId {
    nodes.push(Node::default());
    nodes.len() - 1
}

impl PatternSet {
    /// Indexes `patterns`; a match reports the id given with the pattern.
    pub fn new(patterns: impl IntoIterator<Item = (Pattern, usize)>) -> PatternSet {
        let mut set = PatternSet::default();
        for (pattern, id) in patterns {
            set.insert(&pattern.parts, &pattern.text, id);
        }
        set
    }

    /// Adds the pattern `parts` of `text` with `id`.
    pub(crate) fn insert(&mut self, parts: &Parts<'_>, text: &str, id: usize) {
        let nodes = &mut self.nodes;
        let (roots, port) = match &parts.host {
            HostPattern::Any => {
                let root = *self.any_host.get_or_insert_with(|| new_node(nodes));
                return self.insert_path(root, parts, text, id);
            }
            HostPattern::Exact { host, port } => (entry(&mut self.exact, host), *port),
            HostPattern::Subdomain { suffix, port } => (entry(&mut self.subdomain, suffix), *port),
        };
        let root = match port {
            PortPattern::Absent => *roots.absent.get_or_insert_with(|| new_node(nodes)),
            PortPattern::Any => *roots.any.get_or_insert_with(|| new_node(nodes)),
            PortPattern::Exact(p) => *roots.exact.entry(p).or_insert_with(|| new_node(nodes)),
        };
        self.insert_path(root, parts, text, id);
    }

    fn insert_path(&mut self, root: NodeId, parts: &Parts<'_>, text: &str, id: usize) {
        let mut node = root;
        let mut previous = None;
        for segment in parts.segments(text) {
            // `**/**` is `**`: collapsing keeps matching linear.
            if segment == Segment::AnyDepth && previous == Some(Segment::AnyDepth) {
                continue;
            }
            previous = Some(segment);
            let existing = match segment {
                Segment::Literal(s) => self.nodes[node].literal.get(s).copied(),
                Segment::Glob(g) => self.nodes[node]
                    .globs
                    .iter()
                    .find(|(e, _)| e.as_str() == g)
                    .map(|(_, n)| *n),
                Segment::AnyDepth => self.nodes[node].any_depth,
            };
            node = match existing {
                Some(child) => child,
                None => {
                    let child = new_node(&mut self.nodes);
                    let parent = &mut self.nodes[node];
                    match segment {
                        Segment::Literal(s) => {
                            parent.literal.insert(s.to_string(), child);
                        }
                        Segment::Glob(g) => parent.globs.push((Glob::new(g), child)),
                        Segment::AnyDepth => parent.any_depth = Some(child),
                    }
                    child
                }
            };
        }
        let constraint = parts.constraint(text);
        self.nodes[node].terminals.push((
            constraint.tag.map(str::to_string),
            constraint.digest.map(str::to_string),
            id,
        ));
        self.len += 1;
    }

    /// Appends the ids of every pattern matching `image` to `out` (order unspecified,
    /// an id may appear more than once).
    pub fn matches_into(&self, image: &Reference, out: &mut Vec<usize>) {
        if self.len == 0 {
            return;
        }
        let mut walk = Walk {
            nodes: &self.nodes,
            image,
            components: reference::components(image.path()).collect(),
            seen: HashSet::default(),
            out,
        };
        let host = image.host();
        if let Some(roots) = self.exact.get(host) {
            walk.roots(roots);
        }
        if !self.subdomain.is_empty() {
            for suffix in subdomain_suffixes(host) {
                if let Some(roots) = self.subdomain.get(suffix) {
                    walk.roots(roots);
                }
            }
        }
        if let Some(root) = self.any_host {
            walk.visit(root, 0);
        }
    }

    /// Whether the set has no pattern.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of patterns in the set.
    pub fn len(&self) -> usize {
        self.len
    }
}

/// The roots of `host`, created if needed.
fn entry<'m>(map: &'m mut HashMap<String, PortRoots, FastHash>, host: &str) -> &'m mut PortRoots {
    map.entry(host.to_string()).or_default()
}

/// One image's walk through the tries.
struct Walk<'a> {
    nodes: &'a [Node],
    image: &'a Reference,
    components: Vec<&'a str>,
    /// `(node, component index)` pairs entered through a `**` edge. A node below
    /// a `**` can be reached from several start positions; remembering them keeps
    /// the walk at most O(nodes x components) whatever the patterns.
    seen: HashSet<(NodeId, usize), FastHash>,
    out: &'a mut Vec<usize>,
}

impl Walk<'_> {
    fn roots(&mut self, roots: &PortRoots) {
        let port = self.image.port();
        let exact = port.and_then(|p| roots.exact.get(&p).copied());
        let absent = if port.is_none() { roots.absent } else { None };
        for root in [absent, exact, roots.any].into_iter().flatten() {
            self.visit(root, 0);
        }
    }

    fn visit(&mut self, id: NodeId, at: usize) {
        let nodes = self.nodes;
        let node = &nodes[id];
        match self.components.get(at) {
            None => {
                for (tag, digest, pattern) in &node.terminals {
                    let constraint = Constraint {
                        tag: tag.as_deref(),
                        digest: digest.as_deref(),
                    };
                    if constraint.matches(self.image) {
                        self.out.push(*pattern);
                    }
                }
            }
            Some(&component) => {
                if let Some(&child) = node.literal.get(component) {
                    self.visit(child, at + 1);
                }
                for (glob, child) in &node.globs {
                    if glob.is_match(component) {
                        self.visit(*child, at + 1);
                    }
                }
            }
        }
        if let Some(child) = node.any_depth {
            for start in at..=self.components.len() {
                if self.seen.insert((child, start)) {
                    self.visit(child, start);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn pat(text: &str) -> Pattern {
        Pattern::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
    }

    fn img(text: &str) -> Reference {
        Reference::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
    }

    /// `pattern` matches `image`, checked both directly and through a one-pattern set.
    fn m(pattern: &str, image: &str) -> bool {
        let (p, i) = (pat(pattern), img(image));
        let direct = p.is_match(&i);
        let mut out = Vec::new();
        PatternSet::new([(p, 7)]).matches_into(&i, &mut out);
        assert_eq!(
            direct,
            out.contains(&7),
            "Pattern and PatternSet disagree on {pattern:?} vs {image:?}"
        );
        direct
    }

    fn err(pattern: &str) -> String {
        match Pattern::parse(pattern) {
            Ok(p) => panic!("{pattern:?} should be rejected, got {p:?}"),
            Err(e) => e.reason,
        }
    }

    #[test]
    fn may_match_never_misses_a_match_and_passes_over_other_paths() {
        let patterns = [
            "*",
            "**",
            "*:1.*",
            "nginx",
            "nginx:1.*",
            "library/nginx",
            "docker.io/*",
            "index.docker.io/library/nginx:*",
            "Docker.IO/library/**",
            "ghcr.io/corp/*",
            "GHCR.io/corp/app",
            "ghcr.io/*/app",
            "*.corp.io/**",
            "*.CORP.io:*/x/**",
            "*.corp.io:5000/**",
            "*/x/**",
            "*/**/y",
            "registry.corp.example:5000/x/y:*",
            "localhost:5000/**",
            "[0::1]:5000/a/**",
            "team/app",
            "quay.io/a/b@sha256:1111111111111111111111111111111111111111111111111111111111111111",
        ];
        let images = [
            "nginx",
            "nginx:1.27",
            "index.docker.io/library/nginx:1.2",
            "ghcr.io/corp/app",
            "GHCR.io/other/app",
            "a.corp.io/x/y:3",
            "b.a.CORP.io:5000/x/y",
            "registry.corp.example:5000/x/y",
            "localhost:5000/x",
            "[::1]:5000/a/b",
            "team/app:2",
            "quay.io/a/b@sha256:1111111111111111111111111111111111111111111111111111111111111111",
        ];
        for text in patterns {
            let parts = Parts::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            for image in images {
                let image = img(image);
                let one = [&image];
                let candidates = Candidates::new(&one);
                if parts.is_match(text, &image) {
                    assert!(
                        may_match(text, &mut Hosts::default(), &candidates),
                        "{text} vs {image}"
                    );
                }
            }
        }
        let images = [img("ghcr.io/corp/app:1"), img("a.corp.io/x/y")];
        let images: Vec<&Reference> = images.iter().collect();
        let candidates = Candidates::new(&images);
        for other in [
            "ghcr.io/team/*",
            "docker.io/library/img4:1.*",
            "*.corp2.io/**",
            "quay.io/bad-3/**",
        ] {
            assert!(
                !may_match(other, &mut Hosts::default(), &candidates),
                "{other}"
            );
        }
    }

    #[test]
    fn star_and_double_star_alone_match_every_image() {
        for p in ["*", "**"] {
            for i in [
                "nginx",
                "ghcr.io/a/b/c:v1",
                "localhost:5000/x",
                "[::1]:5000/a",
                &format!("x@{D1}"),
            ] {
                assert!(m(p, i), "{p} vs {i}");
            }
        }
    }

    #[test]
    fn star_with_tag_or_digest_constrains_only_the_tag_or_digest() {
        assert!(m("*:latest", "nginx"));
        assert!(m("*:latest", "ghcr.io:5000/a/b:latest"));
        assert!(!m("*:latest", "ghcr.io/a:v1"));
        assert!(m(&format!("**@{D1}"), &format!("ghcr.io/a@{D1}")));
        assert!(!m(&format!("**@{D1}"), &format!("ghcr.io/a@{D2}")));
        assert!(!m(&format!("**@{D1}"), "ghcr.io/a:v1"));
    }

    #[test]
    fn hostless_pattern_means_docker_hub() {
        assert!(m("nginx", "nginx"));
        assert!(m("nginx", "docker.io/library/nginx:1.25"));
        assert!(m("nginx", "index.docker.io/library/nginx"));
        assert!(m("nginx", "registry-1.docker.io/nginx"));
        assert!(!m("nginx", "ghcr.io/nginx"));
        assert!(!m("nginx", "bitnami/nginx"));
        assert!(m("library/nginx", "nginx"));
        assert!(m("docker.io/nginx", "nginx"));
        assert!(m("docker.io/library/nginx", "library/nginx"));
        assert!(m("bitnami/*", "bitnami/nginx"));
        assert!(m("bitnami/*", "docker.io/bitnami/redis:7"));
        assert!(!m("bitnami/*", "ghcr.io/bitnami/redis"));
        assert!(!m("bitnami/*", "bitnami/charts/redis"));
    }

    #[test]
    fn docker_hub_aliases_and_case_in_pattern_hosts_normalize() {
        for p in [
            "index.docker.io/nginx",
            "registry-1.docker.io/library/nginx",
            "DOCKER.IO/nginx",
            "docker.io:443/nginx",
        ] {
            assert!(m(p, "nginx"), "{p}");
            assert!(!m(p, "ghcr.io/library/nginx"), "{p}");
        }
    }

    #[test]
    fn docker_io_star_is_official_images_double_star_is_all_of_hub() {
        assert!(m("docker.io/*", "nginx"));
        assert!(m("docker.io/*", "docker.io/library/redis"));
        assert!(!m("docker.io/*", "bitnami/redis"));
        assert!(m("docker.io/**", "bitnami/redis"));
        assert!(m("docker.io/**", "nginx"));
        assert!(m("docker.io/**", "a/b/c/d"));
        assert!(!m("docker.io/**", "ghcr.io/a"));
        assert!(!m("docker.io/**", "docker.io:5000/a"));
    }

    #[test]
    fn library_prefix_only_on_docker_hub_without_port() {
        assert!(m("docker.io:5000/nginx", "docker.io:5000/nginx"));
        assert!(!m("docker.io:5000/nginx", "docker.io:5000/library/nginx"));
        assert!(m("ghcr.io/nginx", "ghcr.io/nginx"));
        assert!(!m("ghcr.io/nginx", "ghcr.io/library/nginx"));
    }

    #[test]
    fn star_host_is_any_host_any_port_but_not_docker_hub_library_rule() {
        assert!(m("*/app", "ghcr.io/app"));
        assert!(m("*/app", "localhost:5000/app"));
        assert!(m("*/app", "[::1]:5000/app"));
        // docker.io images always have two components.
        assert!(!m("*/nginx", "nginx"));
        assert!(m("*/library/nginx", "nginx"));
        assert!(m("*/**/nginx", "nginx"));
        assert!(m("*/**/nginx", "ghcr.io/a/b/nginx"));
    }

    #[test]
    fn host_case_is_folded_in_images_and_patterns() {
        assert!(m("nginx.io/app", "NGINX.IO/app"));
        assert!(m("NGINX.IO/app", "nginx.io/app"));
        assert!(m("*.Example.COM/app", "A.EXAMPLE.com/app"));
    }

    #[test]
    fn subdomain_wildcard_excludes_apex_and_look_alikes() {
        let p = "*.example.com/**";
        assert!(m(p, "a.example.com/app"));
        assert!(m(p, "a.b.example.com/team/app"));
        assert!(!m(p, "example.com/app"));
        assert!(!m(p, "evil-example.com/app"));
        assert!(!m(p, "aexample.com/app"));
        assert!(!m(p, "example.com.evil.io/app"));
        assert!(!m(p, "a.example.com.evil.io/app"));
        assert!(!m(p, "a.example.com:5000/app"));
        assert!(!m("example.com/**", "a.example.com/app"));
        assert!(m("example.com/**", "example.com/app"));
    }

    #[test]
    fn port_rules() {
        // A pattern without port matches only images without port.
        assert!(m("registry.corp.example/**", "registry.corp.example/app"));
        assert!(!m(
            "registry.corp.example/**",
            "registry.corp.example:5000/app"
        ));
        assert!(!m(
            "registry.corp.example/**",
            "registry.corp.example:80/app"
        ));
        // :443 is no port, on both sides.
        assert!(m(
            "registry.corp.example/**",
            "registry.corp.example:443/app"
        ));
        assert!(m(
            "registry.corp.example:443/**",
            "registry.corp.example/app"
        ));
        // A named port.
        assert!(m(
            "registry.corp.example:5000/**",
            "registry.corp.example:5000/app"
        ));
        assert!(!m(
            "registry.corp.example:5000/**",
            "registry.corp.example/app"
        ));
        assert!(!m(
            "registry.corp.example:5000/**",
            "registry.corp.example:5001/app"
        ));
        assert!(m(
            "registry.corp.example:80/**",
            "registry.corp.example:80/app"
        ));
        assert!(!m(
            "registry.corp.example:80/**",
            "registry.corp.example/app"
        ));
        // :* is any port or none.
        for i in [
            "registry.corp.example/app",
            "registry.corp.example:5000/app",
            "registry.corp.example:443/app",
        ] {
            assert!(m("registry.corp.example:*/**", i), "{i}");
        }
        assert!(m("*.corp.io:*/team/*", "a.corp.io:8443/team/app"));
        assert!(m("*.corp.io:*/team/*", "a.corp.io/team/app"));
        assert!(m("*.corp.io:8443/team/*", "a.corp.io:8443/team/app"));
        assert!(!m("*.corp.io:8443/team/*", "a.corp.io/team/app"));
    }

    #[test]
    fn dotless_host_with_port_443_is_rejected_like_in_references() {
        // `registry:443/app` is an unparsable image (it would normalize to
        // Docker Hub's `registry/app`), so this pattern could match nothing.
        assert!(err("registry:443/**").contains("no image can name"));
        assert!(m("registry:*/**", "registry:5000/app"));
        assert!(m("registry:5000/**", "registry:5000/app"));
        assert!(m("*.corp:443/**", "a.corp/app"));
        assert!(m("localhost:443/**", "localhost/app"));
    }

    #[test]
    fn localhost_and_ipv6_hosts() {
        assert!(m("localhost:5000/**", "localhost:5000/app"));
        assert!(!m("localhost:5000/**", "localhost/app"));
        assert!(m("localhost/**", "localhost/app"));
        assert!(!m("localhost/**", "localhost:5000/app"));
        assert!(m("localhost:*/app", "localhost:5000/app"));
        assert!(m("[::1]:5000/**", "[::1]:5000/app"));
        assert!(m("[0::1]:5000/**", "[::1]:5000/app"));
        assert!(!m("[::1]:5000/**", "[::2]:5000/app"));
        assert!(!m("[::1]/**", "[::1]:5000/app"));
        assert!(m("127.0.0.1:5000/app", "127.0.0.1:5000/app"));
    }

    #[test]
    fn docker_hub_alias_with_port_is_another_registry() {
        assert!(m("index.docker.io:5000/app", "index.docker.io:5000/app"));
        assert!(!m("index.docker.io:5000/app", "docker.io:5000/app"));
        assert!(m("index.docker.io:*/library/app", "app"));
    }

    #[test]
    fn single_star_stays_within_one_component() {
        assert!(m("ghcr.io/org/*", "ghcr.io/org/app"));
        assert!(!m("ghcr.io/org/*", "ghcr.io/org/team/app"));
        assert!(!m("ghcr.io/org/*", "ghcr.io/org"));
        assert!(m("ghcr.io/org/app-*", "ghcr.io/org/app-web"));
        assert!(!m("ghcr.io/org/app-*", "ghcr.io/org/other"));
        assert!(m("ghcr.io/*/app", "ghcr.io/x/app"));
        assert!(m("ghcr.io/*-team/*", "ghcr.io/red-team/app"));
    }

    #[test]
    fn double_star_matches_zero_or_more_components() {
        assert!(m("corp.io/corp/**/app", "corp.io/corp/app"));
        assert!(m("corp.io/corp/**/app", "corp.io/corp/x/app"));
        assert!(m("corp.io/corp/**/app", "corp.io/corp/x/y/z/app"));
        assert!(!m("corp.io/corp/**/app", "corp.io/corp/x/app2"));
        assert!(!m("corp.io/corp/**/app", "corp.io/other/app"));
        assert!(m("corp.io/corp/**", "corp.io/corp"));
        assert!(m("corp.io/corp/**", "corp.io/corp/a/b"));
        assert!(m("corp.io/**/app", "corp.io/app"));
        assert!(m("corp.io/**/a/**/b", "corp.io/x/a/y/a/z/b"));
        assert!(m("corp.io/**/**/app", "corp.io/app"));
    }

    #[test]
    fn no_tag_or_digest_in_pattern_matches_any_tag_and_digest() {
        for i in [
            "nginx",
            "nginx:1.0",
            &format!("nginx@{D1}"),
            &format!("nginx:1.0@{D2}"),
        ] {
            assert!(m("nginx", i), "{i}");
        }
    }

    #[test]
    fn tag_globs() {
        assert!(m("nginx:1.*", "nginx:1.25"));
        assert!(!m("nginx:1.*", "nginx:2.0"));
        assert!(m("nginx:1.*", &format!("nginx:1.25@{D1}")));
        assert!(m("nginx:latest", "nginx"), "implicit latest is tag latest");
        assert!(m("nginx:lat*", "nginx"));
        assert!(!m("nginx:1.*", "nginx"));
        assert!(m("nginx:*-alpine", "nginx:1.25-alpine"));
        // Tags are case-sensitive.
        assert!(!m("nginx:V1", "nginx:v1"));
    }

    #[test]
    fn digest_only_image_matches_only_star_tag() {
        let image = format!("nginx@{D1}");
        assert!(m("nginx:*", &image));
        assert!(!m("nginx:latest", &image));
        assert!(!m("nginx:l*", &image));
        assert!(m("nginx", &image));
    }

    #[test]
    fn digest_in_pattern_requires_that_digest() {
        let p = format!("nginx@{D1}");
        assert!(m(&p, &format!("nginx@{D1}")));
        assert!(m(&p, &format!("nginx:1.0@{D1}")));
        assert!(!m(&p, &format!("nginx@{D2}")));
        assert!(!m(&p, "nginx:1.0"));
        let both = format!("nginx:1.*@{D1}");
        assert!(m(&both, &format!("nginx:1.0@{D1}")));
        assert!(!m(&both, &format!("nginx@{D1}")));
        assert!(!m(&both, &format!("nginx:2.0@{D1}")));
        assert!(err("nginx@sha256:abc").contains("must be sha256:<64 hex>"));
        assert!(err(&format!("nginx@{}", D1.to_uppercase())).contains("must be sha256"));
    }

    #[test]
    fn host_wildcards_other_than_star_or_leading_label_are_rejected() {
        for p in [
            "registry.corp.example*/app",
            "ghcr.*/app",
            "a*.b.com/app",
            "*example.com/app",
            "*.*.com/app",
            "x.*.com/app",
            "*.b*.com/app",
        ] {
            assert!(err(p).contains("is not allowed"), "{p}: {}", err(p));
        }
        assert!(err("**/app").contains("`**` cannot be a registry"));
        assert!(err("*:5000/app").contains("remove the port"));
        assert!(Pattern::parse("*.[::1]/app").is_err());
        assert!(Pattern::parse("*.[::1]:5000/app").is_err());
    }

    #[test]
    fn double_star_inside_a_component_is_rejected() {
        for p in ["ghcr.io/a**b", "ghcr.io/**b/c", "ghcr.io/a/b**"] {
            assert!(err(p).contains("whole path component"), "{p}");
        }
    }

    #[test]
    fn path_characters_that_cannot_match_are_rejected() {
        assert!(err("ghcr.io/[abc/x").contains("invalid character '['"));
        assert!(err("ghcr.io/a[bc]*/x").contains("contains '['"));
        assert!(err("ghcr.io/App").contains("upper-case"));
        assert!(err("ghcr.io/App*").contains("upper-case"));
        assert!(err("Library/nginx").contains("upper-case"));
        assert!(err("ghcr.io/a?").contains("invalid character '?'"));
        assert!(err("ghcr.io/a%2fb").contains("invalid character '%'"));
        assert!(err("ghcr.io/a..b").contains("path component \"a..b\""));
        assert!(err("ghcr.io//a").contains("empty path component"));
        assert!(err("ghcr.io/").contains("empty path component"));
    }

    #[test]
    fn paths_longer_than_any_image_path_are_rejected() {
        // 255 characters at the least: accepted; one more: can match nothing.
        let fits = format!("ghcr.io/{}/**/*xyz*", "a".repeat(251));
        assert!(m(&fits, &format!("ghcr.io/{}/xyz", "a".repeat(251))));
        for p in [
            format!("ghcr.io/{}/**/*xyzw*", "a".repeat(251)),
            format!("ghcr.io/{}", vec!["*"; 129].join("/")),
            format!("*/{}", "a".repeat(256)),
        ] {
            assert!(err(&p).contains("it can match no image"), "{}", err(&p));
        }
        assert!(Pattern::parse(&format!("ghcr.io/{}", vec!["**"; 1000].join("/"))).is_ok());
    }

    #[test]
    fn bare_registry_is_rejected_with_a_suggestion() {
        assert!(err("registry.corp.example").contains("write \"registry.corp.example/**\""));
        assert!(
            err("registry.corp.example:5000").contains("write \"registry.corp.example:5000/**\"")
        );
        assert!(err("*.corp.io").contains("write \"*.corp.io/**\""));
        assert!(err("localhost").contains("write \"localhost/**\""));
        assert!(err("localhost:5000").contains("write \"localhost:5000/**\""));
    }

    #[test]
    fn first_component_is_a_host_by_the_rule_of_references() {
        // The same text as a pattern and as an image names the same registry.
        for image in [
            "Localhost/app",
            "LOCALHOST:5000/app",
            "Corp.IO/app",
            "corp/app",
        ] {
            assert!(m(image, image), "{image}");
        }
        assert!(err("Corp/app").contains("upper-case letters"));
    }

    #[test]
    fn invalid_tag_globs_and_text_are_rejected() {
        assert!(err("nginx:").contains("empty tag"));
        assert!(err("nginx:-rc").contains("can match no tag"));
        assert!(err(&format!("nginx:{}", "a".repeat(129))).contains("can match no tag"));
        assert!(m(
            &format!("nginx:{}*", "a".repeat(128)),
            &format!("nginx:{}", "a".repeat(128))
        ));
        assert!(err("nginx:.*").contains("can match no tag"));
        assert!(err("nginx:a+*").contains("can match no tag"));
        assert!(err("").contains("empty"));
        assert!(err(":1.0").contains("missing image name"));
        assert!(err(" nginx").contains("whitespace"));
        assert!(err("nginx\t").contains("whitespace"));
        assert!(err("ngіnx").contains("non-ASCII"));
        assert!(err("ghcr.io:0/a").contains("port"));
        assert!(err("bad_host.io/a").contains("not a valid host name"));
    }

    #[test]
    fn display_and_as_str_are_the_text_as_written() {
        assert_eq!(
            pat("Index.Docker.IO/nginx*").as_str(),
            "Index.Docker.IO/nginx*"
        );
        assert_eq!(pat("nginx:1.*").to_string(), "nginx:1.*");
        assert_eq!(pat("*.corp.io:*/team/*").as_str(), "*.corp.io:*/team/*");
    }

    #[test]
    fn set_returns_every_matching_id_and_only_those() {
        let patterns = [
            "registry.corp.example/**",
            "registry.corp.example/team/*",
            "registry.corp.example:5000/**",
            "*.corp.example/**",
            "*/**/app",
            "nginx:1.*",
            "*:latest",
            "docker.io/**",
        ];
        let set = PatternSet::new(patterns.iter().enumerate().map(|(i, p)| (pat(p), i)));
        assert_eq!(set.len(), patterns.len());
        assert!(!set.is_empty());
        assert!(PatternSet::new([]).is_empty());
        let ids = |image: &str| {
            let mut out = Vec::new();
            set.matches_into(&img(image), &mut out);
            out.sort_unstable();
            out.dedup();
            out
        };
        assert_eq!(ids("registry.corp.example/team/app:v1"), vec![0, 1, 3, 4]);
        assert_eq!(ids("registry.corp.example:5000/team/app:v1"), vec![2, 4]);
        assert_eq!(ids("nginx:1.25"), vec![5, 7]);
        assert_eq!(ids("nginx"), vec![6, 7]);
        assert_eq!(ids("corp.example/x:v1"), Vec::<usize>::new());
    }

    #[test]
    fn set_keeps_ids_of_duplicate_patterns() {
        let set = PatternSet::new([
            (pat("nginx"), 1),
            (pat("docker.io/library/nginx"), 2),
            (pat("nginx:*"), 3),
        ]);
        let mut out = Vec::new();
        set.matches_into(&img("nginx:1"), &mut out);
        out.sort_unstable();
        assert_eq!(out, vec![1, 2, 3]);
    }

    #[test]
    fn set_walk_is_bounded_on_pathological_double_stars() {
        // Many nested `**` against a deep path: without memoization the walk is
        // exponential; with it this finishes instantly and still finds the match.
        let deep = format!("corp.io/{}", ["a"; 60].join("/"));
        let failing = format!("corp.io/{}b", "**/a/".repeat(30));
        let matching = format!("corp.io/{}a", "**/a/".repeat(30));
        let set = PatternSet::new([(pat(&failing), 1), (pat(&matching), 2)]);
        let mut out = Vec::new();
        set.matches_into(&img(&deep), &mut out);
        assert_eq!(out, vec![2]);
        assert!(!pat(&failing).is_match(&img(&deep)));
        assert!(pat(&matching).is_match(&img(&deep)));
    }

    // ---- property tests -------------------------------------------------

    /// Deliberately simple matcher: normalizes the pattern text by the documented
    /// rules and matches it against the normalized image with plain recursion.
    fn reference_match(pattern: &str, image: &Reference) -> bool {
        fn glob(p: &[u8], s: &[u8]) -> bool {
            match p.split_first() {
                None => s.is_empty(),
                Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
                Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
            }
        }
        fn components(p: &[&str], s: &[&str]) -> bool {
            match p.split_first() {
                None => s.is_empty(),
                Some((&"**", rest)) => (0..=s.len()).any(|k| components(rest, &s[k..])),
                Some((c, rest)) => {
                    !s.is_empty()
                        && glob(c.as_bytes(), s[0].as_bytes())
                        && components(rest, &s[1..])
                }
            }
        }
        let (rest, digest) = pattern
            .split_once('@')
            .map_or((pattern, None), |(r, d)| (r, Some(d)));
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if digest.is_some() && image.digest() != digest {
            return false;
        }
        let tag_ok = match (tag, image.tag()) {
            (None, _) => true,
            (Some(t), Some(it)) => glob(t.as_bytes(), it.as_bytes()),
            (Some(t), None) => t.bytes().all(|b| b == b'*'),
        };
        if !tag_ok {
            return false;
        }
        if name == "*" || name == "**" {
            return true;
        }
        let (registry, mut path) = match name.split_once('/') {
            Some((f, r)) if f.contains(['.', ':', '*']) || f == "localhost" => {
                (f.to_ascii_lowercase(), r.to_string())
            }
            _ => ("docker.io".to_string(), name.to_string()),
        };
        let (mut host, port) = match registry.rfind(':') {
            Some(i) if !registry[i..].contains(']') => (
                registry[..i].to_string(),
                Some(registry[i + 1..].to_string()),
            ),
            _ => (registry.clone(), None),
        };
        let port = port.filter(|p| p != "443");
        if port.as_deref().is_none_or(|p| p == "*")
            && (host == "index.docker.io" || host == "registry-1.docker.io")
        {
            host = "docker.io".to_string();
        }
        if host == "docker.io" && port.is_none() && !path.contains('/') && path != "**" {
            path = format!("library/{path}");
        }
        let host_ok = if host == "*" {
            true
        } else {
            let name_ok = match host.strip_prefix('*') {
                Some(dot_suffix) => {
                    image.host().len() > dot_suffix.len() && image.host().ends_with(dot_suffix)
                }
                None => image.host() == host,
            };
            let port_ok = match port.as_deref() {
                None => image.port().is_none(),
                Some("*") => true,
                Some(p) => image.port().map(|ip| ip.to_string()).as_deref() == Some(p),
            };
            name_ok && port_ok
        };
        let pattern_path: Vec<&str> = path.split('/').collect();
        let image_path: Vec<&str> = image.path().split('/').collect();
        host_ok && components(&pattern_path, &image_path)
    }

    fn pattern_text() -> impl Strategy<Value = String> {
        let host = prop_oneof![
            Just(""),
            Just("*/"),
            Just("docker.io/"),
            Just("index.docker.io/"),
            Just("Docker.IO/"),
            Just("*.example.com/"),
            Just("*.example.com:*/"),
            Just("example.com/"),
            Just("Example.com:5000/"),
            Just("example.com:443/"),
            Just("b.example.com/"),
            Just("localhost:*/"),
            Just("localhost/"),
            Just("[::1]:5000/"),
        ];
        let component = prop_oneof![
            Just("a"),
            Just("b"),
            Just("ab"),
            Just("*"),
            Just("**"),
            Just("a*"),
            Just("*b"),
            Just("library"),
            Just("x.y")
        ];
        let tag = prop_oneof![
            Just(""),
            Just(":*"),
            Just(":1.*"),
            Just(":latest"),
            Just(":*.0"),
            Just(":v1")
        ];
        let digest = prop_oneof![
            Just(String::new()),
            Just(format!("@{D1}")),
            Just(format!("@{D2}"))
        ];
        let whole = prop_oneof![Just("*"), Just("**")];
        prop_oneof![
            4 => (host, prop::collection::vec(component, 1..4), tag.clone(), digest.clone())
                .prop_map(|(h, c, t, d)| format!("{h}{}{t}{d}", c.join("/"))),
            1 => (whole, tag, digest).prop_map(|(w, t, d)| format!("{w}{t}{d}")),
        ]
    }

    fn image_text() -> impl Strategy<Value = String> {
        let host = prop_oneof![
            Just(""),
            Just("docker.io/"),
            Just("index.docker.io/"),
            Just("example.com/"),
            Just("a.example.com/"),
            Just("b.a.example.com/"),
            Just("b.example.com/"),
            Just("example.com:5000/"),
            Just("a.example.com:5000/"),
            Just("example.com:443/"),
            Just("localhost/"),
            Just("localhost:5000/"),
            Just("[::1]:5000/"),
            Just("evil-example.com/"),
            Just("example.com.evil.io/"),
        ];
        let component = prop_oneof![
            Just("a"),
            Just("b"),
            Just("ab"),
            Just("ba"),
            Just("library"),
            Just("x.y")
        ];
        let tag = prop_oneof![
            Just(""),
            Just(":latest"),
            Just(":1.0"),
            Just(":1.2"),
            Just(":v1"),
            Just(":2.0")
        ];
        let digest = prop_oneof![
            Just(String::new()),
            Just(format!("@{D1}")),
            Just(format!("@{D2}"))
        ];
        (host, prop::collection::vec(component, 1..5), tag, digest)
            .prop_map(|(h, c, t, d)| format!("{h}{}{t}{d}", c.join("/")))
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in prop_oneof![any::<String>(), "\\PC{0,40}", pattern_text()]) {
            let _ = Pattern::parse(&s);
        }

        #[test]
        fn is_match_agrees_with_simple_reference_matcher(p in pattern_text(), i in image_text()) {
            let image = img(&i);
            // Some generated patterns are invalid (`**/a`, `x.y` alone): skipped.
            if let Ok(pattern) = Pattern::parse(&p) {
                prop_assert_eq!(pattern.is_match(&image), reference_match(&p, &image), "{} vs {} ({})", p, i, image);
            }
        }

        #[test]
        fn set_agrees_with_linear_scan(
            patterns in prop::collection::vec(pattern_text(), 1..24),
            images in prop::collection::vec(image_text(), 1..8),
        ) {
            let parsed: Vec<(Pattern, usize)> = patterns
                .iter()
                .filter_map(|p| Pattern::parse(p).ok())
                .enumerate()
                .map(|(id, p)| (p, id))
                .collect();
            let set = PatternSet::new(parsed.clone());
            for i in &images {
                let image = img(i);
                let mut got = Vec::new();
                set.matches_into(&image, &mut got);
                got.sort_unstable();
                got.dedup();
                let want: Vec<usize> = parsed.iter().filter(|(p, _)| p.is_match(&image)).map(|(_, id)| *id).collect();
                prop_assert_eq!(got, want, "image {}", image);
            }
        }
    }
}
