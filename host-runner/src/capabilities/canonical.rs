//! Canonical JSON as Notary signs it (docker/go `canonical/json`, the OLPC
//! dialect; also the form of the verification cache's keys): object keys sorted by their UTF-8 bytes, no whitespace, strings
//! written raw with only `"` and `\` escaped, integers only.
//!
//! Signatures are checked over a re-serialisation of the parsed `signed`
//! object rather than over a byte range of the file, so a verifier can never
//! be tricked into checking bytes other than the ones it then interprets.
//!
//! Not the `olpc-cjson` crate (in the lock file through sigstore): it gives
//! the same bytes for the example repository's files, but differs from what
//! Notary signs in two places, so a signature Notary made could fail, or one
//! document's signature could cover another: it NFC-normalizes every string
//! and key (docker/go's canonical/json does no Unicode normalization), and it
//! sorts object keys by their *escaped* form (`"a\""` after `"a#"`), where Go
//! sorts the keys themselves (`a"` before `a#`). Both are pinned below.

use serde_json::Value;

/// Serialises `value` canonically. Fails on floating-point numbers, which
/// canonical JSON cannot represent.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    write(value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            out.extend_from_slice(n.to_string().as_bytes())
        }
        Value::Number(n) => {
            return Err(format!(
                "canonical JSON has no floating-point numbers ({n})"
            ))
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for byte in s.bytes() {
        if byte == b'"' || byte == b'\\' {
            out.push(b'\\');
        }
        out.push(byte);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let v: Value =
            serde_json::from_str(r#"{ "b": [1, true, null], "a": {"z": "x", "y": -2} }"#).unwrap();
        assert_eq!(
            to_vec(&v).unwrap(),
            br#"{"a":{"y":-2,"z":"x"},"b":[1,true,null]}"#
        );
    }

    #[test]
    fn escapes_only_quote_and_backslash() {
        let v = json!({"s": "a\"b\\c<&>\né"});
        assert_eq!(
            to_vec(&v).unwrap(),
            "{\"s\":\"a\\\"b\\\\c<&>\né\"}".as_bytes()
        );
    }

    #[test]
    fn strings_are_not_unicode_normalized() {
        // "é" written decomposed (e + U+0301) stays decomposed.
        let v = json!({"s": "e\u{301}"});
        assert_eq!(to_vec(&v).unwrap(), "{\"s\":\"e\u{301}\"}".as_bytes());
    }

    #[test]
    fn keys_sort_by_their_bytes_not_their_escaped_form() {
        let v = json!({"a#": 1, "a\"": 2});
        assert_eq!(to_vec(&v).unwrap(), br#"{"a\"":2,"a#":1}"#);
    }

    #[test]
    fn rejects_floats() {
        assert!(to_vec(&json!({"f": 1.5}))
            .unwrap_err()
            .contains("floating-point"));
    }

    #[test]
    fn reproduces_the_signed_bytes_of_a_served_file() {
        let file = include_str!("../../tests/data/notary-example/snapshot.json");
        let v: Value = serde_json::from_str(file).unwrap();
        let canonical = String::from_utf8(to_vec(&v["signed"]).unwrap()).unwrap();
        assert!(file.contains(&canonical));
    }
}
