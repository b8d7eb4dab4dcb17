//! Benchmarks of the policy engine's hot paths, native.
//!
//! policy-server instantiates the wasm module afresh for every admission
//! request, so everything the module builds from its settings (parsing the
//! patterns, building the [`PatternSet`]) is paid per request, next to the
//! matching itself. The groups therefore measure build and match separately:
//!
//! - `normalize`: parse + normalize a mix of image strings.
//! - `match`: parse 10 / 100 / 1000 patterns (`parse`), parse and build a
//!   [`PatternSet`] of them (`build`), match images against it (`match`), and
//!   for scale a linear scan of `Pattern::is_match` (`linear_scan`).
//! - `globset`: the same rules as one `globset::GlobSet` over `host/path`, build
//!   and match, to justify not using globset in the guest.
//!
//! - `validate`: settings read and compiled (`compile`), a 5-container pod
//!   decided by the compiled policy (`pod-5`).
//! - `instance`: what the module does per call, from the payload bytes: a
//!   fresh instance's first `validate` (payload read in place, only the
//!   patterns the pod's images match compiled), and a reused instance's
//!   (settings compared with the kept policy's text).
//!
//! One function per group, so more groups can be added beside them. Every match / normalize iteration handles all
//! [`images`] (14), so divide by 14 for one image.
//! Run: `cargo bench -p imagegate-policy --bench engine -- --quick`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};
use imagegate_policy::pattern::{Pattern, PatternSet};
use imagegate_policy::reference::Reference;
use std::hint::black_box;

const DIGEST: &str = "sha256:7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa";

/// Images as they appear in pod specs: familiar names, full names, ports, digests.
fn images() -> Vec<String> {
    vec![
        "nginx".to_string(),
        "nginx:1.25-alpine".to_string(),
        "docker.io/bitnami/redis:7.2".to_string(),
        "team5/app:2.1".to_string(),
        "library6:1.2".to_string(),
        "registry.corp.example/team0/app0:v1.2".to_string(),
        "registry.corp.example/x/y/svc7:v9".to_string(),
        format!("registry.corp.example:5000/ci/runner@{DIGEST}"),
        "a.b.corp3.io/svc/api:2.0".to_string(),
        "ghcr.io/org4/tool:v3".to_string(),
        "mirror8.example.com:5000/a/b:1".to_string(),
        "quay.io/prometheus/node-exporter:v1.7.0".to_string(),
        "[::1]:5000/dev/app:latest".to_string(),
        format!("Index.Docker.IO/library/busybox:1.36@{DIGEST}"),
    ]
}

/// `n` rules as a realistic settings file would have them: mostly literal hosts
/// (many under the same registry), subdomain wildcards, Docker Hub namespaces,
/// tag globs, `**` in the middle, and two any-host rules.
fn rules(n: usize) -> Vec<String> {
    (0..n)
        .map(|k| match k % 10 {
            _ if k == 9 => "*/**/debug".to_string(),
            _ if k == 19 => "**:latest".to_string(),
            0..=2 => format!("registry.corp.example/team{}/app{k}", k % 20),
            3 => format!("*.corp{k}.io/**"),
            4 => format!("ghcr.io/org{k}/*:v*"),
            5 => format!("team{k}/*"),
            6 => format!("library{k}:1.*"),
            7 => format!("registry.corp.example/**/svc{k}"),
            8 => format!("mirror{k}.example.com:5000/**"),
            _ => format!("quay.io/proj{}/img{k}:*-stable", k % 7),
        })
        .collect()
}

fn build_set(rules: &[String]) -> PatternSet {
    PatternSet::new(rules.iter().enumerate().map(|(id, text)| {
        let pattern = Pattern::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        (pattern, id)
    }))
}

fn parsed_images() -> Vec<Reference> {
    images()
        .iter()
        .map(|i| Reference::parse(i).unwrap_or_else(|e| panic!("{i}: {e}")))
        .collect()
}

const SIZES: [usize; 3] = [10, 100, 1000];

fn normalize(c: &mut Criterion) {
    let images = images();
    let mut group = c.benchmark_group("normalize");
    group.bench_function("mix", |b| {
        b.iter(|| {
            for image in &images {
                let _ = black_box(Reference::parse(black_box(image)));
            }
        })
    });
    group.finish();
}

fn matching(c: &mut Criterion) {
    let images = parsed_images();
    let mut group = c.benchmark_group("match");
    for n in SIZES {
        let rules = rules(n);
        // Parsing alone, so that indexing = build - parse.
        group.bench_with_input(BenchmarkId::new("parse", n), &rules, |b, rules| {
            b.iter(|| {
                for rule in rules {
                    let _ = black_box(Pattern::parse(black_box(rule)));
                }
            })
        });
        // What a fresh instance pays per request: parse every pattern and index them.
        group.bench_with_input(BenchmarkId::new("build", n), &rules, |b, rules| {
            b.iter(|| build_set(black_box(rules)))
        });
        let set = build_set(&rules);
        group.bench_with_input(BenchmarkId::new("match", n), &set, |b, set| {
            let mut out = Vec::new();
            b.iter(|| {
                for image in &images {
                    out.clear();
                    set.matches_into(black_box(image), &mut out);
                    black_box(&out);
                }
            })
        });
        let patterns: Vec<Pattern> = rules
            .iter()
            .filter_map(|r| Pattern::parse(r).ok())
            .collect();
        group.bench_with_input(
            BenchmarkId::new("linear_scan", n),
            &patterns,
            |b, patterns| {
                b.iter(|| {
                    for image in &images {
                        black_box(
                            patterns
                                .iter()
                                .filter(|p| p.is_match(black_box(image)))
                                .count(),
                        );
                    }
                })
            },
        );
    }
    group.finish();
}

/// A rule as a globset pattern over `host[:port]/path` (name only: globset has
/// no notion of tags or digests), normalized like `Pattern` does.
fn to_glob(rule: &str) -> String {
    let name = rule.split('@').next().unwrap_or(rule);
    let name = match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => &name[..i],
        _ => name,
    };
    if name == "*" || name == "**" {
        return "**".to_string();
    }
    let (host, path) = match name.split_once('/') {
        Some((first, path)) if first.contains(['.', ':', '*']) || first == "localhost" => {
            (first, path.to_string())
        }
        _ => ("docker.io", name.to_string()),
    };
    let path = if host == "docker.io" && !path.contains('/') && path != "**" {
        format!("library/{path}")
    } else {
        path
    };
    format!("{host}/{path}")
}

fn build_globset(rules: &[String]) -> GlobSet {
    let mut builder = GlobSetBuilder::new();
    for rule in rules {
        let glob = GlobBuilder::new(&to_glob(rule))
            .literal_separator(true)
            .build()
            .unwrap_or_else(|e| panic!("{rule}: {e}"));
        builder.add(glob);
    }
    builder.build().unwrap_or_else(|e| panic!("globset: {e}"))
}

fn globset_comparison(c: &mut Criterion) {
    let names: Vec<String> = parsed_images()
        .iter()
        .map(|r| match r.port() {
            Some(p) => format!("{}:{p}/{}", r.host(), r.path()),
            None => format!("{}/{}", r.host(), r.path()),
        })
        .collect();
    let mut group = c.benchmark_group("globset");
    for n in SIZES {
        let rules = rules(n);
        group.bench_with_input(BenchmarkId::new("build", n), &rules, |b, rules| {
            b.iter(|| build_globset(black_box(rules)))
        });
        let set = build_globset(&rules);
        group.bench_with_input(BenchmarkId::new("match", n), &set, |b, set| {
            let mut out = Vec::new();
            b.iter(|| {
                for name in &names {
                    set.matches_candidate_into(&Candidate::new(black_box(name)), &mut out);
                    black_box(&out);
                }
            })
        });
    }
    group.finish();
}

/// Settings with `n` allow rules in the shape of examples/bench/gen-settings.sh.
fn settings_json(n: usize) -> String {
    let rules: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"name":"team-{i}","images":["registry.corp.example/team-{i}/**"],"tags":{{"deny":["latest"]}}}}"#
            )
        })
        .chain([
            r#"{"name":"official","images":["docker.io/*"]}"#.to_string(),
            r#"{"name":"corp-io","images":["*.corp.io/**"]}"#.to_string(),
            r#"{"name":"quay","images":["quay.io/**"]}"#.to_string(),
            r#"{"name":"ghcr","images":["ghcr.io/**"]}"#.to_string(),
        ])
        .collect();
    format!(r#"{{"rules":[{}]}}"#, rules.join(","))
}

/// The whole engine on a 5-container pod: what a reused instance pays per
/// request (`validate`), and what a fresh one adds (`compile`).
fn validate(c: &mut Criterion) {
    use imagegate_policy::testing::ScriptedHost;
    use imagegate_policy::{decide, settings::Policy, wire::AdmissionRequest};
    // Kept literal (not a test builder) so figures stay comparable across changes.
    let request: AdmissionRequest = serde_json::from_str(
        r#"{"uid":"b","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},
            "namespace":"default","operation":"CREATE","userInfo":{},
            "object":{"metadata":{"name":"b"},"spec":{"containers":[
              {"name":"a","image":"registry.corp.example/team-5/app:1.2.3"},{"name":"b","image":"nginx:1.27"},
              {"name":"c","image":"ghcr.io/org-6/tool:v2"},{"name":"d","image":"quay.io/prometheus/node-exporter:v1.8.0"},
              {"name":"e","image":"a.corp.io/x/y:3"}]}}}"#,
    )
    .expect("bench request");
    // These settings verify nothing: the host is never called.
    let host = ScriptedHost::none();
    let mut group = c.benchmark_group("validate");
    for n in [10, 1000] {
        let json = settings_json(n);
        group.bench_with_input(BenchmarkId::new("compile", n), &json, |b, json| {
            b.iter(|| Policy::from_json(black_box(json)).expect("bench settings"))
        });
        let policy = Policy::from_json(&json).expect("bench settings");
        group.bench_with_input(BenchmarkId::new("pod-5", n), &policy, |b, policy| {
            b.iter(|| {
                let r = decide::validate(black_box(&request), policy, &host);
                assert!(r.accepted, "{:?}", r.message);
            })
        });
    }
    group.finish();
}

/// [`imagegate_policy::instance::Instance`] on the payload policy-server
/// sends: fresh (a new instance per request) and reused.
fn instance(c: &mut Criterion) {
    use imagegate_policy::instance::Instance;
    use imagegate_policy::testing::ScriptedHost;
    let request = r#"{"uid":"b","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},
        "namespace":"default","operation":"CREATE","userInfo":{},
        "object":{"metadata":{"name":"b"},"spec":{"containers":[
          {"name":"a","image":"registry.corp.example/team-5/app:1.2.3"},{"name":"b","image":"nginx:1.27"},
          {"name":"c","image":"ghcr.io/org-6/tool:v2"},{"name":"d","image":"quay.io/prometheus/node-exporter:v1.8.0"},
          {"name":"e","image":"a.corp.io/x/y:3"}]}}}"#;
    let host = ScriptedHost::none();
    let mut group = c.benchmark_group("instance");
    for n in [10, 1000] {
        let payload = format!(r#"{{"request":{request},"settings":{}}}"#, settings_json(n));
        group.bench_with_input(BenchmarkId::new("fresh", n), &payload, |b, payload| {
            b.iter(|| {
                let r = Instance::default().validate(black_box(payload.as_bytes()), &host);
                assert!(r.accepted, "{:?}", r.message);
            })
        });
        let mut reused = Instance::default();
        group.bench_with_input(BenchmarkId::new("reused", n), &payload, |b, payload| {
            b.iter(|| {
                let r = reused.validate(black_box(payload.as_bytes()), &host);
                assert!(r.accepted, "{:?}", r.message);
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    normalize,
    matching,
    globset_comparison,
    validate,
    instance
);
criterion_main!(benches);
