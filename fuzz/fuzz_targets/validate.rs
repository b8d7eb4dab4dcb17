//! A `validate` payload, as the waPC entry reads it, is always answered
//! (accepted, or rejected with a message), whatever the host answers; a host
//! that never verifies anything never gets an image admitted by a verify rule.
#![no_main]
use imagegate_policy::decide;
use imagegate_policy::settings::Policy;
use imagegate_policy::testing::ScriptedHost;
use imagegate_policy::wire::{ValidationRequest, ValidationResponse};
use libfuzzer_sys::fuzz_target;

/// Answers every call with the same bytes.
fn fixed(answer: &'static [u8]) -> ScriptedHost {
    ScriptedHost::raw(move |_, _, _| Ok(answer.to_vec()))
}

fn answered(r: &ValidationResponse) -> bool {
    r.accepted || r.message.as_deref().is_some_and(|m| !m.is_empty())
}

const VERIFY_ALL: &str = r#"{"keys":{"k":{"cosign":"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQTW9sqsjDyllhoVJlqBrZv/VtgKl\n9fpjLZZGCTcsG+r4h2SI/d0w/nIO0LXHbMr5eNLOw2Nd3LP7zP8ijpZqqg==\n-----END PUBLIC KEY-----\n"}},
  "rules":[{"name":"signed","images":["**"],"verify":{"anyOf":[{"cosign":{"keys":["k"]}}]}}]}"#;

fuzz_target!(|payload: &[u8]| {
    let Ok(vr) = serde_json::from_slice::<ValidationRequest>(payload) else {
        return;
    };
    let settings = vr.settings.unwrap_or("{}");
    let hosts = [
        ScriptedHost::failing("registry down"),
        fixed(br#"{"is_trusted":true,"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"}"#),
        fixed(b"garbage"),
    ];
    if let Ok(policy) = Policy::from_json(settings) {
        for host in &hosts {
            assert!(answered(&decide::validate(&vr.request, &policy, host)));
        }
    }
    // Under a verify-everything rule, a host that never verifies admits
    // nothing that has images.
    let verify_all = Policy::from_json(VERIFY_ALL).expect("fixed settings");
    for host in [&hosts[0], &hosts[2]] {
        let (r, verdicts) = decide::explain(&vr.request, &verify_all, host);
        assert!(answered(&r));
        // Verdicts exist only for images that were looked at (these settings
        // exempt nothing): none of them may be admitted.
        if r.accepted {
            assert!(verdicts.is_empty(), "admitted without verification: {:?}", vr.request);
        }
    }
});
