//! Diagnostics about user input: errors and warnings with a code, a span, a label and a hint.
//!
//! Every stage collects diagnostics instead of stopping at the first one. Rendering goes
//! through miette (human) or a stable JSON shape (`--error-format json`).
//!
//! The bottom of the crate: [`source`] (files and byte spans), `spelling` ("did you mean")
//! and the diagnostics themselves use nothing else of netpol, and every other folder uses them.

pub mod source;
pub(crate) mod spelling;

use std::fmt;
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode};
use serde::Serialize;

use crate::diagnostic::source::{SourceMap, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    /// Neither: what was left out and why (a file with errors hides what depends on it).
    Note,
}

impl Severity {
    /// Place in a report: errors, then notes (they explain what the errors hid), then warnings.
    fn rank(self) -> u8 {
        match self {
            Severity::Error => 0,
            Severity::Note => 1,
            Severity::Warning => 2,
        }
    }
}

/// Errors that stopped a whole file from being read: they come first, since what other files
/// say about that file could not be checked.
const FILE_LEVEL: &[&str] = &["io", "yaml-syntax", "multiple-documents"];

/// One finding. Messages follow the house style: lowercase, no final period, user values in
/// backticks; the second sentence goes into `help`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable kebab-case identifier, e.g. `unknown-key`; shown as `netpol::unknown-key`.
    pub code: &'static str,
    pub message: String,
    pub help: Option<String>,
    /// The primary location, underlined with `label`.
    pub span: Option<Span>,
    pub label: Option<String>,
    /// Secondary locations (e.g. the first definition of a duplicate).
    pub related: Vec<(Span, String)>,
}

impl Diagnostic {
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, Some(span), message)
    }

    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, code, Some(span), message)
    }

    pub fn note(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Self::new(Severity::Note, code, Some(span), message)
    }

    /// An error that belongs to no place in a file (an unreadable path, say).
    pub fn global(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, None, message)
    }

    fn new(
        severity: Severity,
        code: &'static str,
        span: Option<Span>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            code,
            message: message.into(),
            help: None,
            span,
            label: None,
            related: Vec::new(),
        }
    }

    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    #[must_use]
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    #[must_use]
    pub fn with_related(mut self, span: Span, label: impl Into<String>) -> Self {
        self.related.push((span, label.into()));
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    pub fn is_warning(&self) -> bool {
        self.severity == Severity::Warning
    }

    /// The same finding once its files come after `offset` others ([`SourceMap::append`]).
    #[must_use]
    pub fn moved(mut self, offset: u32) -> Self {
        self.span = self.span.map(|s| s.moved(offset));
        for (span, _) in &mut self.related {
            *span = span.moved(offset);
        }
        self
    }
}

/// All diagnostics of a run, errors and warnings together; renderers sort them by place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
    /// Warnings the profiles acknowledge (`acknowledge:` with a reason): counted, not shown.
    acknowledged: Vec<Diagnostic>,
}

/// What a report holds, as printed: each finding once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub errors: usize,
    pub warnings: usize,
    pub notes: usize,
    pub acknowledged: usize,
}

impl Diagnostics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    pub fn error_count(&self) -> usize {
        self.items.iter().filter(|d| d.is_error()).count()
    }

    pub fn warning_count(&self) -> usize {
        self.items.iter().filter(|d| d.is_warning()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many findings there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Take the findings from index `at` on (a caller that reports them differently, such as
    /// once per template instead of once per use).
    pub fn split_off(&mut self, at: usize) -> Vec<Diagnostic> {
        if at >= self.items.len() {
            return Vec::new();
        }
        self.items.split_off(at)
    }

    /// Record a warning the profiles acknowledge: it is counted, not shown.
    pub fn acknowledge(&mut self, diagnostic: Diagnostic) {
        self.acknowledged.push(diagnostic);
    }

    /// Errors first (those that stopped a whole file from being read before the others), then
    /// notes, then warnings; each group in source order. Identical findings (the same template
    /// applied twice, say) are reported once.
    pub fn sorted(&self) -> Vec<&Diagnostic> {
        let mut items: Vec<&Diagnostic> = self.items.iter().collect();
        items.sort_by(|a, b| {
            let key = |d: &Diagnostic| (d.severity.rank(), !FILE_LEVEL.contains(&d.code));
            (key(a), a.span, a.code, &a.message).cmp(&(key(b), b.span, b.code, &b.message))
        });
        items.dedup();
        items
    }

    /// The counts of what [`Diagnostics::sorted`] shows (identical findings once), and of the
    /// acknowledged warnings (once per code and place).
    pub fn counts(&self) -> Counts {
        let shown = self.sorted();
        let count = |severity| shown.iter().filter(|d| d.severity == severity).count();
        let mut acknowledged: Vec<(Option<Span>, &str)> =
            self.acknowledged.iter().map(|d| (d.span, d.code)).collect();
        acknowledged.sort();
        acknowledged.dedup();
        Counts {
            errors: count(Severity::Error),
            warnings: count(Severity::Warning),
            notes: count(Severity::Note),
            acknowledged: acknowledged.len(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }
}

impl FromIterator<Diagnostic> for Diagnostics {
    fn from_iter<I: IntoIterator<Item = Diagnostic>>(iter: I) -> Self {
        Self {
            items: iter.into_iter().collect(),
            acknowledged: Vec::new(),
        }
    }
}

/// How diagnostics are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// miette's graphical report with colours (a terminal).
    Color,
    /// The same report without colours (files, pipes, tests).
    Plain,
}

/// Render diagnostics for humans, one report each, followed by a summary line.
pub fn render_human(diagnostics: &Diagnostics, sources: &SourceMap, style: Style) -> String {
    let mut out = render_each(diagnostics.sorted(), sources, style);
    out.push_str(&summary(diagnostics));
    out
}

/// Render diagnostics for humans in the order given, one report each (no summary line).
pub fn render_each<'a>(
    diagnostics: impl IntoIterator<Item = &'a Diagnostic>,
    sources: &SourceMap,
    style: Style,
) -> String {
    let theme = match style {
        Style::Color => GraphicalTheme::unicode(),
        Style::Plain => GraphicalTheme::unicode_nocolor(),
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
    let mut out = String::new();
    for diagnostic in diagnostics {
        let report = Report::new(diagnostic, sources);
        if handler.render_report(&mut out, &report).is_err() {
            out.push_str(&diagnostic.message);
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// The last line of a human report: exactly what it shows, plus the acknowledged warnings
/// (`2 errors, 1 warning, 1 note, 3 acknowledged warnings`); empty when there is nothing.
pub fn summary(diagnostics: &Diagnostics) -> String {
    let counts = diagnostics.counts();
    if counts == Counts::default() {
        return String::new();
    }
    let mut line = format!(
        "{} {}, {} {}",
        counts.errors,
        plural(counts.errors, "error", "errors"),
        counts.warnings,
        plural(counts.warnings, "warning", "warnings")
    );
    if counts.notes > 0 {
        line.push_str(&format!(
            ", {} {}",
            counts.notes,
            plural(counts.notes, "note", "notes")
        ));
    }
    if counts.acknowledged > 0 {
        line.push_str(&format!(
            ", {} {}",
            counts.acknowledged,
            plural(
                counts.acknowledged,
                "acknowledged warning",
                "acknowledged warnings"
            )
        ));
    }
    line.push('\n');
    line
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// The JSON shape of one diagnostic (`--error-format json`): a stable contract.
#[derive(Debug, Serialize)]
pub struct JsonDiagnostic<'a> {
    pub severity: Severity,
    pub code: String,
    pub message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippet: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<&'a str>,
}

/// One JSON object per line, sorted like the human rendering.
pub fn render_json(diagnostics: &Diagnostics, sources: &SourceMap) -> String {
    let mut out = String::new();
    for d in diagnostics.sorted() {
        let located = d.span.and_then(|span| {
            sources
                .get(span.source)
                .map(|file| (file, span, file.line_col(span.offset as usize)))
        });
        let json = JsonDiagnostic {
            severity: d.severity,
            code: format!("netpol::{}", d.code),
            message: &d.message,
            help: d.help.as_deref(),
            file: located.map(|(f, _, _)| f.name.as_str()),
            line: located.map(|(_, _, (line, _))| line),
            column: located.map(|(_, _, (_, column))| column),
            snippet: located.map(|(f, span, _)| f.slice(span)),
            label: d.label.as_deref(),
        };
        if let Ok(line) = serde_json::to_string(&json) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// Adapter that lets miette render a [`Diagnostic`] with its source file.
struct Report<'a> {
    diagnostic: &'a Diagnostic,
    source: Option<NamedSource<Arc<str>>>,
    code: String,
}

impl<'a> Report<'a> {
    fn new(diagnostic: &'a Diagnostic, sources: &SourceMap) -> Self {
        let source = diagnostic
            .span
            .and_then(|span| sources.get(span.source))
            .map(|file| NamedSource::new(file.name.clone(), Arc::clone(&file.text)));
        Self {
            diagnostic,
            source,
            code: format!("netpol::{}", diagnostic.code),
        }
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Report")
            .field("diagnostic", self.diagnostic)
            .finish()
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(&self.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Note => miette::Severity::Advice,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diagnostic
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        // Secondary spans can only be shown when they are in the same file as the primary one.
        let primary = self.diagnostic.span?;
        let mut labels = vec![LabeledSpan::new_primary_with_span(
            self.diagnostic.label.clone(),
            primary.range(),
        )];
        for (span, text) in &self.diagnostic.related {
            if span.source == primary.source {
                labels.push(LabeledSpan::new_with_span(Some(text.clone()), span.range()));
            }
        }
        Some(Box::new(labels.into_iter()))
    }
}

/// The one-line reason of a regular-expression error (the library's message spans several
/// lines, with a caret under the pattern).
pub(crate) fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or_else(|| text.lines().next().unwrap_or("invalid"))
        .to_owned()
}
