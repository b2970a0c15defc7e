//! Findings as text (the diagnostic renderer, like `netpol check`) and as JSON.
//!
//! The JSON is one object, a stable contract (`"version": 1`):
//!
//! ```json
//! {"version": 1,
//!  "findings": [{"code": "fqdn-without-dns-proxy", "id": "NP201", "level": "warning",
//!                "message": "…", "help": "…", "label": "…",
//!                "file": "policies/a.yaml", "line": 7, "column": 9,
//!                "end_line": 7, "end_column": 16, "snippet": "toFQDNs"}],
//!  "counts": {"errors": 0, "warnings": 1, "notes": 0}}
//! ```
//!
//! `id` is null for what the import reports (Cilium's own checks, such as `invalid-policy`);
//! the place fields are absent for findings about no place in a file.

use serde::Serialize;

use crate::diagnostic::source::SourceMap;
use crate::diagnostic::{self, Diagnostic, Diagnostics, Severity, Style};

/// How many findings of each level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub errors: usize,
    pub warnings: usize,
    pub notes: usize,
}

impl Counts {
    pub fn of(findings: &[Diagnostic]) -> Self {
        let n = |s| findings.iter().filter(|d| d.severity == s).count();
        Self {
            errors: n(Severity::Error),
            warnings: n(Severity::Warning),
            notes: n(Severity::Note),
        }
    }
}

/// The findings for humans, in their order, then a summary line.
pub fn text(findings: &[Diagnostic], sources: &SourceMap, style: Style) -> String {
    let mut out = diagnostic::render_each(findings, sources, style);
    let all: Diagnostics = findings.iter().cloned().collect();
    let summary = diagnostic::summary(&all);
    if summary.is_empty() {
        out.push_str("no findings\n");
    } else {
        out.push_str(&summary);
    }
    out
}

/// A place in a file: 1-based lines and columns (in characters), the end exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region<'a> {
    pub file: &'a str,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    pub snippet: &'a str,
}

/// The region of a finding, when it has a place.
pub fn region<'a>(d: &Diagnostic, sources: &'a SourceMap) -> Option<Region<'a>> {
    let span = d.span?;
    let file = sources.get(span.source)?;
    let (line, column) = file.line_col(span.offset as usize);
    let (end_line, end_column) = file.line_col(span.range().end);
    Some(Region {
        file: &file.name,
        line,
        column,
        end_line,
        end_column,
        snippet: file.slice(span),
    })
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    code: &'a str,
    id: Option<&'static str>,
    level: Severity,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    help: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    column: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_column: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    snippet: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    version: u32,
    findings: Vec<JsonFinding<'a>>,
    counts: Counts,
}

/// The findings as one pretty-printed JSON object (see the module docs).
pub fn json(findings: &[Diagnostic], sources: &SourceMap) -> String {
    let report = JsonReport {
        version: 1,
        findings: findings
            .iter()
            .map(|d| {
                let r = region(d, sources);
                JsonFinding {
                    code: d.code,
                    id: super::find(d.code).map(|rule| rule.meta().id),
                    level: d.severity,
                    message: &d.message,
                    help: d.help.as_deref(),
                    label: d.label.as_deref(),
                    file: r.map(|r| r.file),
                    line: r.map(|r| r.line),
                    column: r.map(|r| r.column),
                    end_line: r.map(|r| r.end_line),
                    end_column: r.map(|r| r.end_column),
                    snippet: r.map(|r| r.snippet),
                }
            })
            .collect(),
        counts: Counts::of(findings),
    };
    serde_json::to_string_pretty(&report).map_or_else(|_| String::new(), |s| s + "\n")
}
