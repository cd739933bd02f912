//! The YAML boundary: text to a `serde_yaml::Value`, and (on the error path only) paths to
//! places in the text.
//!
//! serde_yaml parses and bounds the input (its recursion and alias-repetition limits stop
//! deeply nested and "billion laughs" documents) but keeps no positions for values. When the
//! lowering finds a problem, [`SpanIndex`] re-reads the text with yaml-rust2's marker-aware
//! event parser and maps each path (`tables[3].depends_on[0]`) to its place. A valid plan
//! never pays for that second pass.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::diag::Location;

/// One step of a path into the document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A path from the document root.
pub(crate) type Path = Vec<Seg>;

/// A YAML error with the place serde_yaml reported, if any.
pub(crate) struct SyntaxError {
    pub(crate) message: String,
    pub(crate) line_col: Option<(usize, usize)>,
    pub(crate) kind: SyntaxKind,
}

pub(crate) enum SyntaxKind {
    Syntax,
    Limits,
    DuplicateKey,
    MultipleDocuments,
}

/// Parses the text into a value, with YAML merge keys (`<<: *anchor`) applied.
pub(crate) fn parse_value(text: &str) -> Result<serde_yaml::Value, SyntaxError> {
    let mut value: serde_yaml::Value = serde_yaml::from_str(text).map_err(syntax_error)?;
    value.apply_merge().map_err(syntax_error)?;
    Ok(value)
}

fn syntax_error(e: serde_yaml::Error) -> SyntaxError {
    let line_col = e.location().map(|l| (l.line(), l.column()));
    let mut message = e.to_string();
    if let Some((line, col)) = line_col {
        message = message.replacen(&format!(" at line {line} column {col}"), "", 1);
    }
    let kind = if message.contains("recursion limit exceeded")
        || message.contains("repetition limit exceeded")
    {
        SyntaxKind::Limits
    } else if message.contains("duplicate entry with key") {
        SyntaxKind::DuplicateKey
    } else if message.contains("more than one document") {
        SyntaxKind::MultipleDocuments
    } else {
        SyntaxKind::Syntax
    };
    SyntaxError { message, line_col, kind }
}

/// The 1-based line of the marker (`---`) that starts a second document, if any.
pub(crate) fn second_document_line(text: &str) -> Option<usize> {
    let mut seen_content = false;
    for (i, line) in text.lines().enumerate() {
        let is_marker =
            line.strip_prefix("---").is_some_and(|r| r.is_empty() || r.starts_with([' ', '\t']));
        if is_marker {
            if seen_content {
                return Some(i + 1);
            }
        } else if !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            seen_content = true;
        }
    }
    None
}

/// Byte offsets of line starts, to move between offsets and (line, column).
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> LineIndex<'a> {
        let starts =
            std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        LineIndex { text, starts }
    }

    fn line_text(&self, line0: usize) -> &'a str {
        let start = self.starts[line0];
        let end = self.starts.get(line0 + 1).map_or(self.text.len(), |e| e - 1);
        &self.text[start..end]
    }

    /// The byte offset of a 1-based line and 0-based character column (clamped to the text).
    pub(crate) fn offset(&self, line: usize, col0: usize) -> usize {
        let line0 = line.saturating_sub(1).min(self.starts.len() - 1);
        let text = self.line_text(line0);
        let within = text.char_indices().nth(col0).map_or(text.len(), |(i, _)| i);
        self.starts[line0] + within
    }

    /// A location of `len` bytes at `offset`.
    pub(crate) fn location(&self, offset: usize, len: usize) -> Location {
        let offset = offset.min(self.text.len());
        let line0 = self.starts.partition_point(|s| *s <= offset) - 1;
        let column = self.text[self.starts[line0]..offset].chars().count() + 1;
        Location { offset, len: len.min(self.text.len() - offset), line: line0 + 1, column }
    }

    /// The location of the token starting at `offset`, up to the end of its line.
    pub(crate) fn token_at(&self, offset: usize) -> Location {
        let rest = &self.text[offset.min(self.text.len())..];
        let line = rest.split('\n').next().unwrap_or_default();
        let line = line.split(" #").next().unwrap_or_default();
        self.location(offset, line.trim_end().len())
    }
}

/// Where a node and its key sit in the text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeSpan {
    pub(crate) key: Option<Location>,
    pub(crate) value: Location,
    pub(crate) is_container: bool,
}

/// Paths of a document mapped to their places, built by re-reading the text with markers.
pub(crate) struct SpanIndex {
    nodes: HashMap<Path, NodeSpan>,
    /// Keys that appear twice in one mapping: (path of the repeated entry, first occurrence).
    pub(crate) duplicates: Vec<(Path, Location, Location)>,
}

impl SpanIndex {
    pub(crate) fn build(text: &str, lines: &LineIndex<'_>) -> SpanIndex {
        let mut recv = Indexer { lines, text, stack: Vec::new(), index: SpanIndex::empty() };
        // The text already parsed with serde_yaml, so errors here are parser differences;
        // whatever was indexed before one is still useful.
        let _ = Parser::new_from_str(text).load(&mut recv, false);
        recv.index
    }

    fn empty() -> SpanIndex {
        SpanIndex { nodes: HashMap::new(), duplicates: Vec::new() }
    }

    /// The node at `path`, if it is in the text.
    #[cfg(test)]
    pub(crate) fn get(&self, path: &[Seg]) -> Option<&NodeSpan> {
        self.nodes.get(path)
    }

    /// The nearest node at `path` or above it, with how many trailing segments were missing.
    pub(crate) fn nearest(&self, path: &[Seg]) -> Option<(&NodeSpan, usize)> {
        (0..=path.len()).rev().find_map(|n| self.nodes.get(&path[..n]).map(|s| (s, path.len() - n)))
    }
}

enum Frame {
    Mapping {
        path: Path,
        pending_key: Option<(String, Location)>,
        seen: HashMap<String, Location>,
    },
    Sequence {
        path: Path,
        next: usize,
    },
    /// A complex key (a mapping or list used as a key): its contents are not indexed.
    Skip,
}

struct Indexer<'a, 'b> {
    lines: &'b LineIndex<'a>,
    text: &'a str,
    stack: Vec<Frame>,
    index: SpanIndex,
}

impl Indexer<'_, '_> {
    fn scalar_len(&self, offset: usize, value: &str, style: TScalarStyle) -> usize {
        let rest = &self.text[offset.min(self.text.len())..];
        let quote = match style {
            TScalarStyle::SingleQuoted => '\'',
            TScalarStyle::DoubleQuoted => '"',
            TScalarStyle::Plain if rest.starts_with(value) && !value.contains('\n') => {
                return value.len();
            }
            _ => return self.lines.token_at(offset).len,
        };
        let mut escaped = false;
        for (i, c) in rest.char_indices().skip(1) {
            match c {
                '\n' => break,
                '\\' if quote == '"' && !escaped => escaped = true,
                c if c == quote && !escaped => return i + 1,
                _ => escaped = false,
            }
        }
        self.lines.token_at(offset).len
    }

    /// Records a node; returns its path when it is a value (not a key).
    fn node(&mut self, location: Location, scalar: Option<&str>, container: bool) -> Option<Path> {
        let (path, key) = match self.stack.last_mut() {
            None => (Vec::new(), None),
            Some(Frame::Skip) => return None,
            Some(Frame::Sequence { path, next }) => {
                let mut p = path.clone();
                p.push(Seg::Index(*next));
                *next += 1;
                (p, None)
            }
            Some(Frame::Mapping { path, pending_key, seen }) => match pending_key.take() {
                None => {
                    let key = scalar?;
                    let mut p = path.clone();
                    p.push(Seg::Key(key.to_owned()));
                    if let Some(first) = seen.get(key) {
                        self.index.duplicates.push((p, location, *first));
                    } else {
                        if seen.is_empty() {
                            // A mapping's start marker is unreliable in block style; a mapping
                            // without a key of its own (a list item) is placed at its first key.
                            if let Some(node) = self.index.nodes.get_mut(path.as_slice())
                                && node.key.is_none()
                            {
                                node.value = location;
                            }
                        }
                        seen.insert(key.to_owned(), location);
                    }
                    *pending_key = Some((key.to_owned(), location));
                    return None;
                }
                Some((key, key_loc)) => {
                    let mut p = path.clone();
                    p.push(Seg::Key(key));
                    (p, Some(key_loc))
                }
            },
        };
        self.index.nodes.entry(path.clone()).or_insert(NodeSpan {
            key,
            value: location,
            is_container: container,
        });
        Some(path)
    }

    fn is_key_position(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Mapping { pending_key: None, .. }))
    }
}

impl MarkedEventReceiver for Indexer<'_, '_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let offset = self.lines.offset(mark.line(), mark.col());
        match ev {
            Event::Scalar(value, style, _, _) => {
                let len = self.scalar_len(offset, &value, style);
                let loc = self.lines.location(offset, len);
                self.node(loc, Some(&value), false);
            }
            Event::Alias(_) => {
                let loc = self.lines.token_at(offset);
                let loc = Location {
                    len: loc
                        .len
                        .min(self.text[offset..].find([' ', ',', ']', '}']).unwrap_or(loc.len)),
                    ..loc
                };
                self.node(loc, Some(""), false);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let loc = self.lines.location(offset, 1);
                let is_map = matches!(ev, Event::MappingStart(..));
                if self.is_key_position() || matches!(self.stack.last(), Some(Frame::Skip)) {
                    self.stack.push(Frame::Skip);
                    return;
                }
                let path = self.node(loc, None, true).unwrap_or_default();
                self.stack.push(if is_map {
                    Frame::Mapping { path, pending_key: None, seen: HashMap::new() }
                } else {
                    Frame::Sequence { path, next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let popped = self.stack.pop();
                // A complex key was just closed: what follows is its value, which we skip.
                if matches!(popped, Some(Frame::Skip))
                    && self.is_key_position()
                    && let Some(Frame::Mapping { pending_key, .. }) = self.stack.last_mut()
                {
                    *pending_key = Some((String::new(), self.lines.location(offset, 0)));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(text: &str) -> SpanIndex {
        SpanIndex::build(text, &LineIndex::new(text))
    }

    fn k(s: &str) -> Seg {
        Seg::Key(s.to_owned())
    }

    #[test]
    fn paths_map_to_lines_and_columns() {
        let text = "name: x\ntables:\n  - name: \"customers\"\n  - name: orders # c\n    depends_on: [customers, 'b']\n";
        let i = idx(text);
        let n = i.get(&[k("tables"), Seg::Index(1), k("depends_on"), Seg::Index(1)]).unwrap();
        assert_eq!((n.value.line, n.value.column, n.value.len), (5, 29, 3));
        let n = i.get(&[k("tables"), Seg::Index(0), k("name")]).unwrap();
        assert_eq!((n.value.line, n.value.column, n.value.len), (3, 11, 11));
        assert_eq!(n.key.map(|k| (k.line, k.column, k.len)), Some((3, 5, 4)));
        let n = i.get(&[k("tables"), Seg::Index(1), k("name")]).unwrap();
        assert_eq!((n.value.line, n.value.column, n.value.len), (4, 11, 6));
    }

    #[test]
    fn columns_count_characters_and_offsets_bytes() {
        let text = "a: \"é\"\nb: ünïcode\n";
        let i = idx(text);
        let n = i.get(&[k("b")]).unwrap();
        assert_eq!((n.value.line, n.value.column), (2, 4));
        assert_eq!(&text[n.value.offset..n.value.offset + n.value.len], "ünïcode");
    }

    #[test]
    fn duplicates_are_found_with_their_first_occurrence() {
        let i = idx("a: 1\nb: 2\na: 3\n");
        assert_eq!(i.duplicates.len(), 1);
        assert_eq!((i.duplicates[0].1.line, i.duplicates[0].2.line), (3, 1));
    }

    #[test]
    fn complex_keys_are_skipped() {
        let i = idx("? [a, b]\n: c\nd: e\n");
        assert_eq!(i.get(&[k("d")]).map(|n| n.value.line), Some(3));
    }

    #[test]
    fn syntax_errors_keep_their_place() {
        let e = parse_value("a: [1, 2\nb: c\n").err().unwrap();
        assert_eq!(e.line_col, Some((2, 2)));
        assert!(!e.message.contains("at line 2 column 2"));
    }
}
