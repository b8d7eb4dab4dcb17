//! Tiny waPC test guests written in WAT, so the runtime and the CLI are
//! exercised without building the real policy.
//!
//! Every guest answers `protocol_version`, `validate_settings`, `validate`
//! and `forward`. `forward` takes `binding\nnamespace\noperation\npayload`,
//! makes that host call and returns the host's answer (or fails with the
//! host's error), so tests see exact host error texts through the real ABI.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// What a guest does in `validate` / `validate_settings`.
#[derive(Clone)]
pub enum Behavior {
    /// validate: accepted; settings: valid.
    Accept,
    /// Spin forever.
    Loop,
    /// `unreachable`.
    Trap,
    /// Grow memory by this many 64 KiB pages, then accept.
    Grow(u32),
    /// Write to WASI stdout and stderr, then accept.
    WriteStdio,
    /// Answer this raw text.
    Respond(String),
    /// Make a host call; success -> accept/valid, error -> reject/invalid
    /// with message "host call failed".
    HostCall {
        namespace: String,
        operation: String,
        payload: String,
    },
}

impl Behavior {
    pub fn dns(host: &str) -> Behavior {
        Behavior::HostCall {
            namespace: "net".into(),
            operation: "v1/dns_lookup_host".into(),
            payload: format!("\"{host}\""),
        }
    }
}

/// Places string constants in the data segment.
struct Data {
    next: u32,
    wat: String,
}

impl Data {
    fn add(&mut self, text: &str) -> (u32, usize) {
        let ptr = self.next;
        let escaped: String = text.bytes().map(|b| format!("\\{b:02x}")).collect();
        self.wat
            .push_str(&format!("  (data (i32.const {ptr}) \"{escaped}\")\n"));
        self.next += text.len() as u32 + 8;
        (ptr, text.len())
    }
}

fn respond(data: &mut Data, text: &str) -> String {
    let (p, l) = data.add(text);
    format!("(call $guest_response (i32.const {p}) (i32.const {l})) (return (i32.const 1))")
}

fn body(data: &mut Data, behavior: &Behavior, ok: &str, failed: &str) -> String {
    match behavior {
        Behavior::Accept => respond(data, ok),
        Behavior::Loop => "(loop $spin (br $spin)) (unreachable)".into(),
        Behavior::Trap => "(unreachable)".into(),
        Behavior::Grow(pages) => format!(
            "(drop (memory.grow (i32.const {pages}))) {}",
            respond(data, ok)
        ),
        Behavior::WriteStdio => {
            let (p, l) = data.add("GUEST WROTE THIS\n");
            // iovec at 200: {ptr, len}; bytes written at 208
            format!(
                "(i32.store (i32.const 200) (i32.const {p})) (i32.store (i32.const 204) (i32.const {l}))
                 (drop (call $fd_write (i32.const 1) (i32.const 200) (i32.const 1) (i32.const 208)))
                 (drop (call $fd_write (i32.const 2) (i32.const 200) (i32.const 1) (i32.const 208)))
                 {}",
                respond(data, ok)
            )
        }
        Behavior::Respond(text) => respond(data, text),
        Behavior::HostCall {
            namespace,
            operation,
            payload,
        } => {
            let (bp, bl) = data.add("kubewarden");
            let (np, nl) = data.add(namespace);
            let (op, ol) = data.add(operation);
            let (pp, pl) = data.add(payload);
            format!(
                "(if (call $host_call (i32.const {bp}) (i32.const {bl}) (i32.const {np}) (i32.const {nl})
                        (i32.const {op}) (i32.const {ol}) (i32.const {pp}) (i32.const {pl}))
                   (then {}) (else {}))",
                respond(data, ok),
                respond(data, failed)
            )
        }
    }
}

/// The WAT text of a guest.
pub fn wat(validate: &Behavior, settings: &Behavior) -> String {
    let mut data = Data {
        next: 1024,
        wat: String::new(),
    };
    let validate_body = body(
        &mut data,
        validate,
        r#"{"accepted":true,"message":null,"code":null,"mutated_object":null,"audit_annotations":null,"warnings":null}"#,
        r#"{"accepted":false,"message":"host call failed"}"#,
    );
    let settings_body = body(
        &mut data,
        settings,
        r#"{"valid":true,"message":null}"#,
        r#"{"valid":false,"message":"host call failed"}"#,
    );
    let version = respond(&mut data, "\"v1\"");
    let (kw, kwl) = data.add("kubewarden");
    format!(
        r#"(module
  (import "wapc" "__guest_request" (func $guest_request (param i32 i32)))
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))
  (import "wapc" "__guest_error" (func $guest_error (param i32 i32)))
  (import "wapc" "__host_call" (func $host_call (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wapc" "__host_response_len" (func $host_response_len (result i32)))
  (import "wapc" "__host_response" (func $host_response (param i32)))
  (import "wapc" "__host_error_len" (func $host_error_len (result i32)))
  (import "wapc" "__host_error" (func $host_error (param i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 8)
{data}
  ;; index of the first '\n' in [p, end), or end
  (func $nl (param $p i32) (param $end i32) (result i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
      (br_if $done (i32.eq (i32.load8_u (local.get $p)) (i32.const 10)))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br $next)))
    (local.get $p))
  ;; forward: binding\nnamespace\noperation\npayload at 65536
  (func $forward (param $len i32) (result i32)
    (local $end i32) (local $a i32) (local $b i32) (local $c i32) (local $n i32)
    (local.set $end (i32.add (i32.const 65536) (local.get $len)))
    (local.set $a (call $nl (i32.const 65536) (local.get $end)))
    (local.set $b (call $nl (i32.add (local.get $a) (i32.const 1)) (local.get $end)))
    (local.set $c (call $nl (i32.add (local.get $b) (i32.const 1)) (local.get $end)))
    (if (call $host_call
          (i32.const 65536) (i32.sub (local.get $a) (i32.const 65536))
          (i32.add (local.get $a) (i32.const 1)) (i32.sub (local.get $b) (i32.add (local.get $a) (i32.const 1)))
          (i32.add (local.get $b) (i32.const 1)) (i32.sub (local.get $c) (i32.add (local.get $b) (i32.const 1)))
          (i32.add (local.get $c) (i32.const 1)) (i32.sub (local.get $end) (i32.add (local.get $c) (i32.const 1))))
      (then
        (local.set $n (call $host_response_len))
        (call $host_response (i32.const 262144))
        (call $guest_response (i32.const 262144) (local.get $n))
        (return (i32.const 1))))
    (local.set $n (call $host_error_len))
    (call $host_error (i32.const 262144))
    (call $guest_error (i32.const 262144) (local.get $n))
    (i32.const 0))
  (func (export "__guest_call") (param $op_len i32) (param $msg_len i32) (result i32)
    (call $guest_request (i32.const 0) (i32.const 65536))
    ;; "forward"
    (if (i32.eq (i32.load8_u (i32.const 0)) (i32.const 102))
      (then (return (call $forward (local.get $msg_len)))))
    ;; "protocol_version"
    (if (i32.eq (i32.load8_u (i32.const 0)) (i32.const 112))
      (then {version}))
    ;; "validate_settings"
    (if (i32.eq (local.get $op_len) (i32.const 17))
      (then {settings_body}))
    ;; "validate"
    (if (i32.eq (local.get $op_len) (i32.const 8))
      (then {validate_body}))
    (call $guest_error (i32.const {kw}) (i32.const {kwl}))
    (i32.const 0))
  (func (export "wapc_init")))
"#,
        data = data.wat,
    )
}

/// Compiles a guest to a .wasm file in `dir`.
pub fn write(dir: &Path, name: &str, validate: &Behavior, settings: &Behavior) -> PathBuf {
    let bytes = wat::parse_str(wat(validate, settings)).expect("test guest WAT must parse");
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The uid of [`pod_review`]'s request.
pub const POD_UID: &str = "1299d386-525b-4032-98ae-1949f69f9cfc";

/// A Pod CREATE request as an AdmissionReview, as text.
pub fn pod_review() -> String {
    imagegate_policy::testing::Request::pod(&["nginx:1.0.0"])
        .uid(POD_UID)
        .review()
        .to_string()
}
