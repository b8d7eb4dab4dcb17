//! Where a value is in a YAML (or JSON) text: its line and column, by path.
//!
//! The values themselves are read by serde_yaml_ng, like every other input of
//! the host; this index only locates them, for messages (`settings.yaml:12:7:
//! rules[2].images[0]: ...`) and for SARIF regions (the line of a denied
//! image). serde_yaml_ng keeps no positions, so the index is built from
//! saphyr-parser's events, which carry them. Documents come in the order
//! serde_yaml_ng's multi-document reader yields them.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, Span};

/// A place in the text, both 1-based (columns in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// The positions of one YAML document's nodes.
#[derive(Debug, Clone)]
pub struct Document {
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
    Scalar(Position),
    Sequence(Position, Vec<Node>),
    /// Keys with the position of the key, then the value.
    Mapping(Position, Vec<(String, Position, Node)>),
}

impl Node {
    fn position(&self) -> Position {
        match self {
            Node::Scalar(p) | Node::Sequence(p, _) | Node::Mapping(p, _) => *p,
        }
    }
}

/// Every document of `text`, or why the text is not YAML.
pub fn index(text: &str) -> Result<Vec<Document>, String> {
    let mut events = Events {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
    };
    let mut documents = Vec::new();
    loop {
        match events.next()? {
            (Event::StreamEnd, _) => return Ok(documents),
            (Event::DocumentStart(_), _) => {
                let (event, span) = events.next()?;
                let root = events.node(event, span)?;
                documents.push(Document { root });
            }
            _ => {}
        }
    }
}

impl Document {
    /// Where the document starts.
    pub fn start(&self) -> Position {
        self.root.position()
    }

    /// The position of the value at `path` (map keys and sequence indexes,
    /// as strings). When the path goes past what the document has (a missing
    /// field), the deepest node on the way, with `false`.
    ///
    /// A mapping key containing `.` may be split over several steps
    /// (settings paths join keys with dots): steps are joined until a key
    /// matches.
    pub fn locate<S: AsRef<str>>(&self, path: &[S]) -> (Position, bool) {
        let mut node = &self.root;
        let mut at = 0;
        while at < path.len() {
            let next = match node {
                Node::Scalar(_) => None,
                Node::Sequence(_, items) => path[at]
                    .as_ref()
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get(i))
                    .map(|item| (item, 1)),
                Node::Mapping(_, entries) => (1..=path.len() - at).find_map(|take| {
                    let key = path[at..at + take]
                        .iter()
                        .map(AsRef::as_ref)
                        .collect::<Vec<_>>()
                        .join(".");
                    entries
                        .iter()
                        .find(|(k, _, _)| *k == key)
                        .map(|(_, _, value)| (value, take))
                }),
            };
            match next {
                Some((child, taken)) => {
                    node = child;
                    at += taken;
                }
                None => return (node.position(), false),
            }
        }
        (node.position(), true)
    }
}

/// The steps of a JSON pointer (`/spec/containers/0/image`), unescaped.
pub fn pointer_steps(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// The steps of a settings path as the module writes it
/// (`rules[2].verify.anyOf[0].cosign.keys[1]`; a key that is not a plain
/// name is a JSON string in brackets: `keys["my.key"]`).
pub fn settings_path_steps(path: &str) -> Vec<String> {
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('[') {
            if inner.starts_with('"') {
                let mut keys = serde_json::Deserializer::from_str(inner).into_iter::<String>();
                if let Some(Ok(key)) = keys.next() {
                    let after = &inner[keys.byte_offset()..];
                    steps.push(key);
                    rest = after.strip_prefix(']').unwrap_or(after);
                    continue;
                }
            }
            let (index, after) = inner.split_once(']').unwrap_or((inner, ""));
            steps.push(index.to_string());
            rest = after;
        } else {
            let name = rest.strip_prefix('.').unwrap_or(rest);
            let end = name.find(['.', '[']).unwrap_or(name.len());
            if end > 0 {
                steps.push(name[..end].to_string());
            }
            rest = &name[end..];
        }
    }
    steps
}

struct Events<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    /// Anchored nodes, for aliases.
    anchors: HashMap<usize, Node>,
}

impl<'a> Events<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), String> {
        match self.parser.next_event() {
            Some(Ok(event)) => Ok(event),
            Some(Err(e)) => Err(e.to_string()),
            None => Err("unexpected end of the YAML stream".to_string()),
        }
    }

    /// The node that starts with `event`.
    fn node(&mut self, event: Event<'a>, span: Span) -> Result<Node, String> {
        let at = Position {
            line: span.start.line(),
            column: span.start.col() + 1,
        };
        let (node, anchor) = match event {
            Event::Scalar(_, _, anchor, _) => (Node::Scalar(at), anchor),
            // A scalar alias is located where it is written; what is inside
            // an aliased collection, where the anchor wrote it.
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(collection @ (Node::Sequence(..) | Node::Mapping(..))) => {
                    (collection.clone(), 0)
                }
                _ => (Node::Scalar(at), 0),
            },
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    match self.next()? {
                        (Event::SequenceEnd, _) => break,
                        (event, span) => items.push(self.node(event, span)?),
                    }
                }
                (Node::Sequence(at, items), anchor)
            }
            Event::MappingStart(anchor, _) => {
                let mut entries = Vec::new();
                loop {
                    let (key, key_span) = match self.next()? {
                        (Event::MappingEnd, _) => break,
                        other => other,
                    };
                    let key_at = Position {
                        line: key_span.start.line(),
                        column: key_span.start.col() + 1,
                    };
                    let name = match &key {
                        Event::Scalar(text, ..) => text.to_string(),
                        _ => String::new(),
                    };
                    // A complex key still has to be consumed whole.
                    self.node(key, key_span)?;
                    let (event, span) = self.next()?;
                    entries.push((name, key_at, self.node(event, span)?));
                }
                (Node::Mapping(at, entries), anchor)
            }
            other => return Err(format!("unexpected YAML event {other:?}")),
        };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# a comment
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, annotations: {a.b/c: x}}
spec:
  template:
    spec:
      containers:
      - name: web
        image: nginx:1
      -   name: cache
          image: &img redis
      - {name: copy, image: *img}
---
---
[1, 2]
"#;

    fn at(line: usize, column: usize) -> Position {
        Position { line, column }
    }

    #[test]
    fn values_are_located_by_pointer() {
        let docs = index(TEXT).unwrap();
        assert_eq!(docs.len(), 3, "the empty document counts");
        let locate = |pointer: &str| docs[0].locate(&pointer_steps(pointer));
        assert_eq!(
            locate("/spec/template/spec/containers/0/image"),
            (at(10, 16), true)
        );
        assert_eq!(
            locate("/spec/template/spec/containers/1/image"),
            (at(12, 18), true)
        );
        // Flow style; an alias is where it is written.
        assert_eq!(
            locate("/spec/template/spec/containers/2/image"),
            (at(13, 29), true)
        );
        assert_eq!(locate("/metadata/annotations/a.b~1c"), (at(4, 44), true));
        // Past the end: the deepest node found.
        assert_eq!(locate("/spec/template/spec/volumes/0"), (at(8, 7), false));
        assert_eq!(docs[0].start(), at(2, 1));
        assert_eq!(docs[2].locate(&["1"]), (at(16, 5), true));
    }

    #[test]
    fn settings_paths_are_steps_and_dotted_keys_are_found() {
        assert_eq!(
            settings_path_steps("rules[2].verify.anyOf[0].cosign.keys[1]"),
            ["rules", "2", "verify", "anyOf", "0", "cosign", "keys", "1"]
        );
        assert_eq!(
            settings_path_steps("keys.release.cosign"),
            ["keys", "release", "cosign"]
        );
        assert_eq!(settings_path_steps("m[0][1]"), ["m", "0", "1"]);
        assert_eq!(
            settings_path_steps(r#"keys["my key"].cosign"#),
            ["keys", "my key", "cosign"]
        );
        assert_eq!(
            settings_path_steps(r#"a["x.y[\"]"][0]"#),
            ["a", "x.y[\"]", "0"]
        );
        let docs = index("keys:\n  my.key: {cosign: x}\n").unwrap();
        assert_eq!(
            docs[0].locate(&settings_path_steps("keys.my.key.cosign")),
            (at(2, 20), true)
        );
    }

    #[test]
    fn json_is_yaml_too_and_errors_say_where() {
        let docs = index("{\"a\": [\n  {\"image\": \"x\"}]}").unwrap();
        assert_eq!(
            docs[0].locate(&pointer_steps("/a/0/image")),
            (at(2, 13), true)
        );
        let e = index("a: [\n").unwrap_err();
        assert!(e.contains("line"), "{e}");
    }
}
