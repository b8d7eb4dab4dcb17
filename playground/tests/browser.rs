//! The playground in a real browser: Debian's chromium, headless, at a
//! laptop's 1366x768, driven through chromedriver's WebDriver HTTP API. The
//! page is served from 127.0.0.1 (ES modules and wasm need HTTP). The test
//! goes through every gallery example (each must show the decisions its
//! `example.yaml` expects, without horizontal scrolling), toggles simulated
//! host answers, restores a share link (plain and compressed) in a fresh
//! page, types a settings mistake, tabs through the controls, checks the
//! page loads nothing from elsewhere and may send nothing, and saves a
//! screenshot that must be a real picture (`IMAGEGATE_PLAYGROUND_SCREENSHOT`).
//!
//! Needs the built site (`make playground`, path in
//! `IMAGEGATE_PLAYGROUND_SITE`) and `chromium` + `chromedriver`
//! (`scripts/deps.sh playground-test`), so it is ignored by default;
//! `make playground-test` runs it.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A laptop screen.
const WIDTH: u32 = 1366;
const HEIGHT: u32 = 768;

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
                Some("css") => "text/css",
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
            "--disable-quic".into(),
            format!("--window-size={WIDTH},{HEIGHT}"),
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
        self.script_with(script, json!([]))
    }

    fn script_with(&self, script: &str, args: Value) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    fn open(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Presses and releases one key (WebDriver key code, e.g. Tab `\u{E004}`).
    fn press(&self, key: &str) {
        self.session_call(
            "POST",
            "/actions",
            Some(
                json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                    {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}
                ]}]}),
            ),
        );
    }

    /// The viewport as PNG bytes.
    fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let data = self.session_call("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("screenshot is base64 text"))
            .expect("screenshot base64")
    }

    /// Polls `script` until it returns something other than null/false.
    fn wait_for(&self, script: &str) -> Value {
        self.wait_for_with(script, json!([]))
    }

    fn wait_for_with(&self, script: &str, args: Value) -> Value {
        for _ in 0..400 {
            let v = self.script_with(script, args.clone());
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

/// The gallery as the repository has it: `(id, expect)` per example, in order.
fn gallery() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("gallery");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.iter()
        .map(|d| {
            let name = d.file_name().unwrap().to_string_lossy().into_owned();
            let id = name.split_once('-').unwrap().1.to_string();
            let meta: Value =
                serde_yaml_ng::from_str(&std::fs::read_to_string(d.join("example.yaml")).unwrap())
                    .unwrap();
            (id, meta["expect"].clone())
        })
        .collect()
}

const ROWS: &str = "return [...document.querySelectorAll('#images tbody tr')].map(r => [...r.cells].map(c => c.textContent))";

/// The per-image table: object, container, image, normalized, decision, rule, reason, pin.
fn rows(driver: &Driver) -> Vec<Vec<String>> {
    serde_json::from_value(driver.script(ROWS)).unwrap()
}

fn text(driver: &Driver, id: &str) -> String {
    driver
        .script_with(
            "return document.getElementById(arguments[0]).textContent",
            json!([id]),
        )
        .as_str()
        .unwrap()
        .to_string()
}

fn choose_example(driver: &Driver, id: &str) {
    driver.click(&format!("#example option[value=\"{id}\"]"));
    driver.wait_for(&format!(
        "return document.getElementById('example').value === '{id}' && !document.getElementById('result').hidden"
    ));
}

fn open_site(driver: &Driver, url: &str) {
    driver.open("about:blank");
    driver.open(url);
    driver.wait_for("return document.documentElement.dataset.ready === 'true'");
}

/// The legends of the simulated host's calls, in order.
fn calls(driver: &Driver) -> Vec<String> {
    serde_json::from_value(driver.script(
        "return [...document.querySelectorAll('#answers fieldset legend')].map(l => l.firstChild.textContent)",
    ))
    .unwrap()
}

/// Not one flat colour: a page with text, a table and controls has many.
fn check_picture(png_bytes: &[u8]) -> (u32, u32) {
    let decoder = png::Decoder::new(png_bytes);
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).expect("PNG image data");
    let step = frame.color_type.samples();
    let mut counts = std::collections::HashMap::new();
    for px in pixels[..frame.buffer_size()].chunks(step) {
        *counts.entry(px.to_vec()).or_insert(0usize) += 1;
    }
    let total = (frame.width * frame.height) as usize;
    let commonest = counts.values().max().copied().unwrap_or(0);
    assert!(
        counts.len() > 50 && commonest < total * 95 / 100,
        "the screenshot is (nearly) one colour: {} colours, the commonest on {commonest} of {total} pixels",
        counts.len()
    );
    (frame.width, frame.height)
}

#[test]
#[ignore = "needs `make playground` and chromium + chromedriver; run by `make playground-test`"]
fn gallery_toggles_share_links_and_keyboard_in_headless_chromium() {
    let site = std::env::var_os("IMAGEGATE_PLAYGROUND_SITE")
        .map(PathBuf::from)
        .expect("IMAGEGATE_PLAYGROUND_SITE: the directory `make playground` builds");
    assert!(
        site.join("pkg/imagegate_playground_bg.wasm").exists(),
        "{} has no pkg/: run `make playground`",
        site.display()
    );
    let server = Site::serve(site.clone());
    let driver = Driver::start();
    let page = format!("http://127.0.0.1:{}/index.html", server.port);
    open_site(&driver, &page);
    let viewport = driver.script("return [window.innerWidth, window.innerHeight]");
    assert_eq!(viewport[0], WIDTH, "{viewport}");

    // Nothing from elsewhere: every resource the page loaded is the site's
    // own, and its Content-Security-Policy makes the browser refuse to send
    // anything to another origin.
    let foreign = driver.script(
        "return performance.getEntriesByType('resource').map(e => e.name).filter(n => new URL(n).origin !== location.origin)",
    );
    assert_eq!(foreign, json!([]), "loaded from elsewhere");
    let refused = driver.script(
        "return new Promise(done => {
           document.addEventListener('securitypolicyviolation', e => done(e.effectiveDirective), {once: true});
           setTimeout(() => done(null), 3000);
           fetch('http://127.0.0.2:9/').catch(() => {});
         })",
    );
    assert_eq!(
        refused, "connect-src",
        "the page may send to another origin"
    );

    // The gallery: every example, in order, the first one shown on arrival.
    let examples = gallery();
    let ids: Vec<&str> = examples.iter().map(|(id, _)| id.as_str()).collect();
    let options = driver.script(
        "return [...document.querySelectorAll('#example option')].map(o => o.value).filter(Boolean)",
    );
    assert_eq!(options, json!(ids));
    assert_eq!(
        driver.script("return document.getElementById('example').value"),
        ids[0]
    );
    for (id, expect) in &examples {
        choose_example(&driver, id);
        let table = rows(&driver);
        let decisions: Vec<&str> = table.iter().map(|r| r[4].as_str()).collect();
        assert_eq!(json!(decisions), expect["decisions"], "{id}: {table:?}");
        let verdict = text(&driver, "verdict");
        let admitted = expect["allowed"] == true;
        assert!(
            verdict.starts_with(if admitted { "Admitted" } else { "Rejected" }),
            "{id}: {verdict}"
        );
        let patch = text(&driver, "patch");
        assert_eq!(
            !patch.starts_with("(none"),
            expect["patch"] == true,
            "{id}: {patch}"
        );
        assert!(
            table.iter().all(|r| !r[0].is_empty() && !r[2].is_empty()),
            "{id}: {table:?}"
        );
        // Readable on a laptop: nothing wider than the window.
        let overflow = driver.script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
        );
        assert_eq!(overflow, 0, "{id}: horizontal scrolling");
    }

    // Simulated host answers: the signed example's cosign check of web.
    choose_example(&driver, "signed");
    let before = calls(&driver);
    assert_eq!(
        before[0], r#"cosign key "release" of registry.corp.example/shop/web:2.1"#,
        "{before:?}"
    );
    assert!(rows(&driver)[0][7].starts_with("sha256:"), "pinned");
    driver.click("#answers fieldset:nth-of-type(1) input[value=invalid]");
    // anyOf: the GitHub Actions check is asked next, and passes.
    driver.wait_for(&format!(
        "return document.querySelectorAll('#answers fieldset').length > {}",
        before.len()
    ));
    let after = calls(&driver);
    assert_eq!(
        after[1], "GitHub Actions corp/app of registry.corp.example/shop/web:2.1",
        "{after:?}"
    );
    assert_eq!(rows(&driver)[0][4], "allowed");
    driver.click("#answers fieldset:nth-of-type(2) input[value=unreachable]");
    driver.wait_for(
        "return document.querySelector('#images tbody tr').dataset.decision === 'denied'",
    );
    let web = &rows(&driver)[0];
    assert!(
        web[6].contains("missing signatures for registry.corp.example/shop/web:2.1 (simulated)")
            && web[6].contains("registry unreachable (simulated)")
            && web[6].contains("sign it in the release pipeline"),
        "{web:?}"
    );
    assert!(text(&driver, "verdict").starts_with("Rejected"));
    assert!(text(&driver, "patch").starts_with("(none"));
    // The example stays selected: only answers changed.
    assert_eq!(
        driver.script("return document.getElementById('example').value"),
        "signed"
    );

    // The share link restores the whole state in a fresh page.
    driver.click("#share");
    driver.wait_for("return document.getElementById('share-status').textContent !== ''");
    let link = driver
        .script("return document.getElementById('share-link').value")
        .as_str()
        .unwrap()
        .to_string();
    assert!(link.starts_with(&format!("{page}#")), "{link}");
    let settings = driver.script("return document.getElementById('settings').value");
    open_site(&driver, &link);
    assert_eq!(
        driver.script("return document.getElementById('settings').value"),
        settings
    );
    assert_eq!(
        driver.script("return document.getElementById('example').value"),
        "signed"
    );
    let checked = driver.script(
        "return [...document.querySelectorAll('#answers input[type=radio]:checked')].map(r => r.value)",
    );
    assert_eq!(checked, json!(["invalid", "unreachable", "valid"]));
    assert_eq!(rows(&driver)[0][4], "denied");

    // A large state goes compressed (this one already is), and comes back exactly.
    let before = driver.script("return location.hash");
    assert!(before.as_str().unwrap().starts_with("#z="), "{before}");
    let long = driver.script(
        "const s = document.getElementById('settings');
         s.value += '\\n# ' + Array.from({length: 400}, (_, i) => 'note ' + i).join(', ') + '\\n';
         s.dispatchEvent(new Event('input'));
         return s.value",
    );
    driver.wait_for_with(
        "return location.hash !== arguments[0] && document.getElementById('share-link').value === location.href",
        json!([before]),
    );
    let link = driver
        .script("return location.href")
        .as_str()
        .unwrap()
        .to_string();
    let plain = long.as_str().unwrap().len();
    assert!(link.len() < plain, "{} >= {plain}", link.len());
    open_site(&driver, &link);
    assert_eq!(
        driver.script("return document.getElementById('settings').value"),
        long
    );
    assert_eq!(rows(&driver)[0][4], "denied", "answers restored too");

    // A settings mistake, typed: shown next to the settings, with its path.
    let mistake = "rules:\n  - name: x\n    images: [\"*\"]\n    action: alow\n";
    driver.type_into("#settings", mistake);
    let error = "const c = document.querySelector('#settings-errors code'); return c && c.textContent === 'rules[0].action'";
    driver.wait_for(error);
    assert_eq!(
        driver.script("return document.getElementById('settings').getAttribute('aria-invalid')"),
        "true"
    );
    assert_eq!(
        driver.script("return document.getElementById('result').hidden"),
        true
    );
    // A small state goes plain, and comes back with its mistake.
    driver.wait_for_with(
        "return document.getElementById('settings').value === arguments[0] && location.hash.startsWith('#s=')",
        json!([mistake]),
    );
    let link = driver
        .script("return location.href")
        .as_str()
        .unwrap()
        .to_string();
    open_site(&driver, &link);
    driver.wait_for(error);

    // By keyboard: the controls in reading order, focus visible.
    open_site(&driver, &page);
    driver.script("document.activeElement.blur()");
    let mut order = Vec::new();
    for _ in 0..6 {
        driver.press("\u{E004}");
        order.push(driver.script(
            "const e = document.activeElement; return e.closest('#answers') ? e.type + ' in answers' : e.id",
        ));
        let outline = driver.script("return getComputedStyle(document.activeElement).outlineStyle");
        assert_eq!(
            outline,
            "solid",
            "no visible focus on {}",
            order.last().unwrap()
        );
    }
    assert_eq!(
        json!(order),
        json!([
            "example",
            "share",
            "share-link",
            "settings",
            "workload",
            "radio in answers"
        ])
    );

    // The page as a laptop shows it on arrival: the decision in view, so
    // typing in either input shows its effect without scrolling.
    open_site(&driver, &page);
    let verdict_bottom = driver.script(
        "return document.getElementById('verdict').getBoundingClientRect().bottom <= window.innerHeight",
    );
    assert_eq!(verdict_bottom, true, "the decision is below the fold");
    let shot = driver.screenshot();
    let (width, height) = check_picture(&shot);
    // The window is 1366x768; the page gets what is left under the browser's bars.
    assert_eq!(json!([width, height]), viewport);
    let path = std::env::var_os("IMAGEGATE_PLAYGROUND_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| site.join("screenshot.png"));
    std::fs::write(&path, &shot).unwrap();
    println!("screenshot: {}", path.display());
}
