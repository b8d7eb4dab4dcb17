//! A stand-in for the public Sigstore instance: a "Fulcio" CA issuing keyless
//! certificates with embedded SCTs from a "CT log", a "Rekor" log keeping a
//! real Merkle tree (entries with signed entry timestamps, inclusion proofs
//! and signed checkpoints), a "TSA" issuing RFC 3161 timestamps, and the
//! offline trust config (`--sigstore-trust-config`) that trusts all of them.
//! Lets keyless verification run end to end without any Sigstore server.

use base64::Engine as _;
use rcgen::{
    CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose,
    PublicKeyData, SanType, SerialNumber, SigningKey,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use time::{Duration, OffsetDateTime};

use super::certs::{Leaf, TestCa};
use super::image::sha256;

/// Fulcio's OIDC issuer extension (v1: raw UTF-8 bytes).
const ISSUER_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 1];
/// Fulcio's GitHub workflow repository extension (v1: raw UTF-8 bytes).
const GITHUB_REPOSITORY_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 5];
/// Fulcio's issuer extension (v2: a DER UTF8String).
const ISSUER_V2_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 8];
const RUNNER_ENVIRONMENT_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 11];
const SOURCE_REPOSITORY_URI_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 12];
const SOURCE_REPOSITORY_REF_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 14];
const SOURCE_REPOSITORY_OWNER_URI_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 16];
/// RFC 6962 embedded SCT list.
const SCT_LIST_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2];
/// extKeyUsage.
const EKU_OID: &[u64] = &[2, 5, 29, 37];

/// The origin line of the fake log's checkpoints, and its signer's name.
const LOG_ORIGIN: &str = "rekor.fake - 4242";
const LOG_NAME: &str = "rekor.fake";

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The keyless identity a certificate is issued for.
pub enum Identity<'a> {
    Email(&'a str),
    Uri(&'a str),
}

/// Fake Fulcio CA, CT log, Rekor log and TSA.
pub struct FakeSigstore {
    pub fulcio: TestCa,
    rekor: KeyPair,
    ctlog: KeyPair,
    tsa_root: TestCa,
    tsa: Leaf,
    /// Leaf hashes of the log, in order.
    log: Mutex<Vec<[u8; 32]>>,
}

impl Default for FakeSigstore {
    fn default() -> Self {
        FakeSigstore::new()
    }
}

/// DER TLV.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn set(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x31, &parts.concat())
}

fn oid(dotted: &str) -> Vec<u8> {
    use der::Encode;
    der::asn1::ObjectIdentifier::new_unwrap(dotted)
        .to_der()
        .expect("oid")
}

fn int(n: u8) -> Vec<u8> {
    tlv(0x02, &[n])
}

fn octets(bytes: &[u8]) -> Vec<u8> {
    tlv(0x04, bytes)
}

fn sha256_algorithm() -> Vec<u8> {
    seq(&[oid("2.16.840.1.101.3.4.2.1")])
}

/// A DER UTF8String (Fulcio's v2 extensions).
fn utf8(text: &str) -> Vec<u8> {
    tlv(0x0c, text.as_bytes())
}

/// The raw TBSCertificate of a DER certificate.
fn tbs_of(certificate: &[u8]) -> Vec<u8> {
    use der::{Decode, Encode};
    let fields = Vec::<der::Any>::from_der(certificate).expect("certificate");
    fields[0].to_der().expect("tbs")
}

/// RFC 6962 Merkle tree hash of `leaves`.
fn tree_hash(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves {
        [] => Sha256::digest(b"").into(),
        [one] => *one,
        _ => {
            let k = split_point(leaves.len());
            node(&tree_hash(&leaves[..k]), &tree_hash(&leaves[k..]))
        }
    }
}

fn node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two smaller than `n`.
fn split_point(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 6962 audit path of leaf `m` in `leaves`.
fn audit_path(m: usize, leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
    if leaves.len() <= 1 {
        return Vec::new();
    }
    let k = split_point(leaves.len());
    if m < k {
        let mut path = audit_path(m, &leaves[..k]);
        path.push(tree_hash(&leaves[k..]));
        path
    } else {
        let mut path = audit_path(m - k, &leaves[k..]);
        path.push(tree_hash(&leaves[..k]));
        path
    }
}

fn validity(start: &str) -> Value {
    json!({"start": start})
}

impl FakeSigstore {
    pub fn new() -> FakeSigstore {
        let tsa_root = TestCa::root("fake tsa root");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("tsa params");
        params
            .distinguished_name
            .push(DnType::CommonName, "fake tsa");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // RFC 3161 2.3: extendedKeyUsage critical, timeStamping only.
        let mut eku = CustomExtension::from_oid_content(EKU_OID, seq(&[oid("1.3.6.1.5.5.7.3.8")]));
        eku.set_criticality(true);
        params.custom_extensions.push(eku);
        let tsa = tsa_root.issue(params);
        FakeSigstore {
            fulcio: TestCa::root("fake fulcio"),
            rekor: KeyPair::generate().expect("rekor key"),
            ctlog: KeyPair::generate().expect("ct log key"),
            tsa_root,
            tsa,
            log: Mutex::new(Vec::new()),
        }
    }

    /// Rekor's log id: sha256 of its public key, hex.
    pub fn log_id_hex(&self) -> String {
        sha256(&self.rekor.subject_public_key_info())
            .trim_start_matches("sha256:")
            .to_string()
    }

    fn log_id(&self) -> Vec<u8> {
        Sha256::digest(self.rekor.subject_public_key_info()).to_vec()
    }

    /// A `ClientTrustConfig` trusting the fake Fulcio CA, Rekor log, CT log and TSA.
    pub fn trust_config(&self) -> String {
        let der = |pem: &str| {
            rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
                .map(|c: rustls_pki_types::CertificateDer<'_>| c.to_vec())
                .expect("certificate der")
        };
        let log = |key: &KeyPair, url: &str| {
            json!({"baseUrl": url, "hashAlgorithm": "SHA2_256",
                   "publicKey": {"rawBytes": b64(&key.subject_public_key_info()),
                                 "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                                 "validFor": validity("2020-01-01T00:00:00Z")},
                   "logId": {"keyId": b64(&Sha256::digest(key.subject_public_key_info()))}})
        };
        json!({
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": {
                "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                "tlogs": [log(&self.rekor, "https://rekor.invalid")],
                "certificateAuthorities": [{"uri": "https://fulcio.invalid",
                    "certChain": {"certificates": [{"rawBytes": b64(&der(&self.fulcio.cert_pem))}]},
                    "validFor": validity("2020-01-01T00:00:00Z")}],
                "ctlogs": [log(&self.ctlog, "https://ctfe.invalid")],
                "timestampAuthorities": [{"uri": "https://tsa.invalid",
                    "certChain": {"certificates": [{"rawBytes": b64(&der(&self.tsa.cert_pem))},
                                                   {"rawBytes": b64(&der(&self.tsa_root.cert_pem))}]},
                    "validFor": validity("2020-01-01T00:00:00Z")}]
            },
            "signingConfig": {}
        })
        .to_string()
    }

    /// Writes [`Self::trust_config`] into `dir`.
    pub fn write_trust_config(&self, dir: &Path) -> PathBuf {
        let path = dir.join("trust-config.json");
        std::fs::write(&path, self.trust_config()).expect("write trust config");
        path
    }

    /// A short-lived keyless certificate, as Fulcio issues one after OIDC
    /// login, with an SCT of the fake CT log. `github_repository`
    /// (`owner/repo`) adds the GitHub workflow extensions.
    pub fn keyless_certificate(
        &self,
        identity: Identity<'_>,
        issuer: &str,
        github_repository: Option<&str>,
    ) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "sigstore.dev");
        params.subject_alt_names.push(match identity {
            Identity::Email(e) => SanType::Rfc822Name(e.try_into().expect("email")),
            Identity::Uri(u) => SanType::URI(u.try_into().expect("uri")),
        });
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(1);
        params.not_after = now + Duration::minutes(10);
        params.serial_number = Some(SerialNumber::from_slice(&rand_serial()));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        let raw = |oid: &[u64], text: &str| {
            CustomExtension::from_oid_content(oid, text.as_bytes().to_vec())
        };
        let der_text = |oid: &[u64], text: &str| CustomExtension::from_oid_content(oid, utf8(text));
        params.custom_extensions.push(raw(ISSUER_OID, issuer));
        params
            .custom_extensions
            .push(der_text(ISSUER_V2_OID, issuer));
        if let Some(repo) = github_repository {
            let owner = repo.split('/').next().unwrap_or(repo);
            params
                .custom_extensions
                .push(raw(GITHUB_REPOSITORY_OID, repo));
            let (repo_uri, owner_uri) = (
                format!("https://github.com/{repo}"),
                format!("https://github.com/{owner}"),
            );
            for (oid, text) in [
                (RUNNER_ENVIRONMENT_OID, "github-hosted"),
                (SOURCE_REPOSITORY_URI_OID, &repo_uri),
                (SOURCE_REPOSITORY_REF_OID, "refs/heads/main"),
                (SOURCE_REPOSITORY_OWNER_URI_OID, &owner_uri),
            ] {
                params.custom_extensions.push(der_text(oid, text));
            }
        }
        let key = KeyPair::generate().expect("leaf key");
        // The CT log signs the certificate without its SCT extension (the
        // precertificate's TBS); the SCT extension goes last, so the final
        // TBS without it is byte for byte the one signed.
        let precert = self.fulcio.issue_for(&params, &key);
        let sct = self.sct(&tbs_of(&precert));
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                SCT_LIST_OID,
                octets(&sct),
            ));
        let der = self.fulcio.issue_for(&params, &key);
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            b64(&der)
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).expect("base64"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        Leaf { cert_pem: pem, key }
    }

    /// A TLS-encoded SCT list with one SCT over `tbs` (RFC 6962 3.2).
    fn sct(&self, tbs: &[u8]) -> Vec<u8> {
        let timestamp = (OffsetDateTime::now_utc().unix_timestamp() as u64) * 1000;
        let mut signed = vec![0u8, 0u8];
        signed.extend_from_slice(&timestamp.to_be_bytes());
        signed.extend_from_slice(&1u16.to_be_bytes());
        signed.extend_from_slice(&Sha256::digest(&self.fulcio.spki));
        signed.extend_from_slice(&(tbs.len() as u32).to_be_bytes()[1..]);
        signed.extend_from_slice(tbs);
        signed.extend_from_slice(&0u16.to_be_bytes());
        let signature = self.ctlog.sign(&signed).expect("SCT signature");
        let mut sct = vec![0u8];
        sct.extend_from_slice(&Sha256::digest(self.ctlog.subject_public_key_info()));
        sct.extend_from_slice(&timestamp.to_be_bytes());
        sct.extend_from_slice(&0u16.to_be_bytes());
        sct.extend_from_slice(&[4, 3]);
        sct.extend_from_slice(&(signature.len() as u16).to_be_bytes());
        sct.extend_from_slice(&signature);
        let mut list = (sct.len() as u16).to_be_bytes().to_vec();
        list.extend_from_slice(&sct);
        let mut out = (list.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&list);
        out
    }

    /// The SET: Rekor's signature over the RFC 8785 JSON of the entry.
    fn set(&self, body_b64: &str, integrated_time: i64, log_index: usize) -> String {
        let canonical = format!(
            r#"{{"body":"{body_b64}","integratedTime":{integrated_time},"logID":"{}","logIndex":{log_index}}}"#,
            self.log_id_hex()
        );
        b64(&self.rekor.sign(canonical.as_bytes()).expect("SET"))
    }

    /// A Rekor bundle (`dev.sigstore.cosign/bundle`) for a legacy `.sig`
    /// signature: a hashedrekord body and the signed entry timestamp over it.
    pub fn bundle(&self, payload: &[u8], signature_b64: &str, certificate_pem: &str) -> String {
        let body = json!({
            "apiVersion": "0.0.1", "kind": "hashedrekord",
            "spec": {"data": {"hash": {"algorithm": "sha256",
                                       "value": sha256(payload).trim_start_matches("sha256:")}},
                     "signature": {"content": signature_b64,
                                   "publicKey": {"content": b64(certificate_pem.as_bytes())}}}
        });
        self.legacy_bundle(body.to_string().as_bytes())
    }

    /// A Rekor bundle annotation (`dev.sigstore.cosign/bundle`) for a log body.
    pub fn legacy_bundle(&self, body: &[u8]) -> String {
        let (index, _) = self.append(body);
        let body = b64(body);
        let integrated_time = OffsetDateTime::now_utc().unix_timestamp();
        json!({
            "SignedEntryTimestamp": self.set(&body, integrated_time, index),
            "Payload": {"body": body, "integratedTime": integrated_time,
                        "logIndex": index, "logID": self.log_id_hex()}
        })
        .to_string()
    }

    /// Appends a leaf; returns its index and the leaves so far.
    fn append(&self, body: &[u8]) -> (usize, Vec<[u8; 32]>) {
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(body);
        let mut log = self.log.lock().expect("log");
        log.push(h.finalize().into());
        (log.len() - 1, log.clone())
    }

    /// Logs a `dsse 0.0.1` entry for a DSSE signature and returns the bundle's
    /// `tlogEntries` element: SET, inclusion proof and signed checkpoint.
    pub fn tlog_entry(&self, payload: &[u8], signature: &[u8], verifier_pem: &str) -> Value {
        let body = json!({
            "apiVersion": "0.0.1", "kind": "dsse",
            "spec": {"envelopeHash": {"algorithm": "sha256", "value": "00".repeat(32)},
                     "payloadHash": {"algorithm": "sha256", "value": sha256(payload).trim_start_matches("sha256:")},
                     "signatures": [{"signature": b64(signature), "verifier": b64(verifier_pem.as_bytes())}]}
        })
        .to_string();
        let (index, leaves) = self.append(body.as_bytes());
        let root = tree_hash(&leaves);
        let note = format!("{LOG_ORIGIN}\n{}\n{}\n", leaves.len(), b64(&root));
        let mut signature_line = self.log_id()[..4].to_vec();
        signature_line.extend(self.rekor.sign(note.as_bytes()).expect("checkpoint"));
        let checkpoint = format!("{note}\n\u{2014} {LOG_NAME} {}\n", b64(&signature_line));
        let integrated_time = OffsetDateTime::now_utc().unix_timestamp();
        let body_b64 = b64(body.as_bytes());
        json!({
            "logIndex": index.to_string(),
            "logId": {"keyId": b64(&self.log_id())},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": integrated_time.to_string(),
            "inclusionPromise": {"signedEntryTimestamp": self.set(&body_b64, integrated_time, index)},
            "inclusionProof": {
                "logIndex": index.to_string(),
                "rootHash": b64(&root),
                "treeSize": leaves.len().to_string(),
                "hashes": audit_path(index, &leaves).iter().map(|h| b64(h)).collect::<Vec<_>>(),
                "checkpoint": {"envelope": checkpoint}
            },
            "canonicalizedBody": body_b64
        })
    }

    /// An RFC 3161 `TimeStampResp` (DER) from the fake TSA over `signature`.
    pub fn timestamp(&self, signature: &[u8]) -> Vec<u8> {
        use der::{Decode, Encode};
        let now = OffsetDateTime::now_utc();
        let gen_time = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}Z",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        let tst_info = seq(&[
            int(1),
            oid("1.3.6.1.4.1.57264.2"),
            seq(&[sha256_algorithm(), octets(&Sha256::digest(signature))]),
            int(7),
            tlv(0x18, gen_time.as_bytes()),
        ]);
        let leaf_der =
            rustls_pki_types::pem::PemObject::from_pem_slice(self.tsa.cert_pem.as_bytes())
                .map(|c: rustls_pki_types::CertificateDer<'_>| c.to_vec())
                .expect("tsa der");
        let leaf = x509_cert::Certificate::from_der(&leaf_der).expect("tsa certificate");
        let attributes = [
            seq(&[
                oid("1.2.840.113549.1.9.3"),
                set(&[oid("1.2.840.113549.1.9.16.1.4")]),
            ]),
            seq(&[
                oid("1.2.840.113549.1.9.4"),
                set(&[octets(&Sha256::digest(&tst_info))]),
            ]),
            seq(&[
                oid("1.2.840.113549.1.9.16.2.47"),
                set(&[seq(&[seq(&[seq(&[octets(&Sha256::digest(&leaf_der))])])])]),
            ]),
        ];
        // Signed as a DER SET, carried as [0] IMPLICIT.
        let signed_attributes = set(&attributes);
        let signature_value = self
            .tsa
            .key
            .sign(&signed_attributes)
            .expect("tsa signature");
        let signer_info = seq(&[
            int(1),
            seq(&[
                leaf.tbs_certificate().issuer().to_der().expect("issuer"),
                leaf.tbs_certificate()
                    .serial_number()
                    .to_der()
                    .expect("serial"),
            ]),
            sha256_algorithm(),
            tlv(0xa0, &attributes.concat()),
            seq(&[oid("1.2.840.10045.4.3.2")]),
            octets(&signature_value),
        ]);
        let signed_data = seq(&[
            int(3),
            set(&[sha256_algorithm()]),
            seq(&[
                oid("1.2.840.113549.1.9.16.1.4"),
                tlv(0xa0, &octets(&tst_info)),
            ]),
            set(&[signer_info]),
        ]);
        let token = seq(&[oid("1.2.840.113549.1.7.2"), tlv(0xa0, &signed_data)]);
        seq(&[seq(&[int(0)]), token])
    }
}

/// A positive 16-byte serial.
fn rand_serial() -> Vec<u8> {
    let mut serial = Sha256::digest(format!("{:?}", std::time::SystemTime::now()))[..16].to_vec();
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    serial
}
