//! A token service for docker-registry's `auth: token` (the Docker registry
//! token protocol that Docker Hub, GHCR, Harbor and Quay speak): the registry
//! answers 401 with `Bearer realm=...,scope=repository:<name>:pull`, the
//! client fetches a token here, the registry checks it against the root
//! certificate it was given. Tokens are JWTs signed RS256 by a key whose
//! certificate (issued by a CA made here) rides in the `x5c` header. It
//! grants whatever is asked, anonymously, and logs each scope it was asked
//! for: how many tokens a client fetched.

use base64::Engine as _;
use hyper::StatusCode;
use rcgen::{CertificateParams, DnType, KeyPair, KeyUsagePurpose, SigningKey, PKCS_RSA_SHA256};
use serde_json::json;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use super::certs::TestCa;
use super::http::{reply, Server};

/// The `service` the registry names in its challenge and checks as audience.
pub const SERVICE: &str = "imagegate-test-registry";
/// The `iss` of every token.
pub const ISSUER: &str = "imagegate-test-tokens";
/// What a token's answer says it lives for (`expires_in`).
pub const LIFETIME_SECS: u64 = 300;

/// A running token service. Stopped when dropped.
pub struct TokenService {
    /// The realm: `http://127.0.0.1:<port>/token`.
    pub realm: String,
    /// The root certificate bundle the registry trusts (PEM file).
    pub root_bundle: PathBuf,
    scopes: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
    _server: Server,
}

struct Signer {
    key: KeyPair,
    /// base64 (standard) DER of the signing certificate.
    x5c: String,
}

impl TokenService {
    /// A token service with a fresh CA and RSA signing key.
    pub fn start() -> TokenService {
        let ca = TestCa::root("imagegate-test token CA");
        let key = KeyPair::generate_for(&PKCS_RSA_SHA256).expect("rsa key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "token signer");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let der = ca.issue_for(&params, &key);
        let signer = Arc::new(Signer {
            key,
            x5c: base64::engine::general_purpose::STANDARD.encode(der),
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let root_bundle = dir.path().join("token-root.pem");
        std::fs::write(&root_bundle, &ca.cert_pem).expect("write root bundle");
        let scopes = Arc::new(Mutex::new(Vec::new()));
        let log = scopes.clone();
        let server = Server::start(move |req| {
            let signer = signer.clone();
            let log = log.clone();
            async move {
                let query = req.uri().query().unwrap_or_default().as_bytes();
                let asked: Vec<String> = form_urlencoded::parse(query)
                    .filter(|(name, _)| name == "scope")
                    .map(|(_, scope)| scope.into_owned())
                    .collect();
                log.lock().unwrap().extend(asked.iter().cloned());
                let token = signer.token(&asked);
                let body = json!({"token": token, "expires_in": LIFETIME_SECS});
                reply(
                    StatusCode::OK,
                    &[("content-type", "application/json".to_string())],
                    body.to_string().into_bytes(),
                )
            }
        });
        TokenService {
            realm: format!("http://{}/token", server.addr),
            root_bundle,
            scopes,
            _dir: dir,
            _server: server,
        }
    }

    /// Every scope asked for so far, in order (one per token fetch of one
    /// repository).
    pub fn scopes(&self) -> Vec<String> {
        self.scopes.lock().unwrap().clone()
    }
}

impl Signer {
    /// A JWT granting every `repository:<name>:<actions>` scope asked.
    fn token(&self, scopes: &[String]) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let access: Vec<_> = scopes
            .iter()
            .filter_map(|s| {
                let (name, actions) = s.strip_prefix("repository:")?.rsplit_once(':')?;
                Some(json!({"type": "repository", "name": name,
                            "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect();
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]});
        let claims = json!({"iss": ISSUER, "sub": "", "aud": SERVICE,
                            "exp": now + LIFETIME_SECS, "nbf": now - 10, "iat": now,
                            "jti": format!("{now}-{}", scopes.len()), "access": access});
        let signing_input = format!("{}.{}", b64(&header), b64(&claims));
        let signature = self.key.sign(signing_input.as_bytes()).expect("rs256");
        format!(
            "{signing_input}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature)
        )
    }
}
