//! Objects read from the cluster at request time (`sources: {tmax, tanzu}`)
//! are input too: whoever may create a tmax RegistrySecurityPolicy in their
//! namespace, or the Tanzu ClusterImagePolicy, writes them, and the guest
//! converts them on every request. Property: the guest's work on them is
//! bounded by their size, whatever they say.
//!
//! Measured deterministically, never timed: a counting global allocator
//! (per thread, so parallel tests do not mix) gives, for one `validate`,
//! the bytes allocated in total (the work: the conversion builds strings,
//! maps and patterns) and the peak of live bytes (the memory the guest needs).
//! Both must stay under a constant factor of the bytes the host answered.
//! A namePattern with k starred components used to build 2^k patterns: 25
//! of them, 2^25 strings, on every request.

use imagegate_policy::decide;
use imagegate_policy::settings::Policy;
use imagegate_policy::testing::{Request, ScriptedHost, KEY};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::rc::Rc;

/// What the guest may allocate per byte the host answered, in total and at
/// most at once, plus a fixed allowance (the engine's own structures).
const TOTAL_PER_BYTE: usize = 400;
const PEAK_PER_BYTE: usize = 100;
const ALLOWANCE: usize = 1 << 20;

struct Counting;

#[derive(Clone, Copy)]
struct Stats {
    live: isize,
    peak: isize,
    total: usize,
}

thread_local! {
    static STATS: Cell<Stats> = const { Cell::new(Stats { live: 0, peak: 0, total: 0 }) };
}

fn record(grow: usize, shrink: usize) {
    // `try_with`: allocations while the thread is torn down are not counted.
    let _ = STATS.try_with(|s| {
        let mut st = s.get();
        st.live += grow as isize - shrink as isize;
        st.peak = st.peak.max(st.live);
        st.total += grow;
        s.set(st);
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size(), 0);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        record(0, layout.size());
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size, layout.size());
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes allocated in total and the peak of live bytes above the start, while `f` runs.
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    let start = STATS.with(|s| {
        let mut st = s.get();
        st.peak = st.live;
        st.total = 0;
        s.set(st);
        st.live
    });
    let out = f();
    let end = STATS.with(Cell::get);
    (out, end.total, (end.peak - start).max(0) as usize)
}

/// The objects of one cluster, answered to `kubernetes/*` like
/// `imagegate --context DIR`.
#[derive(Debug, Clone)]
struct Cluster(Vec<Value>);

/// Answers from `cluster`, pre-serialized; counts the bytes answered.
fn host(cluster: &Cluster, answered: Rc<Cell<usize>>) -> ScriptedHost {
    let objects = cluster.0.clone();
    ScriptedHost::raw(move |ns, op, payload| {
        if ns != "kubernetes" {
            return Err("no signature found".to_string());
        }
        let p: Value = serde_json::from_slice(payload).unwrap();
        let fits = |o: &&Value| {
            o["apiVersion"] == p["api_version"]
                && o["kind"] == p["kind"]
                && (p["namespace"].is_null() || o["metadata"]["namespace"] == p["namespace"])
        };
        let answer = match op {
            "get_resource" => match objects
                .iter()
                .filter(fits)
                .find(|o| o["metadata"]["name"] == p["name"])
            {
                Some(o) => serde_json::to_vec(o).unwrap(),
                None => return Err(format!("{} {} not found", p["kind"], p["name"])),
            },
            _ => serde_json::to_vec(
                &json!({"items": objects.iter().filter(fits).collect::<Vec<_>>()}),
            )
            .unwrap(),
        };
        answered.set(answered.get() + answer.len());
        Ok(answer)
    })
}

// ---------------------------------------------------------------- generators

/// A path component of a Tanzu namePattern: stars anywhere, long literals.
fn name_component() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_string()),
        Just("a*".to_string()),
        Just("*-app".to_string()),
        Just("a*b*c".to_string()),
        Just("team".to_string()),
        "[a-z*]{1,12}",
        (1usize..2000).prop_map(|n| format!("{}*", "x".repeat(n))),
    ]
}

fn name_pattern() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just(""),
            Just("reg.io/"),
            Just("*.corp.io/"),
            Just("*/"),
            Just("Reg.IO:5000/")
        ],
        prop::collection::vec(name_component(), 0..40),
        prop_oneof![Just(""), Just(":*"), Just(":v1*"), Just("@sha256:1")],
    )
        .prop_map(|(host, comps, tail)| format!("{host}{}{tail}", comps.join("/")))
}

fn tanzu_policy() -> impl Strategy<Value = Value> {
    let key = prop_oneof![Just(KEY.to_string()), "[ -~]{0,40}"];
    (
        prop::collection::vec(("[a-z]{1,6}", key), 0..4),
        prop::collection::vec((name_pattern(), prop::collection::vec("[a-z]{1,6}", 0..3)), 0..8),
        prop::collection::vec("[a-z*-]{1,12}", 0..4),
    )
        .prop_map(|(keys, images, namespaces)| {
            json!({"apiVersion": "signing.apps.tanzu.vmware.com/v1beta1", "kind": "ClusterImagePolicy",
                "metadata": {"name": "image-policy"},
                "spec": {"verification": {
                    "exclude": {"resources": {"namespaces": namespaces}},
                    "keys": keys.iter().map(|(n, k)| json!({"name": n, "publicKey": k})).collect::<Vec<_>>(),
                    "images": images.iter().map(|(p, ks)| json!({"namePattern": p,
                        "keys": ks.iter().map(|k| json!({"name": k})).collect::<Vec<_>>()})).collect::<Vec<_>>()}}})
        })
}

fn tmax_objects() -> impl Strategy<Value = Vec<Value>> {
    let registry = (
        prop_oneof![Just("reg.io"), Just("Core.Harbor.io:5000"), Just("docker.io"), Just("a/b")],
        any::<bool>(),
        prop::option::of(Just("https://notary.reg.io")),
        prop::collection::vec("[a-z0-9]{1,8}", 0..200),
        prop::option::of(prop_oneof![Just("k8s://team/keys"), Just("k8s://team/missing"), Just("bad")]),
    )
        .prop_map(|(registry, check, notary, signers, key_ref)| {
            json!({"registry": registry, "signCheck": check, "notary": notary, "signer": signers, "cosignKeyRef": key_ref})
        });
    let policy = |kind: &'static str, namespace: Option<&'static str>| {
        prop::collection::vec(registry.clone(), 0..12).prop_map(move |registries| {
            json!({"apiVersion": "tmax.io/v1", "kind": kind,
                "metadata": {"name": "p", "namespace": namespace}, "spec": {"registries": registries}})
        })
    };
    (
        prop::collection::vec("[a-z0-9./:*@-]{1,40}", 0..60),
        prop::collection::vec("[a-z0-9*-]{1,20}", 0..10),
        policy("ClusterRegistrySecurityPolicy", None),
        policy("RegistrySecurityPolicy", Some("team")),
        0usize..40,
    )
        .prop_map(|(images, namespaces, cluster, namespaced, keys)| {
            vec![
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "image-validation-webhook-whitelist", "namespace": "registry-system"},
                    "data": {"whitelist-images": images.join("\n"), "whitelist-namespaces": namespaces.join("\n")}}),
                cluster,
                namespaced,
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys", "namespace": "team"},
                    "stringData": {"cosign.pub": KEY.repeat(keys)}}),
            ]
        })
}

/// Runs one request with `sources` over `cluster`; checks it is answered and
/// within budget, and returns (bytes answered, total, peak).
fn within_budget(sources: Value, cluster: &Cluster) -> Result<(usize, usize, usize), String> {
    let policy = Policy::from_json(&json!({"sources": sources}).to_string()).unwrap();
    let req = Request::pod(&[
        "reg.io/team/a-app/x:v1",
        "nginx",
        "core.harbor.io:5000/app/web:1.0",
        "a.corp.io/xxxxxxxx/a/b/c:v1",
    ])
    .namespace("team")
    .admission_request();
    let answered = Rc::new(Cell::new(0));
    let host = host(cluster, answered.clone());
    let (response, total, peak) = measure(|| decide::validate(&req, &policy, &host));
    if !response.accepted && response.message.as_deref().unwrap_or("").is_empty() {
        return Err("rejected without a message".to_string());
    }
    let input = answered.get();
    if total > TOTAL_PER_BYTE * input + ALLOWANCE || peak > PEAK_PER_BYTE * input + ALLOWANCE {
        return Err(format!(
            "{input} bytes answered made the guest allocate {total} bytes in total, {peak} at once"
        ));
    }
    Ok((input, total, peak))
}

proptest! {
    #[test]
    fn tanzu_objects_cost_what_they_weigh(policy in tanzu_policy()) {
        within_budget(json!({"tanzu": true}), &Cluster(vec![policy])).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn tmax_objects_cost_what_they_weigh(objects in tmax_objects()) {
        within_budget(json!({"tmax": true}), &Cluster(objects)).map_err(TestCaseError::fail)?;
    }
}

/// The worst cases named: 2^25 spellings of one namePattern, a 1 MiB
/// namePattern of starred components, 200 signers over 40 keys.
#[test]
fn named_worst_cases_stay_within_budget() {
    let tanzu = |pattern: String| {
        Cluster(vec![
            json!({"apiVersion": "signing.apps.tanzu.vmware.com/v1beta1",
            "kind": "ClusterImagePolicy", "metadata": {"name": "image-policy"},
            "spec": {"verification": {"keys": [{"name": "k", "publicKey": KEY}],
                "images": [{"namePattern": pattern, "keys": [{"name": "k"}]}]}}}),
        ])
    };
    let stars = format!("reg.io/{}", vec!["a*"; 25].join("/"));
    let long = format!("reg.io/{}", vec!["x*"; 1 << 18].join("/"));
    for cluster in [tanzu(stars), tanzu(long)] {
        let (input, total, peak) = within_budget(json!({"tanzu": true}), &cluster).unwrap();
        println!("tanzu: {input} bytes answered, {total} allocated, peak {peak}");
    }
    let signers: Vec<String> = (0..200).map(|i| format!("signer{i}")).collect();
    let cluster = Cluster(vec![
        json!({"apiVersion": "tmax.io/v1", "kind": "RegistrySecurityPolicy",
            "metadata": {"name": "p", "namespace": "team"},
            "spec": {"registries": vec![json!({"registry": "reg.io", "signCheck": true,
                "cosignKeyRef": "k8s://team/keys", "signer": signers}); 50]}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys", "namespace": "team"},
            "stringData": {"cosign.pub": KEY.repeat(40)}}),
    ]);
    let (input, total, peak) = within_budget(json!({"tmax": true}), &cluster).unwrap();
    println!("tmax: {input} bytes answered, {total} allocated, peak {peak}");
}
