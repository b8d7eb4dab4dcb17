//! The cosign `.sig` signature layers of a digest, fetched by the host's own
//! distribution reader and handed to sigstore as `SignatureLayer`s.
//!
//! Why not sigstore's `trusted_signature_layers`: it goes through
//! oci-client, which pings `/v2/` before every request to a registry that
//! sends no challenge, HEADs a digest that is already pinned and reads the
//! `.sig` manifest three times: 16 requests for one check where 3 do
//! (resolve, the `.sig` manifest, the referrers API; 2 once the registry is
//! known to lack that API), in 2 round trips (the API is asked alongside the
//! `.sig` path); a layer is fetched only when its bytes are not known from
//! its digest ([`known_payload`]: cosign's payload without annotations).
//!
//! A layer is accepted as sigstore's `SignatureLayer::new` accepts it (which
//! sigstore does not export): simple-signing media type, digest checked,
//! the payload names the digest, a signature annotation, and a Rekor bundle,
//! when there is one, verified by sigstore with the trust root's Rekor keys
//! (a bundle that does not verify drops the layer). As in oci-client's
//! `pull`, a `.sig` manifest with a layer of another type yields no layer.
//!
//! A keyless layer's certificate is read as sigstore's
//! `CertificateSignature::from_certificate` reads it (not exported either;
//! see [`certificate`]): only with a verified Rekor bundle, chained to a
//! Fulcio certificate authority of the trust root by the host's own chain
//! check ([`chain::fulcio`]). A certificate that does not verify is left out
//! and the layer kept (for key checks), as sigstore does; why it was left
//! out is kept for the denial ([`Layers::ignored`]).
//!
//! Not covered (the caller uses sigstore's client): when the referrers API
//! lists anything, sigstore reads the v0.3 bundles among them
//! ([`Fetched::Referrers`]).

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

use sigstore::cosign::bundle::{Bundle, SignedArtifactBundle};
use sigstore::cosign::bundle_content::BundleContent;
use sigstore::cosign::payload::simple_signing::SimpleSigning;
use sigstore::cosign::signature_layers::{CertificateSignature, CertificateSubject};
use sigstore::cosign::SignatureLayer;
use sigstore::crypto::CosignVerificationKey;

use super::discovery::{self, Api, Descriptor, Discovery};
use super::distribution::{Manifest, Repo};
use crate::capabilities::sigstore::fulcio::FULCIO_ARC;
use crate::capabilities::sigstore::legacy::{BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION};
use crate::capabilities::sigstore::tlog::{self, Signed, Verifier};
use crate::capabilities::sigstore::{chain, TrustRoot};
use crate::capabilities::x509::Certificate;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// What the registry holds for a digest.
pub(crate) enum Fetched {
    /// The verified `.sig` layers (maybe none), and no referrers.
    Layers(Layers),
    /// The referrers API lists entries: sigstore's client must read them.
    Referrers,
}

/// The `.sig` layers kept, and why certificates on them were left out.
#[derive(Debug, Default)]
pub(crate) struct Layers {
    pub(crate) layers: Vec<SignatureLayer>,
    /// `layer <digest>: <reason>` for each certificate left out.
    pub(crate) ignored: Vec<String>,
}

/// What `.sig` layers are checked against: the trust root's Rekor keys, as
/// sigstore's cosign client holds them (log id in hex -> key; keys it cannot
/// parse are left out, as it does), and its Fulcio certificate authorities.
pub(crate) struct Trust {
    rekor_keys: BTreeMap<String, CosignVerificationKey>,
    root: Arc<TrustRoot>,
}

impl Trust {
    pub(crate) fn new(root: Arc<TrustRoot>) -> Trust {
        // The keys as the trust root parsed them when it was loaded.
        let rekor_keys = root
            .tlogs
            .iter()
            .filter_map(|log| Some((hex::encode(&log.id), log.key.as_ref().ok()?.clone())))
            .collect();
        Trust { rekor_keys, root }
    }

    /// The trust root itself, for the other readers of the host.
    pub(crate) fn root(&self) -> &Arc<TrustRoot> {
        &self.root
    }
}

/// The `.sig` layers of `digest` and, concurrently, the referrers API (not
/// asked of a registry known to lack it). Errors are the registry's
/// (transport, statuses other than 404), never "unsigned".
pub(crate) async fn fetch(
    discovery: &Discovery<'_>,
    digest: &str,
    trust: &Trust,
) -> Result<Fetched, String> {
    let sig = async {
        match discovery.legacy(digest, "sig").await? {
            Some(manifest) => read(discovery, &manifest, digest, trust).await,
            None => Ok(Layers::default()),
        }
    };
    let (layers, referrers) = tokio::join!(sig, discovery.referrers_api(digest));
    let layers = layers?;
    // sigstore ignores a referrers API that fails; so does this.
    match referrers {
        Ok(Api::Entries(entries, _)) if !entries.is_empty() => Ok(Fetched::Referrers),
        _ => Ok(Fetched::Layers(layers)),
    }
}

/// The layers of `digest`'s `.sig` manifest, already fetched: one blob
/// request per layer.
pub(crate) async fn read(
    discovery: &Discovery<'_>,
    manifest: &Manifest,
    digest: &str,
    trust: &Trust,
) -> Result<Layers, String> {
    let descriptors = discovery::layers_of(manifest)?;
    let mut layers = Layers::default();
    if descriptors.iter().all(|d| d.media_type == SIMPLE_SIGNING) {
        for descriptor in &descriptors {
            let bytes = match known_payload(discovery.repo, digest, descriptor) {
                Some(bytes) => bytes,
                None => discovery.layer(descriptor).await?,
            };
            let kept = layer(
                bytes,
                &descriptor.digest,
                &descriptor.annotations,
                digest,
                trust,
            );
            if let Some((layer, ignored)) = kept {
                layers.layers.push(layer);
                layers.ignored.extend(
                    ignored.map(|why| {
                        format!("layer {}: certificate ignored: {why}", descriptor.digest)
                    }),
                );
            }
        }
    }
    Ok(layers)
}

/// A layer's bytes without fetching them, when they are what cosign writes
/// for a signature without annotations: that payload is a function of the
/// repository's name and the digest (Go's JSON of cosign's simple-signing
/// struct, `optional: null`), and a layer is named by its digest, so bytes
/// of that size and digest are the layer's, as a fetched blob would be
/// after its digest check. Saves the last of a check's three round trips.
/// The names tried are the repository as written and as connected to
/// (`docker.io` is `index.docker.io`, as go-containerregistry writes it);
/// anything else (annotations, another docker-reference, sha512) is fetched.
fn known_payload(repo: &Repo, digest: &str, layer: &Descriptor) -> Option<Vec<u8>> {
    let names = [repo.name(), format!("{}/{}", repo.host, repo.repository)];
    names
        .iter()
        // JSON needs no escapes for these characters, so the bytes are Go's.
        .filter(|name| {
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-:/".contains(&b))
        })
        .map(|name| {
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"{name}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
            .into_bytes()
        })
        .find(|bytes| {
            bytes.len() as u64 == layer.size
                && layer.digest == format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
        })
}

/// One layer (bytes already digest-checked), or `None` where sigstore would
/// skip it; with why its certificate was left out, if it was.
fn layer(
    raw_data: Vec<u8>,
    layer_digest: &str,
    annotations: &BTreeMap<String, String>,
    digest: &str,
    trust: &Trust,
) -> Option<(SignatureLayer, Option<String>)> {
    let simple_signing: SimpleSigning = serde_json::from_slice(&raw_data).ok()?;
    if !simple_signing.satisfies_manifest_digest(digest) {
        return None;
    }
    let signature = annotations.get(SIGNATURE_ANNOTATION)?.clone();
    let bundle = match annotations.get(BUNDLE_ANNOTATION) {
        Some(raw) if !trust.rekor_keys.is_empty() => Some(verified_bundle(raw, &trust.rekor_keys)?),
        _ => None,
    };
    let (certificate_signature, ignored) = match (annotations.get(CERTIFICATE_ANNOTATION), &bundle) {
        (None, _) => (None, None),
        (Some(_), None) => (
            None,
            Some("no Rekor bundle verified by the trust root's Rekor keys (its integrated time is the only evidence of when the certificate was used)".to_string()),
        ),
        (Some(pem), Some(bundle)) => {
            match certificate(pem, &raw_data, &signature, bundle, &trust.root) {
                Ok(c) => (Some(c), None),
                Err(why) => (None, Some(why)),
            }
        }
    };
    let layer = SignatureLayer {
        simple_signing,
        oci_digest: layer_digest.to_string(),
        certificate_signature,
        bundle: bundle.map(BundleContent::RekorBundle),
        signature: Some(signature),
        raw_data,
    };
    Some((layer, ignored))
}

/// A keyless layer's certificate (PEM) as sigstore's
/// `CertificateSignature::from_certificate` reads it, at the integrated time
/// of the layer's Rekor entry (its SET verified):
/// * the entry records this payload, signature and certificate (sigstore
///   does not check that, cosign does: without it any entry of the log
///   logged in the certificate's ten minutes would vouch for a signature
///   made later with its key);
/// * it chains to a Fulcio certificate authority of the trust root, valid at
///   `integrated_time`, as is the whole path, with codeSigning
///   ([`chain::fulcio`]; sigstore checks the path at the leaf's notBefore
///   against every CA certificate listed, whatever its validity window: this
///   is stricter, never looser); the chain annotation is not used, as sigstore
///   does not use it;
/// * its key usage includes digitalSignature, its notBefore is not in the
///   future;
/// * the subject is the first e-mail or URI SAN, the issuer and GitHub claims
///   the raw Fulcio extensions `.1`-`.6`, exactly as sigstore reads them, so
///   identities match as they do under policy-server.
fn certificate(
    pem: &str,
    payload: &[u8],
    signature: &str,
    bundle: &Bundle,
    root: &TrustRoot,
) -> Result<CertificateSignature, String> {
    let leaf = Certificate::from_pem(pem)?
        .into_iter()
        .next()
        .ok_or("the certificate annotation holds no certificate")?;
    let body = B64
        .decode(&bundle.payload.body)
        .map_err(|_| "the Rekor bundle's body is not base64")?;
    let signature = B64
        .decode(signature)
        .map_err(|_| "the signature annotation is not base64")?;
    let signed = Signed {
        payload,
        pae: payload,
        signature: &signature,
        verifier: Verifier::Certificate(leaf.der()),
    };
    tlog::check_body(&body, &signed).map_err(|e| format!("its Rekor entry: {e}"))?;
    chain::fulcio(leaf.der(), &[], root, &[bundle.payload.integrated_time])?;
    if leaf.not_before() > chrono::Utc::now() {
        return Err(format!("not valid before {}", leaf.not_before()));
    }
    if !leaf
        .key_usage()?
        .is_some_and(|(_, usage)| usage.digital_signature())
    {
        return Err("the key usage does not include digitalSignature".to_string());
    }
    let cert = leaf.parsed();
    let tbs = cert.tbs_certificate();
    let subject = CertificateSubject::from_certificate(cert).map_err(|e| e.to_string())?;
    let verification_key = CosignVerificationKey::try_from(tbs.subject_public_key_info())
        .map_err(|e| format!("its key: {e}"))?;
    let claim = |n: u32| {
        let oid = format!("{FULCIO_ARC}{n}");
        tbs.extensions()
            .into_iter()
            .flatten()
            .find(|ext| ext.extn_id.to_string() == oid)
            .map(|ext| {
                String::from_utf8(ext.extn_value.as_bytes().to_vec())
                    .map_err(|_| format!("Fulcio extension {oid} is not UTF-8"))
            })
            .transpose()
    };
    Ok(CertificateSignature {
        verification_key,
        subject,
        issuer: claim(1)?,
        github_workflow_trigger: claim(2)?,
        github_workflow_sha: claim(3)?,
        github_workflow_name: claim(4)?,
        github_workflow_repository: claim(5)?,
        github_workflow_ref: claim(6)?,
    })
}

/// The Rekor bundle of a layer, its SET verified by sigstore. sigstore
/// exports that check only for blob bundles (`SignedArtifactBundle`), whose
/// other fields it does not look at: the layer's bundle is wrapped in one.
fn verified_bundle(
    raw: &str,
    rekor_keys: &BTreeMap<String, CosignVerificationKey>,
) -> Option<Bundle> {
    let rekor_bundle: Bundle = serde_json::from_str(raw).ok()?;
    let wrapped = serde_json::to_string(&SignedArtifactBundle {
        base64_signature: String::new(),
        cert: String::new(),
        rekor_bundle,
    })
    .ok()?;
    SignedArtifactBundle::new_verified(&wrapped, rekor_keys)
        .ok()
        .map(|b| b.rekor_bundle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::sigstore::trust_root::{Log, Validity};

    const DIGEST: &str = "sha256:ae9ec4294fa57373460da70ceeddd75c1e092e852db99c9d544df036ce6f91b9";

    fn payload(digest: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "critical": {"identity": {"docker-reference": "127.0.0.1:5000/demo/app"},
                         "image": {"docker-manifest-digest": digest},
                         "type": "cosign container image signature"},
            "optional": null}))
        .unwrap()
    }

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A trust root with only this Rekor key (log id `00`), or nothing.
    fn trust(rekor: Option<&rcgen::KeyPair>) -> Trust {
        use rcgen::PublicKeyData as _;
        let tlogs = rekor
            .map(|key| {
                let spki = key.subject_public_key_info();
                Log {
                    name: "rekor.test".to_string(),
                    id: vec![0],
                    key: CosignVerificationKey::try_from_der(&spki).map_err(|e| e.to_string()),
                    spki,
                    valid: Validity {
                        start: 0,
                        end: None,
                    },
                }
            })
            .into_iter()
            .collect();
        Trust::new(Arc::new(TrustRoot {
            source: "the test root".to_string(),
            certificate_authorities: Vec::new(),
            tlogs,
            ctlogs: Vec::new(),
            timestamp_authorities: Vec::new(),
        }))
    }

    /// Bytes cosign wrote without annotations are known without fetching;
    /// anything else is fetched.
    #[test]
    fn a_payload_without_annotations_is_known_by_its_digest() {
        let descriptor = |bytes: &[u8]| Descriptor {
            media_type: SIMPLE_SIGNING.to_string(),
            digest: format!("sha256:{}", hex::encode(Sha256::digest(bytes))),
            size: bytes.len() as u64,
            artifact_type: None,
            annotations: BTreeMap::new(),
        };
        let repo = |registry: &str, host: &str| Repo {
            registry: registry.to_string(),
            host: host.to_string(),
            repository: "library/nginx".to_string(),
            credential: None,
        };
        let hub = repo("docker.io", "index.docker.io");
        // as cosign (go-containerregistry) names a Docker Hub repository
        let cosign = br#"{"critical":{"identity":{"docker-reference":"index.docker.io/library/nginx"},"image":{"docker-manifest-digest":"sha256:ab"},"type":"cosign container image signature"},"optional":null}"#;
        assert_eq!(
            known_payload(&hub, "sha256:ab", &descriptor(cosign)).as_deref(),
            Some(&cosign[..])
        );
        let written = payload("sha256:ab");
        let local = repo("127.0.0.1:5000", "127.0.0.1:5000");
        let local = Repo {
            repository: "demo/app".to_string(),
            ..local
        };
        assert_eq!(
            known_payload(&local, "sha256:ab", &descriptor(&written)),
            Some(written.clone())
        );
        // another digest, another repository, annotations: fetched
        assert_eq!(
            known_payload(&local, "sha256:cd", &descriptor(&written)),
            None
        );
        assert_eq!(
            known_payload(&hub, "sha256:ab", &descriptor(&written)),
            None
        );
        let annotated = br#"{"critical":{"identity":{"docker-reference":"index.docker.io/library/nginx"},"image":{"docker-manifest-digest":"sha256:ab"},"type":"cosign container image signature"},"optional":{"creator":"OBS"}}"#;
        assert_eq!(
            known_payload(&hub, "sha256:ab", &descriptor(annotated)),
            None
        );
    }

    #[test]
    fn layers_are_kept_or_skipped_as_sigstore_does() {
        let none = trust(None);
        let signed = annotations(&[(SIGNATURE_ANNOTATION, "c2ln")]);
        let (kept, ignored) =
            layer(payload(DIGEST), "sha256:l", &signed, DIGEST, &none).expect("kept");
        assert_eq!(
            (kept.signature.as_deref(), kept.oci_digest.as_str()),
            (Some("c2ln"), "sha256:l")
        );
        assert!(kept.bundle.is_none() && kept.certificate_signature.is_none() && ignored.is_none());
        // another digest, no signature, not a payload
        let other = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        assert!(layer(payload(other), "sha256:l", &signed, DIGEST, &none).is_none());
        assert!(layer(payload(DIGEST), "sha256:l", &BTreeMap::new(), DIGEST, &none).is_none());
        assert!(layer(b"{}".to_vec(), "sha256:l", &signed, DIGEST, &none).is_none());
    }

    #[test]
    fn a_rekor_bundle_is_kept_only_when_its_set_verifies() {
        use base64::Engine as _;
        use rcgen::SigningKey as _;
        let rekor = rcgen::KeyPair::generate().unwrap();
        let keys = trust(Some(&rekor));
        assert_eq!(keys.rekor_keys.len(), 1);
        // The SET signs the payload's canonical JSON (keys sorted).
        let canonical = br#"{"body":"e30=","integratedTime":1,"logID":"00","logIndex":1}"#;
        let set = base64::engine::general_purpose::STANDARD.encode(rekor.sign(canonical).unwrap());
        let bundle = |set: &str| {
            format!(
                r#"{{"SignedEntryTimestamp":"{set}","Payload":{{"body":"e30=","integratedTime":1,"logIndex":1,"logID":"00"}}}}"#
            )
        };
        let with = |bundle: &str, certificate: Option<&str>| {
            let mut pairs = vec![(SIGNATURE_ANNOTATION, "c2ln"), (BUNDLE_ANNOTATION, bundle)];
            pairs.extend(certificate.map(|c| (CERTIFICATE_ANNOTATION, c)));
            annotations(&pairs)
        };
        let (kept, _) = layer(
            payload(DIGEST),
            "sha256:l",
            &with(&bundle(&set), None),
            DIGEST,
            &keys,
        )
        .expect("kept");
        assert!(matches!(kept.bundle, Some(BundleContent::RekorBundle(_))));
        // a SET that does not verify drops the layer
        assert!(layer(
            payload(DIGEST),
            "sha256:l",
            &with(&bundle("AAAA"), None),
            DIGEST,
            &keys
        )
        .is_none());
        // without Rekor keys the bundle is ignored, as sigstore ignores it,
        // and a certificate with it, saying why
        let (kept, ignored) = layer(
            payload(DIGEST),
            "sha256:l",
            &with(&bundle("AAAA"), Some("not a certificate")),
            DIGEST,
            &trust(None),
        )
        .expect("kept");
        assert!(kept.bundle.is_none() && kept.certificate_signature.is_none());
        assert!(ignored.is_some_and(|why| why.contains("no Rekor bundle verified")));
        // a verified bundle whose entry is not this signature's
        let leaf = rcgen::CertificateParams::new(vec!["dev@example.com".to_string()])
            .unwrap()
            .self_signed(&rekor)
            .unwrap();
        let (kept, ignored) = layer(
            payload(DIGEST),
            "sha256:l",
            &with(&bundle(&set), Some(&leaf.pem())),
            DIGEST,
            &keys,
        )
        .expect("kept, for key checks");
        assert!(kept.bundle.is_some() && kept.certificate_signature.is_none());
        let why = ignored.expect("a reason");
        assert!(why.contains("its Rekor entry"), "{why}");
    }

    /// A keyless layer's Rekor entry (hashedrekord 0.0.1, as cosign logs a
    /// `.sig` signature) must record its payload, signature and certificate
    /// before the certificate is chained.
    #[test]
    fn a_certificate_counts_only_with_the_entry_of_its_own_signature() {
        use rcgen::SigningKey as _;
        let rekor = rcgen::KeyPair::generate().unwrap();
        let trust = trust(Some(&rekor));
        let signer = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["dev@example.com".to_string()])
            .unwrap()
            .self_signed(&signer)
            .unwrap();
        let payload = payload(DIGEST);
        let signature = B64.encode(signer.sign(&payload).unwrap());
        let entry = |signature: &str| {
            let body = serde_json::json!({
                "apiVersion": "0.0.1", "kind": "hashedrekord",
                "spec": {"data": {"hash": {"algorithm": "sha256",
                                           "value": hex::encode(Sha256::digest(&payload))}},
                         "signature": {"content": signature,
                                       "publicKey": {"content": B64.encode(leaf.pem())}}}
            });
            let body = B64.encode(body.to_string());
            let canonical =
                format!(r#"{{"body":"{body}","integratedTime":1,"logID":"00","logIndex":1}}"#);
            let set = B64.encode(rekor.sign(canonical.as_bytes()).unwrap());
            format!(
                r#"{{"SignedEntryTimestamp":"{set}","Payload":{{"body":"{body}","integratedTime":1,"logIndex":1,"logID":"00"}}}}"#
            )
        };
        let ignored = |entry: &str| {
            let annotations = annotations(&[
                (SIGNATURE_ANNOTATION, &signature),
                (BUNDLE_ANNOTATION, entry),
                (CERTIFICATE_ANNOTATION, &leaf.pem()),
            ]);
            let (kept, ignored) =
                layer(payload.clone(), "sha256:l", &annotations, DIGEST, &trust).expect("kept");
            assert!(kept.bundle.is_some() && kept.certificate_signature.is_none());
            ignored.expect("a reason")
        };
        let other = B64.encode(signer.sign(b"another payload").unwrap());
        let why = ignored(&entry(&other));
        assert!(why.contains("records another signature"), "{why}");
        // its own entry: on to the chain, which has no CA to end at here
        let why = ignored(&entry(&signature));
        assert!(why.contains("code signing"), "{why}");
    }
}
