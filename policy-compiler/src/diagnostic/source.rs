//! Source files and byte spans into them.
//!
//! Every value read from a profile or a policy keeps the [`Span`] it came from, so that
//! diagnostics can underline it and compiled objects can point back at their origin. A span
//! is a (file, byte offset, byte length) triple; line and column are computed on demand.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Index of a file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SourceId(pub u32);

/// A region of a source file, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    pub source: SourceId,
    pub offset: u32,
    pub len: u32,
}

impl Span {
    pub fn new(source: SourceId, offset: usize, len: usize) -> Self {
        Self {
            source,
            offset: u32::try_from(offset).unwrap_or(u32::MAX),
            len: u32::try_from(len).unwrap_or(u32::MAX),
        }
    }

    /// The same place once the files of its map come after `offset` others
    /// ([`SourceMap::append`]).
    #[must_use]
    pub fn moved(self, offset: u32) -> Self {
        Self {
            source: SourceId(self.source.0.saturating_add(offset)),
            ..self
        }
    }

    /// The byte range, for slicing and for miette.
    pub fn range(&self) -> std::ops::Range<usize> {
        let start = self.offset as usize;
        start..start.saturating_add(self.len as usize)
    }
}

/// One loaded file: the name shown to users and its text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as the user gave it (relative paths stay relative: outputs must not depend on
    /// the machine they were produced on).
    pub name: String,
    pub path: PathBuf,
    pub text: Arc<str>,
    /// Byte offset of the start of every line, for line/column lookup.
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(path: &Path, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            name: display_name(path),
            path: path.to_path_buf(),
            text,
            line_starts,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset.min(self.text.len()))
            .map_or(0, |s| s.chars().count());
        (line + 1, column + 1)
    }

    /// The text a span covers (empty if the span does not fit).
    pub fn slice(&self, span: Span) -> &str {
        self.text.get(span.range()).unwrap_or("")
    }
}

/// `./profiles/a.yaml` is shown as `profiles/a.yaml`; separators are always `/`.
fn display_name(path: &Path) -> String {
    let s = path.to_string_lossy().replace('\\', "/");
    let mut s = s.as_str();
    while let Some(rest) = s.strip_prefix("./") {
        s = rest;
    }
    s.to_string()
}

/// All files of one run.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, file: SourceFile) -> SourceId {
        let id = SourceId(u32::try_from(self.files.len()).unwrap_or(u32::MAX));
        self.files.push(file);
        id
    }

    /// Add the files of `other` after this map's; spans into them move by the offset returned
    /// ([`Span::moved`]).
    pub fn append(&mut self, other: SourceMap) -> u32 {
        let offset = u32::try_from(self.files.len()).unwrap_or(u32::MAX);
        self.files.extend(other.files);
        offset
    }

    pub fn get(&self, id: SourceId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }

    pub fn files(&self) -> impl Iterator<Item = (SourceId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (SourceId(u32::try_from(i).unwrap_or(u32::MAX)), f))
    }

    /// `file:line:column` of a span, as printed in annotations and reports.
    pub fn position(&self, span: Span) -> Position<'_> {
        match self.get(span.source) {
            Some(file) => {
                let (line, column) = file.line_col(span.offset as usize);
                Position {
                    file: &file.name,
                    line,
                    column,
                }
            }
            None => Position {
                file: "<unknown>",
                line: 0,
                column: 0,
            },
        }
    }
}

/// A resolved `file:line:column`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position<'a> {
    pub file: &'a str,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Position<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A value with the span it was read from. Equality and ordering ignore the span, so that
/// models compare by meaning and outputs do not depend on formatting.
#[derive(Debug, Clone, Copy)]
pub struct Loc<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Loc<T> {
    pub fn new(value: T, span: Span) -> Self {
        Self { value, span }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Loc<U> {
        Loc {
            value: f(self.value),
            span: self.span,
        }
    }

    pub fn as_ref(&self) -> Loc<&T> {
        Loc {
            value: &self.value,
            span: self.span,
        }
    }
}

impl<T: PartialEq> PartialEq for Loc<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T: Eq> Eq for Loc<T> {}

impl<T: PartialOrd> PartialOrd for Loc<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.value.partial_cmp(&other.value)
    }
}

impl<T: Ord> Ord for Loc<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}

impl<T: std::hash::Hash> std::hash::Hash for Loc<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.value.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one_and_in_characters() {
        let f = SourceFile::new(Path::new("./a.yaml"), "ab\nçd: x\n");
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(3), (2, 1));
        // `ç` is two bytes but one column.
        assert_eq!(f.line_col(5), (2, 2));
        assert_eq!(f.name, "a.yaml");
    }

    #[test]
    fn loc_equality_ignores_the_span() {
        let a = Loc::new(1, Span::new(SourceId(0), 0, 1));
        let b = Loc::new(1, Span::new(SourceId(1), 9, 9));
        assert_eq!(a, b);
    }
}
