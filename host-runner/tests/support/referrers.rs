//! The OCI referrers API in front of a lab registry. Debian's docker-registry
//! 2.8 has only the referrers tag schema; this front answers
//! `GET /v2/<repo>/referrers/<digest>` from that tag's index, `page` entries
//! per page with `Link: <...>; rel="next"` as the distribution spec pages,
//! an empty index when there is no tag (the API exists, nothing refers), and
//! passes every other request through unchanged. It logs what it was asked:
//! the round trips a client made.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

use super::http::{reply, Reply, Server};
use super::registry::Registry;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Response headers a distribution client reads.
const PASSED_HEADERS: [&str; 4] = [
    "content-type",
    "docker-content-digest",
    "www-authenticate",
    "location",
];

/// A running front. Stopped when dropped.
pub struct ReferrersFront {
    /// `127.0.0.1:<port>`, as it appears in image references.
    pub addr: String,
    log: Arc<Mutex<Vec<String>>>,
    _server: Server,
}

struct Shared {
    backend: String,
    page: usize,
    client: reqwest::Client,
    log: Arc<Mutex<Vec<String>>>,
}

impl ReferrersFront {
    /// A front for the plain-http `registry`, `page` referrers per page.
    pub fn start(registry: &Registry, page: usize) -> ReferrersFront {
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Shared {
            backend: format!("http://{}", registry.addr),
            page: page.max(1),
            client: reqwest::Client::new(),
            log: log.clone(),
        });
        let server = Server::start(move |req| {
            let shared = shared.clone();
            async move { shared.answer(req).await }
        });
        ReferrersFront {
            addr: server.addr.clone(),
            log,
            _server: server,
        }
    }

    /// `addr/repo:tag`
    pub fn image(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.addr)
    }

    /// Every request received so far (`GET /v2/...?query`), in order.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Shared {
    async fn answer(&self, req: Request<Incoming>) -> Reply {
        let target = req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default();
        self.log
            .lock()
            .unwrap()
            .push(format!("{} {target}", req.method()));
        let path = req.uri().path();
        match path
            .strip_prefix("/v2/")
            .and_then(|p| p.split_once("/referrers/"))
        {
            Some((repo, digest)) if req.method() == hyper::Method::GET => {
                let page = req
                    .uri()
                    .query()
                    .and_then(|q| q.strip_prefix("page="))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                self.referrers(repo, digest, page).await
            }
            _ => self.pass(&req, &target).await,
        }
    }

    /// One page of the referrers of `repo@digest`, read from its tag.
    async fn referrers(&self, repo: &str, digest: &str, page: usize) -> Reply {
        let tag = digest.replacen(':', "-", 1);
        let index = self
            .client
            .get(format!("{}/v2/{repo}/manifests/{tag}", self.backend))
            .header("accept", OCI_INDEX)
            .send()
            .await
            .expect("the lab registry answers");
        let entries: Vec<Value> = if index.status().is_success() {
            let index: Value = index.json().await.expect("the tag holds an index");
            index["manifests"].as_array().cloned().unwrap_or_default()
        } else {
            Vec::new()
        };
        let start = (page * self.page).min(entries.len());
        let end = (start + self.page).min(entries.len());
        let body = json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
                          "manifests": entries[start..end]})
        .to_string()
        .into_bytes();
        let mut headers = vec![("content-type", OCI_INDEX.to_string())];
        if end < entries.len() {
            headers.push((
                "link",
                format!(
                    "</v2/{repo}/referrers/{digest}?page={}>; rel=\"next\"",
                    page + 1
                ),
            ));
        }
        reply(StatusCode::OK, &headers, body)
    }

    /// Any other request, to the registry and back.
    async fn pass(&self, req: &Request<Incoming>, target: &str) -> Reply {
        let mut forward = self
            .client
            .request(req.method().clone(), format!("{}{target}", self.backend));
        for name in ["accept", "authorization"] {
            for value in req.headers().get_all(name) {
                forward = forward.header(name, value.as_bytes());
            }
        }
        let answer = forward.send().await.expect("the lab registry answers");
        let status = answer.status();
        let headers: Vec<(&str, String)> = PASSED_HEADERS
            .iter()
            .filter_map(|name| {
                let value = answer.headers().get(*name)?.to_str().ok()?;
                Some((*name, value.to_string()))
            })
            .collect();
        let body = answer.bytes().await.expect("body").to_vec();
        reply(status, &headers, body)
    }
}
