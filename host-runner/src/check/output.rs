//! `imagegate check` outputs: text for people and CI logs, JSON for tools
//! (JUnit and SARIF have their own modules).

use std::fmt::Write as _;

use imagegate_policy::wire::{ImageReport, RuleMatch};

use super::{Checked, ImageResult, ObjectResult, Status};
use crate::runtime::admission::AdmissionResponse;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Junit,
    Sarif,
}

/// The output in `format`.
pub fn render(checked: &Checked, format: Format) -> anyhow::Result<String> {
    Ok(match format {
        Format::Text => text(checked),
        Format::Json => {
            let mut out = serde_json::to_string_pretty(&serde_json::json!({
                "objects": checked.objects,
                "skipped": checked.skipped,
                "summary": checked.summary(),
            }))?;
            out.push('\n');
            out
        }
        Format::Junit => super::junit::render(checked),
        Format::Sarif => {
            let mut out = serde_json::to_string_pretty(&super::sarif::render(checked))?;
            out.push('\n');
            out
        }
    })
}

/// Grouped by object, one line per image with its file and line (which CI
/// logs and editors link), the reason indented under it, then a summary:
///
/// ```text
/// deploy/web.yaml:1: Deployment shop/web
///   DENIED     deploy/web.yaml:19  container "cache": redis (docker.io/library/redis:latest)
///              rule "official": tag "latest" is denied (tags.deny "latest")
///   allowed    deploy/web.yaml:17  container "web": registry.corp.example/shop/web:2.3.1
///              rule "corporate"
///   UNVERIFIED deploy/web.yaml:23  container "api": registry.corp.example/signed/api:1.4.0
///              rule "signed": no signature check passed: ...: not verified offline: pass --online, ...
/// ```
pub fn text(checked: &Checked) -> String {
    let mut out = String::new();
    for object in &checked.objects {
        let _ = write!(out, "{}: {}", location(object, object.line), object.title());
        if let Some(template) = &object.source.template {
            let _ = write!(out, " (from {template})");
        }
        out.push('\n');
        if object.denied_as_a_whole() {
            let message = object.message.as_deref().unwrap_or("rejected");
            let _ = writeln!(out, "  {:<10} {message}", "REJECTED");
        }
        for image in &object.images {
            image_lines(&mut out, object, image);
        }
        if object.images.is_empty() && !object.denied_as_a_whole() {
            let _ = writeln!(out, "  no images");
        }
    }
    for s in &checked.skipped {
        let _ = writeln!(
            out,
            "{}: document {} skipped: {}",
            s.file,
            s.document + 1,
            s.reason
        );
    }
    out.push_str(&summary_line(checked));
    out.push('\n');
    out
}

fn image_lines(out: &mut String, object: &ObjectResult, image: &ImageResult) {
    let r = &image.report;
    // What fails the check stands out in a log.
    let status = match image.status {
        Status::Denied => "DENIED",
        Status::NotVerifiedOffline => "UNVERIFIED",
        s => s.as_str(),
    };
    let image_text = match &r.normalized {
        Some(n) if *n != r.image => format!("{} ({n})", r.image),
        _ => r.image.clone(),
    };
    let _ = writeln!(
        out,
        "  {status:<10} {}  {}: {image_text}",
        location(object, image.line),
        r.container
    );
    let mut detail = Vec::new();
    match (&r.rule, &r.reason) {
        (Some(rule), Some(reason)) => detail.push(format!("rule {rule:?}: {reason}")),
        (Some(rule), None) => detail.push(format!("rule {rule:?}")),
        (None, Some(reason)) => detail.push(reason.clone()),
        (None, None) => {}
    }
    if let Some(pinned) = &r.pinned {
        detail.push(format!("pinned: {pinned}"));
    }
    for line in detail {
        let _ = writeln!(out, "  {:<10} {line}", "");
    }
}

/// `file:line`, or the file and document when the line is unknown.
fn location(object: &ObjectResult, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{}:{line}", object.source.file),
        None => format!(
            "{} (document {})",
            object.source.file,
            object.source.document + 1
        ),
    }
}

/// `imagegate check: 3 objects (1 rejected), 7 images: 4 allowed, 2 denied, 1 not verified offline`.
pub fn summary_line(checked: &Checked) -> String {
    let s = checked.summary();
    let mut counts = Vec::new();
    for (n, what) in [
        (s.allowed, Status::Allowed),
        (s.warned, Status::Warned),
        (s.denied, Status::Denied),
        (s.not_verified_offline, Status::NotVerifiedOffline),
        (s.exempt, Status::Exempt),
        (s.unchecked, Status::Unchecked),
    ] {
        if n > 0 {
            counts.push(format!("{n} {}", what.as_str()));
        }
    }
    let mut line = format!("imagegate check: {}", plural(s.objects, "object"));
    if s.rejected_objects > 0 {
        let _ = write!(line, " ({} rejected)", s.rejected_objects);
    }
    let _ = write!(line, ", {}", plural(s.images, "image"));
    if !counts.is_empty() {
        let _ = write!(line, ": {}", counts.join(", "));
    }
    if s.skipped_documents > 0 {
        let _ = write!(
            line,
            "; {} skipped (not Kubernetes objects)",
            plural(s.skipped_documents, "document")
        );
    }
    line
}

/// `1 image`, `2 images`.
fn plural(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// One admission explained for people (`imagegate run --output text`): the
/// decision, then per image the decision, the rule and why it won over the
/// other matching rules (priority, then order), the normalized form, each
/// host check with its result and the pin; then the warnings, audit
/// annotations and the patch.
pub fn explanation(response: &AdmissionResponse, reports: &[ImageReport]) -> String {
    let mut out = String::new();
    let message = response.status.as_ref().and_then(|s| s.message.as_deref());
    match (response.allowed, message) {
        (true, _) => out.push_str("ADMITTED\n"),
        (false, Some(message)) => {
            let _ = writeln!(out, "REJECTED: {message}");
        }
        (false, None) => out.push_str("REJECTED\n"),
    }
    for r in reports {
        let _ = writeln!(out, "\n{}: {}", r.container, r.image);
        if let Some(normalized) = r.normalized.as_ref().filter(|n| **n != r.image) {
            let _ = writeln!(out, "  normalized: {normalized}");
        }
        let by = match &r.rule {
            Some(rule) => format!(" by rule {rule:?}"),
            None if r.normalized.is_some() && r.decision != "exempt" => {
                " by `unmatched` (no rule matches)".to_string()
            }
            None => String::new(),
        };
        let _ = writeln!(out, "  {}{by}", r.decision);
        if let Some(why) = precedence(&r.precedence) {
            let _ = writeln!(out, "  why this rule: {why}");
        }
        if let Some(reason) = &r.reason {
            let _ = writeln!(out, "  reason: {reason}");
        }
        for c in &r.checks {
            match (&c.digest, &c.error) {
                (_, Some(error)) => {
                    let _ = writeln!(out, "  check {}: failed: {error}", c.check);
                }
                (Some(digest), None) => {
                    let _ = writeln!(out, "  check {}: passed ({digest})", c.check);
                }
                (None, None) => {
                    let _ = writeln!(out, "  check {}: passed", c.check);
                }
            }
        }
        if let Some(pinned) = &r.pinned {
            let _ = writeln!(out, "  pinned: {pinned}");
        } else if let Some(pin) = &r.pin {
            let _ = writeln!(
                out,
                "  pin {pin}: not written (this request cannot change the image)"
            );
        }
    }
    let warnings = response.warnings.as_deref().unwrap_or_default();
    if !warnings.is_empty() {
        out.push_str("\nwarnings:\n");
        for w in warnings {
            let _ = writeln!(out, "  {w}");
        }
    }
    if let Some(annotations) = response
        .audit_annotations
        .as_ref()
        .filter(|a| !a.is_empty())
    {
        out.push_str("\naudit annotations:\n");
        for (key, value) in annotations {
            let _ = writeln!(out, "  {key}: {value}");
        }
    }
    if let Ok(Some(patch)) = response.decoded_patch() {
        let _ = writeln!(out, "\npatch (JSONPatch): {patch}");
    }
    out
}

/// Why the deciding rule won: `priority 10 (rules[2]), above "any" (priority 0); before "corp-too" (same priority, listed later, rules[3])`.
fn precedence(matches: &[RuleMatch]) -> Option<String> {
    let winner = matches.iter().find(|m| m.outcome == "decided")?;
    let mut why = vec![format!(
        "priority {} (rules[{}])",
        winner.priority, winner.index
    )];
    if matches.len() == 1 {
        why.push("the only rule that matches".to_string());
    }
    for m in matches.iter().filter(|m| m.rule != winner.rule) {
        why.push(match m.outcome.as_str() {
            "skipped" => format!(
                "{:?} (priority {}, rules[{}]) tried first, skipped: its imageLabels do not hold",
                m.rule, m.priority, m.index
            ),
            _ if m.priority < winner.priority => format!(
                "above {:?} (priority {}, rules[{}])",
                m.rule, m.priority, m.index
            ),
            _ => format!(
                "before {:?} (same priority, listed later: rules[{}])",
                m.rule, m.index
            ),
        });
    }
    Some(why.join("; "))
}
