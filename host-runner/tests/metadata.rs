//! metadata.yml declares exactly the host capabilities the built module
//! calls, as `kwctl annotate` detects them (`make policy.wasm` first).

use std::path::Path;

use imagegate::packaging::annotate::detected_capabilities;
use imagegate::packaging::metadata::Metadata;
use imagegate_policy::testing::policy_wasm;

#[test]
fn declared_host_capabilities_are_those_the_module_calls() {
    let metadata =
        Metadata::from_yaml_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../metadata.yml"))
            .unwrap();
    let wasm = std::fs::read(policy_wasm()).unwrap();
    let detected = detected_capabilities(&wasm).unwrap();
    assert_eq!(metadata.host_capabilities.unwrap_or_default(), detected);
    assert!(detected.contains("oci/v2/verify"), "{detected:?}");
}
