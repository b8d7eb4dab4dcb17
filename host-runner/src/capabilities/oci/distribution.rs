//! A small OCI distribution reader for signature discovery: manifests,
//! referrers and blobs, with every byte counted and every digest checked.
//!
//! Why not oci-client: it pings `/v2/` before every request to a registry
//! without authentication (the outcome "no auth needed" is never cached), so
//! discovery would cost twice the round trips, and its referrers call loses
//! pages and cannot say which path answered.
//!
//! * One `reqwest` client per registry-access configuration, shared by every
//!   evaluation (keep-alive connections are reused); plain HTTP, extra CAs and
//!   credentials come from [`RegistryAccess`], as for every other registry
//!   access of the host.
//! * Authentication is learnt from the registry's 401 challenge, never by
//!   pinging: `Basic` sends the configured credential, `Bearer` fetches a
//!   token from the realm (with the credential, if any) for the repository's
//!   pull scope. The outcome is cached per (registry, repository, credential)
//!   until the token expires; a 401 with a cached header is retried once with
//!   a fresh one. No lock is held across a registry round trip; requests to
//!   one repository that meet the same 401 at once learn it once (one token
//!   fetch between them).
//! * A registry that answered the referrers API with 404 has no such API
//!   (the distribution spec forbids a 404 from one that has it): that is
//!   remembered per registry host for [`NO_API_TTL`], so discovery reads the
//!   referrers tag without asking again (one request less per image). A
//!   wrong memory can only hide referrers, never verify one.
//! * Limits: manifests and indexes 4 MiB, blobs what the caller allows,
//!   checked against the descriptor before the request and while reading;
//!   at most [`MAX_REMEMBERED`] learnt headers and API absences (images come
//!   from requests, so the maps must not grow with them).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sigstore::registry::{CertificateEncoding, ClientProtocol};

use super::image::Image;
use crate::capabilities::lock;
use crate::registry::{Credential, RegistryAccess};

/// Manifests and indexes larger than this are refused (the distribution
/// spec's suggested limit).
pub(crate) const MAX_MANIFEST: usize = 4 << 20;

/// How long a registry's missing referrers API is remembered: long enough
/// to spare a round trip on every image, short enough that a registry
/// upgraded to the API is asked again within minutes.
pub(crate) const NO_API_TTL: Duration = Duration::from_secs(300);
/// Entries kept in each memory (learnt headers, absent APIs).
const MAX_REMEMBERED: usize = 4096;

/// OCI index media type (referrers answers and the referrers tag).
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest media type.
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Every manifest type a reference may resolve to.
pub(crate) const ANY_MANIFEST: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// One repository of one registry, with the credential chosen for it.
#[derive(Debug, Clone)]
pub(crate) struct Repo {
    /// `host[:port]` as written in the image (for plain-HTTP matching).
    pub(crate) registry: String,
    /// What is connected to (`docker.io` is `index.docker.io`).
    pub(crate) host: String,
    pub(crate) repository: String,
    pub(crate) credential: Option<Credential>,
}

impl Repo {
    /// `registry/repository`, for messages.
    pub(crate) fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

/// A manifest as served.
#[derive(Debug, Clone)]
pub(crate) struct Manifest {
    pub(crate) bytes: Vec<u8>,
    /// `sha256:<hex>` of `bytes`.
    pub(crate) digest: String,
}

/// What a request answered, when it was not a success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// 404 (or the registry's MANIFEST_UNKNOWN / NAME_UNKNOWN envelope on 404).
    NotFound(String),
    /// Anything else: transport errors, other statuses, limits, digests.
    Error(String),
}

impl Failure {
    pub(crate) fn text(&self) -> &str {
        match self {
            Failure::NotFound(t) | Failure::Error(t) => t,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AuthKey {
    host: String,
    repository: String,
    credential: Option<Credential>,
}

/// A learnt `Authorization` header and until when it is good.
#[derive(Debug, Clone)]
struct Learnt {
    header: HeaderValue,
    until: Option<Instant>,
}

impl Learnt {
    /// Not expired.
    fn live(&self) -> bool {
        self.until.is_none_or(|u| Instant::now() < u)
    }
}

/// The reader.
pub(crate) struct Distribution {
    client: reqwest::Client,
    protocol: ClientProtocol,
    learnt: Mutex<HashMap<AuthKey, Learnt>>,
    /// Held while a key's authentication is being learnt ([`Distribution::learn`]).
    learning: Mutex<HashMap<AuthKey, Arc<tokio::sync::Mutex<()>>>>,
    /// Registry hosts whose referrers API answered 404, and when.
    no_api: Mutex<HashMap<String, Instant>>,
}

impl Distribution {
    pub(crate) fn new(access: &RegistryAccess) -> anyhow::Result<Distribution> {
        let config = access.client_config();
        let mut certs = Vec::new();
        for c in &config.extra_root_certificates {
            certs.push(match c.encoding {
                CertificateEncoding::Der => reqwest::Certificate::from_der(&c.data)?,
                CertificateEncoding::Pem => reqwest::Certificate::from_pem(&c.data)?,
            });
        }
        let client = reqwest::Client::builder()
            .tls_certs_merge(certs)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()?;
        Ok(Distribution {
            client,
            protocol: config.protocol.clone(),
            learnt: Mutex::new(HashMap::new()),
            learning: Mutex::new(HashMap::new()),
            no_api: Mutex::new(HashMap::new()),
        })
    }

    /// The repository of `image`, with its credential.
    pub(crate) fn repo(image: &Image, access: &RegistryAccess) -> Result<Repo, String> {
        Ok(Repo {
            registry: image.reference.registry().to_string(),
            host: image.reference.resolve_registry().to_string(),
            repository: image.reference.repository().to_string(),
            credential: access.credential_for(&image.reference)?,
        })
    }

    fn url(&self, repo: &Repo, path: &str) -> String {
        let plain = match &self.protocol {
            ClientProtocol::Http => true,
            ClientProtocol::Https => false,
            ClientProtocol::HttpsExcept(list) => list.iter().any(|r| r == &repo.registry),
        };
        let scheme = if plain { "http" } else { "https" };
        format!("{scheme}://{}/v2/{}/{path}", repo.host, repo.repository)
    }

    /// GET a manifest by tag or digest. A manifest asked by digest must hash to it.
    pub(crate) async fn manifest(
        &self,
        repo: &Repo,
        reference: &str,
        accept: &[&str],
    ) -> Result<Manifest, Failure> {
        let what = format!("manifest {}:{reference}", repo.name());
        let bytes = self
            .get(
                repo,
                &format!("manifests/{reference}"),
                accept,
                MAX_MANIFEST,
                &what,
            )
            .await?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if reference.contains(':') && reference != digest {
            return Err(Failure::Error(format!(
                "{what}: the registry served content with digest {digest}"
            )));
        }
        Ok(Manifest { bytes, digest })
    }

    /// The digest a tag resolves to: one HEAD (`Docker-Content-Digest`), or
    /// a GET of the manifest when the registry does not send that header.
    pub(crate) async fn digest(
        &self,
        repo: &Repo,
        reference: &str,
        accept: &[&str],
    ) -> Result<String, Failure> {
        let what = format!("manifest {}:{reference}", repo.name());
        let url = self.url(repo, &format!("manifests/{reference}"));
        let response = self.send(repo, Method::HEAD, &url, accept, &what).await?;
        let header = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .filter(|d| d.starts_with("sha256:"));
        match header {
            Some(digest) => Ok(digest.to_string()),
            None => Ok(self.manifest(repo, reference, accept).await?.digest),
        }
    }

    /// Whether `repo`'s registry answered the referrers API with 404 within
    /// [`NO_API_TTL`].
    pub(crate) fn lacks_referrers_api(&self, repo: &Repo) -> bool {
        fresh(&mut lock(&self.no_api), &repo.host, api_absence_live).is_some()
    }

    /// The referrers API, every page (at most `max_pages`); `NotFound` when
    /// the registry has no such API (404), which is remembered
    /// ([`Distribution::lacks_referrers_api`]).
    pub(crate) async fn referrers(
        &self,
        repo: &Repo,
        digest: &str,
        max_pages: usize,
    ) -> Result<Vec<Vec<u8>>, Failure> {
        let what = format!("referrers of {}@{digest}", repo.name());
        let mut pages = Vec::new();
        let mut url = self.url(repo, &format!("referrers/{digest}"));
        loop {
            let response = match self
                .send(repo, Method::GET, &url, &[OCI_INDEX], &what)
                .await
            {
                Err(Failure::NotFound(text)) if pages.is_empty() => {
                    remember(
                        &mut lock(&self.no_api),
                        repo.host.clone(),
                        Instant::now(),
                        api_absence_live,
                    );
                    return Err(Failure::NotFound(text));
                }
                other => other?,
            };
            let next = next_link(&response, &url);
            pages.push(read(response, MAX_MANIFEST, &what).await?);
            match next {
                Some(n) if pages.len() < max_pages => url = n,
                Some(_) => {
                    return Err(Failure::Error(format!(
                        "{what}: more than {max_pages} pages"
                    )))
                }
                None => return Ok(pages),
            }
        }
    }

    /// GET a blob of at most `max` bytes (`size` as the descriptor says); its
    /// digest is checked.
    pub(crate) async fn blob(
        &self,
        repo: &Repo,
        digest: &str,
        size: u64,
        max: usize,
    ) -> Result<Vec<u8>, Failure> {
        let what = format!("blob {}@{digest}", repo.name());
        if size > max as u64 {
            return Err(Failure::Error(format!(
                "{what}: {size} bytes, more than the {max} allowed"
            )));
        }
        let bytes = self
            .get(repo, &format!("blobs/{digest}"), &[], max, &what)
            .await?;
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if actual != digest {
            return Err(Failure::Error(format!(
                "{what}: the registry served content with digest {actual}"
            )));
        }
        Ok(bytes)
    }

    async fn get(
        &self,
        repo: &Repo,
        path: &str,
        accept: &[&str],
        max: usize,
        what: &str,
    ) -> Result<Vec<u8>, Failure> {
        let url = self.url(repo, path);
        let response = self.send(repo, Method::GET, &url, accept, what).await?;
        read(response, max, what).await
    }

    /// Sends with what is known about the repository's authentication;
    /// learns it from a 401 and retries once.
    async fn send(
        &self,
        repo: &Repo,
        method: Method,
        url: &str,
        accept: &[&str],
        what: &str,
    ) -> Result<reqwest::Response, Failure> {
        let key = AuthKey {
            host: repo.host.clone(),
            repository: repo.repository.clone(),
            credential: repo.credential.clone(),
        };
        let known = self.known(&key, repo);
        let response = self
            .request(method.clone(), url, accept, known.as_ref(), what)
            .await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return status(response, what).await;
        }
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let learnt = self
            .learn(&key, repo, known.as_ref(), &challenge, what)
            .await?;
        let response = self
            .request(method, url, accept, Some(&learnt.header), what)
            .await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(Failure::Error(format!(
                "{what}: 401 Unauthorized{}",
                match &repo.credential {
                    None => format!(
                        " (no credentials configured for {}: use a docker config or an image credential)",
                        repo.registry
                    ),
                    Some(_) => format!(" (the credentials configured for {} were rejected)", repo.name()),
                }
            )));
        }
        status(response, what).await
    }

    /// A header to send right away: a configured bearer token, or one learnt
    /// and not expired.
    fn known(&self, key: &AuthKey, repo: &Repo) -> Option<HeaderValue> {
        if let Some(Credential::Bearer { token }) = &repo.credential {
            return HeaderValue::from_str(&format!("Bearer {token}")).ok();
        }
        self.learnt(key).map(|l| l.header)
    }

    /// What was learnt for `key`, unless expired.
    fn learnt(&self, key: &AuthKey) -> Option<Learnt> {
        fresh(&mut lock(&self.learnt), key, Learnt::live)
    }

    /// Learns `key`'s authentication from a 401 `challenge` to a request
    /// sent with `sent`. One request per key learns at a time: concurrent
    /// requests refused alike (a check's paths are asked together) wait and
    /// use what the first learnt, so one evaluation fetches one token.
    async fn learn(
        &self,
        key: &AuthKey,
        repo: &Repo,
        sent: Option<&HeaderValue>,
        challenge: &str,
        what: &str,
    ) -> Result<Learnt, Failure> {
        let gate = {
            let mut learning = lock(&self.learning);
            make_room(&mut learning, |g| Arc::strong_count(g) > 1);
            learning.entry(key.clone()).or_default().clone()
        };
        let _turn = gate.lock().await;
        if let Some(l) = self.learnt(key).filter(|l| Some(&l.header) != sent) {
            return Ok(l);
        }
        let learnt = self.authenticate(repo, challenge, what).await?;
        remember(
            &mut lock(&self.learnt),
            key.clone(),
            learnt.clone(),
            Learnt::live,
        );
        Ok(learnt)
    }

    async fn request(
        &self,
        method: Method,
        url: &str,
        accept: &[&str],
        auth: Option<&HeaderValue>,
        what: &str,
    ) -> Result<reqwest::Response, Failure> {
        let mut request = self.client.request(method, url);
        if !accept.is_empty() {
            request = request.header(ACCEPT, accept.join(", "));
        }
        if let Some(auth) = auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        request
            .send()
            .await
            .map_err(|e| Failure::Error(format!("{what}: {}", cause(&e))))
    }

    /// Answers a challenge: `Basic` with the credential, `Bearer` with a
    /// token from the realm.
    async fn authenticate(
        &self,
        repo: &Repo,
        challenge: &str,
        what: &str,
    ) -> Result<Learnt, Failure> {
        let (scheme, params) = parse_challenge(challenge);
        let basic = match &repo.credential {
            Some(Credential::Basic { username, password }) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            _ => None,
        };
        let header = |text: &str| {
            HeaderValue::from_str(text).map_err(|_| {
                Failure::Error(format!("{what}: the credential is not a valid header"))
            })
        };
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => {
                let Some(basic) = basic else {
                    return Err(Failure::Error(format!(
                        "{what}: 401 Unauthorized (no credentials configured for {}: use a docker config or an image credential)",
                        repo.registry
                    )));
                };
                Ok(Learnt {
                    header: header(&basic)?,
                    until: None,
                })
            }
            "bearer" => {
                let realm = params.get("realm").ok_or_else(|| {
                    Failure::Error(format!(
                        "{what}: bearer challenge without realm: {challenge:?}"
                    ))
                })?;
                let scope = params
                    .get("scope")
                    .cloned()
                    .unwrap_or_else(|| format!("repository:{}:pull", repo.repository));
                let mut request = self
                    .client
                    .get(realm.as_str())
                    .query(&[("scope", scope.as_str())]);
                if let Some(service) = params.get("service") {
                    request = request.query(&[("service", service.as_str())]);
                }
                if let Some(basic) = &basic {
                    request = request.header(AUTHORIZATION, header(basic)?);
                }
                let response = request.send().await.map_err(|e| {
                    Failure::Error(format!("{what}: token from {realm}: {}", cause(&e)))
                })?;
                let token_what = format!("{what}: token from {realm}");
                let response = status(response, &token_what).await?;
                let body = read(response, 1 << 20, &token_what).await?;
                #[derive(Deserialize)]
                struct Token {
                    #[serde(default)]
                    token: Option<String>,
                    #[serde(default)]
                    access_token: Option<String>,
                }
                let token: Token = serde_json::from_slice(&body).map_err(|e| {
                    Failure::Error(format!("{token_what}: not a token answer: {e}"))
                })?;
                let token = token.token.or(token.access_token).ok_or_else(|| {
                    Failure::Error(format!("{token_what}: no token in the answer"))
                })?;
                // Renew a little early: the token must still be good on arrival.
                let lifetime = Duration::from_secs(token_expiry(&body).saturating_sub(5));
                Ok(Learnt {
                    header: header(&format!("Bearer {token}"))?,
                    until: Some(Instant::now() + lifetime),
                })
            }
            _ => Err(Failure::Error(format!(
                "{what}: 401 Unauthorized with an unsupported challenge {challenge:?}"
            ))),
        }
    }
}

/// `expires_in` of a token answer; 60 s when absent (the token spec's default).
fn token_expiry(body: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("expires_in").and_then(serde_json::Value::as_u64))
        .unwrap_or(60)
}

/// `Bearer realm="...",service="...",scope="..."` -> scheme and parameters.
fn parse_challenge(challenge: &str) -> (String, HashMap<String, String>) {
    let (scheme, rest) = challenge
        .trim()
        .split_once(' ')
        .unwrap_or((challenge.trim(), ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((name, after)) = rest.split_once('=') else {
            break;
        };
        let name = name
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            },
            None => after.split_once(',').unwrap_or((after, "")),
        };
        params.insert(name, value.to_string());
        rest = after.trim().trim_start_matches(',').trim();
    }
    (scheme.to_string(), params)
}

/// A success, or the status as a failure (404 separately).
async fn status(response: reqwest::Response, what: &str) -> Result<reqwest::Response, Failure> {
    let code = response.status();
    if code.is_success() {
        return Ok(response);
    }
    let body = response.bytes().await.unwrap_or_default();
    let detail = registry_error(&body);
    let text = format!("{what}: {code}{detail}");
    Err(if code == StatusCode::NOT_FOUND {
        Failure::NotFound(text)
    } else {
        Failure::Error(text)
    })
}

/// ` MANIFEST_UNKNOWN: manifest unknown` from an OCI error envelope, or nothing.
fn registry_error(body: &[u8]) -> String {
    let envelope: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let first = envelope.pointer("/errors/0");
    let code = first
        .and_then(|e| e.get("code"))
        .and_then(serde_json::Value::as_str);
    let message = first
        .and_then(|e| e.get("message"))
        .and_then(serde_json::Value::as_str);
    match (code, message) {
        (Some(c), Some(m)) => format!(" {c}: {m}"),
        (Some(c), None) => format!(" {c}"),
        _ => String::new(),
    }
}

/// The body, at most `max` bytes.
async fn read(mut response: reqwest::Response, max: usize, what: &str) -> Result<Vec<u8>, Failure> {
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(Failure::Error(format!(
            "{what}: larger than the {max} bytes allowed"
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Failure::Error(format!("{what}: {}", cause(&e))))?
    {
        if body.len() + chunk.len() > max {
            return Err(Failure::Error(format!(
                "{what}: larger than the {max} bytes allowed"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `Link: </v2/...?last=x>; rel="next"`, resolved against `base`.
fn next_link(response: &reqwest::Response, base: &str) -> Option<String> {
    let link = response
        .headers()
        .get(reqwest::header::LINK)?
        .to_str()
        .ok()?;
    let target = link
        .split(',')
        .find(|l| l.contains("rel=\"next\"") || l.contains("rel=next"))?;
    let target = target
        .split(';')
        .next()?
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    url::Url::parse(base)
        .ok()?
        .join(target)
        .ok()
        .map(String::from)
}

/// A reqwest error with its causes (its own text omits them).
fn cause(error: &reqwest::Error) -> String {
    super::image::error_chain(error)
}

/// Whether a remembered API absence still holds.
fn api_absence_live(at: &Instant) -> bool {
    at.elapsed() < NO_API_TTL
}

/// The entry for `key` while it is `live`; one that is not is dropped.
fn fresh<K: Eq + Hash, V: Clone>(
    map: &mut HashMap<K, V>,
    key: &K,
    live: impl Fn(&V) -> bool,
) -> Option<V> {
    match map.get(key) {
        Some(v) if live(v) => Some(v.clone()),
        Some(_) => {
            map.remove(key);
            None
        }
        None => None,
    }
}

/// Inserts into a bounded memory, making room first ([`make_room`]).
fn remember<K: Eq + Hash, V>(map: &mut HashMap<K, V>, key: K, value: V, live: impl Fn(&V) -> bool) {
    make_room(map, live);
    map.insert(key, value);
}

/// Before an insert: drops entries no longer `live` when the map is full,
/// and everything if that is not enough (a full map of live entries means
/// requests are naming registries faster than they expire).
fn make_room<K, V>(map: &mut HashMap<K, V>, live: impl Fn(&V) -> bool) {
    if map.len() >= MAX_REMEMBERED {
        map.retain(|_, v| live(v));
        if map.len() >= MAX_REMEMBERED {
            map.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_parsed() {
        let (scheme, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        );
        assert_eq!(scheme, "Bearer");
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/nginx:pull");
        let (scheme, p) = parse_challenge(r#"Basic realm="imagegate-test""#);
        assert_eq!(
            (scheme.as_str(), p["realm"].as_str()),
            ("Basic", "imagegate-test")
        );
        let (_, p) = parse_challenge("Bearer realm=https://x/token, service=reg");
        assert_eq!(
            (p["realm"].as_str(), p["service"].as_str()),
            ("https://x/token", "reg")
        );
    }

    #[test]
    fn error_envelopes_and_token_lifetimes() {
        assert_eq!(
            registry_error(
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
            ),
            " MANIFEST_UNKNOWN: manifest unknown"
        );
        assert_eq!(registry_error(b"404 page not found"), "");
        assert_eq!(token_expiry(br#"{"token":"t","expires_in":300}"#), 300);
        assert_eq!(token_expiry(br#"{"token":"t"}"#), 60);
    }

    #[test]
    fn memories_stay_bounded_and_keep_live_entries() {
        let mut map: HashMap<usize, bool> = (0..MAX_REMEMBERED).map(|i| (i, i == 7)).collect();
        make_room(&mut map, |live| *live);
        assert_eq!(
            map.into_keys().collect::<Vec<_>>(),
            [7],
            "expired ones go first"
        );
        let mut map: HashMap<usize, bool> = (0..MAX_REMEMBERED).map(|i| (i, true)).collect();
        make_room(&mut map, |live| *live);
        assert!(map.is_empty(), "all live: cleared rather than grown");
        let mut map: HashMap<usize, bool> = (0..10).map(|i| (i, false)).collect();
        make_room(&mut map, |live| *live);
        assert_eq!(map.len(), 10, "below the bound nothing is dropped");
    }
}
