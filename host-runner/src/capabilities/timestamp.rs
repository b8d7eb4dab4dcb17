//! RFC 3161 timestamps, shared by the Notation and sigstore verifiers:
//! [`verify`] checks a TimeStampToken (a CMS SignedData over a TSTInfo) or a
//! whole TimeStampResp, as sigstore bundles carry it, over the bytes it
//! vouches for and returns the time it proves.
//!
//! Checks, in order, each failure its own message: status granted (a
//! response), signedData of version 3 holding an id-ct-TSTInfo, TSTInfo
//! version 1, messageImprint = H(message) with SHA-256/384/512; then for a
//! SignerInfo: signed attributes present, content-type = id-ct-TSTInfo,
//! message-digest = H(TSTInfo), the signing certificate (named by the
//! signing-certificate-v2 attribute's hash, else by the SignerInfo's
//! sid) among the token's certificates and [`Trust::signers`], the signature
//! over the DER SET of the signed attributes with that certificate's key,
//! RFC 3161 2.3 for that certificate ([`x509::check_time_stamping_signer`]),
//! and a chain to one of [`Trust::roots`] valid at genTime
//! ([`x509::verify_chain`]). The first SignerInfo that passes wins.
//!
//! The structures are written here with `der` 0.8 (the `cms` and `x509-tsp`
//! crates sit on other `der` versions). genTime is read from its raw bytes:
//! `der`'s GeneralizedTime refuses fractional seconds, which Microsoft's
//! TSA writes. Sets are walked element by element, not decoded as DER SET OF,
//! because CMS producers do not sort them.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use der::asn1::{AnyRef, ObjectIdentifier, OctetString, OctetStringRef};
use der::{
    Decode, DecodeValue, Encode, EncodeValue, FixedTag, Header, Length, Reader, Sequence,
    SliceReader, Tag, TagNumber, Tagged, Writer,
};
use x509_cert::spki::AlgorithmIdentifierRef;

use super::x509::{self, Certificate, Hash, Purpose, SignatureAlgorithm};

/// What a timestamp may be trusted on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Trust<'a> {
    /// Trust anchors (Notation's `tsa:` store, a trust root's TSA root).
    pub roots: &'a [Certificate],
    /// Extra path certificates (a trust root's TSA intermediates); the
    /// token's own certificates are always candidates.
    pub intermediates: &'a [Certificate],
    /// Signing certificates known beforehand, for tokens that carry none
    /// (sigstore's TSA leaf in its trust root).
    pub signers: &'a [Certificate],
}

/// A verified timestamp.
#[derive(Debug, Clone)]
pub struct Timestamp {
    /// TSTInfo.genTime.
    pub time: DateTime<Utc>,
    /// TSTInfo.accuracy; absent = 1 s under the baseline policy of RFC 3628,
    /// else 0 (Notation's rule).
    pub accuracy: TimeDelta,
    /// The TSA's chain: signing certificate first, trusted root last.
    pub chain: Vec<Certificate>,
}

impl Timestamp {
    /// The earliest time the timestamp allows (`time - accuracy`).
    pub fn earliest(&self) -> DateTime<Utc> {
        self.time - self.accuracy
    }

    /// The latest time the timestamp allows (`time + accuracy`).
    pub fn latest(&self) -> DateTime<Utc> {
        self.time + self.accuracy
    }

    /// The TSA's signing certificate.
    pub fn signer(&self) -> &Certificate {
        &self.chain[0]
    }
}

/// Verifies `token` (a TimeStampResp or a bare TimeStampToken) over
/// `message`, the bytes whose hash the TSA signed (a DSSE signature, a
/// Notation envelope's signature).
pub fn verify(token: &[u8], message: &[u8], trust: &Trust<'_>) -> Result<Timestamp, String> {
    let token = parse(token)?;
    let imprint_hash = Hash::from_oid(&token.info.message_imprint.hash_algorithm.oid)
        .map_err(|e| format!("timestamp message imprint: {e}"))?;
    if token.info.message_imprint.hashed_message.as_bytes() != imprint_hash.digest(message) {
        return Err(
            "timestamp does not cover this signature: its message imprint is the hash of other bytes"
                .to_string(),
        );
    }
    let mut last_error = "timestamp has no SignerInfo".to_string();
    for signer_info in &token.signer_infos {
        match verify_signer(&token, signer_info, trust) {
            Ok(chain) => {
                return Ok(Timestamp {
                    time: token.gen_time,
                    accuracy: token.accuracy,
                    chain,
                })
            }
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
/// RFC 3628 baseline time-stamp policy.
const BASELINE_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.2023.1.1");

const OID_RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const OID_SHA256_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const OID_SHA384_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const OID_SHA512_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const OID_ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// The value octets of a SET (or an IMPLICIT-tagged one), kept raw.
#[derive(Debug, Clone, Copy)]
struct RawSet<'a>(&'a [u8]);

impl<'a> DecodeValue<'a> for RawSet<'a> {
    type Error = der::Error;

    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        reader.read_slice(header.length()).map(RawSet)
    }
}

impl EncodeValue for RawSet<'_> {
    fn value_len(&self) -> der::Result<Length> {
        Length::try_from(self.0.len())
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        writer.write(self.0)
    }
}

impl FixedTag for RawSet<'_> {
    const TAG: Tag = Tag::Set;
}

/// `ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT content }`
#[derive(Sequence)]
struct ContentInfo<'a> {
    content_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    content: AnyRef<'a>,
}

/// RFC 5652 5.1.
#[derive(Sequence)]
struct SignedData<'a> {
    version: u8,
    digest_algorithms: RawSet<'a>,
    encap_content_info: EncapsulatedContentInfo<'a>,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    certificates: Option<RawSet<'a>>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    crls: Option<RawSet<'a>>,
    signer_infos: RawSet<'a>,
}

#[derive(Sequence)]
struct EncapsulatedContentInfo<'a> {
    e_content_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    e_content: Option<&'a OctetStringRef>,
}

/// RFC 5652 5.3.
#[derive(Sequence)]
struct SignerInfo<'a> {
    version: u8,
    /// `IssuerAndSerialNumber` or `[0] SubjectKeyIdentifier`.
    sid: AnyRef<'a>,
    digest_algorithm: AlgorithmIdentifierRef<'a>,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    signed_attrs: Option<RawSet<'a>>,
    signature_algorithm: AlgorithmIdentifierRef<'a>,
    signature: OctetString,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    unsigned_attrs: Option<RawSet<'a>>,
}

/// RFC 3161 2.4.2.
#[derive(Sequence)]
struct TstInfo<'a> {
    version: u8,
    policy: ObjectIdentifier,
    message_imprint: MessageImprint<'a>,
    serial_number: der::asn1::IntRef<'a>,
    /// Raw: see [`gen_time`].
    gen_time: AnyRef<'a>,
    #[asn1(optional = "true")]
    accuracy: Option<Accuracy>,
    #[asn1(default = "Default::default")]
    ordering: bool,
    #[asn1(optional = "true")]
    nonce: Option<der::asn1::IntRef<'a>>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    tsa: Option<AnyRef<'a>>,
    /// A SEQUENCE, but IMPLICIT tagging keeps only "constructed": unused.
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    extensions: Option<RawSet<'a>>,
}

#[derive(Sequence)]
struct MessageImprint<'a> {
    hash_algorithm: AlgorithmIdentifierRef<'a>,
    hashed_message: OctetString,
}

#[derive(Sequence, Default)]
struct Accuracy {
    #[asn1(optional = "true")]
    seconds: Option<u32>,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    millis: Option<u16>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    micros: Option<u16>,
}

/// A parsed token: what [`verify`] needs, owned.
struct Token<'a> {
    info: TstInfo<'a>,
    tst_info_der: &'a [u8],
    gen_time: DateTime<Utc>,
    accuracy: TimeDelta,
    certificates: Vec<Certificate>,
    signer_infos: Vec<SignerInfo<'a>>,
}

fn parse(bytes: &[u8]) -> Result<Token<'_>, String> {
    let bad = |what: &str, e: der::Error| format!("timestamp is not a valid {what}: {e}");
    let outer = AnyRef::from_der(bytes).map_err(|e| bad("DER structure", e))?;
    let first = elements(outer.value())
        .map_err(|e| bad("DER structure", e))?
        .into_iter()
        .next()
        .ok_or("timestamp is an empty SEQUENCE")?;
    let content_info: ContentInfo<'_> = if first.tag() == Tag::ObjectIdentifier {
        // a bare TimeStampToken (Notation)
        outer.decode_as().map_err(|e| bad("ContentInfo", e))?
    } else {
        // TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken OPTIONAL }
        let status: u8 = elements(first.value())
            .map_err(|e| bad("PKIStatusInfo", e))?
            .first()
            .ok_or("timestamp response has an empty status")?
            .decode_as()
            .map_err(|e| bad("PKIStatusInfo", e))?;
        // 0 granted, 1 grantedWithMods; 2 rejection, 3 waiting, 4/5 revocation.
        if status > 1 {
            return Err(format!(
                "timestamp response status is {status} ({}), not granted",
                match status {
                    2 => "rejection",
                    3 => "waiting",
                    4 => "revocationWarning",
                    5 => "revocationNotification",
                    _ => "unknown",
                }
            ));
        }
        elements(outer.value())
            .map_err(|e| bad("TimeStampResp", e))?
            .get(1)
            .ok_or("timestamp response carries no token")?
            .decode_as()
            .map_err(|e| bad("ContentInfo", e))?
    };
    if content_info.content_type != ID_SIGNED_DATA {
        return Err(format!(
            "timestamp content type is {}, not signedData",
            content_info.content_type
        ));
    }
    let signed_data: SignedData<'_> = content_info
        .content
        .decode_as()
        .map_err(|e| bad("SignedData", e))?;
    if signed_data.version != 3 {
        return Err(format!(
            "timestamp SignedData version is {}, not 3",
            signed_data.version
        ));
    }
    let encap = &signed_data.encap_content_info;
    if encap.e_content_type != ID_CT_TST_INFO {
        return Err(format!(
            "timestamp content is {}, not id-ct-TSTInfo",
            encap.e_content_type
        ));
    }
    let tst_info_der = encap
        .e_content
        .ok_or("timestamp has no TSTInfo content")?
        .as_bytes();
    let info = TstInfo::from_der(tst_info_der).map_err(|e| bad("TSTInfo", e))?;
    if info.version != 1 {
        return Err(format!(
            "timestamp TSTInfo version is {}, not 1",
            info.version
        ));
    }
    let gen_time = gen_time(&info.gen_time)?;
    let accuracy = match &info.accuracy {
        None if info.policy == BASELINE_POLICY => TimeDelta::seconds(1),
        None => TimeDelta::zero(),
        Some(a) => {
            TimeDelta::seconds(i64::from(a.seconds.unwrap_or(0)))
                + TimeDelta::milliseconds(i64::from(a.millis.unwrap_or(0)))
                + TimeDelta::microseconds(i64::from(a.micros.unwrap_or(0)))
        }
    };
    let certificates = match signed_data.certificates {
        None => Vec::new(),
        Some(set) => elements(set.0)
            .map_err(|e| bad("certificate set", e))?
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                if c.tag() != Tag::Sequence {
                    return Err(format!(
                        "timestamp certificate {i} is not an X.509 certificate ({})",
                        c.tag()
                    ));
                }
                let der = c.to_der().map_err(|e| bad("certificate", e))?;
                Certificate::from_der(der).map_err(|e| format!("timestamp certificate {i}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let signer_infos = elements(signed_data.signer_infos.0)
        .map_err(|e| bad("SignerInfo set", e))?
        .into_iter()
        .map(|si| {
            si.decode_as::<SignerInfo<'_>>()
                .map_err(|e| bad("SignerInfo", e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Token {
        info,
        tst_info_der,
        gen_time,
        accuracy,
        certificates,
        signer_infos,
    })
}

/// The elements of a constructed value, in order.
fn elements(value: &[u8]) -> der::Result<Vec<AnyRef<'_>>> {
    let mut reader = SliceReader::new(value)?;
    let mut out = Vec::new();
    while !reader.is_finished() {
        out.push(AnyRef::decode(&mut reader)?);
    }
    Ok(out)
}

/// `YYYYMMDDHHMMSS[.f+]Z` (RFC 3161 2.4.2: GeneralizedTime, UTC, optional
/// fraction without trailing zeros).
fn gen_time(value: &AnyRef<'_>) -> Result<DateTime<Utc>, String> {
    let bad = || "timestamp genTime is not a valid GeneralizedTime".to_string();
    if value.tag() != Tag::GeneralizedTime {
        return Err(bad());
    }
    let text = std::str::from_utf8(value.value()).map_err(|_| bad())?;
    let body = text.strip_suffix('Z').ok_or_else(bad)?;
    let (whole, fraction) = match body.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (body, None),
    };
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let number = |range: std::ops::Range<usize>| whole[range].parse::<u32>().map_err(|_| bad());
    let nanos = match fraction {
        None => 0,
        Some(f)
            if !f.is_empty()
                && f.len() <= 9
                && f.bytes().all(|b| b.is_ascii_digit())
                && !f.ends_with('0') =>
        {
            format!("{f:0<9}").parse::<u32>().map_err(|_| bad())?
        }
        Some(_) => return Err(bad()),
    };
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second) = (number(8..10)?, number(10..12)?, number(12..14)?);
    NaiveDate::from_ymd_opt(year as i32, month, day)
        .and_then(|date| date.and_hms_nano_opt(hour, minute, second, nanos))
        .map(|t| t.and_utc())
        .ok_or_else(bad)
}

fn verify_signer(
    token: &Token<'_>,
    signer_info: &SignerInfo<'_>,
    trust: &Trust<'_>,
) -> Result<Vec<Certificate>, String> {
    let attrs_value = signer_info
        .signed_attrs
        .ok_or("timestamp SignerInfo has no signed attributes")?;
    let attributes = attributes(attrs_value.0)?;
    let attribute = |oid: ObjectIdentifier| find_attribute(&attributes, oid);
    let content_type = attribute(ID_CONTENT_TYPE)
        .ok_or("timestamp SignerInfo has no content-type attribute")?
        .decode_as::<ObjectIdentifier>()
        .map_err(|e| format!("timestamp content-type attribute: {e}"))?;
    if content_type != ID_CT_TST_INFO {
        return Err(format!(
            "timestamp content-type attribute is {content_type}, not id-ct-TSTInfo"
        ));
    }
    let digest_hash = Hash::from_oid(&signer_info.digest_algorithm.oid)
        .map_err(|e| format!("timestamp SignerInfo digest: {e}"))?;
    let message_digest = attribute(ID_MESSAGE_DIGEST)
        .ok_or("timestamp SignerInfo has no message-digest attribute")?;
    if message_digest.tag() != Tag::OctetString
        || message_digest.value() != digest_hash.digest(token.tst_info_der)
    {
        return Err(
            "timestamp message-digest attribute does not match its TSTInfo (the TSTInfo was altered)"
                .to_string(),
        );
    }

    let candidates: Vec<&Certificate> = token
        .certificates
        .iter()
        .chain(trust.signers.iter())
        .collect();
    let signer = signing_certificate(&attributes, signer_info, &candidates)?;

    // The signature covers the attributes as a DER SET (tag 0x31), not as
    // the [0] IMPLICIT field they are stored in (RFC 5652 5.4).
    let signed = AnyRef::new(Tag::Set, attrs_value.0)
        .and_then(|set| set.to_der())
        .map_err(|e| format!("timestamp signed attributes: {e}"))?;
    let algorithm = signature_algorithm(signer_info, digest_hash)?;
    signer
        .verify_signature(algorithm, &signed, signer_info.signature.as_bytes())
        .map_err(|e| format!("timestamp signature: {e}"))?;
    x509::check_time_stamping_signer(signer)?;

    let intermediates: Vec<Certificate> = token
        .certificates
        .iter()
        .chain(trust.intermediates.iter())
        .cloned()
        .collect();
    if trust.roots.is_empty() {
        return Err("no trusted TSA root certificate is configured".to_string());
    }
    x509::verify_chain(
        signer,
        &intermediates,
        trust.roots,
        token.gen_time,
        Purpose::TimeStamping,
    )
    .map_err(|e| format!("timestamp signer is not trusted: {e}"))
}

/// The signed attributes as (type, first value).
fn attributes(value: &[u8]) -> Result<Vec<(ObjectIdentifier, AnyRef<'_>)>, String> {
    let bad = |e: der::Error| format!("timestamp signed attributes: {e}");
    elements(value)
        .map_err(bad)?
        .into_iter()
        .map(|attribute| {
            let parts = elements(attribute.value()).map_err(bad)?;
            let (oid, values) = match parts.as_slice() {
                [oid, values] if values.tag() == Tag::Set => (oid, values),
                _ => {
                    return Err("timestamp signed attribute is not {type, SET OF value}".to_string())
                }
            };
            let oid = oid.decode_as::<ObjectIdentifier>().map_err(bad)?;
            let first = *elements(values.value())
                .map_err(bad)?
                .first()
                .ok_or_else(|| format!("timestamp signed attribute {oid} has no value"))?;
            Ok((oid, first))
        })
        .collect()
}

fn find_attribute<'a>(
    attributes: &[(ObjectIdentifier, AnyRef<'a>)],
    oid: ObjectIdentifier,
) -> Option<AnyRef<'a>> {
    attributes.iter().find(|(o, _)| *o == oid).map(|(_, v)| *v)
}

/// The certificate that signed: the one whose hash the signing-certificate-v2
/// attribute (RFC 5816) names, else (tokens with only the v1 attribute, as
/// openssl writes them by default, or none) the one the SignerInfo's sid
/// names, as sigstore-go finds it. notation-go requires v2; the signature,
/// RFC 3161's EKU rule and the chain are checked on the certificate either
/// way.
fn signing_certificate<'c>(
    attributes: &[(ObjectIdentifier, AnyRef<'_>)],
    signer_info: &SignerInfo<'_>,
    candidates: &[&'c Certificate],
) -> Result<&'c Certificate, String> {
    let Some(v2) = find_attribute(attributes, ID_SIGNING_CERTIFICATE_V2) else {
        return by_sid(signer_info, candidates);
    };
    let bad = |e: der::Error| format!("timestamp signing-certificate-v2 attribute: {e}");
    // SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2, policies OPTIONAL }
    // ESSCertIDv2 ::= SEQUENCE { hashAlgorithm DEFAULT sha256, certHash, issuerSerial OPTIONAL }
    let certs = *elements(v2.value())
        .map_err(bad)?
        .first()
        .ok_or("timestamp signing-certificate-v2 attribute is empty")?;
    let id = *elements(certs.value())
        .map_err(bad)?
        .first()
        .ok_or("timestamp signing-certificate-v2 attribute lists no certificate")?;
    let parts = elements(id.value()).map_err(bad)?;
    let (hash, cert_hash) = match parts.as_slice() {
        [algorithm, cert_hash, ..] if algorithm.tag() == Tag::Sequence => {
            let algorithm: AlgorithmIdentifierRef<'_> = algorithm.decode_as().map_err(bad)?;
            let hash = Hash::from_oid(&algorithm.oid)
                .map_err(|e| format!("timestamp signing-certificate-v2 hash: {e}"))?;
            (hash, cert_hash)
        }
        [cert_hash, ..] => (Hash::Sha256, cert_hash),
        [] => return Err("timestamp signing-certificate-v2 has an empty ESSCertIDv2".into()),
    };
    candidates
        .iter()
        .find(|c| hash.digest(c.der()) == cert_hash.value())
        .copied()
        .ok_or_else(|| {
            "timestamp signing certificate named by its signing-certificate-v2 attribute is neither in the token nor a configured TSA certificate"
                .to_string()
        })
}

fn by_sid<'c>(
    signer_info: &SignerInfo<'_>,
    candidates: &[&'c Certificate],
) -> Result<&'c Certificate, String> {
    let bad = |e: der::Error| format!("timestamp SignerInfo sid: {e}");
    let sid = signer_info.sid;
    let found = if sid.tag() == Tag::Sequence {
        // IssuerAndSerialNumber ::= SEQUENCE { issuer Name, serialNumber INTEGER }
        let parts = elements(sid.value()).map_err(bad)?;
        let [issuer, serial] = parts.as_slice() else {
            return Err("timestamp SignerInfo sid is not {issuer, serialNumber}".to_string());
        };
        let issuer = issuer.to_der().map_err(bad)?;
        candidates
            .iter()
            .find(|c| c.serial() == serial.value() && c.issuer_der().is_ok_and(|i| i == issuer))
    } else if sid.tag()
        == (Tag::ContextSpecific {
            constructed: false,
            number: TagNumber(0),
        })
    {
        candidates.iter().find(|c| {
            c.parsed()
                .tbs_certificate()
                .get_extension::<x509_cert::ext::pkix::SubjectKeyIdentifier>()
                .ok()
                .flatten()
                .is_some_and(|(_, ski)| ski.0.as_bytes() == sid.value())
        })
    } else {
        return Err(format!(
            "timestamp SignerInfo sid has an unknown form ({})",
            sid.tag()
        ));
    };
    found.copied().ok_or_else(|| {
        "timestamp signing certificate named by its SignerInfo is neither in the token nor a configured TSA certificate"
            .to_string()
    })
}

fn signature_algorithm(
    signer_info: &SignerInfo<'_>,
    digest: Hash,
) -> Result<SignatureAlgorithm, String> {
    let oid = signer_info.signature_algorithm.oid;
    Ok(match oid {
        // "rsaEncryption" as the signature algorithm: PKCS#1 v1.5 with the
        // SignerInfo's digest (common in TSA tokens).
        OID_RSA_ENCRYPTION => SignatureAlgorithm::RsaPkcs1(digest),
        OID_SHA256_RSA => SignatureAlgorithm::RsaPkcs1(Hash::Sha256),
        OID_SHA384_RSA => SignatureAlgorithm::RsaPkcs1(Hash::Sha384),
        OID_SHA512_RSA => SignatureAlgorithm::RsaPkcs1(Hash::Sha512),
        OID_RSA_PSS => SignatureAlgorithm::RsaPss(pss_hash(signer_info)?),
        OID_EC_PUBLIC_KEY => SignatureAlgorithm::Ecdsa(digest),
        OID_ECDSA_SHA256 => SignatureAlgorithm::Ecdsa(Hash::Sha256),
        OID_ECDSA_SHA384 => SignatureAlgorithm::Ecdsa(Hash::Sha384),
        OID_ECDSA_SHA512 => SignatureAlgorithm::Ecdsa(Hash::Sha512),
        OID_ED25519 => SignatureAlgorithm::Ed25519,
        other => {
            return Err(format!(
                "timestamp signature algorithm {other} is not supported"
            ))
        }
    })
}

/// RSASSA-PSS-params' hashAlgorithm ([0]; the SHA-1 default is refused).
fn pss_hash(signer_info: &SignerInfo<'_>) -> Result<Hash, String> {
    let bad = |e: der::Error| format!("timestamp RSASSA-PSS parameters: {e}");
    let params = signer_info
        .signature_algorithm
        .parameters
        .ok_or("timestamp RSASSA-PSS signature without parameters (SHA-1) is not accepted")?;
    let hash_field = elements(params.value())
        .map_err(bad)?
        .into_iter()
        .find(|e| {
            e.tag()
                == Tag::ContextSpecific {
                    constructed: true,
                    number: TagNumber(0),
                }
        })
        .ok_or("timestamp RSASSA-PSS signature with the SHA-1 default hash is not accepted")?;
    let algorithm: AlgorithmIdentifierRef<'_> = AnyRef::from_der(hash_field.value())
        .and_then(|a| a.decode_as())
        .map_err(bad)?;
    Hash::from_oid(&algorithm.oid).map_err(|e| format!("timestamp RSASSA-PSS hash: {e}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::capabilities::x509::tests::{at, jws, test_data};

    /// The certificates a token carries (tests anchor on one of them).
    pub(crate) fn token_certificates(token: &[u8]) -> Vec<Certificate> {
        parse(token).unwrap().certificates
    }
    use base64::Engine;

    const TSPCLIENT: &str = "timestamp/tspclient-go/testdata";
    const GLOBALSIGN_R6: &str =
        "notation/notation-go/verifier/testdata/truststore/x509/tsa/test-timestamp/globalsignRoot.cer";
    const DIGICERT_G4: &str =
        "notation/notation-go/verifier/testdata/truststore/x509/tsa/test-mismatch/DigiCertTSARootSHA384.cer";

    fn der_cert(path: &str) -> Certificate {
        Certificate::from_der(test_data(path)).unwrap()
    }

    fn pem_cert(path: &str) -> Certificate {
        Certificate::from_pem(std::str::from_utf8(&test_data(path)).unwrap())
            .unwrap()
            .remove(0)
    }

    fn roots(certs: &[Certificate]) -> Trust<'_> {
        Trust {
            roots: certs,
            ..Trust::default()
        }
    }

    /// tspclient-go's token over "notation" (GlobalSign, chain up to R3 in the token).
    fn tspclient(name: &str) -> Vec<u8> {
        test_data(&format!("{TSPCLIENT}/{name}"))
    }

    fn subjects(chain: &[Certificate]) -> Vec<String> {
        chain.iter().map(Certificate::subject_text).collect()
    }

    #[test]
    fn verifies_a_globalsign_token_on_either_of_its_roots() {
        let token = tspclient("TimeStampToken.p7s");
        let r3 = [pem_cert(&format!("{TSPCLIENT}/GlobalSignRootCA.crt"))];
        let stamp = verify(&token, b"notation", &roots(&r3)).unwrap();
        assert_eq!(stamp.time, at("2021-09-17T14:09:10Z"));
        assert_eq!(stamp.accuracy, TimeDelta::seconds(1));
        assert_eq!(
            (stamp.earliest(), stamp.latest()),
            (at("2021-09-17T14:09:09Z"), at("2021-09-17T14:09:11Z"))
        );
        assert_eq!(
            subjects(&stamp.chain),
            [
                "CN=Globalsign TSA for Advanced - G4,O=GlobalSign nv-sa,C=BE",
                "CN=GlobalSign Timestamping CA - SHA384 - G4,O=GlobalSign nv-sa,C=BE",
                "CN=GlobalSign,O=GlobalSign,OU=GlobalSign Root CA - R6",
                "CN=GlobalSign,O=GlobalSign,OU=GlobalSign Root CA - R3",
            ]
        );
        assert_eq!(stamp.signer(), &stamp.chain[0]);
        // R6 itself (Notation's tsa store): the path stops there
        let r6 = [der_cert(GLOBALSIGN_R6)];
        let stamp = verify(&token, b"notation", &roots(&r6)).unwrap();
        assert_eq!(stamp.chain.len(), 3);
        assert_eq!(stamp.chain[2], r6[0]);
    }

    #[test]
    fn a_root_carried_in_the_token_is_not_trusted_for_it() {
        let token = tspclient("TimeStampToken.p7s");
        let digicert = [der_cert(DIGICERT_G4)];
        let err = verify(&token, b"notation", &roots(&digicert)).unwrap_err();
        assert!(
            err.starts_with("timestamp signer is not trusted: certificate \"CN=Globalsign TSA for Advanced - G4,O=GlobalSign nv-sa,C=BE\" does not chain to a trusted certificate at 2021-09-17T14:09:10Z: issuer not found"),
            "{err}"
        );
        assert_eq!(
            verify(&token, b"notation", &Trust::default()).unwrap_err(),
            "no trusted TSA root certificate is configured"
        );
    }

    #[test]
    fn the_imprint_must_be_the_hash_of_the_message() {
        let r6 = [der_cert(GLOBALSIGN_R6)];
        assert_eq!(
            verify(&tspclient("TimeStampToken.p7s"), b"invalid", &roots(&r6)).unwrap_err(),
            "timestamp does not cover this signature: its message imprint is the hash of other bytes"
        );
    }

    #[test]
    fn tspclient_go_negative_tokens_each_fail_for_their_reason() {
        let r6 = [der_cert(GLOBALSIGN_R6)];
        let error = |name: &str| verify(&tspclient(name), b"notation", &roots(&r6)).unwrap_err();
        assert_eq!(
            error("TimeStampTokenWithInvalidSignature.p7s"),
            "timestamp signature: signature does not verify with the key of certificate \"CN=Globalsign TSA for Advanced - G4,O=GlobalSign nv-sa,C=BE\""
        );
        assert_eq!(
            error("TimeStampTokenWithoutCertificate.p7s"),
            "timestamp signing certificate named by its signing-certificate-v2 attribute is neither in the token nor a configured TSA certificate"
        );
        assert_eq!(
            error("TimeStampTokenWithMismatchCertHash.p7s"),
            "timestamp signing certificate named by its signing-certificate-v2 attribute is neither in the token nor a configured TSA certificate"
        );
        assert_eq!(
            error("TimeStampTokenWithSHA1CertHash.p7s"),
            "timestamp signing-certificate-v2 hash: SHA-1 is not accepted"
        );
        assert_eq!(
            error("TimeStampTokenWithTSTInfoVersion2.p7s"),
            "timestamp TSTInfo version is 2, not 1"
        );
        assert_eq!(
            error("TimeStampTokenWithInvalideContentType.p7s"),
            "timestamp content is 1.2.840.113549.1.7.1, not id-ct-TSTInfo"
        );
    }

    #[test]
    fn signer_found_by_sid_or_given_by_the_trust_material() {
        let r6 = [der_cert(GLOBALSIGN_R6)];
        // the first SignerInfo is broken, the second verifies
        verify(
            &tspclient("TimeStampTokenWithValidAndInvalidSignerInfos.p7s"),
            b"notation",
            &roots(&r6),
        )
        .unwrap();
        // no signing-certificate attribute: the sid names the signer (whose
        // signature no longer verifies: upstream removed the attribute
        // without signing again)
        assert_eq!(
            verify(&tspclient("TimeStampTokenWithoutSigningCertificate.p7s"), b"notation", &roots(&r6)).unwrap_err(),
            "timestamp signature: signature does not verify with the key of certificate \"CN=Globalsign TSA for Advanced - G4,O=GlobalSign nv-sa,C=BE\""
        );
        // a token without certificates verifies when the TSA's certificates are configured
        let full = verify(&tspclient("TimeStampToken.p7s"), b"notation", &roots(&r6)).unwrap();
        let signers = [full.chain[0].clone()];
        let intermediates = [full.chain[1].clone()];
        let trust = Trust {
            roots: &r6,
            intermediates: &intermediates,
            signers: &signers,
        };
        verify(
            &tspclient("TimeStampTokenWithoutCertificate.p7s"),
            b"notation",
            &trust,
        )
        .unwrap();
    }

    #[test]
    fn tampered_tst_info_breaks_the_message_digest_attribute() {
        let mut token = tspclient("TimeStampToken.p7s");
        let gen_time = b"20210917140910Z";
        let at_ = token
            .windows(gen_time.len())
            .position(|w| w == gen_time)
            .unwrap();
        token[at_ + 3] = b'2'; // 2021 -> 2022
        let r6 = [der_cert(GLOBALSIGN_R6)];
        assert_eq!(
            verify(&token, b"notation", &roots(&r6)).unwrap_err(),
            "timestamp message-digest attribute does not match its TSTInfo (the TSTInfo was altered)"
        );
    }

    #[test]
    fn notation_envelope_countersignature_globalsign() {
        let envelope =
            jws("notation/notation-go/verifier/testdata/timestamp/sigEnv/jwsWithTimestamp.sig");
        let token = envelope.timestamp.unwrap();
        let r6 = [der_cert(GLOBALSIGN_R6)];
        let stamp = verify(&token, &envelope.signature, &roots(&r6)).unwrap();
        assert_eq!(stamp.time, at("2024-06-18T06:29:37Z"));
        // the token's intermediate has no EKU: allowed on the path
        assert_eq!(stamp.chain[1].extended_key_usage().unwrap(), None);
        // countersigns the signature, not the signed bytes
        assert!(verify(&token, &envelope.signing_input, &roots(&r6)).is_err());
    }

    /// Microsoft's TSA: genTime with fractional seconds, accuracy 500 ms, a
    /// TSA certificate expired today but valid at genTime. The token carries
    /// the leaf and "Microsoft Public RSA Timestamping CA 2020", not the root
    /// (which is not in any test data we have), so the test anchors on that
    /// CA, taken out of the token.
    #[test]
    fn notation_envelope_countersignature_microsoft_fractional_seconds() {
        let envelope = jws("notation/notation-e2e/e2e-with-timestamped-signature/blobs/sha256/603ff134e97a79cd7a15560b76137c2c4a10451daab11327a7c6f86dac250fee");
        let token_bytes = envelope.timestamp.unwrap();
        let token = parse(&token_bytes).unwrap();
        assert_eq!(token.gen_time, at("2025-01-21T09:17:46.641Z"));
        assert_eq!(token.accuracy, TimeDelta::milliseconds(500));
        let ca: Vec<Certificate> = token
            .certificates
            .iter()
            .filter(|c| {
                c.subject_text()
                    .contains("Microsoft Public RSA Timestamping CA 2020")
            })
            .cloned()
            .collect();
        assert_eq!(ca.len(), 1);
        let stamp = verify(&token_bytes, &envelope.signature, &roots(&ca)).unwrap();
        assert_eq!(
            (stamp.earliest(), stamp.latest()),
            (
                at("2025-01-21T09:17:46.141Z"),
                at("2025-01-21T09:17:47.141Z")
            )
        );
        // the chain was checked at genTime: the TSA certificate has expired since
        assert!(stamp.signer().not_after() < Utc::now());
        assert!(stamp.signer().valid_at(stamp.time).is_ok());
        let r6 = [der_cert(GLOBALSIGN_R6)];
        assert!(verify(&token_bytes, &envelope.signature, &roots(&r6))
            .unwrap_err()
            .contains("issuer not found"));
    }

    /// The Sigstore TSA: a TimeStampResp, no certificates in the token (the
    /// chain is the trust root's), ECDSA P-384 with SHA-256.
    #[test]
    fn sigstore_bundle_timestamp_with_the_trust_root_chain() {
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap()
        };
        let bundle: serde_json::Value =
            serde_json::from_slice(&test_data("sigstore/sigstore-rs/bundle_v03.json")).unwrap();
        let root: serde_json::Value = serde_json::from_slice(&test_data(
            "sigstore/sigstore-rs/sigstore_trusted_root.json",
        ))
        .unwrap();
        let token = b64(&bundle["verificationMaterial"]["timestampVerificationData"]
            ["rfc3161Timestamps"][0]["signedTimestamp"]);
        let signature = b64(&bundle["dsseEnvelope"]["signatures"][0]["sig"]);
        let chain: Vec<Certificate> = root["timestampAuthorities"][0]["certChain"]["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| Certificate::from_der(b64(&c["rawBytes"])).unwrap())
            .collect();
        let (leaf, tsa_root) = (&chain[..1], &chain[1..]);
        let trust = Trust {
            roots: tsa_root,
            intermediates: &[],
            signers: leaf,
        };
        let stamp = verify(&token, &signature, &trust).unwrap();
        assert_eq!(stamp.time, at("2026-04-09T07:23:29Z"));
        assert_eq!(
            stamp.signer().public_key().unwrap(),
            x509::PublicKey::Ec(x509::Curve::P384)
        );
        assert_eq!(
            verify(&token, &signature, &roots(tsa_root)).unwrap_err(),
            "timestamp signing certificate named by its signing-certificate-v2 attribute is neither in the token nor a configured TSA certificate"
        );
        let mut other = signature.clone();
        other[0] ^= 1;
        assert!(verify(&token, &other, &trust)
            .unwrap_err()
            .starts_with("timestamp does not cover"));
        let mut forged = token.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1; // inside the ECDSA signature, the last field
        assert!(verify(&forged, &signature, &trust)
            .unwrap_err()
            .starts_with("timestamp signature: signature does not verify"));
    }

    #[test]
    fn responses_that_are_not_granted_or_not_timestamps() {
        // TimeStampResp { PKIStatusInfo { status 2 } }
        let rejection = [0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x02];
        assert_eq!(
            verify(&rejection, b"x", &Trust::default()).unwrap_err(),
            "timestamp response status is 2 (rejection), not granted"
        );
        let granted_without_token = [0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x00];
        assert_eq!(
            verify(&granted_without_token, b"x", &Trust::default()).unwrap_err(),
            "timestamp response carries no token"
        );
        assert!(verify(b"not DER", b"x", &Trust::default())
            .unwrap_err()
            .starts_with("timestamp is not a valid DER structure"));
        let certificate = test_data(GLOBALSIGN_R6);
        assert!(verify(&certificate, b"x", &Trust::default())
            .unwrap_err()
            .starts_with("timestamp is not a valid PKIStatusInfo"));
    }

    #[test]
    fn gen_time_forms() {
        let parse =
            |text: &str| gen_time(&AnyRef::new(Tag::GeneralizedTime, text.as_bytes()).unwrap());
        assert_eq!(
            parse("20250121091746.641Z").unwrap(),
            at("2025-01-21T09:17:46.641Z")
        );
        assert_eq!(
            parse("20250121091746Z").unwrap(),
            at("2025-01-21T09:17:46Z")
        );
        for bad in [
            "20250121091746.640Z",
            "20250121091746.Z",
            "20250121091746",
            "2025012109174Z",
            "20251321091746Z",
            "20250121091746+0100",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
