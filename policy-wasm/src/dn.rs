//! Distinguished names (RFC 4514): parsed from trust-policy text by the
//! guest (Notation's `x509.subject:` identities, checked at
//! `validate_settings`) and built from certificates by the host, compared with
//! Notation's subset rule.

use std::fmt;

/// A distinguished name in RFC 4514 order (most specific first, as written
/// in trust policies and shown by `openssl x509 -nameopt RFC2253`).
/// Attribute types are canonical: upper-case short names (`CN`, `C`, `ST` for
/// `S` too, `L`, `O`, `OU`, `STREET`, `POSTALCODE`, `SERIALNUMBER`, `DC`,
/// `UID`, `E`) or dotted OIDs for the rest; values are compared exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistinguishedName {
    rdns: Vec<Vec<Attribute>>,
}

/// One `type=value` of a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The canonical type: a short name (`CN`) or a dotted OID.
    pub kind: String,
    /// The value, unescaped.
    pub value: String,
}

impl Attribute {
    /// An attribute of a certificate's name: the short name of a known
    /// OID (dotted form otherwise) and its text.
    pub fn from_oid(oid: &str, value: String) -> Self {
        let kind = ATTRIBUTE_NAMES
            .iter()
            .find(|(o, _)| *o == oid)
            .map_or_else(|| oid.to_string(), |(_, name)| name.to_string());
        Self { kind, value }
    }
}

/// OID, canonical short name (the names Go's `pkix.Name.String` writes, plus
/// DC, UID and E).
const ATTRIBUTE_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.5", "SERIALNUMBER"),
    ("2.5.4.17", "POSTALCODE"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("1.2.840.113549.1.9.1", "E"),
];

fn canonical_kind(kind: &str) -> Result<String, String> {
    let upper = kind.to_ascii_uppercase();
    let alias = match upper.as_str() {
        "S" => "ST",
        "EMAILADDRESS" => "E",
        other => other,
    };
    if let Some((_, name)) = ATTRIBUTE_NAMES
        .iter()
        .find(|(oid, name)| *name == alias || *oid == alias)
    {
        return Ok(name.to_string());
    }
    if !alias.is_empty()
        && alias.split('.').count() > 1
        && alias
            .split('.')
            .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()))
    {
        return Ok(alias.to_string());
    }
    Err(format!("unknown attribute type {kind:?}"))
}

impl DistinguishedName {
    /// Parses RFC 4514 text: RDNs separated by `,` (or `;`), multi-valued
    /// RDNs joined by `+`, values with `\` escapes of special characters or
    /// of two hex digits, unescaped spaces around types and values ignored.
    /// `#`-hex (BER) values are refused (Notation refuses them too).
    pub fn parse(text: &str) -> Result<Self, String> {
        let fail = |why: &str| format!("distinguished name {text:?}: {why}");
        // Notation's rule, literally: no "=#" anywhere.
        if text.contains("=#") {
            return Err(fail("#-encoded (BER) values are not supported"));
        }
        let mut rdns = Vec::new();
        let mut rdn = Vec::new();
        let mut kind: Option<String> = None;
        let mut current: Vec<u8> = Vec::new();
        // Length of `current` up to and including the last escaped byte,
        // so escaped trailing spaces survive trimming.
        let mut escaped_end = 0;
        let bytes = text.as_bytes();
        let mut i = 0;
        let finish_value = |current: &mut Vec<u8>, escaped_end: usize| -> Result<String, String> {
            let mut end = current.len();
            while end > escaped_end && current[end - 1] == b' ' {
                end -= 1;
            }
            let start = current[..end].iter().take_while(|b| **b == b' ').count();
            let value = String::from_utf8(current[start..end].to_vec())
                .map_err(|_| fail("value is not UTF-8"))?;
            current.clear();
            Ok(value)
        };
        while i < bytes.len() {
            let b = bytes[i];
            match b {
                b'\\' if kind.is_some() => {
                    let next = *bytes
                        .get(i + 1)
                        .ok_or_else(|| fail("ends with a lone \\"))?;
                    if b" \"#+,;<=>\\".contains(&next) {
                        current.push(next);
                        i += 2;
                    } else {
                        let hex = bytes
                            .get(i + 1..i + 3)
                            .and_then(|h| std::str::from_utf8(h).ok())
                            .and_then(|h| u8::from_str_radix(h, 16).ok())
                            .ok_or_else(|| fail("bad escape (\\ must be followed by a special character or two hex digits)"))?;
                        current.push(hex);
                        i += 3;
                    }
                    escaped_end = current.len();
                    continue;
                }
                b'=' if kind.is_none() => {
                    let name = String::from_utf8_lossy(&current).trim().to_string();
                    kind = Some(canonical_kind(&name).map_err(|e| fail(&e))?);
                    current.clear();
                    escaped_end = 0;
                }
                b',' | b';' | b'+' => {
                    let kind = kind
                        .take()
                        .ok_or_else(|| fail("an attribute has no type"))?;
                    let value = finish_value(&mut current, escaped_end)?;
                    escaped_end = 0;
                    rdn.push(Attribute { kind, value });
                    if b != b'+' {
                        rdns.push(std::mem::take(&mut rdn));
                    }
                }
                b'"' | b'<' | b'>' | 0 if kind.is_some() => {
                    return Err(fail(&format!("unescaped {:?} in a value", char::from(b))))
                }
                _ => current.push(b),
            }
            i += 1;
        }
        match kind {
            Some(kind) => {
                let value = finish_value(&mut current, escaped_end)?;
                rdn.push(Attribute { kind, value });
                rdns.push(rdn);
            }
            None if rdns.is_empty() && rdn.is_empty() && current.iter().all(|b| *b == b' ') => {}
            None => return Err(fail("an attribute has no \"type=value\" form")),
        }
        Ok(Self { rdns })
    }

    /// A name from its RDNs, most specific first (a certificate's, read by
    /// the host); attribute types as [`Attribute::from_oid`] makes them.
    pub fn from_rdns(rdns: Vec<Vec<Attribute>>) -> Self {
        Self { rdns }
    }

    /// The RDNs, most specific first.
    pub fn rdns(&self) -> &[Vec<Attribute>] {
        &self.rdns
    }

    /// Every attribute of every RDN.
    pub fn attributes(&self) -> impl Iterator<Item = &Attribute> {
        self.rdns.iter().flatten()
    }

    /// Notation's `IsSubsetDN`: every attribute of `self` is in `other`
    /// with the same value.
    pub fn is_subset_of(&self, other: &DistinguishedName) -> bool {
        self.attributes()
            .all(|a| other.attributes().any(|b| a == b))
    }
}

impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rdn) in self.rdns.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            for (j, attribute) in rdn.iter().enumerate() {
                if j > 0 {
                    f.write_str("+")?;
                }
                write!(f, "{}=", attribute.kind)?;
                write_escaped(f, &attribute.value)?;
            }
        }
        Ok(())
    }
}

fn write_escaped(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    let last = value.len().saturating_sub(1);
    for (i, c) in value.char_indices() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=')
            || (i == 0 && (c == ' ' || c == '#'))
            || (i == last && c == ' ');
        if special {
            write!(f, "\\{c}")?;
        } else if c.is_control() {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                write!(f, "\\{byte:02X}")?;
            }
        } else {
            write!(f, "{c}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(text: &str) -> DistinguishedName {
        DistinguishedName::parse(text).unwrap()
    }

    fn pairs(name: &DistinguishedName) -> Vec<(String, String)> {
        name.attributes()
            .map(|a| (a.kind.clone(), a.value.clone()))
            .collect()
    }

    fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_rfc_4514_names() {
        assert_eq!(
            pairs(&dn("CN=e2e,O=Notary,L=Seattle,ST=WA,C=US")),
            owned(&[
                ("CN", "e2e"),
                ("O", "Notary"),
                ("L", "Seattle"),
                ("ST", "WA"),
                ("C", "US")
            ])
        );
        // S is ST, types are case-insensitive, spaces around separators are not part of values
        assert_eq!(
            pairs(&dn(" c = US ; s=California,o=Notary Project ")),
            owned(&[("C", "US"), ("ST", "California"), ("O", "Notary Project")])
        );
        // escapes: special characters, hex pairs (UTF-8), escaped trailing space
        assert_eq!(
            pairs(&dn(
                r"O=Acme\, Inc.,CN=a\+b\=c\\d,OU=caf\C3\A9,L=x\ ,ST=\#1"
            )),
            owned(&[
                ("O", "Acme, Inc."),
                ("CN", "a+b=c\\d"),
                ("OU", "café"),
                ("L", "x "),
                ("ST", "#1")
            ])
        );
        assert_eq!(
            pairs(&dn("2.5.4.10=Org,1.2.3.4=x")),
            owned(&[("O", "Org"), ("1.2.3.4", "x")])
        );
        let multi = dn("OU=Sales+CN=J. Smith,DC=example");
        assert_eq!(multi.rdns().len(), 2);
        assert_eq!(multi.rdns()[0].len(), 2);
        assert_eq!(dn("").rdns().len(), 0);
        // display writes what parse reads
        for text in [
            r"O=Acme\, Inc.,CN=a\+b\=c\\d",
            r"CN=\ lead and trail\ ",
            "OU=Sales+CN=J. Smith,DC=example",
        ] {
            assert_eq!(dn(&dn(text).to_string()), dn(text), "{text}");
        }
    }

    #[test]
    fn refuses_malformed_names() {
        let error = |text: &str| DistinguishedName::parse(text).unwrap_err();
        assert_eq!(
            error("CN=a,invalid"),
            "distinguished name \"CN=a,invalid\": an attribute has no \"type=value\" form"
        );
        assert_eq!(
            error("CN=a,,O=b"),
            "distinguished name \"CN=a,,O=b\": an attribute has no type"
        );
        assert_eq!(error("C=US,ST=California,O=Notary Project=#"), "distinguished name \"C=US,ST=California,O=Notary Project=#\": #-encoded (BER) values are not supported");
        assert_eq!(
            error("CN=#04024869"),
            "distinguished name \"CN=#04024869\": #-encoded (BER) values are not supported"
        );
        assert_eq!(error(r"CN=a\zz"), "distinguished name \"CN=a\\\\zz\": bad escape (\\ must be followed by a special character or two hex digits)");
        assert_eq!(
            error("CN=a\\"),
            "distinguished name \"CN=a\\\\\": ends with a lone \\"
        );
        assert_eq!(
            error("CN=a<b"),
            "distinguished name \"CN=a<b\": unescaped '<' in a value"
        );
        assert_eq!(
            error("FOO=bar"),
            "distinguished name \"FOO=bar\": unknown attribute type \"FOO\""
        );
        assert_eq!(
            error(r"CN=\FF"),
            "distinguished name \"CN=\\\\FF\": value is not UTF-8"
        );
    }

    #[test]
    fn subset_matching_is_notations() {
        let leaf = dn("CN=e2e,O=Notary,L=Seattle,ST=WA,C=US");
        assert!(dn("C=US,ST=WA,O=Notary").is_subset_of(&leaf));
        assert!(dn("CN=e2e,O=Notary,L=Seattle,ST=WA,C=US").is_subset_of(&leaf));
        assert!(dn("C=US,S=WA,O=Notary").is_subset_of(&leaf));
        assert!(!dn("C=US,ST=WA,O=Notary,CN=other").is_subset_of(&leaf));
        assert!(
            !dn("C=US,ST=WA,O=notary").is_subset_of(&leaf),
            "values are case-sensitive"
        );
        assert!(!dn("C=US,ST=WA,O=Notary,OU=Eng").is_subset_of(&leaf));
        assert!(!leaf.is_subset_of(&dn("C=US,ST=WA,O=Notary")));
    }
}
