//! Finds where a key path sits in the YAML text, so that errors found after
//! deserialization (unknown upstream, duplicate route…) still name a line and
//! column. serde_yaml keeps no positions, so the text is parsed a second time
//! with yaml-rust2, whose parser events carry markers.

use std::collections::HashMap;
use std::fmt::Write as _;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Aliases followed in a row before giving up (guards against alias loops).
const MAX_ALIAS_HOPS: usize = 16;
/// Nesting depth walked when listing paths (guards against alias loops).
const MAX_DEPTH: usize = 64;

/// One step of a key path: a mapping key or a sequence index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg<'a> {
    /// A mapping key.
    Key(&'a str),
    /// A sequence index, 0-based.
    Index(usize),
}

impl<'a> From<&'a str> for Seg<'a> {
    fn from(key: &'a str) -> Self {
        Seg::Key(key)
    }
}

impl From<usize> for Seg<'_> {
    fn from(idx: usize) -> Self {
        Seg::Index(idx)
    }
}

/// A position in the text; line and column are 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// Line, 1-based.
    pub line: usize,
    /// Column in characters, 1-based.
    pub column: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        // yaml-rust2 lines are 1-based but its columns are 0-based.
        Pos {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

#[derive(Debug)]
enum Kind {
    /// A scalar; `blank` when it is an empty plain scalar (`key:` with no value).
    Scalar {
        value: String,
        blank: bool,
    },
    Seq(Vec<usize>),
    Map(Vec<(usize, usize)>),
    /// An alias, by anchor id.
    Alias(usize),
}

#[derive(Debug)]
struct Node {
    pos: Pos,
    kind: Kind,
}

/// The first document of a YAML text as a tree of positioned nodes.
#[derive(Debug)]
pub struct Doc {
    nodes: Vec<Node>,
    root: Option<usize>,
    anchors: HashMap<usize, usize>,
}

/// A collection being filled while events arrive.
struct Frame {
    node: usize,
    pending_key: Option<usize>,
}

impl Doc {
    /// Parses `text`, keeping the first document only; a syntax error gives
    /// its position.
    pub fn parse(text: &str) -> Result<Doc, Pos> {
        let mut doc = Doc {
            nodes: Vec::new(),
            root: None,
            anchors: HashMap::new(),
        };
        let mut stack: Vec<Frame> = Vec::new();
        let mut parser = Parser::new_from_str(text);
        loop {
            let (event, marker) = parser.next_token().map_err(|e| Pos::from(*e.marker()))?;
            let pos = Pos::from(marker);
            let (kind, anchor) = match event {
                Event::StreamEnd | Event::DocumentEnd => break,
                Event::Nothing | Event::StreamStart | Event::DocumentStart => continue,
                Event::Alias(id) => (Kind::Alias(id), 0),
                Event::Scalar(value, style, anchor, _) => {
                    let blank = value.is_empty() && style == TScalarStyle::Plain;
                    (Kind::Scalar { value, blank }, anchor)
                }
                Event::SequenceStart(anchor, _) => (Kind::Seq(Vec::new()), anchor),
                Event::MappingStart(anchor, _) => (Kind::Map(Vec::new()), anchor),
                Event::SequenceEnd | Event::MappingEnd => {
                    if let Some(frame) = stack.pop() {
                        doc.fix_map_pos(frame.node);
                    }
                    continue;
                }
            };
            let opens = matches!(kind, Kind::Seq(_) | Kind::Map(_));
            let idx = doc.nodes.len();
            doc.nodes.push(Node { pos, kind });
            if anchor != 0 {
                doc.anchors.insert(anchor, idx);
            }
            doc.attach(stack.last_mut(), idx);
            if opens {
                stack.push(Frame {
                    node: idx,
                    pending_key: None,
                });
            }
        }
        Ok(doc)
    }

    /// Hangs node `idx` under the open collection, or makes it the root.
    fn attach(&mut self, frame: Option<&mut Frame>, idx: usize) {
        let Some(frame) = frame else {
            self.root.get_or_insert(idx);
            return;
        };
        let Some(parent) = self.nodes.get_mut(frame.node) else {
            return;
        };
        match &mut parent.kind {
            Kind::Seq(items) => items.push(idx),
            Kind::Map(entries) => match frame.pending_key.take() {
                Some(key) => entries.push((key, idx)),
                None => frame.pending_key = Some(idx),
            },
            Kind::Scalar { .. } | Kind::Alias(_) => {}
        }
    }

    /// yaml-rust2 marks a block mapping after its first key; the key's own
    /// position is where the mapping starts for a reader.
    fn fix_map_pos(&mut self, idx: usize) {
        let first_key = match self.nodes.get(idx).map(|n| &n.kind) {
            Some(Kind::Map(entries)) => entries.first().map(|&(k, _)| k),
            _ => None,
        };
        let key_pos = first_key.and_then(|k| self.nodes.get(k)).map(|n| n.pos);
        if let (Some(key_pos), Some(node)) = (key_pos, self.nodes.get_mut(idx)) {
            node.pos = node.pos.min(key_pos);
        }
    }

    /// The node an alias stands for (the node itself when it is no alias).
    fn resolve(&self, mut idx: usize) -> Option<usize> {
        for _ in 0..MAX_ALIAS_HOPS {
            match self.nodes.get(idx)?.kind {
                Kind::Alias(anchor) => idx = *self.anchors.get(&anchor)?,
                _ => return Some(idx),
            }
        }
        None
    }

    /// The value of `key` in mapping node `idx`, with the key node.
    fn entry(&self, idx: usize, key: &str) -> Option<(usize, usize)> {
        let Kind::Map(entries) = &self.nodes.get(idx)?.kind else {
            return None;
        };
        entries.iter().copied().find(|&(k, _)| {
            matches!(self.nodes.get(k).map(|n| &n.kind), Some(Kind::Scalar { value, .. }) if value == key)
        })
    }

    /// Position of `path`: its value, or its key when the value is absent;
    /// when the path does not exist, the deepest part of it that does.
    pub fn locate(&self, path: &[Seg<'_>]) -> Option<Pos> {
        let mut cur = self.root?;
        let mut pos = self.nodes.get(cur)?.pos;
        for seg in path {
            let node = self.resolve(cur)?;
            let step = match *seg {
                Seg::Key(key) => self.entry(node, key).map(|(k, v)| {
                    let blank = matches!(
                        self.nodes.get(v).map(|n| &n.kind),
                        Some(Kind::Scalar { blank: true, .. })
                    );
                    (if blank { k } else { v }, v)
                }),
                Seg::Index(i) => match &self.nodes.get(node)?.kind {
                    Kind::Seq(items) => items.get(i).map(|&v| (v, v)),
                    _ => None,
                },
            };
            let Some((at, next)) = step else {
                return Some(pos);
            };
            pos = self.nodes.get(at)?.pos;
            cur = next;
        }
        Some(pos)
    }

    /// Every key path of the document, written as serde_yaml writes paths in
    /// its messages (`routes[1].upstream`), with the positions of the key for
    /// mapping entries (several when a key is repeated; none for sequence
    /// items); used to split and refine serde_yaml's messages.
    pub fn serde_paths(&self) -> HashMap<String, Vec<Pos>> {
        let mut out = HashMap::new();
        if let Some(root) = self.root {
            self.collect_paths(root, "", 0, &mut out);
        }
        out
    }

    fn collect_paths(
        &self,
        idx: usize,
        prefix: &str,
        depth: usize,
        out: &mut HashMap<String, Vec<Pos>>,
    ) {
        let Some(node) = self.resolve(idx).and_then(|i| self.nodes.get(i)) else {
            return;
        };
        if depth >= MAX_DEPTH {
            return;
        }
        match &node.kind {
            Kind::Seq(items) => {
                for (i, &item) in items.iter().enumerate() {
                    let path = format!("{prefix}[{i}]");
                    self.collect_paths(item, &path, depth + 1, out);
                    out.entry(path).or_default();
                }
            }
            Kind::Map(entries) => {
                for &(k, v) in entries {
                    let Some(Node {
                        pos,
                        kind: Kind::Scalar { value, .. },
                    }) = self.nodes.get(k)
                    else {
                        continue;
                    };
                    let path = if prefix.is_empty() {
                        value.clone()
                    } else {
                        format!("{prefix}.{value}")
                    };
                    self.collect_paths(v, &path, depth + 1, out);
                    out.entry(path).or_default().push(*pos);
                }
            }
            Kind::Scalar { .. } | Kind::Alias(_) => {}
        }
    }
}

/// Position of `path` in `text` (see [`Doc::locate`]); `None` if the text is no YAML.
pub fn locate(text: &str, path: &[Seg<'_>]) -> Option<Pos> {
    Doc::parse(text).ok()?.locate(path)
}

/// Writes a key path the way messages show it: `routes[1].upstream`.
pub fn key_string(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(key) if out.is_empty() => out.push_str(key),
            Seg::Key(key) => {
                out.push('.');
                out.push_str(key);
            }
            Seg::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
listen:
  - addr: 0.0.0.0:8080
upstreams:
  backend: { servers: [\"127.0.0.1:8000\"] }
routes:
  - path: /api/
    upstream: backend
  - path: /
    upstream:
    stream: &s
      idle_timeout: 10s
  - path: /x/
    stream: *s
";

    fn at(path: &[Seg<'_>]) -> Option<(usize, usize)> {
        locate(TEXT, path).map(|p| (p.line, p.column))
    }

    #[test]
    fn points_at_values() {
        assert_eq!(
            at(&["routes".into(), 0.into(), "upstream".into()]),
            Some((7, 15))
        );
        assert_eq!(
            at(&["routes".into(), 1.into(), "path".into()]),
            Some((8, 11))
        );
        assert_eq!(
            at(&["listen".into(), 0.into(), "addr".into()]),
            Some((2, 11))
        );
        assert_eq!(
            at(&[
                "upstreams".into(),
                "backend".into(),
                "servers".into(),
                0.into()
            ]),
            Some((4, 24))
        );
        assert_eq!(at(&["upstreams".into(), "backend".into()]), Some((4, 12)));
        // A sequence item is where its mapping starts, i.e. its first key.
        assert_eq!(at(&["routes".into(), 1.into()]), Some((8, 5)));
        assert_eq!(at(&[]), Some((1, 1)));
    }

    #[test]
    fn points_at_the_key_when_the_value_is_absent() {
        assert_eq!(
            at(&["routes".into(), 1.into(), "upstream".into()]),
            Some((9, 5))
        );
    }

    #[test]
    fn missing_paths_give_the_deepest_existing_node() {
        assert_eq!(
            at(&["routes".into(), 2.into(), "upstream".into()]),
            Some((12, 5))
        );
        assert_eq!(at(&["routes".into(), 9.into()]), Some((6, 3)));
        assert_eq!(at(&["nothing".into()]), Some((1, 1)));
    }

    #[test]
    fn follows_aliases() {
        assert_eq!(
            at(&["routes".into(), 2.into(), "stream".into()]),
            Some((13, 13))
        );
        assert_eq!(
            at(&[
                "routes".into(),
                2.into(),
                "stream".into(),
                "idle_timeout".into()
            ]),
            Some((11, 21))
        );
    }

    #[test]
    fn lists_paths_like_serde_yaml() {
        let paths = Doc::parse(TEXT).unwrap().serde_paths();
        for p in [
            "listen[0].addr",
            "routes[1].upstream",
            "upstreams.backend.servers[0]",
            "routes[2].stream.idle_timeout",
        ] {
            assert!(paths.contains_key(p), "{p}");
        }
        assert!(!paths.contains_key("routes[3]"));
        // Keys carry their position, sequence items none.
        assert_eq!(
            paths.get("routes[1].upstream"),
            Some(&vec![Pos { line: 9, column: 5 }])
        );
        assert_eq!(paths.get("routes[1]"), Some(&vec![]));
        let twice = Doc::parse("a: 1\nb: 2\na: 3\n").unwrap().serde_paths();
        assert_eq!(
            twice.get("a"),
            Some(&vec![
                Pos { line: 1, column: 1 },
                Pos { line: 3, column: 1 }
            ])
        );
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = Doc::parse("a: [1\nb: 2\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(locate("a: \"open", &[]).is_none());
    }

    #[test]
    fn key_strings() {
        assert_eq!(
            key_string(&["routes".into(), 1.into(), "upstream".into()]),
            "routes[1].upstream"
        );
        assert_eq!(key_string(&["listen".into()]), "listen");
        assert_eq!(key_string(&[]), "");
    }
}
