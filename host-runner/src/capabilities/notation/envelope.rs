//! What a Notation envelope carries, whichever its format, and the integrity
//! checks both formats share (notation-core-go `signature/internal/base`).

use chrono::{DateTime, Utc};

use super::TargetArtifact;
use crate::capabilities::x509::{
    self, Certificate, Curve, Hash, Profile, PublicKey, Purpose, SignatureAlgorithm,
};

/// The payload content type every Notation signature carries.
pub(super) const PAYLOAD_CONTENT_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
pub(super) const SIGNING_SCHEME: &str = "io.cncf.notary.signingScheme";
pub(super) const SIGNING_TIME: &str = "io.cncf.notary.signingTime";
pub(super) const AUTHENTIC_SIGNING_TIME: &str = "io.cncf.notary.authenticSigningTime";
pub(super) const EXPIRY: &str = "io.cncf.notary.expiry";
pub(super) const TIMESTAMP_SIGNATURE: &str = "io.cncf.notary.timestampSignature";
/// An extended attribute naming a verification plugin (we run none).
const VERIFICATION_PLUGIN: &str = "io.cncf.notary.verificationPlugin";

/// The envelope format: which layer media type, which name in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jws,
    Cose,
}

impl Format {
    pub fn of(media_type: &str) -> Option<Self> {
        match media_type {
            "application/jose+json" => Some(Format::Jws),
            "application/cose" => Some(Format::Cose),
            _ => None,
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Format::Jws => "application/jose+json",
            Format::Cose => "application/cose",
        }
    }

    /// `notation-jws`, `notation-cose`: the format in answers and traces.
    pub fn name(self) -> &'static str {
        match self {
            Format::Jws => "notation-jws",
            Format::Cose => "notation-cose",
        }
    }
}

/// `io.cncf.notary.signingScheme`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SigningScheme {
    /// `notary.x509`: signing time claimed by the signer, a TSA may vouch for it.
    X509,
    /// `notary.x509.signingAuthority`: the signing service vouches for the time.
    SigningAuthority,
}

impl SigningScheme {
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        match text {
            "notary.x509" => Ok(SigningScheme::X509),
            "notary.x509.signingAuthority" => Ok(SigningScheme::SigningAuthority),
            other => Err(format!("unsupported signing scheme {other:?}")),
        }
    }

    /// The protected header holding this scheme's signing time.
    pub(super) fn time_header(self) -> &'static str {
        match self {
            SigningScheme::X509 => SIGNING_TIME,
            SigningScheme::SigningAuthority => AUTHENTIC_SIGNING_TIME,
        }
    }

    /// The header the other scheme uses, which must be absent.
    pub(super) fn other_time_header(self) -> &'static str {
        match self {
            SigningScheme::X509 => AUTHENTIC_SIGNING_TIME,
            SigningScheme::SigningAuthority => SIGNING_TIME,
        }
    }
}

/// Notation's signature algorithms (JWS `alg` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Algorithm {
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    Es512,
}

impl Algorithm {
    pub(super) fn name(self) -> &'static str {
        match self {
            Algorithm::Ps256 => "PS256",
            Algorithm::Ps384 => "PS384",
            Algorithm::Ps512 => "PS512",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::Es512 => "ES512",
        }
    }

    fn signature_algorithm(self) -> SignatureAlgorithm {
        match self {
            Algorithm::Ps256 => SignatureAlgorithm::RsaPss(Hash::Sha256),
            Algorithm::Ps384 => SignatureAlgorithm::RsaPss(Hash::Sha384),
            Algorithm::Ps512 => SignatureAlgorithm::RsaPss(Hash::Sha512),
            Algorithm::Es256 => SignatureAlgorithm::EcdsaFixed(Hash::Sha256),
            Algorithm::Es384 => SignatureAlgorithm::EcdsaFixed(Hash::Sha384),
            Algorithm::Es512 => SignatureAlgorithm::EcdsaFixed(Hash::Sha512),
        }
    }

    /// The one algorithm a key may sign with (notation-core-go `KeySpec`).
    fn for_key(key: PublicKey) -> Result<Self, String> {
        Ok(match key {
            PublicKey::Rsa { bits: 2048 } => Algorithm::Ps256,
            PublicKey::Rsa { bits: 3072 } => Algorithm::Ps384,
            PublicKey::Rsa { bits: 4096 } => Algorithm::Ps512,
            PublicKey::Ec(Curve::P256) => Algorithm::Es256,
            PublicKey::Ec(Curve::P384) => Algorithm::Es384,
            PublicKey::Ec(Curve::P521) => Algorithm::Es512,
            other => return Err(format!("unsupported signing key {other:?}")),
        })
    }
}

/// A parsed envelope: what integrity, authenticity and the times are checked on.
#[derive(Debug)]
pub(super) struct Envelope {
    pub format: Format,
    pub algorithm: Algorithm,
    /// The bytes the signature covers.
    pub signed: Vec<u8>,
    pub signature: Vec<u8>,
    pub payload: Vec<u8>,
    pub content_type: String,
    pub scheme: SigningScheme,
    /// `signingTime`, or `authenticSigningTime` for the signing-authority scheme.
    pub signing_time: DateTime<Utc>,
    pub expiry: Option<DateTime<Utc>>,
    /// Leaf first.
    pub chain: Vec<Certificate>,
    /// The RFC 3161 countersignature (a TimeStampToken).
    pub timestamp: Option<Vec<u8>>,
    /// Protected attributes beyond Notation's own: name, critical.
    pub extended: Vec<(String, bool)>,
}

/// The `crit` rules both formats share: the scheme, the expiry when present
/// and the authentic signing time of the signing-authority scheme must be
/// critical, and every other critical name must be a present attribute.
pub(super) fn check_critical(
    critical: &[String],
    scheme: SigningScheme,
    has_expiry: bool,
    extended: &[(String, bool)],
) -> Result<(), String> {
    if critical.is_empty() {
        return Err("the protected header has no crit list".to_string());
    }
    let mut required = vec![SIGNING_SCHEME];
    if has_expiry {
        required.push(EXPIRY);
    }
    if scheme == SigningScheme::SigningAuthority {
        required.push(AUTHENTIC_SIGNING_TIME);
    }
    if let Some(missing) = required.iter().find(|r| !critical.iter().any(|c| c == *r)) {
        return Err(format!("{missing:?} must be marked critical"));
    }
    if let Some(absent) = critical
        .iter()
        .find(|c| !required.contains(&c.as_str()) && !extended.iter().any(|(name, _)| name == *c))
    {
        return Err(format!("{absent:?} is marked critical but not present"));
    }
    Ok(())
}

/// The certificates of `field` (`x5c`, `x5chain`), leaf first; at least one.
pub(super) fn certificate_chain(
    ders: Vec<Vec<u8>>,
    field: &str,
) -> Result<Vec<Certificate>, String> {
    if ders.is_empty() {
        return Err(format!("the envelope has no certificate chain ({field})"));
    }
    ders.into_iter()
        .enumerate()
        .map(|(i, der)| Certificate::from_der(der).map_err(|e| format!("{field}[{i}]: {e}")))
        .collect()
}

impl Envelope {
    /// Integrity: everything but trust, and the payload's target.
    pub(super) fn check_integrity(&self) -> Result<TargetArtifact, String> {
        if self.content_type != PAYLOAD_CONTENT_TYPE {
            return Err(format!(
                "payload content type {:?} is not {PAYLOAD_CONTENT_TYPE}",
                self.content_type
            ));
        }
        if let Some(expiry) = self.expiry {
            if expiry <= self.signing_time {
                return Err(format!(
                    "expiry {} is not after the signing time {}",
                    x509::rfc3339(expiry),
                    x509::rfc3339(self.signing_time)
                ));
            }
        }
        if self
            .extended
            .iter()
            .any(|(name, _)| name == VERIFICATION_PLUGIN)
        {
            return Err(format!(
                "the signature requires a verification plugin ({VERIFICATION_PLUGIN}); imagegate runs no Notation plugins"
            ));
        }
        if let Some((name, _)) = self.extended.iter().find(|(_, critical)| *critical) {
            return Err(format!(
                "critical attribute {name:?} is not understood (imagegate runs no Notation plugins)"
            ));
        }
        let leaf = self.chain.first().ok_or("the certificate chain is empty")?;
        x509::check_chain_profile(&self.chain, Profile::CodeSigning)
            .map_err(|e| format!("signing certificate chain: {e}"))?;
        self.check_links()?;
        let expected = Algorithm::for_key(leaf.public_key()?)
            .map_err(|e| format!("signing certificate: {e}"))?;
        if expected != self.algorithm {
            return Err(format!(
                "the envelope says {} but the signing key signs with {}",
                self.algorithm.name(),
                expected.name()
            ));
        }
        leaf.verify_signature(
            self.algorithm.signature_algorithm(),
            &self.signed,
            &self.signature,
        )
        .map_err(|_| {
            format!(
                "the {} signature does not verify with the signing certificate {:?}",
                self.algorithm.name(),
                leaf.subject_text()
            )
        })?;
        serde_json::from_slice::<Payload>(&self.payload)
            .map(|p| p.target_artifact)
            .map_err(|e| format!("payload is not {{\"targetArtifact\": descriptor}}: {e}"))
    }

    /// Each certificate is signed by the next: a chain path built at a time
    /// every certificate is valid (Go checks the links without a time; the
    /// time checks are authenticTimestamp's), anchored on the last.
    fn check_links(&self) -> Result<(), String> {
        let (leaf, root) = (&self.chain[0], &self.chain[self.chain.len() - 1]);
        let earliest_end = self.chain.iter().map(Certificate::not_after).min();
        let latest_start = self.chain.iter().map(Certificate::not_before).max();
        let at = match (latest_start, earliest_end) {
            (Some(start), Some(end)) if start <= end => start,
            _ => {
                return Err(
                    "the certificates of the signing chain are never valid at the same time"
                        .to_string(),
                )
            }
        };
        let middle = &self.chain[1..self.chain.len().saturating_sub(1).max(1)];
        let path = x509::verify_chain(leaf, middle, std::slice::from_ref(root), at, Purpose::Any)
            .map_err(|e| format!("signing certificate chain: {e}"))?;
        if path != self.chain {
            return Err(
                "signing certificate chain: not in order (leaf first, each certificate issued by the next)"
                    .to_string(),
            );
        }
        Ok(())
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    target_artifact: TargetArtifact,
}
