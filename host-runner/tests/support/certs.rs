//! Test certificates made with rcgen: a CA, TLS server certificates for
//! 127.0.0.1, and code-signing chains for cosign's certificate mode.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType,
};
use std::path::{Path, PathBuf};

/// A certificate authority (root or intermediate) that can issue certificates.
pub struct TestCa {
    pub cert_pem: String,
    /// DER SubjectPublicKeyInfo of the CA's key (what an SCT hashes).
    pub spki: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

/// An issued leaf certificate and its private key.
pub struct Leaf {
    pub cert_pem: String,
    pub key: KeyPair,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

impl TestCa {
    /// A self-signed root CA.
    pub fn root(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("ca key");
        let params = ca_params(name);
        let cert = params.self_signed(&key).expect("self-signed ca");
        TestCa {
            cert_pem: cert.pem(),
            spki: key.subject_public_key_info(),
            issuer: Issuer::new(params, key),
        }
    }

    /// An intermediate CA issued by this CA.
    pub fn intermediate(&self, name: &str) -> TestCa {
        let key = KeyPair::generate().expect("intermediate key");
        let params = ca_params(name);
        let cert = params.signed_by(&key, &self.issuer).expect("intermediate");
        TestCa {
            cert_pem: cert.pem(),
            spki: key.subject_public_key_info(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A TLS server certificate for 127.0.0.1 / localhost (serverAuth +
    /// clientAuth, so it also serves as a client certificate).
    pub fn server(&self) -> Leaf {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params
            .distinguished_name
            .push(DnType::CommonName, "registry");
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.issue(params)
    }

    /// A code-signing certificate for `email` (what `cosign sign --key
    /// --certificate` attaches, and what sigstore's certificate verifier wants:
    /// digitalSignature, codeSigning, a SAN).
    pub fn code_signing(&self, email: &str) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .subject_alt_names
            .push(SanType::Rfc822Name(email.try_into().expect("email SAN")));
        params.distinguished_name.push(DnType::CommonName, email);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        self.issue(params)
    }

    /// Issues a leaf from `params` with a fresh P-256 key.
    pub fn issue(&self, params: CertificateParams) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        Leaf {
            cert_pem: cert.pem(),
            key,
        }
    }

    /// Issues a certificate for `key` from `params`: its DER.
    pub fn issue_for(&self, params: &CertificateParams, key: &KeyPair) -> Vec<u8> {
        params
            .signed_by(key, &self.issuer)
            .expect("certificate")
            .der()
            .to_vec()
    }
}

/// TLS material for a server, written as PEM files into `dir`.
pub struct TlsFiles {
    pub ca_pem: String,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A fresh CA and a 127.0.0.1 server certificate, written into `dir`.
pub fn write_tls_files(dir: &Path) -> TlsFiles {
    let ca = TestCa::root("imagegate test CA");
    let server = ca.server();
    let files = TlsFiles {
        ca_pem: ca.cert_pem.clone(),
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    std::fs::write(&files.ca, &ca.cert_pem).expect("write ca");
    std::fs::write(&files.cert, &server.cert_pem).expect("write cert");
    std::fs::write(&files.key, server.key.serialize_pem()).expect("write key");
    files
}

/// The API server's check of a webhook certificate: a chain to the CA
/// bundle, valid now, for server auth, for the name it dials.
pub fn verifies(ca_pem: &str, cert_pem: &str, name: &str) -> Result<(), String> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
    let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|e| e.to_string())?;
    let anchor = webpki::anchor_from_trusted_cert(&ca).map_err(|e| e.to_string())?;
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| e.to_string())?;
    let cert = webpki::EndEntityCert::try_from(&der).map_err(|e| e.to_string())?;
    cert.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[],
        UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(name).map_err(|e| e.to_string())?;
    cert.verify_is_valid_for_subject_name(&name)
        .map_err(|e| e.to_string())
}
