//! Reference parsing never panics, and a normalized image re-parses to
//! itself (the host is asked about exactly the image that was parsed).
#![no_main]
use imagegate_policy::reference::Reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|image: &str| {
    if let Ok(r) = Reference::parse(image) {
        let text = r.to_string();
        assert_eq!(Reference::parse(&text).as_ref(), Ok(&r), "{image:?} -> {text:?}");
    }
});
