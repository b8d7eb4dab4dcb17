//! JWS envelopes (`application/jose+json`, Notation's
//! `signature-envelope-jws.md`; notation-core-go `signature/jws`): flattened
//! JSON serialization, the signed attributes in the protected header, the
//! certificate chain and the countersignature in the unprotected one.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::envelope::{
    certificate_chain, check_critical, Algorithm, Envelope, Format, SigningScheme,
    AUTHENTIC_SIGNING_TIME, EXPIRY, SIGNING_SCHEME, SIGNING_TIME,
};

#[derive(Deserialize)]
struct Jws {
    payload: String,
    protected: String,
    #[serde(default)]
    header: Unprotected,
    signature: String,
}

#[derive(Default, Deserialize)]
struct Unprotected {
    #[serde(default)]
    x5c: Vec<String>,
    #[serde(rename = "io.cncf.notary.timestampSignature", default)]
    timestamp_signature: Option<String>,
}

/// Notation's own protected headers; every other one is an extended attribute.
const HEADERS: [&str; 7] = [
    "alg",
    "cty",
    "crit",
    EXPIRY,
    SIGNING_SCHEME,
    SIGNING_TIME,
    AUTHENTIC_SIGNING_TIME,
];

pub(super) fn parse(bytes: &[u8]) -> Result<Envelope, String> {
    let jws: Jws = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a JWS envelope in flattened JSON: {e}"))?;
    let protected_json = URL_SAFE_NO_PAD
        .decode(&jws.protected)
        .map_err(|e| format!("protected header is not base64url: {e}"))?;
    let protected: Map<String, Value> = serde_json::from_slice(&protected_json)
        .map_err(|e| format!("protected header is not a JSON object: {e}"))?;
    let text = |name: &str| -> Result<Option<&str>, String> {
        match protected.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(format!("protected header {name:?} is not a string")),
        }
    };
    let time = |name: &str| -> Result<Option<DateTime<Utc>>, String> {
        text(name)?
            .map(|t| {
                DateTime::parse_from_rfc3339(t)
                    .map(|t| t.to_utc())
                    .map_err(|e| format!("protected header {name:?} is not an RFC 3339 time: {e}"))
            })
            .transpose()
    };
    let algorithm = match text("alg")? {
        Some("PS256") => Algorithm::Ps256,
        Some("PS384") => Algorithm::Ps384,
        Some("PS512") => Algorithm::Ps512,
        Some("ES256") => Algorithm::Es256,
        Some("ES384") => Algorithm::Es384,
        Some("ES512") => Algorithm::Es512,
        Some(other) => return Err(format!("unsupported signature algorithm {other:?}")),
        None => return Err("the protected header has no alg".to_string()),
    };
    let scheme = SigningScheme::parse(text(SIGNING_SCHEME)?.unwrap_or_default())?;
    if protected.contains_key(scheme.other_time_header()) {
        return Err(format!(
            "{:?} must not be present in a {} signature",
            scheme.other_time_header(),
            text(SIGNING_SCHEME)?.unwrap_or_default()
        ));
    }
    let signing_time = time(scheme.time_header())?
        .ok_or_else(|| format!("the protected header has no {:?}", scheme.time_header()))?;
    let expiry = time(EXPIRY)?;
    let critical = match protected.get("crit") {
        None => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|c| c.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or("crit is not a list of strings")?,
        Some(_) => return Err("crit is not a list of strings".to_string()),
    };
    let extended: Vec<(String, bool)> = protected
        .keys()
        .filter(|k| !HEADERS.contains(&k.as_str()))
        .map(|k| (k.clone(), critical.contains(k)))
        .collect();
    check_critical(&critical, scheme, expiry.is_some(), &extended)?;

    let payload = URL_SAFE_NO_PAD
        .decode(&jws.payload)
        .map_err(|e| format!("payload is not base64url: {e}"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(&jws.signature)
        .map_err(|e| format!("signature is not base64url: {e}"))?;
    if signature.is_empty() {
        return Err("the signature is empty".to_string());
    }
    let ders = jws
        .header
        .x5c
        .iter()
        .enumerate()
        .map(|(i, c)| {
            STANDARD
                .decode(c)
                .map_err(|e| format!("x5c[{i}] is not base64: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let chain = certificate_chain(ders, "x5c")?;
    let timestamp = jws
        .header
        .timestamp_signature
        .map(|t| STANDARD.decode(t))
        .transpose()
        .map_err(|e| format!("the timestamp signature is not base64: {e}"))?;
    Ok(Envelope {
        format: Format::Jws,
        algorithm,
        signed: format!("{}.{}", jws.protected, jws.payload).into_bytes(),
        signature,
        payload,
        content_type: text("cty")?.unwrap_or_default().to_string(),
        scheme,
        signing_time,
        expiry,
        chain,
        timestamp,
        extended,
    })
}
