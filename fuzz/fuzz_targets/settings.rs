//! Settings parsing never panics; every error says something.
#![no_main]
use imagegate_policy::settings::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|settings: &str| {
    if let Err(e) = Policy::from_json(settings) {
        assert!(!e.trim().is_empty(), "empty error for {settings:?}");
    }
});
