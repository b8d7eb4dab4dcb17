//! Pattern parsing and matching never panic; a pattern set agrees with
//! matching each pattern alone. Input: patterns, one per line, then an image
//! on the last line.
#![no_main]
use imagegate_policy::pattern::{Pattern, PatternSet};
use imagegate_policy::reference::Reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let mut lines: Vec<&str> = text.split('\n').collect();
    let image = lines.pop().unwrap_or_default();
    let patterns: Vec<(Pattern, usize)> = lines
        .iter()
        .filter_map(|p| Pattern::parse(p).ok())
        .enumerate()
        .map(|(id, p)| (p, id))
        .collect();
    let Ok(image) = Reference::parse(image) else {
        return;
    };
    let set = PatternSet::new(patterns.clone());
    let mut got = Vec::new();
    set.matches_into(&image, &mut got);
    got.sort_unstable();
    got.dedup();
    let want: Vec<usize> = patterns
        .iter()
        .filter(|(p, _)| p.is_match(&image))
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(got, want, "{image}");
});
