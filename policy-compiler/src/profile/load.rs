//! Finding, reading and decoding profile files, following `include:`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::diagnostic::source::{Loc, SourceFile, SourceMap, Span};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::document;
use crate::document::files::{Files, PROFILE_EXTENSIONS, io_reason};
use crate::profile::syntax::{self, ProfileFile};

/// The decoded profiles of a run.
#[derive(Debug, Default)]
pub struct Loaded {
    pub sources: SourceMap,
    pub files: Vec<ProfileFile>,
    pub diagnostics: Diagnostics,
}

/// Load the profiles named by `paths` (files or directories) and everything they include.
pub fn load(fs: &dyn Files, paths: &[PathBuf]) -> Loaded {
    let mut loaded = Loaded::default();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut queue: Vec<(PathBuf, Option<Loc<String>>)> = Vec::new();
    for path in paths {
        match fs.expand(path, PROFILE_EXTENSIONS) {
            Ok(found) if found.is_empty() => loaded.diagnostics.push(
                Diagnostic::global(
                    "no-profiles",
                    format!("no profiles in `{}`", path.display()),
                )
                .with_help(
                    "profiles are `*.yaml` files; `netpol compile` reads `./profiles` by default",
                ),
            ),
            Ok(found) => queue.extend(found.into_iter().map(|p| (p, None))),
            Err(e) => loaded.diagnostics.push(
                Diagnostic::global(
                    "io",
                    format!("cannot read `{}`: {}", path.display(), io_reason(&e)),
                )
                .with_help("give a profile file or a directory of profiles"),
            ),
        }
    }
    // Breadth-first through includes; each file once.
    let mut next = 0;
    while let Some((path, included_by)) = queue.get(next).cloned() {
        next += 1;
        if !seen.insert(fs.key(&path)) {
            continue;
        }
        let text = match fs.read(&path) {
            Ok(text) => text,
            Err(e) => {
                let message = format!("cannot read `{}`: {}", path.display(), io_reason(&e));
                loaded.diagnostics.push(match included_by {
                    Some(inc) => Diagnostic::error("io", inc.span, message)
                        .with_label("included here")
                        .with_help("include paths are relative to the including file"),
                    None => Diagnostic::global("io", message),
                });
                continue;
            }
        };
        let source = loaded.sources.add(SourceFile::new(&path, text.as_str()));
        let doc = match document::parse_multi(source, &text) {
            Ok(docs) => {
                let mut docs = docs
                    .into_iter()
                    .filter(|d| !matches!(d.value, document::Value::Null));
                let first = docs.next();
                if let Some(extra) = docs.next() {
                    loaded.diagnostics.push(
                        Diagnostic::error(
                            "multiple-documents",
                            extra.span,
                            "a profile holds one YAML document".to_string(),
                        )
                        .with_label("second document")
                        .with_help("put each namespace in a file of its own"),
                    );
                    continue;
                }
                first.unwrap_or(document::Node {
                    value: document::Value::Null,
                    span: Span::new(source, 0, 0),
                })
            }
            Err(d) => {
                loaded.diagnostics.push(*d);
                continue;
            }
        };
        if let Some(mut file) = syntax::decode(source, &doc, &mut loaded.diagnostics) {
            // The paths given are queued first, so a file reached both ways counts as given.
            file.included = included_by.is_some();
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            for include in &file.includes {
                queue.push((base.join(&include.value), Some(include.clone())));
            }
            loaded.files.push(file);
        }
    }
    loaded
}
