//! `*`-only globs over a single string (tags, namespaces, path components).
//!
//! Only `*` is special: it matches any run of characters (including none and
//! including `/`; callers that need component boundaries split first). There is
//! no escaping, no `?`, no character classes, so `[::1]` is just text. The glob
//! is split into its literal segments once, at construction, and matched by
//! searching the segments left to right, which is linear-time and needs no
//! regex engine (keeping the wasm module small and cheap to instantiate).

/// A glob where `*` matches any run of characters and everything else is literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Glob {
    /// The glob as written (shown in messages).
    text: String,
    /// Non-empty literal runs between stars, in order.
    segments: Vec<String>,
    /// The text has no `*`: matching is string equality.
    literal: bool,
    /// The first segment must be at the start of the subject (no leading `*`).
    anchored_start: bool,
    /// The last segment must be at the end of the subject (no trailing `*`).
    anchored_end: bool,
}

impl Glob {
    pub fn new(text: &str) -> Glob {
        Glob {
            text: text.to_string(),
            segments: text
                .split('*')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            literal: !text.contains('*'),
            anchored_start: !text.starts_with('*'),
            anchored_end: !text.ends_with('*'),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the glob matches every string (it is made of stars only).
    pub fn matches_everything(&self) -> bool {
        !self.literal && self.segments.is_empty()
    }

    pub fn is_match(&self, s: &str) -> bool {
        if self.literal {
            return s == self.text;
        }
        let mut rest = s;
        let mut segments = self.segments.as_slice();
        if self.anchored_start {
            let Some((first, tail)) = segments.split_first() else {
                return false;
            };
            let Some(after) = rest.strip_prefix(first.as_str()) else {
                return false;
            };
            rest = after;
            segments = tail;
        }
        if self.anchored_end {
            // Checked after the prefix was removed so prefix and suffix never overlap.
            let Some((last, init)) = segments.split_last() else {
                return false;
            };
            let Some(before) = rest.strip_suffix(last.as_str()) else {
                return false;
            };
            rest = before;
            segments = init;
        }
        // Leftmost placement of each middle segment is optimal for `*`-only globs:
        // it leaves the longest possible remainder for the segments after it.
        for segment in segments {
            match rest.find(segment.as_str()) {
                Some(at) => rest = &rest[at + segment.len()..],
                None => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(glob: &str, s: &str) -> bool {
        Glob::new(glob).is_match(s)
    }

    #[test]
    fn literal_glob_is_string_equality() {
        assert!(m("latest", "latest"));
        assert!(!m("latest", "latest2"));
        assert!(!m("latest", "Latest"));
        assert!(m("", ""));
        assert!(!m("", "a"));
    }

    #[test]
    fn star_alone_matches_everything_including_empty() {
        for g in ["*", "**", "***"] {
            assert!(Glob::new(g).matches_everything());
            assert!(m(g, ""));
            assert!(m(g, "anything/with:chars"));
        }
        assert!(!Glob::new("a*").matches_everything());
        assert!(!Glob::new("a").matches_everything());
    }

    #[test]
    fn prefix_suffix_and_infix() {
        assert!(m("1.*", "1.25"));
        assert!(m("1.*", "1."));
        assert!(!m("1.*", "11.0"));
        assert!(m("*-alpine", "3.19-alpine"));
        assert!(!m("*-alpine", "3.19-alpine-slim"));
        assert!(m("*rc*", "1.0-rc1"));
        assert!(!m("*rc*", "1.0"));
    }

    #[test]
    fn prefix_and_suffix_do_not_overlap() {
        assert!(!m("ab*ba", "aba"));
        assert!(m("ab*ba", "abba"));
        assert!(!m("a*a", "a"));
        assert!(m("a*a", "aa"));
    }

    #[test]
    fn middle_segments_in_order() {
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*c*b", "axxbyyc"));
        assert!(m("*a*a*", "banana"));
        assert!(!m("*a*a*a*a*", "banana"));
    }

    #[test]
    fn brackets_and_question_marks_are_literal() {
        assert!(m("[::1]", "[::1]"));
        assert!(!m("[ab]", "a"));
        assert!(!m("a?", "ab"));
        assert!(m("a?", "a?"));
    }

    /// Plain recursive `*` matcher, the obvious definition.
    fn naive(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|i| naive(rest, &s[i..])),
            Some((c, rest)) => s.first() == Some(c) && naive(rest, &s[1..]),
        }
    }

    proptest! {
        #[test]
        fn agrees_with_naive_matcher(g in "[ab*]{0,8}", s in "[ab]{0,10}") {
            prop_assert_eq!(Glob::new(&g).is_match(&s), naive(g.as_bytes(), s.as_bytes()));
        }
    }
}
