//! `make demo`: the policy module's engine, compiled natively, decides a
//! sample request with sample settings.
//!
//! The module is built beside it (what a cluster loads); evaluating the
//! module itself needs the `imagegate` host, whose wasmtime/Cranelift build
//! takes about 8 minutes on a fresh 2-core machine, so the demo reaches its
//! first decision through the very code the module runs ([`report`], the
//! playground's entry point) instead. With no signature checks in the
//! sample settings, no host answer is simulated.
//!
//! ```text
//! cargo run -p imagegate-playground --example demo -- examples/settings.yaml examples/pod.json
//! ```

use std::process::ExitCode;

use imagegate_playground::{report, State};
use serde_json::Value;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [settings, workload] = args.as_slice() else {
        eprintln!("usage: demo SETTINGS.yaml OBJECT-OR-REQUEST.json");
        return ExitCode::from(2);
    };
    let read = |path: &String| {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))
    };
    let state = match (read(settings), read(workload)) {
        (Ok(settings), Ok(workload)) => State {
            settings,
            workload,
            ..State::default()
        },
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let report = report(&state);
    if report.get("allowed").is_none() {
        eprintln!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return ExitCode::from(2);
    }
    println!("allowed: {}", report["allowed"]);
    println!("message: {}", text(&report["message"]));
    for image in report["images"].as_array().into_iter().flatten() {
        let normalized = match text(&image["normalized"]) {
            n if n == text(&image["image"]) || n.is_empty() => String::new(),
            n => format!(" ({n})"),
        };
        let why = match (text(&image["rule"]), text(&image["reason"])) {
            (rule, reason) if rule.is_empty() => reason,
            (rule, reason) if reason.is_empty() => format!("rule \"{rule}\""),
            (rule, reason) => format!("rule \"{rule}\": {reason}"),
        };
        println!(
            "  {:<8} {}: {}{normalized}\n           {why}",
            text(&image["decision"]),
            text(&image["container"]),
            text(&image["image"]),
        );
    }
    ExitCode::SUCCESS
}

/// A JSON string as text; anything else (null) as "".
fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}
