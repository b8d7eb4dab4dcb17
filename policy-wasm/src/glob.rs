//! `*`-only globs over a single string (tags, namespaces, path components).
//!
//! Only `*` is special: it matches any run of characters (including none and
//! including `/`; callers that need component boundaries split first). There is
//! no escaping, no `?`, no character classes, so `[::1]` is just text. Matching
//! works on the glob's text ([`is_match`]): the literal prefix and suffix are
//! stripped, then the literal runs between stars are searched left to right,
//! which is linear-time, needs no regex engine (keeping the wasm module small
//! and cheap to instantiate) and nothing built in advance (patterns match
//! globs straight from the settings text).

/// A glob where `*` matches any run of characters and everything else is literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Glob {
    /// The glob as written (shown in messages).
    text: String,
}

impl Glob {
    pub fn new(text: &str) -> Glob {
        Glob {
            text: text.to_string(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn is_match(&self, s: &str) -> bool {
        is_match(&self.text, s)
    }
}

/// True when `glob` is made of stars only (and not empty).
pub(crate) fn matches_everything(glob: &str) -> bool {
    !glob.is_empty() && glob.bytes().all(|b| b == b'*')
}

/// Whether the glob text `glob` matches `s`.
pub(crate) fn is_match(glob: &str, s: &str) -> bool {
    let Some(first) = glob.find('*') else {
        return glob == s;
    };
    let last = glob.rfind('*').unwrap_or(first);
    let (prefix, suffix) = (&glob[..first], &glob[last + 1..]);
    // The suffix is stripped after the prefix so that they never overlap.
    let Some(rest) = s
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(suffix))
    else {
        return false;
    };
    // Leftmost placement of each middle run is optimal for `*`-only globs:
    // it leaves the longest possible remainder for the runs after it.
    let mut rest = rest;
    for run in glob[first..=last].split('*').filter(|r| !r.is_empty()) {
        match rest.find(run) {
            Some(at) => rest = &rest[at + run.len()..],
            None => return false,
        }
    }
    true
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
            assert!(matches_everything(g));
            assert!(m(g, ""));
            assert!(m(g, "anything/with:chars"));
        }
        assert!(!matches_everything("a*"));
        assert!(!matches_everything("a"));
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
