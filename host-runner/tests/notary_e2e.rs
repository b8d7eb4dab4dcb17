//! End-to-end: trust data published with the real `notary` CLI to Debian's
//! notary-server/notary-signer, verified by `imagegate`'s Notary capability.
//! Skips (loudly) only when the notary package is not installed.

#[allow(dead_code)] // the Notary part of the lab only
mod support;

use std::time::Instant;

use base64::Engine as _;
use imagegate::capabilities::notary::{Notary, NotaryConfig};
use imagegate_policy::wire::{NotarySigner, NotaryVerifyRequest, NotaryVerifyResponse};
use support::notary::NotaryLab;

const GUN: &str = "127.0.0.1:5000/demo/alpine";
const D1: &str = "ae9ec4294fa57373460da70ceeddd75c1e092e852db99c9d544df036ce6f91b9";
const D2: &str = "1ff11a0247b70ad148272b1776fb255760d7f9427676d8d5d6d6457e0541620e";
const D3: &str = "96fd06dd071cb26be6d60c32dd06ee998906a0167897d99c1efe4ec57094b67c";
const D4: &str = "c29510ee8c587052c248fd2f0f570b919914cdbf530f89c939a803550378fa86";

fn signer(role: &str, key: Option<&str>) -> NotarySigner {
    NotarySigner {
        role: role.to_string(),
        public_key: key.map(str::to_string),
    }
}

/// Requests against one lab's server through one verifier.
struct Call<'a> {
    url: String,
    ca_pem: String,
    notary: &'a Notary,
}

impl<'a> Call<'a> {
    fn new(lab: &NotaryLab, notary: &'a Notary) -> Call<'a> {
        Call {
            url: lab.url.clone(),
            ca_pem: lab.ca_pem.clone(),
            notary,
        }
    }
}

impl Call<'_> {
    async fn run(
        &self,
        image: &str,
        signers: Vec<NotarySigner>,
        root_keys: Option<Vec<String>>,
    ) -> Result<NotaryVerifyResponse, String> {
        let req = NotaryVerifyRequest {
            image: image.to_string(),
            server: self.url.clone(),
            signers,
            ca_cert: Some(self.ca_pem.clone()),
            root_keys,
        };
        self.notary.verify(&req).await.map_err(|f| f.message)
    }
}

fn trusted(digest: &str, signer: &str) -> Result<NotaryVerifyResponse, String> {
    Ok(NotaryVerifyResponse {
        is_trusted: true,
        digest: format!("sha256:{digest}"),
        signer: signer.to_string(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_server_end_to_end() {
    if !support::notary::available() {
        return;
    }
    let mut lab = NotaryLab::start();
    lab.init(GUN);
    let jenkins = lab.add_signer(GUN, "jenkins", false, &["releases", "jenkins"]);
    let alice = lab.add_signer(GUN, "alice", true, &["alice"]);
    lab.sign(GUN, "1.0", D1, 401, &["releases", "jenkins"]);
    lab.sign(GUN, "2.0", D2, 423, &[]);
    lab.sign(GUN, "3.0", D3, 401, &["alice"]);

    let cache = tempfile::tempdir().unwrap();
    let config = || NotaryConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..NotaryConfig::default()
    };
    let notary = Notary::new(config(), None).unwrap();
    let call = Call::new(&lab, &notary);
    let image = |tag: &str| format!("{GUN}:{tag}");

    // Signed by an allowed (pinned) signer -> its digest. Cold, then cached.
    let start = Instant::now();
    let got = call
        .run(&image("1.0"), vec![signer("jenkins", Some(&jenkins))], None)
        .await;
    let cold = start.elapsed();
    assert_eq!(got, trusted(D1, "targets/jenkins"));
    let mut warm = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let got = call
            .run(
                &image("1.0"),
                vec![signer("targets/jenkins", Some(&jenkins))],
                None,
            )
            .await;
        warm.push(start.elapsed());
        assert_eq!(got, trusted(D1, "targets/jenkins"));
    }
    warm.sort();
    // Reported, never asserted (timings belong in benchmarks).
    eprintln!(
        "notary verify ({} build): first call {cold:?}, cached metadata median {:?} (min {:?}, max {:?})",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        warm[warm.len() / 2],
        warm[0],
        warm[warm.len() - 1]
    );

    // RSA certificate signer (rsa-x509 key, rsapss signatures); any signer suffices.
    let both = vec![signer("jenkins", None), signer("alice", Some(&alice))];
    assert_eq!(
        call.run(&image("3.0"), both, None).await,
        trusted(D3, "targets/alice")
    );

    // Signed only by another signer -> denied, naming the signer asked for.
    let err = call
        .run(&image("3.0"), vec![signer("jenkins", None)], None)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        "notary: 3.0 is not signed by any of targets/jenkins: targets/jenkins does not list 3.0"
    );
    // The right role, the wrong pinned key.
    let err = call
        .run(&image("1.0"), vec![signer("jenkins", Some(&alice))], None)
        .await
        .unwrap_err();
    assert!(
        err.ends_with("targets/jenkins.json is not signed by the pinned key of targets/jenkins"),
        "{err}"
    );
    // Unsigned tag.
    let err = call
        .run(&image("9.9"), vec![signer("jenkins", None)], None)
        .await
        .unwrap_err();
    assert!(err.ends_with("targets/jenkins does not list 9.9"), "{err}");
    // No such delegation.
    let err = call
        .run(&image("1.0"), vec![signer("bob", None)], None)
        .await
        .unwrap_err();
    assert!(
        err.ends_with("targets.json delegates no role targets/bob"),
        "{err}"
    );

    // Docker pull semantics without signers.
    assert_eq!(
        call.run(&image("1.0"), vec![], None).await,
        trusted(D1, "targets/releases")
    );
    assert_eq!(
        call.run(&image("2.0"), vec![], None).await,
        trusted(D2, "targets")
    );
    let err = call.run(&image("3.0"), vec![], None).await.unwrap_err();
    assert!(err.starts_with("notary: no trust data for 3.0"), "{err}");

    // Digest-only reference: trusted when the signer lists that digest.
    let by_digest = format!("{GUN}@sha256:{D1}");
    assert_eq!(
        call.run(&by_digest, vec![signer("jenkins", None)], None)
            .await,
        trusted(D1, "targets/jenkins")
    );

    // A GUN without trust data.
    let err = call
        .run("127.0.0.1:5000/demo/unsigned:1.0", vec![], None)
        .await
        .unwrap_err();
    assert!(
        err.contains("timestamp.json: not found on")
            && err.contains("no trust data for 127.0.0.1:5000/demo/unsigned"),
        "{err}"
    );

    // Without the lab CA the server's certificate is not trusted.
    let req = NotaryVerifyRequest {
        image: image("1.0"),
        server: lab.url.clone(),
        signers: vec![],
        ca_cert: None,
        root_keys: None,
    };
    let err = notary.verify(&req).await.unwrap_err().message;
    assert!(
        err.contains("unreachable") && err.to_lowercase().contains("certificate"),
        "{err}"
    );

    // TOFU: the root is cached on disk per GUN; pinning that root's certificate works,
    // pinning another key does not.
    let cached_root = cache
        .path()
        .join("127.0.0.1%3A5000%2Fdemo%2Falpine")
        .join("root.json");
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cached_root).unwrap()).unwrap();
    let root_id = root["signed"]["roles"]["root"]["keyids"][0]
        .as_str()
        .unwrap();
    let b64 = root["signed"]["keys"][root_id]["keyval"]["public"]
        .as_str()
        .unwrap();
    let root_cert = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap();
    let fresh = Notary::new(NotaryConfig::default(), None).unwrap();
    let pinned = Call::new(&lab, &fresh);
    assert_eq!(
        pinned
            .run(&image("1.0"), vec![], Some(vec![root_cert]))
            .await,
        trusted(D1, "targets/releases")
    );
    let err = pinned
        .run(&image("1.0"), vec![], Some(vec![jenkins.clone()]))
        .await
        .unwrap_err();
    assert_eq!(err, "notary: root.json: not signed by any pinned root key");

    // New trust data is seen (the cache follows timestamp.json); a restarted
    // verifier with the same cache directory still trusts the root.
    lab.sign(GUN, "4.0", D4, 491, &["jenkins"]);
    assert_eq!(
        call.run(&image("4.0"), vec![signer("jenkins", None)], None)
            .await,
        trusted(D4, "targets/jenkins")
    );
    let restarted = Notary::new(config(), None).unwrap();
    let again = Call::new(&lab, &restarted);
    assert_eq!(
        again
            .run(&image("4.0"), vec![signer("jenkins", None)], None)
            .await,
        trusted(D4, "targets/jenkins")
    );

    // Two root rotations since the cached root: followed through N.root.json.
    lab.rotate_root(GUN);
    lab.rotate_root(GUN);
    assert_eq!(
        call.run(&image("1.0"), vec![signer("jenkins", None)], None)
            .await,
        trusted(D1, "targets/jenkins")
    );
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cached_root).unwrap()).unwrap();
    assert_eq!(root["signed"]["version"], 4);

    // Server down -> denied, saying why.
    lab.stop_server();
    let err = call
        .run(&image("1.0"), vec![signer("jenkins", None)], None)
        .await
        .unwrap_err();
    assert!(
        err.starts_with(&format!(
            "notary: notary server {} unreachable (timestamp.json):",
            lab.url
        )),
        "{err}"
    );
}
