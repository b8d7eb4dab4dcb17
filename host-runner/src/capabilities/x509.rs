//! X.509 certificates for signature verification, shared by the Notation and
//! sigstore verifiers: a parsed [`Certificate`] that keeps its DER, signatures
//! made with a certificate's key ([`Certificate::verify_signature`]), chains
//! valid at a given time ([`verify_chain`]), Notation's certificate
//! requirements ([`check_chain_profile`]) and distinguished names
//! ([`distinguished_name`] of a certificate, compared with the guest's
//! [`DistinguishedName`], RFC 4514, Notation's subset rule).
//!
//! Chains are built by webpki. Two things it does not do are done here:
//! webpki applies the extended-key-usage rule to every certificate of a path
//! (so `KeyUsage::required` fails intermediates without an EKU extension, as
//! the GlobalSign timestamping CA has), and it does not check the trust
//! anchor's own validity. [`verify_chain`] uses Go's rule instead (absent EKU
//! or anyExtendedKeyUsage allows every purpose, on every certificate) and
//! checks every certificate of the path, anchor included, at the given time,
//! as Go's `x509.Verify` does for notation-go and sigstore-go. Rules for the
//! leaf alone (Fulcio's "codeSigning present", RFC 3161's "only timeStamping,
//! critical") are the caller's, with [`Certificate::extended_key_usage`] or
//! [`check_time_stamping_signer`].

use std::fmt;

use chrono::{DateTime, Utc};
use der::asn1::{AnyRef, ObjectIdentifier, UintRef};
use der::{Decode, Encode, Tag, Tagged};
use imagegate_policy::dn::{Attribute, DistinguishedName};
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage};

/// A certificate: its DER and its parsed form.
#[derive(Clone)]
pub struct Certificate {
    der: CertificateDer<'static>,
    parsed: x509_cert::Certificate,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Certificate({})", self.subject_text())
    }
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for Certificate {}

/// A digest algorithm of the signatures and hashes we check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

pub const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
pub const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
pub const OID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");

impl Hash {
    /// The algorithm an OID names; SHA-1 and others are refused by name.
    pub fn from_oid(oid: &ObjectIdentifier) -> Result<Self, String> {
        match *oid {
            OID_SHA256 => Ok(Hash::Sha256),
            OID_SHA384 => Ok(Hash::Sha384),
            OID_SHA512 => Ok(Hash::Sha512),
            OID_SHA1 => Err("SHA-1 is not accepted".to_string()),
            other => Err(format!("unsupported digest algorithm {other}")),
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let algorithm = match self {
            Hash::Sha256 => &aws_lc_rs::digest::SHA256,
            Hash::Sha384 => &aws_lc_rs::digest::SHA384,
            Hash::Sha512 => &aws_lc_rs::digest::SHA512,
        };
        aws_lc_rs::digest::digest(algorithm, data).as_ref().to_vec()
    }
}

/// How a signature was made; the key (and for ECDSA its curve) comes from
/// the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// RSASSA-PKCS1-v1_5.
    RsaPkcs1(Hash),
    /// RSASSA-PSS with MGF1 of the same hash and a salt of the hash length.
    RsaPss(Hash),
    /// ECDSA, signature DER-encoded (X.509, CMS).
    Ecdsa(Hash),
    /// ECDSA, signature as fixed-size r || s (JOSE, COSE).
    EcdsaFixed(Hash),
    Ed25519,
}

/// What a certificate's subject public key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicKey {
    Rsa { bits: usize },
    Ec(Curve),
    Ed25519,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
}

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");

/// Extended key usages (RFC 5280 4.2.1.12).
pub const EKU_ANY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37.0");
pub const EKU_SERVER_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1");
pub const EKU_CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");
pub const EKU_CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
pub const EKU_EMAIL_PROTECTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.4");
pub const EKU_TIME_STAMPING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");
pub const EKU_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");

impl Certificate {
    /// Parses one DER certificate.
    pub fn from_der(der: impl Into<Vec<u8>>) -> Result<Self, String> {
        let der = der.into();
        let parsed = x509_cert::Certificate::from_der(&der)
            .map_err(|e| format!("not a DER X.509 certificate: {e}"))?;
        Ok(Self {
            der: CertificateDer::from(der),
            parsed,
        })
    }

    /// Every `CERTIFICATE` block of a PEM text (at least one; other blocks
    /// are an error, so a key pasted in the wrong place is reported).
    pub fn from_pem(text: &str) -> Result<Vec<Self>, String> {
        imagegate_policy::pem::decode_all(text)?
            .into_iter()
            .enumerate()
            .map(|(i, block)| {
                if block.label != "CERTIFICATE" {
                    return Err(format!(
                        "PEM block {i} is {:?}, not a CERTIFICATE",
                        block.label
                    ));
                }
                Self::from_der(block.der).map_err(|e| format!("PEM block {i}: {e}"))
            })
            .collect()
    }

    pub fn der(&self) -> &[u8] {
        self.der.as_ref()
    }

    /// The parsed certificate, for extensions the caller interprets (Fulcio's).
    pub fn parsed(&self) -> &x509_cert::Certificate {
        &self.parsed
    }

    /// The subject as RFC 4514 text, for messages (`CN=e2e,O=Notary,...`).
    pub fn subject_text(&self) -> String {
        match distinguished_name(self.parsed.tbs_certificate().subject()) {
            Ok(dn) => dn.to_string(),
            Err(_) => self.parsed.tbs_certificate().subject().to_string(),
        }
    }

    pub fn subject(&self) -> Result<DistinguishedName, String> {
        distinguished_name(self.parsed.tbs_certificate().subject())
            .map_err(|e| format!("subject of certificate {}: {e}", self.subject_text()))
    }

    pub fn not_before(&self) -> DateTime<Utc> {
        to_chrono(self.parsed.tbs_certificate().validity().not_before)
    }

    pub fn not_after(&self) -> DateTime<Utc> {
        to_chrono(self.parsed.tbs_certificate().validity().not_after)
    }

    /// `Ok` when `at` is within notBefore..=notAfter.
    pub fn valid_at(&self, at: DateTime<Utc>) -> Result<(), String> {
        if at < self.not_before() || at > self.not_after() {
            return Err(format!(
                "certificate {:?} is not valid at {} (valid from {} to {})",
                self.subject_text(),
                rfc3339(at),
                rfc3339(self.not_before()),
                rfc3339(self.not_after())
            ));
        }
        Ok(())
    }

    /// Issuer and subject are the same name (byte for byte, as Go compares
    /// them). Whether the certificate also verifies with its own key is
    /// [`verify_chain`]'s business when it is used as its own anchor.
    pub fn is_self_issued(&self) -> bool {
        let tbs = self.parsed.tbs_certificate();
        tbs.issuer() == tbs.subject()
    }

    /// The serial number's content octets.
    pub fn serial(&self) -> &[u8] {
        self.parsed.tbs_certificate().serial_number().as_bytes()
    }

    /// The issuer name, DER-encoded.
    pub fn issuer_der(&self) -> Result<Vec<u8>, String> {
        self.parsed
            .tbs_certificate()
            .issuer()
            .to_der()
            .map_err(|e| format!("issuer of certificate {:?}: {e}", self.subject_text()))
    }

    /// The key type and size, for the signature-algorithm rules of Notation.
    pub fn public_key(&self) -> Result<PublicKey, String> {
        let spki = self.parsed.tbs_certificate().subject_public_key_info();
        let unsupported = || {
            format!(
                "certificate {:?}: unsupported public key algorithm {}",
                self.subject_text(),
                spki.algorithm.oid
            )
        };
        match spki.algorithm.oid {
            OID_RSA => {
                let key = spki.subject_public_key.raw_bytes();
                let modulus = AnyRef::from_der(key)
                    .and_then(|seq| {
                        // RSAPublicKey ::= SEQUENCE { modulus, publicExponent }
                        seq.sequence(|r| {
                            let modulus = UintRef::decode(r)?;
                            UintRef::decode(r)?;
                            Ok(modulus)
                        })
                    })
                    .map_err(|e| {
                        format!("certificate {:?}: bad RSA key: {e}", self.subject_text())
                    })?;
                let bytes = modulus.as_bytes();
                let bits = match bytes.first() {
                    Some(first) => bytes.len() * 8 - first.leading_zeros() as usize,
                    None => 0,
                };
                Ok(PublicKey::Rsa { bits })
            }
            OID_EC => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
                match curve {
                    Some(OID_P256) => Ok(PublicKey::Ec(Curve::P256)),
                    Some(OID_P384) => Ok(PublicKey::Ec(Curve::P384)),
                    Some(OID_P521) => Ok(PublicKey::Ec(Curve::P521)),
                    Some(other) => Err(format!(
                        "certificate {:?}: unsupported elliptic curve {other}",
                        self.subject_text()
                    )),
                    None => Err(unsupported()),
                }
            }
            OID_ED25519 => Ok(PublicKey::Ed25519),
            _ => Err(unsupported()),
        }
    }

    /// Checks `signature` over `message` with this certificate's key.
    pub fn verify_signature(
        &self,
        algorithm: SignatureAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), String> {
        use aws_lc_rs::signature as sig;
        use Hash::*;
        use SignatureAlgorithm::*;
        let key = self.public_key()?;
        let verifier: &dyn sig::VerificationAlgorithm = match (algorithm, key) {
            (RsaPkcs1(Sha256), PublicKey::Rsa { .. }) => &sig::RSA_PKCS1_2048_8192_SHA256,
            (RsaPkcs1(Sha384), PublicKey::Rsa { .. }) => &sig::RSA_PKCS1_2048_8192_SHA384,
            (RsaPkcs1(Sha512), PublicKey::Rsa { .. }) => &sig::RSA_PKCS1_2048_8192_SHA512,
            (RsaPss(Sha256), PublicKey::Rsa { .. }) => &sig::RSA_PSS_2048_8192_SHA256,
            (RsaPss(Sha384), PublicKey::Rsa { .. }) => &sig::RSA_PSS_2048_8192_SHA384,
            (RsaPss(Sha512), PublicKey::Rsa { .. }) => &sig::RSA_PSS_2048_8192_SHA512,
            (Ecdsa(Sha256), PublicKey::Ec(Curve::P256)) => &sig::ECDSA_P256_SHA256_ASN1,
            (Ecdsa(Sha384), PublicKey::Ec(Curve::P256)) => &sig::ECDSA_P256_SHA384_ASN1,
            (Ecdsa(Sha512), PublicKey::Ec(Curve::P256)) => &sig::ECDSA_P256_SHA512_ASN1,
            // The Sigstore TSA signs with a P-384 key and SHA-256.
            (Ecdsa(Sha256), PublicKey::Ec(Curve::P384)) => &sig::ECDSA_P384_SHA256_ASN1,
            (Ecdsa(Sha384), PublicKey::Ec(Curve::P384)) => &sig::ECDSA_P384_SHA384_ASN1,
            (Ecdsa(Sha512), PublicKey::Ec(Curve::P384)) => &sig::ECDSA_P384_SHA512_ASN1,
            (Ecdsa(Sha256), PublicKey::Ec(Curve::P521)) => &sig::ECDSA_P521_SHA256_ASN1,
            (Ecdsa(Sha384), PublicKey::Ec(Curve::P521)) => &sig::ECDSA_P521_SHA384_ASN1,
            (Ecdsa(Sha512), PublicKey::Ec(Curve::P521)) => &sig::ECDSA_P521_SHA512_ASN1,
            (EcdsaFixed(Sha256), PublicKey::Ec(Curve::P256)) => &sig::ECDSA_P256_SHA256_FIXED,
            (EcdsaFixed(Sha384), PublicKey::Ec(Curve::P384)) => &sig::ECDSA_P384_SHA384_FIXED,
            (EcdsaFixed(Sha512), PublicKey::Ec(Curve::P521)) => &sig::ECDSA_P521_SHA512_FIXED,
            (Ed25519, PublicKey::Ed25519) => &sig::ED25519,
            (algorithm, key) => {
                return Err(format!(
                    "signature algorithm {algorithm:?} does not fit the {key:?} key of certificate {:?}",
                    self.subject_text()
                ))
            }
        };
        let key_bytes = self
            .parsed
            .tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes();
        sig::UnparsedPublicKey::new(verifier, key_bytes)
            .verify(message, signature)
            .map_err(|_| {
                format!(
                    "signature does not verify with the key of certificate {:?}",
                    self.subject_text()
                )
            })
    }

    /// The extendedKeyUsage extension: `(critical, purposes)`, `None` if absent.
    pub fn extended_key_usage(&self) -> Result<Option<(bool, Vec<ObjectIdentifier>)>, String> {
        self.extension::<ExtendedKeyUsage>("extended key usage")
            .map(|e| e.map(|(critical, eku)| (critical, eku.0)))
    }

    /// The keyUsage extension: `(critical, usage)`, `None` if absent.
    pub fn key_usage(&self) -> Result<Option<(bool, KeyUsage)>, String> {
        self.extension::<KeyUsage>("key usage")
    }

    /// The basicConstraints extension: `(critical, constraints)`, `None` if absent.
    pub fn basic_constraints(&self) -> Result<Option<(bool, BasicConstraints)>, String> {
        self.extension::<BasicConstraints>("basic constraints")
    }

    fn extension<'a, T>(&'a self, what: &str) -> Result<Option<(bool, T)>, String>
    where
        T: Decode<'a> + der::oid::AssociatedOid,
        <T as Decode<'a>>::Error: fmt::Display,
    {
        self.parsed
            .tbs_certificate()
            .get_extension::<T>()
            .map_err(|e| {
                format!(
                    "certificate {:?}: bad {what} extension: {e}",
                    self.subject_text()
                )
            })
    }

    fn is_ca(&self) -> Result<bool, String> {
        Ok(self.basic_constraints()?.is_some_and(|(_, bc)| bc.ca))
    }
}

fn to_chrono(time: x509_cert::time::Time) -> DateTime<Utc> {
    let since_epoch = time.to_unix_duration();
    DateTime::from_timestamp(since_epoch.as_secs() as i64, since_epoch.subsec_nanos())
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// RFC 3339 with seconds (and fractions only when there are some).
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// What a path must allow: every certificate of it has no extendedKeyUsage,
/// or one listing this purpose or anyExtendedKeyUsage (Go's rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    CodeSigning,
    TimeStamping,
    /// No extended-key-usage rule on the path (Notation's signing chains:
    /// only the leaf's EKU is checked, by [`check_chain_profile`]).
    Any,
}

impl Purpose {
    fn oid_der(self) -> Option<&'static [u8]> {
        match self {
            Purpose::CodeSigning => Some(&[0x2b, 6, 1, 5, 5, 7, 3, 3]),
            Purpose::TimeStamping => Some(&[0x2b, 6, 1, 5, 5, 7, 3, 8]),
            Purpose::Any => None,
        }
    }
}

impl webpki::ExtendedKeyUsageValidator for Purpose {
    fn validate(&self, iter: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        const ANY: &[u8] = &[0x55, 0x1d, 0x25, 0x00];
        let Some(oid) = self.oid_der() else {
            return Ok(());
        };
        let wanted = webpki::KeyPurposeId::new(oid);
        let any = webpki::KeyPurposeId::new(ANY);
        let mut present = Vec::new();
        for id in iter {
            let id = id?;
            if id == wanted || id == any {
                return Ok(());
            }
            present.push(id.to_decoded_oid());
        }
        if present.is_empty() {
            return Ok(());
        }
        Err(webpki::Error::RequiredEkuNotFoundContext(
            webpki::RequiredEkuNotFoundContext {
                required: webpki::KeyUsage::required(oid),
                present,
            },
        ))
    }
}

/// Builds a path from `leaf` through any of `intermediates` to one of
/// `anchors` that is valid at `at` for `purpose`, and returns it (leaf first,
/// anchor last). Every certificate of the path, the anchor too, must be
/// valid at `at`. A self-signed leaf can be its own anchor.
pub fn verify_chain(
    leaf: &Certificate,
    intermediates: &[Certificate],
    anchors: &[Certificate],
    at: DateTime<Utc>,
    purpose: Purpose,
) -> Result<Vec<Certificate>, String> {
    let context = |reason: String| {
        format!(
            "certificate {:?} does not chain to a trusted certificate at {}: {reason}",
            leaf.subject_text(),
            rfc3339(at)
        )
    };
    let trust_anchors = anchors
        .iter()
        .map(|a| {
            webpki::anchor_from_trusted_cert(&a.der).map_err(|e| {
                format!(
                    "certificate {:?} cannot be a trust anchor: {e}",
                    a.subject_text()
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let intermediate_ders: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .filter(|c| *c != leaf)
        .map(|c| CertificateDer::from(c.der()))
        .collect();
    let end_entity = webpki::EndEntityCert::try_from(&leaf.der)
        .map_err(|e| context(format!("not a usable end-entity certificate ({e})")))?;
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(at.timestamp()).unwrap_or(0),
    ));
    let path = end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &trust_anchors,
            &intermediate_ders,
            time,
            purpose,
            None,
            None,
        )
        .map_err(|e| context(webpki_reason(&e)))?;

    let mut chain = vec![leaf.clone()];
    for cert in path.intermediate_certificates() {
        let der = cert.der();
        let found = intermediates
            .iter()
            .find(|c| c.der() == der.as_ref())
            .ok_or_else(|| context("path uses an unknown intermediate".to_string()))?;
        chain.push(found.clone());
    }
    let anchor_index = trust_anchors
        .iter()
        .position(|a| std::ptr::eq(a, path.anchor()))
        .ok_or_else(|| context("path ends at an unknown anchor".to_string()))?;
    if anchors[anchor_index] != *leaf {
        chain.push(anchors[anchor_index].clone());
    }
    // webpki checks the time for the path below the anchor; Go (and so
    // notation-go and sigstore-go) also for the anchor.
    for cert in &chain {
        cert.valid_at(at).map_err(context)?;
    }
    Ok(chain)
}

fn webpki_reason(error: &webpki::Error) -> String {
    use webpki::Error::*;
    match error {
        UnknownIssuer => "issuer not found among the trusted and given certificates".to_string(),
        InvalidSignatureForPublicKey => "a signature in the path does not verify".to_string(),
        CertExpired { .. } | CertNotValidYet { .. } => {
            "a certificate in the path is outside its validity period".to_string()
        }
        RequiredEkuNotFoundContext(_) => {
            "a certificate in the path does not allow this extended key usage".to_string()
        }
        CaUsedAsEndEntity => "the certificate is a CA".to_string(),
        EndEntityUsedAsCa => "an issuer in the path is not a CA".to_string(),
        UnsupportedSignatureAlgorithmContext(_)
        | UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            "a certificate in the path is signed with an unsupported algorithm (SHA-1?)".to_string()
        }
        UnsupportedCriticalExtension => {
            "a certificate in the path has an unsupported critical extension".to_string()
        }
        other => format!("{other}"),
    }
}

/// Which of Notation's certificate requirements apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Signing certificates (Notation's "Certificate Requirements").
    CodeSigning,
    /// Timestamping certificates (RFC 3161 2.3 plus Notation's CA rules).
    TimeStamping,
}

/// Notation's rules for an ordered chain, leaf first and self-signed root
/// last (notation-core-go `ValidateCodeSigningCertChain` /
/// `ValidateTimestampingCertChain`, without the time: that is
/// [`verify_chain`]'s): each certificate is issued by the next one (by name;
/// the signatures are [`verify_chain`]'s), only the last is self-issued, the
/// leaf and CA key-usage and basic-constraints rules, and supported keys.
/// A one-certificate chain is a self-signed leaf.
pub fn check_chain_profile(chain: &[Certificate], profile: Profile) -> Result<(), String> {
    let (leaf, rest) = chain
        .split_first()
        .ok_or("certificate chain must contain at least one certificate")?;
    if rest.is_empty() {
        if !leaf.is_self_issued() {
            return Err(format!(
                "certificate {:?} is alone in its chain but not self-signed",
                leaf.subject_text()
            ));
        }
    } else {
        for (i, pair) in chain.windows(2).enumerate() {
            let (cert, issuer) = (&pair[0], &pair[1]);
            if cert.is_self_issued() {
                let role = if i == 0 { "leaf" } else { "intermediate" };
                return Err(format!(
                    "{role} certificate {:?} is self-signed; only the last certificate of the chain may be",
                    cert.subject_text()
                ));
            }
            let issuer_name = issuer.parsed.tbs_certificate().subject();
            if cert.parsed.tbs_certificate().issuer() != issuer_name {
                return Err(format!(
                    "certificate {:?} is not issued by the next certificate of the chain, {:?}",
                    cert.subject_text(),
                    issuer.subject_text()
                ));
            }
        }
        let root = &chain[chain.len() - 1];
        if !root.is_self_issued() {
            return Err(format!(
                "the chain must end with a self-signed root certificate, not {:?}",
                root.subject_text()
            ));
        }
    }
    check_leaf(leaf, profile)?;
    for (i, ca) in rest.iter().enumerate() {
        check_ca(ca, i, profile)?;
    }
    Ok(())
}

/// RFC 3161 2.3 for the certificate that signed a timestamp: not a CA, and an
/// extendedKeyUsage extension that is critical and lists timeStamping only.
pub fn check_time_stamping_signer(cert: &Certificate) -> Result<(), String> {
    let name = cert.subject_text();
    if cert.is_ca()? {
        return Err(format!(
            "timestamping certificate {name:?} is a CA, not an end-entity certificate"
        ));
    }
    match cert.extended_key_usage()? {
        Some((true, purposes)) if purposes == [EKU_TIME_STAMPING] => Ok(()),
        Some((false, purposes)) if purposes == [EKU_TIME_STAMPING] => Err(format!(
            "timestamping certificate {name:?}: the extended key usage extension must be critical"
        )),
        _ => Err(format!(
            "timestamping certificate {name:?} must have timeStamping as its only extended key usage"
        )),
    }
}

fn check_leaf(cert: &Certificate, profile: Profile) -> Result<(), String> {
    let name = cert.subject_text();
    if cert.is_ca()? {
        return Err(format!(
            "certificate {name:?}: a leaf's basic constraints must not say CA"
        ));
    }
    let usage = match (cert.key_usage()?, profile) {
        (None, _) => {
            return Err(format!(
                "certificate {name:?}: the key usage extension must be present"
            ))
        }
        (Some((false, _)), Profile::CodeSigning) => {
            return Err(format!(
                "certificate {name:?}: the key usage extension must be critical"
            ))
        }
        (Some((_, usage)), _) => usage,
    };
    if !usage.digital_signature() {
        return Err(format!(
            "certificate {name:?}: the key usage must include digitalSignature"
        ));
    }
    let forbidden: Vec<&str> = [
        (usage.key_encipherment(), "keyEncipherment"),
        (usage.data_encipherment(), "dataEncipherment"),
        (usage.key_agreement(), "keyAgreement"),
        (usage.key_cert_sign(), "keyCertSign"),
        (usage.crl_sign(), "cRLSign"),
        (usage.encipher_only(), "encipherOnly"),
        (usage.decipher_only(), "decipherOnly"),
    ]
    .into_iter()
    .filter_map(|(set, bit)| set.then_some(bit))
    .collect();
    if !forbidden.is_empty() {
        return Err(format!(
            "certificate {name:?}: the key usage must be digitalSignature only, found {}",
            forbidden.join(", ")
        ));
    }
    match profile {
        Profile::CodeSigning => {
            if let Some((_, purposes)) = cert.extended_key_usage()? {
                let excluded = [
                    (EKU_SERVER_AUTH, "serverAuth"),
                    (EKU_CLIENT_AUTH, "clientAuth"),
                    (EKU_EMAIL_PROTECTION, "emailProtection"),
                    (EKU_TIME_STAMPING, "timeStamping"),
                    (EKU_OCSP_SIGNING, "OCSPSigning"),
                ];
                if let Some((_, label)) = excluded.iter().find(|(oid, _)| purposes.contains(oid)) {
                    return Err(format!(
                        "certificate {name:?}: the extended key usage must not contain {label}"
                    ));
                }
            }
        }
        Profile::TimeStamping => check_time_stamping_signer(cert)?,
    }
    match cert.public_key()? {
        PublicKey::Rsa { bits } if [2048, 3072, 4096].contains(&bits) => Ok(()),
        PublicKey::Ec(_) => Ok(()),
        key => Err(format!(
            "certificate {name:?}: unsupported key {key:?} (RSA 2048, 3072, 4096 or EC P-256, P-384, P-521)"
        )),
    }
}

/// `below` = how many CA certificates lie between this one and the leaf.
fn check_ca(cert: &Certificate, below: usize, profile: Profile) -> Result<(), String> {
    let name = cert.subject_text();
    match cert.basic_constraints()? {
        Some((_, bc)) if bc.ca => {
            if let Some(limit) = bc.path_len_constraint {
                if usize::from(limit) < below {
                    return Err(format!(
                        "CA certificate {name:?}: path length {limit} allows fewer than the {below} CA certificates below it"
                    ));
                }
            }
        }
        _ => {
            return Err(format!(
                "CA certificate {name:?}: basic constraints must be present with CA true"
            ))
        }
    }
    match (cert.key_usage()?, profile) {
        (None, _) => Err(format!(
            "CA certificate {name:?}: the key usage extension must be present"
        )),
        (Some((false, _)), Profile::CodeSigning) => Err(format!(
            "CA certificate {name:?}: the key usage extension must be critical"
        )),
        (Some((_, usage)), _) if !usage.key_cert_sign() => Err(format!(
            "CA certificate {name:?}: the key usage must include keyCertSign"
        )),
        _ => Ok(()),
    }
}

/// A certificate name as a [`DistinguishedName`], in RFC 4514 order (the
/// reverse of the DER sequence).
pub fn distinguished_name(name: &x509_cert::name::Name) -> Result<DistinguishedName, String> {
    let rdns = name
        .iter_rdn()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.oid.to_string();
                    let value = directory_string(&atv.value)
                        .map_err(|e| format!("attribute {oid}: {e}"))?;
                    Ok(Attribute::from_oid(&oid, value))
                })
                .collect::<Result<Vec<_>, String>>()
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(DistinguishedName::from_rdns(rdns))
}

/// The text of an X.520 DirectoryString (or IA5String, as emailAddress is).
fn directory_string(value: &der::Any) -> Result<String, String> {
    let bytes = value.value();
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString => {
            String::from_utf8(bytes.to_vec()).map_err(|_| "value is not UTF-8 text".to_string())
        }
        Tag::BmpString => {
            if !bytes.len().is_multiple_of(2) {
                return Err("odd-length BMPString".to_string());
            }
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16(&units).map_err(|_| "bad BMPString".to_string())
        }
        other => Err(format!("unsupported string type {other}")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64::Engine;
    use rcgen::{
        BasicConstraints as RcBasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };

    /// A file under `host-runner/tests/data`.
    pub(crate) fn test_data(path: &str) -> Vec<u8> {
        let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(path);
        std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
    }

    /// A Notation JWS envelope's parts the shared tests need (the
    /// timestamp tests take its countersignature).
    pub(crate) struct Jws {
        pub signing_input: Vec<u8>,
        pub signature: Vec<u8>,
        pub x5c: Vec<Certificate>,
        pub timestamp: Option<Vec<u8>>,
    }

    pub(crate) fn jws(path: &str) -> Jws {
        let envelope: serde_json::Value = serde_json::from_slice(&test_data(path)).unwrap();
        let text = |field: &str| envelope[field].as_str().unwrap().to_string();
        let std = base64::engine::general_purpose::STANDARD;
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        Jws {
            signing_input: format!("{}.{}", text("protected"), text("payload")).into_bytes(),
            signature: url.decode(text("signature")).unwrap(),
            x5c: envelope["header"]["x5c"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| Certificate::from_der(std.decode(c.as_str().unwrap()).unwrap()).unwrap())
                .collect(),
            timestamp: envelope["header"]["io.cncf.notary.timestampSignature"]
                .as_str()
                .map(|t| std.decode(t).unwrap()),
        }
    }

    pub(crate) fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    const E2E_JWS: &str = "notation/notation-e2e/e2e-valid-signature/blobs/sha256/c9af07e038b2b1a463e648986ad7273157511ffeba0b689f33e5472bae471f50";

    fn e2e_cert() -> Certificate {
        let pem = String::from_utf8(test_data("notation/notation-e2e/config/e2e.crt")).unwrap();
        Certificate::from_pem(&pem).unwrap().remove(0)
    }

    #[test]
    fn reads_a_certificate_and_its_fields() {
        let cert = e2e_cert();
        assert_eq!(cert.subject_text(), "CN=e2e,O=Notary,L=Seattle,ST=WA,C=US");
        assert!(cert.is_self_issued());
        assert_eq!(cert.public_key().unwrap(), PublicKey::Rsa { bits: 2048 });
        assert_eq!(cert.not_before(), at("2022-12-19T02:43:39Z"));
        assert_eq!(cert.not_after(), at("2122-12-19T02:43:39Z"));
        assert_eq!(
            cert.extended_key_usage().unwrap(),
            Some((false, vec![EKU_CODE_SIGNING]))
        );
        assert!(cert
            .key_usage()
            .unwrap()
            .is_some_and(|(critical, ku)| critical
                && ku.digital_signature()
                && !ku.key_cert_sign()));
        // the envelope's x5c holds the same certificate
        assert_eq!(jws(E2E_JWS).x5c, vec![cert.clone()]);
        assert!(cert.valid_at(at("2023-06-27T05:30:33Z")).is_ok());
        assert_eq!(
            cert.valid_at(at("2022-01-01T00:00:00Z")).unwrap_err(),
            "certificate \"CN=e2e,O=Notary,L=Seattle,ST=WA,C=US\" is not valid at 2022-01-01T00:00:00Z (valid from 2022-12-19T02:43:39Z to 2122-12-19T02:43:39Z)"
        );
    }

    #[test]
    fn bad_certificate_input_is_an_error() {
        assert!(Certificate::from_der(vec![0x30, 0x00])
            .unwrap_err()
            .starts_with("not a DER X.509 certificate"));
        let key = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQTW9sqsjDyllhoVJlqBrZv/VtgKl\n9fpjLZZGCTcsG+r4h2SI/d0w/nIO0LXHbMr5eNLOw2Nd3LP7zP8ijpZqqg==\n-----END PUBLIC KEY-----\n";
        assert_eq!(
            Certificate::from_pem(key).unwrap_err(),
            "PEM block 0 is \"PUBLIC KEY\", not a CERTIFICATE"
        );
        assert_eq!(Certificate::from_pem("").unwrap_err(), "no PEM block found");
    }

    #[test]
    fn verifies_a_signature_with_the_certificate_key() {
        let envelope = jws(E2E_JWS);
        let cert = &envelope.x5c[0];
        let ps256 = SignatureAlgorithm::RsaPss(Hash::Sha256);
        cert.verify_signature(ps256, &envelope.signing_input, &envelope.signature)
            .unwrap();
        let mut tampered = envelope.signing_input.clone();
        tampered[10] ^= 1;
        assert_eq!(
            cert.verify_signature(ps256, &tampered, &envelope.signature)
                .unwrap_err(),
            "signature does not verify with the key of certificate \"CN=e2e,O=Notary,L=Seattle,ST=WA,C=US\""
        );
        // PKCS#1 v1.5 is another algorithm: the PSS signature does not pass as one
        assert!(cert
            .verify_signature(
                SignatureAlgorithm::RsaPkcs1(Hash::Sha256),
                &envelope.signing_input,
                &envelope.signature
            )
            .is_err());
        assert_eq!(
            cert.verify_signature(
                SignatureAlgorithm::EcdsaFixed(Hash::Sha256),
                &envelope.signing_input,
                &envelope.signature
            )
            .unwrap_err(),
            "signature algorithm EcdsaFixed(Sha256) does not fit the Rsa { bits: 2048 } key of certificate \"CN=e2e,O=Notary,L=Seattle,ST=WA,C=US\""
        );
    }

    /// A test CA or leaf made with rcgen.
    struct Made {
        cert: Certificate,
        issuer: Issuer<'static, KeyPair>,
    }

    struct Spec {
        name: &'static str,
        ca: bool,
        eku: Vec<ExtendedKeyUsagePurpose>,
        key_usages: Vec<KeyUsagePurpose>,
        not_after_days: i64,
    }

    fn ca_spec(name: &'static str) -> Spec {
        Spec {
            name,
            ca: true,
            eku: vec![],
            key_usages: vec![KeyUsagePurpose::KeyCertSign],
            not_after_days: 365,
        }
    }

    fn leaf_spec(name: &'static str) -> Spec {
        Spec {
            name,
            ca: false,
            eku: vec![ExtendedKeyUsagePurpose::CodeSigning],
            key_usages: vec![KeyUsagePurpose::DigitalSignature],
            not_after_days: 30,
        }
    }

    fn make(spec: Spec, parent: Option<&Made>) -> Made {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, spec.name);
        params.is_ca = if spec.ca {
            IsCa::Ca(RcBasicConstraints::Unconstrained)
        } else {
            IsCa::ExplicitNoCa
        };
        params.extended_key_usages = spec.eku;
        params.key_usages = spec.key_usages;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(spec.not_after_days);
        let cert = match parent {
            Some(p) => params.signed_by(&key, &p.issuer).unwrap(),
            None => params.self_signed(&key).unwrap(),
        };
        Made {
            cert: Certificate::from_der(cert.der().to_vec()).unwrap(),
            issuer: Issuer::new(params, key),
        }
    }

    #[test]
    fn chains_through_intermediates_without_an_eku_and_returns_the_path() {
        let root = make(ca_spec("root"), None);
        let intermediate = make(ca_spec("intermediate"), Some(&root));
        let leaf = make(leaf_spec("leaf"), Some(&intermediate));
        let stranger = make(ca_spec("stranger"), None);
        let now = Utc::now();
        let path = verify_chain(
            &leaf.cert,
            &[stranger.cert.clone(), intermediate.cert.clone()],
            &[stranger.cert.clone(), root.cert.clone()],
            now,
            Purpose::CodeSigning,
        )
        .unwrap();
        assert_eq!(
            path,
            vec![
                leaf.cert.clone(),
                intermediate.cert.clone(),
                root.cert.clone()
            ]
        );
        check_chain_profile(&path, Profile::CodeSigning).unwrap();

        let err = verify_chain(
            &leaf.cert,
            &[],
            std::slice::from_ref(&root.cert),
            now,
            Purpose::CodeSigning,
        )
        .unwrap_err();
        assert_eq!(
            err,
            format!(
                "certificate \"CN=leaf\" does not chain to a trusted certificate at {}: issuer not found among the trusted and given certificates",
                rfc3339(now)
            )
        );
    }

    #[test]
    fn extended_key_usage_is_checked_on_every_certificate_of_the_path() {
        let root = make(ca_spec("root"), None);
        let mut server_only = ca_spec("tls-ca");
        server_only.eku = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let tls_ca = make(server_only, Some(&root));
        let leaf = make(leaf_spec("leaf"), Some(&tls_ca));
        let err = verify_chain(
            &leaf.cert,
            std::slice::from_ref(&tls_ca.cert),
            std::slice::from_ref(&root.cert),
            Utc::now(),
            Purpose::CodeSigning,
        )
        .unwrap_err();
        assert!(
            err.ends_with("a certificate in the path does not allow this extended key usage"),
            "{err}"
        );
        // the same leaf under a CA that allows any purpose, for time stamping
        let mut any = ca_spec("any-ca");
        any.eku = vec![ExtendedKeyUsagePurpose::Any];
        let any_ca = make(any, Some(&root));
        let mut stamping = leaf_spec("tsa");
        stamping.eku = vec![ExtendedKeyUsagePurpose::TimeStamping];
        let tsa = make(stamping, Some(&any_ca));
        verify_chain(
            &tsa.cert,
            std::slice::from_ref(&any_ca.cert),
            std::slice::from_ref(&root.cert),
            Utc::now(),
            Purpose::TimeStamping,
        )
        .unwrap();
        assert!(verify_chain(
            &tsa.cert,
            std::slice::from_ref(&any_ca.cert),
            std::slice::from_ref(&root.cert),
            Utc::now(),
            Purpose::CodeSigning,
        )
        .is_err());
    }

    #[test]
    fn the_anchor_must_be_valid_at_the_time_too() {
        let mut short = ca_spec("short-lived root");
        short.not_after_days = 2;
        let root = make(short, None);
        let mut long = leaf_spec("leaf");
        long.not_after_days = 30;
        let leaf = make(long, Some(&root));
        let in_ten_days = Utc::now() + chrono::TimeDelta::days(10);
        let err = verify_chain(
            &leaf.cert,
            &[],
            std::slice::from_ref(&root.cert),
            in_ten_days,
            Purpose::CodeSigning,
        )
        .unwrap_err();
        assert!(
            err.contains("certificate \"CN=short-lived root\" is not valid at"),
            "{err}"
        );
    }

    #[test]
    fn a_self_signed_leaf_is_its_own_anchor() {
        let cert = e2e_cert();
        let path = verify_chain(
            &cert,
            &[],
            std::slice::from_ref(&cert),
            at("2023-06-27T05:30:33Z"),
            Purpose::CodeSigning,
        )
        .unwrap();
        assert_eq!(path, vec![cert.clone()]);
        check_chain_profile(&path, Profile::CodeSigning).unwrap();
        let err = verify_chain(
            &cert,
            &[],
            std::slice::from_ref(&cert),
            at("2123-01-01T00:00:00Z"),
            Purpose::CodeSigning,
        )
        .unwrap_err();
        assert!(
            err.ends_with("a certificate in the path is outside its validity period"),
            "{err}"
        );
    }

    #[test]
    fn notation_profile_rules_each_have_their_message() {
        let root = make(ca_spec("root"), None);
        let leaf = make(leaf_spec("leaf"), Some(&root));
        let ok = vec![leaf.cert.clone(), root.cert.clone()];
        check_chain_profile(&ok, Profile::CodeSigning).unwrap();

        let profile_error =
            |chain: &[Certificate]| check_chain_profile(chain, Profile::CodeSigning).unwrap_err();
        assert_eq!(
            profile_error(&[root.cert.clone(), leaf.cert.clone()]),
            "leaf certificate \"CN=root\" is self-signed; only the last certificate of the chain may be"
        );
        assert_eq!(
            profile_error(std::slice::from_ref(&leaf.cert)),
            "certificate \"CN=leaf\" is alone in its chain but not self-signed"
        );
        let other_root = make(ca_spec("other root"), None);
        assert_eq!(
            profile_error(&[leaf.cert.clone(), other_root.cert.clone()]),
            "certificate \"CN=leaf\" is not issued by the next certificate of the chain, \"CN=other root\""
        );
        let intermediate = make(ca_spec("intermediate"), Some(&root));
        let under_intermediate = make(leaf_spec("leaf2"), Some(&intermediate));
        assert_eq!(
            profile_error(&[under_intermediate.cert.clone(), intermediate.cert.clone()]),
            "the chain must end with a self-signed root certificate, not \"CN=intermediate\""
        );

        let mut encipher = leaf_spec("encipher");
        encipher.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let encipher = make(encipher, Some(&root));
        assert_eq!(
            profile_error(&[encipher.cert.clone(), root.cert.clone()]),
            "certificate \"CN=encipher\": the key usage must be digitalSignature only, found keyEncipherment"
        );
        let mut no_ku = leaf_spec("no-ku");
        no_ku.key_usages = vec![];
        let no_ku = make(no_ku, Some(&root));
        assert_eq!(
            profile_error(&[no_ku.cert.clone(), root.cert.clone()]),
            "certificate \"CN=no-ku\": the key usage extension must be present"
        );
        let mut server = leaf_spec("server");
        server.eku = vec![
            ExtendedKeyUsagePurpose::CodeSigning,
            ExtendedKeyUsagePurpose::ServerAuth,
        ];
        let server = make(server, Some(&root));
        assert_eq!(
            profile_error(&[server.cert.clone(), root.cert.clone()]),
            "certificate \"CN=server\": the extended key usage must not contain serverAuth"
        );
        let mut ca_leaf = ca_spec("ca-leaf");
        ca_leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let ca_leaf = make(ca_leaf, Some(&root));
        assert_eq!(
            profile_error(&[ca_leaf.cert.clone(), root.cert.clone()]),
            "certificate \"CN=ca-leaf\": a leaf's basic constraints must not say CA"
        );
        let mut no_cert_sign = ca_spec("no-cert-sign root");
        no_cert_sign.key_usages = vec![KeyUsagePurpose::CrlSign];
        let weak_root = make(no_cert_sign, None);
        let under_weak = make(leaf_spec("leaf3"), Some(&weak_root));
        assert_eq!(
            profile_error(&[under_weak.cert.clone(), weak_root.cert.clone()]),
            "CA certificate \"CN=no-cert-sign root\": the key usage must include keyCertSign"
        );
        // RFC 3161 for time stamping: only timeStamping, critical (rcgen writes
        // EKU non-critical), and the code-signing leaf is no TSA
        assert_eq!(
            check_time_stamping_signer(&leaf.cert).unwrap_err(),
            "timestamping certificate \"CN=leaf\" must have timeStamping as its only extended key usage"
        );
        let mut tsa = leaf_spec("tsa");
        tsa.eku = vec![ExtendedKeyUsagePurpose::TimeStamping];
        let tsa = make(tsa, Some(&root));
        assert_eq!(
            check_time_stamping_signer(&tsa.cert).unwrap_err(),
            "timestamping certificate \"CN=tsa\": the extended key usage extension must be critical"
        );
    }

    #[test]
    fn a_certificate_name_matches_trusted_identities_by_subset() {
        let leaf = e2e_cert().subject().unwrap();
        let identity = |text: &str| DistinguishedName::parse(text).unwrap();
        assert!(identity("C=US,ST=WA,O=Notary").is_subset_of(&leaf));
        assert!(identity("CN=e2e,O=Notary,L=Seattle,ST=WA,C=US").is_subset_of(&leaf));
        assert!(!identity("C=US,ST=WA,O=Notary,CN=other").is_subset_of(&leaf));
    }
}
