//! Tests of the verification core over the real notary-server data in
//! `tests/data/notary-example` (fixed clock from its expected.json) and over
//! repositories signed here with generated keys (tampered variants).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::EncodePublicKey as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256, Sha512};

use super::keys::{parse_pinned, KeyMaterial};
use super::tuf::{select, verify_repo, Anchor, RepoFiles, SignerSpec, Verified, Versions, Wanted};
use super::{parse_signers, split_image};
use crate::capabilities::canonical;
use imagegate_policy::wire::{NotarySigner, NotaryVerifyRequest};

const GUN: &str = "127.0.0.1:5000/demo/alpine";

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/notary-example/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn expected() -> Value {
    serde_json::from_slice(&data("expected.json")).unwrap()
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn valid_at() -> DateTime<Utc> {
    at(expected()["valid_at"].as_str().unwrap())
}

fn example_files() -> RepoFiles {
    let delegations = ["targets/releases", "targets/jenkins", "targets/alice"]
        .into_iter()
        .map(|role| (role.to_string(), data(&format!("{role}.json"))))
        .collect();
    RepoFiles {
        root: data("root.json"),
        timestamp: data("timestamp.json"),
        snapshot: data("snapshot.json"),
        targets: data("targets.json"),
        delegations,
        root_rotations: Vec::new(),
    }
}

fn verify_example(files: &RepoFiles, now: DateTime<Utc>) -> Result<Verified, String> {
    verify_repo(GUN, files, Anchor::FirstUse, &Versions::new(), now)
}

fn signer(role: &str) -> SignerSpec {
    SignerSpec {
        role: role.to_string(),
        pinned: None,
    }
}

fn tag(t: &str) -> Wanted {
    Wanted::Tag(t.to_string())
}

#[test]
fn example_signed_by_expected_signers() {
    let verified = verify_example(&example_files(), valid_at()).unwrap();
    let expected = expected();
    for (name, spec) in expected["tags"].as_object().unwrap() {
        let digest = spec["digest"].as_str().unwrap();
        // The manifest bytes hash to the signed digest.
        let manifest = data(&format!("manifests/{name}.json"));
        assert_eq!(
            format!("sha256:{}", hex::encode(Sha256::digest(&manifest))),
            digest
        );
        for role in spec["listed_in"].as_array().unwrap() {
            let role = role.as_str().unwrap();
            let (got, by) = select(&verified, &tag(name), &[signer(role)]).unwrap();
            assert_eq!(
                (got.as_str(), by.as_str()),
                (digest, role),
                "{name} in {role}"
            );
        }
        for signed_by in spec["signed_by"].as_array().unwrap() {
            let role = format!("targets/{}", signed_by.as_str().unwrap());
            assert_eq!(
                select(&verified, &tag(name), &[signer(&role)]).unwrap().0,
                digest
            );
        }
        let docker = select(&verified, &tag(name), &[]);
        assert_eq!(
            docker.is_ok(),
            spec["docker_pull_trusts"].as_bool().unwrap(),
            "{name}: {docker:?}"
        );
        if let Ok((got, _)) = docker {
            assert_eq!(got, digest);
        }
    }
}

#[test]
fn example_expected_results() {
    let verified = verify_example(&example_files(), valid_at()).unwrap();
    let results = &expected()["expected_results"];
    let one = |t: &str, role: &str| select(&verified, &tag(t), &[signer(role)]);
    assert_eq!(
        one("1.0", "targets/jenkins").unwrap().0,
        results["1.0 requiring signer jenkins"]
    );
    assert_eq!(
        one("3.0", "targets/alice").unwrap().0,
        results["3.0 requiring signer alice"]
    );
    let err = one("1.0", "targets/alice").unwrap_err();
    assert_eq!(
        err,
        "1.0 is not signed by any of targets/alice: targets/alice does not list 1.0"
    );
    let err = select(&verified, &tag("3.0"), &[]).unwrap_err();
    assert!(err.starts_with("no trust data for 3.0"), "{err}");
    // Docker semantics name the role that signed.
    assert_eq!(
        select(&verified, &tag("1.0"), &[]).unwrap().1,
        "targets/releases"
    );
    assert_eq!(select(&verified, &tag("2.0"), &[]).unwrap().1, "targets");

    let err = verify_example(&example_files(), at("2027-01-01T00:00:00Z")).unwrap_err();
    assert_eq!(err, "timestamp.json expired at 2026-12-07T05:41:25Z");

    let mut files = example_files();
    let releases = files.delegations.get_mut("targets/releases").unwrap();
    let edited = String::from_utf8(releases.clone())
        .unwrap()
        .replace("\"length\":401", "\"length\":402");
    assert_eq!(edited.len(), releases.len());
    *releases = edited.into_bytes();
    let verified = verify_example(&files, valid_at()).unwrap();
    let err = select(&verified, &tag("1.0"), &[]).unwrap_err();
    assert_eq!(
        err,
        "targets/releases.json: hash does not match snapshot.json"
    );
    // Another signer still suffices when one role is broken.
    let ok = select(
        &verified,
        &tag("1.0"),
        &[signer("targets/releases"), signer("targets/jenkins")],
    )
    .unwrap();
    assert_eq!(ok.1, "targets/jenkins");
}

#[test]
fn any_listed_signer_suffices_in_order() {
    let verified = verify_example(&example_files(), valid_at()).unwrap();
    let (_, by) = select(
        &verified,
        &tag("3.0"),
        &[signer("targets/jenkins"), signer("targets/alice")],
    )
    .unwrap();
    assert_eq!(by, "targets/alice");
    let err = select(
        &verified,
        &tag("4.0"),
        &[signer("targets/jenkins"), signer("targets/alice")],
    )
    .unwrap_err();
    assert_eq!(
        err,
        "4.0 is not signed by any of targets/jenkins, targets/alice: targets/jenkins does not list 4.0; targets/alice does not list 4.0"
    );
    // The repository owner's role.
    assert_eq!(
        select(&verified, &tag("2.0"), &[signer("targets")])
            .unwrap()
            .1,
        "targets"
    );
}

#[test]
fn digest_only_reference_needs_a_signer_listing_that_digest() {
    let verified = verify_example(&example_files(), valid_at()).unwrap();
    let d1 = expected()["tags"]["1.0"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let (got, by) = select(
        &verified,
        &Wanted::Digest(d1.clone()),
        &[signer("targets/jenkins")],
    )
    .unwrap();
    assert_eq!(
        (got.as_str(), by.as_str()),
        (d1.as_str(), "targets/jenkins")
    );
    let err = select(
        &verified,
        &Wanted::Digest(d1.clone()),
        &[signer("targets/alice")],
    )
    .unwrap_err();
    assert!(
        err.contains(&format!("targets/alice does not list {d1}")),
        "{err}"
    );
}

#[test]
fn pinned_signer_key_is_compared_by_key_material() {
    let verified = verify_example(&example_files(), valid_at()).unwrap();
    let keys = &expected()["keys"];
    let jenkins = parse_pinned(keys["jenkins"]["public_key_pem"].as_str().unwrap()).unwrap();
    let alice = parse_pinned(keys["alice"]["cert_pem"].as_str().unwrap()).unwrap();
    let pinned = |role: &str, key: &KeyMaterial| SignerSpec {
        role: role.to_string(),
        pinned: Some(key.clone()),
    };
    assert!(select(
        &verified,
        &tag("1.0"),
        &[pinned("targets/jenkins", &jenkins)]
    )
    .is_ok());
    assert!(select(&verified, &tag("3.0"), &[pinned("targets/alice", &alice)]).is_ok());
    let err = select(&verified, &tag("1.0"), &[pinned("targets/jenkins", &alice)]).unwrap_err();
    assert!(
        err.ends_with("targets/jenkins.json is not signed by the pinned key of targets/jenkins"),
        "{err}"
    );
}

#[test]
fn pinned_root_keys() {
    let root: Value = serde_json::from_slice(&data("root.json")).unwrap();
    let id = expected()["keys"]["root"]["keyid"]
        .as_str()
        .unwrap()
        .to_string();
    let cert_pem = String::from_utf8(
        B64.decode(
            root["signed"]["keys"][&id]["keyval"]["public"]
                .as_str()
                .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let pins = [parse_pinned(&cert_pem).unwrap()];
    assert!(verify_repo(
        GUN,
        &example_files(),
        Anchor::Pinned(&pins),
        &Versions::new(),
        valid_at()
    )
    .is_ok());
    let other = [parse_pinned(
        expected()["keys"]["jenkins"]["public_key_pem"]
            .as_str()
            .unwrap(),
    )
    .unwrap()];
    let err = verify_repo(
        GUN,
        &example_files(),
        Anchor::Pinned(&other),
        &Versions::new(),
        valid_at(),
    )
    .unwrap_err();
    assert_eq!(err, "root.json: not signed by any pinned root key");
}

#[test]
fn wrong_gun_is_rejected_by_the_root_certificate() {
    let err = verify_repo(
        "127.0.0.1:5000/demo/other",
        &example_files(),
        Anchor::FirstUse,
        &Versions::new(),
        valid_at(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        "root.json: root certificate CN \"127.0.0.1:5000/demo/alpine\" does not match GUN \"127.0.0.1:5000/demo/other\""
    );
}

#[test]
fn rolled_back_example_is_rejected_and_versions_are_remembered() {
    let verified = verify_example(&example_files(), valid_at()).unwrap();
    assert_eq!(verified.versions["timestamp"], 4);
    assert_eq!(verified.versions["targets/jenkins"], 1);
    let seen = Versions::from([("timestamp".to_string(), 5)]);
    let err = verify_repo(GUN, &example_files(), Anchor::FirstUse, &seen, valid_at()).unwrap_err();
    assert_eq!(
        err,
        "timestamp.json: version 4 is older than the last seen version 5 (rollback)"
    );
}

#[test]
fn trusted_root_accepts_the_same_root() {
    let files = example_files();
    assert!(verify_repo(
        GUN,
        &files,
        Anchor::Trusted(&files.root),
        &Versions::new(),
        valid_at()
    )
    .is_ok());
}

#[test]
fn image_references_split_into_gun_and_tag() {
    let d = format!("sha256:{}", "a".repeat(64));
    assert_eq!(
        split_image("127.0.0.1:5000/demo/alpine:1.0").unwrap(),
        (GUN, tag("1.0"))
    );
    assert_eq!(
        split_image("127.0.0.1:5000/demo/alpine").unwrap(),
        (GUN, tag("latest"))
    );
    assert_eq!(
        split_image(&format!("{GUN}:1.0@{d}")).unwrap(),
        (GUN, tag("1.0"))
    );
    assert_eq!(
        split_image(&format!("{GUN}@{d}")).unwrap(),
        (GUN, Wanted::Digest(d.clone()))
    );
    assert!(split_image(&format!("{GUN}@sha512:{}", "a".repeat(128)))
        .unwrap_err()
        .contains("only sha256"));
    assert!(split_image("").is_err());
}

#[test]
fn signer_roles_are_normalized() {
    let req = |role: &str, key: Option<&str>| NotaryVerifyRequest {
        image: format!("{GUN}:1.0"),
        server: "https://127.0.0.1:4443".to_string(),
        signers: vec![NotarySigner {
            role: role.to_string(),
            public_key: key.map(str::to_string),
        }],
        ca_cert: None,
        root_keys: None,
    };
    assert_eq!(
        parse_signers(&req("jenkins", None)).unwrap()[0].role,
        "targets/jenkins"
    );
    assert_eq!(
        parse_signers(&req("targets/jenkins", None)).unwrap()[0].role,
        "targets/jenkins"
    );
    assert_eq!(
        parse_signers(&req("targets", None)).unwrap()[0].role,
        "targets"
    );
    assert!(parse_signers(&req("", None))
        .unwrap_err()
        .contains("signers[0]: empty role"));
    let err = parse_signers(&req("jenkins", Some("nope"))).unwrap_err();
    assert_eq!(
        err,
        "signers[0] (targets/jenkins): public_key: expected \"-----BEGIN ...-----\", found \"nope\""
    );
}

// --- repositories signed here, for tampered variants -----------------------

/// A P-256 key derived from a seed (deterministic, test-only).
#[derive(Clone)]
struct TestKey {
    signing: p256::ecdsa::SigningKey,
    entry: Value,
    id: String,
}

fn key(seed: &str) -> TestKey {
    let signing = p256::ecdsa::SigningKey::from_slice(&Sha256::digest(seed.as_bytes())).unwrap();
    let spki = signing.verifying_key().to_public_key_der().unwrap();
    let entry = json!({"keytype": "ecdsa", "keyval": {"private": null, "public": B64.encode(spki.as_bytes())}});
    let id = hex::encode(Sha256::digest(canonical::to_vec(&entry).unwrap()));
    TestKey { signing, entry, id }
}

/// Signs as `key`, claiming to be `claimed` (the same key unless a test lies).
struct Sig {
    key: TestKey,
    claimed: String,
}

fn by(key: &TestKey) -> Sig {
    Sig {
        key: key.clone(),
        claimed: key.id.clone(),
    }
}

fn envelope(signed: &Value, sigs: &[Sig]) -> Vec<u8> {
    let message = canonical::to_vec(signed).unwrap();
    let signatures: Vec<Value> = sigs
        .iter()
        .map(|s| {
            let sig: p256::ecdsa::Signature = s.key.signing.sign(&message);
            json!({"keyid": s.claimed, "method": "ecdsa", "sig": B64.encode(sig.to_bytes())})
        })
        .collect();
    serde_json::to_vec(&json!({"signed": signed, "signatures": signatures})).unwrap()
}

fn meta(bytes: &[u8]) -> Value {
    json!({"hashes": {"sha256": B64.encode(Sha256::digest(bytes)), "sha512": B64.encode(Sha512::digest(bytes))},
           "length": bytes.len()})
}

const FUTURE: &str = "2030-01-01T00:00:00Z";
const DIGEST: &str = "sha256:ae9ec4294fa57373460da70ceeddd75c1e092e852db99c9d544df036ce6f91b9";

/// A repository in the shape notary-server serves; tests edit the `signed`
/// objects and signer lists, then [`TestRepo::build`] signs bottom-up.
struct TestRepo {
    keys: BTreeMap<&'static str, TestKey>,
    root: Value,
    root_sigs: Vec<Sig>,
    timestamp: Value,
    timestamp_sigs: Vec<Sig>,
    snapshot: Value,
    snapshot_sigs: Vec<Sig>,
    targets: Value,
    targets_sigs: Vec<Sig>,
    delegations: BTreeMap<String, (Value, Vec<Sig>)>,
}

fn targets_entry(digest: &str, length: u64) -> Value {
    let raw = hex::decode(digest.trim_start_matches("sha256:")).unwrap();
    json!({"hashes": {"sha256": B64.encode(raw)}, "length": length})
}

impl TestRepo {
    fn new() -> TestRepo {
        let keys: BTreeMap<&'static str, TestKey> =
            ["root", "targets", "snapshot", "timestamp", "jenkins"]
                .into_iter()
                .map(|name| (name, key(name)))
                .collect();
        let role = |name: &str| json!({"keyids": [keys[name].id], "threshold": 1});
        let entries: serde_json::Map<String, Value> = ["root", "targets", "snapshot", "timestamp"]
            .into_iter()
            .map(|n| (keys[n].id.clone(), keys[n].entry.clone()))
            .collect();
        let root = json!({"_type": "Root", "consistent_snapshot": false, "expires": FUTURE, "keys": entries,
            "roles": {"root": role("root"), "targets": role("targets"), "snapshot": role("snapshot"),
                      "timestamp": role("timestamp")}, "version": 1});
        let targets = json!({"_type": "Targets", "expires": FUTURE, "version": 1, "targets": {},
            "delegations": {"keys": {keys["jenkins"].id.clone(): keys["jenkins"].entry.clone()},
                            "roles": [{"name": "targets/jenkins", "keyids": [keys["jenkins"].id], "threshold": 1, "paths": [""]}]}});
        let jenkins = json!({"_type": "Targets", "expires": FUTURE, "version": 1,
            "targets": {"1.0": targets_entry(DIGEST, 401)}, "delegations": {"keys": {}, "roles": []}});
        TestRepo {
            root_sigs: vec![by(&keys["root"])],
            timestamp_sigs: vec![by(&keys["timestamp"])],
            snapshot_sigs: vec![by(&keys["snapshot"])],
            targets_sigs: vec![by(&keys["targets"])],
            delegations: BTreeMap::from([(
                "targets/jenkins".to_string(),
                (jenkins, vec![by(&keys["jenkins"])]),
            )]),
            root,
            timestamp: json!({"_type": "Timestamp", "expires": FUTURE, "version": 1}),
            snapshot: json!({"_type": "Snapshot", "expires": FUTURE, "version": 1}),
            targets,
            keys,
        }
    }

    fn build(&self) -> RepoFiles {
        let root = envelope(&self.root, &self.root_sigs);
        let targets = envelope(&self.targets, &self.targets_sigs);
        let delegations: BTreeMap<String, Vec<u8>> = self
            .delegations
            .iter()
            .map(|(name, (signed, sigs))| (name.clone(), envelope(signed, sigs)))
            .collect();
        let mut snapshot = self.snapshot.clone();
        snapshot["meta"] = json!({"root": meta(&root), "targets": meta(&targets)});
        for (name, bytes) in &delegations {
            snapshot["meta"][name] = meta(bytes);
        }
        let snapshot = envelope(&snapshot, &self.snapshot_sigs);
        let mut timestamp = self.timestamp.clone();
        timestamp["meta"] = json!({"snapshot": meta(&snapshot)});
        let timestamp = envelope(&timestamp, &self.timestamp_sigs);
        RepoFiles {
            root,
            timestamp,
            snapshot,
            targets,
            delegations,
            root_rotations: Vec::new(),
        }
    }

    fn verify(&self) -> Result<Verified, String> {
        verify_repo(
            GUN,
            &self.build(),
            Anchor::FirstUse,
            &Versions::new(),
            valid_at(),
        )
    }

    fn jenkins_signs(&self, t: &str) -> Result<(String, String), String> {
        select(&self.verify()?, &tag(t), &[signer("targets/jenkins")])
    }
}

#[test]
fn generated_repository_verifies() {
    let repo = TestRepo::new();
    assert_eq!(
        repo.jenkins_signs("1.0").unwrap(),
        (DIGEST.to_string(), "targets/jenkins".to_string())
    );
}

#[test]
fn tampered_bad_signature() {
    let mut repo = TestRepo::new();
    let targets_id = repo.keys["targets"].id.clone();
    repo.targets_sigs = vec![Sig {
        key: key("not the targets key"),
        claimed: targets_id.clone(),
    }];
    let err = repo.verify().unwrap_err();
    assert_eq!(
        err,
        format!(
            "targets.json: signature by key {targets_id} does not verify (0 of 1 required valid)"
        )
    );
}

#[test]
fn tampered_expired_role() {
    let mut repo = TestRepo::new();
    repo.snapshot["expires"] = json!("2026-01-01T00:00:00.123Z");
    assert_eq!(
        repo.verify().unwrap_err(),
        "snapshot.json expired at 2026-01-01T00:00:00Z"
    );

    let mut repo = TestRepo::new();
    repo.delegations.get_mut("targets/jenkins").unwrap().0["expires"] =
        json!("2026-11-23T23:59:59Z");
    let err = repo.jenkins_signs("1.0").unwrap_err();
    assert!(
        err.ends_with("targets/jenkins.json expired at 2026-11-23T23:59:59Z"),
        "{err}"
    );
}

#[test]
fn tampered_wrong_key() {
    let mut repo = TestRepo::new();
    repo.timestamp_sigs = vec![by(&key("attacker"))];
    let err = repo.verify().unwrap_err();
    assert_eq!(
        err,
        format!(
            "timestamp.json: not signed by a key of role timestamp (signed by key {})",
            key("attacker").id
        )
    );

    // A delegation signed by the top-level targets key instead of its own.
    let mut repo = TestRepo::new();
    let targets_key = repo.keys["targets"].clone();
    repo.delegations.get_mut("targets/jenkins").unwrap().1 = vec![by(&targets_key)];
    let err = repo.jenkins_signs("1.0").unwrap_err();
    assert!(
        err.ends_with(
            "targets/jenkins.json: not signed by a key of role targets/jenkins (signed by key {})"
                .replace("{}", &targets_key.id)
                .as_str()
        ),
        "{err}"
    );
}

#[test]
fn tampered_threshold_not_met() {
    let mut repo = TestRepo::new();
    let second = key("second targets key");
    repo.root["keys"][&second.id] = second.entry.clone();
    repo.root["roles"]["targets"] =
        json!({"keyids": [repo.keys["targets"].id, second.id], "threshold": 2});
    // The same key twice counts once.
    repo.targets_sigs = vec![by(&repo.keys["targets"]), by(&repo.keys["targets"])];
    assert_eq!(
        repo.verify().unwrap_err(),
        "targets.json: threshold not met: 1 valid signature(s) by keys of role targets, 2 required"
    );
    repo.targets_sigs.push(by(&second));
    assert!(repo.verify().is_ok());
}

#[test]
fn tampered_rolled_back_version() {
    let mut repo = TestRepo::new();
    repo.timestamp["version"] = json!(4);
    let seen = Versions::from([("timestamp".to_string(), 5)]);
    let err = verify_repo(GUN, &repo.build(), Anchor::FirstUse, &seen, valid_at()).unwrap_err();
    assert_eq!(
        err,
        "timestamp.json: version 4 is older than the last seen version 5 (rollback)"
    );

    let seen = Versions::from([("targets/jenkins".to_string(), 2)]);
    let verified = verify_repo(GUN, &repo.build(), Anchor::FirstUse, &seen, valid_at()).unwrap();
    let err = select(&verified, &tag("1.0"), &[signer("targets/jenkins")]).unwrap_err();
    assert!(
        err.ends_with(
            "targets/jenkins.json: version 1 is older than the last seen version 2 (rollback)"
        ),
        "{err}"
    );
}

#[test]
fn tampered_hash_mismatch() {
    let repo = TestRepo::new();
    let mut files = repo.build();
    // A validly signed targets.json, but not the one snapshot.json pins.
    let mut targets = repo.targets.clone();
    targets["version"] = json!(2);
    files.targets = envelope(&targets, &[by(&repo.keys["targets"])]);
    assert_eq!(files.targets.len(), repo.build().targets.len());
    let err = verify_repo(GUN, &files, Anchor::FirstUse, &Versions::new(), valid_at()).unwrap_err();
    assert_eq!(err, "targets.json: hash does not match snapshot.json");

    files.targets.push(b'\n');
    let err = verify_repo(GUN, &files, Anchor::FirstUse, &Versions::new(), valid_at()).unwrap_err();
    let len = files.targets.len();
    assert_eq!(
        err,
        format!(
            "targets.json: length {len} does not match snapshot.json ({})",
            len - 1
        )
    );
}

#[test]
fn tampered_missing_delegation() {
    let mut repo = TestRepo::new();
    repo.targets["delegations"]["roles"] = json!([]);
    assert_eq!(
        repo.jenkins_signs("1.0").unwrap_err(),
        "1.0 is not signed by any of targets/jenkins: targets.json delegates no role targets/jenkins"
    );
    // Delegated but never published: not signed either.
    let mut repo = TestRepo::new();
    repo.delegations.clear();
    assert_eq!(
        repo.jenkins_signs("1.0").unwrap_err(),
        "1.0 is not signed by any of targets/jenkins: targets/jenkins: no trust data published (snapshot.json lists no targets/jenkins)"
    );
}

#[test]
fn delegation_paths_limit_what_a_signer_may_sign() {
    let mut repo = TestRepo::new();
    repo.targets["delegations"]["roles"][0]["paths"] = json!(["release-"]);
    let err = repo.jenkins_signs("1.0").unwrap_err();
    assert!(err.ends_with("targets/jenkins does not list 1.0"), "{err}");
}

#[test]
fn root_rotation_needs_the_trusted_root_keys() {
    let repo = TestRepo::new();
    let trusted = repo.build().root;
    let new_root_key = key("new root");
    let mut rotated = TestRepo::new();
    rotated.root["keys"][&new_root_key.id] = new_root_key.entry.clone();
    rotated.root["roles"]["root"] = json!({"keyids": [new_root_key.id], "threshold": 1});
    rotated.root["version"] = json!(2);
    rotated.root_sigs = vec![by(&new_root_key)];
    let verify = |repo: &TestRepo| {
        verify_repo(
            GUN,
            &repo.build(),
            Anchor::Trusted(&trusted),
            &Versions::new(),
            valid_at(),
        )
    };
    let err = verify(&rotated).unwrap_err();
    assert_eq!(
        err,
        format!(
            "root.json is not signed by the previous root (version 1): root.json: not signed by a key of role root (signed by key {})",
            new_root_key.id
        )
    );
    rotated.root_sigs.push(by(&repo.keys["root"]));
    assert!(verify(&rotated).is_ok());
    // Without the new key's own signature the rotation is not valid either.
    rotated.root_sigs.remove(0);
    assert!(verify(&rotated).is_err());
}

#[test]
fn wrong_type_and_garbage_are_named() {
    let repo = TestRepo::new();
    let mut files = repo.build();
    files.snapshot = files.timestamp.clone();
    let err = verify_repo(GUN, &files, Anchor::FirstUse, &Versions::new(), valid_at()).unwrap_err();
    assert!(err.starts_with("snapshot.json: "), "{err}");
    let mut files = repo.build();
    files.root = b"<html>".to_vec();
    let err = verify_repo(GUN, &files, Anchor::FirstUse, &Versions::new(), valid_at()).unwrap_err();
    assert!(err.starts_with("root.json: not JSON"), "{err}");
}

#[test]
fn root_rotations_are_walked_version_by_version() {
    let v1 = TestRepo::new();
    let trusted = v1.build().root;
    let (k2, k3) = (key("root v2"), key("root v3"));
    let rotate = |repo: &mut TestRepo, k: &TestKey, version: u64| {
        repo.root["keys"][&k.id] = k.entry.clone();
        repo.root["roles"]["root"] = json!({"keyids": [k.id], "threshold": 1});
        repo.root["version"] = json!(version);
    };
    let mut v2 = TestRepo::new();
    rotate(&mut v2, &k2, 2);
    v2.root_sigs = vec![by(&k2), by(&v1.keys["root"])];
    let mut v3 = TestRepo::new();
    rotate(&mut v3, &k3, 3);
    v3.root_sigs = vec![by(&k3), by(&k2)];
    let mut files = v3.build();
    let verify = |files: &RepoFiles| {
        verify_repo(
            GUN,
            files,
            Anchor::Trusted(&trusted),
            &Versions::new(),
            valid_at(),
        )
    };
    let err = verify(&files).unwrap_err();
    assert!(
        err.starts_with("root.json is not signed by the previous root (version 1)"),
        "{err}"
    );
    files.root_rotations = vec![v2.build().root];
    assert_eq!(verify(&files).unwrap().versions["root"], 3);
    // A rotation step not signed by its predecessor breaks the chain.
    v2.root_sigs = vec![by(&k2)];
    files.root_rotations = vec![v2.build().root];
    let err = verify(&files).unwrap_err();
    assert!(
        err.starts_with("2.root.json is not signed by the previous root (version 1)"),
        "{err}"
    );
    // Going back to an older root is not a rotation.
    let err = verify_repo(
        GUN,
        &v1.build(),
        Anchor::Trusted(&v3.build().root),
        &Versions::new(),
        valid_at(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        "root.json: version 1 does not follow the trusted root version 3"
    );
}

#[test]
fn verify_future_is_send() {
    // The dispatcher runs verifications on a multi-threaded runtime.
    fn is_send<T: Send>(_: &T) {}
    let notary = super::Notary::new(super::NotaryConfig::default(), None).unwrap();
    let req = NotaryVerifyRequest {
        image: format!("{GUN}:1.0"),
        server: "https://127.0.0.1:1".to_string(),
        signers: vec![],
        ca_cert: None,
        root_keys: None,
    };
    is_send(&notary.verify(&req));
}

fn request_to(server: String) -> NotaryVerifyRequest {
    NotaryVerifyRequest {
        image: format!("{GUN}:1.0"),
        server,
        signers: vec![],
        ca_cert: None,
        root_keys: None,
    }
}

#[tokio::test]
async fn server_down_is_reported_as_unreachable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let notary = super::Notary::new(super::NotaryConfig::default(), None).unwrap();
    let server = format!("https://127.0.0.1:{port}");
    let err = notary
        .verify(&request_to(server.clone()))
        .await
        .unwrap_err();
    assert!(!err.definite, "an unreachable server is not a refusal");
    assert!(
        err.message.starts_with(&format!(
            "notary: notary server {server} unreachable (timestamp.json): "
        )),
        "{err}"
    );
}

#[tokio::test]
async fn unresponsive_server_times_out() {
    // Accepts TCP connections (kernel backlog) but never answers the TLS handshake.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = format!("https://{}", listener.local_addr().unwrap());
    let config = super::NotaryConfig {
        timeout: std::time::Duration::from_millis(300),
        ..super::NotaryConfig::default()
    };
    let notary = super::Notary::new(config, None).unwrap();
    let err = notary
        .verify(&request_to(server.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        super::Failure::from(format!(
            "notary: notary server {server} unreachable (timestamp.json): timed out after 300ms"
        ))
    );
    drop(listener);
}

#[tokio::test]
async fn bad_request_fields_are_named() {
    let notary = super::Notary::new(super::NotaryConfig::default(), None).unwrap();
    let mut req = request_to("https://127.0.0.1:1".to_string());
    req.root_keys = Some(vec!["not pem".to_string()]);
    assert_eq!(
        notary.verify(&req).await.unwrap_err(),
        super::Failure::definite(
            "notary: root_keys[0]: expected \"-----BEGIN ...-----\", found \"not pem\""
        )
    );
    let mut req = request_to("https://127.0.0.1:1".to_string());
    req.ca_cert = Some("not pem".to_string());
    assert!(notary
        .verify(&req)
        .await
        .unwrap_err()
        .message
        .starts_with("notary: ca_cert: "));
}
