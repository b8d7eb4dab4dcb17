//! Reading JSON in place: values are borrowed from the text, nothing is built
//! that the caller does not ask for, and skipping a value costs a scan.
//!
//! The module reads every request's payload (the request, its object and the
//! settings) on every admission, in a fresh instance each time under
//! policy-server, so building serde_json values or owned strings for what the
//! engine never looks at would be paid per request. This reader validates
//! exactly what serde_json validates, in the two ways serde_json reads:
//!
//! - [`Skip::Value`]: as into a `serde_json::Value` (strings must decode, so
//!   no lone surrogate; numbers must be finite; nesting at most 127 deep);
//! - [`Skip::Raw`]: as into a `RawValue` or `IgnoredAny` (escapes are checked
//!   but not decoded, numbers only against the grammar, nesting unbounded).
//!
//! Everything a caller reads ([`Reader::string`], [`Reader::object`], ...) is
//! read as into a `Value`. Strict RFC 8259 otherwise: no comments, no
//! trailing commas, only the four whitespace characters.

use std::borrow::Cow;
use std::fmt;

/// serde_json's recursion limit: 128 levels remaining, one used per level.
const DEPTH_MAX: u32 = 127;

/// Why the text is not the JSON expected, and where (a byte offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Error {
    pub(crate) at: usize,
    pub(crate) what: &'static str,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

/// What the next value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

/// How [`Reader::skip`] validates what it passes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    /// As serde_json reads into a `Value`.
    Value,
    /// As serde_json reads into a `RawValue` or `IgnoredAny`.
    Raw,
}

/// A cursor over one JSON text.
#[derive(Clone)]
pub(crate) struct Reader<'a> {
    text: &'a str,
    pos: usize,
    depth: u32,
}

/// Where it is, not the whole text.
impl fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reader at byte {}", self.pos)
    }
}

/// The state of an object or array being read: whether an entry was read.
#[must_use]
pub(crate) struct Entries {
    first: bool,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(text: &'a str) -> Reader<'a> {
        Reader {
            text,
            pos: 0,
            depth: 0,
        }
    }

    /// The whole text.
    pub(crate) fn text(&self) -> &'a str {
        self.text
    }

    /// Byte offset of the next thing to read (after [`Reader::peek`]: of the next value).
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn error<T>(&self, what: &'static str) -> Result<T, Error> {
        Err(Error { at: self.pos, what })
    }

    fn whitespace(&mut self) {
        let bytes = self.bytes();
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The kind of the next value (skipping whitespace before it).
    pub(crate) fn peek(&mut self) -> Result<Kind, Error> {
        self.whitespace();
        Ok(match self.bytes().get(self.pos) {
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b'"') => Kind::String,
            Some(b'-' | b'0'..=b'9') => Kind::Number,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'n') => Kind::Null,
            Some(_) => return self.error("expected a value"),
            None => return self.error("unexpected end of JSON"),
        })
    }

    /// Moves past `len` bytes the caller knows to be one whole value.
    pub(crate) fn advance(&mut self, len: usize) {
        self.pos += len;
    }

    /// The end of the text: only whitespace may follow the value read.
    pub(crate) fn end(&mut self) -> Result<(), Error> {
        self.whitespace();
        if self.pos == self.text.len() {
            Ok(())
        } else {
            self.error("trailing characters")
        }
    }

    fn literal(&mut self, word: &'static str) -> Result<(), Error> {
        if self.bytes()[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(())
        } else {
            self.error("expected a value")
        }
    }

    /// `null`.
    pub(crate) fn null(&mut self) -> Result<(), Error> {
        self.whitespace();
        self.literal("null")
    }

    /// `true` or `false`.
    pub(crate) fn bool(&mut self) -> Result<bool, Error> {
        match self.peek()? {
            Kind::Bool if self.bytes()[self.pos] == b't' => self.literal("true").map(|()| true),
            Kind::Bool => self.literal("false").map(|()| false),
            _ => self.error("expected a boolean"),
        }
    }

    /// A number's text, checked against the grammar and, with
    /// [`Skip::Value`], finite as an `f64` (serde_json's "number out of range").
    pub(crate) fn number(&mut self, skip: Skip) -> Result<&'a str, Error> {
        self.whitespace();
        let bytes = self.bytes();
        let start = self.pos;
        let mut i = start;
        let digits = |i: &mut usize| {
            let from = *i;
            while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i - from
        };
        if bytes.get(i) == Some(&b'-') {
            i += 1;
        }
        let int_digits = match bytes.get(i) {
            Some(b'0') => {
                i += 1;
                1
            }
            Some(b'1'..=b'9') => digits(&mut i),
            _ => {
                self.pos = i;
                return self.error("invalid number");
            }
        };
        let mut float = false;
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            float = true;
            if digits(&mut i) == 0 {
                self.pos = i;
                return self.error("invalid number");
            }
        }
        if let Some(b'e' | b'E') = bytes.get(i) {
            i += 1;
            float = true;
            if let Some(b'+' | b'-') = bytes.get(i) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                self.pos = i;
                return self.error("invalid number");
            }
        }
        let text = &self.text[start..i];
        // Only long mantissas or written exponents can leave the f64 range.
        if skip == Skip::Value
            && (float || int_digits > 300)
            && (i - start > 300 || text.contains(['e', 'E']))
            && !text.parse::<f64>().is_ok_and(f64::is_finite)
        {
            return self.error("number out of range");
        }
        self.pos = i;
        Ok(text)
    }

    /// An integer that fits an `i64` (serde_json reads `1.0` as a float and
    /// `1e2` too, so neither is one).
    pub(crate) fn integer(&mut self) -> Result<Result<i64, &'a str>, Error> {
        let text = self.number(Skip::Value)?;
        Ok(match text.contains(['.', 'e', 'E']) {
            true => Err(text),
            false => text.parse::<i64>().map_err(|_| text),
        })
    }

    /// A string, decoded: borrowed from the text unless it has escapes.
    pub(crate) fn string(&mut self) -> Result<Cow<'a, str>, Error> {
        let (raw, escaped) = self.raw_string(Skip::Value)?;
        if !escaped {
            return Ok(Cow::Borrowed(raw));
        }
        Ok(Cow::Owned(unescape(raw)))
    }

    /// A string's text between its quotes, escapes left as written, and
    /// whether it has any. With [`Skip::Value`] `\u` escapes must decode.
    pub(crate) fn raw_string(&mut self, skip: Skip) -> Result<(&'a str, bool), Error> {
        self.whitespace();
        let bytes = self.bytes();
        if bytes.get(self.pos) != Some(&b'"') {
            return self.error("expected a string");
        }
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            // The common case: a run of plain characters, eight at a time.
            loop {
                let Some(word) = bytes.get(i..).and_then(|rest| rest.first_chunk::<8>()) else {
                    while bytes
                        .get(i)
                        .is_some_and(|&b| b != b'"' && b != b'\\' && b >= 0x20)
                    {
                        i += 1;
                    }
                    break;
                };
                let special = special_bytes(u64::from_le_bytes(*word));
                if special != 0 {
                    i += special.trailing_zeros() as usize / 8;
                    break;
                }
                i += 8;
            }
            match bytes.get(i) {
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok((&self.text[start..i], escaped));
                }
                Some(b'\\') => {
                    escaped = true;
                    i += 1;
                    match bytes.get(i) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 1,
                        Some(b'u') => {
                            let unit = hex4(bytes, i + 1).ok_or(Error {
                                at: i,
                                what: "invalid \\u escape",
                            })?;
                            i += 5;
                            if skip == Skip::Value && (0xD800..0xE000).contains(&unit) {
                                // A high surrogate must be followed by a low one.
                                let low = match bytes.get(i..i + 2) {
                                    Some(b"\\u") => hex4(bytes, i + 2),
                                    _ => None,
                                };
                                match low {
                                    Some(low)
                                        if unit < 0xDC00 && (0xDC00..0xE000).contains(&low) =>
                                    {
                                        i += 6
                                    }
                                    _ => {
                                        return Err(Error {
                                            at: i,
                                            what: "lone surrogate in \\u escape",
                                        })
                                    }
                                }
                            }
                        }
                        _ => {
                            return Err(Error {
                                at: i,
                                what: "invalid escape",
                            })
                        }
                    }
                }
                Some(_) => {
                    return Err(Error {
                        at: i,
                        what: "control character in string",
                    })
                }
                None => {
                    return Err(Error {
                        at: i,
                        what: "unterminated string",
                    })
                }
            }
        }
    }

    /// Starts reading an object: `{`.
    pub(crate) fn object(&mut self) -> Result<Entries, Error> {
        self.open(b'{', "expected an object")
    }

    /// Starts reading an array: `[`.
    pub(crate) fn array(&mut self) -> Result<Entries, Error> {
        self.open(b'[', "expected a list")
    }

    fn open(&mut self, bracket: u8, what: &'static str) -> Result<Entries, Error> {
        self.whitespace();
        if self.bytes().get(self.pos) != Some(&bracket) {
            return self.error(what);
        }
        if self.depth == DEPTH_MAX {
            return self.error("recursion limit exceeded");
        }
        self.depth += 1;
        self.pos += 1;
        Ok(Entries { first: true })
    }

    /// The next key of the object (its value is to be read or skipped next),
    /// or `None` at its end.
    pub(crate) fn key(&mut self, entries: &mut Entries) -> Result<Option<Cow<'a, str>>, Error> {
        if !self.entry(entries, b'}')? {
            self.depth -= 1;
            return Ok(None);
        }
        self.key_after_entry().map(Some)
    }

    fn key_after_entry(&mut self) -> Result<Cow<'a, str>, Error> {
        let key = self.string()?;
        self.whitespace();
        if self.bytes().get(self.pos) != Some(&b':') {
            return self.error("expected ':'");
        }
        self.pos += 1;
        Ok(key)
    }

    /// Whether the array has another item (to be read or skipped next).
    pub(crate) fn item(&mut self, entries: &mut Entries) -> Result<bool, Error> {
        let more = self.entry(entries, b']')?;
        if !more {
            self.depth -= 1;
        }
        Ok(more)
    }

    /// Moves to the next entry (`false`: past the closing bracket).
    fn entry(&mut self, entries: &mut Entries, close: u8) -> Result<bool, Error> {
        self.whitespace();
        let bytes = self.bytes();
        if entries.first {
            entries.first = false;
            if bytes.get(self.pos) == Some(&close) {
                self.pos += 1;
                return Ok(false);
            }
            return Ok(true);
        }
        match bytes.get(self.pos) {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(&b) if b == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => self.error("expected ',' or the end of the list or object"),
        }
    }

    /// Passes over one value, validating it as `skip` says.
    pub(crate) fn skip(&mut self, skip: Skip) -> Result<(), Error> {
        match self.peek()? {
            Kind::String => self.raw_string(skip).map(drop),
            Kind::Number => self.number(skip).map(drop),
            Kind::Bool => self.bool().map(drop),
            Kind::Null => self.null(),
            Kind::Object | Kind::Array => self.skip_nested(skip),
        }
    }

    /// An object or array, in one loop over its bytes (it runs over every
    /// request's objects): what each level is (object or list) is kept on a
    /// bit stack, so any depth nests without recursing. [`Skip::Raw`] has no
    /// depth limit, as in serde_json.
    fn skip_nested(&mut self, skip: Skip) -> Result<(), Error> {
        #[derive(Clone, Copy, PartialEq, Eq)]
        enum Expect {
            Value,
            ValueOrEnd,
            Key,
            KeyOrEnd,
            CommaOrEnd,
        }
        let bytes = self.bytes();
        let mut levels = 0usize;
        // Bit `k` of the stack: level `k` is an object.
        let mut inline = 0u64;
        let mut spill: Vec<u64> = Vec::new();
        let mut expect = Expect::Value;
        loop {
            self.whitespace();
            let Some(&b) = bytes.get(self.pos) else {
                return self.error("unexpected end of JSON");
            };
            let top_is_object = || match levels.checked_sub(1) {
                Some(k) if k < 64 => inline & (1 << k) != 0,
                Some(k) => spill[(k - 64) / 64] & (1 << ((k - 64) % 64)) != 0,
                None => false,
            };
            match (expect, b) {
                (Expect::Value | Expect::ValueOrEnd, b'{' | b'[') => {
                    if skip == Skip::Value && self.depth as usize + levels >= DEPTH_MAX as usize {
                        return self.error("recursion limit exceeded");
                    }
                    let object = b == b'{';
                    if levels < 64 {
                        inline = inline & !(1 << levels) | (u64::from(object) << levels);
                    } else {
                        let (word, bit) = ((levels - 64) / 64, (levels - 64) % 64);
                        if word == spill.len() {
                            spill.push(0);
                        }
                        spill[word] = spill[word] & !(1 << bit) | (u64::from(object) << bit);
                    }
                    levels += 1;
                    self.pos += 1;
                    expect = if object {
                        Expect::KeyOrEnd
                    } else {
                        Expect::ValueOrEnd
                    };
                    continue;
                }
                (Expect::ValueOrEnd, b']') | (Expect::KeyOrEnd, b'}') => {
                    self.pos += 1;
                    levels -= 1;
                }
                (Expect::CommaOrEnd, b'}' | b']') if (b == b'}') == top_is_object() => {
                    self.pos += 1;
                    levels -= 1;
                }
                (Expect::CommaOrEnd, b',') => {
                    self.pos += 1;
                    expect = if top_is_object() {
                        Expect::Key
                    } else {
                        Expect::Value
                    };
                    continue;
                }
                (Expect::Key | Expect::KeyOrEnd, b'"') => {
                    self.raw_string(skip)?;
                    self.whitespace();
                    if bytes.get(self.pos) != Some(&b':') {
                        return self.error("expected ':'");
                    }
                    self.pos += 1;
                    expect = Expect::Value;
                    continue;
                }
                (Expect::Value | Expect::ValueOrEnd, b'"') => self.raw_string(skip).map(drop)?,
                (Expect::Value | Expect::ValueOrEnd, b'-' | b'0'..=b'9') => {
                    self.number(skip).map(drop)?
                }
                (Expect::Value | Expect::ValueOrEnd, b't') => self.literal("true")?,
                (Expect::Value | Expect::ValueOrEnd, b'f') => self.literal("false")?,
                (Expect::Value | Expect::ValueOrEnd, b'n') => self.literal("null")?,
                (Expect::Value | Expect::ValueOrEnd, _) => return self.error("expected a value"),
                (Expect::Key | Expect::KeyOrEnd, _) => return self.error("expected a string"),
                (Expect::CommaOrEnd, _) => {
                    return self.error("expected ',' or the end of the list or object")
                }
            }
            // A value or a level ended here.
            if levels == 0 {
                return Ok(());
            }
            expect = Expect::CommaOrEnd;
        }
    }

    /// Passes over one value and returns its text.
    pub(crate) fn raw(&mut self, skip: Skip) -> Result<&'a str, Error> {
        self.whitespace();
        let start = self.pos;
        self.skip(skip)?;
        Ok(&self.text[start..self.pos])
    }
}

/// The high bit of each byte of `word` that ends a run of plain string
/// characters (a quote, a backslash, a control character), read as little
/// endian. Bytes above the first such byte may be flagged falsely (borrows
/// ripple upwards); the lowest flag is always exact.
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quote = zero_byte(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    quote | backslash | control
}

/// The four hex digits at `at`, as a number.
fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    digits.iter().try_fold(0u32, |n, &b| {
        let d = char::from(b).to_digit(16)?;
        Some(n * 16 + d)
    })
}

/// Decodes the escapes of a string checked by [`Reader::raw_string`] with
/// [`Skip::Value`] (so every `\u` escape decodes).
fn unescape(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let plain = bytes[i..]
            .iter()
            .position(|&b| b == b'\\')
            .unwrap_or(bytes.len() - i);
        out.push_str(&raw[i..i + plain]);
        i += plain;
        if i == bytes.len() {
            break;
        }
        let c = match bytes[i + 1] {
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = hex4(bytes, i + 2).unwrap_or(0xFFFD);
                i += 6;
                let code = if (0xD800..0xDC00).contains(&unit) {
                    let low = hex4(bytes, i + 2).unwrap_or(0xDC00);
                    i += 6;
                    0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                } else {
                    unit
                };
                out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                continue;
            }
            other => char::from(other),
        };
        out.push(c);
        i += 2;
    }
    out
}

/// `a == b`, a word at a time: the module's `memcmp` goes byte by byte, and
/// a reused instance compares the whole settings text on every call.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a_words, a_rest) = a.as_chunks::<8>();
    let (b_words, b_rest) = b.as_chunks::<8>();
    a_rest == b_rest
        && a_words
            .iter()
            .zip(b_words)
            .all(|(x, y)| u64::from_ne_bytes(*x) == u64::from_ne_bytes(*y))
}

/// Reads the value at `path` (object keys from the root) with `read`, or
/// `None` when a key is missing or a level is not an object. Like a full
/// parse, a repeated key counts with its last value (`read` reads each one).
/// The rest of the text is validated as `skip` says.
pub(crate) fn lookup<'a, T>(
    text: &'a str,
    path: &[&str],
    skip: Skip,
    read: &mut impl FnMut(&mut Reader<'a>) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    let mut r = Reader::new(text);
    let found = lookup_in(&mut r, path, skip, read)?;
    r.end()?;
    Ok(found)
}

/// [`lookup`] from where `r` is, leaving what follows the value unread.
pub(crate) fn lookup_in<'a, T>(
    r: &mut Reader<'a>,
    path: &[&str],
    skip: Skip,
    read: &mut impl FnMut(&mut Reader<'a>) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    let Some((first, rest)) = path.split_first() else {
        return read(r).map(Some);
    };
    if r.peek()? != Kind::Object {
        r.skip(skip)?;
        return Ok(None);
    }
    let mut found = None;
    let mut entries = r.object()?;
    while let Some(key) = r.key(&mut entries)? {
        if key == *first {
            found = lookup_in(r, rest, skip, read)?;
        } else {
            r.skip(skip)?;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::value::RawValue;
    use serde_json::Value;

    fn skips(text: &str, skip: Skip) -> bool {
        let mut r = Reader::new(text);
        r.skip(skip).and_then(|()| r.end()).is_ok()
    }

    /// The decoded value, read with the reader only (no serde_json).
    fn value(r: &mut Reader<'_>) -> Result<Value, Error> {
        Ok(match r.peek()? {
            Kind::Null => r.null().map(|()| Value::Null)?,
            Kind::Bool => Value::Bool(r.bool()?),
            Kind::Number => serde_json::from_str(r.number(Skip::Value)?).expect("valid number"),
            Kind::String => Value::String(r.string()?.into_owned()),
            Kind::Array => {
                let mut items = Vec::new();
                let mut entries = r.array()?;
                while r.item(&mut entries)? {
                    items.push(value(r)?);
                }
                Value::Array(items)
            }
            Kind::Object => {
                let mut map = serde_json::Map::new();
                let mut entries = r.object()?;
                while let Some(key) = r.key(&mut entries)? {
                    let v = value(r)?;
                    map.insert(key.into_owned(), v);
                }
                Value::Object(map)
            }
        })
    }

    fn read_all(text: &str) -> Result<Value, Error> {
        let mut r = Reader::new(text);
        let v = value(&mut r)?;
        r.end()?;
        Ok(v)
    }

    #[test]
    fn reads_what_serde_json_reads() {
        for text in [
            r#"{"a":[1,-2.5e3,true,false,null,"x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"],"b":{}}"#,
            " [ ] ",
            "0",
            "-0.0",
            "1E+2",
            r#""\u0000""#,
            r#"{"k":1,"k":2}"#,
        ] {
            let want: Value = serde_json::from_str(text).unwrap();
            assert_eq!(read_all(text).unwrap(), want, "{text}");
            assert!(skips(text, Skip::Value) && skips(text, Skip::Raw), "{text}");
        }
    }

    #[test]
    fn rejects_what_serde_json_rejects() {
        for text in [
            "",
            "[1,]",
            "{\"a\":1,}",
            "[1 2]",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "tru",
            "nul",
            "\"\t\"",
            "\"\\x\"",
            "\"\\u12\"",
            "\"abc",
            "{1:2}",
            "{\"a\" 1}",
            "[1]]",
            "NaN",
            "// c\n1",
            "\u{a0}1",
        ] {
            assert!(
                serde_json::from_str::<Value>(text).is_err(),
                "serde: {text:?}"
            );
            assert!(read_all(text).is_err(), "{text:?}");
            assert!(!skips(text, Skip::Value), "{text:?}");
            assert!(
                serde_json::from_str::<&RawValue>(text).is_err(),
                "serde raw: {text:?}"
            );
            assert!(!skips(text, Skip::Raw), "{text:?}");
        }
    }

    #[test]
    fn value_and_raw_differ_where_serde_json_does() {
        // A lone surrogate: not a string, but fine to pass over.
        let lone = r#"["\ud800"]"#;
        assert!(serde_json::from_str::<Value>(lone).is_err());
        assert!(serde_json::from_str::<&RawValue>(lone).is_ok());
        assert!(!skips(lone, Skip::Value) && skips(lone, Skip::Raw));
        // Out of the f64 range.
        for big in [
            "1e400".to_string(),
            "9".repeat(400),
            format!("0.{}e999", "1".repeat(10)),
        ] {
            assert!(serde_json::from_str::<Value>(&big).is_err(), "{big}");
            assert!(serde_json::from_str::<&RawValue>(&big).is_ok(), "{big}");
            assert!(!skips(&big, Skip::Value) && skips(&big, Skip::Raw), "{big}");
        }
        // Nesting: serde_json's recursion limit for values, none for raw text.
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(serde_json::from_str::<Value>(&nested(127)).is_ok());
        assert!(skips(&nested(127), Skip::Value));
        assert!(serde_json::from_str::<Value>(&nested(128)).is_err());
        assert!(!skips(&nested(128), Skip::Value));
        let deep = format!("{}1{}", r#"{"a":["#.repeat(5000), "]}".repeat(5000));
        assert!(serde_json::from_str::<&RawValue>(&deep).is_ok());
        assert!(skips(&deep, Skip::Raw));
    }

    #[test]
    fn lookup_finds_the_last_value_of_a_path() {
        fn raw<'t>(text: &'t str, path: &[&str]) -> Result<Option<&'t str>, Error> {
            lookup(text, path, Skip::Raw, &mut |r| r.raw(Skip::Value))
        }
        let text = r#"{"a":[1,{"b":2}],"metadata":{"name":"x","annotations":{"k":"v"}},"m":{"n":1},"m":{"n":2}}"#;
        assert_eq!(raw(text, &["metadata", "name"]), Ok(Some(r#""x""#)));
        assert_eq!(raw(text, &["m", "n"]), Ok(Some("2")));
        assert_eq!(raw(text, &["a", "b"]), Ok(None));
        assert_eq!(raw(text, &["missing"]), Ok(None));
        let escaped = r#"{"sp\u0065c":{"a":1}}"#;
        assert_eq!(raw(escaped, &["spec", "a"]), Ok(Some("1")));
        assert!(raw(r#"{"a":1"#, &["a"]).is_err());
    }

    #[test]
    fn integers_are_what_fits_an_i64() {
        fn int(t: &str) -> Result<i64, &str> {
            Reader::new(t).integer().unwrap()
        }
        assert_eq!(int("-42"), Ok(-42));
        assert_eq!(int("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(int("9223372036854775808"), Err("9223372036854775808"));
        assert_eq!(int("1.0"), Err("1.0"));
        assert_eq!(int("1e2"), Err("1e2"));
    }

    /// JSON-ish text: valid documents and near misses.
    fn jsonish() -> impl Strategy<Value = String> {
        let atom = prop_oneof![
            Just("1".to_string()),
            Just("-0.5e-3".to_string()),
            Just("1e999".to_string()),
            Just("true".to_string()),
            Just("null".to_string()),
            Just(r#""a\"b""#.to_string()),
            Just(r#""\ud83d\ude00""#.to_string()),
            Just(r#""\udc00""#.to_string()),
            Just("\"\u{e9}\"".to_string()),
            Just("0x1".to_string()),
            Just("\"\\q\"".to_string()),
        ];
        // Strings long enough to be read eight bytes at a time.
        let piece = prop_oneof![
            Just("abcdefg"),
            Just("a"),
            Just("\\\""),
            Just("\\\\"),
            Just("\u{1}"),
            Just("\u{7f}"),
            Just("\u{e9}"),
            Just("\\u00e9"),
            Just("\\n"),
        ];
        let long = prop::collection::vec(piece, 0..12).prop_map(|p| format!("\"{}\"", p.concat()));
        let atom = prop_oneof![4 => atom, 1 => long];
        let doc = atom.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-c]{1,2}", inner), 0..4).prop_map(|v| {
                    let entries: Vec<String> =
                        v.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    format!("{{{}}}", entries.join(","))
                }),
            ]
        });
        // Occasionally damage one byte.
        (
            doc,
            any::<prop::sample::Index>(),
            prop_oneof![
                Just(None),
                Just(Some(',')),
                Just(Some('}')),
                Just(Some(' '))
            ],
        )
            .prop_map(|(d, at, c)| match c {
                Some(c) if !d.is_empty() => {
                    let i = at.index(d.len());
                    let i = (0..=i).rev().find(|&i| d.is_char_boundary(i)).unwrap_or(0);
                    format!("{}{c}{}", &d[..i], &d[i..])
                }
                _ => d,
            })
    }

    proptest! {
        #[test]
        fn agrees_with_serde_json(text in jsonish()) {
            let want = serde_json::from_str::<Value>(&text).ok();
            prop_assert_eq!(read_all(&text).ok(), want.clone());
            prop_assert_eq!(skips(&text, Skip::Value), want.is_some());
            prop_assert_eq!(skips(&text, Skip::Raw), serde_json::from_str::<&RawValue>(&text).is_ok());
        }
    }
}
