//! COSE envelopes (`application/cose`, Notation's
//! `signature-envelope-cose.md`; notation-core-go `signature/cose`):
//! COSE_Sign1_Tagged, the signed attributes in the protected header (times as
//! CBOR tag 1), the certificate chain (x5chain, label 33) and the
//! countersignature in the unprotected one.

use chrono::{DateTime, Utc};
use coset::cbor::value::Value;
use coset::{iana, Label, RegisteredLabel, RegisteredLabelWithPrivate, TaggedCborSerializable};

use super::envelope::{
    certificate_chain, check_critical, Algorithm, Envelope, Format, SigningScheme,
    AUTHENTIC_SIGNING_TIME, EXPIRY, SIGNING_SCHEME, SIGNING_TIME, TIMESTAMP_SIGNATURE,
};

/// RFC 9360 `x5chain`.
const X5CHAIN: i64 = 33;

pub(super) fn parse(bytes: &[u8]) -> Result<Envelope, String> {
    let sign1 = coset::CoseSign1::from_tagged_slice(bytes)
        .map_err(|e| format!("not a COSE_Sign1_Tagged message: {e}"))?;
    let header = &sign1.protected.header;
    let algorithm = match &header.alg {
        Some(RegisteredLabelWithPrivate::Assigned(alg)) => match alg {
            iana::Algorithm::PS256 => Algorithm::Ps256,
            iana::Algorithm::PS384 => Algorithm::Ps384,
            iana::Algorithm::PS512 => Algorithm::Ps512,
            iana::Algorithm::ES256 => Algorithm::Es256,
            iana::Algorithm::ES384 => Algorithm::Es384,
            iana::Algorithm::ES512 => Algorithm::Es512,
            other => return Err(format!("unsupported signature algorithm {other:?}")),
        },
        Some(other) => return Err(format!("unsupported signature algorithm {other:?}")),
        None => return Err("the protected header has no algorithm".to_string()),
    };
    let content_type = match &header.content_type {
        Some(RegisteredLabel::Text(text)) => text.clone(),
        Some(other) => return Err(format!("content type {other:?} is not a text string")),
        None => return Err("the protected header has no content type".to_string()),
    };
    let protected = |name: &str| {
        header
            .rest
            .iter()
            .find(|(label, _)| *label == Label::Text(name.to_string()))
            .map(|(_, value)| value)
    };
    let scheme_text = match protected(SIGNING_SCHEME) {
        Some(Value::Text(text)) => text.as_str(),
        _ => {
            return Err(format!(
                "the protected header has no text {SIGNING_SCHEME:?}"
            ))
        }
    };
    let scheme = SigningScheme::parse(scheme_text)?;
    if protected(scheme.other_time_header()).is_some() {
        return Err(format!(
            "{:?} must not be present in a {scheme_text} signature",
            scheme.other_time_header()
        ));
    }
    let time = |name: &str| protected(name).map(|v| cbor_time(name, v)).transpose();
    let signing_time = time(scheme.time_header())?
        .ok_or_else(|| format!("the protected header has no {:?}", scheme.time_header()))?;
    let expiry = time(EXPIRY)?;
    let critical: Vec<String> = header
        .crit
        .iter()
        .map(|label| match label {
            RegisteredLabelWithPrivate::Text(text) => text.clone(),
            RegisteredLabelWithPrivate::Assigned(p) => (*p as i64).to_string(),
            RegisteredLabelWithPrivate::PrivateUse(n) => n.to_string(),
        })
        .collect();
    let own = [SIGNING_SCHEME, SIGNING_TIME, AUTHENTIC_SIGNING_TIME, EXPIRY];
    let extended: Vec<(String, bool)> = header
        .rest
        .iter()
        .filter_map(|(label, _)| match label {
            Label::Text(text) if own.contains(&text.as_str()) => None,
            Label::Text(text) => Some(text.clone()),
            Label::Int(n) => Some(n.to_string()),
        })
        .map(|name| {
            let critical = critical.contains(&name);
            (name, critical)
        })
        .collect();
    check_critical(&critical, scheme, expiry.is_some(), &extended)?;

    let unprotected = |label: Label| {
        sign1
            .unprotected
            .rest
            .iter()
            .find(|(l, _)| *l == label)
            .map(|(_, v)| v)
    };
    let ders: Vec<Vec<u8>> = match unprotected(Label::Int(X5CHAIN)) {
        Some(Value::Array(list)) => list
            .iter()
            .map(|c| match c {
                Value::Bytes(der) => Ok(der.clone()),
                _ => Err("x5chain holds something other than byte strings".to_string()),
            })
            .collect::<Result<_, _>>()?,
        Some(Value::Bytes(der)) => vec![der.clone()],
        Some(_) => return Err("x5chain (label 33) is not a byte string or an array".to_string()),
        None => Vec::new(),
    };
    let chain = certificate_chain(ders, "x5chain")?;
    let timestamp = match unprotected(Label::Text(TIMESTAMP_SIGNATURE.to_string())) {
        None => None,
        Some(Value::Bytes(token)) => Some(token.clone()),
        Some(_) => return Err(format!("{TIMESTAMP_SIGNATURE:?} is not a byte string")),
    };
    let payload = sign1
        .payload
        .clone()
        .ok_or("the payload is detached; Notation embeds it")?;
    if sign1.signature.is_empty() {
        return Err("the signature is empty".to_string());
    }
    Ok(Envelope {
        format: Format::Cose,
        algorithm,
        // Sig_structure ["Signature1", protected as received, h'', payload]
        signed: sign1.tbs_data(b""),
        signature: sign1.signature.clone(),
        payload,
        content_type,
        scheme,
        signing_time,
        expiry,
        chain,
        timestamp,
        extended,
    })
}

/// A time as Notation writes it: CBOR tag 1 (epoch seconds), integer or float.
fn cbor_time(name: &str, value: &Value) -> Result<DateTime<Utc>, String> {
    let bad = || format!("{name:?} is not a CBOR tag-1 date-time");
    let Value::Tag(1, inner) = value else {
        return Err(bad());
    };
    match inner.as_ref() {
        Value::Integer(seconds) => {
            let seconds = i64::try_from(i128::from(*seconds)).map_err(|_| bad())?;
            DateTime::from_timestamp(seconds, 0).ok_or_else(bad)
        }
        Value::Float(seconds) if seconds.is_finite() => {
            DateTime::from_timestamp(seconds.trunc() as i64, (seconds.fract() * 1e9) as u32)
                .ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}
