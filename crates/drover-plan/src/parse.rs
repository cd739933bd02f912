//! The YAML boundary: text to a `serde_yaml::Value`, and (on the error path only) paths to
//! places in the text.
//!
//! serde_yaml parses and bounds the input (its recursion and alias-repetition limits stop
//! deeply nested and "billion laughs" documents) but keeps no positions for values. Two costs
//! it does not bound are checked first, by [`prescan`]: the bytes aliases expand to, and the
//! time its scanner takes on deeply nested flow collections. When the
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
    prescan(text)?;
    let mut value: serde_yaml::Value = serde_yaml::from_str(text).map_err(syntax_error)?;
    value.apply_merge().map_err(syntax_error)?;
    Ok(value)
}

/// Bytes that aliases may add to a document, counting each scalar's bytes plus
/// [`NODE_BYTES`] per node: as much as a whole plan may hold.
const MAX_ALIAS_EXPANSION: u64 = crate::MAX_PLAN_BYTES as u64;
/// What a node costs once parsed, about (a `serde_yaml::Value` and its place in a collection).
const NODE_BYTES: u64 = 100;
/// Flow collections (`[`, `{`) a text may open before [`prescan`] reads it.
const FLOW_OPENERS_UNCHECKED: usize = 128;

/// Refuses, before serde_yaml reads them, documents that would cost it unbounded memory or
/// time. Its alias-repetition limit counts repetitions, not bytes: a 60 KB plan repeating an
/// anchored 60 KB string through two levels of aliases made it allocate gigabytes. And its
/// scanner (libyaml's) takes time quadratic in the depth of flow nesting: 100 KB of `[` took
/// seconds, 16 MB days. yaml-rust2's scanner stops at 255 levels of flow nesting.
///
/// Only texts that use aliases (`*`) or open many flow collections pay for this pass. A text
/// that yaml-rust2 cannot parse is refused with its error: what it did not read is not checked.
fn prescan(text: &str) -> Result<(), SyntaxError> {
    let openers = text.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
    if !text.contains('*') && openers <= FLOW_OPENERS_UNCHECKED {
        return Ok(());
    }
    let at = |mark: &Marker| Some((mark.line(), mark.col() + 1));
    let mut parser = Parser::new_from_str(text);
    // Size of each anchored node; size so far of each open collection (and its anchor).
    let mut sizes: HashMap<usize, u64> = HashMap::new();
    let mut open: Vec<(usize, u64)> = Vec::new();
    let mut expanded = 0u64;
    loop {
        let (event, mark) = parser.next_token().map_err(|e| SyntaxError {
            message: e.info().to_owned(),
            line_col: at(e.marker()),
            kind: if e.info().contains("recursion limit exceeded") {
                SyntaxKind::Limits
            } else {
                SyntaxKind::Syntax
            },
        })?;
        let (anchor, size) = match event {
            Event::StreamEnd => return Ok(()),
            Event::Scalar(value, _, anchor, _) => (anchor, NODE_BYTES + value.len() as u64),
            Event::Alias(id) => {
                let size = sizes.get(&id).copied().unwrap_or(0);
                expanded = expanded.saturating_add(size);
                if expanded > MAX_ALIAS_EXPANSION {
                    return Err(SyntaxError {
                        message: format!(
                            "aliases expand the document by more than {} MiB",
                            MAX_ALIAS_EXPANSION >> 20
                        ),
                        line_col: at(&mark),
                        kind: SyntaxKind::Limits,
                    });
                }
                (0, size)
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                open.push((anchor, NODE_BYTES));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match open.pop() {
                Some(node) => node,
                None => continue,
            },
            _ => continue,
        };
        if anchor > 0 {
            sizes.insert(anchor, size);
        }
        if let Some((_, parent)) = open.last_mut() {
            *parent = parent.saturating_add(size);
        }
    }
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

/// Bytes between two checkpoints of [`LineIndex`]'s character counts.
const CHECKPOINT_BYTES: usize = 256;
/// The most a token found by [`LineIndex::token_at`] may span (it ends at the end of its line
/// or at a comment, or here).
const MAX_TOKEN_BYTES: usize = 1024;

/// Byte offsets of line starts, to move between offsets and (line, column).
///
/// Columns count characters. The characters before every [`CHECKPOINT_BYTES`]-th byte are
/// counted once, so a column costs a few hundred bytes of counting, not its line: a plan on one
/// line (minified JSON is YAML) has all its places on that line, and counting from the line's
/// start made locating them quadratic (a 156 KB one-line plan with one error: 1.3 s; 600 KB and
/// 100,000 errors: over 2 minutes).
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
    /// Characters in `text[..i * CHECKPOINT_BYTES]`, for every `i`.
    checkpoints: Vec<usize>,
}

/// Whether `b` starts a character (is not a UTF-8 continuation byte).
fn starts_char(b: u8) -> bool {
    b & 0xC0 != 0x80
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> LineIndex<'a> {
        let starts =
            std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        let mut chars = 0;
        let checkpoints = std::iter::once(0)
            .chain(text.as_bytes().chunks(CHECKPOINT_BYTES).map(|chunk| {
                chars += chunk.iter().filter(|b| starts_char(**b)).count();
                chars
            }))
            .collect();
        LineIndex { text, starts, checkpoints }
    }

    /// Characters that start in `text[..offset]`.
    fn chars_before(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        let block = offset / CHECKPOINT_BYTES;
        let bytes = &self.text.as_bytes()[block * CHECKPOINT_BYTES..offset];
        self.checkpoints[block] + bytes.iter().filter(|b| starts_char(**b)).count()
    }

    /// The byte offset of character `n` (0-based) of the text, or the text's length.
    fn char_offset(&self, n: usize) -> usize {
        let block = self.checkpoints.partition_point(|c| *c <= n).saturating_sub(1);
        let mut seen = self.checkpoints[block];
        let bytes = self.text.as_bytes();
        for (i, b) in bytes.iter().enumerate().skip(block * CHECKPOINT_BYTES) {
            if starts_char(*b) {
                if seen == n {
                    return i;
                }
                seen += 1;
            }
        }
        bytes.len()
    }

    /// The byte offset of a 1-based line and 0-based character column (clamped to the line).
    pub(crate) fn offset(&self, line: usize, col0: usize) -> usize {
        let line0 = line.saturating_sub(1).min(self.starts.len() - 1);
        let start = self.starts[line0];
        let end = self.starts.get(line0 + 1).map_or(self.text.len(), |e| e - 1);
        self.char_offset(self.chars_before(start).saturating_add(col0)).clamp(start, end)
    }

    /// A location of `len` bytes at `offset`.
    pub(crate) fn location(&self, offset: usize, len: usize) -> Location {
        let offset = offset.min(self.text.len());
        let line0 = self.starts.partition_point(|s| *s <= offset) - 1;
        let column = self.chars_before(offset) - self.chars_before(self.starts[line0]) + 1;
        Location { offset, len: len.min(self.text.len() - offset), line: line0 + 1, column }
    }

    /// The location of the token starting at `offset`, up to the end of its line or a
    /// comment, and [`MAX_TOKEN_BYTES`] at most.
    pub(crate) fn token_at(&self, offset: usize) -> Location {
        let rest = &self.text[offset.min(self.text.len())..];
        let mut end = rest.len().min(MAX_TOKEN_BYTES);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let line = rest[..end].split('\n').next().unwrap_or_default();
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
                let token = &self.text[offset..offset + loc.len];
                let loc =
                    Location { len: token.find([' ', ',', ']', '}']).unwrap_or(loc.len), ..loc };
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

    /// Found with the `plan` fuzz target's heap bound (tests/fuzz): a 62 KB plan made
    /// serde_yaml allocate gigabytes.
    #[test]
    fn alias_expansion_is_bounded_in_bytes() {
        let refs = |name: &str, n: usize| vec![format!("*{name}"); n].join(",");
        let text = format!(
            "a: &a \"{}\"\nb: &b [{}]\nc: [{}]\n",
            "x".repeat(60_000),
            refs("a", 100),
            refs("b", 300)
        );
        let e = parse_value(&text).err().unwrap();
        assert!(matches!(e.kind, SyntaxKind::Limits), "{}", e.message);
        assert_eq!(e.line_col.map(|(line, _)| line), Some(3));
        // Modest use of aliases and merge keys is untouched.
        let text = "d: &d {x: 1}\nt: [{<<: *d, y: 2}, {<<: *d}]\n";
        assert_eq!(parse_value(text).ok().unwrap()["t"][1]["x"], 1);
    }

    /// Found with the `plan` fuzz target's timeout (tests/fuzz): libyaml's scanner took time
    /// quadratic in the depth of flow nesting (100 KB: 12 s in a release build; this test took
    /// 36 s in a debug build before the check).
    #[test]
    fn deep_flow_nesting_is_refused_before_serde_yaml_scans_it() {
        let text = format!("b: {}", "[".repeat(100_000));
        let e = parse_value(&text).err().unwrap();
        assert!(matches!(e.kind, SyntaxKind::Limits), "{}", e.message);
        // Many flow collections side by side are fine.
        let text = format!("b: [{}]\n", vec!["[1]"; 1_000].join(","));
        assert!(parse_value(&text).is_ok());
    }

    /// Columns and offsets from the checkpoints are those counted from each line's start, also
    /// across checkpoints and multi-byte characters. Counting from the line's start made places
    /// on long lines quadratic to find (found with the `plan` fuzz target's timeout).
    #[test]
    fn line_index_counts_characters_across_checkpoints() {
        let mut text = String::new();
        for i in 0..40 {
            text.push_str(&"aé€𝄞 ".repeat(i * 7));
            text.push('\n');
        }
        let lines = LineIndex::new(&text);
        let starts: Vec<usize> =
            std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        for (offset, _) in text.char_indices().chain([(text.len(), ' ')]) {
            let line0 = starts.partition_point(|s| *s <= offset) - 1;
            let column = text[starts[line0]..offset].chars().count() + 1;
            let l = lines.location(offset, 0);
            assert_eq!((l.line, l.column), (line0 + 1, column), "offset {offset}");
            assert_eq!(lines.offset(line0 + 1, column - 1), offset, "offset {offset}");
        }
        // Past the end of a line: its end.
        assert_eq!(lines.offset(2, 10_000), starts[2] - 1);
        assert_eq!(lines.offset(1_000, 0), text.len());
    }

    #[test]
    fn tokens_end_at_the_line_a_comment_or_a_kilobyte() {
        let text = format!("a: b c # d\ne: {}\n", "é".repeat(1_000));
        let lines = LineIndex::new(&text);
        assert_eq!(lines.token_at(3).len, 3);
        let long = lines.token_at(text.find('é').unwrap());
        assert_eq!(long.len, MAX_TOKEN_BYTES);
    }

    #[test]
    fn syntax_errors_keep_their_place() {
        let e = parse_value("a: [1, 2\nb: c\n").err().unwrap();
        assert_eq!(e.line_col, Some((2, 2)));
        assert!(!e.message.contains("at line 2 column 2"));
    }
}
