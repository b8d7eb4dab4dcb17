//! `imagegate check --output junit`: one test case per image (and one per
//! object rejected as a whole), in the JUnit XML that CI systems (GitLab,
//! Jenkins, GitHub test reporters) read: `<testsuites>` / `<testsuite>` /
//! `<testcase classname name>` with `<failure>` for denials and `<skipped>`
//! for exempt and unchecked images. Warnings pass, their text in
//! `<system-out>`.

use std::fmt::Write as _;

use super::{Checked, Status};

pub fn render(checked: &Checked) -> String {
    let mut cases = String::new();
    let (mut tests, mut failures, mut skipped) = (0, 0, 0);
    for object in &checked.objects {
        let classname = match object.line {
            Some(line) => format!("{}:{line}", object.source.file),
            None => object.source.file.clone(),
        };
        if object.denied_as_a_whole() {
            tests += 1;
            failures += 1;
            let message = object.message.as_deref().unwrap_or("rejected");
            let _ = writeln!(
                cases,
                "    <testcase classname=\"{}\" name=\"{}\">\n      <failure message=\"{}\" type=\"rejected\"/>\n    </testcase>",
                escape(&classname),
                escape(&object.title()),
                escape(message)
            );
        }
        for image in &object.images {
            tests += 1;
            let r = &image.report;
            let name = format!("{}: {}: {}", object.title(), r.container, r.image);
            let reason = match (&r.rule, &r.reason) {
                (Some(rule), Some(reason)) => format!("rule {rule:?}: {reason}"),
                (Some(rule), None) => format!("rule {rule:?}"),
                (None, reason) => reason.clone().unwrap_or_default(),
            };
            let body = match image.status {
                s if s.is_denial() => {
                    failures += 1;
                    format!(
                        "\n      <failure message=\"{}\" type=\"{}\"/>\n    ",
                        escape(&reason),
                        s.as_str()
                    )
                }
                Status::Exempt | Status::Unchecked => {
                    skipped += 1;
                    format!("\n      <skipped message=\"{}\"/>\n    ", escape(&reason))
                }
                Status::Warned => format!(
                    "\n      <system-out>{}</system-out>\n    ",
                    escape(&format!("warning: {reason}"))
                ),
                _ => String::new(),
            };
            let _ = writeln!(
                cases,
                "    <testcase classname=\"{}\" name=\"{}\">{body}</testcase>",
                escape(&classname),
                escape(&name)
            );
        }
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <testsuites name=\"imagegate check\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\">\n  \
         <testsuite name=\"imagegate check\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">\n\
         {cases}  </testsuite>\n</testsuites>\n"
    )
}

/// Text as XML attribute or element content.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 allows no other control characters, even escaped.
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn xml_special_and_control_characters() {
        assert_eq!(escape(r#"a<b>&"c"'"#), "a&lt;b&gt;&amp;&quot;c&quot;&apos;");
        assert_eq!(escape("x\u{1}y"), "x\\u{1}y");
    }
}
