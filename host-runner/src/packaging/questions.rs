//! `questions-ui.yml`: the settings form the Rancher Kubewarden UI shows when a
//! user installs the policy (embedded in artifacthub-pkg.yml as
//! `kubewarden/questions-ui`).
//!
//! Generated rather than hand-written so it cannot drift from the settings
//! schema (DESIGN.md "Settings") or from metadata.yml, whose description
//! becomes the form's header. The form covers the scalar and list settings;
//! `keys` and `rules[].verify` are nested maps and one-of variants that the
//! Rancher question types (`map[` holds strings, `sequence[` holds flat
//! objects) cannot express, and `breakGlass` is switched on by its mere
//! presence, which a form that writes every default would do silently; the
//! form tells users to edit those three as YAML.

use serde::Serialize;
use serde_json::{json, Value};

use crate::packaging::metadata::{keys, Metadata};

/// Top-level document: `questions: [...]`.
#[derive(Serialize, Debug, PartialEq)]
pub struct Questions {
    pub questions: Vec<Question>,
}

/// One Rancher question. Field order follows Kubewarden's own files.
#[derive(Serialize, Debug, PartialEq)]
pub struct Question {
    pub default: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub group: &'static str,
    pub label: &'static str,
    pub required: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hide_input: bool,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub variable: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subquestions: Option<Vec<Question>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_questions: Option<Vec<Question>>,
}

const GROUP: &str = "Settings";

fn question(variable: &str, label: &'static str, kind: &'static str, default: Value) -> Question {
    Question {
        default,
        description: None,
        group: GROUP,
        label,
        required: false,
        hide_input: false,
        kind,
        variable: variable.to_string(),
        options: None,
        subquestions: None,
        sequence_questions: None,
    }
}

impl Question {
    fn describe(mut self, text: &str) -> Self {
        self.description = Some(text.to_string());
        self
    }

    fn required(mut self) -> Self {
        self.required = true;
        self
    }

    fn options(mut self, options: &[&'static str]) -> Self {
        self.options = Some(options.to_vec());
        self
    }

    /// A `map[` whose fields are the `sub` questions (variables `parent.field`).
    fn fields(mut self, sub: Vec<Question>) -> Self {
        self.hide_input = true;
        self.subquestions = Some(sub);
        self
    }

    /// A `sequence[` of objects whose fields are the `items` questions.
    fn items(mut self, items: Vec<Question>) -> Self {
        self.sequence_questions = Some(items);
        self
    }
}

/// The imagegate settings form, headed by the policy description.
pub fn generate(metadata: &Metadata) -> anyhow::Result<Questions> {
    let description = metadata.required_annotation(keys::DESCRIPTION)?;
    let mut header =
        question("description", "Description", "string", Value::Null).describe(&format!(
            "{description}. Signature keys (`keys`), verification methods \
             (`rules[].verify`) and break-glass (`breakGlass`) are edited in the settings YAML."
        ));
    header.hide_input = true;

    let rule_fields = vec![
        question("name", "Name", "string", json!("")).describe("Unique rule name, shown in every message.").required(),
        question("images", "Images", "array[", json!([]))
            .describe("Image patterns: `*` within a path component, `**` across components, `*.example.com` hosts.")
            .required(),
        question("priority", "Priority", "int", json!(0)).describe("The highest priority matching rule decides."),
        question("action", "Action", "enum", json!("allow")).options(&["allow", "deny"]).required(),
        question("mode", "Mode", "enum", json!("enforce"))
            .describe("warn turns every denial of this rule into a warning.")
            .options(&["enforce", "warn"]),
        question("message", "Message", "string", Value::Null).describe("Appended to denials made by this rule."),
        question("tags", "Tags", "map[", json!({})).fields(vec![
            question("tags.allow", "Allowed tags", "array[", json!([])).describe("Tag globs; when set, other tags are denied."),
            question("tags.deny", "Denied tags", "array[", json!([])).describe("Tag globs, e.g. latest."),
            question("tags.requireDigest", "Require digest", "boolean", json!(false)),
        ]),
        question("pinDigest", "Pin digest", "boolean", json!(false))
            .describe("Rewrite admitted images to their verified or resolved digest."),
        question("onDigestMismatch", "On digest mismatch", "enum", json!("deny")).options(&["deny", "rewrite"]),
    ];

    Ok(Questions {
        questions: vec![
            header,
            question("exemptNamespaces", "Exempt namespaces", "array[", json!([]))
                .describe("Namespace globs whose requests are admitted with an audit annotation."),
            question("exemptImages", "Exempt images", "array[", json!([]))
                .describe("Image patterns that are never checked."),
            question("unmatched", "Unmatched images", "enum", Value::Null)
                .describe("What happens to images no rule matches. Default: deny if any rule allows, else allow.")
                .options(&["allow", "warn", "deny"]),
            question("requireFullyQualified", "Require fully qualified images", "boolean", json!(false))
                .describe("Deny images without a registry host (nginx, library/nginx): CRI-O resolves short names through its own aliases and search registries."),
            question("rules", "Rules", "sequence[", json!([])).items(rule_fields),
        ],
    })
}

/// The questions as YAML, ready for questions-ui.yml.
pub fn render(questions: &Questions) -> anyhow::Result<String> {
    Ok(serde_yaml_ng::to_string(questions)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> Metadata {
        Metadata::from_yaml(
            "rules: []\nmutating: true\nannotations:\n  io.kubewarden.policy.description: Gate images\n",
        )
        .unwrap()
    }

    fn variables(qs: &[Question], out: &mut Vec<String>) {
        for q in qs {
            out.push(q.variable.clone());
            variables(q.subquestions.as_deref().unwrap_or_default(), out);
            variables(q.sequence_questions.as_deref().unwrap_or_default(), out);
        }
    }

    #[test]
    fn header_carries_the_metadata_description() {
        let q = generate(&metadata()).unwrap();
        let header = &q.questions[0];
        assert_eq!(header.variable, "description");
        assert!(header.hide_input);
        assert!(header
            .description
            .as_deref()
            .unwrap()
            .starts_with("Gate images."));
    }

    #[test]
    fn description_is_required() {
        let m = Metadata::from_yaml("rules: []\nmutating: true\n").unwrap();
        let err = generate(&m).unwrap_err().to_string();
        assert!(err.contains(keys::DESCRIPTION), "{err}");
    }

    /// Map fields are addressed as `parent.field` (Rancher's convention);
    /// sequence item fields are relative to the item.
    #[test]
    fn variables_follow_the_settings_schema() {
        let q = generate(&metadata()).unwrap();
        let mut vars = Vec::new();
        variables(&q.questions, &mut vars);
        for expected in [
            "exemptNamespaces",
            "exemptImages",
            "unmatched",
            "requireFullyQualified",
            "rules",
            "name",
            "images",
            "tags.deny",
            "tags.requireDigest",
            "pinDigest",
            "onDigestMismatch",
        ] {
            assert!(
                vars.iter().any(|v| v == expected),
                "{expected} missing from {vars:?}"
            );
        }
        for q in &q.questions {
            for sub in q.subquestions.as_deref().unwrap_or_default() {
                assert!(
                    sub.variable.starts_with(&format!("{}.", q.variable)),
                    "{}",
                    sub.variable
                );
            }
        }
    }

    #[test]
    fn enum_defaults_are_options() {
        fn check(qs: &[Question]) {
            for q in qs {
                if let (Some(opts), Value::String(d)) = (&q.options, &q.default) {
                    assert!(opts.contains(&d.as_str()), "{}: {d}", q.variable);
                }
                check(q.subquestions.as_deref().unwrap_or_default());
                check(q.sequence_questions.as_deref().unwrap_or_default());
            }
        }
        check(&generate(&metadata()).unwrap().questions);
    }

    /// The settings a form filled with defaults produces: each non-null
    /// default at its variable path (`a.b` nested), one sequence item when
    /// `item` is given.
    fn filled(qs: &[Question], item: Option<&Value>) -> Value {
        let mut out = serde_json::Map::new();
        for q in qs {
            let mut value = q.default.clone();
            if let Some(sub) = &q.subquestions {
                let nested = filled(sub, None);
                let prefix = format!("{}.", q.variable);
                let fields: serde_json::Map<String, Value> = nested
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.strip_prefix(&prefix).unwrap().to_string(), v.clone()))
                    .collect();
                value = Value::Object(fields);
            }
            if let (Some(items), Some(item)) = (&q.sequence_questions, item) {
                let mut one = filled(items, None);
                for (k, v) in item.as_object().unwrap() {
                    one[k] = v.clone();
                }
                value = json!([one]);
            }
            if !value.is_null() && q.variable != "description" {
                out.insert(q.variable.clone(), value);
            }
        }
        Value::Object(out)
    }

    /// What the form produces is accepted by the policy's own settings
    /// validation (deny_unknown_fields: a renamed field breaks this test).
    #[test]
    fn form_defaults_are_valid_settings() {
        let q = generate(&metadata()).unwrap();
        let rule = json!({"name": "corp", "images": ["registry.corp.example/**"]});
        for settings in [
            filled(&q.questions, None),
            filled(&q.questions, Some(&rule)),
        ] {
            imagegate_policy::settings::Policy::from_json(&settings.to_string())
                .unwrap_or_else(|e| panic!("{settings}: {e}"));
        }
        let mut broken = filled(&q.questions, Some(&rule));
        broken["rules"][0]["tags"]["requiredigest"] = json!(true);
        assert!(imagegate_policy::settings::Policy::from_json(&broken.to_string()).is_err());
    }

    #[test]
    fn renders_rancher_keys() {
        let yaml = render(&generate(&metadata()).unwrap()).unwrap();
        assert!(yaml.starts_with("questions:\n"));
        assert!(yaml.contains("type: sequence[") && yaml.contains("sequence_questions:"));
        assert!(yaml.contains("hide_input: true") && yaml.contains("subquestions:"));
    }
}
