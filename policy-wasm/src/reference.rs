//! Image reference parsing and normalization (distribution reference grammar).
//!
//! A hand-written parser of the grammar of `github.com/distribution/reference`
//! (no regex: the module is instantiated fresh per admission request, so lazily
//! compiled regexes would be paid on every request). Every image is normalized
//! before any rule looks at it, so that spellings of the same image cannot be
//! used to slip past a pattern: `nginx`, `docker.io/nginx`, `library/nginx`,
//! `index.docker.io/library/nginx`, `registry-1.docker.io/nginx:latest` are all
//! `docker.io/library/nginx:latest`.
//!
//! Anything the grammar does not accept is an error, never "repaired": nothing is
//! trimmed, host lower-casing is ASCII-only, and a name the container runtime
//! would reject is rejected here too.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

/// The registry of images without a host.
pub(crate) const DOCKER_HUB: &str = "docker.io";
/// Other names of Docker Hub, normalized to [`DOCKER_HUB`].
const DOCKER_HUB_ALIASES: [&str; 2] = ["index.docker.io", "registry-1.docker.io"];
/// Namespace of Docker Hub's official images (`nginx` = `library/nginx`).
pub(crate) const OFFICIAL_NAMESPACE: &str = "library";
/// Port dropped by normalization: `host:443` and `host` are the same registry.
const HTTPS_PORT: u16 = 443;
/// Longest repository path (the name without its registry, `library/`
/// included): distribution's `Parse` counts the path only, never the
/// registry or the tag (v0.6.0, commit aaca75e "Exclude domain from name
/// length check"), and kubelet and containerd parse with it.
pub(crate) const PATH_LENGTH_MAX: usize = 255;
/// go-digest's algorithm names: v1.0.0, which every runtime vendors,
/// registers sha256, sha384 and sha512; blake3 is its optional package.
const DIGEST_ALGORITHMS: [&str; 4] = ["sha256", "sha384", "sha512", "blake3"];
/// Longest tag (the grammar's `[\w][\w.-]{0,127}`).
pub(crate) const TAG_LENGTH_MAX: usize = 128;
/// The tag of an image written with neither tag nor digest.
const DEFAULT_TAG: &str = "latest";

/// A parsed, normalized image reference.
///
/// `nginx` -> host `docker.io`, path `library/nginx`, tag `latest` (implicit).
/// Rules only ever see this form, so the spellings of one image cannot be
/// told apart, and its text is the only thing the host is asked about.
///
/// ```
/// use imagegate_policy::reference::Reference;
///
/// let r = Reference::parse("Index.Docker.IO/nginx")?;
/// assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
/// assert_eq!((r.host(), r.path(), r.tag()), ("docker.io", "library/nginx", Some("latest")));
///
/// let r = Reference::parse("registry.corp.example:443/team/app@sha256:1111111111111111111111111111111111111111111111111111111111111111")?;
/// assert_eq!((r.port(), r.tag()), (None, None), ":443 is dropped, no implicit tag with a digest");
///
/// // Nothing is repaired: what the runtime could read differently is an error.
/// assert!(Reference::parse("nginx ").is_err());
/// assert!(Reference::parse("Registry/app").unwrap_err().reason.contains("Docker Hub namespace"));
/// # Ok::<(), imagegate_policy::reference::ParseError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The normalized form, `host[:port]/path[:tag][@digest]`; the parts are
    /// ranges of it (one allocation per image).
    text: String,
    host_end: usize,
    port: Option<u16>,
    path: Range<usize>,
    tag: Option<Range<usize>>,
    digest: Option<Range<usize>>,
}

/// Why an image string is not a valid reference. The reason does not repeat the
/// image: callers show it next to the image as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What is wrong, e.g. `path component "Nginx" has upper-case letters`.
    pub reason: String,
    image_id: bool,
}

impl ParseError {
    fn new(reason: impl Into<String>) -> ParseError {
        ParseError {
            reason: reason.into(),
            image_id: false,
        }
    }

    /// The string is an image ID or ID prefix (`sha256:<hex>`, 64 bare hex
    /// digits): grammatical or not, the runtime reads it as a cached image,
    /// not as a name. The reason says so and what to write instead.
    ///
    /// ```
    /// use imagegate_policy::reference::Reference;
    ///
    /// let e = Reference::parse("sha256:4a2b").unwrap_err();
    /// assert!(e.is_image_id() && e.reason.starts_with("is an image ID"));
    /// assert!(Reference::parse("redis:7").is_ok(), "a hex tag of another name");
    /// ```
    pub fn is_image_id(&self) -> bool {
        self.image_id
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ParseError {}

impl Reference {
    /// Parses and normalizes `image`.
    pub fn parse(image: &str) -> Result<Reference, ParseError> {
        check_characters(image)?;
        if let Some(rest) = without_scheme(image) {
            return Err(ParseError::new(format!(
                "an image reference has no URL scheme: write {rest}"
            )));
        }
        if is_image_id(image) {
            return Err(ParseError {
                reason: "is an image ID (or ID prefix), not an image reference: the node's runtime \
                         would run whichever cached image has that ID, whatever registry it came from; \
                         write the image as registry/repository@sha256:<manifest digest>"
                    .to_string(),
                image_id: true,
            });
        }
        let (rest, digest) = match split_byte(image, b'@') {
            Some((rest, digest)) => {
                check_digest(digest)?;
                (rest, Some(digest))
            }
            None => (image, None),
        };
        let (name, tag) = split_tag(rest);
        if let Some(tag) = tag {
            check_tag(tag)?;
        }
        if name.is_empty() {
            return Err(ParseError::new("missing repository name"));
        }
        let (host, port, path) = match split_byte(name, b'/') {
            Some((first, remainder)) if is_registry(first) => {
                let (host, port) = parse_registry(first)?;
                // `Registry/app` and `registry:443/app` name the host
                // `registry`, but written normalized (`registry/app`) they
                // would mean Docker Hub's `registry/app`: the host would
                // verify another image. Deny what cannot be written unambiguously.
                if port.is_none() && !is_registry(&host) {
                    return Err(ParseError::new(format!(
                        "registry {first:?} normalizes to {host:?}, which reads as a Docker Hub namespace: write the registry with its domain or a port"
                    )));
                }
                (host, port, remainder)
            }
            _ => (Cow::Borrowed(DOCKER_HUB), None, name),
        };
        for component in components(path) {
            check_path_component(component)?;
        }
        let official = is_docker_hub(&host, port) && !has_byte(path, b'/');
        let path_len = path.len()
            + if official {
                OFFICIAL_NAMESPACE.len() + 1
            } else {
                0
            };
        if path_len > PATH_LENGTH_MAX {
            return Err(ParseError::new(format!(
                "repository path is {path_len} characters long once normalized (the registry not counted), the limit is {PATH_LENGTH_MAX}"
            )));
        }
        let tag = match (tag, digest) {
            (None, None) => Some(DEFAULT_TAG),
            (tag, _) => tag,
        };
        let mut text = String::with_capacity(
            host.len()
                + port.map_or(0, |p| 1 + decimal_len(p))
                + 1
                + path_len
                + tag.map_or(0, |t| 1 + t.len())
                + digest.map_or(0, |d| 1 + d.len()),
        );
        text.push_str(&host);
        let host_end = text.len();
        if let Some(p) = port {
            text.push(':');
            push_decimal(&mut text, p);
        }
        text.push('/');
        let path_start = text.len();
        if official {
            text.push_str(OFFICIAL_NAMESPACE);
            text.push('/');
        }
        text.push_str(path);
        let path = path_start..text.len();
        let part = |text: &mut String, separator: char, part: Option<&str>| {
            part.map(|part| {
                text.push(separator);
                let start = text.len();
                text.push_str(part);
                start..text.len()
            })
        };
        let tag = part(&mut text, ':', tag);
        let digest = part(&mut text, '@', digest);
        Ok(Reference {
            text,
            host_end,
            port,
            path,
            tag,
            digest,
        })
    }
    /// Lower-case host without port: `docker.io`, `127.0.0.1`, `[::1]`.
    pub fn host(&self) -> &str {
        &self.text[..self.host_end]
    }
    /// Port, `None` when absent (`:443` is dropped by normalization).
    pub fn port(&self) -> Option<u16> {
        self.port
    }
    /// Repository path: `library/nginx`.
    pub fn path(&self) -> &str {
        &self.text[self.path.clone()]
    }
    /// The tag: explicit, or `latest` when the image has neither tag nor digest;
    /// `None` for a digest-only image.
    pub fn tag(&self) -> Option<&str> {
        self.tag.clone().map(|t| &self.text[t])
    }
    /// `sha256:<hex>` when present.
    pub fn digest(&self) -> Option<&str> {
        self.digest.clone().map(|d| &self.text[d])
    }
}

/// The normalized form: `docker.io/library/nginx:latest`, `host:5000/a/b@sha256:...`.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `image` as written with its digest set to `digest` (an existing `@...` is
/// replaced, the tag is kept): `nginx:1.0` -> `nginx:1.0@sha256:...`.
pub(crate) fn pin(image: &str, digest: &str) -> String {
    let name = image.split_once('@').map_or(image, |(n, _)| n);
    format!("{name}@{digest}")
}

/// Rejects what no part of the grammar accepts, with the most useful reason:
/// empty, whitespace / control characters (nothing is trimmed), non-ASCII
/// (look-alike letters are never folded).
pub(crate) fn check_characters(text: &str) -> Result<(), ParseError> {
    if text.is_empty() {
        return Err(ParseError::new("empty"));
    }
    // What every valid reference is made of; the rest says what is wrong.
    if text.bytes().all(|b| b.is_ascii_graphic()) {
        return Ok(());
    }
    if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
        let what = if c.is_whitespace() {
            "whitespace"
        } else {
            "a control character"
        };
        return Err(ParseError::new(format!(
            "contains {what} ({})",
            c.escape_unicode()
        )));
    }
    if let Some(c) = text.chars().find(|c| !c.is_ascii()) {
        return Err(ParseError::new(format!(
            "contains the non-ASCII character {c:?} ({})",
            c.escape_unicode()
        )));
    }
    Ok(())
}

/// `https://ghcr.io/corp/app` -> `ghcr.io/corp/app`: the text after a URL
/// scheme (`scheme://`, RFC 3986's scheme grammar), when it has one. Neither
/// an image nor a pattern can have one; without this the scheme reads as a
/// host and `//` as a port (`port "" must be a number`).
pub(crate) fn without_scheme(text: &str) -> Option<&str> {
    // The first `://`, found a byte at a time: `split_once("://")` builds a
    // substring searcher per call (2% of a pattern's cost in the module).
    let bytes = text.as_bytes();
    let colon =
        (0..bytes.len()).find(|&i| bytes[i] == b':' && bytes[i + 1..].starts_with(b"//"))?;
    let (scheme, rest) = (&text[..colon], &text[colon + 3..]);
    let mut bytes = scheme.bytes();
    let first = bytes.next()?;
    (first.is_ascii_alphabetic()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
    .then_some(rest)
}

/// Splits `name[:tag]`: the tag follows the last `:` after the last `/`
/// (a `:` before a `/` is a port).
pub(crate) fn split_tag(s: &str) -> (&str, Option<&str>) {
    match s.bytes().rposition(|b| b == b':' || b == b'/') {
        Some(colon) if s.as_bytes()[colon] == b':' => (&s[..colon], Some(&s[colon + 1..])),
        _ => (s, None),
    }
}

/// Whether `s` has the ASCII byte `b` (a byte loop, see [`split_byte`]).
pub(crate) fn has_byte(s: &str, b: u8) -> bool {
    s.bytes().any(|x| x == b)
}

/// `s.split_once(b)` for an ASCII `b`: these splits run for every pattern
/// of the settings on every request, and a byte loop beats the char
/// searcher on such short strings.
pub(crate) fn split_byte(s: &str, b: u8) -> Option<(&str, &str)> {
    let i = s.bytes().position(|x| x == b)?;
    Some((&s[..i], &s[i + 1..]))
}

/// The `/`-separated components of `s` (`s.split('/')`, a byte at a time).
pub(crate) fn components(s: &str) -> Split<'_> {
    Split {
        rest: Some(s),
        separator: b'/',
    }
}

/// `s.split(separator)` for an ASCII separator, a byte at a time.
#[derive(Clone)]
pub(crate) struct Split<'s> {
    rest: Option<&'s str>,
    separator: u8,
}

impl<'s> Iterator for Split<'s> {
    type Item = &'s str;

    fn next(&mut self) -> Option<&'s str> {
        let rest = self.rest?;
        Some(match split_byte(rest, self.separator) {
            Some((component, after)) => {
                self.rest = Some(after);
                component
            }
            None => {
                self.rest = None;
                rest
            }
        })
    }
}

/// docker's splitDockerDomain: the first `/`-component names a registry iff it
/// contains `.` or `:`, is `localhost`, or has upper-case letters (upper case is
/// invalid in a path, so it must be a host). The one host rule: patterns and
/// the converters read their first component with it too.
pub(crate) fn is_registry(first: &str) -> bool {
    looks_like_host(first) || first.bytes().any(|b| b.is_ascii_uppercase())
}

/// The part of [`is_registry`] that does not depend on case: a `.` or `:`,
/// or `localhost` in any case. A pattern without `/` that looks like a host
/// is a registry written without its path.
pub(crate) fn looks_like_host(first: &str) -> bool {
    first.bytes().any(|b| b == b'.' || b == b':') || first.eq_ignore_ascii_case("localhost")
}

/// Whether the image *as written* names its registry, by CRI-O's rule
/// (containers/image `shortnames.parseUnnormalizedShortName`): a first
/// `/`-component with a `.` or `:`, or exactly `localhost`. Anything else is
/// a short name CRI-O resolves through its aliases and search registries;
/// that includes `LOCALHOST/app` and `library/nginx`, which distribution
/// reads as a host and as Docker Hub.
pub(crate) fn is_fully_qualified(image: &str) -> bool {
    image
        .split_once('/')
        .is_some_and(|(first, _)| first.contains(['.', ':']) || first == "localhost")
}

/// True for the normalized Docker Hub registry (the only one that gets `library/`).
pub(crate) fn is_docker_hub(host: &str, port: Option<u16>) -> bool {
    host == DOCKER_HUB && port.is_none()
}

/// `host[:port]` -> normalized (host, port): lower-case host, `:443` dropped,
/// Docker Hub aliases folded, IPv6 literal in canonical form.
pub(crate) fn parse_registry(registry: &str) -> Result<(Cow<'_, str>, Option<u16>), ParseError> {
    let (host, port) = split_port(registry)?;
    let port = port.map(parse_port).transpose()?.flatten();
    let mut host = parse_host(host)?;
    if port.is_none() && DOCKER_HUB_ALIASES.contains(&&*host) {
        host = Cow::Borrowed(DOCKER_HUB);
    }
    Ok((host, port))
}

/// Splits `host[:port]`, where host may be a bracketed IPv6 literal.
pub(crate) fn split_port(registry: &str) -> Result<(&str, Option<&str>), ParseError> {
    let host_end = if registry.starts_with('[') {
        match registry.bytes().position(|b| b == b']') {
            Some(close) => close + 1,
            None => {
                return Err(ParseError::new(format!(
                    "IPv6 host {registry:?} has no closing ']'"
                )))
            }
        }
    } else {
        registry
            .bytes()
            .position(|b| b == b':')
            .unwrap_or(registry.len())
    };
    let (host, after) = registry.split_at(host_end);
    if after.is_empty() {
        return Ok((host, None));
    }
    match after.strip_prefix(':') {
        Some(port) => Ok((host, Some(port))),
        None => Err(ParseError::new(format!(
            "unexpected {after:?} after host {host:?}"
        ))),
    }
}

/// A port number 1..=65535 (leading zeros are accepted and dropped); `None`
/// for 443, the port every registry is reached on without one.
pub(crate) fn parse_port(port: &str) -> Result<Option<u16>, ParseError> {
    let invalid = || ParseError::new(format!("port {port:?} must be a number from 1 to 65535"));
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    match port.parse::<u16>() {
        Ok(HTTPS_PORT) => Ok(None),
        Ok(p) if p != 0 => Ok(Some(p)),
        _ => Err(invalid()),
    }
}

/// The eight groups of an IPv6 address as the reference grammar writes it:
/// groups of 1-4 hex digits and at most one `::` (no zone, no dotted IPv4
/// part), as `std::net::Ipv6Addr` parses them. IPv4-mapped addresses
/// (`::ffff:0:0/96`) are refused: their canonical text has dots, which the
/// grammar excludes. Not std's parser and printer: they cost the module 7 KB.
fn ipv6_groups(text: &str) -> Option<[u16; 8]> {
    // Appends the groups of `part` (`a:b:c`, or nothing) to `out`.
    fn groups(part: &str, out: &mut Vec<u16>) -> Option<()> {
        if part.is_empty() {
            return Some(());
        }
        for group in part.split(':') {
            if !(1..=4).contains(&group.len()) {
                return None;
            }
            let mut value = 0u16;
            for b in group.bytes() {
                value = value << 4 | char::from(b).to_digit(16)? as u16;
            }
            out.push(value);
        }
        Some(())
    }
    let mut head = Vec::with_capacity(8);
    let mut tail = Vec::with_capacity(8);
    match text.split_once("::") {
        None => groups(text, &mut head)?,
        Some((before, after)) => {
            groups(before, &mut head)?;
            groups(after, &mut tail)?;
            // `::` stands for at least one group.
            if head.len() + tail.len() > 7 {
                return None;
            }
        }
    }
    if !text.contains("::") && head.len() != 8 {
        return None;
    }
    let mut out = [0u16; 8];
    out[..head.len()].copy_from_slice(&head);
    out[8 - tail.len()..].copy_from_slice(&tail);
    match out {
        [0, 0, 0, 0, 0, 0xffff, _, _] => None,
        _ => Some(out),
    }
}

/// RFC 5952 text of an IPv6 address, as `std::net::Ipv6Addr` prints it:
/// lower-case hex without leading zeros, the first longest run of two or
/// more zero groups written `::`.
fn ipv6_text(groups: &[u16; 8]) -> String {
    let (mut start, mut len) = (0, 0);
    let mut run = 0;
    for (i, &g) in groups.iter().enumerate() {
        run = if g == 0 { run + 1 } else { 0 };
        if run > len {
            (start, len) = (i + 1 - run, run);
        }
    }
    let hex = |part: &[u16]| {
        part.iter()
            .map(|g| format!("{g:x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    match len > 1 {
        true => format!("{}::{}", hex(&groups[..start]), hex(&groups[start + len..])),
        false => hex(groups),
    }
}

/// A host name (DNS labels of letters, digits and inner `-`, or an IPv4
/// address) or a bracketed IPv6 literal; returned lower-case and canonical
/// (borrowed when it already is).
pub(crate) fn parse_host(host: &str) -> Result<Cow<'_, str>, ParseError> {
    if host.starts_with('[') {
        let inner = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or_default();
        // Canonical text (RFC 5952) so `[0:0::1]` and `[::1]` are one host.
        return match ipv6_groups(inner) {
            Some(groups) => Ok(Cow::Owned(format!("[{}]", ipv6_text(&groups)))),
            None => Err(ParseError::new(format!(
                "{host:?} is not a valid IPv6 host"
            ))),
        };
    }
    if host.is_empty() {
        return Err(ParseError::new("empty registry host"));
    }
    // Labels of letters, digits and inner dashes, in one pass.
    let bytes = host.as_bytes();
    let mut label = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let bad = match b {
            b'.' => i == label || bytes[i - 1] == b'-',
            b'-' => i == label,
            _ => !b.is_ascii_alphanumeric(),
        };
        if bad {
            return Err(bad_label(host, label));
        }
        if b == b'.' {
            label = i + 1;
        }
    }
    if label == bytes.len() || bytes[bytes.len() - 1] == b'-' {
        return Err(bad_label(host, label));
    }
    Ok(match host.bytes().any(|b| b.is_ascii_uppercase()) {
        true => Cow::Owned(host.to_ascii_lowercase()),
        false => Cow::Borrowed(host),
    })
}

/// `registry host "a..b" is not a valid host name (label "")`, for the
/// label of `host` starting at `start`.
fn bad_label(host: &str, start: usize) -> ParseError {
    let label = host[start..].split('.').next().unwrap_or_default();
    ParseError::new(format!(
        "registry host {host:?} is not a valid host name (label {label:?})"
    ))
}

/// One path component: `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`.
pub(crate) fn check_path_component(component: &str) -> Result<(), ParseError> {
    if component.is_empty() {
        return Err(ParseError::new(
            "empty path component (\"//\" or a trailing \"/\")",
        ));
    }
    if component.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ParseError::new(format!(
            "path component {component:?} has upper-case letters"
        )));
    }
    if let Some(at) = component.bytes().position(|b| !is_path_char(char::from(b))) {
        let c = component[at..].chars().next().unwrap_or_default();
        return Err(ParseError::new(format!(
            "path component {component:?} contains the invalid character {c:?}"
        )));
    }
    let bytes = component.as_bytes();
    let mut i = 0;
    loop {
        let run = bytes[i..]
            .iter()
            .take_while(|b| is_lower_alnum(**b))
            .count();
        if run == 0 {
            return Err(ParseError::new(format!(
                "path component {component:?} must start and end with a letter or digit, \
                 and separate them by one '.', one or two '_', or dashes"
            )));
        }
        i += run;
        let Some(&separator) = bytes.get(i) else {
            return Ok(());
        };
        let max = match separator {
            b'.' => 1,
            b'_' => 2,
            _ => usize::MAX,
        };
        let len = bytes[i..].iter().take_while(|b| **b == separator).count();
        if len > max {
            return Err(ParseError::new(format!(
                "path component {component:?} has too many consecutive {:?}",
                separator as char
            )));
        }
        i += len;
    }
}

/// Characters allowed in path components (patterns check globs against this set too).
pub(crate) fn is_path_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// Characters allowed in tags (`\w`, `.`, `-`).
pub(crate) fn is_tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// `[\w][\w.-]{0,127}`.
pub(crate) fn check_tag(tag: &str) -> Result<(), ParseError> {
    if tag.is_empty() {
        return Err(ParseError::new("empty tag after ':'"));
    }
    if tag.len() > TAG_LENGTH_MAX {
        return Err(ParseError::new(format!(
            "tag is {} characters long, the limit is {TAG_LENGTH_MAX}",
            tag.len()
        )));
    }
    if let Some(at) = tag.bytes().position(|b| !is_tag_char(char::from(b))) {
        let c = tag[at..].chars().next().unwrap_or_default();
        return Err(ParseError::new(format!(
            "tag {tag:?} contains the invalid character {c:?}"
        )));
    }
    if tag.starts_with(['.', '-']) {
        return Err(ParseError::new(format!(
            "tag {tag:?} must start with a letter, digit or '_'"
        )));
    }
    Ok(())
}

/// `sha256:` + 64 or `sha512:` + 128 lower-case hex digits: the one digest
/// rule, for images, patterns and every digest a host answers (a digest the
/// engine writes into an object must be one an image could carry).
pub(crate) fn check_digest(digest: &str) -> Result<(), ParseError> {
    let valid = match digest.split_once(':') {
        Some(("sha256", hex)) => hex.len() == 64 && hex.bytes().all(is_lower_hex),
        Some(("sha512", hex)) => hex.len() == 128 && hex.bytes().all(is_lower_hex),
        _ => false,
    };
    if valid {
        Ok(())
    } else {
        Err(ParseError::new(format!(
            "digest {digest:?} must be sha256:<64 hex> or sha512:<128 hex> (lower-case)"
        )))
    }
}

fn decimal_len(n: u16) -> usize {
    match n {
        0..10 => 1,
        10..100 => 2,
        100..1000 => 3,
        1000..10000 => 4,
        _ => 5,
    }
}

/// Appends `n` in decimal (no formatting machinery on the way of every image).
fn push_decimal(text: &mut String, n: u16) {
    let mut power = 10u16.pow(decimal_len(n) as u32 - 1);
    while power > 0 {
        text.push(char::from(b'0' + (n / power % 10) as u8));
        power /= 10;
    }
}

/// What a runtime reads as a cached image's ID instead of a name: containerd's
/// CRI resolves a string that is not a known name as an ID (`LocalResolve`),
/// and go-digest's `digestset.Lookup` takes `<algorithm>:<hex>` of *any*
/// length as a unique prefix of one (a single digit suffices); CRI-O takes a
/// bare 64-hex string as one. Kubelet passes both on (`sha256:<hex>` is
/// Docker Hub's `library/sha256` with a tag to it). Hex of either case and
/// any length counts: what is never a sensible name is denied, whatever the
/// runtime's exact rule. A name with `/` or `@`, or any other `name:hex`
/// (`redis:7`, `node:20`), is a reference.
fn is_image_id(image: &str) -> bool {
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    match image.split_once(':') {
        Some((algorithm, encoded)) => DIGEST_ALGORITHMS.contains(&algorithm) && hex(encoded),
        None => image.len() == 64 && hex(image),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SHA256: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    const SHA512: &str = "sha512:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\
                          ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    fn norm(image: &str) -> String {
        match Reference::parse(image) {
            Ok(r) => r.to_string(),
            Err(e) => panic!("{image:?} should parse: {e}"),
        }
    }

    #[test]
    fn a_url_scheme_is_named_as_such() {
        assert_eq!(
            reason("https://ghcr.io/corp/app:1"),
            "an image reference has no URL scheme: write ghcr.io/corp/app:1"
        );
        assert_eq!(without_scheme("oci+tar://x"), Some("x"));
        // Not a scheme: a port, a tag, a digest.
        for image in ["ghcr.io:443/a", "a:b", "1x://y", "a@sha256:x"] {
            assert_eq!(without_scheme(image), None, "{image}");
        }
    }

    fn reason(image: &str) -> String {
        match Reference::parse(image) {
            Ok(r) => panic!("{image:?} should not parse, got {r}"),
            Err(e) => e.reason,
        }
    }

    fn parts(image: &str) -> (String, Option<u16>, String, Option<String>, Option<String>) {
        let r = Reference::parse(image).unwrap();
        (
            r.host().to_string(),
            r.port(),
            r.path().to_string(),
            r.tag().map(str::to_string),
            r.digest().map(str::to_string),
        )
    }

    #[test]
    fn bare_name_is_official_docker_hub_image_with_latest() {
        let r = Reference::parse("nginx").unwrap();
        assert_eq!(r.host(), "docker.io");
        assert_eq!(r.port(), None);
        assert_eq!(r.path(), "library/nginx");
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.digest(), None);
        assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
    }

    #[test]
    fn docker_hub_spellings_are_one_image() {
        for image in [
            "nginx",
            "nginx:latest",
            "library/nginx",
            "docker.io/nginx",
            "docker.io/library/nginx",
            "index.docker.io/nginx",
            "index.docker.io/library/nginx",
            "registry-1.docker.io/nginx",
            "registry-1.docker.io/library/nginx:latest",
            "DOCKER.IO/nginx",
            "Index.Docker.IO/library/nginx",
            "docker.io:443/nginx",
            "index.docker.io:443/library/nginx",
        ] {
            assert_eq!(norm(image), "docker.io/library/nginx:latest", "{image}");
        }
    }

    #[test]
    fn docker_hub_namespaced_image_keeps_its_namespace() {
        assert_eq!(norm("bitnami/nginx"), "docker.io/bitnami/nginx:latest");
        assert_eq!(
            norm("index.docker.io/bitnami/nginx:1.0"),
            "docker.io/bitnami/nginx:1.0"
        );
    }

    #[test]
    fn docker_hub_alias_with_other_port_is_another_registry() {
        assert_eq!(
            norm("index.docker.io:5000/nginx"),
            "index.docker.io:5000/nginx:latest"
        );
        assert_eq!(norm("docker.io:5000/nginx"), "docker.io:5000/nginx:latest");
    }

    #[test]
    fn other_registries_get_no_library_prefix() {
        assert_eq!(norm("ghcr.io/app"), "ghcr.io/app:latest");
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
    }

    #[test]
    fn host_is_lower_cased() {
        assert_eq!(norm("NGINX.IO/app"), "nginx.io/app:latest");
        assert_eq!(
            norm("Registry.Corp.Example:5000/team/app:v1"),
            "registry.corp.example:5000/team/app:v1"
        );
    }

    #[test]
    fn upper_case_first_component_is_a_host() {
        // docker's splitDockerDomain: upper case cannot be a path, so it is a host.
        // ... but its normalized form would read as Docker Hub's
        // `uppercase/lowercase`, so it is unparsable (denied), never verified
        // as another image.
        assert!(reason("Uppercase/lowercase:tag").contains("reads as a Docker Hub namespace"));
        assert!(reason("myregistry:443/app").contains("reads as a Docker Hub namespace"));
        assert_eq!(norm("myregistry:5000/app"), "myregistry:5000/app:latest");
        assert_eq!(norm("LOCALHOST/app"), "localhost/app:latest");
        assert_eq!(norm("Docker.IO/nginx"), "docker.io/library/nginx:latest");
    }

    #[test]
    fn port_443_is_dropped_other_ports_kept() {
        assert_eq!(parts("ghcr.io:443/app").1, None);
        assert_eq!(norm("ghcr.io:443/app"), "ghcr.io/app:latest");
        assert_eq!(parts("ghcr.io:80/app").1, Some(80));
        assert_eq!(norm("ghcr.io:80/app"), "ghcr.io:80/app:latest");
        assert_eq!(parts("ghcr.io:5000/app").1, Some(5000));
        assert_eq!(norm("ghcr.io:05000/app"), "ghcr.io:5000/app:latest");
    }

    #[test]
    fn invalid_ports_are_rejected() {
        for image in [
            "host:0/app",
            "host:65536/app",
            "host:123456/app",
            "host:/app",
            "host:abc/app",
            "host:-1/app",
        ] {
            assert!(reason(image).contains("port"), "{image}: {}", reason(image));
        }
        assert_eq!(parts("host:65535/app").1, Some(65535));
    }

    #[test]
    fn localhost_with_and_without_port() {
        assert_eq!(
            parts("localhost:5000/app"),
            (
                "localhost".into(),
                Some(5000),
                "app".into(),
                Some("latest".into()),
                None
            )
        );
        assert_eq!(parts("localhost/app").0, "localhost");
        // A single component is never a host: this is Docker Hub's library/localhost.
        assert_eq!(norm("localhost"), "docker.io/library/localhost:latest");
        assert_eq!(norm("localhost:5000"), "docker.io/library/localhost:5000");
    }

    #[test]
    fn ipv6_hosts() {
        assert_eq!(
            parts("[::1]:5000/app"),
            (
                "[::1]".into(),
                Some(5000),
                "app".into(),
                Some("latest".into()),
                None
            )
        );
        assert_eq!(norm("[2001:db8::1]/repo"), "[2001:db8::1]/repo:latest");
        assert_eq!(
            norm("[2001:DB8::1]:5000/repo"),
            "[2001:db8::1]:5000/repo:latest"
        );
        assert_eq!(
            norm("[0:0:0:0:0:0:0:1]:5000/repo"),
            "[::1]:5000/repo:latest"
        );
        assert_eq!(
            norm("[2001:db8:1:2:3:4:5:6]/repo:tag"),
            "[2001:db8:1:2:3:4:5:6]/repo:tag"
        );
        for image in [
            "[2001:db8::1]",
            "[2001:db8::1]:5000",
            "[2001:db8::1]:tag",
            "[fe80::1%eth0]:5000/repo",
            "[fe80::1%@invalidzone]:5000/repo",
            "[::ffff:1.2.3.4]/repo",
            "[::ffff:102:304]/repo",
            "[:::]/repo",
            "[::1/repo",
            "[::1]x/repo",
            "[]/repo",
        ] {
            assert!(Reference::parse(image).is_err(), "{image}");
        }
    }

    #[test]
    fn tag_and_digest_are_both_kept() {
        let image = format!("app:latest@{SHA256}");
        assert_eq!(
            parts(&image),
            (
                "docker.io".into(),
                None,
                "library/app".into(),
                Some("latest".into()),
                Some(SHA256.into())
            )
        );
        assert_eq!(
            norm(&image),
            format!("docker.io/library/app:latest@{SHA256}")
        );
    }

    #[test]
    fn digest_only_has_no_tag() {
        let r = Reference::parse(&format!("ghcr.io/app@{SHA256}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some(SHA256));
        assert_eq!(r.to_string(), format!("ghcr.io/app@{SHA256}"));
        assert_eq!(
            Reference::parse(&format!("app@{SHA512}")).unwrap().digest(),
            Some(SHA512)
        );
    }

    #[test]
    fn invalid_digests_are_rejected() {
        let expected = "must be sha256:<64 hex> or sha512:<128 hex>";
        for digest in [
            "sha256:ffffffffffffffffffffffffffffffffff",
            "invaliddigest:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "sha256:FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
            "SHA256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "sha256:gfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "sha512:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "sha384:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "sha256:",
            "",
        ] {
            assert!(reason(&format!("repo@{digest}")).contains(expected), "{digest}");
        }
        assert!(reason(&format!("repo@{SHA256}@{SHA256}")).contains(expected));
    }

    #[test]
    fn tags_follow_the_grammar() {
        assert_eq!(parts("lowercase:Uppercase").3.as_deref(), Some("Uppercase"));
        assert_eq!(parts("a:_x").3.as_deref(), Some("_x"));
        assert_eq!(parts("a:1.0-rc_1").3.as_deref(), Some("1.0-rc_1"));
        assert!(reason("a:").contains("empty tag"));
        assert!(reason("a:.x").contains("must start"));
        assert!(reason("a:-x").contains("must start"));
        assert!(reason("a:x+y").contains("invalid character"));
        assert!(reason(":justtag").contains("missing repository name"));
        let longest = "t".repeat(128);
        assert_eq!(parts(&format!("a:{longest}")).3, Some(longest.clone()));
        assert!(reason(&format!("a:{longest}t")).contains("limit is 128"));
    }

    #[test]
    fn upper_case_path_is_rejected_with_the_component() {
        assert_eq!(
            reason("Nginx"),
            "path component \"Nginx\" has upper-case letters"
        );
        assert_eq!(
            reason("Uppercase:tag"),
            "path component \"Uppercase\" has upper-case letters"
        );
        assert!(
            reason("test:5000/Uppercase/lowercase:tag").contains("\"Uppercase\" has upper-case")
        );
        assert!(reason("ghcr.io/Org/app").contains("\"Org\" has upper-case"));
    }

    #[test]
    fn whitespace_and_control_characters_are_rejected_not_trimmed() {
        for image in [
            " nginx",
            "nginx ",
            "ng inx",
            "nginx\n",
            "\tnginx",
            "nginx:1.0 ",
            "nginx\u{a0}",
            "nginx\u{2003}",
        ] {
            assert!(reason(image).contains("whitespace"), "{image:?}");
        }
        for image in ["nginx\0", "ngi\u{7f}nx", "nginx\u{1b}[0m"] {
            assert!(reason(image).contains("control character"), "{image:?}");
        }
    }

    #[test]
    fn empty_and_structurally_broken_names_are_rejected() {
        assert_eq!(reason(""), "empty");
        for image in [
            "/",
            "/nginx",
            "nginx/",
            "a//b",
            "ghcr.io/",
            "ghcr.io//app",
            "@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "aa/asdf$$^/aa",
            "a/../b",
            "..",
            "ghcr.io/..",
            "a/./b",
            "ghcr.io/a%2fb",
            "ghcr.io/%61pp",
            "-app",
            "app-",
            "a..b",
            "a___b",
            "a._b",
            "a_-b",
            "foo_bar.com/app",
            "-bad.com/app",
            "bad-.com/app",
            "bad..com/app",
            ".com/app",
            "a.b./app",
        ] {
            assert!(
                Reference::parse(image).is_err(),
                "{image:?} should not parse"
            );
        }
    }

    #[test]
    fn path_separators_follow_the_grammar() {
        for image in ["a.b", "a_b", "a__b", "a-b", "a---b", "a-b_c.d", "0/1/2"] {
            Reference::parse(image).unwrap();
        }
    }

    #[test]
    fn unicode_look_alikes_and_non_ascii_hosts_are_rejected() {
        for image in [
            "ngınx",              // dotless i
            "nginх",              // Cyrillic х
            "gһcr.io/app",        // Cyrillic һ in the host
            "REGİSTRY.io/app",    // would lower-case to ASCII with Unicode folding
            "ghcr.io/app:lаtest", // Cyrillic а in the tag
            "ｎｇｉｎｘ",         // full width
            "ghcr\u{3002}io/app", // ideographic full stop
            "ghcr.io\u{ff0f}app", // full-width solidus
        ] {
            assert!(
                reason(image).contains("non-ASCII"),
                "{image:?}: {}",
                reason(image)
            );
        }
    }

    #[test]
    fn name_length_limit_applies_to_the_path_only() {
        // reference_test.go: 257 characters as written, a path of 257.
        assert!(reason(&format!("{}a:tag", "a/".repeat(128))).contains("limit is 255"));
        // A path of 255 characters: accepted whatever the registry and the
        // tag add (distribution counts neither).
        let path = "a".repeat(255);
        let image = format!("registry.corp.example:5000/{path}:tag-puts-this-over-max");
        assert_eq!(parts(&image).2, path);
        assert!(reason(&format!("registry.corp.example/{path}a")).contains("256 characters"));
        // `library/` counts: ParseNormalizedNamed parses docker.io/library/<name>.
        assert_eq!(parts(&"a".repeat(247)).2.len(), 255);
        assert!(reason(&"a".repeat(248)).contains("256 characters"));
        assert!(reason(&format!("docker.io/{}", "a".repeat(248))).contains("256 characters"));
    }

    #[test]
    fn image_ids_and_id_prefixes_are_not_names() {
        let full = format!("sha256:{}", "f".repeat(64));
        let sha512 = format!("sha512:{}", "a".repeat(128));
        let overlong = format!("sha256:{}", "a".repeat(300));
        let bare = "1".repeat(64);
        let bare_upper = "A".repeat(64);
        for id in [
            full.as_str(),
            "sha256:4a2b",
            "sha256:4",
            "sha256:ABCD",
            "sha384:0123456789",
            "sha512:abc",
            "blake3:abc",
            &sha512,
            &overlong,
            &bare,
            &bare_upper,
        ] {
            let e = Reference::parse(id).unwrap_err();
            assert!(e.is_image_id(), "{id}: {e}");
            assert!(e.reason.contains("registry/repository@sha256:"), "{e}");
        }
        // Names: a hex tag of another name, another algorithm, hex that is
        // not the whole tag, a port-looking tag, a path, a digest, bare hex
        // of another length, a 64-hex name with a tag.
        let digested = format!("sha256@sha256:{}", "f".repeat(64));
        let (short, long, tagged) = (
            "f".repeat(63),
            "f".repeat(65),
            format!("{}:tag", "f".repeat(64)),
        );
        for name in [
            "redis:7",
            "node:20",
            "postgres:16",
            "abcd",
            "deadbeef:cafe",
            "sha1:abcd",
            "md5:abcd",
            "sha256",
            "sha256:latest",
            "sha256:abc-1",
            "registry:5000",
            "localhost:5000",
            "library/sha256:abcd",
            "docker.io/library/sha256:abcd",
            &digested,
            &short,
            &long,
            &tagged,
        ] {
            let parsed = Reference::parse(name);
            assert!(parsed.is_ok(), "{name}: {parsed:?}");
        }
        assert_eq!(norm("sha256:latest"), "docker.io/library/sha256:latest");
        assert_eq!(norm("registry:5000"), "docker.io/library/registry:5000");
        // The normalized form of a name never reads as an ID.
        assert_eq!(norm("library/sha256:abcd"), "docker.io/library/sha256:abcd");
        // Upper-case algorithm names are upper-case paths (kubelet rejects them too).
        assert!(!Reference::parse("SHA256:abcd").unwrap_err().is_image_id());
    }

    /// distribution/reference reference_test.go TestReferenceParse (valid inputs),
    /// normalized with docker's rules: (input, host, port, path, tag, digest).
    #[test]
    fn distribution_reference_test_vectors() {
        type Case<'a> = (
            &'a str,
            &'a str,
            Option<u16>,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
        );
        let cases: &[Case] = &[
            (
                "test_com",
                "docker.io",
                None,
                "library/test_com",
                Some("latest"),
                None,
            ),
            (
                "test.com:tag",
                "docker.io",
                None,
                "library/test.com",
                Some("tag"),
                None,
            ),
            (
                "test.com:5000",
                "docker.io",
                None,
                "library/test.com",
                Some("5000"),
                None,
            ),
            (
                "test.com/repo:tag",
                "test.com",
                None,
                "repo",
                Some("tag"),
                None,
            ),
            (
                "test:5000/repo",
                "test",
                Some(5000),
                "repo",
                Some("latest"),
                None,
            ),
            (
                "test:5000/repo:tag",
                "test",
                Some(5000),
                "repo",
                Some("tag"),
                None,
            ),
            (
                concat!(
                    "test:5000/repo@sha256:",
                    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
                ),
                "test",
                Some(5000),
                "repo",
                None,
                Some(SHA256),
            ),
            (
                concat!(
                    "test:5000/repo:tag@sha256:",
                    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
                ),
                "test",
                Some(5000),
                "repo",
                Some("tag"),
                Some(SHA256),
            ),
            (
                "sub-dom1.foo.com/bar/baz/quux",
                "sub-dom1.foo.com",
                None,
                "bar/baz/quux",
                Some("latest"),
                None,
            ),
            (
                "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
                "sub-dom1.foo.com",
                None,
                "bar/baz/quux",
                Some("some-long-tag"),
                None,
            ),
            (
                "b.gcr.io/test.example.com/my-app:test.example.com",
                "b.gcr.io",
                None,
                "test.example.com/my-app",
                Some("test.example.com"),
                None,
            ),
            (
                "xn--n3h.com/myimage:xn--n3h.com",
                "xn--n3h.com",
                None,
                "myimage",
                Some("xn--n3h.com"),
                None,
            ),
            (
                "foo_bar.com:8080",
                "docker.io",
                None,
                "library/foo_bar.com",
                Some("8080"),
                None,
            ),
            (
                "foo/foo_bar.com:8080",
                "docker.io",
                None,
                "foo/foo_bar.com",
                Some("8080"),
                None,
            ),
            (
                "192.168.1.1",
                "docker.io",
                None,
                "library/192.168.1.1",
                Some("latest"),
                None,
            ),
            (
                "192.168.1.1:tag",
                "docker.io",
                None,
                "library/192.168.1.1",
                Some("tag"),
                None,
            ),
            (
                "192.168.1.1:5000",
                "docker.io",
                None,
                "library/192.168.1.1",
                Some("5000"),
                None,
            ),
            (
                "192.168.1.1/repo",
                "192.168.1.1",
                None,
                "repo",
                Some("latest"),
                None,
            ),
            (
                "192.168.1.1:5000/repo",
                "192.168.1.1",
                Some(5000),
                "repo",
                Some("latest"),
                None,
            ),
            (
                "192.168.1.1:5000/repo:5050",
                "192.168.1.1",
                Some(5000),
                "repo",
                Some("5050"),
                None,
            ),
            (
                "[2001:db8::1]/repo",
                "[2001:db8::1]",
                None,
                "repo",
                Some("latest"),
                None,
            ),
            (
                "[2001:db8::1]:5000/repo:tag",
                "[2001:db8::1]",
                Some(5000),
                "repo",
                Some("tag"),
                None,
            ),
            (
                "[2001:db8::]:5000/repo",
                "[2001:db8::]",
                Some(5000),
                "repo",
                Some("latest"),
                None,
            ),
            (
                "test-com:8080/foo",
                "test-com",
                Some(8080),
                "foo",
                Some("latest"),
                None,
            ),
            (
                "xn--n3h.com:18080/foo",
                "xn--n3h.com",
                Some(18080),
                "foo",
                Some("latest"),
                None,
            ),
            (
                "example.com:8000/named:TAG5",
                "example.com",
                Some(8000),
                "named",
                Some("TAG5"),
                None,
            ),
        ];
        for &(input, host, port, path, tag, digest) in cases {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(
                (r.host(), r.port(), r.path(), r.tag(), r.digest()),
                (host, port, path, tag, digest),
                "{input}"
            );
        }
        let sha512_case = format!("xn--7o8h.com/myimage:xn--7o8h.com@{SHA512}");
        assert_eq!(parts(&sha512_case).4.as_deref(), Some(SHA512));
    }

    /// distribution/reference normalize_test.go: familiar names and their full form.
    #[test]
    fn distribution_normalize_test_vectors() {
        for (input, full) in [
            ("docker/docker", "docker.io/docker/docker:latest"),
            ("library/debian", "docker.io/library/debian:latest"),
            ("debian", "docker.io/library/debian:latest"),
            ("docker.io/docker/docker", "docker.io/docker/docker:latest"),
            (
                "docker.io/library/debian",
                "docker.io/library/debian:latest",
            ),
            ("docker.io/debian", "docker.io/library/debian:latest"),
            (
                "localhost/library/debian",
                "localhost/library/debian:latest",
            ),
            ("localhost/debian", "localhost/debian:latest"),
            (
                "localhost:5000/library/debian",
                "localhost:5000/library/debian:latest",
            ),
            ("localhost:5000/debian", "localhost:5000/debian:latest"),
            (
                "example.com/library/debian",
                "example.com/library/debian:latest",
            ),
            ("example.com/debian", "example.com/debian:latest"),
            (
                "example.com:5000/library/debian",
                "example.com:5000/library/debian:latest",
            ),
            (
                "127.0.0.1/library/debian",
                "127.0.0.1/library/debian:latest",
            ),
            ("127.0.0.1:5000/debian", "127.0.0.1:5000/debian:latest"),
            ("[::1]/debian", "[::1]/debian:latest"),
            (
                "[::1]:5000/library/debian",
                "[::1]:5000/library/debian:latest",
            ),
            ("foo", "docker.io/library/foo:latest"),
            ("library/foo/bar", "docker.io/library/foo/bar:latest"),
            ("store/foo/bar", "docker.io/store/foo/bar:latest"),
            ("bar:latest", "docker.io/library/bar:latest"),
            ("gcr.io/foo/bar:latest", "gcr.io/foo/bar:latest"),
        ] {
            assert_eq!(norm(input), full, "{input}");
        }
    }

    #[test]
    fn pin_replaces_or_adds_the_digest() {
        assert_eq!(pin("nginx:1.0", SHA256), format!("nginx:1.0@{SHA256}"));
        assert_eq!(
            pin(&format!("nginx@{SHA512}"), SHA256),
            format!("nginx@{SHA256}")
        );
        assert_eq!(
            pin("localhost:5000/app", SHA256),
            format!("localhost:5000/app@{SHA256}")
        );
    }

    /// Strings shaped like references, built from every piece of the grammar plus near misses.
    fn grammar_shaped() -> impl Strategy<Value = String> {
        let host = prop_oneof![
            Just(""),
            Just("docker.io/"),
            Just("index.docker.io/"),
            Just("Registry-1.Docker.IO/"),
            Just("ghcr.io/"),
            Just("localhost:5000/"),
            Just("localhost/"),
            Just("LOCALHOST/"),
            Just("a.b:443/"),
            Just("a.b:80/"),
            Just("[::1]:5000/"),
            Just("[2001:DB8::1]/"),
            Just("[::1/"),
            Just("host:0/"),
            Just("a_b.com/"),
        ];
        let component = "[a-z0-9._A-Z-]{0,6}";
        let tag = prop_oneof![Just(String::new()), "[:][A-Za-z0-9_.-]{0,5}"];
        let digest = prop_oneof![
            Just(String::new()),
            Just(format!("@{SHA256}")),
            Just(format!("@{SHA512}")),
            Just("@sha256:abc".to_string()),
        ];
        (host, prop::collection::vec(component, 1..4), tag, digest)
            .prop_map(|(h, comps, t, d)| format!("{h}{}{t}{d}", comps.join("/")))
    }

    /// What std makes of an IPv6 host (the text between the brackets),
    /// which [`parse_host`] must match.
    fn std_ipv6(text: &str) -> Option<String> {
        if !text.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return None;
        }
        let canonical = text.parse::<std::net::Ipv6Addr>().ok()?.to_string();
        (!canonical.contains('.')).then(|| format!("[{canonical}]"))
    }

    /// Addresses as people write them: 0-9 groups (some too long, some
    /// `ffff` for IPv4-mapped ones), maybe with a `::`.
    fn ipv6_shaped() -> impl Strategy<Value = String> {
        let group = prop_oneof![
            "0{1,4}",
            "[0-9a-fA-F]{1,4}",
            Just("ffff".to_string()),
            Just("FFFF".to_string()),
            "[0-9a-f]{5}",
            Just(String::new()),
        ];
        (
            prop::collection::vec(group, 0..10),
            any::<prop::sample::Index>(),
            any::<bool>(),
        )
            .prop_map(|(groups, at, gap)| match gap {
                true => {
                    let i = at.index(groups.len() + 1);
                    format!("{}::{}", groups[..i].join(":"), groups[i..].join(":"))
                }
                false => groups.join(":"),
            })
    }

    /// Valid addresses (mostly zero groups, some `ffff`), written in full,
    /// padded or not, upper or lower case, or with a run of zeros as `::`.
    fn ipv6_valid() -> impl Strategy<Value = String> {
        let group = prop_oneof![3 => Just(0u16), 1 => Just(0xffff), 2 => any::<u16>()];
        (
            prop::array::uniform8(group),
            any::<bool>(),
            any::<bool>(),
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(groups, pad, upper, a, b)| {
                let hex = |gs: &[u16]| {
                    let text = gs
                        .iter()
                        .map(|g| match pad {
                            true => format!("{g:04x}"),
                            false => format!("{g:x}"),
                        })
                        .collect::<Vec<_>>()
                        .join(":");
                    match upper {
                        true => text.to_uppercase(),
                        false => text,
                    }
                };
                let (i, j) = (a.index(9), b.index(9));
                let (i, j) = (i.min(j), i.max(j));
                match i < j && groups[i..j].iter().all(|&g| g == 0) {
                    true => format!("{}::{}", hex(&groups[..i]), hex(&groups[j..])),
                    false => hex(&groups),
                }
            })
    }

    #[test]
    fn ipv6_hosts_in_canonical_form() {
        let host = |text: &str| {
            parse_host(text)
                .map(Cow::into_owned)
                .map_err(|e| e.to_string())
        };
        // The first of two equally long zero runs is the one written `::`.
        assert_eq!(host("[1:0:0:2:0:0:3:4]").as_deref(), Ok("[1::2:0:0:3:4]"));
        assert_eq!(
            host("[1:0:2:0:3:0:4:0]").as_deref(),
            Ok("[1:0:2:0:3:0:4:0]")
        );
        assert_eq!(host("[0000:0:0:0:0:0:0:0]").as_deref(), Ok("[::]"));
        assert_eq!(host("[::FFFE:1:2]").as_deref(), Ok("[::fffe:1:2]"));
        assert_eq!(
            host("[1:2:3:4:5:6:7::]").as_deref(),
            Ok("[1:2:3:4:5:6:7:0]")
        );
        for bad in [
            "[::ffff:1:2]",
            "[0:0:0:0:0:ffff:1:2]",
            "[1:2:3:4:5:6:7:8::]",
            "[]",
            "[1::2::3]",
        ] {
            assert_eq!(
                host(bad),
                Err(format!("{bad:?} is not a valid IPv6 host")),
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn ipv6_hosts_read_and_print_as_std(
            text in prop_oneof![ipv6_valid(), ipv6_shaped(), "[0-9a-fA-F:]{0,41}", "[0:1fF.]{0,20}"],
        ) {
            let ours = parse_host(&format!("[{text}]")).ok().map(Cow::into_owned);
            prop_assert_eq!(ours, std_ipv6(&text), "{}", text);
        }

        #[test]
        fn never_panics_on_arbitrary_strings(s in prop_oneof![any::<String>(), "\\PC{0,40}"]) {
            let _ = Reference::parse(&s);
        }

        #[test]
        fn never_panics_and_is_idempotent_on_grammar_shaped_strings(s in grammar_shaped()) {
            if let Ok(r) = Reference::parse(&s) {
                let again = Reference::parse(&r.to_string());
                prop_assert_eq!(again.as_ref(), Ok(&r), "{} -> {}", s, r);
            }
        }

        #[test]
        fn valid_references_are_idempotent(
            host in prop_oneof![Just(""), Just("Docker.io/"), Just("index.docker.io:443/"), Just("r.io:5000/"), Just("[0::1]:80/")],
            comps in prop::collection::vec("[a-z0-9]{1,3}([._-][a-z0-9]{1,3})?", 1..4),
            tag in prop_oneof![Just(String::new()), "[:][A-Za-z0-9_][A-Za-z0-9_.-]{0,5}"],
            digest in prop_oneof![Just(String::new()), Just(format!("@{SHA256}"))],
        ) {
            let image = format!("{host}{}{tag}{digest}", comps.join("/"));
            let r = Reference::parse(&image).map_err(|e| TestCaseError::fail(format!("{image}: {e}")))?;
            prop_assert_eq!(Reference::parse(&r.to_string()), Ok(r));
        }
    }
}
