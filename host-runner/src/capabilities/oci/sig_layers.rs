//! The cosign `.sig` signature layers of a digest, fetched by the host's own
//! distribution reader and handed to sigstore as `SignatureLayer`s.
//!
//! Why not sigstore's `trusted_signature_layers`: it goes through
//! oci-client, which pings `/v2/` before every request to a registry that
//! sends no challenge, HEADs a digest that is already pinned and reads the
//! `.sig` manifest twice: 17 requests for one check where 4 do (resolve, the
//! `.sig` manifest, its layer, the referrers API; 3 once the registry is
//! known to lack that API), in 3 round trips (the API is asked alongside
//! the `.sig` path).
//!
//! A layer is accepted as sigstore's `SignatureLayer::new` accepts it (which
//! sigstore does not export): simple-signing media type, digest checked,
//! the payload names the digest, a signature annotation, and a Rekor bundle,
//! when there is one, verified by sigstore with the trust root's Rekor keys
//! (a bundle that does not verify drops the layer). As in oci-client's
//! `pull`, a `.sig` manifest with a layer of another type yields no layer.
//!
//! Not covered (the caller uses sigstore's client for them):
//! * certificates: sigstore checks them against its Fulcio pool, which it
//!   does not export, so keyless requirements keep sigstore's path;
//! * referrers: when the referrers API lists anything, sigstore reads the
//!   v0.3 bundles among them ([`Fetched::Referrers`]).

use std::collections::BTreeMap;

use sigstore::cosign::bundle::{Bundle, SignedArtifactBundle};
use sigstore::cosign::bundle_content::BundleContent;
use sigstore::cosign::payload::simple_signing::SimpleSigning;
use sigstore::cosign::SignatureLayer;
use sigstore::crypto::CosignVerificationKey;

use super::discovery::{self, Api, Discovery};
use super::distribution::Manifest;
use crate::capabilities::sigstore::legacy::BUNDLE_ANNOTATION;

const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// What the registry holds for a digest.
pub(crate) enum Fetched {
    /// The verified `.sig` layers (maybe none), and no referrers.
    Layers(Vec<SignatureLayer>),
    /// The referrers API lists entries: sigstore's client must read them.
    Referrers,
}

/// The Rekor keys of the trust root, as sigstore's cosign client holds them
/// (log id in hex -> key); keys it cannot parse are left out, as it does.
pub(crate) fn rekor_keys(
    keys: &BTreeMap<String, Vec<u8>>,
) -> BTreeMap<String, CosignVerificationKey> {
    keys.iter()
        .filter_map(|(id, der)| Some((id.clone(), CosignVerificationKey::try_from_der(der).ok()?)))
        .collect()
}

/// The `.sig` layers of `digest` and, concurrently, the referrers API (not
/// asked of a registry known to lack it). Errors are the registry's
/// (transport, statuses other than 404), never "unsigned".
pub(crate) async fn fetch(
    discovery: &Discovery<'_>,
    digest: &str,
    rekor_keys: &BTreeMap<String, CosignVerificationKey>,
) -> Result<Fetched, String> {
    let sig = async {
        match discovery.legacy(digest, "sig").await? {
            Some(manifest) => read(discovery, &manifest, digest, rekor_keys).await,
            None => Ok(Vec::new()),
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
    rekor_keys: &BTreeMap<String, CosignVerificationKey>,
) -> Result<Vec<SignatureLayer>, String> {
    let descriptors = discovery::layers_of(manifest)?;
    let mut layers = Vec::new();
    if descriptors.iter().all(|d| d.media_type == SIMPLE_SIGNING) {
        for descriptor in &descriptors {
            let bytes = discovery.layer(descriptor).await?;
            layers.extend(layer(
                bytes,
                &descriptor.digest,
                &descriptor.annotations,
                digest,
                rekor_keys,
            ));
        }
    }
    Ok(layers)
}

/// One layer (bytes already digest-checked), or `None` where sigstore would
/// skip it.
fn layer(
    raw_data: Vec<u8>,
    layer_digest: &str,
    annotations: &BTreeMap<String, String>,
    digest: &str,
    rekor_keys: &BTreeMap<String, CosignVerificationKey>,
) -> Option<SignatureLayer> {
    let simple_signing: SimpleSigning = serde_json::from_slice(&raw_data).ok()?;
    if !simple_signing.satisfies_manifest_digest(digest) {
        return None;
    }
    let signature = annotations.get(SIGNATURE_ANNOTATION)?.clone();
    let bundle = match annotations.get(BUNDLE_ANNOTATION) {
        Some(raw) if !rekor_keys.is_empty() => Some(BundleContent::RekorBundle(verified_bundle(
            raw, rekor_keys,
        )?)),
        _ => None,
    };
    Some(SignatureLayer {
        simple_signing,
        oci_digest: layer_digest.to_string(),
        certificate_signature: None,
        bundle,
        signature: Some(signature),
        raw_data,
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

    #[test]
    fn layers_are_kept_or_skipped_as_sigstore_does() {
        let none = BTreeMap::new();
        let signed = annotations(&[(SIGNATURE_ANNOTATION, "c2ln")]);
        let kept = layer(payload(DIGEST), "sha256:l", &signed, DIGEST, &none).expect("kept");
        assert_eq!(
            (kept.signature.as_deref(), kept.oci_digest.as_str()),
            (Some("c2ln"), "sha256:l")
        );
        assert!(kept.bundle.is_none() && kept.certificate_signature.is_none());
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
        let keys = rekor_keys(
            &[(
                "00".to_string(),
                rcgen::PublicKeyData::subject_public_key_info(&rekor),
            )]
            .into(),
        );
        assert_eq!(keys.len(), 1);
        // The SET signs the payload's canonical JSON (keys sorted).
        let canonical = br#"{"body":"e30=","integratedTime":1,"logID":"00","logIndex":1}"#;
        let set = base64::engine::general_purpose::STANDARD.encode(rekor.sign(canonical).unwrap());
        let bundle = |set: &str| {
            format!(
                r#"{{"SignedEntryTimestamp":"{set}","Payload":{{"body":"e30=","integratedTime":1,"logIndex":1,"logID":"00"}}}}"#
            )
        };
        let with = |bundle: &str| {
            annotations(&[(SIGNATURE_ANNOTATION, "c2ln"), (BUNDLE_ANNOTATION, bundle)])
        };
        let kept = layer(
            payload(DIGEST),
            "sha256:l",
            &with(&bundle(&set)),
            DIGEST,
            &keys,
        )
        .expect("kept");
        assert!(matches!(kept.bundle, Some(BundleContent::RekorBundle(_))));
        // a SET that does not verify drops the layer
        assert!(layer(
            payload(DIGEST),
            "sha256:l",
            &with(&bundle("AAAA")),
            DIGEST,
            &keys
        )
        .is_none());
        // without Rekor keys the bundle is ignored, as sigstore ignores it
        let kept = layer(
            payload(DIGEST),
            "sha256:l",
            &with(&bundle("AAAA")),
            DIGEST,
            &BTreeMap::new(),
        )
        .expect("kept");
        assert!(kept.bundle.is_none());
    }
}
