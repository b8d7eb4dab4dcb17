//! The condition language of `attestation` checks: tests over a verified
//! in-toto statement and its signing certificate's claims.
//!
//! A condition is `{path, op, value}`, `{all: [...]}` or `{any: [...]}`
//! (nested freely; a list at the top is `all`). Ops: `equals` (JSON
//! equality), `glob` (`*` globs, on strings), `in` (equals one item of the
//! `value` list), `exists` (`value` true, the default, or false).
//!
//! A path starts at `statement`, `predicate` (the statement's), `subject`
//! (the statement subject naming the image digest) or `certificate` (the
//! claims: `subject`, `issuer`, the Fulcio extensions by name), then
//! `.name`, `["name.with.dots"]`, `[3]` or `[*]` (some element satisfies
//! the test). A path that leads nowhere fails every test but `exists: false`.

use crate::glob::Glob;
use serde_json::Value;

/// A compiled condition.
#[derive(Debug, Clone)]
pub(crate) enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Test { path: Path, op: Op },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Path {
    text: String,
    root: Root,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    Statement,
    Predicate,
    Subject,
    Certificate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
    Each,
}

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Equals(Value),
    Glob(Glob),
    In(Vec<Value>),
    Exists(bool),
}

/// What conditions are evaluated on.
pub(crate) struct Facts<'a> {
    pub(crate) statement: &'a Value,
    pub(crate) subject: &'a Value,
    pub(crate) certificate: &'a Value,
}

/// Compiles settings JSON; errors name the path below `at`.
pub(crate) fn compile(value: &Value, at: &str) -> Result<Condition, String> {
    if let Value::Array(list) = value {
        return list_of(list, at).map(Condition::All);
    }
    let Value::Object(map) = value else {
        return Err(format!("{at}: a condition is an object or a list"));
    };
    for (name, make) in [
        ("all", Condition::All as fn(_) -> _),
        ("any", Condition::Any),
    ] {
        if let Some(list) = map.get(name) {
            if map.len() != 1 {
                return Err(format!("{at}: {name} stands alone (no other fields)"));
            }
            let Value::Array(list) = list else {
                return Err(format!("{at}.{name}: must be a list of conditions"));
            };
            return list_of(list, &format!("{at}.{name}")).map(make);
        }
    }
    if let Some(unknown) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "path" | "op" | "value"))
    {
        return Err(format!(
            "{at}: unknown field `{unknown}` (path, op, value, or all / any)"
        ));
    }
    let path = match map.get("path") {
        Some(Value::String(p)) => parse_path(p).map_err(|e| format!("{at}.path: {p:?}: {e}"))?,
        _ => return Err(format!("{at}.path: a string is required")),
    };
    let op = map.get("op").and_then(Value::as_str).unwrap_or("");
    let value = map.get("value");
    let op = match (op, value) {
        ("equals", Some(v)) => Op::Equals(v.clone()),
        ("glob", Some(Value::String(g))) => Op::Glob(Glob::new(g)),
        ("glob", _) => return Err(format!("{at}.value: glob needs a string")),
        ("in", Some(Value::Array(items))) => Op::In(items.clone()),
        ("in", _) => return Err(format!("{at}.value: in needs a list")),
        ("exists", None) => Op::Exists(true),
        ("exists", Some(Value::Bool(b))) => Op::Exists(*b),
        ("exists", _) => return Err(format!("{at}.value: exists takes true or false")),
        ("equals", None) => return Err(format!("{at}.value: equals needs a value")),
        (other, _) => {
            return Err(format!(
                "{at}.op: unknown op {other:?} (equals, glob, in, exists)"
            ))
        }
    };
    Ok(Condition::Test { path, op })
}

fn list_of(list: &[Value], at: &str) -> Result<Vec<Condition>, String> {
    if list.is_empty() {
        return Err(format!("{at}: at least one condition is required"));
    }
    list.iter()
        .enumerate()
        .map(|(i, c)| compile(c, &format!("{at}[{i}]")))
        .collect()
}

fn parse_path(text: &str) -> Result<Path, String> {
    let root_end = text.find(['.', '[']).unwrap_or(text.len());
    let root = match &text[..root_end] {
        "statement" => Root::Statement,
        "predicate" => Root::Predicate,
        "subject" => Root::Subject,
        "certificate" => Root::Certificate,
        _ => return Err("root must be statement, predicate, subject or certificate".to_string()),
    };
    let mut rest = &text[root_end..];
    let mut segments = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return Err("empty segment".to_string());
            }
            segments.push(Segment::Key(after[..end].to_string()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix("[\"") {
            let end = after.find("\"]").ok_or("unterminated [\"...\"]")?;
            segments.push(Segment::Key(after[..end].to_string()));
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').ok_or("unterminated [...]")?;
            segments.push(match &after[..end] {
                "*" => Segment::Each,
                n => Segment::Index(
                    n.parse()
                        .map_err(|_| format!("[{n}] is not an index, [*] or [\"key\"]"))?,
                ),
            });
            rest = &after[end + 1..];
        } else {
            return Err(format!("unexpected {rest:?}"));
        }
    }
    Ok(Path {
        text: text.to_string(),
        root,
        segments,
    })
}

impl Condition {
    /// `Ok` when the facts satisfy it; `Err` names the first test that fails.
    pub(crate) fn check(&self, facts: &Facts<'_>) -> Result<(), String> {
        match self {
            Condition::All(list) => list.iter().try_for_each(|c| c.check(facts)),
            Condition::Any(list) => {
                let mut why = Vec::new();
                for c in list {
                    match c.check(facts) {
                        Ok(()) => return Ok(()),
                        Err(e) => why.push(e),
                    }
                }
                Err(format!("none of: {}", why.join(" | ")))
            }
            Condition::Test { path, op } => {
                let start = match path.root {
                    Root::Statement => Some(facts.statement),
                    Root::Predicate => facts.statement.get("predicate"),
                    Root::Subject => Some(facts.subject),
                    Root::Certificate => Some(facts.certificate),
                };
                let mut found = Vec::new();
                if let Some(start) = start {
                    resolve(start, &path.segments, &mut found);
                }
                let passes = match op {
                    Op::Exists(wanted) => found.is_empty() != *wanted,
                    _ => found.iter().any(|v| op.test(v)),
                };
                if passes {
                    return Ok(());
                }
                let actual = match found.as_slice() {
                    [] => "absent".to_string(),
                    [one] => one.to_string(),
                    many => format!("{} values", many.len()),
                };
                Err(format!("{} {}: {actual}", path.text, op.describe()))
            }
        }
    }
}

impl Op {
    fn test(&self, v: &Value) -> bool {
        match self {
            Op::Equals(wanted) => v == wanted,
            Op::Glob(glob) => v.as_str().is_some_and(|s| glob.is_match(s)),
            Op::In(items) => items.contains(v),
            Op::Exists(_) => true,
        }
    }

    fn describe(&self) -> String {
        match self {
            Op::Equals(v) => format!("equals {v}"),
            Op::Glob(g) => format!("glob {:?}", g.as_str()),
            Op::In(items) => format!("in {}", Value::Array(items.clone())),
            Op::Exists(true) => "exists".to_string(),
            Op::Exists(false) => "does not exist".to_string(),
        }
    }
}

/// Every value the segments lead to from `at` (`[*]` fans out).
fn resolve<'a>(at: &'a Value, segments: &[Segment], out: &mut Vec<&'a Value>) {
    let Some((first, rest)) = segments.split_first() else {
        out.push(at);
        return;
    };
    match (first, at) {
        (Segment::Key(k), Value::Object(map)) => {
            if let Some(v) = map.get(k) {
                resolve(v, rest, out);
            }
        }
        (Segment::Index(i), Value::Array(list)) => {
            if let Some(v) = list.get(*i) {
                resolve(v, rest, out);
            }
        }
        (Segment::Each, Value::Array(list)) => {
            for v in list {
                resolve(v, rest, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts() -> (Value, Value, Value) {
        let statement = json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "app", "digest": {"sha256": "ab"}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {
                "buildDefinition": {"externalParameters": {"workflow": {"path": ".github/workflows/release.yml", "ref": "refs/tags/v1.2"}},
                                    "resolvedDependencies": [{"uri": "git+https://github.com/corp/app"}, {"digest": {"gitCommit": "2a6b"}}]},
                "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}},
                "odd.key": 1
            }
        });
        let subject = statement["subject"][0].clone();
        let certificate = json!({"subject": "https://github.com/corp/app/.github/workflows/release.yml@refs/tags/v1.2",
                                 "issuer": "https://token.actions.githubusercontent.com", "runnerEnvironment": "github-hosted",
                                 "sourceRepositoryRef": "refs/tags/v1.2"});
        (statement, subject, certificate)
    }

    fn check(conditions: Value) -> Result<(), String> {
        let (statement, subject, certificate) = facts();
        let facts = Facts {
            statement: &statement,
            subject: &subject,
            certificate: &certificate,
        };
        compile(&conditions, "c")?.check(&facts)
    }

    #[test]
    fn slsa_provenance_conditions() {
        check(json!([
            {"path": "certificate.sourceRepositoryRef", "op": "glob", "value": "refs/tags/v*"},
            {"path": "certificate.runnerEnvironment", "op": "in", "value": ["github-hosted"]},
            {"path": "predicate.buildDefinition.externalParameters.workflow.path", "op": "equals", "value": ".github/workflows/release.yml"},
            {"path": "predicate.runDetails.builder.id", "op": "equals", "value": "https://github.com/actions/runner/github-hosted"},
            {"any": [{"path": "predicate.buildDefinition.resolvedDependencies[*].digest.gitCommit", "op": "exists"},
                     {"path": "predicate.nope", "op": "exists"}]},
            {"path": "predicate[\"odd.key\"]", "op": "equals", "value": 1},
            {"path": "subject.digest.sha256", "op": "equals", "value": "ab"},
            {"path": "statement.subject[0].name", "op": "equals", "value": "app"},
            {"path": "predicate.nope", "op": "exists", "value": false}
        ]))
        .unwrap();
    }

    #[test]
    fn failures_name_the_test_and_what_was_found() {
        assert_eq!(
            check(json!({"path": "certificate.sourceRepositoryRef", "op": "glob", "value": "refs/heads/*"})).unwrap_err(),
            r#"certificate.sourceRepositoryRef glob "refs/heads/*": "refs/tags/v1.2""#
        );
        assert_eq!(
            check(json!({"all": [{"path": "predicate.nope.x", "op": "equals", "value": 1}]}))
                .unwrap_err(),
            "predicate.nope.x equals 1: absent"
        );
        assert_eq!(
            check(json!({"any": [{"path": "certificate.issuer", "op": "in", "value": ["a"]}, {"path": "subject.name", "op": "exists", "value": false}]})).unwrap_err(),
            r#"none of: certificate.issuer in ["a"]: "https://token.actions.githubusercontent.com" | subject.name does not exist: "app""#
        );
        // glob on a number never matches.
        assert!(
            check(json!({"path": "predicate[\"odd.key\"]", "op": "glob", "value": "*"})).is_err()
        );
    }

    #[test]
    fn bad_conditions_are_settings_errors_with_their_path() {
        let cases = [
            (
                json!({"all": [{"path": "predicate.x", "op": "regex", "value": "a"}]}),
                r#"c.all[0].op: unknown op "regex" (equals, glob, in, exists)"#,
            ),
            (
                json!([{"path": "predicate.x", "op": "glob", "value": 1}]),
                "c[0].value: glob needs a string",
            ),
            (
                json!({"path": "predicate..x", "op": "exists"}),
                r#"c.path: "predicate..x": empty segment"#,
            ),
            (
                json!({"path": "spec.x", "op": "exists"}),
                r#"c.path: "spec.x": root must be statement, predicate, subject or certificate"#,
            ),
            (
                json!({"path": "predicate[x]", "op": "exists"}),
                r#"c.path: "predicate[x]": [x] is not an index, [*] or ["key"]"#,
            ),
            (
                json!({"path": "predicate.x", "op": "in", "value": "a"}),
                "c.value: in needs a list",
            ),
            (
                json!({"path": "predicate.x", "op": "exists", "value": "yes"}),
                "c.value: exists takes true or false",
            ),
            (
                json!({"path": "predicate.x", "op": "equals"}),
                "c.value: equals needs a value",
            ),
            (
                json!({"path": "predicate.x", "op": "exists", "when": 1}),
                "c: unknown field `when` (path, op, value, or all / any)",
            ),
            (
                json!({"all": [], }),
                "c.all: at least one condition is required",
            ),
            (
                json!({"all": [{"path": "predicate", "op": "exists"}], "any": []}),
                "c: all stands alone (no other fields)",
            ),
            (json!({"any": {}}), "c.any: must be a list of conditions"),
            (json!("x"), "c: a condition is an object or a list"),
            (json!({"op": "exists"}), "c.path: a string is required"),
        ];
        for (conditions, message) in cases {
            assert_eq!(
                compile(&conditions, "c").unwrap_err(),
                message,
                "{conditions}"
            );
        }
    }
}
