//! One cosign v3 bundle verification after fetch, the whole offline check:
//! the real public-good `bundle_v03.json` (kubewarden-controller v1.34.0)
//! parsed and verified against the embedded public-good trust root (DSSE
//! signature, Fulcio chain at the signing time, SCT, Rekor SET, inclusion
//! proof and checkpoint, RFC 3161 timestamp). Target: <= 5 ms.
//! Run: `cargo bench -p imagegate --bench bundle -- --quick`.

use criterion::{criterion_group, criterion_main, Criterion};
use imagegate::capabilities::sigstore::{verify_signature_bundle, TrustRoot};
use imagegate_policy::wire::SignerIdentity;
use std::hint::black_box;

const BUNDLE: &[u8] = include_bytes!("../tests/data/sigstore/sigstore-rs/bundle_v03.json");
const DIGEST: &str = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
/// 2026-04-10, after the signature.
const NOW: i64 = 1_775_800_000;

fn bundle(c: &mut Criterion) {
    let root = TrustRoot::load(None).expect("embedded trust root");
    let identities = [SignerIdentity::GithubActions {
        owner: "kubewarden".into(),
        repo: Some("kubewarden-controller".into()),
    }];
    let evidence =
        verify_signature_bundle(BUNDLE, DIGEST, &identities, &root, NOW).expect("verifies");
    for kind in ["timestamp", "tlog", "SCT"] {
        assert!(
            evidence.iter().any(|e| e.starts_with(kind)),
            "{kind}: {evidence:?}"
        );
    }
    c.bench_function("cosign v3 bundle verification", |b| {
        b.iter(|| verify_signature_bundle(black_box(BUNDLE), DIGEST, &identities, &root, NOW))
    });
}

criterion_group!(benches, bundle);
criterion_main!(benches);
