//! The bundle verifier on real bundles nobody here produced
//! (`tests/data/sigstore/SOURCES.md`), genuine and tampered: each failure
//! has its own message.

use base64::Engine as _;
use serde_json::{json, Value};

use super::bundle::{self, Outcome};
use super::signer::Signer;
use super::statement::Expect;
use super::trust_root::TrustRoot;
use imagegate_policy::wire::SignerIdentity;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const GITHUB: &str = "https://token.actions.githubusercontent.com";

macro_rules! data {
    ($path:literal) => {
        include_str!(concat!("../../../tests/data/sigstore/", $path))
    };
}

/// `bundle_v03.json`: ghcr.io/kubewarden/kubewarden-controller:v1.34.0.
const KUBEWARDEN: &str = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
const KUBEWARDEN_SAN: &str = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
/// 2026-04-10: after the signature, the certificate long expired.
const NOW: i64 = 1_775_800_000;

const SIGN: Expect<'static> = Expect::Signature { annotations: None };

fn root(text: &str) -> TrustRoot {
    super::trust_root::parse(text, "the test root".into()).unwrap()
}

fn public_good() -> TrustRoot {
    TrustRoot::load(None).unwrap()
}

fn signers(identities: &[SignerIdentity]) -> Vec<Signer> {
    Signer::compile(identities).unwrap()
}

fn keyless(issuer: &str, subject: &str) -> SignerIdentity {
    SignerIdentity::Keyless {
        issuer: issuer.into(),
        subject: subject.into(),
    }
}

fn github(owner: &str, repo: Option<&str>) -> SignerIdentity {
    SignerIdentity::GithubActions {
        owner: owner.into(),
        repo: repo.map(str::to_string),
    }
}

fn verify(
    json: &Value,
    subject: &str,
    expect: Expect<'_>,
    who: &[SignerIdentity],
    root: &TrustRoot,
) -> Result<Outcome, String> {
    let signers = signers(who);
    let expected = bundle::Expected {
        subject,
        expect,
        signers: &signers,
        root,
        now: NOW,
    };
    bundle::verify(json.to_string().as_bytes(), expected)
}

fn kubewarden() -> Value {
    serde_json::from_str(data!("sigstore-rs/bundle_v03.json")).unwrap()
}

/// Flips the last byte of a base64 field.
fn flip(v: &mut Value) {
    let mut bytes = B64.decode(v.as_str().unwrap()).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    *v = Value::String(B64.encode(bytes));
}

/// A change to a bundle, and to a trust root.
type Edit = Box<dyn Fn(&mut Value)>;
type RootEdit = Box<dyn FnOnce(&mut Value)>;

fn without_timestamp(mut bundle: Value) -> Value {
    bundle["verificationMaterial"]
        .as_object_mut()
        .unwrap()
        .remove("timestampVerificationData");
    bundle
}

fn entry(bundle: &mut Value) -> &mut Value {
    &mut bundle["verificationMaterial"]["tlogEntries"][0]
}

/// The public-good root with `edit` applied.
fn edited_root(edit: impl FnOnce(&mut Value)) -> TrustRoot {
    let mut value: Value =
        serde_json::from_str(include_str!("public_good_trusted_root.json")).unwrap();
    edit(&mut value);
    root(&value.to_string())
}

#[test]
fn cosign_v3_image_signature_verifies_with_its_log_entry() {
    // The SET alone vouches for the signing time (the timestamp is checked
    // in `cosign_v3_image_signature_verifies_completely`).
    let bundle = without_timestamp(kubewarden());
    let root = public_good();
    for who in [
        github("kubewarden", Some("kubewarden-controller")),
        github("KubeWarden", None),
        keyless(GITHUB, KUBEWARDEN_SAN),
        SignerIdentity::KeylessPrefix {
            issuer: GITHUB.into(),
            url_prefix: "https://github.com/kubewarden".into(),
        },
    ] {
        let o = verify(&bundle, KUBEWARDEN, SIGN, std::slice::from_ref(&who), &root)
            .unwrap_or_else(|e| panic!("{who:?}: {e}"));
        assert_eq!(o.format, "sigstore-bundle-v0.3");
        assert_eq!(
            o.evidence,
            [
                "tlog https://rekor.sigstore.dev #1261105807",
                "SCT https://ctfe.sigstore.dev/2022"
            ]
        );
        assert_eq!(o.signer, format!("{KUBEWARDEN_SAN} (issuer {GITHUB})"));
        assert_eq!(o.valid_until, None, "the SET vouches for the time");
        let claims = o.claims.unwrap();
        assert_eq!(claims["sourceRepositoryRef"], "refs/tags/v1.34.0");
        assert_eq!(claims["runnerEnvironment"], "github-hosted");
    }
    // The first identity that matches is the one reported.
    let o = verify(
        &bundle,
        KUBEWARDEN,
        SIGN,
        &[github("other", None), github("kubewarden", None)],
        &root,
    )
    .unwrap();
    assert_eq!(o.identity, 1);
}

/// Every tampering of the real bundle fails, each with its own message.
#[test]
fn tampered_cosign_v3_bundles_fail_each_with_its_reason() {
    let root = public_good();
    let who = [github("kubewarden", Some("kubewarden-controller"))];
    let fails = |edit: &dyn Fn(&mut Value)| {
        let mut bundle = without_timestamp(kubewarden());
        edit(&mut bundle);
        verify(&bundle, KUBEWARDEN, SIGN, &who, &root).unwrap_err()
    };
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("signature", Box::new(|b| flip(&mut b["dsseEnvelope"]["signatures"][0]["sig"])),
         "the signature does not verify with the signing certificate's key"),
        ("SET", Box::new(|b| flip(&mut entry(b)["inclusionPromise"]["signedEntryTimestamp"])),
         "tlog entry 0: the signed entry timestamp of entry 1261105807 is not signed by https://rekor.sigstore.dev"),
        ("integratedTime", Box::new(|b| entry(b)["integratedTime"] = json!("1775719469")),
         "tlog entry 0: the signed entry timestamp of entry 1261105807 is not signed by https://rekor.sigstore.dev"),
        ("proof hash", Box::new(|b| flip(&mut entry(b)["inclusionProof"]["hashes"][3])),
         "tlog entry 0: inclusion proof in https://rekor.sigstore.dev does not verify: Inclusion Proof error: MismatchedRoot"),
        ("checkpoint size", Box::new(|b| {
            let cp = &mut entry(b)["inclusionProof"]["checkpoint"]["envelope"];
            *cp = json!(cp.as_str().unwrap().replace("\n1139201557\n", "\n1139201558\n"));
         }),
         "tlog entry 0: inclusion proof in https://rekor.sigstore.dev does not verify: No valid signature found for checkpoint"),
        ("checkpoint signer", Box::new(|b| {
            let cp = &mut entry(b)["inclusionProof"]["checkpoint"]["envelope"];
            *cp = json!(cp.as_str().unwrap().replace("\u{2014} rekor.sigstore.dev ", "\u{2014} rekor.example "));
         }),
         "tlog entry 0: the checkpoint carries no signature of https://rekor.sigstore.dev"),
        ("no proof", Box::new(|b| { entry(b).as_object_mut().unwrap().remove("inclusionProof"); }),
         "tlog entry 0: entry 1261105807 of https://rekor.sigstore.dev has no inclusion proof (required by bundle v0.2 and later)"),
        ("kind", Box::new(|b| entry(b)["kindVersion"] = json!({"kind": "intoto", "version": "0.0.2"})),
         "tlog entry 0: kindVersion intoto 0.0.2 disagrees with the body (dsse 0.0.1)"),
        ("body", Box::new(|b| {
            let e = entry(b);
            let mut body: Value = serde_json::from_slice(&B64.decode(e["canonicalizedBody"].as_str().unwrap()).unwrap()).unwrap();
            body["spec"]["payloadHash"]["value"] = json!("00".repeat(32));
            e["canonicalizedBody"] = json!(B64.encode(body.to_string()));
         }),
         "tlog entry 0: the log entry's payload hash is not that of the signed payload"),
        ("unknown body kind", Box::new(|b| {
            let e = entry(b);
            e["canonicalizedBody"] = json!(B64.encode(r#"{"apiVersion":"0.0.1","kind":"rekord"}"#));
            e.as_object_mut().unwrap().remove("kindVersion");
         }),
         "tlog entry 0: unsupported tlog entry kind rekord v0.0.1"),
        ("log id", Box::new(|b| entry(b)["logId"]["keyId"] = json!(B64.encode([7u8; 32]))),
         "tlog entry 0: log 0707070707070707070707070707070707070707070707070707070707070707 is not in the embedded public-good trust root"),
        ("media type", Box::new(|b| b["mediaType"] = json!("application/vnd.dev.sigstore.bundle.v0.4+json")),
         r#"unsupported bundle media type "application/vnd.dev.sigstore.bundle.v0.4+json""#),
        ("payload type", Box::new(|b| b["dsseEnvelope"]["payloadType"] = json!("text/plain")),
         "DSSE payload type \"text/plain\" is not application/vnd.in-toto+json"),
        ("two signatures", Box::new(|b| {
            let sig = b["dsseEnvelope"]["signatures"][0].clone();
            b["dsseEnvelope"]["signatures"].as_array_mut().unwrap().push(sig);
         }),
         "the DSSE envelope has 2 signatures (exactly one is supported)"),
        ("message signature", Box::new(|b| {
            let o = b.as_object_mut().unwrap();
            o.remove("dsseEnvelope");
            o.insert("messageSignature".into(), json!({"messageDigest": {"algorithm": "SHA2_256", "digest": B64.encode([0u8; 32])}, "signature": B64.encode([1u8])}));
         }),
         "a message-signature bundle (a blob signature), not an image signature or attestation"),
        ("chain with a root", Box::new(|b| {
            let leaf = b["verificationMaterial"]["certificate"]["rawBytes"].clone();
            let root_ca = serde_json::from_str::<Value>(include_str!("public_good_trusted_root.json")).unwrap()
                ["certificateAuthorities"][1]["certChain"]["certificates"][1]["rawBytes"].clone();
            let m = b["verificationMaterial"].as_object_mut().unwrap();
            m.remove("certificate");
            m.insert("x509CertificateChain".into(), json!({"certificates": [{"rawBytes": leaf}, {"rawBytes": root_ca}]}));
         }),
         "the certificate chain carried contains a root: roots come from the trust root only"),
        ("not JSON", Box::new(|b| *b = json!([1])),
         "not a sigstore bundle: invalid type: sequence, expected a map"),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (name, edit, message) in cases {
        let got = fails(&*edit);
        assert!(got.starts_with(message), "{name}: {got}");
        seen.insert(got);
    }
    assert_eq!(
        seen.len(),
        16,
        "one message per kind of failure (SET twice)"
    );
}

#[test]
fn the_statement_must_be_a_signature_of_this_digest_by_this_signer() {
    let root = public_good();
    let bundle = without_timestamp(kubewarden());
    let other = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let who = [github("kubewarden", None)];
    assert_eq!(
        verify(&bundle, other, SIGN, &who, &root).unwrap_err(),
        format!("the statement's subject does not name {other}")
    );
    let slsa = Expect::Attestation {
        predicate_type: "https://slsa.dev/provenance/v1",
    };
    assert_eq!(
        verify(&bundle, KUBEWARDEN, slsa, &who, &root).unwrap_err(),
        r#"predicateType "https://sigstore.dev/cosign/sign/v1" is not the requested "https://slsa.dev/provenance/v1""#
    );
    let annotations = [("env".to_string(), "prod".to_string())].into();
    assert_eq!(
        verify(
            &bundle,
            KUBEWARDEN,
            Expect::Signature {
                annotations: Some(&annotations)
            },
            &who,
            &root
        )
        .unwrap_err(),
        "annotation env=prod is not signed (signed annotations: {})"
    );
    assert_eq!(
        verify(&bundle, KUBEWARDEN, SIGN, &[keyless(GITHUB, "https://github.com/kubewarden/evil"), github("kubewarden", Some("policy-server"))], &root).unwrap_err(),
        format!("signed by someone else: keyless {GITHUB} https://github.com/kubewarden/evil: subject \"{KUBEWARDEN_SAN}\" is not \"https://github.com/kubewarden/evil\"; \
                 GitHub Actions kubewarden/policy-server: signed by a workflow of kubewarden/kubewarden-controller, not of kubewarden/policy-server")
    );
    let key = SignerIdentity::Key {
        pem: data!("sigstore-go/publish_key.pub").into(),
    };
    assert_eq!(
        verify(&bundle, KUBEWARDEN, SIGN, &[key], &root).unwrap_err(),
        "signed by someone else: key sha256:1e908a55459fe6dd: the certificate's key is another key"
    );
}

#[test]
fn the_trust_root_decides_which_ca_logs_and_times_count() {
    let bundle = without_timestamp(kubewarden());
    let who = [github("kubewarden", None)];
    let check = |root: TrustRoot| verify(&bundle, KUBEWARDEN, SIGN, &who, &root);
    // Without CT logs no SCT is required.
    let o = check(edited_root(|r| r["ctlogs"] = json!([]))).unwrap();
    assert_eq!(o.evidence, ["tlog https://rekor.sigstore.dev #1261105807"]);
    let cases: Vec<(RootEdit, &str)> = vec![
        (Box::new(|r| r["ctlogs"][1]["logId"]["keyId"] = json!(B64.encode([9u8; 32]))),
         "no SCT from a CT log of the test root (logs dd3d306ac6c7113263191e1c99673702a24a5eb8de3cadff878a72802f29ee8e)"),
        (Box::new(|r| r["ctlogs"][1]["publicKey"]["rawBytes"] = r["ctlogs"][0]["publicKey"]["rawBytes"].clone()),
         "the SCT of CT log https://ctfe.sigstore.dev/2022 does not verify"),
        (Box::new(|r| r["ctlogs"][1]["publicKey"]["validFor"] = json!({"start": "2026-05-01T00:00:00Z"})),
         "the SCT of CT log https://ctfe.sigstore.dev/2022 is from 2026-04-09T07:23:29Z, outside its validity (from 2026-05-01T00:00:00Z)"),
        (Box::new(|r| r["certificateAuthorities"] = json!([])),
         "the certificate does not chain to a certificate authority of the test root (none listed)"),
        (Box::new(|r| { r["certificateAuthorities"][1]["validFor"]["end"] = json!("2026-01-01T00:00:00Z"); r["certificateAuthorities"].as_array_mut().unwrap().remove(0); }),
         "the certificate does not chain to a certificate authority of the test root (https://fulcio.sigstore.dev was not valid at 2026-04-09T07:23:29Z (valid from 2022-04-13T20:06:15Z to 2026-01-01T00:00:00Z))"),
        (Box::new(|r| r["tlogs"][0]["publicKey"]["validFor"]["end"] = json!("2026-01-01T00:00:00Z")),
         "tlog entry 0: log https://rekor.sigstore.dev was not valid at 2026-04-09T07:23:29Z (valid from 2021-01-12T11:53:27Z to 2026-01-01T00:00:00Z)"),
        (Box::new(|r| r["tlogs"] = json!([])),
         "tlog entry 0: log c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d is not in the test root"),
    ];
    for (edit, message) in cases {
        assert_eq!(check(edited_root(edit)).unwrap_err(), message);
    }
}

#[test]
fn cosign_attest_bundle_verifies_with_its_statement_and_claims() {
    // sigstore 0.15's own verifier rejects this real bundle (envelopeHash).
    let bundle: Value =
        serde_json::from_str(data!("cosign/oci-attestation.sigstore.json")).unwrap();
    let root = root(data!("cosign/trusted_root_pgi.json"));
    let subject = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4";
    let expect = Expect::Attestation {
        predicate_type: "https://cosign.sigstore.dev/attestation/v1",
    };
    let who = [keyless(
        "https://github.com/login/oauth",
        "cody@soyland.com",
    )];
    let o = verify(&bundle, subject, expect, &who, &root).unwrap();
    assert_eq!(o.statement["predicate"]["Data"], "{\"foo\": \"bar\"}\n");
    assert_eq!(o.statement["_type"], "https://in-toto.io/Statement/v0.1");
    let claims = o.claims.unwrap();
    assert_eq!(
        (claims["subject"].as_str(), claims["issuer"].as_str()),
        ("cody@soyland.com", "https://github.com/login/oauth")
    );
    assert_eq!(
        verify(&bundle, subject, SIGN, &who, &root).unwrap_err(),
        "a cosign signature is an in-toto Statement v1, this is https://in-toto.io/Statement/v0.1"
    );
    assert_eq!(
        verify(
            &bundle,
            subject,
            expect,
            &[keyless("https://accounts.google.com", "cody@soyland.com")],
            &root
        )
        .unwrap_err(),
        r#"signed by someone else: keyless https://accounts.google.com cody@soyland.com: issuer "https://github.com/login/oauth" is not "https://accounts.google.com""#
    );
}

#[test]
fn github_attestations_verify_by_source_repository_and_exact_issuer() {
    let slsa = Expect::Attestation {
        predicate_type: "https://slsa.dev/provenance/v1",
    };
    let root = root(data!("gh-cli/trusted_root.json"));
    let reusable: Value =
        serde_json::from_str(data!("gh-cli/reusable-workflow-attestation.sigstore.json")).unwrap();
    let subject = "sha256:49a3aa6075e0f49f82843e74b5baa614ad2a588e6675612bf108a0a008c5ac25";
    let o = verify(
        &reusable,
        subject,
        slsa,
        &[github("malancas", Some("attest-demo"))],
        &root,
    )
    .unwrap();
    let claims = o.claims.unwrap();
    assert_eq!(
        claims["buildConfigURI"],
        "https://github.com/malancas/attest-demo/.github/workflows/shared.yml@refs/heads/main"
    );
    assert_eq!(
        o.statement["predicate"]["runDetails"]["builder"]["id"],
        "https://github.com/actions/runner/github-hosted"
    );
    assert_eq!(
        verify(&reusable, subject, slsa, &[github("github", None)], &root).unwrap_err(),
        "signed by someone else: GitHub Actions github: signed by a workflow of malancas/attest-demo, not of owner github"
    );
    // A GitHub Enterprise tenant's issuer is not GitHub's: exact match only.
    let custom: Value = serde_json::from_str(data!("gh-cli/custom-issuer.sigstore.json")).unwrap();
    let subject = "sha256:afa27b44d43b02a9fea41d13cedc2e4016cfcf87c5dbf990e593669aa8ce286d";
    assert_eq!(
        verify(&custom, subject, slsa, &[github("too-legit", None)], &root).unwrap_err(),
        r#"signed by someone else: GitHub Actions too-legit: issuer "https://token.actions.githubusercontent.com/hammer-time" is not "https://token.actions.githubusercontent.com""#
    );
    let tenant = keyless(
        "https://token.actions.githubusercontent.com/hammer-time",
        "https://github.com/too-legit/attest/.github/workflows/integration.yml@refs/heads/main",
    );
    assert!(verify(&custom, subject, slsa, &[tenant], &root).is_ok());
}

#[test]
fn npm_provenance_verifies_on_its_sha512_subject() {
    let bundle: Value =
        serde_json::from_str(data!("sigstore-rs/npm_slsa_bundle_v03.json")).unwrap();
    let subject = "sha512:849a897e81bf7b8a8541a6ae40bd3473a27a16b1cb0462ad905bd6dc96d34881053a12eb4a375233f81677fc9439f628fe0b0445e8535c60b5559597fbd5f80e";
    let slsa = Expect::Attestation {
        predicate_type: "https://slsa.dev/provenance/v1",
    };
    let o = verify(
        &bundle,
        subject,
        slsa,
        &[github("sigstore", Some("sigstore-js"))],
        &public_good(),
    )
    .unwrap();
    assert_eq!(
        o.claims.unwrap()["oid.1.3.6.1.4.1.57264.1.24"],
        "repo:sigstore/sigstore-js:ref:refs/heads/main"
    );
}

#[test]
fn key_based_bundle_verifies_with_the_configured_key_only() {
    let bundle: Value = serde_json::from_str(data!("sigstore-go/bundle-publish.json")).unwrap();
    let root = root(data!("sigstore-go/trusted-root-public-good.json"));
    let subject = "sha512:76176ffa33808b54602c7c35de5c6e9a4deb96066dba6533f50ac234f4f1f4c6b3527515dc17c06fbe2860030f410eee69ea20079bd3a2c6f3dcf3b329b10751";
    let expect = Expect::Attestation {
        predicate_type: "https://github.com/npm/attestation/tree/main/specs/publish/v0.1",
    };
    let key = SignerIdentity::Key {
        pem: data!("sigstore-go/publish_key.pub").into(),
    };
    let other = SignerIdentity::Key {
        pem: rcgen::KeyPair::generate().unwrap().public_key_pem(),
    };
    let o = verify(
        &bundle,
        subject,
        expect,
        &[other.clone(), key.clone()],
        &root,
    )
    .unwrap();
    assert_eq!((o.identity, o.format.as_str()), (1, "sigstore-bundle-v0.1"));
    assert_eq!(o.evidence, ["tlog https://rekor.sigstore.dev #18300940"]);
    assert!(o.claims.is_none());
    // The key hint selects nothing: a forged hint changes nothing.
    let mut hinted = bundle.clone();
    hinted["verificationMaterial"]["publicKey"]["hint"] = json!("forged");
    assert!(verify(&hinted, subject, expect, std::slice::from_ref(&key), &root).is_ok());
    assert_eq!(
        verify(&bundle, subject, expect, &[other], &root).unwrap_err(),
        "signed with a key, and no configured key verifies the signature"
    );
    assert_eq!(
        verify(&bundle, subject, expect, &[github("npm", None)], &root).unwrap_err(),
        "signed with a key, not with a Fulcio certificate"
    );
    let mut unpromised = bundle.clone();
    entry(&mut unpromised)
        .as_object_mut()
        .unwrap()
        .remove("inclusionPromise");
    assert_eq!(
        verify(&unpromised, subject, expect, &[key], &root).unwrap_err(),
        "tlog entry 0: entry 18300940 of https://rekor.sigstore.dev has no signed entry timestamp (required by bundle v0.1)"
    );
}

/// sigstore-conformance's DSSE cases that carry no signed timestamp
/// (the others are in `conformance_cases_with_timestamps`).
#[test]
fn conformance_cases() {
    let cases = [
        ("happy-path-intoto-in-dsse-v3", Ok(())),
        ("dsse-invalid-sig_fail", Err("the signature does not verify with the signing certificate's key")),
        ("dsse-mismatch-envelope_fail", Err("tlog entry 0: the log entry's payload hash is not that of the signed payload")),
        ("dsse-mismatch-sig_fail", Err("tlog entry 0: the log entry records another signature")),
        ("intoto-log-entry-mismatch_fail", Err("tlog entry 0: the log entry records another signature")),
        ("intoto-missing-inclusion-proof_fail", Err("tlog entry 0: entry 4288993 of http://localhost:8000 has no inclusion proof (required by bundle v0.2 and later)")),
        ("intoto-expired-certificate_fail", Err("the certificate does not chain to a certificate authority of the test root (http://localhost:8000: certificate \"\" does not chain to a trusted certificate at 2023-02-01T00:00:00Z: a certificate in the path is outside its validity period)")),
        ("intoto-set-outside-signing-cert-validity_fail", Err("the certificate does not chain to a certificate authority of the test root (http://localhost:8000: certificate \"\" does not chain to a trusted certificate at 2023-02-02T00:00:00Z: a certificate in the path is outside its validity period)")),
        ("rekor2-dsse-invalid-sig_fail", Err("the signature does not verify with the signing certificate's key")),
    ];
    for (case, expected) in cases {
        let got = conformance(case).map(|_| ());
        match expected {
            Ok(()) => assert!(got.is_ok(), "{case}: {got:?}"),
            Err(message) => {
                let got = got.unwrap_err();
                assert!(got.starts_with(message), "{case}: {got}");
            }
        }
    }
}

/// Runs one conformance case with the suite's identity.
fn conformance(case: &str) -> Result<Outcome, String> {
    use sha2::Digest;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sigstore/sigstore-conformance/bundle-verify");
    let case_dir = dir.join(case);
    let root = std::fs::read_to_string(case_dir.join("trusted_root.json"))
        .map(|t| root(&t))
        .unwrap_or_else(|_| public_good());
    let artifact = std::fs::read(case_dir.join("artifact"))
        .unwrap_or_else(|_| std::fs::read(dir.join("a.txt")).unwrap());
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&artifact)));
    let bundle: Value = serde_json::from_str(
        &std::fs::read_to_string(case_dir.join("bundle.sigstore.json")).unwrap(),
    )
    .unwrap();
    let payload = B64
        .decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let predicate_type = serde_json::from_slice::<Value>(&payload).unwrap()["predicateType"]
        .as_str()
        .unwrap()
        .to_string();
    let beacon = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
    verify(
        &bundle,
        &digest,
        Expect::Attestation {
            predicate_type: &predicate_type,
        },
        &[keyless(GITHUB, beacon)],
        &root,
    )
}

#[test]
fn cosign_v3_image_signature_verifies_completely() {
    let who = [github("kubewarden", Some("kubewarden-controller"))];
    let o = verify(&kubewarden(), KUBEWARDEN, SIGN, &who, &public_good()).unwrap();
    assert_eq!(
        o.evidence,
        [
            "timestamp 2026-04-09T07:23:29Z by https://timestamp.sigstore.dev/api/v1/timestamp",
            "tlog https://rekor.sigstore.dev #1261105807",
            "SCT https://ctfe.sigstore.dev/2022"
        ]
    );
}

#[test]
fn signed_timestamps_must_verify_and_count_only_from_a_trusted_authority() {
    fn token(b: &mut Value) -> &mut Value {
        &mut b["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]
            ["signedTimestamp"]
    }
    let who = [github("kubewarden", None)];
    let mut corrupt = kubewarden();
    flip(token(&mut corrupt));
    let got = verify(&corrupt, KUBEWARDEN, SIGN, &who, &public_good()).unwrap_err();
    assert!(got.starts_with("RFC 3161 timestamp 0: not signed by a timestamp authority of the embedded public-good trust root (https://timestamp.sigstore.dev/api/v1/timestamp: "), "{got}");
    let cases: Vec<(RootEdit, &str)> = vec![
        (Box::new(|r| r["timestampAuthorities"] = json!([])),
         "RFC 3161 timestamp 0: not signed by a timestamp authority of the test root (none listed)"),
        (Box::new(|r| r["timestampAuthorities"][0]["validFor"] = json!({"start": "2026-05-01T00:00:00Z"})),
         "RFC 3161 timestamp 0: signed by https://timestamp.sigstore.dev/api/v1/timestamp at 2026-04-09T07:23:29Z, outside its validity (from 2026-05-01T00:00:00Z)"),
    ];
    for (edit, message) in cases {
        assert_eq!(
            verify(&kubewarden(), KUBEWARDEN, SIGN, &who, &edited_root(edit)).unwrap_err(),
            message
        );
    }
    // A timestamp is a time, not a log entry: the public-good root lists logs.
    let mut unlogged = kubewarden();
    unlogged["verificationMaterial"]["tlogEntries"] = json!([]);
    assert_eq!(
        verify(&unlogged, KUBEWARDEN, SIGN, &who, &public_good()).unwrap_err(),
        "no transparency-log entry, and the embedded public-good trust root lists transparency logs"
    );
    // Without a SET or a timestamp nothing says when the certificate signed.
    let mut timeless = without_timestamp(kubewarden());
    timeless["verificationMaterial"]["tlogEntries"] = json!([]);
    assert_eq!(
        verify(&timeless, KUBEWARDEN, SIGN, &who, &public_good()).unwrap_err(),
        "no verified time: a certificate signature needs a signed entry timestamp or an RFC 3161 timestamp"
    );
}

/// GitHub's own Sigstore instance is not in any trust root available
/// offline: its attestation cannot pass.
#[test]
fn github_instance_attestations_need_githubs_trust_root() {
    let demo: Value = serde_json::from_str(
        data!("gh-cli/github_provenance_demo-0.0.12-py3-none-any-bundle.jsonl")
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let subject = "sha256:ae57936def59bc4c75edd3a837d89bcefc6d3a5e31d55a6fa7a71624f92c3c3b";
    let slsa = Expect::Attestation {
        predicate_type: "https://slsa.dev/provenance/v1",
    };
    let got = verify(
        &demo,
        subject,
        slsa,
        &[github("actions", None)],
        &public_good(),
    )
    .unwrap_err();
    assert!(got.starts_with("RFC 3161 timestamp 0: not signed by a timestamp authority of the embedded public-good trust root"), "{got}");
}

#[test]
fn conformance_cases_with_timestamps() {
    let cases = [
        ("intoto-with-custom-trust-root", Ok("timestamp 2023-02-01T00:00:00Z by http://localhost:8000")),
        ("rekor2-dsse-happy-path", Ok("timestamp 2026-05-13T19:23:33Z by https://timestamp.sigstage.dev/api/v1/timestamp")),
        ("intoto-tsa-timestamp-outside-cert-validity_fail", Err("the certificate does not chain to a certificate authority of the test root (http://localhost:8000: certificate \"\" does not chain to a trusted certificate at 2023-02-02T00:00:00Z: a certificate in the path is outside its validity period)")),
        ("rekor2-dsse-mismatch-envelope_fail", Err("tlog entry 0: the hashedrekord entry's digest is not that of the signed envelope")),
        ("rekor2-dsse-mismatch-sig_fail", Err("tlog entry 0: the log entry records another signature")),
    ];
    for (case, expected) in cases {
        match (conformance(case), expected) {
            (Ok(o), Ok(first)) => assert_eq!(o.evidence[0], first, "{case}"),
            (Err(e), Err(message)) => assert_eq!(e, message, "{case}"),
            (got, _) => panic!("{case}: {:?}", got.map(|o| o.evidence)),
        }
    }
}

/// cosign's attestation layers (`.att`) signed with a key, as
/// `cosign attest --key --tlog-upload=false` writes them.
#[test]
fn legacy_attestation_layers() {
    use rcgen::SigningKey as _;
    use std::collections::BTreeMap;
    let key = rcgen::KeyPair::generate().unwrap();
    let statement = |hex: &str| {
        json!({"_type": "https://in-toto.io/Statement/v0.1", "predicateType": "https://slsa.dev/provenance/v0.2",
               "subject": [{"name": "x", "digest": {"sha256": hex}}], "predicate": {"builder": {"id": "ci"}}})
        .to_string()
    };
    let layer = |payload: &str, signer: &rcgen::KeyPair| {
        let pae = super::statement::pae("application/vnd.in-toto+json", payload.as_bytes());
        json!({"payloadType": "application/vnd.in-toto+json", "payload": B64.encode(payload),
               "signatures": [{"keyid": "", "sig": B64.encode(signer.sign(&pae).unwrap())}]})
        .to_string()
    };
    let hex = &KUBEWARDEN[7..];
    let expect = Expect::Attestation {
        predicate_type: "https://slsa.dev/provenance/v0.2",
    };
    let mine = [SignerIdentity::Key {
        pem: key.public_key_pem(),
    }];
    let run = |layer: &str, annotations: &BTreeMap<String, String>, who: &[SignerIdentity]| {
        let (signers, root) = (signers(who), public_good());
        let expected = bundle::Expected {
            subject: KUBEWARDEN,
            expect,
            signers: &signers,
            root: &root,
            now: NOW,
        };
        super::legacy::verify(layer.as_bytes(), annotations, expected)
    };
    let none = BTreeMap::new();
    let o = run(&layer(&statement(hex), &key), &none, &mine).unwrap();
    assert_eq!(
        (
            o.format.as_str(),
            o.statement["predicate"]["builder"]["id"].as_str()
        ),
        ("cosign-attestation-layer", Some("ci"))
    );
    let other = rcgen::KeyPair::generate().unwrap();
    assert_eq!(
        run(&layer(&statement(hex), &other), &none, &mine).unwrap_err(),
        "signed with a key, and no configured key verifies the signature"
    );
    assert_eq!(
        run(
            &layer(&statement(hex), &key),
            &none,
            &[github("corp", None)]
        )
        .unwrap_err(),
        "signed with a key, not with a Fulcio certificate"
    );
    assert_eq!(
        run(&layer(&statement(&"1".repeat(64)), &key), &none, &mine).unwrap_err(),
        format!("the statement's subject does not name {KUBEWARDEN}")
    );
    let unknown_log: BTreeMap<String, String> = [(
        super::legacy::BUNDLE_ANNOTATION.to_string(),
        json!({"SignedEntryTimestamp": "AA==", "Payload": {"body": "e30=", "integratedTime": 1, "logIndex": 1, "logID": "ab"}}).to_string(),
    )]
    .into();
    assert_eq!(
        run(&layer(&statement(hex), &key), &unknown_log, &mine).unwrap_err(),
        "the Rekor bundle's log ab is not in the embedded public-good trust root"
    );
    assert!(run("{}", &none, &mine)
        .unwrap_err()
        .starts_with("not a DSSE envelope: missing field"));
}

#[test]
fn identities_are_read_once_with_their_position() {
    let bad = [
        github("corp", None),
        SignerIdentity::Key {
            pem: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into(),
        },
    ];
    let e = Signer::compile(&bad).unwrap_err();
    assert!(e.starts_with("identities[1]: "), "{e}");
    assert_eq!(
        Signer::compile(&[]).unwrap_err(),
        "no identities: a check needs at least one signer"
    );
    let prefix = Signer::compile(&[SignerIdentity::KeylessPrefix {
        issuer: GITHUB.into(),
        url_prefix: "https://github.com/corp".into(),
    }])
    .unwrap();
    assert_eq!(
        prefix[0].describe(),
        format!("keyless {GITHUB} https://github.com/corp/*")
    );
}
