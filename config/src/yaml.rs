//! A YAML document as a tree whose every node remembers where it was written.
//!
//! Serde stops at the first error; an admin wants every mistake in one pass, each with its line
//! and column. So the config is first read into this small tree (scalars, sequences, mappings,
//! each with a [`Mark`]), then decoded by hand in [`crate::decode`], collecting all errors.
//!
//! Limits: one document per file; anchors and aliases are resolved by copying the anchored
//! node (bounded by [`MAX_NODES`], against alias bombs); tags are ignored; duplicate mapping
//! keys are an error (YAML forbids them and the second one would silently win otherwise).

use std::collections::HashMap;
use std::fmt;

use granit_parser::{Event, Parser, ScalarStyle};

/// Most nodes a document may expand to (aliases included); far above any real config.
pub const MAX_NODES: usize = 1 << 20;
/// Deepest nesting accepted; real configs are at most 5 levels deep.
pub const MAX_DEPTH: usize = 64;

/// A position in the source: 1-based line and column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mark {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

impl Mark {
    fn from_marker(m: &granit_parser::Marker) -> Self {
        Mark {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

/// One node of the document.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub mark: Mark,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// A scalar; `plain` is false when it was quoted or a block scalar (always a string then).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Entries in document order; keys are scalars (complex keys are rejected).
    Map(Vec<(Key, Node)>),
}

/// A mapping key with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub name: String,
    pub mark: Mark,
}

impl Node {
    /// True for `null`, `~`, `Null`, `NULL` and an empty plain scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// A short description of what the node is, for type errors.
    pub fn describe(&self) -> String {
        match &self.kind {
            NodeKind::Scalar { text, .. } if self.is_null() && text.is_empty() => "nothing".into(),
            NodeKind::Scalar { text, .. } => format!("{text:?}"),
            NodeKind::Seq(_) => "a list".into(),
            NodeKind::Map(_) => "a mapping".into(),
        }
    }
}

/// The document could not be read as YAML at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    pub mark: Mark,
    pub message: String,
}

/// Parses one YAML document. An empty document yields an empty mapping.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    let mut documents = 0usize;
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| SyntaxError {
            mark: Mark::from_marker(e.marker()),
            message: e.info(),
        })?;
        let mark = Mark::from_marker(&span.start);
        match event {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError {
                        mark,
                        message: "more than one YAML document; a config file holds exactly one"
                            .into(),
                    });
                }
            }
            Event::Scalar(value, style, anchor, _tag) => {
                let plain = matches!(style, ScalarStyle::Plain);
                let node = Node {
                    kind: NodeKind::Scalar {
                        text: value.into_owned(),
                        plain,
                    },
                    mark,
                };
                builder.push_node(node, anchor)?;
            }
            Event::SequenceStart(_, anchor, _) => {
                builder.open(Open::Seq(Vec::new()), mark, anchor)?
            }
            Event::MappingStart(_, anchor, _) => {
                builder.open(Open::Map(Vec::new(), None), mark, anchor)?
            }
            Event::SequenceEnd | Event::MappingEnd => builder.close()?,
            Event::Alias(id) => {
                let node = builder
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| SyntaxError {
                        mark,
                        message: "alias refers to an unknown anchor".into(),
                    })?;
                builder.push_node(node, 0)?;
            }
            _ => {}
        }
    }
    Ok(builder.root.unwrap_or(Node {
        kind: NodeKind::Map(Vec::new()),
        mark: Mark { line: 1, column: 1 },
    }))
}

enum Open {
    Seq(Vec<Node>),
    /// Entries so far and the key waiting for its value.
    Map(Vec<(Key, Node)>, Option<Key>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<(Open, Mark, usize)>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    nodes: usize,
}

impl Builder {
    fn open(&mut self, open: Open, mark: Mark, anchor: usize) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(SyntaxError {
                mark,
                message: format!("nesting deeper than {MAX_DEPTH}"),
            });
        }
        self.stack.push((open, mark, anchor));
        Ok(())
    }

    fn close(&mut self) -> Result<(), SyntaxError> {
        let Some((open, mark, anchor)) = self.stack.pop() else {
            return Ok(());
        };
        let kind = match open {
            Open::Seq(items) => NodeKind::Seq(items),
            Open::Map(entries, _) => NodeKind::Map(entries),
        };
        self.push_node(Node { kind, mark }, anchor)
    }

    fn push_node(&mut self, node: Node, anchor: usize) -> Result<(), SyntaxError> {
        self.nodes += count(&node);
        if self.nodes > MAX_NODES {
            return Err(SyntaxError {
                mark: node.mark,
                message: format!("document expands to more than {MAX_NODES} nodes"),
            });
        }
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some((Open::Seq(items), ..)) => items.push(node),
            Some((Open::Map(entries, pending), ..)) => match pending.take() {
                None => {
                    let NodeKind::Scalar { text, .. } = node.kind else {
                        return Err(SyntaxError {
                            mark: node.mark,
                            message: "mapping keys must be plain words, not lists or mappings"
                                .into(),
                        });
                    };
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.name == text) {
                        return Err(SyntaxError {
                            mark: node.mark,
                            message: format!(
                                "key {text:?} appears twice in one mapping (first at line {})",
                                first.mark.line
                            ),
                        });
                    }
                    *pending = Some(Key {
                        name: text,
                        mark: node.mark,
                    });
                }
                Some(key) => entries.push((key, node)),
            },
        }
        Ok(())
    }
}

fn count(node: &Node) -> usize {
    match &node.kind {
        NodeKind::Scalar { .. } => 1,
        NodeKind::Seq(items) => 1 + items.iter().map(count).sum::<usize>(),
        NodeKind::Map(entries) => 1 + entries.iter().map(|(_, v)| 1 + count(v)).sum::<usize>(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(node: &Node) -> &[(Key, Node)] {
        match &node.kind {
            NodeKind::Map(entries) => entries,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn marks_are_one_based_lines_and_columns() {
        let doc = parse("name: daos\nengines:\n  - targets: 4\n").unwrap();
        let entries = map(&doc);
        assert_eq!(entries[0].0.name, "name");
        assert_eq!(entries[0].0.mark, Mark { line: 1, column: 1 });
        assert_eq!(entries[0].1.mark, Mark { line: 1, column: 7 });
        let NodeKind::Seq(engines) = &entries[1].1.kind else {
            panic!()
        };
        let engine = map(&engines[0]);
        assert_eq!(
            engine[0].1.mark,
            Mark {
                line: 3,
                column: 14
            }
        );
    }

    #[test]
    fn quoted_scalars_are_not_plain() {
        let doc = parse("a: '1'\nb: 1\nc:\n").unwrap();
        let e = map(&doc);
        assert!(matches!(
            &e[0].1.kind,
            NodeKind::Scalar { plain: false, .. }
        ));
        assert!(matches!(&e[1].1.kind, NodeKind::Scalar { plain: true, .. }));
        assert!(e[2].1.is_null());
    }

    #[test]
    fn duplicate_keys_are_rejected_with_both_lines() {
        let err = parse("port: 1\nname: x\nport: 2\n").unwrap_err();
        assert_eq!(err.mark.line, 3);
        assert!(err.message.contains("first at line 1"), "{}", err.message);
    }

    #[test]
    fn aliases_are_expanded() {
        let doc = parse("a: &x [1, 2]\nb: *x\n").unwrap();
        let e = map(&doc);
        assert_eq!(e[0].1.kind, e[1].1.kind);
    }

    #[test]
    fn alias_bombs_are_bounded() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains("more than"), "{}", err.message);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.mark.line >= 1);
        assert!(!err.message.is_empty());
    }

    #[test]
    fn empty_document_is_an_empty_map() {
        assert!(map(&parse("").unwrap()).is_empty());
        assert!(map(&parse("# only a comment\n").unwrap()).is_empty());
    }

    #[test]
    fn two_documents_are_rejected() {
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(text in "\\PC{0,200}") {
            let _ = parse(&text);
        }

        #[test]
        fn parse_never_panics_on_yamlish(text in "[a-z:\\-\\[\\]{}&*!|>'\" \n#,0-9]{0,300}") {
            let _ = parse(&text);
        }
    }
}
