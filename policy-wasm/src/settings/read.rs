//! Reading settings JSON into the schema types, in place, with every error.
//!
//! [`FromJson`] reads one value from a [`json::Reader`]; the `schema!` macro
//! writes it for the schema's structs and enums from their plain declaration
//! (see `schema.rs`), so adding a field is one line there. Reading never
//! stops at the first mistake: an error is recorded in [`Errors`] with the
//! byte offset of the value it is about, the value is left out, and reading
//! goes on. A struct with a bad field is left out of its list or map; at
//! the top level the bad field takes its default, so the rest of the
//! settings is still checked. Paths (`rules[2].images[0]`) are worked out
//! from the offsets only when errors are reported, so valid settings never
//! pay for them.

use crate::json::{self, Kind, Reader, Skip};
use std::borrow::Cow;
use std::fmt::Write as _;

/// At most this many errors are reported (then "and N more").
pub(crate) const REPORTED_ERRORS: usize = 20;
/// At most this many are kept to sort into document order; the rest are counted.
const KEPT_ERRORS: usize = 10_000;

/// What reading a value gave.
pub(crate) enum Got<T> {
    /// The value, without errors.
    Value(T),
    /// The value with its bad parts left out (the errors are recorded).
    Partial(T),
    /// Nothing usable (the error is recorded).
    Invalid,
}

/// The text is not JSON: reading cannot go on (the error is recorded).
pub(crate) struct Syntax;

pub(crate) type Read<T> = Result<Got<T>, Syntax>;

/// A value of the settings schema.
pub(crate) trait FromJson<'a>: Sized {
    /// Reads the next value; records its errors in `errors`.
    fn read(r: &mut Reader<'a>, errors: &mut Errors) -> Read<Self>;
}

/// One settings error.
struct Error {
    /// Offset of the value it is about (or of the object missing `field`).
    at: usize,
    /// The field of the object at `at` the error is about.
    field: Option<&'static str>,
    /// Where it sorts, when not at `at` (an unknown field: at its key).
    order: Option<usize>,
    /// `text` starts with the rest of the path (`.keys[0]: ...`, `: ...`):
    /// an error of a value read by hand (see [`Errors::below`]).
    below: bool,
    text: String,
}

/// The errors found so far.
#[derive(Default)]
pub(crate) struct Errors {
    kept: Vec<Error>,
    dropped: usize,
}

impl Errors {
    pub(crate) fn is_empty(&self) -> bool {
        self.kept.is_empty() && self.dropped == 0
    }

    /// An error about the value at offset `at`.
    pub(crate) fn at(&mut self, at: usize, text: impl Into<String>) {
        self.push(at, None, text.into());
    }

    /// An error about `field` of the object at offset `at` (present or not).
    pub(crate) fn field(&mut self, at: usize, field: &'static str, text: impl Into<String>) {
        self.push(at, Some(field), text.into());
    }

    /// An error of the value at offset `at` that was read by hand
    /// ([`Raw`]), written `REST: TEXT` with REST the path below that value
    /// (`.keys[0]`, or nothing: `: TEXT`).
    pub(crate) fn below(&mut self, at: usize, text: String) {
        self.push_ordered(at, None, None, true, text);
    }

    fn push(&mut self, at: usize, field: Option<&'static str>, text: String) {
        self.push_ordered(at, field, None, false, text);
    }

    fn push_ordered(
        &mut self,
        at: usize,
        field: Option<&'static str>,
        order: Option<usize>,
        below: bool,
        text: String,
    ) {
        if self.kept.len() < KEPT_ERRORS {
            self.kept.push(Error {
                at,
                field,
                order,
                below,
                text,
            });
        } else {
            self.dropped += 1;
        }
    }

    pub(crate) fn syntax(&mut self, e: json::Error) -> Syntax {
        self.at(e.at, format!("invalid JSON: {}", e.what));
        Syntax
    }

    /// `invalid type: integer `5`, expected a string`, for the value `r` is
    /// at, which is then passed over.
    pub(crate) fn invalid_type<T>(&mut self, r: &mut Reader<'_>, expected: &str) -> Read<T> {
        let at = r.pos();
        let found = unexpected(r).map_err(|e| self.syntax(e))?;
        self.at(at, format!("invalid type: {found}, expected {expected}"));
        Ok(Got::Invalid)
    }

    /// The report: one error per line, `PATH: TEXT`, in document order,
    /// at most [`REPORTED_ERRORS`] then `and N more`. PATH is `settings` for
    /// the top level.
    pub(crate) fn report(self, text: &str) -> String {
        let mut located: Vec<(usize, String, Error)> = self
            .kept
            .into_iter()
            .map(|e| {
                let (order, path) = locate(text, e.at, e.field);
                (e.order.unwrap_or(order), path, e)
            })
            .collect();
        located.sort_by_key(|(order, _, _)| *order);
        let total = located.len() + self.dropped;
        let mut out = String::new();
        for (_, path, e) in located.iter().take(REPORTED_ERRORS) {
            if !out.is_empty() {
                out.push('\n');
            }
            let path = if path.is_empty() { "settings" } else { path };
            let colon = if e.below { "" } else { ": " };
            let _ = write!(out, "{path}{colon}{}", e.text);
        }
        if total > REPORTED_ERRORS {
            let _ = write!(out, "\nand {} more", total - REPORTED_ERRORS);
        }
        out
    }
}

/// serde's words for what was found instead (`string "x"`, `integer `5``,
/// `sequence`, ...); passes over the value.
fn unexpected(r: &mut Reader<'_>) -> Result<String, json::Error> {
    Ok(match r.peek()? {
        Kind::String => format!("string {:?}", r.string()?),
        Kind::Number => {
            let n = r.number(Skip::Value)?;
            match n.contains(['.', 'e', 'E']) || n.parse::<i64>().is_err() {
                true => format!("floating point `{n}`"),
                false => format!("integer `{n}`"),
            }
        }
        Kind::Bool => format!("boolean `{}`", r.bool()?),
        Kind::Null => r.null().map(|()| "null".to_string())?,
        Kind::Array => r.skip(Skip::Value).map(|()| "sequence".to_string())?,
        Kind::Object => r.skip(Skip::Value).map(|()| "map".to_string())?,
    })
}

/// Where an error goes: the offset it is sorted by (its value, or the
/// field's value when the error names a present field) and its path.
fn locate(text: &str, at: usize, field: Option<&'static str>) -> (usize, String) {
    let mut r = Reader::new(text);
    let mut path = Vec::new();
    // Not found in valid JSON: the top level; in broken JSON (a syntax
    // error): the object or list where reading broke off.
    let found = descend(&mut r, at, &mut path);
    if found == Ok(false) {
        path.clear();
    }
    let found = found == Ok(true);
    let mut order = at;
    if let Some(field) = field {
        if found {
            if let Ok(Some(value)) = field_offset(&mut r, field) {
                order = value;
            }
        }
        path.push(Segment::Key(Cow::Borrowed(field)));
    }
    (order, render(&path))
}

enum Segment<'t> {
    Key(Cow<'t, str>),
    Index(usize),
}

/// Walks from the value `r` is at down to the value starting at `target`,
/// pushing the keys and indices passed through. `Ok(true)` once found.
fn descend<'t>(
    r: &mut Reader<'t>,
    target: usize,
    path: &mut Vec<Segment<'t>>,
) -> Result<bool, json::Error> {
    let kind = r.peek()?;
    if r.pos() == target {
        return Ok(true);
    }
    match kind {
        Kind::Object => {
            let mut entries = r.object()?;
            while let Some(key) = r.key(&mut entries)? {
                path.push(Segment::Key(key));
                if descend(r, target, path)? {
                    return Ok(true);
                }
                path.pop();
            }
        }
        Kind::Array => {
            let mut entries = r.array()?;
            let mut i = 0;
            while r.item(&mut entries)? {
                path.push(Segment::Index(i));
                if descend(r, target, path)? {
                    return Ok(true);
                }
                path.pop();
                i += 1;
            }
        }
        _ => r.skip(Skip::Raw)?,
    }
    Ok(false)
}

/// The offset of `field`'s value in the object `r` is at, if present.
fn field_offset(r: &mut Reader<'_>, field: &str) -> Result<Option<usize>, json::Error> {
    if r.peek()? != Kind::Object {
        return Ok(None);
    }
    let mut entries = r.object()?;
    let mut found = None;
    while let Some(key) = r.key(&mut entries)? {
        r.peek()?;
        if key == field {
            found = Some(r.pos());
        }
        r.skip(Skip::Raw)?;
    }
    Ok(found)
}

/// `rules[2].verify.anyOf[0]`; a key that is not a plain name is quoted
/// (`keys["my key"]`), so the path always ends at the first `: `.
fn render(path: &[Segment<'_>]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
            Segment::Key(key) if is_plain_key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Key(key) => {
                let _ = write!(out, "[{}]", serde_json::Value::from(key.as_ref()));
            }
        }
    }
    out
}

fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A string of the settings, with the offset it was read at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Text<'a> {
    pub(crate) text: Cow<'a, str>,
    /// Offset of the string in the settings text (for errors about it).
    pub(crate) at: usize,
}

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl<'a> FromJson<'a> for Text<'a> {
    fn read(r: &mut Reader<'a>, errors: &mut Errors) -> Read<Self> {
        match r.peek().map_err(|e| errors.syntax(e))? {
            Kind::String => {
                let at = r.pos();
                let text = r.string().map_err(|e| errors.syntax(e))?;
                Ok(Got::Value(Text { text, at }))
            }
            _ => errors.invalid_type(r, "a string"),
        }
    }
}

/// A value read by hand from a `serde_json::Value` (`attestation`,
/// `notation`), with its offset: its errors go to [`Errors::below`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Raw {
    pub(crate) value: serde_json::Value,
    pub(crate) at: usize,
}

impl<'a> FromJson<'a> for Raw {
    fn read(r: &mut Reader<'a>, errors: &mut Errors) -> Read<Self> {
        r.peek().map_err(|e| errors.syntax(e))?;
        let at = r.pos();
        let text = r.raw(Skip::Value).map_err(|e| errors.syntax(e))?;
        match serde_json::from_str(text) {
            Ok(value) => Ok(Got::Value(Raw { value, at })),
            Err(e) => {
                errors.at(at, format!("invalid JSON: {e}"));
                Ok(Got::Invalid)
            }
        }
    }
}

/// Reads one of `words` (`(ident, value)`, the ident written lower-case
/// first: `GithubActions` is `"githubActions"`), with serde's errors.
pub(crate) fn read_word<'a, T: Copy>(
    r: &mut Reader<'a>,
    errors: &mut Errors,
    words: &[(&str, T)],
) -> Read<T> {
    let expected = || one_of(words.iter().map(|(w, _)| variant_name(w)));
    if !r.peek().is_ok_and(|k| k == Kind::String) {
        return errors.invalid_type(r, &expected());
    }
    let word = match Text::read(r, errors)? {
        Got::Value(word) => word,
        _ => return Ok(Got::Invalid),
    };
    if let Some((_, value)) = words.iter().find(|(w, _)| is_variant(&word, w)) {
        return Ok(Got::Value(*value));
    }
    errors.at(
        word.at,
        format!("unknown variant `{}`, expected {}", &*word, expected()),
    );
    Ok(Got::Invalid)
}

impl<'a> FromJson<'a> for bool {
    fn read(r: &mut Reader<'a>, errors: &mut Errors) -> Read<Self> {
        match r.peek().map_err(|e| errors.syntax(e))? {
            Kind::Bool => Ok(Got::Value(r.bool().map_err(|e| errors.syntax(e))?)),
            _ => errors.invalid_type(r, "a boolean"),
        }
    }
}

impl<'a> FromJson<'a> for i64 {
    fn read(r: &mut Reader<'a>, errors: &mut Errors) -> Read<Self> {
        let mut ahead = r.clone();
        match r.peek().map_err(|e| errors.syntax(e))? {
            Kind::Number => match ahead.integer().map_err(|e| errors.syntax(e))? {
                Ok(n) => {
                    *r = ahead;
                    Ok(Got::Value(n))
                }
                Err(_) => errors.invalid_type(r, "an integer (i64)"),
            },
            _ => errors.invalid_type(r, "an integer (i64)"),
        }
    }
}

impl<'a, T: FromJson<'a>> FromJson<'a> for Option<T> {
    fn read(r: &mut Reader<'a>, errors: &mut Errors) -> Read<Self> {
        if r.peek().map_err(|e| errors.syntax(e))? == Kind::Null {
            r.null().map_err(|e| errors.syntax(e))?;
            return Ok(Got::Value(None));
        }
        Ok(match T::read(r, errors)? {
            Got::Value(v) => Got::Value(Some(v)),
            Got::Partial(v) => Got::Partial(Some(v)),
            Got::Invalid => Got::Invalid,
        })
    }
}

/// A list: items with errors are left out (the list is then partial).
impl<'a, T: FromJson<'a>> FromJson<'a> for Vec<T> {
    fn read(r: &mut Reader<'a>, errors: &mut Errors) -> Read<Self> {
        if r.peek().map_err(|e| errors.syntax(e))? != Kind::Array {
            return errors.invalid_type(r, "a list");
        }
        let mut items = Vec::new();
        let mut complete = true;
        let mut entries = r.array().map_err(|e| errors.syntax(e))?;
        while r.item(&mut entries).map_err(|e| errors.syntax(e))? {
            match T::read(r, errors)? {
                Got::Value(v) => items.push(v),
                Got::Partial(_) | Got::Invalid => complete = false,
            }
        }
        Ok(whole_or_partial(items, complete))
    }
}

/// An object of user-named entries (`keys`, `annotations`), in document
/// order. A repeated name counts with its last value, as in a JSON map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Map<'a, T> {
    /// `None`: the entry had errors (so its name is known, its value is not).
    pub(crate) entries: Vec<(Text<'a>, Option<T>)>,
}

impl<T> Default for Map<'_, T> {
    fn default() -> Self {
        Map {
            entries: Vec::new(),
        }
    }
}

impl<'a, T> Map<'a, T> {
    /// The entries without errors.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Text<'a>, &T)> {
        self.entries
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    }
}

impl<'a, T: FromJson<'a>> FromJson<'a> for Map<'a, T> {
    fn read(r: &mut Reader<'a>, errors: &mut Errors) -> Read<Self> {
        if r.peek().map_err(|e| errors.syntax(e))? != Kind::Object {
            return errors.invalid_type(r, "a map");
        }
        let mut map = Map::default();
        let mut complete = true;
        let mut entries = r.object().map_err(|e| errors.syntax(e))?;
        loop {
            let at = r.pos();
            let Some(key) = r.key(&mut entries).map_err(|e| errors.syntax(e))? else {
                break;
            };
            // The key's offset: skip the whitespace and the `,` before it.
            let at = at + r.text()[at..].find('"').unwrap_or(0);
            let value = match T::read(r, errors)? {
                Got::Value(v) => Some(v),
                Got::Partial(_) | Got::Invalid => {
                    complete = false;
                    None
                }
            };
            let name = Text { text: key, at };
            match map.entries.iter_mut().find(|(k, _)| *k.text == *name.text) {
                Some(entry) => *entry = (name, value),
                None => map.entries.push((name, value)),
            }
        }
        Ok(whole_or_partial(map, complete))
    }
}

fn whole_or_partial<T>(value: T, complete: bool) -> Got<T> {
    if complete {
        Got::Value(value)
    } else {
        Got::Partial(value)
    }
}

/// Whether the JSON name `key` is the field `snake` (`image_regex` is written `imageRegex`).
pub(crate) fn is_field(key: &str, snake: &str) -> bool {
    // Most fields differ in their first letter or their length.
    if key.as_bytes().first() != snake.as_bytes().first() {
        return false;
    }
    let (mut k, mut s) = (key.bytes(), snake.bytes());
    loop {
        match (k.next(), s.next()) {
            (None, None) => return true,
            (Some(kb), Some(b'_')) => match s.next() {
                Some(sb) if kb == sb.to_ascii_uppercase() && sb.is_ascii_lowercase() => {}
                _ => return false,
            },
            (Some(kb), Some(sb)) if kb == sb => {}
            _ => return false,
        }
    }
}

/// The JSON name of a field: `image_regex` -> `imageRegex`.
pub(crate) fn json_name(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

/// The JSON name of an enum variant: `GithubActions` -> `githubActions`.
pub(crate) fn variant_name(ident: &str) -> String {
    let mut out = ident.to_string();
    if let Some(first) = out.get_mut(..1) {
        first.make_ascii_lowercase();
    }
    out
}

/// Whether `key` is the variant `ident` (`githubActions` is `GithubActions`).
pub(crate) fn is_variant(key: &str, ident: &str) -> bool {
    key.len() == ident.len()
        && key.as_bytes().first().map(u8::to_ascii_uppercase) == ident.as_bytes().first().copied()
        && key.as_bytes()[1..] == ident.as_bytes()[1..]
}

/// "`a`, `b`, `c`": the names an error says were expected.
pub(crate) fn one_of(names: impl Iterator<Item = String>) -> String {
    let names: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    match names.len() {
        0 => "nothing".to_string(),
        1 => names[0].clone(),
        2 => format!("{} or {}", names[0], names[1]),
        _ => format!("one of {}", names.join(", ")),
    }
}

/// Reads an object into `fields` (the snake_case names of a struct's
/// fields, in order): calls `read(index)` for each field present, records
/// unknown and repeated fields, and says whether everything was read without
/// errors. The struct written by `schema!` owns the slots.
pub(crate) fn read_fields<'a>(
    r: &mut Reader<'a>,
    errors: &mut Errors,
    fields: &[&str],
    mut read: impl FnMut(usize, &mut Reader<'a>, &mut Errors) -> Result<bool, Syntax>,
) -> Result<Option<bool>, Syntax> {
    if r.peek().map_err(|e| errors.syntax(e))? != Kind::Object {
        errors.invalid_type::<()>(r, "an object")?;
        return Ok(None);
    }
    let at = r.pos();
    let mut complete = true;
    let mut seen = 0u64;
    let mut entries = r.object().map_err(|e| errors.syntax(e))?;
    while let Some(key) = r.key(&mut entries).map_err(|e| errors.syntax(e))? {
        match fields.iter().position(|f| is_field(&key, f)) {
            Some(i) if seen & (1 << i) == 0 => {
                seen |= 1 << i;
                complete &= read(i, r, errors)?;
            }
            found => {
                unexpected_field(r, errors, fields, at, &key, found.is_some())?;
                complete = false;
            }
        }
    }
    Ok(Some(complete))
}

/// A repeated or unknown field of the object at `at`: reported and skipped.
/// Out of [`read_fields`], which has a copy per schema struct.
fn unexpected_field(
    r: &mut Reader<'_>,
    errors: &mut Errors,
    fields: &[&str],
    at: usize,
    key: &str,
    repeated: bool,
) -> Result<(), Syntax> {
    r.peek().map_err(|e| errors.syntax(e))?;
    let text = match repeated {
        true => format!("duplicate field `{key}`"),
        false => format!(
            "unknown field `{key}`, expected {}",
            one_of(fields.iter().map(|f| json_name(f)))
        ),
    };
    // Reported at its object, ordered by the field.
    errors.push_ordered(at, None, Some(r.pos()), false, text);
    r.skip(Skip::Value).map_err(|e| errors.syntax(e))
}

/// Reads one field's value into its slot: `Ok(false)` when it had errors.
pub(crate) fn read_slot<'a, T: FromJson<'a>>(
    slot: &mut Option<T>,
    r: &mut Reader<'a>,
    errors: &mut Errors,
) -> Result<bool, Syntax> {
    Ok(match T::read(r, errors)? {
        Got::Value(v) => {
            *slot = Some(v);
            true
        }
        Got::Partial(v) => {
            *slot = Some(v);
            false
        }
        Got::Invalid => false,
    })
}

/// Declares schema types and their [`FromJson`]: a struct (fields read from
/// their camelCase names; every field defaults when absent, unless written
/// `= required`, or `= default(EXPR)`), a struct gets `at`, the offset of its
/// object, for errors; an enum of lower-case-first words (`Allow` is
/// `"allow"`); or an enum of one-key objects (`{"cosign": {...}}` is
/// `Cosign(CosignSettings)`).
macro_rules! schema {
    () => {};
    (@field $field:ident, $complete:ident, $errors:ident, $at:ident) => {
        $field.unwrap_or_default()
    };
    (@field $field:ident, $complete:ident, $errors:ident, $at:ident, default($default:expr)) => {
        $field.unwrap_or_else(|| $default)
    };
    (@field $field:ident, $complete:ident, $errors:ident, $at:ident, required) => {
        match $field {
            Some(v) => v,
            None => {
                $errors.at($at, format!("missing field `{}`", $crate::settings::read::json_name(stringify!($field))));
                $complete = false;
                Default::default()
            }
        }
    };
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident<$lt:lifetime> { $($body:tt)* }
        $($rest:tt)*
    ) => {
        schema!(@struct [$(#[$attr])*] $vis $name [<$lt>] $lt { $($body)* });
        schema!($($rest)*);
    };
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident { $($body:tt)* }
        $($rest:tt)*
    ) => {
        schema!(@struct [$(#[$attr])*] $vis $name [] 'a { $($body)* });
        schema!($($rest)*);
    };
    (
        @struct [$($attr:tt)*] $vis:vis $name:ident [$($generics:tt)*] $lt:lifetime {
            $(
                $(#[$field_attr:meta])*
                $field:ident : $ty:ty $(= $how:ident $(($default:expr))?)?
            ),* $(,)?
        }
    ) => {
        $($attr)*
        #[derive(Debug, Clone, Default)]
        $vis struct $name $($generics)* {
            $(
                $(#[$field_attr])*
                pub(crate) $field: $ty,
            )*
            /// Offset of the object in the settings text (for errors about it).
            #[allow(dead_code)] // not every struct has errors of its own
            pub(crate) at: usize,
        }

        impl<$lt> $crate::settings::read::FromJson<$lt> for $name $($generics)* {
            fn read(
                r: &mut $crate::json::Reader<$lt>,
                errors: &mut $crate::settings::read::Errors,
            ) -> $crate::settings::read::Read<Self> {
                use $crate::settings::read::{read_fields, read_slot, Got};
                const FIELDS: &[&str] = &[$(stringify!($field)),*];
                $(let mut $field: Option<$ty> = None;)*
                let _ = r.peek();
                let at = r.pos();
                let complete = read_fields(r, errors, FIELDS, |index, r, errors| {
                    let mut i = 0;
                    $(
                        if index == i {
                            return read_slot(&mut $field, r, errors);
                        }
                        i += 1;
                    )*
                    let _ = i;
                    Ok(true)
                })?;
                #[allow(unused_mut)] // assigned only when a field is required
                let Some(mut complete) = complete else {
                    return Ok(Got::Invalid);
                };
                let value = $name {
                    $($field: schema!(@field $field, complete, errors, at $(, $how $(($default))?)?),)*
                    at,
                };
                Ok(if complete { Got::Value(value) } else { Got::Partial(value) })
            }
        }
    };
    (
        $(#[$attr:meta])*
        $vis:vis enum $name:ident {
            $($(#[$variant_attr:meta])* $variant:ident),* $(,)?
        }
        $($rest:tt)*
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name {
            $($(#[$variant_attr])* $variant,)*
        }

        impl<'a> $crate::settings::read::FromJson<'a> for $name {
            fn read(
                r: &mut $crate::json::Reader<'a>,
                errors: &mut $crate::settings::read::Errors,
            ) -> $crate::settings::read::Read<Self> {
                $crate::settings::read::read_word(
                    r,
                    errors,
                    &[$((stringify!($variant), $name::$variant)),*],
                )
            }
        }
        schema!($($rest)*);
    };
    (
        $(#[$attr:meta])*
        $vis:vis enum $name:ident<$lt:lifetime> {
            $($(#[$variant_attr:meta])* $variant:ident($payload:ty)),* $(,)?
        }
        $($rest:tt)*
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone)]
        $vis enum $name<$lt> {
            $($(#[$variant_attr])* $variant($payload),)*
        }

        impl<$lt> $crate::settings::read::FromJson<$lt> for $name<$lt> {
            fn read(
                r: &mut $crate::json::Reader<$lt>,
                errors: &mut $crate::settings::read::Errors,
            ) -> $crate::settings::read::Read<Self> {
                use $crate::settings::read::{is_variant, one_of, read_variant, variant_name, FromJson, Got};
                let expected = || one_of([$(stringify!($variant)),*].iter().map(|v| variant_name(v)));
                read_variant(r, errors, &expected, |key, r, errors| {
                    $(
                        if is_variant(key, stringify!($variant)) {
                            return Ok(Some(match <$payload as FromJson>::read(r, errors)? {
                                Got::Value(v) => Got::Value($name::$variant(v)),
                                Got::Partial(v) => Got::Partial($name::$variant(v)),
                                Got::Invalid => Got::Invalid,
                            }));
                        }
                    )*
                    Ok(None)
                })
            }
        }
        schema!($($rest)*);
    };
}
pub(crate) use schema;

/// Reads `{"variant": value}`: exactly one key, which `read` knows
/// (`Ok(None)`: it does not).
pub(crate) fn read_variant<'a, T>(
    r: &mut Reader<'a>,
    errors: &mut Errors,
    expected: &dyn Fn() -> String,
    mut read: impl FnMut(&str, &mut Reader<'a>, &mut Errors) -> Result<Option<Got<T>>, Syntax>,
) -> Read<T> {
    if r.peek().map_err(|e| errors.syntax(e))? != Kind::Object {
        return errors.invalid_type(r, &format!("an object with one key, {}", expected()));
    }
    let at = r.pos();
    let mut got = None;
    let mut entries = r.object().map_err(|e| errors.syntax(e))?;
    let mut keys = 0;
    while let Some(key) = r.key(&mut entries).map_err(|e| errors.syntax(e))? {
        keys += 1;
        if keys > 1 {
            r.skip(Skip::Value).map_err(|e| errors.syntax(e))?;
            continue;
        }
        match read(&key, r, errors)? {
            Some(value) => got = Some(value),
            None => {
                errors.at(
                    at,
                    format!("unknown variant `{key}`, expected {}", expected()),
                );
                r.skip(Skip::Value).map_err(|e| errors.syntax(e))?;
                got = Some(Got::Invalid);
            }
        }
    }
    match (keys, got) {
        (1, Some(got)) => Ok(got),
        _ => {
            errors.at(
                at,
                format!("expected an object with one key, {}", expected()),
            );
            Ok(Got::Invalid)
        }
    }
}
