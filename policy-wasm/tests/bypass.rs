//! Bypass corpus: every kind of rule × every way of writing an image × every
//! place an image can hide in a request, each with its expected decision.
//!
//! The corpus is data: [`rule_kinds`] lists each kind of rule with the images
//! it must allow and deny (canonical images are expanded into all their
//! spellings by [`spellings`]); [`unparsable`] lists spellings that must be
//! denied under every rule (image IDs included: the runtime reads them as a
//! cached image, not a name); [`places`] wraps one image into every place of
//! every workload kind, image volumes included. Each case runs through `decide::validate` with a fake
//! host that records its calls, and checks, beyond the decision:
//! - a denial names the image as written;
//! - the host is only ever asked about the *normalized* form of the images in
//!   the request, never about another image (a spelling that normalized to a
//!   string that reads as a different image would make the host verify the
//!   wrong one).

use imagegate_policy::decide;
use imagegate_policy::reference::Reference;
use imagegate_policy::settings::Policy;
use imagegate_policy::testing::{Request, ScriptedHost, D1, D2, KEY};
use imagegate_policy::wire::AdmissionRequest;
use serde_json::{json, Value};
use std::collections::BTreeSet;

const SHA512: &str = "sha512:33333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333";

/// The normalized images the fake host holds a valid signature for (with D1).
const SIGNED: [&str; 3] = [
    "ghcr.io/corp/app:1.0",
    "ghcr.io/corp/app@sha256:1111111111111111111111111111111111111111111111111111111111111111",
    "ghcr.io/corp/app:1.0@sha256:1111111111111111111111111111111111111111111111111111111111111111",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Allow,
    Deny,
}
use Expect::{Allow, Deny};

/// One kind of rule: settings, an image every place can hold next to the
/// image under test (allowed by this rule), and the images to try. `{D1}`,
/// `{D2}` and `{SHA512}` in an image stand for those digests.
#[derive(Default)]
struct RuleKind {
    name: &'static str,
    settings: Value,
    benign: &'static str,
    /// Canonical images, each tried in every spelling of [`spellings`].
    allow: &'static [&'static str],
    deny: &'static [&'static str],
    /// Images tried exactly as written.
    allow_as_written: &'static [&'static str],
    deny_as_written: &'static [&'static str],
}

impl RuleKind {
    /// The canonical images with their expected decision.
    fn canonical(&self) -> Vec<(String, Expect)> {
        expected(self.allow, self.deny)
    }

    /// The images tried as written with their expected decision.
    fn literal(&self) -> Vec<(String, Expect)> {
        expected(self.allow_as_written, self.deny_as_written)
    }
}

fn expected(allow: &[&str], deny: &[&str]) -> Vec<(String, Expect)> {
    let image = |i: &&str| {
        i.replace("{D1}", D1)
            .replace("{D2}", D2)
            .replace("{SHA512}", SHA512)
    };
    let allowed = allow.iter().map(|i| (image(i), Allow));
    allowed
        .chain(deny.iter().map(|i| (image(i), Deny)))
        .collect()
}

fn rule_kinds() -> Vec<RuleKind> {
    vec![
        RuleKind {
            name: "empty settings (admit every parsable image)",
            settings: json!({}),
            benign: "busybox:1",
            allow: &["docker.io/library/nginx:1.25"],
            ..RuleKind::default()
        },
        RuleKind {
            name: "allow-list, unmatched deny",
            settings: json!({"rules":[{"name":"corp","images":["registry.corp.io/team/**"]}]}),
            benign: "registry.corp.io/team/app:1",
            allow: &[
                "registry.corp.io/team/app:1",
                "registry.corp.io/team/sub/app:1",
            ],
            deny: &["docker.io/library/nginx:1.25", "docker.io/team/app:1"],
            deny_as_written: &[
                "registry.corp.io:5000/team/app:1",
                "registry.corp.io:80/team/app:1",
                "registry.corp.io:8443/team/app:1",
                "registry.corp.io.evil.com/team/app:1",
                "evil.com/registry.corp.io/team/app:1",
                "registry.corp.io/team-evil/app:1",
                "registry.corp.io/teamx/app:1",
                "registry.corp.io/other/team/app:1",
                "corp.io/team/app:1",
                "team/app:1",
                "registry/team/app:1",
            ],
            ..RuleKind::default()
        },
        RuleKind {
            name: "deny rule, unmatched allow",
            settings: json!({"unmatched":"allow","rules":[
                {"name":"no-nginx","images":["nginx","evil.io:*/**"],"action":"deny"}]}),
            benign: "busybox:1",
            allow: &[
                "docker.io/library/nginx-unprivileged:1",
                "docker.io/nginxinc/nginx:1",
            ],
            deny: &[
                "docker.io/library/nginx:1.25",
                "docker.io/library/nginx:latest",
                "evil.io/x/y:1",
                "evil.io:5000/x:1",
            ],
            allow_as_written: &["evil.io.other.net/x:1"],
            deny_as_written: &["evil.io:80/x:1", "evil.io:443/x:1", "EVIL.IO:8080/x:1"],
        },
        RuleKind {
            name: "tags.deny latest",
            settings: json!({"rules":[{"name":"no-latest","images":["**"],"tags":{"deny":["latest"]}}]}),
            benign: "busybox:1",
            allow: &[
                "docker.io/library/nginx@{D1}",
                "docker.io/library/nginx:1.25",
            ],
            deny: &[
                "docker.io/library/nginx:latest",
                "docker.io/library/nginx:latest@{D1}",
                "ghcr.io/a/b:latest",
                "localhost:5000/a:latest",
            ],
            allow_as_written: &[
                // Tags are case-sensitive: `LATEST` is another tag, not a spelling of `latest`.
                "nginx:LATEST",
                "nginx:latest-1",
            ],
            deny_as_written: &["nginx", "ghcr.io/a/b", "[::1]:5000/a"],
        },
        RuleKind {
            name: "tags.requireDigest",
            settings: json!({"rules":[{"name":"pinned","images":["*"],"tags":{"requireDigest":true}}]}),
            benign:
                "busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111",
            allow: &[
                "docker.io/library/nginx@{D1}",
                "docker.io/library/nginx:1.25@{D1}",
                "docker.io/library/nginx@{SHA512}",
            ],
            deny: &[
                "docker.io/library/nginx:1.25",
                "docker.io/library/nginx:latest",
            ],
            deny_as_written: &["nginx", "nginx:sha256"],
            ..RuleKind::default()
        },
        RuleKind {
            name: "exemptImages must not over-exempt",
            settings: json!({"exemptImages":["registry.k8s.io/pause"],
                "rules":[{"name":"none","images":["*"],"action":"deny"}]}),
            benign: "registry.k8s.io/pause:3.9",
            allow: &["registry.k8s.io/pause:3.9", "registry.k8s.io/pause@{D1}"],
            deny: &[
                "registry.k8s.io/pause-evil:3.9",
                "registry.k8s.io.evil.com/pause:3.9",
                "registry.k8s.io/pause/evil:1",
                "registry.k8s.io/evil/pause:1",
                "evil.com/registry.k8s.io/pause:1",
                "docker.io/library/pause:3.9",
                "k8s.io/pause:3.9",
            ],
            deny_as_written: &[
                "registry.k8s.io:5000/pause:3.9",
                "registry.k8s.io:80/pause:3.9",
                "pause",
            ],
            ..RuleKind::default()
        },
        RuleKind {
            name: "verify: cosign signature required",
            settings: json!({"keys":{"release":{"cosign":KEY}},"rules":[{"name":"signed",
                "images":["ghcr.io/corp/**"],"verify":{"anyOf":[{"cosign":{"keys":["release"]}}]}}]}),
            benign: "ghcr.io/corp/app:1.0",
            allow: &[
                "ghcr.io/corp/app:1.0",
                "ghcr.io/corp/app@{D1}",
                "ghcr.io/corp/app:1.0@{D1}",
            ],
            deny: &[
                "ghcr.io/corp/app:2.0",
                "ghcr.io/corp/app:latest",
                "ghcr.io/corp/app:1.0@{D2}",
                "ghcr.io/corp/app@{D2}",
                "ghcr.io/corp/app2:1.0",
                "ghcr.io/corp/other/app:1.0",
                "docker.io/corp/app:1.0",
            ],
            deny_as_written: &[
                "ghcr.io:5000/corp/app:1.0",
                "ghcr.io:80/corp/app:1.0",
                "corp/app:1.0",
            ],
            ..RuleKind::default()
        },
        RuleKind {
            name: "host wildcard *.corp.io",
            settings: json!({"rules":[{"name":"corp","images":["*.corp.io/**"]}]}),
            benign: "a.corp.io/x:1",
            allow: &["a.corp.io/x:1", "a.b.corp.io/x/y:1"],
            deny: &[
                "corp.io/x:1",
                "evilcorp.io/x:1",
                "a.corp.io.evil.com/x:1",
                "corp.io.a/x:1",
                "a-corp.io/x:1",
                "docker.io/library/nginx:1",
            ],
            deny_as_written: &[
                "a.corp.io:5000/x:1",
                "a.corp.io:80/x:1",
                "evil.io/a.corp.io/x:1",
            ],
            ..RuleKind::default()
        },
        RuleKind {
            name: "requireFullyQualified, everything else allowed",
            settings: json!({"requireFullyQualified": true, "rules":[{"name":"all","images":["**"]}]}),
            benign: "docker.io/library/busybox:1",
            // Every spelling of these names its registry.
            allow: &[
                "ghcr.io/corp/app:1.0",
                "localhost:5000/app:1",
                "[::1]:5000/app:1",
            ],
            allow_as_written: &[
                "docker.io/library/nginx:1",
                "index.docker.io/nginx:1",
                "Docker.IO/nginx",
                "localhost/app:1",
                "LocalHost:5000/app:1",
                "127.0.0.1/app:1",
            ],
            deny_as_written: &[
                "nginx",
                "nginx:1",
                "nginx@{D1}",
                "library/nginx:1",
                "bitnami/redis:7",
                "LOCALHOST/app:1",
                "registry:5000",
                "localhost:5000",
            ],
            ..RuleKind::default()
        },
        RuleKind {
            name: "ports: localhost, IPv6 and a named port",
            settings: json!({"rules":[{"name":"local","images":[
                "localhost:5000/**","[::1]:5000/**","registry.corp.io:8443/**"]}]}),
            benign: "localhost:5000/app:1",
            allow: &[
                "localhost:5000/app:1",
                "[::1]:5000/app:1",
                "registry.corp.io:8443/app:1",
            ],
            deny: &[
                "localhost/app:1",
                "localhost:5001/app:1",
                "127.0.0.1:5000/app:1",
                "[::1]/app:1",
                "[::1]:5001/app:1",
                "[::2]:5000/app:1",
                "registry.corp.io/app:1",
                "registry.corp.io:80/app:1",
            ],
            allow_as_written: &[
                "[0:0::1]:5000/app:1",
                "[0000:0000:0000:0000:0000:0000:0000:0001]:5000/app:1",
                "localhost:05000/app:1",
            ],
            deny_as_written: &["registry.corp.io:443/app:1", "[::1]:443/app:1"],
        },
    ]
}

/// Spellings that no rule may accept: the grammar rejects them, or their
/// normalized form would read as another image. Denied under every rule kind,
/// empty settings included.
fn unparsable() -> Vec<String> {
    let mut v: Vec<String> = [
        // case
        "NGINX",
        "Nginx:1",
        "docker.io/library/NGINX:1",
        "ghcr.io/Corp/app:1.0",
        "registry.corp.io/Team/app:1",
        // single-label hosts whose normalized form reads as a Docker Hub image
        "Uppercase/app",
        "Registry/team/app:1",
        "DOCKER/library/nginx",
        "Library/nginx",
        "host:443/app",
        "registry:443/team/app:1",
        "docker:443/nginx",
        "Ghcr/corp/app:1.0",
        // whitespace and control characters (nothing is trimmed)
        " nginx",
        "nginx ",
        "nginx :1",
        "nginx\t",
        "nginx\n",
        "ghcr.io/corp/app:1.0\n",
        "ghcr.io/corp/app:1.0\r",
        "ghcr.io/corp/\u{0}app:1.0",
        "registry.k8s.io/pause\u{a0}",
        "registry.k8s.io/pause\u{200b}",
        "registry.k8s.io /pause",
        // percent-encoding
        "%6eginx",
        "registry.corp.io%2Fteam/app:1",
        "registry.corp.io/team%2Fapp:1",
        "registry.k8s.io/pause%00",
        "a.corp.io%2eevil.com/x:1",
        // unicode look-alikes
        "ngіnx",
        "ｎginx",
        "registry.k8s.io/pаuse",
        "registry.k8s.іo/pause",
        "ghcr.io/corp/аpp:1.0",
        "a.corp.іo/x:1",
        "registry.corp.io/team/app:１",
        "localhost:５000/app:1",
        "ＲEGISTRY.corp.io/team/app:1",
        // empty, `.` and `..` path components, stray separators
        "",
        "/nginx",
        "nginx/",
        "docker.io//nginx",
        "registry.corp.io//team/app:1",
        "registry.corp.io/team//app:1",
        "registry.corp.io/team/../app:1",
        "registry.corp.io/team/./app:1",
        "registry.corp.io/../team/app:1",
        "registry.k8s.io/pause/..",
        "registry.k8s.io/./pause",
        "a.corp.io./x:1",
        ".corp.io/x:1",
        "a..corp.io/x:1",
        "-a.corp.io/x:1",
        ":5000/app",
        "nginx:",
        "nginx@",
        "nginx:@sha256:1111111111111111111111111111111111111111111111111111111111111111",
        "nginx::1",
        "registry.corp.io:/team/app:1",
        // ports
        "localhost:0/app:1",
        "localhost:65536/app:1",
        "localhost:-1/app:1",
        "localhost:5000:5000/app:1",
        "localhost:5 000/app:1",
        "localhost:0x1388/app:1",
        // IPv6
        "[::1/app:1",
        "::1:5000/app:1",
        "[::1]x/app:1",
        "[::ffff:127.0.0.1]:5000/app:1",
        "[::1%lo]:5000/app:1",
        "[fe80::1%25eth0]:5000/app:1",
        "[]:5000/app:1",
        "[:::1]:5000/app:1",
        // digests
        "nginx@sha256:abc",
        "nginx@sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "nginx@SHA256:1111111111111111111111111111111111111111111111111111111111111111",
        "nginx@md5:11111111111111111111111111111111",
        "nginx@sha256:11111111111111111111111111111111111111111111111111111111111111111",
        "nginx@sha256:1111111111111111111111111111111111111111111111111111111111111111@sha256:1111111111111111111111111111111111111111111111111111111111111111",
        "ghcr.io/corp/app:1.0@sha256:1111111111111111111111111111111111111111111111111111111111111111 ",
        // image IDs and ID prefixes are not names (containerd resolves any
        // unique prefix, one digit suffices; CRI-O a bare 64-hex ID)
        "1111111111111111111111111111111111111111111111111111111111111111",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "sha256:1111111111111111111111111111111111111111111111111111111111111111",
        "sha256:1",
        "sha256:4a2b",
        "sha256:ABCD",
        "sha384:111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111",
        "sha512:33333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333",
        "sha512:3",
        "blake3:abc",
        // tags
        "nginx:-1",
        "nginx:.1",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    // very long names: paths of 256 characters once normalized (`library/`
    // counts, the registry does not), long tags, many components
    v.push(format!("registry.corp.io/team/{}", "a".repeat(251)));
    v.push(format!("{}:1", "a".repeat(248)));
    v.push(format!("registry.corp.io/team/app:{}", "1".repeat(129)));
    v.push(format!("registry.corp.io/team/{}app:1", "a/".repeat(126)));
    v.push(format!("ghcr.io/corp/app:1.0{}", " ".repeat(4096)));
    v.push("a".repeat(100_000));
    v
}

/// Every spelling of the canonical image `canonical` (a normalized reference).
fn spellings(canonical: &str) -> Vec<String> {
    let r = Reference::parse(canonical).unwrap();
    assert_eq!(r.to_string(), canonical, "corpus images are normalized");
    let (host, port, path) = (r.host(), r.port(), r.path());
    let suffix = format!(
        "{}{}",
        r.tag().map(|t| format!(":{t}")).unwrap_or_default(),
        r.digest().map(|d| format!("@{d}")).unwrap_or_default()
    );
    let port_text = port.map(|p| format!(":{p}")).unwrap_or_default();
    let mut hosts: Vec<String> = vec![format!("{host}{port_text}")];
    if host.bytes().any(|b| b.is_ascii_alphabetic()) && !host.starts_with('[') {
        hosts.push(format!("{}{port_text}", host.to_ascii_uppercase()));
        let mixed: String = host
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        hosts.push(format!("{mixed}{port_text}"));
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        // IPv6: every address has a fully expanded, zero-padded, upper-case spelling.
        let address: std::net::Ipv6Addr = inner.parse().unwrap();
        let expanded: Vec<String> = address
            .segments()
            .iter()
            .map(|s| format!("{s:04X}"))
            .collect();
        hosts.push(format!("[{}]{port_text}", expanded.join(":")));
    }
    if port.is_none() {
        hosts.push(format!("{host}:443"));
        hosts.push(format!("{host}:0443"));
    } else if let Some(p) = port {
        hosts.push(format!("{host}:0{p}"));
    }
    let mut paths = vec![path.to_string()];
    let docker_hub = host == "docker.io" && port.is_none();
    if docker_hub {
        hosts.extend(
            [
                "index.docker.io",
                "registry-1.docker.io",
                "INDEX.DOCKER.IO",
                "docker.io:443",
                "index.docker.io:443",
            ]
            .map(String::from),
        );
        if let Some(name) = path.strip_prefix("library/") {
            paths.push(name.to_string());
        }
    }
    let mut out = BTreeSet::new();
    for h in &hosts {
        for p in &paths {
            out.insert(format!("{h}/{p}{suffix}"));
        }
    }
    if docker_hub {
        // No host at all.
        for p in &paths {
            out.insert(format!("{p}{suffix}"));
        }
    }
    if r.tag() == Some("latest") && r.digest().is_none() {
        // `latest` is implicit.
        let written: Vec<String> = out.iter().cloned().collect();
        for w in written {
            if let Some(bare) = w.strip_suffix(":latest") {
                out.insert(bare.to_string());
            }
        }
    }
    out.into_iter().collect()
}

/// Where an image can hide. Returns the request, with `benign` in the other
/// containers the place needs.
struct Place {
    name: &'static str,
    build: fn(image: &str, benign: &str) -> Value,
}

fn pod_spec(lists: &[(&str, &str)]) -> Value {
    let mut spec = serde_json::Map::new();
    for (list, image) in lists {
        let item = match *list {
            // An image volume, next to a volume of another kind.
            "volumes" => json!([{"name": "cache", "emptyDir": {}},
                {"name": format!("{list}-1"), "image": {"reference": image, "pullPolicy": "IfNotPresent"}}]),
            _ => json!([{"name": format!("{list}-0"), "image": image}]),
        };
        spec.insert(list.to_string(), item);
    }
    Value::Object(spec)
}

fn request(group: &str, kind: &str, operation: &str, object: Value) -> Value {
    Request::object(group, kind, object)
        .operation(operation)
        .user("mallory", &["devs"])
        .into_json()
}

/// A workload place: the image in `$list` of the kind's pod spec, `benign` in
/// `containers` when the image is elsewhere.
macro_rules! workload {
    ($name:literal, $group:literal, $kind:literal, $list:literal, $wrap:expr) => {
        Place {
            name: $name,
            build: |image, benign| {
                let spec = if $list == "containers" {
                    pod_spec(&[("containers", image)])
                } else {
                    pod_spec(&[("containers", benign), ($list, image)])
                };
                let wrap: fn(Value) -> Value = $wrap;
                request($group, $kind, "CREATE", wrap(spec))
            },
        }
    };
}

/// A Pod UPDATE from `old` to `new` (specs), on `subresource` if given.
fn pod_update(new: Value, old: Value, subresource: Option<&str>) -> Value {
    let pod = |spec| json!({"metadata":{"name":"w"},"spec": spec});
    let mut r = request("", "Pod", "UPDATE", pod(new));
    r["oldObject"] = pod(old);
    if let Some(sub) = subresource {
        r["subResource"] = json!(sub);
        r["requestSubResource"] = json!(sub);
    }
    r
}

fn tmpl(spec: Value) -> Value {
    json!({"metadata":{"name":"w"},"spec":{"template":{"spec": spec}}})
}

fn places() -> Vec<Place> {
    vec![
        workload!(
            "Pod containers",
            "",
            "Pod",
            "containers",
            |s| json!({"metadata":{"name":"w"},"spec": s})
        ),
        workload!(
            "Pod initContainers",
            "",
            "Pod",
            "initContainers",
            |s| json!({"metadata":{"name":"w"},"spec": s})
        ),
        workload!(
            "Pod ephemeralContainers (CREATE)",
            "",
            "Pod",
            "ephemeralContainers",
            |s| json!({"metadata":{"name":"w"},"spec": s})
        ),
        workload!(
            "Deployment containers",
            "apps",
            "Deployment",
            "containers",
            tmpl
        ),
        workload!(
            "Deployment initContainers",
            "apps",
            "Deployment",
            "initContainers",
            tmpl
        ),
        workload!(
            "ReplicaSet containers",
            "apps",
            "ReplicaSet",
            "containers",
            tmpl
        ),
        workload!(
            "StatefulSet initContainers",
            "apps",
            "StatefulSet",
            "initContainers",
            tmpl
        ),
        workload!(
            "DaemonSet containers",
            "apps",
            "DaemonSet",
            "containers",
            tmpl
        ),
        workload!("Job initContainers", "batch", "Job", "initContainers", tmpl),
        workload!(
            "ReplicationController containers",
            "",
            "ReplicationController",
            "containers",
            tmpl
        ),
        workload!(
            "DeploymentConfig containers",
            "apps.openshift.io",
            "DeploymentConfig",
            "containers",
            tmpl
        ),
        workload!(
            "PodTemplate ephemeralContainers",
            "",
            "PodTemplate",
            "ephemeralContainers",
            |s| json!({"metadata":{"name":"w"},"template":{"spec": s}})
        ),
        workload!(
            "CronJob containers",
            "batch",
            "CronJob",
            "containers",
            |s| json!({"metadata":{"name":"w"},"spec":{"jobTemplate":{"spec":{"template":{"spec": s}}}}})
        ),
        workload!(
            "CronJob initContainers",
            "batch",
            "CronJob",
            "initContainers",
            |s| json!({"metadata":{"name":"w"},"spec":{"jobTemplate":{"spec":{"template":{"spec": s}}}}})
        ),
        workload!(
            "Pod image volume",
            "",
            "Pod",
            "volumes",
            |s| json!({"metadata":{"name":"w"},"spec": s})
        ),
        workload!(
            "Deployment image volume",
            "apps",
            "Deployment",
            "volumes",
            tmpl
        ),
        workload!(
            "StatefulSet image volume",
            "apps",
            "StatefulSet",
            "volumes",
            tmpl
        ),
        workload!(
            "CronJob image volume",
            "batch",
            "CronJob",
            "volumes",
            |s| json!({"metadata":{"name":"w"},"spec":{"jobTemplate":{"spec":{"template":{"spec": s}}}}})
        ),
        workload!(
            "PodTemplate image volume",
            "",
            "PodTemplate",
            "volumes",
            |s| json!({"metadata":{"name":"w"},"template":{"spec": s}})
        ),
        Place {
            name: "Pod UPDATE adding an image volume",
            build: |image, benign| {
                pod_update(
                    pod_spec(&[("containers", benign), ("volumes", image)]),
                    pod_spec(&[("containers", benign)]),
                    None,
                )
            },
        },
        Place {
            name: "pods/ephemeralcontainers subresource, image volume",
            build: |image, benign| {
                let spec = pod_spec(&[("containers", benign), ("volumes", image)]);
                pod_update(spec.clone(), spec, Some("ephemeralcontainers"))
            },
        },
        Place {
            name: "pods/ephemeralcontainers subresource",
            build: |image, benign| {
                pod_update(
                    pod_spec(&[("containers", benign), ("ephemeralContainers", image)]),
                    pod_spec(&[("containers", benign)]),
                    Some("ephemeralcontainers"),
                )
            },
        },
        Place {
            name: "EphemeralContainers kind (Kubernetes < 1.23)",
            build: |image, _| {
                let mut r = request(
                    "",
                    "EphemeralContainers",
                    "UPDATE",
                    json!({"metadata":{"name":"w"},"ephemeralContainers":[{"name":"dbg","image": image}]}),
                );
                r["subResource"] = json!("ephemeralcontainers");
                r
            },
        },
        Place {
            name: "Pod UPDATE changing only an ephemeral container",
            build: |image, benign| {
                pod_update(
                    pod_spec(&[("containers", benign), ("ephemeralContainers", image)]),
                    pod_spec(&[("containers", benign), ("ephemeralContainers", benign)]),
                    None,
                )
            },
        },
        Place {
            name: "Deployment UPDATE leaving the image unchanged",
            build: |image, _| {
                let spec = tmpl(pod_spec(&[("containers", image)]));
                let mut r = request("apps", "Deployment", "UPDATE", spec.clone());
                r["oldObject"] = spec;
                r
            },
        },
    ]
}

/// Answers like a registry holding [`SIGNED`] only (and records every call).
fn registry() -> ScriptedHost {
    ScriptedHost::new(|namespace, operation, payload| {
        let image = asked(namespace, operation, payload)?;
        match (namespace, operation) {
            ("imagegate", "v1/check_signature") if SIGNED.contains(&image) => Ok(json!({
                "digest": D1,
                "verified": [{"subject": D1, "identity": 0, "format": "sigstore-bundle-v0.3",
                              "path": "referrers-api", "manifest": "sha256:aa", "signer": "s"}],
                "trace": [{"subject": D1, "paths": []}]
            })),
            ("imagegate", "v1/check_signature") => Ok(json!({
                "digest": D1, "verified": [], "trace": [{"subject": D1, "paths": []}]
            })),
            ("oci", "v2/verify") if SIGNED.contains(&image) => {
                Ok(json!({"is_trusted": true, "digest": D1}))
            }
            ("oci", "v2/verify") => Err(format!("no signatures found for image: {image}")),
            _ => Err(format!("unexpected call {namespace}/{operation}")),
        }
    })
}

/// The image a host call is about.
fn asked<'p>(namespace: &str, operation: &str, payload: &'p Value) -> Result<&'p str, String> {
    match (namespace, operation) {
        ("oci", "v1/manifest_digest" | "v1/oci_manifest_config") => payload.as_str(),
        _ => payload["image"].as_str(),
    }
    .ok_or_else(|| format!("no image in {namespace}/{operation} {payload}"))
}

struct Case<'a> {
    kind: &'a RuleKind,
    image: String,
    expect: Expect,
}

/// Runs one (rule kind, image, place); returns a description of the failure.
fn run(case: &Case, policy: &Policy, place: &Place) -> Result<(), String> {
    let req_json = (place.build)(&case.image, case.kind.benign);
    let req: AdmissionRequest =
        serde_json::from_value(req_json).map_err(|e| format!("test request: {e}"))?;
    let host = registry();
    let response = decide::validate(&req, policy, &host);
    let what = format!(
        "[{}] {:?} in {}",
        case.kind.name,
        shorten(&case.image),
        place.name
    );
    let got = if response.accepted { Allow } else { Deny };
    if got != case.expect {
        return Err(format!(
            "{what}: expected {:?}, got {got:?}: {:?}",
            case.expect, response.message
        ));
    }
    if got == Deny {
        let message = response.message.as_deref().unwrap_or("");
        let written = format!("{:?}", case.image);
        if !message.contains(&written) {
            return Err(format!(
                "{what}: the denial does not name the image: {message}"
            ));
        }
    }
    let allowed: BTreeSet<String> = [case.image.as_str(), case.kind.benign]
        .iter()
        .filter_map(|i| Reference::parse(i).ok())
        .map(|r| r.to_string())
        .collect();
    for call in host.calls() {
        let asked = asked(&call.namespace, &call.operation, &call.payload)
            .map_err(|e| format!("{what}: {e}"))?;
        if !allowed.contains(asked) {
            return Err(format!(
                "{what}: the host was asked about {asked:?}, not a normalized image of the request {allowed:?}"
            ));
        }
    }
    Ok(())
}

fn shorten(image: &str) -> String {
    if image.len() > 80 {
        format!("{}...({} chars)", &image[..60], image.len())
    } else {
        image.to_string()
    }
}

#[test]
fn corpus_has_no_bypass() {
    let kinds = rule_kinds();
    let places = places();
    let unparsable = unparsable();
    let mut cases = 0usize;
    let mut failures = Vec::new();
    for kind in &kinds {
        let policy = Policy::from_json(&kind.settings.to_string())
            .unwrap_or_else(|e| panic!("[{}] settings: {e}", kind.name));
        let mut images: Vec<(String, Expect)> = Vec::new();
        for (canonical, expect) in kind.canonical() {
            images.extend(spellings(&canonical).into_iter().map(|s| (s, expect)));
        }
        images.extend(kind.literal());
        images.extend(unparsable.iter().map(|u| (u.clone(), Deny)));
        for (image, expect) in images {
            let case = Case {
                kind,
                image,
                expect,
            };
            for place in &places {
                cases += 1;
                if let Err(f) = run(&case, &policy, place) {
                    failures.push(f);
                }
            }
        }
    }
    println!(
        "bypass corpus: {cases} cases ({} rule kinds x {} places), {} failures",
        kinds.len(),
        places.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cases > 5_000, "the corpus shrank: {cases} cases");
}

/// The corpus relies on these: every canonical image and its spellings parse
/// to the same normalized image, and every unparsable spelling is rejected by
/// the parser itself (not merely denied by a rule).
#[test]
fn corpus_spellings_are_what_they_claim() {
    for kind in rule_kinds() {
        for (canonical, _) in kind.canonical() {
            let spelled = spellings(&canonical);
            assert!(spelled.len() >= 2, "{canonical}: {spelled:?}");
            for s in spelled {
                let r = Reference::parse(&s).unwrap_or_else(|e| panic!("{s}: {e}"));
                assert_eq!(r.to_string(), canonical, "{s}");
            }
        }
    }
    for u in unparsable() {
        assert!(Reference::parse(&u).is_err(), "{:?} parses", shorten(&u));
    }
}

/// A request never hides an image from the engine: with a deny-all rule every
/// place above yields a denial naming the image.
#[test]
fn every_place_is_checked() {
    let policy =
        Policy::from_json(r#"{"rules":[{"name":"none","images":["*"],"action":"deny"}]}"#).unwrap();
    for place in places() {
        let req: AdmissionRequest =
            serde_json::from_value((place.build)("quay.io/x/hidden:1", "quay.io/x/benign:1"))
                .unwrap();
        let r = decide::validate(&req, &policy, &registry());
        assert!(!r.accepted, "{}", place.name);
        assert!(
            r.message
                .as_deref()
                .unwrap_or("")
                .contains("quay.io/x/hidden:1"),
            "{}: {:?}",
            place.name,
            r.message
        );
    }
}
