//! `imagegate/v1/check_signature` and `verify_attestation` against a real
//! Debian docker-registry (no referrers API: the referrers tag schema is the
//! path that runs for real), with images signed by the lab in every format:
//! cosign v3 bundles (key and keyless, with SCT, Rekor entry and RFC 3161
//! timestamp from the fake Sigstore), legacy `.sig` and `.att`, multi-arch
//! indexes with a BuildKit attestation manifest. Each answer is checked for
//! what verified and for what each path found; the registry's access log
//! counts the round trips; the lab's referrers API front
//! ([`ReferrersFront`]) runs the API path and counts its round trips.

#[allow(dead_code)]
mod support;

use imagegate::capabilities::live::{Live, LiveConfig};
use imagegate::capabilities::oci::OciConfig;
use imagegate::capabilities::{Backend, Request};
use imagegate::registry::RegistryConfig;
use imagegate_policy::wire::{
    AttestationVerifyRequest, ImageVerifyResponse, Platforms, SignatureVerifyRequest,
    SignerIdentity, SigstoreVerifyRequest,
};
use serde_json::json;
use std::collections::BTreeMap;
use support::bundle::{self, Signer, Statement};
use support::cosign::{self, CosignKey, SignOptions};
use support::image::{Format, Image};
use support::referrers::ReferrersFront;
use support::registry::{self, Registry, Variant};
use support::sigstore::{FakeSigstore, Identity};
use support::token::TokenService;

const GITHUB: &str = "https://token.actions.githubusercontent.com";
const SLSA: &str = "https://slsa.dev/provenance/v1";
const WORKFLOW: &str = "https://github.com/corp/app/.github/workflows/release.yml@refs/heads/main";

struct Lab {
    registry: Registry,
    sigstore: FakeSigstore,
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
}

impl Lab {
    fn start(logged: bool) -> Option<Lab> {
        if !registry::available() {
            return None;
        }
        let registry = if logged {
            Registry::start_logged(Variant::Plain)
        } else {
            Registry::start(Variant::Plain)
        };
        Some(Lab {
            registry,
            sigstore: FakeSigstore::new(),
            rt: tokio::runtime::Runtime::new().expect("runtime"),
            dir: tempfile::tempdir().expect("temp dir"),
        })
    }

    /// The live backend, trusting the fake Sigstore (or, with `false`, the
    /// embedded public-good root).
    fn live(&self, fake_trust: bool) -> Live {
        self.live_at(&self.registry.addr, fake_trust)
    }

    /// [`Lab::live`] for the registry at `addr` (the registry or a front).
    fn live_at(&self, addr: &str, fake_trust: bool) -> Live {
        live_for(
            addr,
            fake_trust.then(|| self.sigstore.write_trust_config(self.dir.path())),
        )
    }

    /// Pushes `repo:1.0` (one platform): its digest.
    fn push(&self, repo: &str) -> String {
        self.rt
            .block_on(Image::single(repo, Format::Oci).push(&self.registry, repo, "1.0"))
    }

    /// Signs `repo@digest` with `key` as cosign before v3 did (`.sig` tag).
    fn sign_legacy(&self, repo: &str, digest: &str, key: &CosignKey) {
        self.rt.block_on(cosign::sign(
            &self.registry,
            repo,
            digest,
            key,
            &SignOptions::default(),
        ));
    }

    fn image(&self, repo: &str) -> String {
        self.registry.image(repo, "1.0")
    }

    fn keyless(&self, tlog: bool, timestamp: bool) -> (support::certs::Leaf, bool, bool) {
        (
            self.sigstore
                .keyless_certificate(Identity::Uri(WORKFLOW), GITHUB, Some("corp/app")),
            tlog,
            timestamp,
        )
    }
}

/// The live backend, uncached, for the plain-http registry at `addr`, with
/// `trust_config` (else the embedded public-good root).
fn live_for(addr: &str, trust_config: Option<std::path::PathBuf>) -> Live {
    Live::new(LiveConfig {
        oci: OciConfig {
            registry: RegistryConfig {
                insecure_registries: vec![addr.to_string()],
                ..RegistryConfig::default()
            },
            sigstore_trust_config: trust_config,
        },
        cache: None,
        ..LiveConfig::default()
    })
    .expect("live backend")
}

fn answer(live: &Live, request: Request) -> Result<ImageVerifyResponse, String> {
    live.answer(&request, None)
        .map(|bytes| serde_json::from_slice(&bytes).expect("an ImageVerifyResponse"))
}

fn signature(
    live: &Live,
    image: &str,
    identities: Vec<SignerIdentity>,
    annotations: &[(&str, &str)],
    platforms: Platforms,
) -> ImageVerifyResponse {
    let annotations: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    answer(
        live,
        Request::VerifySignature(SignatureVerifyRequest {
            image: image.to_string(),
            platforms,
            identities,
            annotations: (!annotations.is_empty()).then_some(annotations),
        }),
    )
    .expect("an answer")
}

fn key(key: &CosignKey) -> SignerIdentity {
    SignerIdentity::Key {
        pem: key.public_pem(),
    }
}

fn github(owner: &str) -> SignerIdentity {
    SignerIdentity::GithubActions {
        owner: owner.into(),
        repo: Some("app".into()),
    }
}

/// The one trace of a single-manifest answer, as one line per path.
fn paths(response: &ImageVerifyResponse) -> Vec<String> {
    assert_eq!(response.trace.len(), 1, "{response:#?}");
    response.trace[0].paths.clone()
}

fn assert_contains(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} not in {text}");
    }
}

#[test]
fn key_signed_bundles_are_found_through_the_referrers_tag() {
    let Some(lab) = Lab::start(false) else { return };
    let live = lab.live(false);
    let (release, other) = (CosignKey::generate(), CosignKey::generate());
    let digest = lab.push("demo/bundle");
    let mut statement = Statement::signature();
    statement.annotations.insert("env".into(), "prod".into());
    let referrer = lab.rt.block_on(bundle::sign(
        &lab.registry,
        "demo/bundle",
        &digest,
        &Signer::Key(&release),
        &statement,
    ));
    let image = lab.image("demo/bundle");

    let ok = signature(
        &live,
        &image,
        vec![key(&other), key(&release)],
        &[("env", "prod")],
        Platforms::Index,
    );
    assert_eq!(ok.digest, digest);
    assert_eq!(ok.verified.len(), 1, "{ok:#?}");
    let v = &ok.verified[0];
    assert_eq!(
        (
            v.subject.as_str(),
            v.identity,
            v.format.as_str(),
            v.path.as_str(),
            v.manifest.as_str()
        ),
        (
            digest.as_str(),
            Some(1),
            "sigstore-bundle-v0.3",
            "referrers-tag",
            referrer.as_str()
        )
    );
    let p = paths(&ok);
    assert!(
        p[0].starts_with("referrers-api: no referrers API ("),
        "{p:?}"
    );
    assert!(
        p[1].starts_with(&format!(
            "referrers-tag: 1 entries [{referrer} sigstore bundle"
        )),
        "{p:?}"
    );
    assert_eq!(p[2], "cosign-sig-tag: not needed (a candidate verified)");

    // Another key, other annotations, an unsigned image: nothing verified,
    // and the trace says what each path found.
    let wrong = signature(&live, &image, vec![key(&other)], &[], Platforms::Index);
    assert!(wrong.verified.is_empty());
    let p = paths(&wrong);
    assert_contains(
        &p[1],
        &["rejected: signed with a key, and no configured key verifies the signature"],
    );
    assert_eq!(
        p[2],
        format!("cosign-sig-tag: no tag {}.sig", digest.replace(':', "-"))
    );
    let dev = signature(
        &live,
        &image,
        vec![key(&release)],
        &[("env", "dev")],
        Platforms::Index,
    );
    assert_contains(
        &paths(&dev)[1],
        &[r#"rejected: annotation env=dev is not signed (signed annotations: {"env":"prod"})"#],
    );
    let unsigned = lab.push("demo/unsigned");
    let none = signature(
        &live,
        &lab.image("demo/unsigned"),
        vec![key(&release)],
        &[],
        Platforms::Index,
    );
    assert_eq!(
        paths(&none)[1],
        format!("referrers-tag: no tag {}", unsigned.replace(':', "-"))
    );

    // A bundle naming another digest, hung onto this image, is not its signature.
    let liar = lab.push("demo/liar");
    let mut lie = Statement::signature();
    lie.claim_digest = Some(unsigned.clone());
    lab.rt.block_on(bundle::sign(
        &lab.registry,
        "demo/liar",
        &liar,
        &Signer::Key(&release),
        &lie,
    ));
    let lied = signature(
        &live,
        &lab.image("demo/liar"),
        vec![key(&release)],
        &[],
        Platforms::Index,
    );
    assert_contains(
        &paths(&lied)[1],
        &[&format!(
            "rejected: the statement's subject does not name {liar}"
        )],
    );
}

#[test]
fn keyless_bundles_are_verified_with_sct_log_entry_and_timestamp() {
    let Some(lab) = Lab::start(false) else { return };
    let live = lab.live(true);
    let sign = |repo: &str, tlog: bool, timestamp: bool| {
        let digest = lab.push(repo);
        let (certificate, tlog, timestamp) = lab.keyless(tlog, timestamp);
        let signer = Signer::Keyless {
            sigstore: &lab.sigstore,
            certificate: &certificate,
            tlog,
            timestamp,
        };
        lab.rt.block_on(bundle::sign(
            &lab.registry,
            repo,
            &digest,
            &signer,
            &Statement::signature(),
        ));
        lab.image(repo)
    };
    let full = sign("demo/keyless", true, true);
    let ok = signature(&live, &full, vec![github("corp")], &[], Platforms::Index);
    assert_eq!(ok.verified.len(), 1, "{ok:#?}");
    assert_eq!(
        ok.verified[0].signer,
        format!("{WORKFLOW} (issuer {GITHUB})")
    );
    assert_contains(
        &paths(&ok)[1],
        &[
            "verified: sigstore-bundle-v0.3",
            "timestamp ",
            "by https://tsa.invalid",
            "tlog https://rekor.invalid #",
            "SCT https://ctfe.invalid",
        ],
    );
    let other_owner = signature(&live, &full, vec![github("evil")], &[], Platforms::Index);
    assert_contains(&paths(&other_owner)[1], &["rejected: signed by someone else: GitHub Actions evil/app: signed by a workflow of corp/app, not of owner evil"]);
    let exact = SignerIdentity::Keyless {
        issuer: GITHUB.into(),
        subject: WORKFLOW.into(),
    };
    assert_eq!(
        signature(&live, &full, vec![exact], &[], Platforms::Index)
            .verified
            .len(),
        1
    );

    // The SET alone is a time; a timestamp alone is no log entry.
    let logged = sign("demo/logged", true, false);
    assert_eq!(
        signature(&live, &logged, vec![github("corp")], &[], Platforms::Index)
            .verified
            .len(),
        1
    );
    let unlogged = sign("demo/unlogged", false, true);
    let none = signature(
        &live,
        &unlogged,
        vec![github("corp")],
        &[],
        Platforms::Index,
    );
    assert_contains(
        &paths(&none)[1],
        &["no transparency-log entry, and trust root"],
    );

    // Without --sigstore-trust-config the public-good root is used: the
    // fake Sigstore is nobody there.
    let public = signature(
        &lab.live(false),
        &full,
        vec![github("corp")],
        &[],
        Platforms::Index,
    );
    assert!(public.verified.is_empty());
    assert_contains(&paths(&public)[1], &["RFC 3161 timestamp 0: not signed by a timestamp authority of the embedded public-good trust root"]);
}

#[test]
fn legacy_signatures_and_attestations_still_count() {
    let Some(lab) = Lab::start(false) else { return };
    let live = lab.live(true);
    let release = CosignKey::generate();
    let digest = lab.push("demo/legacy");
    lab.sign_legacy("demo/legacy", &digest, &release);
    let image = lab.image("demo/legacy");
    let sig = signature(
        &live,
        &image,
        vec![key(&CosignKey::generate()), key(&release)],
        &[],
        Platforms::Index,
    );
    assert_eq!(sig.verified.len(), 1, "{sig:#?}");
    let v = &sig.verified[0];
    assert_eq!(
        (v.format.as_str(), v.path.as_str(), v.identity),
        ("cosign-sig", "cosign-sig-tag", Some(1))
    );
    assert_contains(&paths(&sig)[2], &["verified: cosign-sig"]);

    // `cosign attest` of cosign v2: keyless, with its Rekor bundle.
    let (certificate, _, _) = lab.keyless(true, false);
    let predicate = json!({"buildDefinition": {"buildType": "https://actions.github.io/buildtypes/workflow/v1"}});
    lab.rt.block_on(bundle::attest_legacy(
        &lab.registry,
        "demo/legacy",
        &digest,
        &Signer::Keyless {
            sigstore: &lab.sigstore,
            certificate: &certificate,
            tlog: true,
            timestamp: false,
        },
        &Statement::attestation(SLSA, predicate.clone()),
    ));
    let attested = answer(
        &live,
        Request::VerifyAttestation(AttestationVerifyRequest {
            image: image.clone(),
            platforms: Platforms::Index,
            predicate_type: SLSA.into(),
            identities: vec![github("corp")],
        }),
    )
    .unwrap();
    assert_eq!(attested.verified.len(), 1, "{attested:#?}");
    let v = &attested.verified[0];
    assert_eq!(
        (v.format.as_str(), v.path.as_str()),
        ("cosign-attestation-layer", "cosign-att-tag")
    );
    assert_eq!(v.statement.as_ref().unwrap()["predicate"], predicate);
    assert_eq!(
        v.certificate.as_ref().unwrap()["sourceRepositoryURI"],
        "https://github.com/corp/app"
    );
    assert_contains(
        &paths(&attested)[2],
        &[
            "verified: cosign-attestation-layer",
            "tlog https://rekor.invalid #",
            "SCT https://ctfe.invalid",
        ],
    );
}

#[test]
fn attestation_bundles_return_their_statement() {
    let Some(lab) = Lab::start(false) else { return };
    let live = lab.live(true);
    let digest = lab.push("demo/attested");
    let (certificate, tlog, timestamp) = lab.keyless(true, true);
    let signer = Signer::Keyless {
        sigstore: &lab.sigstore,
        certificate: &certificate,
        tlog,
        timestamp,
    };
    let predicate = json!({"runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}}});
    lab.rt.block_on(bundle::sign(
        &lab.registry,
        "demo/attested",
        &digest,
        &signer,
        &Statement::attestation(SLSA, predicate.clone()),
    ));
    // A signature of the same image: not an attestation, not a candidate that verifies.
    lab.rt.block_on(bundle::sign(
        &lab.registry,
        "demo/attested",
        &digest,
        &signer,
        &Statement::signature(),
    ));
    let ask = |predicate_type: &str| {
        answer(
            &live,
            Request::VerifyAttestation(AttestationVerifyRequest {
                image: lab.image("demo/attested"),
                platforms: Platforms::Index,
                predicate_type: predicate_type.into(),
                identities: vec![github("corp")],
            }),
        )
        .unwrap()
    };
    let slsa = ask(SLSA);
    assert_eq!(slsa.verified.len(), 1, "{slsa:#?}");
    assert_eq!(
        slsa.verified[0].statement.as_ref().unwrap()["predicate"],
        predicate
    );
    assert_contains(&paths(&slsa)[1], &["referrers-tag: 2 entries", &format!("rejected: predicateType \"https://sigstore.dev/cosign/sign/v1\" is not the requested \"{SLSA}\"")]);
    let spdx = ask("https://spdx.dev/Document");
    assert!(spdx.verified.is_empty());
    // And the signature is found by signature checks, the attestation skipped.
    let sig = signature(
        &live,
        &lab.image("demo/attested"),
        vec![github("corp")],
        &[],
        Platforms::Index,
    );
    assert_eq!(sig.verified.len(), 1, "{sig:#?}");
}

#[test]
fn multi_arch_index_or_every_platform() {
    let Some(lab) = Lab::start(false) else { return };
    let live = lab.live(false);
    let release = CosignKey::generate();
    let built =
        Image::build("demo/multi", &["amd64", "arm64"], Format::Oci).with_buildkit_attestation();
    let children: Vec<String> = built.platform_manifests[..2]
        .iter()
        .map(|(d, _)| d.clone())
        .collect();
    let index = lab
        .rt
        .block_on(built.push(&lab.registry, "demo/multi", "1.0"));
    let image = lab.image("demo/multi");
    lab.rt.block_on(bundle::sign(
        &lab.registry,
        "demo/multi",
        &index,
        &Signer::Key(&release),
        &Statement::signature(),
    ));

    let on_index = signature(&live, &image, vec![key(&release)], &[], Platforms::Index);
    assert_eq!(
        (on_index.digest.as_str(), on_index.verified.len()),
        (index.as_str(), 1)
    );
    // Every platform manifest (not the BuildKit attestation manifest) is checked.
    let all = signature(&live, &image, vec![key(&release)], &[], Platforms::All);
    assert_eq!(all.digest, index);
    let subjects: Vec<&str> = all.trace.iter().map(|t| t.subject.as_str()).collect();
    assert_eq!(
        subjects,
        children.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(all.verified.is_empty(), "{all:#?}");
    for child in &children {
        lab.rt.block_on(bundle::sign(
            &lab.registry,
            "demo/multi",
            child,
            &Signer::Key(&release),
            &Statement::signature(),
        ));
    }
    let all = signature(&live, &image, vec![key(&release)], &[], Platforms::All);
    let verified: Vec<&str> = all.verified.iter().map(|v| v.subject.as_str()).collect();
    assert_eq!(
        verified,
        children.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

/// `requests` are exactly `expected` in any order (discovery's paths run
/// concurrently) and each of `chains` in its order (a request that needs
/// the previous one's answer is sent after it).
fn assert_requests(requests: &[String], expected: &[String], chains: &[&[&String]], what: &str) {
    let (mut got, mut want) = (requests.to_vec(), expected.to_vec());
    got.sort();
    want.sort();
    assert_eq!(got, want, "{what}: {requests:#?}");
    for chain in chains {
        let at = |r: &String| requests.iter().position(|x| x == r).unwrap();
        let positions: Vec<usize> = chain.iter().map(|r| at(r)).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "{what}: {chain:?} out of order in {requests:#?}"
        );
    }
}

/// Discovery costs at most 3 round trips per image (the manifest, then the
/// referrers and the legacy tag together, then a candidate's layer, unless
/// it is a cosign payload known from its digest), and one request less
/// once the registry is known to lack the referrers API
/// (Debian's registry has only the tag schema): counted in the registry's
/// access log.
#[test]
fn discovery_round_trips_are_counted() {
    let Some(lab) = Lab::start(true) else { return };
    let live = lab.live(false);
    let release = CosignKey::generate();
    let signed = lab.push("demo/counted");
    let referrer = lab.rt.block_on(bundle::sign(
        &lab.registry,
        "demo/counted",
        &signed,
        &Signer::Key(&release),
        &Statement::signature(),
    ));
    let unsigned = lab.push("demo/uncounted");
    // The registry logs a request once it has answered it: wait for as
    // many lines as expected (a later extra one shows in the next count).
    let measure_for = |image: &str, identities: Vec<SignerIdentity>, expected: usize| {
        let before = lab.registry.requests().len();
        let answer = signature(&live, image, identities, &[], Platforms::Index);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while lab.registry.requests().len() < before + expected
            && std::time::Instant::now() < deadline
        {
            std::thread::yield_now();
        }
        (answer, lab.registry.requests()[before..].to_vec())
    };
    let measure = |image: &str, expected: usize| measure_for(image, vec![key(&release)], expected);
    let tag = |d: &str| d.replace(':', "-");
    let (answer, requests) = measure(&lab.image("demo/counted"), 6);
    assert_eq!(answer.verified.len(), 1);
    let bundle_blob = {
        let manifest: serde_json::Value = serde_json::from_slice(&lab.rt.block_on(async {
            let client = lab.registry.client();
            let r: oci_client::Reference = format!("{}/demo/counted@{referrer}", lab.registry.addr)
                .parse()
                .unwrap();
            client
                .pull_manifest_raw(
                    &r,
                    &lab.registry.auth(),
                    &["application/vnd.oci.image.manifest.v1+json"],
                )
                .await
                .unwrap()
                .0
        }))
        .unwrap();
        manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    eprintln!("signed by a bundle, by tag: {requests:#?}");
    let resolve = "GET /v2/demo/counted/manifests/1.0".to_string();
    let api = format!("GET /v2/demo/counted/referrers/{signed}");
    let referrers_tag = format!("GET /v2/demo/counted/manifests/{}", tag(&signed));
    let candidate = format!("GET /v2/demo/counted/manifests/{referrer}");
    let blob = format!("GET /v2/demo/counted/blobs/{bundle_blob}");
    let sig = format!("GET /v2/demo/counted/manifests/{}.sig", tag(&signed));
    assert_requests(
        &requests,
        &[
            resolve.clone(),
            api.clone(),
            referrers_tag.clone(),
            candidate.clone(),
            blob.clone(),
            sig.clone(),
        ],
        &[
            &[&resolve, &api, &referrers_tag, &candidate, &blob],
            &[&resolve, &sig],
        ],
        "the first check on a registry asks for its referrers API; the .sig tag is read alongside",
    );
    let (_, requests) = measure(&lab.image("demo/uncounted"), 3);
    eprintln!("unsigned, by tag: {requests:#?}");
    let resolve = "GET /v2/demo/uncounted/manifests/1.0".to_string();
    let referrers_tag = format!("GET /v2/demo/uncounted/manifests/{}", tag(&unsigned));
    let sig = format!("GET /v2/demo/uncounted/manifests/{}.sig", tag(&unsigned));
    assert_requests(
        &requests,
        &[resolve.clone(), referrers_tag.clone(), sig.clone()],
        &[&[&resolve, &referrers_tag], &[&resolve, &sig]],
        "the missing API is remembered: 2 round trips, 3 requests",
    );
    // A legacy `.sig` signature, checked for two identities (the first one
    // not the signer): the search's `.sig` manifest is handed to the check
    // and its layer read once, not once per identity. Its payload carries
    // annotations, so its layer is not known from its digest.
    let legacy = lab.push("demo/legacy-counted");
    let annotated = SignOptions {
        annotations: BTreeMap::from([("env".to_string(), "prod".to_string())]),
        ..SignOptions::default()
    };
    lab.rt.block_on(cosign::sign(
        &lab.registry,
        "demo/legacy-counted",
        &legacy,
        &release,
        &annotated,
    ));
    let (answer, requests) = measure_for(
        &lab.image("demo/legacy-counted"),
        vec![key(&CosignKey::generate()), key(&release)],
        4,
    );
    assert_eq!(
        answer
            .verified
            .iter()
            .map(|v| (v.format.as_str(), v.identity))
            .collect::<Vec<_>>(),
        [("cosign-sig", Some(1))],
        "{answer:#?}"
    );
    // The layer's digest varies with the signature.
    let requests: Vec<String> = requests
        .iter()
        .map(|r| match r.find("/blobs/") {
            Some(i) => r[..i + "/blobs/".len()].to_string(),
            None => r.clone(),
        })
        .collect();
    eprintln!("signed by a legacy .sig, by tag: {requests:#?}");
    let resolve = "GET /v2/demo/legacy-counted/manifests/1.0".to_string();
    let referrers_tag = format!("GET /v2/demo/legacy-counted/manifests/{}", tag(&legacy));
    let sig = format!("GET /v2/demo/legacy-counted/manifests/{}.sig", tag(&legacy));
    let layer = "GET /v2/demo/legacy-counted/blobs/".to_string();
    assert_requests(
        &requests,
        &[
            resolve.clone(),
            referrers_tag.clone(),
            sig.clone(),
            layer.clone(),
        ],
        &[&[&resolve, &referrers_tag], &[&resolve, &sig, &layer]],
        "3 round trips: the manifest, the two tags together, the .sig layer once",
    );
    // Without annotations the layer is cosign's payload for this digest,
    // known from its digest: 2 round trips.
    let plain = lab.push("demo/plain-counted");
    lab.sign_legacy("demo/plain-counted", &plain, &release);
    let (answer, requests) = measure(&lab.image("demo/plain-counted"), 3);
    assert_eq!(answer.verified.len(), 1, "{answer:#?}");
    let resolve = "GET /v2/demo/plain-counted/manifests/1.0".to_string();
    let referrers_tag = format!("GET /v2/demo/plain-counted/manifests/{}", tag(&plain));
    let sig = format!("GET /v2/demo/plain-counted/manifests/{}.sig", tag(&plain));
    assert_requests(
        &requests,
        &[resolve.clone(), referrers_tag.clone(), sig.clone()],
        &[&[&resolve, &referrers_tag], &[&resolve, &sig]],
        "2 round trips: the manifest, the two tags together; no layer",
    );
    let by_digest = format!("{}/demo/uncounted@{unsigned}", lab.registry.addr);
    let (_, requests) = measure(&by_digest, 2);
    assert_eq!(requests.len(), 2, "a digest needs no lookup: {requests:#?}");
    // The next count starts clean: no late request of the last one.
    let (_, requests) = measure(&by_digest, 2);
    assert_eq!(requests.len(), 2, "{requests:#?}");
}

/// One host, one authentication memory: `imagegate/v1/check_signature`
/// and Kubewarden's `oci/v2/verify` read a token registry with the same
/// reader, so the second capability reuses the token the first one
/// fetched (they once had a reader each, and a token each).
#[test]
fn both_signature_capabilities_share_one_token() {
    if !registry::available() {
        return;
    }
    let tokens = TokenService::start();
    let registry = Registry::start_with_tokens(&tokens);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let release = CosignKey::generate();
    let mut images = Vec::new();
    for tag in ["a", "b"] {
        let digest = rt.block_on(async {
            let digest = Image::single(&format!("shared-{tag}"), Format::Oci)
                .push(&registry, "demo/shared", tag)
                .await;
            cosign::sign(
                &registry,
                "demo/shared",
                &digest,
                &release,
                &SignOptions::default(),
            )
            .await;
            digest
        });
        images.push((registry.image("demo/shared", tag), digest));
    }
    let pushed = tokens.scopes().len();
    let live = live_for(&registry.addr, None);

    let answer = signature(
        &live,
        &images[0].0,
        vec![key(&release)],
        &[],
        Platforms::Index,
    );
    assert_eq!(answer.verified.len(), 1, "{answer:#?}");
    assert_eq!(
        tokens.scopes()[pushed..],
        ["repository:demo/shared:pull"],
        "check_signature fetched the repository's token"
    );
    let verify = Request::Sigstore(SigstoreVerifyRequest::SigstorePubKeyVerify {
        image: images[1].0.clone(),
        pub_keys: vec![release.public_pem()],
        annotations: None,
    });
    let answer: serde_json::Value =
        serde_json::from_slice(&live.answer(&verify, None).expect("an answer")).unwrap();
    assert_eq!(
        answer,
        json!({"is_trusted": true, "digest": images[1].1}),
        "oci/v2/verify"
    );
    assert_eq!(
        tokens.scopes()[pushed..],
        ["repository:demo/shared:pull"],
        "oci/v2/verify reused the token"
    );
}

/// On a registry with the referrers API (the lab's front over the same
/// registry, one referrer per page): the API comes first with every page,
/// the referrers tag is never read (a registry with the API keeps none), and
/// discovery costs the manifest, the API's pages and, only when unsatisfied,
/// the legacy tag.
#[test]
fn the_referrers_api_comes_first_with_every_page() {
    let Some(lab) = Lab::start(false) else { return };
    let front = ReferrersFront::start(&lab.registry, 1);
    let live = lab.live_at(&front.addr, false);
    let (release, other) = (CosignKey::generate(), CosignKey::generate());
    let digest = lab.push("demo/api");
    let [rejected, accepted] = [&other, &release].map(|k| {
        lab.rt.block_on(bundle::sign(
            &lab.registry,
            "demo/api",
            &digest,
            &Signer::Key(k),
            &Statement::signature(),
        ))
    });
    let blob = |referrer: &str| {
        let manifest = lab.rt.block_on(async {
            let r: oci_client::Reference = format!("{}/demo/api@{referrer}", lab.registry.addr)
                .parse()
                .unwrap();
            let client = lab.registry.client();
            let accept = ["application/vnd.oci.image.manifest.v1+json"];
            client
                .pull_manifest_raw(&r, &lab.registry.auth(), &accept)
                .await
                .unwrap()
                .0
        });
        let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let image = front.image("demo/api", "1.0");

    let ok = signature(&live, &image, vec![key(&release)], &[], Platforms::Index);
    assert_eq!(ok.verified.len(), 1, "{ok:#?}");
    assert_eq!(
        (
            ok.verified[0].path.as_str(),
            ok.verified[0].manifest.as_str()
        ),
        ("referrers-api", accepted.as_str())
    );
    let p = paths(&ok);
    assert_contains(
        &p[0],
        &[
            "referrers-api: 2 entries (2 pages) [",
            &format!("{rejected} sigstore bundle"),
            "rejected: signed with a key, and no configured key verifies the signature",
            &format!("{accepted} sigstore bundle"),
            "verified: sigstore-bundle-v0.3, key sha256:",
        ],
    );
    assert_eq!(p[1], "referrers-tag: not needed (a candidate verified)");
    assert_eq!(p[2], "cosign-sig-tag: not needed (a candidate verified)");
    let referrers = format!("GET /v2/demo/api/referrers/{digest}");
    let page = format!("{referrers}?page=1");
    let resolve = "GET /v2/demo/api/manifests/1.0".to_string();
    let sig = format!(
        "GET /v2/demo/api/manifests/{}.sig",
        digest.replace(':', "-")
    );
    let opened = [rejected.clone(), accepted.clone()].map(|r| {
        [
            format!("GET /v2/demo/api/manifests/{r}"),
            format!("GET /v2/demo/api/blobs/{}", blob(&r)),
        ]
    });
    let requests = front.requests();
    assert_requests(
        &requests,
        &[
            vec![resolve.clone(), referrers.clone(), page.clone(), sig.clone()],
            opened.concat(),
        ]
        .concat(),
        &[
            &[
                &resolve,
                &referrers,
                &page,
                &opened[0][0],
                &opened[0][1],
                &opened[1][0],
                &opened[1][1],
            ],
            &[&resolve, &sig],
        ],
        "2 discovery round trips and 1 per extra page, then 2 per candidate; the .sig tag alongside",
    );

    // No API candidate verifies: the tag is not read (a registry with the
    // API keeps none), only the legacy tag: 3 discovery round trips.
    let before = front.requests().len();
    let third = CosignKey::generate();
    let none = signature(&live, &image, vec![key(&third)], &[], Platforms::Index);
    assert!(none.verified.is_empty(), "{none:#?}");
    let p = paths(&none);
    assert!(
        p[0].starts_with("referrers-api: 2 entries (2 pages) ["),
        "{p:?}"
    );
    assert_eq!(
        p[1],
        "referrers-tag: not read (the registry has the referrers API)"
    );
    assert_eq!(
        p[2],
        format!("cosign-sig-tag: no tag {}.sig", digest.replace(':', "-"))
    );
    let tag = digest.replace(':', "-");
    let requests = front.requests()[before..].to_vec();
    let discovery: Vec<String> = requests
        .iter()
        .filter(|r| !r.contains("/blobs/") && !r.contains("/manifests/sha256:"))
        .cloned()
        .collect();
    let sig = format!("GET /v2/demo/api/manifests/{tag}.sig");
    assert_requests(
        &discovery,
        &[
            resolve.clone(),
            referrers.clone(),
            page.clone(),
            sig.clone(),
        ],
        &[&[&resolve, &referrers, &page], &[&resolve, &sig]],
        "the legacy tag alongside the API, never the referrers tag",
    );
    assert_eq!(requests.len(), discovery.len() + 4, "{requests:#?}");

    // An image nothing refers to: the API answers an empty index.
    let bare = lab.push("demo/api-bare");
    let before = front.requests().len();
    let none = signature(
        &live,
        &front.image("demo/api-bare", "1.0"),
        vec![key(&release)],
        &[],
        Platforms::Index,
    );
    assert!(none.verified.is_empty(), "{none:#?}");
    let p = paths(&none);
    assert_eq!(p[0], "referrers-api: 0 entries (1 page)");
    assert_eq!(
        p[1],
        "referrers-tag: not read (the registry has the referrers API)"
    );
    assert_eq!(
        p[2],
        format!("cosign-sig-tag: no tag {}.sig", bare.replace(':', "-"))
    );
    let resolve = "GET /v2/demo/api-bare/manifests/1.0".to_string();
    let api = format!("GET /v2/demo/api-bare/referrers/{bare}");
    let sig = format!(
        "GET /v2/demo/api-bare/manifests/{}.sig",
        bare.replace(':', "-")
    );
    assert_requests(
        &front.requests()[before..],
        &[resolve.clone(), api.clone(), sig.clone()],
        &[&[&resolve, &api], &[&resolve, &sig]],
        "2 round trips, 3 requests on a registry with the referrers API",
    );
}
