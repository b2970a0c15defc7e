//! The library's shape: a few folders by concern, dependencies pointing one way.
//!
//! ```text
//! cli ──> report ──> flow ──> engine ──┐
//!  │ └──> lint ──┘ └─────────> profile ──┴──> objects, document ──> diagnostic
//!  └──────> (everything)
//! ```
//!
//! This test reads every `crate::` path in `src/` (comments aside) and fails when a folder uses
//! one it may not, when the folders' uses form a circle, or when `src/` grows past twelve
//! top-level entries. A new folder, or a new edge, is a conscious change to [`LAYERS`].

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module of `src/` and the top-level modules it may use.
const LAYERS: &[(&str, &[&str])] = &[
    ("diagnostic", &[]),
    ("document", &["diagnostic"]),
    ("objects", &["diagnostic"]),
    ("profile", &["objects", "document", "diagnostic"]),
    ("engine", &["objects", "document", "diagnostic"]),
    ("flow", &["engine", "objects", "document", "diagnostic"]),
    (
        "lint",
        &[
            "flow",
            "engine",
            "profile",
            "objects",
            "document",
            "diagnostic",
        ],
    ),
    (
        "report",
        &[
            "flow",
            "engine",
            "profile",
            "objects",
            "document",
            "diagnostic",
        ],
    ),
    (
        "cli",
        &[
            "lint",
            "report",
            "flow",
            "engine",
            "profile",
            "objects",
            "document",
            "diagnostic",
        ],
    ),
];

/// Files of `src/` that are not a concern of their own.
const ROOT_FILES: &[&str] = &["lib.rs", "main.rs"];

const MAX_TOP_LEVEL: usize = 12;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level modules of `src/`: folders and `.rs` files (the crate roots aside).
fn top_level() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if ROOT_FILES.contains(&name.as_str()) {
            continue;
        }
        let module = name.strip_suffix(".rs").unwrap_or(&name).to_owned();
        out.push((module, path));
    }
    out.sort();
    out
}

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for entry in entries {
            rust_files(&entry, out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// The top-level modules named by the `crate::` paths of one line of code:
/// `crate::engine::index::Index`, `crate::{engine::entry, flow}`.
fn crate_paths(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        // `netpol_crate::x` or `my_crate::x` are not this crate.
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: split at commas outside nested braces.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(first_ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 || c != '{' {
                    item.push(c);
                }
            }
            out.push(first_ident(&item));
        } else {
            out.push(first_ident(rest));
        }
    }
    out.retain(|name| !name.is_empty());
    out
}

fn first_ident(text: &str) -> String {
    text.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The code of a line, without its `//` comment (doc comments included).
fn code(line: &str) -> &str {
    match line.find("//") {
        // A `//` inside a string literal is rare in this crate; `"://"` in URLs is the case seen.
        Some(at) if !line[..at].ends_with(':') => &line[..at],
        _ => line,
    }
}

/// `(from, to) → the first place it is used`.
fn uses() -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for (module, path) in top_level() {
        let mut files = Vec::new();
        rust_files(&path, &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (number, line) in text.lines().enumerate() {
                for used in crate_paths(code(line)) {
                    if used != module {
                        let place = format!(
                            "{}:{}",
                            file.strip_prefix(src()).unwrap().display(),
                            number + 1
                        );
                        out.entry((module.clone(), used)).or_insert(place);
                    }
                }
            }
        }
    }
    out
}

#[test]
fn src_has_at_most_twelve_top_level_entries() {
    let modules = top_level();
    assert!(
        modules.len() <= MAX_TOP_LEVEL,
        "src/ has {} top-level entries ({}); group them into folders by concern",
        modules.len(),
        modules
            .iter()
            .map(|(m, _)| m.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
}

#[test]
fn every_top_level_module_has_a_declared_place() {
    let declared: BTreeSet<&str> = LAYERS.iter().map(|(m, _)| *m).collect();
    for (module, path) in top_level() {
        assert!(
            declared.contains(module.as_str()),
            "`{module}` ({}) is not in LAYERS: say what it may use",
            path.display()
        );
    }
}

#[test]
fn folders_use_only_the_layers_below_them() {
    let allowed: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut wrong = Vec::new();
    for ((from, to), place) in uses() {
        let Some(may) = allowed.get(from.as_str()) else {
            continue; // reported by `every_top_level_module_has_a_declared_place`
        };
        if !may.contains(&to.as_str()) {
            wrong.push(format!("{place}: `{from}` uses `crate::{to}`"));
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_layering_has_no_circle() {
    // Depth-first search over the declared edges and the real ones together: a circle in
    // either would make "one way" untrue.
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, may) in LAYERS {
        edges
            .entry((*from).to_owned())
            .or_default()
            .extend(may.iter().map(|m| (*m).to_owned()));
    }
    for (from, to) in uses().into_keys() {
        edges.entry(from).or_default().insert(to);
    }
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.to_owned());
            panic!("circle between folders: {}", circle.join(" → "));
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            visit(next, edges, path, done);
        }
        path.pop();
        done.insert(node.to_owned());
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        visit(node, &edges, &mut Vec::new(), &mut done);
    }
}

#[test]
fn crate_paths_are_read_from_plain_and_grouped_uses() {
    assert_eq!(
        crate_paths("use crate::engine::index::{Evaluator, Index};"),
        ["engine"]
    );
    assert_eq!(
        crate_paths("use crate::{engine::{entry, eval}, flow, objects::Proto};"),
        ["engine", "flow", "objects"]
    );
    assert_eq!(
        crate_paths("let x = crate::report::verify::judge(a, crate::flow::Reader::new(b));"),
        ["report", "flow"]
    );
    assert!(crate_paths("use netpol_crate::engine;").is_empty());
    assert_eq!(code("let a = 1; // crate::cli"), "let a = 1; ");
    assert_eq!(code("/// see [`crate::cli`]"), "");
}
