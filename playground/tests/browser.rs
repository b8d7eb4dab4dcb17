//! The playground in a real browser: Debian's chromium, headless, driven
//! through chromedriver's WebDriver HTTP API. The page is served from
//! 127.0.0.1 (ES modules and wasm need HTTP); settings and a workload are
//! typed into the textareas, the button is clicked, and the per-image table
//! and the host-call list are read back.
//!
//! Needs the built site (`make playground`, path in
//! `IMAGEGATE_PLAYGROUND_SITE`) and `chromium` + `chromedriver`
//! (`scripts/deps.sh`), so it is ignored by default; `make playground-test`
//! runs it.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};

/// A static file server for the site directory on 127.0.0.1:0.
struct Site {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Site {
    fn serve(root: PathBuf) -> Site {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    return;
                }
                // One thread per connection: the browser opens speculative
                // connections that may never send a request.
                if let Ok(stream) = stream {
                    let root = root.clone();
                    std::thread::spawn(move || {
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                        let _ = answer_file(&root, stream);
                    });
                }
            }
        });
        Site {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer_file(root: &Path, mut stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let path = path
        .split('?')
        .next()
        .unwrap_or("/")
        .trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    let relative = Path::new(path);
    let safe = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    let file = root.join(relative);
    let (status, body, kind) = match std::fs::read(&file) {
        Ok(body) if safe => {
            let kind = match file.extension().and_then(|e| e.to_str()) {
                Some("html") => "text/html; charset=utf-8",
                Some("js") => "text/javascript",
                Some("wasm") => "application/wasm",
                _ => "application/octet-stream",
            };
            ("200 OK", body, kind)
        }
        _ => ("404 Not Found", b"not found".to_vec(), "text/plain"),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(&body)
}

/// chromedriver on a free port, killed on drop (after the session ends).
struct Driver {
    port: u16,
    child: Child,
    session: Option<String>,
    _profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver not found: run scripts/deps.sh playground");
        let profile = tempfile::tempdir().unwrap();
        let mut driver = Driver {
            port,
            child,
            session: None,
            _profile: profile,
        };
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok()
                && driver.call("GET", "/status", None)["ready"] == true
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
        ];
        args.push(format!(
            "--user-data-dir={}",
            driver._profile.path().display()
        ));
        let mut options = json!({ "args": args });
        if let Some(binary) = std::env::var_os("CHROME_BIN") {
            options["binary"] = json!(binary.to_string_lossy());
        }
        let session = driver.call(
            "POST",
            "/session",
            Some(json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": options
            }}})),
        );
        let id = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {session}"))
            .to_string();
        driver.session = Some(id);
        driver
    }

    /// One WebDriver command; returns its `value`.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .unwrap();
        // chromedriver announces `Connection: close` but keeps the socket
        // open: read exactly Content-Length bytes.
        let mut reader = BufReader::new(stream);
        let mut content_length = 0;
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.trim().parse().unwrap();
                }
            }
            head.push_str(&line);
        }
        let mut payload = vec![0; content_length];
        reader.read_exact(&mut payload).unwrap();
        let payload = String::from_utf8_lossy(&payload);
        let text = format!("{head}{payload}");
        let value: Value = serde_json::from_str(&payload)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}: {text}"));
        value["value"].clone()
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let id = self.session.as_deref().unwrap_or_default();
        let value = self.call(method, &format!("/session/{id}{path}"), body);
        if let Some(error) = value.get("error") {
            panic!("WebDriver {method} {path}: {error}: {}", value["message"]);
        }
        value
    }

    fn element(&self, css: &str) -> String {
        let found = self.session_call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.session_call("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.session_call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn click(&self, css: &str) {
        let id = self.element(css);
        self.session_call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    fn script(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Polls `script` until it returns something other than null/false.
    fn wait_for(&self, script: &str) -> Value {
        for _ in 0..400 {
            let v = self.script(script);
            if !v.is_null() && v != false {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("never true: {script}");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(id) = self.session.take() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.call("DELETE", &format!("/session/{id}"), None)
            }));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SETTINGS: &str = "keys:
  release:
    cosign: |
      -----BEGIN PUBLIC KEY-----
      MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEfO3FxSBVkevcBa7cZ1yspaIy+Hx/
      DAwa3/xM0ixlQjq0FRI10TvZUvGa4HqSUjkSt8EHeR560w7vLf7DRhwSiA==
      -----END PUBLIC KEY-----
rules:
  - name: corporate
    images: [\"registry.corp.example/**\"]
    tags: {deny: [\"latest\"]}
    message: \"pin a release\"
  - name: signed
    images: [\"ghcr.io/signed/**\"]
    verify: {anyOf: [{cosign: {keys: [release]}}]}
";

const WORKLOAD: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: shop, namespace: team-a}
spec:
  template:
    spec:
      containers:
        - {name: web, image: \"registry.corp.example/shop/web:2.1\"}
        - {name: debug, image: \"registry.corp.example/shop/web:latest\"}
        - {name: tool, image: \"ghcr.io/signed/tool:1\"}
";

const TABLE: &str = "return [...document.querySelectorAll(arguments[0] + ' tbody tr')].map(r => [...r.cells].map(c => c.textContent))";

fn rows(driver: &Driver, table: &str) -> Vec<Vec<String>> {
    let v = driver.session_call(
        "POST",
        "/execute/sync",
        Some(json!({"script": TABLE, "args": [table]})),
    );
    serde_json::from_value(v).unwrap()
}

#[test]
#[ignore = "needs `make playground` and chromium + chromedriver; run by `make playground-test`"]
fn decisions_per_image_in_headless_chromium() {
    let site = std::env::var_os("IMAGEGATE_PLAYGROUND_SITE")
        .map(PathBuf::from)
        .expect("IMAGEGATE_PLAYGROUND_SITE: the directory `make playground` builds");
    assert!(
        site.join("pkg/imagegate_playground_bg.wasm").exists(),
        "{} has no pkg/: run `make playground`",
        site.display()
    );
    let server = Site::serve(site);
    let driver = Driver::start();
    driver.session_call(
        "POST",
        "/url",
        Some(json!({"url": format!("http://127.0.0.1:{}/index.html", server.port)})),
    );
    driver.wait_for("return document.getElementById('status').textContent === 'Ready.'");

    driver.type_into("#settings", SETTINGS);
    driver.type_into("#workload", WORKLOAD);
    driver.click("#evaluate");
    driver.wait_for("return !document.getElementById('result').hidden");

    let verdict = driver.script("return document.getElementById('verdict').textContent");
    assert_eq!(verdict, "Rejected");
    let images = rows(&driver, "#images");
    assert_eq!(images.len(), 3, "{images:?}");
    // container, image, normalized, decision, rule, reason, pinned
    assert_eq!(images[0][0], "container \"web\"");
    assert_eq!(images[0][3], "allowed");
    assert_eq!(images[0][4], "corporate");
    assert_eq!(images[1][1], "registry.corp.example/shop/web:latest");
    assert_eq!(images[1][3], "denied");
    assert_eq!(images[1][4], "corporate");
    assert!(
        images[1][5].contains("latest") && images[1][5].contains("pin a release"),
        "{images:?}"
    );
    assert_eq!(images[2][3], "denied");
    assert_eq!(images[2][4], "signed");
    assert!(
        images[2][5].contains("not evaluated in the playground"),
        "{images:?}"
    );
    let calls = rows(&driver, "#host-calls");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0][0], "oci/v2/verify");
    let payload: Value = serde_json::from_str(&calls[0][1]).unwrap();
    assert_eq!(payload["image"], "ghcr.io/signed/tool:1");
    assert_eq!(payload["type"], "SigstorePubKeyVerify");

    // A settings mistake is shown with the path of the bad field.
    driver.type_into(
        "#settings",
        "rules:\n  - name: x\n    images: [\"*\"]\n    action: alow\n",
    );
    driver.click("#evaluate");
    let status = driver.wait_for(
        "const s = document.getElementById('status').textContent; return s.startsWith('Settings error') ? s : null",
    );
    assert!(
        status
            .as_str()
            .unwrap()
            .starts_with("Settings error: rules[0].action"),
        "{status}"
    );
    let hidden = driver.script("return document.getElementById('result').hidden");
    assert_eq!(hidden, true);
}
