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
    /// Files that could not be read or decoded at all (their errors are in `diagnostics`).
    pub unread: Vec<Unread>,
}

/// A profile file whose errors kept all of it out, and what it seems to declare: statements
/// of other files that name its namespace or templates cannot be checked until it is fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unread {
    /// The file, as diagnostics name it.
    pub file: String,
    /// The namespace it declares, when that could still be read; `None`: it may be any.
    pub namespace: Option<String>,
    /// The templates it defines, when they could still be read; `None`: it may define any.
    pub templates: Option<Vec<String>>,
}

impl Unread {
    /// What a file's text seems to declare, read line by line: for a file the YAML parser
    /// gave up on.
    fn skim(file: String, text: &str) -> Self {
        let mut namespace = None;
        let mut templates = Some(Vec::new());
        let mut in_templates = false;
        let mut indent: Option<usize> = None;
        for line in text.lines() {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let depth = line.len() - trimmed.len();
            if depth == 0 {
                in_templates = false;
                if let Some(rest) = line.strip_prefix("namespace:") {
                    let value = rest.split('#').next().unwrap_or("").trim();
                    let value = value.trim_matches(|c| c == '"' || c == '\'');
                    if crate::objects::label::is_dns_label(value) {
                        namespace = namespace.or(Some(value.to_string()));
                    }
                } else if let Some(rest) = line.strip_prefix("templates:") {
                    in_templates = true;
                    indent = None;
                    if !rest.split('#').next().unwrap_or("").trim().is_empty() {
                        // `templates: {..}`: not read line by line.
                        templates = None;
                    }
                }
                continue;
            }
            if !in_templates {
                continue;
            }
            let indent = *indent.get_or_insert(depth);
            if depth == indent
                && let Some((name, _)) = trimmed.split_once(':')
                && let Some(names) = templates.as_mut()
            {
                names.push(
                    name.trim()
                        .trim_matches(|c| c == '"' || c == '\'')
                        .to_string(),
                );
            }
        }
        Self {
            file,
            namespace,
            templates,
        }
    }

    /// What a parsed document that could not be decoded declares.
    fn of_document(file: String, doc: &document::Node) -> Self {
        let namespace = doc.get("namespace").and_then(document::Node::scalar_text);
        let templates = match doc.get("templates").map(|t| &t.value) {
            None => Some(Vec::new()),
            Some(document::Value::Map(entries)) => Some(
                entries
                    .iter()
                    .filter_map(|(k, _)| k.scalar_text())
                    .collect(),
            ),
            Some(_) => None,
        };
        Self {
            file,
            namespace,
            templates,
        }
    }

    /// Whether a template of this name may be defined there.
    pub fn may_define_template(&self, name: &str) -> bool {
        self.templates
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == name))
    }
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
    // Kubernetes objects found among the profiles: the file and its `kind` value.
    let mut objects: Vec<(String, Span)> = Vec::new();
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
                loaded.unread.push(Unread {
                    file: path.display().to_string(),
                    namespace: None,
                    templates: None,
                });
                loaded.diagnostics.push(match included_by {
                    Some(inc) => Diagnostic::error("io", inc.span, message)
                        .with_label("included here")
                        .with_help("include paths are relative to the including file"),
                    None => Diagnostic::global("io", message),
                });
                continue;
            }
        };
        if text.starts_with(crate::profile::emit::HEADER) {
            // What `netpol compile` wrote, inside the profile tree (`compile -o profiles/out`):
            // never read back as profiles.
            continue;
        }
        let source = loaded.sources.add(SourceFile::new(&path, text.as_str()));
        let shown = loaded
            .sources
            .get(source)
            .map_or_else(|| path.display().to_string(), |f| f.name.clone());
        let doc = match document::parse_multi(source, &text) {
            Ok(docs) => {
                let mut docs = docs
                    .into_iter()
                    .filter(|d| !matches!(d.value, document::Value::Null));
                let first = docs.next();
                if let Some(kind) = first.as_ref().and_then(kubernetes_kind) {
                    objects.push((shown, kind));
                    continue;
                }
                if let Some(extra) = docs.next() {
                    loaded.unread.push(match &first {
                        Some(doc) => Unread::of_document(shown, doc),
                        None => Unread::skim(shown, &text),
                    });
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
                loaded.unread.push(Unread::skim(shown, &text));
                loaded.diagnostics.push(*d);
                continue;
            }
        };
        let Some(mut file) = syntax::decode_text(source, &text, &doc, &mut loaded.diagnostics)
        else {
            loaded.unread.push(Unread::of_document(shown, &doc));
            continue;
        };
        // The paths given are queued first, so a file reached both ways counts as given.
        file.included = included_by.is_some();
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for include in &file.includes {
            // `profiles/../catalog/x.yaml` is shown as `catalog/x.yaml` where both are the
            // same file (a symbolic link on the way may make them differ).
            let joined = base.join(&include.value);
            let lexical = document::files::normalize(&joined);
            let path = if fs.key(&lexical) == fs.key(&joined) {
                lexical
            } else {
                joined
            };
            queue.push((path, Some(include.clone())));
        }
        loaded.files.push(file);
    }
    if let Some(((first, kind), rest)) = objects.split_first() {
        let message = match rest.len() {
            0 => format!("`{first}` holds a Kubernetes object, not a profile: it was skipped"),
            n => format!(
                "{} files hold Kubernetes objects, not profiles: they were skipped",
                n + 1
            ),
        };
        let mut help = "profiles have `namespace:`, `cluster:`, `baselines:` or `templates:`; keep other YAML out of the profile folders".to_string();
        if !rest.is_empty() {
            let names: Vec<&str> = rest.iter().map(|(f, _)| f.as_str()).collect();
            help.push_str(&format!("; also skipped: {}", names.join(", ")));
        }
        loaded.diagnostics.push(
            Diagnostic::note("not-a-profile", *kind, message)
                .with_label("a Kubernetes object")
                .with_help(help),
        );
    }
    loaded
}

/// The span of the `kind` of a document that is a Kubernetes object (`apiVersion` and `kind`,
/// which no profile has).
fn kubernetes_kind(doc: &document::Node) -> Option<Span> {
    doc.get("apiVersion")?;
    doc.get("kind").map(|k| k.span)
}
