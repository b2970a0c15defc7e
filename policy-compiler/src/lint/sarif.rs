//! Findings as SARIF 2.1.0, for GitHub code scanning (`github/codeql-action/upload-sarif`).
//!
//! One run; `tool.driver.rules` lists every lint rule (id = its code, the `NP2xx` number in
//! `properties.id`, descriptions and help from its documentation, its default level), then a
//! descriptor for each import or compiler check that has findings. Each result points into
//! the YAML: the file as given (relative to the current directory), 1-based lines and columns
//! counted in Unicode code points (`columnKind`), the end exclusive.
//!
//! Findings about no place in a file (the coverage notes of `unisolated-workloads`) are left
//! out: GitHub code scanning refuses a result without a location, and a made-up one (line 1 of
//! some file) would annotate code that has nothing to do with the note. Such notes are about
//! the cluster, not a line of YAML; the text and JSON formats carry them.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::diagnostic::source::SourceMap;
use crate::diagnostic::{Diagnostic, Severity};
use crate::lint::output::region;

/// The schema the log says it follows.
pub const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

/// A file name as an URI reference: relative names stay relative (to the repository's root
/// when netpol runs there); absolute ones lose `base`'s prefix when under it.
pub fn uri(name: &str, base: Option<&Path>) -> String {
    let mut name = name.to_owned();
    if let Some(base) = base
        && let Ok(rest) = Path::new(&name).strip_prefix(base)
    {
        name = rest.to_string_lossy().replace('\\', "/");
    }
    let encoded: String = name
        .chars()
        .map(|c| match c {
            ' ' => "%20".to_owned(),
            '%' => "%25".to_owned(),
            '#' => "%23".to_owned(),
            '?' => "%3F".to_owned(),
            c => c.to_string(),
        })
        .collect();
    if encoded.starts_with('/') {
        format!("file://{encoded}")
    } else {
        encoded
    }
}

/// The SARIF log of `findings` (pretty-printed, deterministic).
pub fn render(findings: &[Diagnostic], sources: &SourceMap, base: Option<&Path>) -> String {
    let mut descriptors = Vec::new();
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for rule in super::rules() {
        let m = rule.meta();
        index.insert(m.code, descriptors.len());
        let doc = m.documentation();
        descriptors.push(json!({
            "id": m.code,
            "name": m.code,
            "shortDescription": {"text": m.summary()},
            "fullDescription": {"text": m.section("What").unwrap_or_else(|| m.summary())},
            "help": {"text": doc, "markdown": doc},
            "defaultConfiguration": {"level": level(m.level)},
            "properties": {"id": m.id, "tags": ["cilium", "network-policy"]},
        }));
    }
    for d in findings {
        if index.contains_key(d.code) {
            continue;
        }
        index.insert(d.code, descriptors.len());
        let text = format!(
            "netpol check `{}`: reported while reading the policies or profiles (Cilium's own validation, or the compiler's)",
            d.code
        );
        descriptors.push(json!({
            "id": d.code,
            "name": d.code,
            "shortDescription": {"text": text},
            "defaultConfiguration": {"level": level(d.severity)},
        }));
    }
    let results: Vec<Value> = findings
        .iter()
        .filter_map(|d| Some((d, region(d, sources)?)))
        .map(|(d, r)| {
            let mut text = d.message.clone();
            if let Some(help) = &d.help {
                text.push_str("\nhelp: ");
                text.push_str(help);
            }
            let mut result = json!({
                "ruleId": d.code,
                "ruleIndex": index.get(d.code).copied().unwrap_or(0),
                "level": level(d.severity),
                "message": {"text": text},
            });
            if let Value::Object(map) = &mut result {
                let mut location = json!({
                    "physicalLocation": {
                        "artifactLocation": {"uri": uri(r.file, base)},
                        "region": {
                            "startLine": r.line,
                            "startColumn": r.column,
                            "endLine": r.end_line,
                            "endColumn": r.end_column.max(if r.end_line == r.line { r.column } else { 1 }),
                        },
                    },
                });
                if let (Some(label), Value::Object(loc)) = (&d.label, &mut location) {
                    loc.insert("message".to_owned(), json!({"text": label}));
                }
                map.insert("locations".to_owned(), json!([location]));
            }
            result
        })
        .collect();
    let mut driver = json!({
        "name": "netpol",
        "version": env!("CARGO_PKG_VERSION"),
        "rules": descriptors,
    });
    let repository = env!("CARGO_PKG_REPOSITORY");
    if repository.starts_with("https://")
        && let Value::Object(map) = &mut driver
    {
        map.insert("informationUri".to_owned(), json!(repository));
    }
    let log = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": driver},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&log).map_or_else(|_| String::new(), |s| s + "\n")
}
