//! A YAML tree that remembers where every node is in the file.
//!
//! serde_yaml gives the values but drops positions, so the values come from serde_yaml
//! and this tree only answers "where is `/streams/contacts/source` in the file?" for
//! diagnostics. It is built from yaml-rust2's marked events.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A place in the source: 1-based line and column, and how many characters the
/// offending token spans on that line (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub line: usize,
    pub column: usize,
    pub width: usize,
}

/// Which part of a `key: value` entry a diagnostic points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// The key, e.g. for an unknown or misplaced key.
    Key,
    /// The value, e.g. for a wrong type.
    Value,
}

#[derive(Debug)]
struct Node {
    span: Span,
    kind: NodeKind,
}

#[derive(Debug)]
enum NodeKind {
    Map(Vec<(Node, Node)>),
    Seq(Vec<Node>),
    /// A scalar with its text, whether it was quoted, and whether a character offset in
    /// the text maps one-to-one onto a column (single line, no escapes).
    Scalar {
        text: String,
        quote: usize,
        exact: bool,
    },
    Alias,
}

/// The positions of a parsed YAML document.
#[derive(Debug, Default)]
pub struct YamlTree {
    root: Option<Node>,
}

impl YamlTree {
    /// Parses `source`; a document yaml-rust2 cannot read gives an empty tree, whose
    /// lookups all point at the start of the file (syntax errors are reported from
    /// serde_yaml, which parses the values).
    pub fn parse(source: &str) -> YamlTree {
        let mut builder = Builder {
            source,
            stack: Vec::new(),
            root: None,
        };
        let mut parser = Parser::new_from_str(source);
        match parser.load(&mut builder, false) {
            Ok(()) => YamlTree { root: builder.root },
            Err(_) => YamlTree::default(),
        }
    }

    /// Where the node at `path` (keys and list indexes) is. A path that leads nowhere
    /// gives the deepest node on the way, so a diagnostic about something missing
    /// points at its would-be parent.
    pub fn locate(&self, path: &[String], anchor: Anchor) -> Span {
        let start = Span {
            line: 1,
            column: 1,
            width: 1,
        };
        let Some(mut node) = self.root.as_ref() else {
            return start;
        };
        // The key of the entry `node` is the value of, when there is one.
        let mut key: Option<&Node> = None;
        for segment in path {
            let next = match &node.kind {
                NodeKind::Map(entries) => entries
                    .iter()
                    .find(|(k, _)| matches!(&k.kind, NodeKind::Scalar { text, .. } if text == segment))
                    .map(|(k, v)| (Some(k), v)),
                NodeKind::Seq(items) => segment
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get(i))
                    .map(|v| (None, v)),
                _ => None,
            };
            match next {
                Some((k, v)) => {
                    key = k;
                    node = v;
                }
                // Missing: point at the entry that should have held it.
                None => return key.map(|k| k.span).unwrap_or(node.span),
            }
        }
        match (anchor, key) {
            (Anchor::Key, Some(k)) => k.span,
            _ => node.span,
        }
    }

    /// Where `width` characters from `offset` in the scalar at `path` are, when the
    /// scalar is written so that offsets map onto columns; otherwise the scalar.
    pub fn locate_in_scalar(&self, path: &[String], offset: usize, width: usize) -> Span {
        let span = self.locate(path, Anchor::Value);
        match self.node_at(path).map(|n| &n.kind) {
            Some(NodeKind::Scalar {
                quote, exact: true, ..
            }) => Span {
                line: span.line,
                column: span.column + quote + offset,
                width: width.max(1),
            },
            _ => span,
        }
    }

    /// Keys that appear twice in one mapping: (path of the mapping, key, where it
    /// first appears, where it appears again). serde_yaml rejects these too, but
    /// points at the mapping rather than the repeated key.
    pub fn duplicate_keys(&self) -> Vec<(Vec<String>, String, Span, Span)> {
        fn walk(
            node: &Node,
            path: &mut Vec<String>,
            out: &mut Vec<(Vec<String>, String, Span, Span)>,
        ) {
            match &node.kind {
                NodeKind::Map(entries) => {
                    for (i, (key, value)) in entries.iter().enumerate() {
                        let NodeKind::Scalar { text, .. } = &key.kind else {
                            continue;
                        };
                        let first = entries[..i].iter().find(
                            |(k, _)| matches!(&k.kind, NodeKind::Scalar { text: t, .. } if t == text),
                        );
                        if let Some((first, _)) = first {
                            out.push((path.clone(), text.clone(), first.span, key.span));
                        }
                        path.push(text.clone());
                        walk(value, path, out);
                        path.pop();
                    }
                }
                NodeKind::Seq(items) => {
                    for (i, item) in items.iter().enumerate() {
                        path.push(i.to_string());
                        walk(item, path, out);
                        path.pop();
                    }
                }
                NodeKind::Scalar { .. } | NodeKind::Alias => {}
            }
        }
        let mut out = Vec::new();
        if let Some(root) = &self.root {
            walk(root, &mut Vec::new(), &mut out);
        }
        out
    }

    fn node_at(&self, path: &[String]) -> Option<&Node> {
        let mut node = self.root.as_ref()?;
        for segment in path {
            node = match &node.kind {
                NodeKind::Map(entries) => {
                    &entries
                        .iter()
                        .find(|(k, _)| matches!(&k.kind, NodeKind::Scalar { text, .. } if text == segment))?
                        .1
                }
                NodeKind::Seq(items) => items.get(segment.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }
}

enum Frame {
    Map {
        span: Span,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
    Seq {
        span: Span,
        items: Vec<Node>,
    },
}

struct Builder<'a> {
    source: &'a str,
    stack: Vec<Frame>,
    root: Option<Node>,
}

impl Builder<'_> {
    fn span_at(&self, mark: Marker, width: usize) -> Span {
        // yaml-rust2 counts columns from 0.
        let line_rest = self
            .source
            .get(mark.index()..)
            .and_then(|rest| rest.lines().next())
            .map(|l| l.chars().count())
            .unwrap_or(1);
        Span {
            line: mark.line(),
            column: mark.col() + 1,
            width: width.clamp(1, line_rest.max(1)),
        }
    }

    fn scalar(&self, text: String, style: TScalarStyle, mark: Marker) -> Node {
        let quote = match style {
            TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => 1,
            _ => 0,
        };
        // The text maps onto columns when the source, after the opening quote, holds
        // it verbatim on one line (no escapes, no folding).
        let exact = !text.contains('\n')
            && matches!(
                style,
                TScalarStyle::Plain | TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted
            )
            && self
                .source
                .get(mark.index()..)
                .and_then(|rest| rest.get(quote..))
                .is_some_and(|rest| rest.starts_with(text.as_str()));
        let width = if exact {
            text.chars().count() + 2 * quote
        } else {
            1
        };
        Node {
            span: self.span_at(mark, width),
            kind: NodeKind::Scalar { text, quote, exact },
        }
    }

    fn push(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(text, style, _, _) => {
                let node = self.scalar(text, style, mark);
                self.push(node);
            }
            Event::Alias(_) => {
                let node = Node {
                    span: self.span_at(mark, 1),
                    kind: NodeKind::Alias,
                };
                self.push(node);
            }
            Event::SequenceStart(..) => {
                let span = self.span_at(mark, 1);
                self.stack.push(Frame::Seq {
                    span,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(..) => {
                let span = self.span_at(mark, 1);
                self.stack.push(Frame::Map {
                    span,
                    entries: Vec::new(),
                    key: None,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq { span, items }) => Node {
                        span,
                        kind: NodeKind::Seq(items),
                    },
                    Some(Frame::Map { span, entries, .. }) => {
                        // A block mapping's start event is marked at its first colon;
                        // the mapping starts at its first key.
                        let span = match entries.first() {
                            Some((key, _))
                                if (key.span.line, key.span.column) < (span.line, span.column) =>
                            {
                                key.span
                            }
                            _ => span,
                        };
                        Node {
                            span,
                            kind: NodeKind::Map(entries),
                        }
                    }
                    None => return,
                };
                self.push(node);
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Vec<String> {
        p.split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    const DOC: &str = "\
name: demo
systems:
  crm:
    type: http
    base_url: \"https://x\"
list:
  - first
  - second: 2
";

    #[test]
    fn keys_and_values_have_their_positions() {
        let tree = YamlTree::parse(DOC);
        let key = tree.locate(&path("/systems/crm/type"), Anchor::Key);
        assert_eq!((key.line, key.column, key.width), (4, 5, 4));
        let value = tree.locate(&path("/systems/crm/type"), Anchor::Value);
        assert_eq!((value.line, value.column, value.width), (4, 11, 4));
        let quoted = tree.locate(&path("/systems/crm/base_url"), Anchor::Value);
        assert_eq!((quoted.line, quoted.column, quoted.width), (5, 15, 11));
    }

    #[test]
    fn list_items_are_found_by_index() {
        let tree = YamlTree::parse(DOC);
        let item = tree.locate(&path("/list/1/second"), Anchor::Value);
        assert_eq!((item.line, item.column), (8, 13));
        let first = tree.locate(&path("/list/0"), Anchor::Value);
        assert_eq!((first.line, first.column), (7, 5));
    }

    #[test]
    fn a_block_mapping_starts_at_its_first_key() {
        let tree = YamlTree::parse(DOC);
        let root = tree.locate(&[], Anchor::Value);
        assert_eq!((root.line, root.column), (1, 1));
        let crm = tree.locate(&path("/systems/crm"), Anchor::Value);
        assert_eq!((crm.line, crm.column), (4, 5));
    }

    #[test]
    fn missing_nodes_point_at_their_parent_entry() {
        let tree = YamlTree::parse(DOC);
        let missing = tree.locate(&path("/systems/crm/auth/type"), Anchor::Key);
        assert_eq!((missing.line, missing.column), (3, 3));
    }

    #[test]
    fn repeated_keys_are_found_where_they_repeat() {
        let tree = YamlTree::parse("a:\n  x: 1\n  y: 2\n  x: 3\n");
        let dups = tree.duplicate_keys();
        assert_eq!(dups.len(), 1);
        let (at, key, first, again) = &dups[0];
        assert_eq!((at.as_slice(), key.as_str()), (&["a".to_string()][..], "x"));
        assert_eq!((first.line, again.line, again.column), (2, 4, 3));
    }

    #[test]
    fn offsets_inside_a_scalar_become_columns() {
        let tree = YamlTree::parse(DOC);
        let at = tree.locate_in_scalar(&path("/systems/crm/base_url"), 3, 2);
        assert_eq!((at.line, at.column, at.width), (5, 19, 2));
    }
}
