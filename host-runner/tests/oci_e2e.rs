//! End to end: the `oci/*` capabilities against a real `docker-registry`
//! started by each test on 127.0.0.1, with images and cosign signatures made
//! by the test lab (tests/support).

#[allow(dead_code)] // each test file uses part of the shared lab
mod support;

use imagegate::capabilities::oci::{Oci, OciConfig};
use imagegate::registry::{Credential, ImageCredential};
use imagegate_policy::wire::{
    KeylessInfo, KeylessPrefixInfo, SigstoreVerifyRequest, VerifyResponse,
};
use std::collections::BTreeMap;
use std::time::Instant;
use support::certs::{Leaf, TestCa};
use support::cosign::{payload, sign, signature_tag, CosignKey, SignOptions};
use support::image::{Format, Image};
use support::registry::{self, Registry, Variant};
use support::sigstore::{FakeSigstore, Identity};
use support::token::TokenService;

/// Starts a registry, or skips the test (loudly) when the binary is missing.
macro_rules! registry_or_skip {
    ($variant:expr) => {{
        if !registry::available() {
            return;
        }
        Registry::start($variant)
    }};
}

/// An `Oci` that reaches `registry` (plain http, or https with its CA).
fn oci_for(registry: &Registry) -> Oci {
    Oci::new(config_for(registry)).expect("Oci::new")
}

fn config_for(registry: &Registry) -> OciConfig {
    let mut config = OciConfig::default();
    match &registry.ca_path {
        Some(ca) => config.registry.ca_certs.push(ca.clone()),
        None => config
            .registry
            .insecure_registries
            .push(registry.addr.clone()),
    }
    config
}

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn pubkey(image: &str, keys: &[&CosignKey], ann: &[(&str, &str)]) -> SigstoreVerifyRequest {
    SigstoreVerifyRequest::SigstorePubKeyVerify {
        image: image.to_string(),
        pub_keys: keys.iter().map(|k| k.public_pem()).collect(),
        annotations: (!ann.is_empty()).then(|| annotations(ann)),
    }
}

fn trusted(digest: &str) -> VerifyResponse {
    VerifyResponse {
        is_trusted: true,
        digest: digest.to_string(),
    }
}

/// Asserts an error that names `image` and contains every `needle`.
fn assert_error(
    result: Result<impl std::fmt::Debug, impl std::fmt::Display>,
    image: &str,
    needles: &[&str],
) {
    let error = result.expect_err("expected an error").to_string();
    assert!(
        error.contains(image),
        "error does not name {image}: {error}"
    );
    for needle in needles {
        assert!(error.contains(needle), "error lacks {needle:?}: {error}");
    }
}

/// A pushed and signed single-platform image: (image ref, digest).
async fn signed_image(
    registry: &Registry,
    repo: &str,
    key: &CosignKey,
    options: &SignOptions<'_>,
) -> (String, String) {
    let image = Image::single(repo, Format::Oci);
    let digest = image.push(registry, repo, "1.0").await;
    sign(registry, repo, &digest, key, options).await;
    (registry.image(repo, "1.0"), digest)
}

#[tokio::test]
async fn signed_image_verifies_and_reports_its_digest() {
    let registry = registry_or_skip!(Variant::Plain);
    let key = CosignKey::generate();
    let (image, digest) =
        signed_image(&registry, "demo/signed", &key, &SignOptions::default()).await;
    let oci = oci_for(&registry);
    let started = Instant::now();
    let response = oci.verify(&pubkey(&image, &[&key], &[])).await;
    eprintln!(
        "first verify (new client, plain registry): {:?}",
        started.elapsed()
    );
    assert_eq!(response, Ok(trusted(&digest)));
    // the same answer by digest reference
    let by_digest = format!("{}/demo/signed@{digest}", registry.addr);
    assert_eq!(
        oci.verify(&pubkey(&by_digest, &[&key], &[])).await,
        Ok(trusted(&digest))
    );
}

#[tokio::test]
async fn unsigned_image_has_no_signatures() {
    let registry = registry_or_skip!(Variant::Plain);
    let digest = Image::single("unsigned", Format::Oci)
        .push(&registry, "demo/unsigned", "1.0")
        .await;
    let image = registry.image("demo/unsigned", "1.0");
    let result = oci_for(&registry)
        .verify(&pubkey(&image, &[&CosignKey::generate()], &[]))
        .await;
    assert_error(result, &image, &["no signatures found for image", &digest]);
}

#[tokio::test]
async fn wrong_key_is_rejected_and_every_key_is_required() {
    let registry = registry_or_skip!(Variant::Plain);
    let (signer, other) = (CosignKey::generate(), CosignKey::generate());
    let (image, digest) =
        signed_image(&registry, "demo/wrongkey", &signer, &SignOptions::default()).await;
    let oci = oci_for(&registry);
    let result = oci.verify(&pubkey(&image, &[&other], &[])).await;
    assert_error(
        result,
        &image,
        &[
            "Image verification failed: missing signatures",
            "kind: pubKey",
            &digest,
        ],
    );
    // all-of: the signer's key alone passes, signer + other does not
    assert!(oci.verify(&pubkey(&image, &[&signer], &[])).await.is_ok());
    let result = oci.verify(&pubkey(&image, &[&signer, &other], &[])).await;
    assert_error(result, &image, &["missing signatures"]);
}

#[tokio::test]
async fn annotations_must_match_on_the_signature_of_the_key() {
    let registry = registry_or_skip!(Variant::Plain);
    let (k1, k2) = (CosignKey::generate(), CosignKey::generate());
    let repo = "demo/annotated";
    let digest = Image::single(repo, Format::Oci)
        .push(&registry, repo, "1.0")
        .await;
    // two signatures on one image: k1 without annotations, k2 with env=prod
    sign(&registry, repo, &digest, &k1, &SignOptions::default()).await;
    let k2_options = SignOptions {
        annotations: annotations(&[("env", "prod"), ("team", "a&b <x>")]),
        append: true,
        ..SignOptions::default()
    };
    sign(&registry, repo, &digest, &k2, &k2_options).await;
    let image = registry.image(repo, "1.0");
    let oci = oci_for(&registry);

    assert_eq!(
        oci.verify(&pubkey(&image, &[&k1, &k2], &[])).await,
        Ok(trusted(&digest))
    );
    assert_eq!(
        oci.verify(&pubkey(&image, &[&k2], &[("env", "prod")]))
            .await,
        Ok(trusted(&digest))
    );
    assert_eq!(
        oci.verify(&pubkey(&image, &[&k2], &[("team", "a&b <x>")]))
            .await,
        Ok(trusted(&digest))
    );
    // wrong annotation value
    let result = oci.verify(&pubkey(&image, &[&k2], &[("env", "dev")])).await;
    assert_error(result, &image, &["missing signatures", "env: dev"]);
    // k1 never signed env=prod: sigstore's verify_constraints would accept
    // this because k2's layer carries the annotation
    let result = oci
        .verify(&pubkey(&image, &[&k1], &[("env", "prod")]))
        .await;
    assert_error(result, &image, &["missing signatures", "env: prod"]);
    let result = oci
        .verify(&pubkey(&image, &[&k1, &k2], &[("env", "prod")]))
        .await;
    assert_error(result, &image, &["missing signatures"]);
}

#[tokio::test]
async fn signature_claiming_another_digest_is_ignored() {
    let registry = registry_or_skip!(Variant::Plain);
    let key = CosignKey::generate();
    let other = Image::single("something else", Format::Oci).digest();
    let options = SignOptions {
        claim_digest: Some(other),
        ..SignOptions::default()
    };
    let (image, _) = signed_image(&registry, "demo/liar", &key, &options).await;
    let result = oci_for(&registry)
        .verify(&pubkey(&image, &[&key], &[]))
        .await;
    assert_error(result, &image, &["no signatures found for image"]);
}

#[tokio::test]
async fn tag_moved_after_signing_is_not_covered() {
    let registry = registry_or_skip!(Variant::Plain);
    let key = CosignKey::generate();
    let repo = "demo/moved";
    let (image, signed_digest) = signed_image(&registry, repo, &key, &SignOptions::default()).await;
    let oci = oci_for(&registry);
    assert_eq!(
        oci.verify(&pubkey(&image, &[&key], &[])).await,
        Ok(trusted(&signed_digest))
    );
    let new_digest = Image::single("replacement", Format::Oci)
        .push(&registry, repo, "1.0")
        .await;
    assert_ne!(new_digest, signed_digest);
    let result = oci.verify(&pubkey(&image, &[&key], &[])).await;
    assert_error(
        result,
        &image,
        &["no signatures found for image", &new_digest],
    );
    // the signed digest itself still verifies
    let pinned = format!("{}/{repo}@{signed_digest}", registry.addr);
    assert_eq!(
        oci.verify(&pubkey(&pinned, &[&key], &[])).await,
        Ok(trusted(&signed_digest))
    );
}

#[tokio::test]
async fn multi_arch_index_is_verified_at_the_index_digest() {
    let registry = registry_or_skip!(Variant::Plain);
    let key = CosignKey::generate();
    let repo = "demo/multi";
    let index = Image::build("multi", &["amd64", "arm64"], Format::Oci);
    let digest = index.push(&registry, repo, "1.0").await;
    sign(&registry, repo, &digest, &key, &SignOptions::default()).await;
    let image = registry.image(repo, "1.0");
    let oci = oci_for(&registry);

    assert_eq!(
        oci.verify(&pubkey(&image, &[&key], &[])).await,
        Ok(trusted(&digest))
    );
    assert_eq!(
        oci.manifest_digest(&image).await.map(|r| r.digest),
        Ok(digest)
    );
    let manifest = oci.manifest(&image).await.expect("index");
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(manifest["manifests"].as_array().map(Vec::len), Some(2));
    // manifest + config resolve the index to the linux/amd64 image
    let resolved = oci
        .manifest_and_config(&image)
        .await
        .expect("manifest and config");
    let (amd64_digest, _) = &index.platform_manifests[0];
    assert_eq!(&resolved.digest, amd64_digest);
    assert_eq!(resolved.config["architecture"], "amd64");
    assert_eq!(
        resolved.manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
}

#[tokio::test]
async fn docker_media_types_work_for_every_operation() {
    let registry = registry_or_skip!(Variant::Plain);
    let key = CosignKey::generate();
    let repo = "demo/dockerfmt";
    let single = Image::single(repo, Format::Docker);
    let digest = single.push(&registry, repo, "1.0").await;
    sign(&registry, repo, &digest, &key, &SignOptions::default()).await;
    let list_digest = Image::build(repo, &["amd64", "arm64"], Format::Docker)
        .push(&registry, repo, "list")
        .await;
    sign(&registry, repo, &list_digest, &key, &SignOptions::default()).await;
    let oci = oci_for(&registry);

    let image = registry.image(repo, "1.0");
    assert_eq!(
        oci.verify(&pubkey(&image, &[&key], &[])).await,
        Ok(trusted(&digest))
    );
    let manifest = oci.manifest(&image).await.expect("manifest");
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let resolved = oci.manifest_and_config(&image).await.expect("config");
    assert_eq!(resolved.digest, digest);
    assert_eq!(resolved.config["rootfs"]["type"], "layers");

    let list = registry.image(repo, "list");
    assert_eq!(
        oci.verify(&pubkey(&list, &[&key], &[])).await,
        Ok(trusted(&list_digest))
    );
    assert_eq!(
        oci.manifest(&list).await.expect("list")["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
}

#[tokio::test]
async fn auth_registry_with_and_without_credentials() {
    let (user, pass) = ("alice", "s3cret");
    let registry = registry_or_skip!(Variant::Htpasswd {
        user: user.into(),
        pass: pass.into()
    });
    let key = CosignKey::generate();
    let (image, digest) =
        signed_image(&registry, "team-a/app", &key, &SignOptions::default()).await;
    let request = pubkey(&image, &[&key], &[]);

    // no credentials: 401, and the error says so
    let anonymous = oci_for(&registry);
    let result = anonymous.verify(&request).await;
    assert_error(
        result,
        &image,
        &["Cannot fetch manifest of", "no credentials configured"],
    );
    assert_error(
        anonymous.manifest_digest(&image).await,
        &image,
        &["401 Unauthorized", "no credentials configured"],
    );

    // docker config.json
    let docker_config = registry.dir().join("config.json");
    let auth = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    };
    std::fs::write(
        &docker_config,
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, registry.addr),
    )
    .expect("write docker config");
    let mut config = config_for(&registry);
    config.registry.docker_config = Some(docker_config);
    let with_docker_config = Oci::new(config).expect("Oci");
    assert_eq!(
        with_docker_config.verify(&request).await,
        Ok(trusted(&digest))
    );

    // per-image credentials: right one for team-a, wrong one for the rest
    let mut config = config_for(&registry);
    config.registry.credentials = vec![
        ImageCredential {
            pattern: format!("{}/team-a/**", registry.addr),
            credential: Credential::Basic {
                username: user.into(),
                password: pass.into(),
            },
        },
        ImageCredential {
            pattern: format!("{}/**", registry.addr),
            credential: Credential::Basic {
                username: user.into(),
                password: "wrong".into(),
            },
        },
    ];
    let per_image = Oci::new(config).expect("Oci");
    assert_eq!(per_image.verify(&request).await, Ok(trusted(&digest)));
    let other = registry.image("team-b/app", "1.0");
    let result = per_image.manifest_digest(&other).await;
    assert_error(result, &other, &["401 Unauthorized", "were rejected"]);
}

#[tokio::test]
async fn tls_registry_with_and_without_the_ca() {
    let registry = registry_or_skip!(Variant::Tls);
    let key = CosignKey::generate();
    let (image, digest) = signed_image(&registry, "demo/tls", &key, &SignOptions::default()).await;
    let request = pubkey(&image, &[&key], &[]);
    assert_eq!(
        oci_for(&registry).verify(&request).await,
        Ok(trusted(&digest))
    );

    let without_ca = Oci::new(OciConfig::default()).expect("Oci");
    let result = without_ca.verify(&request).await;
    assert_error(
        result,
        &image,
        &["Cannot fetch manifest of", "UnknownIssuer"],
    );
}

#[tokio::test]
async fn registry_down_says_why_and_recovers() {
    let mut registry = registry_or_skip!(Variant::Plain);
    let key = CosignKey::generate();
    let (image, digest) = signed_image(&registry, "demo/down", &key, &SignOptions::default()).await;
    let oci = oci_for(&registry);
    registry.stop();
    let result = oci.verify(&pubkey(&image, &[&key], &[])).await;
    assert_error(
        result,
        &image,
        &["Cannot fetch manifest of", "Connection refused"],
    );
    assert_error(oci.manifest(&image).await, &image, &["Connection refused"]);
    registry.restart();
    assert_eq!(
        oci.verify(&pubkey(&image, &[&key], &[])).await,
        Ok(trusted(&digest))
    );
}

fn certificate_request(
    image: &str,
    leaf_pem: &str,
    chain: &[&str],
    require_rekor_bundle: bool,
    ann: &[(&str, &str)],
) -> SigstoreVerifyRequest {
    SigstoreVerifyRequest::SigstoreCertificateVerify {
        image: image.to_string(),
        certificate: leaf_pem.as_bytes().to_vec(),
        certificate_chain: Some(chain.iter().map(|c| c.as_bytes().to_vec()).collect()),
        require_rekor_bundle,
        annotations: (!ann.is_empty()).then(|| annotations(ann)),
    }
}

#[tokio::test]
async fn certificate_with_chain_from_a_test_ca() {
    let registry = registry_or_skip!(Variant::Plain);
    let root = TestCa::root("signing root");
    let intermediate = root.intermediate("signing intermediate");
    let leaf = intermediate.code_signing("release@example.com");
    let key = CosignKey { key: leaf.key };
    let options = SignOptions {
        annotations: annotations(&[("env", "prod")]),
        certificate: Some((
            leaf.cert_pem.clone(),
            vec![intermediate.cert_pem.clone(), root.cert_pem.clone()],
        )),
        ..SignOptions::default()
    };
    let (image, digest) = signed_image(&registry, "demo/cert", &key, &options).await;
    let chain = [intermediate.cert_pem.as_str(), root.cert_pem.as_str()];
    let oci = oci_for(&registry);

    assert_eq!(
        oci.verify(&certificate_request(
            &image,
            &leaf.cert_pem,
            &chain,
            false,
            &[("env", "prod")]
        ))
        .await,
        Ok(trusted(&digest))
    );
    let result = oci
        .verify(&certificate_request(
            &image,
            &leaf.cert_pem,
            &chain,
            false,
            &[("env", "dev")],
        ))
        .await;
    assert_error(result, &image, &["missing signatures", "kind: certificate"]);
    // no Rekor bundle (cosign --tlog-upload=false), so requiring one fails, and says why
    let result = oci
        .verify(&certificate_request(
            &image,
            &leaf.cert_pem,
            &chain,
            true,
            &[],
        ))
        .await;
    assert_error(
        result,
        &image,
        &[
            "missing signatures",
            "requireRekorBundle: true",
            "Rekor bundle",
        ],
    );
    // a chain from another CA does not vouch for the certificate
    let stranger = TestCa::root("stranger");
    let result = oci
        .verify(&certificate_request(
            &image,
            &leaf.cert_pem,
            &[&stranger.cert_pem],
            false,
            &[],
        ))
        .await;
    assert!(
        result
            .as_ref()
            .is_err_and(|e| e.message.starts_with("Certificate not usable")),
        "{result:?}"
    );
    // another certificate of the same CA did not sign the image
    let other_leaf = intermediate.code_signing("other@example.com");
    let result = oci
        .verify(&certificate_request(
            &image,
            &other_leaf.cert_pem,
            &chain,
            false,
            &[],
        ))
        .await;
    assert_error(result, &image, &["missing signatures"]);
}

#[tokio::test]
async fn keyless_with_the_default_trust_root_names_the_identity_not_found() {
    let registry = registry_or_skip!(Variant::Plain);
    let key = CosignKey::generate();
    let (image, _) = signed_image(&registry, "demo/keyless", &key, &SignOptions::default()).await;
    let request = SigstoreVerifyRequest::SigstoreGithubActionsVerify {
        image: image.clone(),
        owner: "kubewarden".into(),
        repo: None,
        annotations: None,
    };
    // Without --sigstore-trust-config the embedded public-good root is used:
    // the key-signed layer is found and does not satisfy the identity.
    let result = oci_for(&registry).verify(&request).await;
    assert_error(
        result,
        &image,
        &[
            "missing signatures",
            "1 signature(s) found",
            "owner: kubewarden",
        ],
    );
}

#[tokio::test]
async fn manifest_operations_on_a_single_image() {
    let registry = registry_or_skip!(Variant::Plain);
    let repo = "demo/plainimage";
    let built = Image::single(repo, Format::Oci);
    let digest = built.push(&registry, repo, "1.0").await;
    let image = registry.image(repo, "1.0");
    let oci = oci_for(&registry);
    assert_eq!(
        oci.manifest_digest(&image).await.map(|r| r.digest),
        Ok(digest.clone())
    );
    let manifest = oci.manifest(&image).await.expect("manifest");
    assert_eq!(
        serde_json::to_vec(&manifest).expect("json"),
        built.top,
        "oci_manifest returns the registry's manifest unchanged"
    );
    let resolved = oci.manifest_and_config(&image).await.expect("config");
    assert_eq!(resolved.digest, digest);
    assert_eq!(resolved.config["os"], "linux");
    let missing = registry.image(repo, "nope");
    assert_error(
        oci.manifest_digest(&missing).await,
        &missing,
        &["Cannot fetch manifest of"],
    );
}

/// Keyless signing against the fake Fulcio/Rekor: certificate + chain (+
/// Rekor bundle) annotations on the layer, like `cosign sign` with OIDC.
async fn keyless_signed(
    registry: &Registry,
    repo: &str,
    digest: &str,
    fake: &FakeSigstore,
    leaf: Leaf,
    with_bundle: bool,
) {
    let options = SignOptions {
        certificate: Some((leaf.cert_pem.clone(), vec![fake.fulcio.cert_pem.clone()])),
        rekor: with_bundle.then_some(fake),
        append: true,
        ..SignOptions::default()
    };
    sign(
        registry,
        repo,
        digest,
        &CosignKey { key: leaf.key },
        &options,
    )
    .await;
}

fn oci_with_trust(registry: &Registry, fake: &FakeSigstore) -> Oci {
    let mut config = config_for(registry);
    config.sigstore_trust_config = Some(fake.write_trust_config(registry.dir()));
    Oci::new(config).expect("Oci with trust config")
}

const GITHUB: &str = "https://token.actions.githubusercontent.com";
const WORKFLOW: &str =
    "https://github.com/kubewarden/app/.github/workflows/release.yml@refs/tags/v1";

#[tokio::test]
async fn keyless_variants_with_an_offline_trust_root() {
    let registry = registry_or_skip!(Variant::Plain);
    let fake = FakeSigstore::new();
    let repo = "demo/keylessok";
    let digest = Image::single(repo, Format::Oci)
        .push(&registry, repo, "1.0")
        .await;
    let oauth = "https://github.com/login/oauth";
    let leaf = fake.keyless_certificate(Identity::Email("dev@example.com"), oauth, None);
    keyless_signed(&registry, repo, &digest, &fake, leaf, true).await;
    let leaf = fake.keyless_certificate(Identity::Uri(WORKFLOW), GITHUB, Some("kubewarden/app"));
    keyless_signed(&registry, repo, &digest, &fake, leaf, true).await;
    let image = registry.image(repo, "1.0");
    let oci = oci_with_trust(&registry, &fake);

    let keyless = |subject: &str| SigstoreVerifyRequest::SigstoreKeylessVerify {
        image: image.clone(),
        keyless: vec![KeylessInfo {
            issuer: oauth.into(),
            subject: subject.into(),
        }],
        annotations: None,
    };
    assert_eq!(
        oci.verify(&keyless("dev@example.com")).await,
        Ok(trusted(&digest))
    );
    let result = oci.verify(&keyless("kubewarden@cncf.io")).await;
    assert_error(
        result,
        &image,
        &["missing signatures", "subject: !equal kubewarden@cncf.io"],
    );

    let github =
        |owner: &str, repo: Option<&str>| SigstoreVerifyRequest::SigstoreGithubActionsVerify {
            image: image.clone(),
            owner: owner.into(),
            repo: repo.map(str::to_string),
            annotations: None,
        };
    assert_eq!(
        oci.verify(&github("kubewarden", Some("app"))).await,
        Ok(trusted(&digest))
    );
    assert_error(
        oci.verify(&github("other", None)).await,
        &image,
        &["kind: githubAction"],
    );

    let prefix = |url_prefix: &str| SigstoreVerifyRequest::SigstoreKeylessPrefixVerify {
        image: image.clone(),
        keyless_prefix: vec![KeylessPrefixInfo {
            issuer: GITHUB.into(),
            url_prefix: url_prefix.into(),
        }],
        annotations: None,
    };
    assert_eq!(
        oci.verify(&prefix("https://github.com/kubewarden")).await,
        Ok(trusted(&digest))
    );
    let result = oci.verify(&prefix("https://github.com/kube")).await;
    assert_error(
        result,
        &image,
        &["subject: !urlPrefix https://github.com/kube/"],
    );
}

#[tokio::test]
async fn keyless_signature_needs_fulcio_and_rekor_of_the_trust_root() {
    let registry = registry_or_skip!(Variant::Plain);
    let (fake, impostor) = (FakeSigstore::new(), FakeSigstore::new());
    let repo = "demo/keylessbad";
    let digest = Image::single(repo, Format::Oci)
        .push(&registry, repo, "1.0")
        .await;
    let oauth = "https://github.com/login/oauth";
    // no Rekor bundle (tlog upload skipped): the certificate is not trusted
    let leaf = fake.keyless_certificate(Identity::Email("nobundle@example.com"), oauth, None);
    keyless_signed(&registry, repo, &digest, &fake, leaf, false).await;
    // certificate and bundle from another "Sigstore"
    let leaf = impostor.keyless_certificate(Identity::Email("impostor@example.com"), oauth, None);
    keyless_signed(&registry, repo, &digest, &impostor, leaf, true).await;
    // a certificate from another Fulcio, logged in the trusted Rekor: the
    // SET verifies, the certificate chains to no CA of the trust root
    let leaf = impostor.keyless_certificate(Identity::Email("logged@example.com"), oauth, None);
    let options = SignOptions {
        certificate: Some((
            leaf.cert_pem.clone(),
            vec![impostor.fulcio.cert_pem.clone()],
        )),
        rekor: Some(&fake),
        append: true,
        ..SignOptions::default()
    };
    sign(
        &registry,
        repo,
        &digest,
        &CosignKey { key: leaf.key },
        &options,
    )
    .await;
    let image = registry.image(repo, "1.0");
    let oci = oci_with_trust(&registry, &fake);
    for subject in [
        "nobundle@example.com",
        "impostor@example.com",
        "logged@example.com",
    ] {
        let request = SigstoreVerifyRequest::SigstoreKeylessVerify {
            image: image.clone(),
            keyless: vec![KeylessInfo {
                issuer: oauth.into(),
                subject: subject.into(),
            }],
            annotations: None,
        };
        let result = oci.verify(&request).await;
        assert_error(result, &image, &["missing signatures", subject]);
    }
    // the denial says why the logged one's certificate did not count
    let request = SigstoreVerifyRequest::SigstoreKeylessVerify {
        image: image.clone(),
        keyless: vec![KeylessInfo {
            issuer: oauth.into(),
            subject: "logged@example.com".into(),
        }],
        annotations: None,
    };
    assert_error(
        oci.verify(&request).await,
        &image,
        &[
            "certificate ignored",
            "does not chain to a certificate authority",
        ],
    );
}

#[tokio::test]
async fn certificate_requiring_a_rekor_bundle_passes_with_one() {
    let registry = registry_or_skip!(Variant::Plain);
    let fake = FakeSigstore::new();
    let root = TestCa::root("signing root");
    let leaf = root.code_signing("release@example.com");
    let options = SignOptions {
        certificate: Some((leaf.cert_pem.clone(), vec![root.cert_pem.clone()])),
        rekor: Some(&fake),
        ..SignOptions::default()
    };
    let cert_pem = leaf.cert_pem.clone();
    let (image, digest) = signed_image(
        &registry,
        "demo/certrekor",
        &CosignKey { key: leaf.key },
        &options,
    )
    .await;
    let request = certificate_request(&image, &cert_pem, &[&root.cert_pem], true, &[]);
    // with the embedded public-good root instead of the lab's, the lab
    // Rekor's bundle does not verify and the layer does not count
    let result = oci_for(&registry).verify(&request).await;
    assert_error(result, &image, &["no signatures found for image", &digest]);
    assert_eq!(
        oci_with_trust(&registry, &fake).verify(&request).await,
        Ok(trusted(&digest))
    );
}

#[tokio::test]
async fn lab_signatures_are_stored_in_cosign_format() {
    let registry = registry_or_skip!(Variant::Plain);
    let (k1, k2) = (CosignKey::generate(), CosignKey::generate());
    let repo = "demo/format";
    let digest = Image::single(repo, Format::Oci)
        .push(&registry, repo, "1.0")
        .await;
    let first = sign(&registry, repo, &digest, &k1, &SignOptions::default()).await;
    let options = SignOptions {
        annotations: annotations(&[("env", "prod")]),
        append: true,
        ..SignOptions::default()
    };
    let second = sign(&registry, repo, &digest, &k2, &options).await;
    let sig_image = registry.image(repo, &signature_tag(&digest));
    let oci = oci_for(&registry);

    // what the registry serves under sha256-<hex>.sig is exactly what the lab wrote
    assert_eq!(
        oci.manifest_digest(&sig_image).await.map(|r| r.digest),
        Ok(second.manifest_digest.clone())
    );
    let stored = oci.manifest(&sig_image).await.expect("signature manifest");
    assert_eq!(serde_json::to_vec(&stored).expect("json"), second.manifest);
    // appending kept the first signature as the first layer
    let layers = stored["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 2);
    assert_eq!(
        layers[0]["annotations"]["dev.cosignproject.cosign/signature"],
        first.signature.as_str()
    );
    assert_eq!(
        layers[1]["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    assert_eq!(
        layers[1]["digest"],
        support::image::sha256(&second.payload).as_str()
    );
    // payload: Go's JSON of the simple-signing claims, signed by the key (DER, base64)
    assert_eq!(
        second.payload,
        payload(
            &format!("{}/{repo}", registry.addr),
            &digest,
            &annotations(&[("env", "prod")])
        )
    );
    assert_eq!(
        String::from_utf8(first.payload.clone()).expect("utf8"),
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"{}/{repo}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#,
            registry.addr
        )
    );
    let key = sigstore::crypto::CosignVerificationKey::try_from_pem(k2.public_pem().as_bytes())
        .expect("key");
    assert!(key
        .verify_signature(
            sigstore::crypto::Signature::Base64Encoded(second.signature.as_bytes()),
            &second.payload
        )
        .is_ok());
}

#[test]
fn payload_escapes_like_go() {
    let text = String::from_utf8(payload(
        "r/x",
        "sha256:00",
        &annotations(&[("a&b", "<x>"), ("z", "\u{2028}")]),
    ))
    .expect("utf8");
    assert!(
        text.ends_with(r#""optional":{"a\u0026b":"\u003cx\u003e","z":"\u2028"}}"#),
        "{text}"
    );
}

/// The registry requests `check` makes, from the registry's access log. The
/// registry logs a request once it has answered it: wait for `expected`
/// lines (a later extra one fails the next count, or the final total).
async fn requests_of<T>(
    registry: &Registry,
    expected: usize,
    check: impl std::future::Future<Output = T>,
) -> (T, Vec<String>) {
    let before = registry.requests().len();
    let answer = check.await;
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    while registry.requests().len() < before + expected && Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // The log trails the answer: a request beyond the expected ones shows too.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    (answer, registry.requests()[before..].to_vec())
}

/// The same requests in any order: the `.sig` path and the referrers API
/// are asked concurrently.
fn sorted(mut requests: Vec<String>) -> Vec<String> {
    requests.sort();
    requests
}

#[tokio::test]
async fn one_cosign_key_check_costs_three_registry_requests() {
    if !registry::available() {
        return;
    }
    let registry = Registry::start_logged(Variant::Plain);
    let key = CosignKey::generate();
    let options = SignOptions::default();
    let (first, first_digest) = signed_image(&registry, "demo/count1", &key, &options).await;
    let (second, second_digest) = signed_image(&registry, "demo/count2", &key, &options).await;
    let oci = oci_for(&registry);
    // The layers of these signatures are cosign's payload without
    // annotations, known from their digest: not fetched.
    let expected = |repo: &str, digest: &str, tag: Option<&str>, referrers: bool| {
        let sig = format!("{}.sig", digest.replace(':', "-"));
        let mut s: Vec<String> = tag
            .map(|t| format!("HEAD /v2/{repo}/manifests/{t}"))
            .into_iter()
            .collect();
        s.push(format!("GET /v2/{repo}/manifests/{sig}"));
        if referrers {
            s.push(format!("GET /v2/{repo}/referrers/{digest}"));
        }
        sorted(s)
    };
    let shape = |requests: Vec<String>| -> Vec<String> {
        sorted(
            requests
                .into_iter()
                .map(|r| match r.find("/blobs/") {
                    Some(i) => r[..i + "/blobs/".len()].to_string(),
                    None => r,
                })
                .collect(),
        )
    };

    // A new process: the first check pays no ping either, and learns that
    // this registry has no referrers API (404).
    let (answer, requests) =
        requests_of(&registry, 3, oci.verify(&pubkey(&first, &[&key], &[]))).await;
    assert_eq!(answer, Ok(trusted(&first_digest)));
    assert_eq!(
        shape(requests),
        expected("demo/count1", &first_digest, Some("1.0"), true),
        "resolve, .sig manifest, referrers: nothing twice, no /v2/ ping"
    );
    // Another image in the same process: the API is not asked again.
    let (answer, requests) =
        requests_of(&registry, 2, oci.verify(&pubkey(&second, &[&key], &[]))).await;
    assert_eq!(answer, Ok(trusted(&second_digest)));
    assert_eq!(
        shape(requests),
        expected("demo/count2", &second_digest, Some("1.0"), false)
    );
    // Pinned to the digest (as the cache asks): no resolution.
    let pinned = format!("{}/demo/count2@{second_digest}", registry.addr);
    let (answer, requests) =
        requests_of(&registry, 1, oci.verify(&pubkey(&pinned, &[&key], &[]))).await;
    assert_eq!(answer, Ok(trusted(&second_digest)));
    assert_eq!(
        shape(requests),
        expected("demo/count2", &second_digest, None, false)
    );
    // A payload with annotations is not known: its layer is fetched.
    let with_annotations = SignOptions {
        annotations: annotations(&[("env", "prod")]),
        ..SignOptions::default()
    };
    let (annotated, annotated_digest) =
        signed_image(&registry, "demo/count4", &key, &with_annotations).await;
    let request = pubkey(&annotated, &[&key], &[("env", "prod")]);
    let (answer, requests) = requests_of(&registry, 3, oci.verify(&request)).await;
    assert_eq!(answer, Ok(trusted(&annotated_digest)));
    let mut with_layer = expected("demo/count4", &annotated_digest, Some("1.0"), false);
    with_layer.push("GET /v2/demo/count4/blobs/".to_string());
    assert_eq!(shape(requests), sorted(with_layer));
    // An unsigned image: resolve, the missing .sig tag.
    let unsigned_digest = Image::single("count3", Format::Oci)
        .push(&registry, "demo/count3", "1.0")
        .await;
    let unsigned = registry.image("demo/count3", "1.0");
    let (answer, requests) =
        requests_of(&registry, 2, oci.verify(&pubkey(&unsigned, &[&key], &[]))).await;
    assert!(answer.is_err(), "{answer:?}");
    assert_eq!(
        shape(requests),
        expected("demo/count3", &unsigned_digest, Some("1.0"), false)
    );

    // `oci/v1/manifest_digest` (what a Notary check asks): one HEAD, no ping.
    let (answer, requests) = requests_of(&registry, 1, oci.manifest_digest(&second)).await;
    assert_eq!(answer.map(|r| r.digest), Ok(second_digest.clone()));
    assert_eq!(requests, ["HEAD /v2/demo/count2/manifests/1.0"]);
}

/// A keyless check reads the `.sig` layers as a key check does (its
/// certificate chained by the host, not by sigstore's client, which pinged
/// `/v2/` before each request and read the `.sig` manifest three times:
/// 16 requests): resolve, then the `.sig` manifest and the referrers API
/// together; the layer is cosign's payload without annotations, known from
/// its digest.
#[tokio::test]
async fn one_keyless_check_costs_the_requests_of_a_key_check() {
    if !registry::available() {
        return;
    }
    let registry = Registry::start_logged(Variant::Plain);
    let fake = FakeSigstore::new();
    let repo = "demo/keylesscount";
    let digest = Image::single(repo, Format::Oci)
        .push(&registry, repo, "1.0")
        .await;
    let issuer = "https://accounts.example.com";
    let leaf = fake.keyless_certificate(Identity::Email("dev@example.com"), issuer, None);
    keyless_signed(&registry, repo, &digest, &fake, leaf, true).await;
    let oci = oci_with_trust(&registry, &fake);
    let request = SigstoreVerifyRequest::SigstoreKeylessVerify {
        image: registry.image(repo, "1.0"),
        keyless: vec![KeylessInfo {
            issuer: issuer.into(),
            subject: "dev@example.com".into(),
        }],
        annotations: None,
    };
    let (answer, requests) = requests_of(&registry, 3, oci.verify(&request)).await;
    assert_eq!(answer, Ok(trusted(&digest)));
    let sig = format!("{}.sig", digest.replace(':', "-"));
    assert_eq!(
        sorted(requests),
        sorted(vec![
            format!("HEAD /v2/{repo}/manifests/1.0"),
            format!("GET /v2/{repo}/manifests/{sig}"),
            format!("GET /v2/{repo}/referrers/{digest}"),
        ]),
        "nothing twice, no /v2/ ping"
    );
}

/// A registry behind a token service (the protocol of Docker Hub, GHCR,
/// Harbor): a repository's first 401 costs one token fetch however many
/// requests meet it at once, and that token serves the repository's later
/// requests; another repository fetches its own.
#[tokio::test]
async fn a_token_registry_costs_one_token_per_repository() {
    if !registry::available() {
        return;
    }
    let tokens = TokenService::start();
    let registry = Registry::start_with_tokens(&tokens);
    let key = CosignKey::generate();
    let options = SignOptions::default();
    let mut pinned = Vec::new();
    for tag in ["a", "b"] {
        let digest = Image::single(&format!("token-{tag}"), Format::Oci)
            .push(&registry, "demo/token", tag)
            .await;
        sign(&registry, "demo/token", &digest, &key, &options).await;
        pinned.push((format!("{}/demo/token@{digest}", registry.addr), digest));
    }
    let (other, other_digest) = signed_image(&registry, "demo/other", &key, &options).await;
    let pushed = tokens.scopes().len();
    let fetched = || tokens.scopes()[pushed..].to_vec();
    let oci = oci_for(&registry);

    // Two checks at once in one repository: both `.sig` requests meet the 401.
    let (ra, rb) = (
        pubkey(&pinned[0].0, &[&key], &[]),
        pubkey(&pinned[1].0, &[&key], &[]),
    );
    let (a, b) = tokio::join!(oci.verify(&ra), oci.verify(&rb));
    assert_eq!(a, Ok(trusted(&pinned[0].1)));
    assert_eq!(b, Ok(trusted(&pinned[1].1)));
    assert_eq!(
        fetched(),
        ["repository:demo/token:pull"],
        "one token for both"
    );
    // The access log is written after each answer: wait for the lines.
    let sig_requests = || {
        let log = registry.requests();
        log.iter()
            .filter(|r| r.starts_with("GET /v2/demo/token/manifests/") && r.ends_with(".sig"))
            .count()
    };
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    while sig_requests() < 4 && Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        sig_requests(),
        4,
        "each .sig asked twice: refused, then with the token"
    );

    // By tag, later: the token is reused.
    let by_tag = registry.image("demo/token", "a");
    let answer = oci.verify(&pubkey(&by_tag, &[&key], &[])).await;
    assert_eq!(answer, Ok(trusted(&pinned[0].1)));
    assert_eq!(fetched().len(), 1, "{:?}", fetched());

    // Another repository: its own scope.
    let answer = oci.verify(&pubkey(&other, &[&key], &[])).await;
    assert_eq!(answer, Ok(trusted(&other_digest)));
    assert_eq!(
        fetched(),
        ["repository:demo/token:pull", "repository:demo/other:pull"]
    );
}
