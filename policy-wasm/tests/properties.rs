//! Property tests of everything that reads untrusted input: settings,
//! admission requests, image strings and host answers.
//!
//! Properties: nothing panics, every input is answered (a rejection always
//! says why), a normalized image re-parses to itself, whatever the host
//! answers, an image is never admitted by a `verify` rule unless a
//! verification of that very image succeeded with a well-formed digest, and
//! the module's fast paths (the payload read in place, a fresh instance
//! compiling only what its images need, a reused instance's kept policy)
//! answer exactly as the plain path (serde, the whole policy) does.
//!
//! Case counts follow proptest's default (256), overridable with
//! `PROPTEST_CASES`: CI runs the default, `make fuzz` runs 100 000+.

use imagegate_policy::decide;
use imagegate_policy::instance::Instance;
use imagegate_policy::pattern::Pattern;
use imagegate_policy::reference::Reference;
use imagegate_policy::settings::Policy;
use imagegate_policy::testing::{Request, ScriptedHost, D1, D2, KEY};
use imagegate_policy::wire::{AdmissionRequest, ValidationRequest, ValidationResponse};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

// ---------------------------------------------------------------- generators

/// Any JSON value, nested a few levels.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::String),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop_oneof![word(), any::<String>()], inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Words the schema and the grammar use, so random documents hit real paths.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("rules"),
        Just("images"),
        Just("name"),
        Just("action"),
        Just("allow"),
        Just("deny"),
        Just("warn"),
        Just("*"),
        Just("**"),
        Just("*.corp.io/**"),
        Just("nginx"),
        Just("ghcr.io/a/b:1"),
        Just("[::1]:5000/**"),
        Just("latest"),
        Just(""),
        Just("verify"),
        Just("anyOf"),
        Just("cosign"),
        Just("keys"),
        Just("k"),
    ]
    .prop_map(String::from)
}

/// Settings-shaped documents: the real field names with values of any type,
/// mostly of the right shape.
fn settings_doc() -> impl Strategy<Value = Value> {
    let pattern = prop_oneof![
        word(),
        image_like(),
        Just("*.corp.io:*/**".to_string()),
        Just("ghcr.*/x".to_string()),
        Just("corp/[abc/x".to_string()),
    ];
    let glob_list = prop::collection::vec(pattern.clone(), 0..4);
    let maybe = |v: BoxedStrategy<Value>| prop_oneof![3 => v, 1 => arb_json()];
    let check = prop_oneof![
        prop::collection::vec(prop_oneof![Just("k".to_string()), word()], 0..3)
            .prop_map(|keys| json!({"cosign": {"keys": keys}})),
        Just(json!({"keyless": {"issuer": "https://i", "subject": "s"}})),
        Just(json!({"keyless": {"issuer": "https://i", "subjectPrefix": "https://github.com/"}})),
        Just(json!({"githubActions": {"owner": "corp"}})),
        Just(json!({"notary": {"server": "https://n:4443", "signers": [{"role": "targets/ci"}]}})),
        arb_json(),
    ];
    let verify = prop_oneof![
        prop::collection::vec(check.clone(), 0..3).prop_map(|c| json!({"anyOf": c})),
        prop::collection::vec(check, 0..3).prop_map(|c| json!({"allOf": c})),
    ];
    let rule = (
        prop_oneof![word(), Just("r".to_string())],
        maybe(glob_list.clone().prop_map(|g| json!(g)).boxed()),
        maybe(prop_oneof![Just(json!("allow")), Just(json!("deny"))].boxed()),
        maybe(any::<i32>().prop_map(|p| json!(p)).boxed()),
        prop::option::of(maybe(
            (glob_list.clone(), any::<bool>())
                .prop_map(|(d, r)| json!({"deny": d, "requireDigest": r}))
                .boxed(),
        )),
        prop::option::of(maybe(verify.boxed())),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(name, images, action, priority, tags, verify, pin)| {
            let mut r =
                json!({"name": name, "images": images, "action": action, "priority": priority});
            if let Some(t) = tags {
                r["tags"] = t;
            }
            if let Some(v) = verify {
                r["verify"] = v;
            }
            if let Some(p) = pin {
                r["pinDigest"] = json!(p);
            }
            r
        });
    (
        prop::collection::vec(rule, 0..4),
        prop::option::of(maybe(glob_list.clone().prop_map(|g| json!(g)).boxed())),
        prop::option::of(maybe(glob_list.prop_map(|g| json!(g)).boxed())),
        prop::option::of(prop_oneof![
            Just(json!("allow")),
            Just(json!("warn")),
            Just(json!("deny")),
            arb_json()
        ]),
        prop::option::of(prop_oneof![
            Just(json!({"k": {"cosign": KEY}})),
            Just(json!({"k": {"cosign": "not a key"}})),
            arb_json()
        ]),
        prop::option::of((word(), arb_json())),
    )
        .prop_map(
            |(rules, exempt_ns, exempt_images, unmatched, keys, extra)| {
                let mut doc = json!({"rules": rules});
                if let Some(v) = exempt_ns {
                    doc["exemptNamespaces"] = v;
                }
                if let Some(v) = exempt_images {
                    doc["exemptImages"] = v;
                }
                if let Some(v) = unmatched {
                    doc["unmatched"] = v;
                }
                if let Some(v) = keys {
                    doc["keys"] = v;
                }
                if let Some((k, v)) = extra {
                    doc[k] = v;
                }
                doc
            },
        )
}

/// Settings whose patterns the images of [`pooled_request`] meet: rules
/// and exemptions from one pool of patterns (hosts shared, overlapping,
/// wildcards), so that compiling only what a request's images match is
/// exercised on rules that do and do not match them.
fn pooled_settings() -> impl Strategy<Value = Value> {
    let pattern = prop::sample::select(vec![
        "ghcr.io/corp/*",
        "ghcr.io/**",
        "*.corp.io/**",
        "a.corp.io/x/*:3",
        "docker.io/*",
        "nginx",
        "nginx:1.*",
        "quay.io/a/**",
        "registry.corp.example:5000/x/**",
        "registry.corp.example:*/**",
        "*",
        "**/y",
        "docker.io/**",
        // Spellings a fresh instance's text filter (`pattern::may_match`)
        // must read as the parser does: case, aliases, ports, globs, digests.
        "*.CORP.io/**",
        "*.corp.io:*/x/**",
        "GHCR.io/corp/*",
        "index.docker.io/library/nginx:*",
        "library/nginx",
        "docker.io/library/nginx@sha256:1111111111111111111111111111111111111111111111111111111111111111",
        "ghcr.io/*/app",
        "*/x/**",
        "registry.corp.example:5000/x/y:*",
        "[::1]:5000/a/**",
    ]);
    let rule = (
        prop::collection::vec(pattern.clone(), 0..4),
        prop::sample::select(vec!["allow", "deny"]),
        -2i64..3,
        any::<bool>(),
    )
        .prop_map(|(images, action, priority, latest)| {
            let mut r =
                json!({"name": "r", "images": images, "action": action, "priority": priority});
            if latest && action == "allow" {
                r["tags"] = json!({"deny": ["latest"]});
            }
            r
        });
    (
        prop::collection::vec(rule, 0..6),
        prop::collection::vec(pattern, 0..2),
        prop::sample::select(vec!["allow", "warn", "deny"]),
    )
        .prop_map(|(mut rules, exempt, unmatched)| {
            for (i, r) in rules.iter_mut().enumerate() {
                r["name"] = json!(format!("r{i}"));
            }
            json!({"rules": rules, "exemptImages": exempt, "unmatched": unmatched})
        })
}

/// A pod of the images [`pooled_settings`] is about.
fn pooled_request() -> impl Strategy<Value = Value> {
    let image = prop::sample::select(vec![
        "nginx",
        "nginx:latest",
        "nginx:1.27",
        "library/nginx:1.2",
        "ghcr.io/corp/app:1",
        "ghcr.io/other/app",
        "GHCR.io/corp/app",
        "a.corp.io/x/y:3",
        "b.a.corp.io/x/y",
        "quay.io/a/b:v1",
        "registry.corp.example:5000/x/y",
        "registry.corp.example/x/y",
        "sha256:abcd",
        "ghcr.io/Corp/app",
        "[0::1]:5000/a/b",
        "index.docker.io/nginx:1.2",
        "nginx@sha256:1111111111111111111111111111111111111111111111111111111111111111",
    ]);
    prop::collection::vec(image, 0..5).prop_map(|images| {
        let images: Vec<String> = images.into_iter().map(String::from).collect();
        let refs: Vec<&str> = images.iter().map(String::as_str).collect();
        Request::pod(&refs).into_json()
    })
}

/// Image-like strings: valid pieces of every kind mixed with the spellings
/// that have caused bypasses elsewhere (case, single-label hosts, ports,
/// IPv6, percent-encoding, look-alikes, whitespace, empty components).
fn image_like() -> impl Strategy<Value = String> {
    let host = prop_oneof![
        Just(""),
        Just("docker.io/"),
        Just("Docker.IO/"),
        Just("index.docker.io/"),
        Just("registry-1.docker.io:443/"),
        Just("docker.io:80/"),
        Just("ghcr.io/"),
        Just("GHCR.io:443/"),
        Just("a.corp.io/"),
        Just("a.corp.io:5000/"),
        Just("localhost/"),
        Just("LocalHost:5000/"),
        Just("Registry/"),
        Just("registry:443/"),
        Just("registry:0443/"),
        Just("registry:5000/"),
        Just("[::1]/"),
        Just("[::1]:443/"),
        Just("[0:0::1]:5000/"),
        Just("[FE80::1]:5000/"),
        Just("[::ffff:1.2.3.4]/"),
        Just("127.0.0.1:5000/"),
        Just("a..b/"),
        Just("%61.io/"),
        Just("іo.io/"),
    ];
    let component = prop_oneof![
        4 => "[a-z0-9]{1,4}([._-][a-z0-9]{1,3})?",
        1 => Just("library".to_string()),
        1 => Just("".to_string()),
        1 => Just("..".to_string()),
        1 => Just(".".to_string()),
        1 => Just("A".to_string()),
        1 => Just("%2F".to_string()),
        1 => Just("а".to_string()),
        1 => Just("a b".to_string()),
        1 => Just("a__b".to_string()),
        1 => Just("a___b".to_string()),
    ];
    let tag = prop_oneof![
        Just(String::new()),
        Just(":latest".to_string()),
        Just(":LATEST".to_string()),
        Just(":1.0".to_string()),
        Just(":".to_string()),
        Just(":-x".to_string()),
        "[:][A-Za-z0-9_.-]{1,6}",
    ];
    let digest = prop_oneof![
        3 => Just(String::new()),
        1 => Just(format!("@{D1}")),
        1 => Just("@sha256:abc".to_string()),
        1 => Just(format!("@{}", D1.to_uppercase())),
    ];
    let tail = prop_oneof![
        8 => Just(""),
        1 => Just(" "),
        1 => Just("\n"),
        1 => Just("\u{200b}"),
    ];
    let reference = (
        host,
        prop::collection::vec(component, 1..4),
        tag,
        digest,
        tail,
    )
        .prop_map(|(h, c, t, d, x)| format!("{h}{}{t}{d}{x}", c.join("/")));
    // What a runtime reads as an image ID, and names that only look like one.
    let id = (
        prop_oneof![
            Just("sha256:"),
            Just("sha384:"),
            Just("sha512:"),
            Just("blake3:"),
            Just("SHA256:"),
            Just("sha1:"),
            Just("")
        ],
        "[0-9a-fA-F]{0,70}",
    )
        .prop_map(|(a, h)| format!("{a}{h}"));
    prop_oneof![8 => reference, 1 => id]
}

/// A pattern, and other spellings of the same pattern (host case, `:443`,
/// Docker Hub aliases and `library/`, IPv6 and port spellings).
fn pattern_spellings() -> impl Strategy<Value = (String, Vec<String>)> {
    let host: [(&str, &[&str]); 7] = [
        (
            "docker.io/",
            &[
                "Docker.IO/",
                "index.docker.io/",
                "registry-1.docker.io/",
                "docker.io:443/",
                "INDEX.DOCKER.IO:0443/",
            ],
        ),
        ("ghcr.io/", &["GHCR.IO/", "ghcr.io:443/", "Ghcr.Io:0443/"]),
        (
            "[::1]:5000/",
            &[
                "[0:0::1]:5000/",
                "[0000:0000:0000:0000:0000:0000:0000:0001]:05000/",
            ],
        ),
        ("*.corp.io/", &["*.CORP.IO/", "*.corp.io:443/"]),
        ("*.corp.io:*/", &["*.Corp.Io:*/"]),
        ("localhost:5000/", &["LOCALHOST:5000/", "LocalHost:05000/"]),
        (
            "registry.corp.io:8443/",
            &["REGISTRY.corp.io:8443/", "registry.corp.io:08443/"],
        ),
    ];
    let component = prop_oneof![
        Just("a"),
        Just("b"),
        Just("*"),
        Just("**"),
        Just("ab"),
        Just("library")
    ];
    let tag = prop_oneof![Just(""), Just(":*"), Just(":latest"), Just(":1.*")];
    (0..host.len(), prop::collection::vec(component, 1..3), tag).prop_map(move |(h, comps, tag)| {
        let (base, others) = host[h];
        let path = comps.join("/");
        let mut spelled: Vec<String> = others.iter().map(|o| format!("{o}{path}{tag}")).collect();
        // A first component with `*` is a host pattern, so only the others can drop the host.
        if base == "docker.io/" && !comps[0].contains('*') {
            // No host at all; `library/` written out for an official image.
            spelled.push(format!("{path}{tag}"));
            if comps.len() == 1 {
                spelled.push(format!("docker.io/library/{path}{tag}"));
            }
        }
        (format!("{base}{path}{tag}"), spelled)
    })
}

/// AdmissionRequest-shaped JSON, well-formed or not.
fn request_doc() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![
        Just(("", "Pod")),
        Just(("apps", "Deployment")),
        Just(("batch", "CronJob")),
        Just(("", "PodTemplate")),
        Just(("", "EphemeralContainers")),
        Just(("example.com", "Deployment")),
        Just(("", "ConfigMap")),
    ];
    let container = (
        prop::option::of(word()),
        prop_oneof![4 => image_like().prop_map(Value::String), 1 => arb_json()],
    )
        .prop_map(|(name, image)| json!({"name": name, "image": image}));
    let list = prop_oneof![
        4 => prop::collection::vec(container, 0..4).prop_map(Value::Array),
        1 => arb_json(),
    ];
    // Volumes: image volumes, other kinds, and anything else.
    let volume = prop_oneof![
        3 => (prop::option::of(word()), prop_oneof![4 => image_like().prop_map(Value::String), 1 => arb_json()])
            .prop_map(|(name, reference)| json!({"name": name, "image": {"reference": reference}})),
        1 => Just(json!({"name": "cache", "emptyDir": {}})),
        1 => arb_json(),
    ];
    let volumes = prop_oneof![
        4 => prop::collection::vec(volume, 0..3).prop_map(Value::Array),
        1 => arb_json(),
    ];
    let spec = (
        list.clone(),
        prop::option::of(list.clone()),
        prop::option::of(list),
        prop::option::of(volumes),
    )
        .prop_map(|(c, i, e, v)| {
            let mut spec = json!({"containers": c});
            if let Some(i) = i {
                spec["initContainers"] = i;
            }
            if let Some(e) = e {
                spec["ephemeralContainers"] = e;
            }
            if let Some(v) = v {
                spec["volumes"] = v;
            }
            spec
        });
    let object =
        (spec, 0..5usize, prop::option::of(arb_json())).prop_map(
            |(spec, shape, meta)| match shape {
                0 => json!({"metadata": meta, "spec": spec}),
                1 => json!({"metadata": meta, "spec": {"template": {"spec": spec}}}),
                2 => json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}),
                3 => json!({"template": {"spec": spec}}),
                _ => spec,
            },
        );
    (
        kind,
        prop_oneof![
            Just("CREATE"),
            Just("UPDATE"),
            Just("DELETE"),
            Just("CONNECT"),
            Just("")
        ],
        prop::option::of(prop_oneof![
            Just("ephemeralcontainers"),
            Just("status"),
            Just("")
        ]),
        prop_oneof![4 => object, 1 => arb_json()],
        prop::option::of(arb_json()),
    )
        .prop_map(|((group, kind), op, sub, object, namespace)| {
            let mut r = json!({
                "uid": "u", "kind": {"group": group, "version": "v1", "kind": kind},
                "resource": {"group": group, "version": "v1", "resource": "x"},
                "operation": op, "userInfo": {"username": "u"}, "object": object,
            });
            if let Some(s) = sub {
                r["subResource"] = json!(s);
            }
            if let Some(n) = namespace {
                r["namespace"] = n;
            }
            r
        })
}

/// Raw `validate` payloads: well-formed, mangled (truncated, bytes
/// overwritten) or arbitrary bytes.
fn validate_payload() -> impl Strategy<Value = Vec<u8>> {
    let settings = prop_oneof![settings_doc(), arb_json()];
    let good = (request_doc(), settings)
        .prop_map(|(r, s)| serde_json::to_vec(&json!({"request": r, "settings": s})).unwrap())
        .boxed();
    prop_oneof![
        4 => good.clone(),
        1 => (good.clone(), any::<prop::sample::Index>())
            .prop_map(|(b, i)| b[..i.index(b.len() + 1)].to_vec()),
        1 => (good, any::<prop::sample::Index>(), any::<u8>()).prop_map(|(mut b, i, x)| {
            if !b.is_empty() {
                let at = i.index(b.len());
                b[at] = x;
            }
            b
        }),
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ]
}

/// One answer of an adversarial host.
#[derive(Debug, Clone)]
enum Answer {
    Error(String),
    Bytes(Vec<u8>),
    Json(Value),
    /// A valid-looking answer padded to `n` KiB.
    Huge(usize),
    /// An `imagegate/v1/check_*` answer: the resolved digest, one verified
    /// entry's subject, the traced subject.
    Image(Value, Value, Value),
}

fn answer() -> impl Strategy<Value = Answer> {
    let digest = prop_oneof![
        Just(json!(D1)),
        Just(json!(D1)),
        Just(json!(D2)),
        Just(json!("sha256:short")),
        Just(json!(D1.to_uppercase())),
        Just(json!("")),
        Just(json!(format!("{D1}\n"))),
        Just(json!(null)),
        any::<String>().prop_map(Value::String),
    ];
    let trusted = prop_oneof![
        Just(json!(true)),
        Just(json!(false)),
        Just(json!("true")),
        Just(json!(1)),
        Just(json!(null))
    ];
    prop_oneof![
        2 => any::<String>().prop_map(Answer::Error),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Answer::Bytes),
        4 => (trusted, digest.clone(), prop::option::of(word())).prop_map(|(t, d, s)| {
            Answer::Json(json!({"is_trusted": t, "digest": d, "signer": s}))
        }),
        1 => arb_json().prop_map(Answer::Json),
        1 => (1usize..512).prop_map(Answer::Huge),
        1 => Just(Answer::Error("unknown namespace: imagegate".to_string())),
        3 => (digest.clone(), digest.clone(), digest).prop_map(|(d, v, t)| Answer::Image(d, v, t)),
    ]
}

// ------------------------------------------------------------------ the host

/// Normalized image -> digests of its verifications that succeeded with a
/// well-formed answer.
type Verified = Rc<RefCell<BTreeMap<String, BTreeSet<String>>>>;

/// A host answering from `script` (cycled), and what it verified.
fn adversarial_host(script: Vec<Answer>) -> (ScriptedHost, Verified) {
    let verified = Verified::default();
    let record = verified.clone();
    let next = Cell::new(0usize);
    let host = ScriptedHost::raw(move |namespace, operation, payload| {
        let request: Value = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        let answer = if script.is_empty() {
            Answer::Error("empty script".into())
        } else {
            next.set(next.get() + 1);
            script[(next.get() - 1) % script.len()].clone()
        };
        let is_verification = matches!(
            (namespace, operation),
            ("oci", "v2/verify")
                | ("notary", "v1/signed_digest")
                | ("imagegate", "v1/check_signature" | "v1/check_attestation")
        );
        let image = request["image"].as_str().filter(|_| is_verification);
        let vouched = match &answer {
            Answer::Json(v) if v["is_trusted"] == json!(true) => {
                v["digest"].as_str().filter(|d| well_formed_digest(d))
            }
            Answer::Huge(_) => Some(D1),
            // The resolved digest is vouched for when an entry covers it, or
            // (platforms: all) covers every traced platform manifest.
            Answer::Image(d, v, t) if v == d || v == t => {
                d.as_str().filter(|d| well_formed_digest(d))
            }
            _ => None,
        };
        if let (Some(image), Some(digest)) = (image, vouched) {
            record
                .borrow_mut()
                .entry(image.to_string())
                .or_default()
                .insert(digest.to_string());
        }
        match answer {
            Answer::Error(e) => Err(e),
            Answer::Bytes(b) => Ok(b),
            Answer::Json(v) => Ok(serde_json::to_vec(&v).unwrap()),
            Answer::Huge(kib) => Ok(serde_json::to_vec(
                &json!({"is_trusted": true, "digest": D1, "signer": "targets/ci", "padding": "x".repeat(kib * 1024)}),
            )
            .unwrap()),
            Answer::Image(digest, subject, traced) => Ok(serde_json::to_vec(&json!({
                "digest": digest,
                "verified": [{"subject": subject, "identity": 0, "format": "f", "path": "p", "manifest": "m", "signer": "s",
                              "statement": {"subject": [{"digest": {"sha256": subject.as_str().and_then(|s| s.strip_prefix("sha256:"))}}]}}],
                "trace": [{"subject": traced, "paths": []}]
            }))
            .unwrap()),
        }
    });
    (host, verified)
}

/// The digest rule, written independently of the engine's.
fn well_formed_digest(d: &str) -> bool {
    let hex_ok = |h: &str, n: usize| {
        h.len() == n && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    match d.split_once(':') {
        Some(("sha256", h)) => hex_ok(h, 64),
        Some(("sha512", h)) => hex_ok(h, 128),
        _ => false,
    }
}

// ---------------------------------------------------------------- properties

fn answered(r: &ValidationResponse) -> bool {
    r.accepted || r.message.as_deref().is_some_and(|m| !m.is_empty())
}

fn pod(images: &[String]) -> AdmissionRequest {
    let images: Vec<&str> = images.iter().map(String::as_str).collect();
    Request::pod(&images).admission_request()
}

/// Policies whose every image must be verified (cosign with two keys, or
/// Notary), in the digest-handling variants.
fn verifying_policies() -> Vec<Policy> {
    let checks = [
        json!({"anyOf": [{"cosign": {"keys": ["a", "b"]}}]}),
        json!({"anyOf": [{"notary": {"server": "https://n:4443", "signers": [{"role": "targets/ci"}]}}, {"cosign": {"keys": ["a"]}}]}),
        json!({"allOf": [{"cosign": {"keys": ["a"]}}, {"keyless": {"issuer": "https://i", "subject": "s"}}]}),
        json!({"anyOf": [{"githubActions": {"owner": "corp", "platforms": "all"}}]}),
        json!({"anyOf": [{"attestation": {"predicateType": "p", "keys": ["a"],
                          "conditions": [{"path": "subject.digest.sha256", "op": "exists"}]}}]}),
    ];
    let mut out = Vec::new();
    for verify in checks {
        for (pin, mismatch) in [(false, "deny"), (true, "deny"), (true, "rewrite")] {
            let s = json!({"keys": {"a": {"cosign": KEY}, "b": {"cosign": KEY.trim_end()}},
                "rules": [{"name": "signed", "images": ["**"], "verify": verify,
                           "pinDigest": pin, "onDigestMismatch": mismatch}]});
            out.push(Policy::from_json(&s.to_string()).unwrap());
        }
    }
    out
}

proptest! {
    #[test]
    fn settings_never_panic_and_errors_say_why(doc in prop_oneof![arb_json(), settings_doc()]) {
        if let Err(e) = Policy::from_json(&doc.to_string()) {
            prop_assert!(!e.trim().is_empty(), "empty error for {}", doc);
        }
    }

    #[test]
    fn settings_text_never_panics(text in prop_oneof![any::<String>(), "[{}\\[\\]\":,a-z0-9 ]{0,64}"]) {
        if let Err(e) = Policy::from_json(&text) {
            prop_assert!(!e.trim().is_empty());
        }
    }

    /// Schema errors point at the field: a bad value inside a rule names the rule's path.
    #[test]
    fn rule_errors_carry_a_path(i in 0usize..3, bad in prop_oneof![Just(json!(1)), Just(json!({})), Just(json!("sideways"))]) {
        let mut rules = vec![json!({"name":"a","images":["*"]}), json!({"name":"b","images":["*"]}), json!({"name":"c","images":["*"]})];
        rules[i]["action"] = bad;
        let e = Policy::from_json(&json!({"rules": rules}).to_string()).unwrap_err();
        let path = format!("rules[{i}]");
        prop_assert!(e.contains(&path), "{}", e);
    }

    /// The invariant behind the single-label-host finding: what the host is
    /// asked about (the normalized string) is the very image that was parsed.
    #[test]
    fn normalized_form_reparses_to_the_same_image(s in image_like()) {
        if let Ok(r) = Reference::parse(&s) {
            let text = r.to_string();
            prop_assert!(text.bytes().all(|b| b.is_ascii_graphic()), "{:?} -> {:?}", s, text);
            prop_assert_eq!(Reference::parse(&text), Ok(r), "{:?} -> {:?}", s, text);
        }
    }

    /// Every spelling of a pattern is the same pattern: it accepts the same
    /// settings and matches the same images.
    #[test]
    fn pattern_spellings_match_the_same_images(
        (base, spelled) in pattern_spellings(),
        images in prop::collection::vec(prop_oneof![
            image_like(),
            Just("docker.io/library/a:latest".to_string()),
            Just("docker.io/a/b:1.0".to_string()),
            Just("ghcr.io/a/b:latest".to_string()),
            Just("[::1]:5000/a/b:1.2".to_string()),
            Just("x.corp.io/a/b:latest".to_string()),
            Just("x.corp.io:5000/ab:1.0".to_string()),
            Just("localhost:5000/library/a:1.0".to_string()),
            Just("registry.corp.io:8443/a:latest".to_string()),
        ], 1..8),
    ) {
        let want = Pattern::parse(&base);
        for s in &spelled {
            let got = Pattern::parse(s);
            prop_assert_eq!(got.is_ok(), want.is_ok(), "{} vs {}: {:?} / {:?}", s, base, got.as_ref().err(), want.as_ref().err());
            if let (Ok(got), Ok(want)) = (&got, &want) {
                for image in images.iter().filter_map(|i| Reference::parse(i).ok()) {
                    prop_assert_eq!(got.is_match(&image), want.is_match(&image), "{} vs {} on {}", s, base, image);
                }
            }
        }
    }

    #[test]
    fn every_validate_payload_is_answered(payload in validate_payload(), script in prop::collection::vec(answer(), 0..6)) {
        // What entry.rs does with the bytes, natively.
        let Ok(vr) = serde_json::from_slice::<ValidationRequest>(&payload) else {
            return Ok(());
        };
        let settings = vr.settings.unwrap_or("{}");
        let (host, _) = adversarial_host(script);
        match Policy::from_json(settings) {
            Ok(policy) => {
                let r = decide::validate(&vr.request, &policy, &host);
                prop_assert!(answered(&r), "{:?}", r);
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }

    #[test]
    fn every_request_is_answered_under_fixed_policies(req in request_doc(), script in prop::collection::vec(answer(), 0..6)) {
        let Ok(req) = serde_json::from_value::<AdmissionRequest>(req) else {
            return Ok(());
        };
        for settings in [json!({}), json!({"rules":[{"name":"none","images":["*"],"action":"deny"}]}),
                         json!({"exemptImages":["registry.k8s.io/pause"],"rules":[{"name":"corp","images":["*.corp.io/**"],"tags":{"deny":["latest"]},"pinDigest":true}]})] {
            let policy = Policy::from_json(&settings.to_string()).unwrap();
            let (host, _) = adversarial_host(script.clone());
            let r = decide::validate(&req, &policy, &host);
            prop_assert!(answered(&r), "{:?}", r);
        }
    }

    /// The module's way (payload read in place, a fresh instance compiling
    /// only the patterns its images match, then the whole policy kept and
    /// compared by text on a reused instance) answers every call exactly as
    /// serde and the whole policy do, invalid settings included, except a
    /// fresh instance's first call with invalid settings: it checks only
    /// the rules its images may reach (every host runs `validate_settings`
    /// first, which checks them all), so it may decide instead.
    #[test]
    fn fast_paths_answer_as_the_plain_path(
        (request, settings) in prop_oneof![
            (request_doc(), prop_oneof![settings_doc(), arb_json()]),
            (pooled_request(), pooled_settings()),
        ],
        script in prop::collection::vec(answer(), 0..4),
    ) {
        let payload = serde_json::to_vec(&json!({"request": request, "settings": settings})).unwrap();
        let Ok(vr) = serde_json::from_slice::<ValidationRequest>(&payload) else {
            return Ok(());
        };
        let plain = match Policy::from_json(vr.settings.unwrap_or("{}")) {
            Ok(policy) => decide::validate(&vr.request, &policy, &adversarial_host(script.clone()).0),
            Err(e) => ValidationResponse::reject(format!("imagegate: invalid settings: {e}")),
        };
        // First call (scoped), second (the whole policy built), third (kept).
        let mut instance = Instance::default();
        let invalid = plain.message.as_deref().is_some_and(|m| m.starts_with("imagegate: invalid settings: "));
        for call in 0..3 {
            let fast = instance.validate(&payload, &adversarial_host(script.clone()).0);
            if call == 0 && invalid && fast != plain {
                prop_assert!(answered(&fast), "{:?}", fast);
                continue;
            }
            prop_assert_eq!(&fast, &plain, "call {}", call);
        }
    }

    /// Whatever the host answers (errors, garbage, wrong types, bad digests,
    /// is_trusted false, huge payloads), an image is admitted only if a
    /// verification of exactly its normalized form succeeded, and a pinned or
    /// written digest is one that verification returned.
    #[test]
    fn adversarial_host_never_gets_an_unverified_image_admitted(
        images in prop::collection::vec(prop_oneof![
            Just("ghcr.io/corp/app:1.0".to_string()),
            Just(format!("ghcr.io/corp/app@{D1}")),
            Just(format!("ghcr.io/corp/app:1.0@{D2}")),
            Just("nginx".to_string()),
            image_like(),
        ], 1..4),
        script in prop::collection::vec(answer(), 1..8),
    ) {
        for policy in verifying_policies() {
            let (host, verified) = adversarial_host(script.clone());
            let req = pod(&images);
            let r = decide::validate(&req, &policy, &host);
            prop_assert!(answered(&r));
            if !r.accepted {
                continue;
            }
            let verified = verified.borrow();
            for (i, image) in images.iter().enumerate() {
                let normalized = Reference::parse(image).map_err(|e| TestCaseError::fail(format!("unparsable {image:?} admitted: {e}")))?.to_string();
                let digests = verified.get(&normalized);
                prop_assert!(digests.is_some(), "{} admitted without a successful verification; host said {:?}", normalized, script);
                let digests = digests.unwrap();
                let written = r.mutated_object.as_ref()
                    .and_then(|o| o["spec"]["containers"][i]["image"].as_str().map(String::from))
                    .unwrap_or_else(|| image.clone());
                if let Some((_, digest)) = written.split_once('@') {
                    prop_assert!(digests.contains(digest), "{} admitted as {} but verified digests are {:?}", image, written, digests);
                }
            }
        }
    }
}
