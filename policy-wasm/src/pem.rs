//! The one PEM reader, guest and host: just enough PEM to reject bad key
//! material at `validate_settings`, split bundles, and hand blocks on.
//!
//! Signatures are checked by the host; the guest only makes sure that what the
//! user pasted is a well-formed PEM block of the right kind, so a typo is an
//! invalid-settings error at deploy time instead of a denial at 3 a.m. The
//! host reads Notary's keys with [`decode_all`] too.

use base64::Engine;

/// One decoded PEM block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// What follows `-----BEGIN `: `PUBLIC KEY`, `CERTIFICATE`, ...
    pub label: String,
    /// The decoded body: one DER SEQUENCE.
    pub der: Vec<u8>,
}

/// Decodes every PEM block in `text`. RFC 1421 headers (`role: jenkins`, as
/// Notary writes them) are skipped. At least one block is required; text
/// outside blocks, an END label that differs from its BEGIN, an unterminated
/// block, bad base64 or a body that is not one DER SEQUENCE are errors.
///
/// ```
/// let key = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQTW9sqsjDyllhoVJlqBrZv/VtgKl\n\
///            9fpjLZZGCTcsG+r4h2SI/d0w/nIO0LXHbMr5eNLOw2Nd3LP7zP8ijpZqqg==\n-----END PUBLIC KEY-----\n";
/// let blocks = imagegate_policy::pem::decode_all(&format!("{key}{key}"))?;
/// assert_eq!(blocks.len(), 2);
/// assert_eq!(blocks[0].label, "PUBLIC KEY");
/// assert_eq!(imagegate_policy::pem::encode(&blocks[0]), key);
/// assert!(imagegate_policy::pem::decode_all("-----BEGIN PUBLIC KEY-----\nMAA=\n").is_err());
/// # Ok::<(), String>(())
/// ```
pub fn decode_all(text: &str) -> Result<Vec<Block>, String> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim_end);
    while let Some(line) = lines.next() {
        if line.trim().is_empty() {
            continue;
        }
        let label = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
            .ok_or_else(|| format!("expected \"-----BEGIN ...-----\", found {:?}", short(line)))?;
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut closed = false;
        for line in lines.by_ref() {
            if line == end {
                closed = true;
                break;
            }
            if line.contains(':') {
                continue; // header line
            }
            body.push_str(line.trim());
        }
        if !closed {
            return Err(format!("missing \"{end}\""));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|e| format!("{label}: bad base64: {e}"))?;
        check_der_sequence(&der).map_err(|e| format!("{label}: {e}"))?;
        blocks.push(Block {
            label: label.to_string(),
            der,
        });
    }
    if blocks.is_empty() {
        return Err("no PEM block found".to_string());
    }
    Ok(blocks)
}

/// `block` as PEM text (64-character base64 lines, final newline): how a block
/// read with [`decode_all`] is handed on, e.g. a key from a bundle.
pub fn encode(block: &Block) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(&block.der);
    let mut text = format!("-----BEGIN {}-----\n", block.label);
    for line in body.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is UTF-8.
        text.push_str(std::str::from_utf8(line).unwrap_or_default());
        text.push('\n');
    }
    text.push_str(&format!("-----END {}-----\n", block.label));
    text
}

/// Checks that `text` is exactly one PEM block whose label is one of `labels`.
pub(crate) fn expect_one(text: &str, labels: &[&str]) -> Result<(), String> {
    let blocks = decode_all(text)?;
    if blocks.len() != 1 {
        return Err(format!("expected one PEM block, found {}", blocks.len()));
    }
    expect_labels(&blocks, labels)
}

/// Checks that `text` holds one or more PEM blocks, each with one of `labels`.
pub(crate) fn expect_all(text: &str, labels: &[&str]) -> Result<(), String> {
    expect_labels(&decode_all(text)?, labels)
}

fn expect_labels(blocks: &[Block], labels: &[&str]) -> Result<(), String> {
    for b in blocks {
        if !labels.contains(&b.label.as_str()) {
            return Err(format!(
                "PEM block is {:?}, expected {}",
                b.label,
                labels.join(" or ")
            ));
        }
    }
    Ok(())
}

/// A DER value must be one SEQUENCE whose length covers the whole input.
fn check_der_sequence(der: &[u8]) -> Result<(), String> {
    let bad = || "not a DER SEQUENCE".to_string();
    if der.len() < 2 || der[0] != 0x30 {
        return Err(bad());
    }
    let (len, header) = match der[1] {
        n if n < 0x80 => (n as usize, 2),
        n => {
            let count = (n & 0x7f) as usize;
            if count == 0 || count > 4 || der.len() < 2 + count {
                return Err(bad());
            }
            let len = der[2..2 + count]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (len, 2 + count)
        }
    };
    if header + len != der.len() {
        return Err("DER length does not match the data".to_string());
    }
    Ok(())
}

fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const P256: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQTW9sqsjDyllhoVJlqBrZv/VtgKl\n9fpjLZZGCTcsG+r4h2SI/d0w/nIO0LXHbMr5eNLOw2Nd3LP7zP8ijpZqqg==\n-----END PUBLIC KEY-----\n";

    #[test]
    fn public_key_is_accepted() {
        expect_one(P256, &["PUBLIC KEY"]).unwrap();
    }

    #[test]
    fn headers_are_skipped() {
        let with_header = P256.replacen("KEY-----\n", "KEY-----\nrole: jenkins\n\n", 1);
        expect_one(&with_header, &["PUBLIC KEY"]).unwrap();
    }

    #[test]
    fn wrong_label_is_named() {
        let err = expect_one(P256, &["CERTIFICATE"]).unwrap_err();
        assert!(
            err.contains("\"PUBLIC KEY\", expected CERTIFICATE"),
            "{err}"
        );
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(expect_one("hello", &["PUBLIC KEY"]).is_err());
        assert!(expect_one("", &["PUBLIC KEY"]).is_err());
        let truncated = &P256[..P256.len() - 30];
        assert!(expect_one(truncated, &["PUBLIC KEY"]).is_err());
        let bad_b64 = P256.replace("MFkw", "M!kw");
        assert!(expect_one(&bad_b64, &["PUBLIC KEY"]).is_err());
        // Valid base64 but the DER length (5) does not match the data (1 byte).
        let bad_len = "-----BEGIN PUBLIC KEY-----\nMAUB\n-----END PUBLIC KEY-----\n";
        assert!(expect_one(bad_len, &["PUBLIC KEY"])
            .unwrap_err()
            .contains("length"));
    }

    #[test]
    fn encode_writes_what_decode_reads() {
        let blocks = decode_all(P256).unwrap();
        assert_eq!(encode(&blocks[0]), P256);
        // A 203-byte DER SEQUENCE: several base64 lines.
        let mut der = vec![0x30, 0x81, 200];
        der.extend([7u8; 200]);
        let long = Block {
            label: "CERTIFICATE".into(),
            der,
        };
        let text = encode(&long);
        assert!(text.lines().all(|l| l.len() <= 64), "{text}");
        assert_eq!(decode_all(&text), Ok(vec![long]));
    }

    #[test]
    fn bundles_decode_every_block() {
        let two = format!("{P256}{P256}");
        assert_eq!(decode_all(&two).unwrap().len(), 2);
        assert!(expect_one(&two, &["PUBLIC KEY"]).is_err());
        expect_all(&two, &["PUBLIC KEY"]).unwrap();
    }
}
