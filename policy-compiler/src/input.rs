//! Finding, reading and decoding profile files, following `include:`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::document;
use crate::profile::{self, ProfileFile};
use crate::source::{Loc, SourceFile, SourceMap};

/// Where file contents come from: the file system, or memory (tests, fuzzing, benchmarks).
pub trait Files {
    /// Expand a path given by the user into the files it names, sorted: the path itself if it is
    /// a file, else the files under it whose extension is one of `extensions`.
    fn expand(&self, path: &Path, extensions: &[&str]) -> std::io::Result<Vec<PathBuf>>;
    fn read(&self, path: &Path) -> std::io::Result<String>;
    /// Open a file for reading line by line (large flow files are streamed, not slurped).
    fn open(&self, path: &Path) -> std::io::Result<Box<dyn std::io::BufRead + '_>> {
        Ok(Box::new(std::io::Cursor::new(
            self.read(path)?.into_bytes(),
        )))
    }
    /// The identity of a file, to load it once however it is reached.
    fn key(&self, path: &Path) -> PathBuf;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct Disk;

impl Files for Disk {
    fn expand(&self, path: &Path, extensions: &[&str]) -> std::io::Result<Vec<PathBuf>> {
        let meta = std::fs::metadata(path)?;
        if !meta.is_dir() {
            return Ok(vec![path.to_path_buf()]);
        }
        let mut out = Vec::new();
        walk(path, extensions, &mut out)?;
        out.sort();
        Ok(out)
    }

    fn read(&self, path: &Path) -> std::io::Result<String> {
        let bytes = std::fs::read(path)?;
        String::from_utf8(bytes).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the file is not UTF-8 text",
            )
        })
    }

    fn key(&self, path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    }

    fn open(&self, path: &Path) -> std::io::Result<Box<dyn std::io::BufRead + '_>> {
        let file = std::fs::File::open(path)?;
        Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, file)))
    }
}

/// Files under a directory with one of `extensions`, skipping hidden files and directories
/// (such as `.schema/`).
fn walk(dir: &Path, extensions: &[&str], out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, extensions, out)?;
        } else if has_extension(&path, extensions) {
            out.push(path);
        }
    }
    Ok(())
}

/// Extensions of profile files.
pub const PROFILE_EXTENSIONS: &[&str] = &["yaml", "yml"];
/// Extensions of policy files (Kubernetes objects).
pub const POLICY_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| extensions.contains(&e))
}

/// Files held in memory, by path.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    pub files: BTreeMap<PathBuf, String>,
}

impl Memory {
    pub fn new<P: Into<PathBuf>, S: Into<String>>(files: impl IntoIterator<Item = (P, S)>) -> Self {
        Self {
            files: files
                .into_iter()
                .map(|(p, s)| (p.into(), s.into()))
                .collect(),
        }
    }
}

impl Files for Memory {
    fn expand(&self, path: &Path, extensions: &[&str]) -> std::io::Result<Vec<PathBuf>> {
        if self.files.contains_key(path) {
            return Ok(vec![path.to_path_buf()]);
        }
        let under: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| p.starts_with(path) && has_extension(p, extensions))
            .cloned()
            .collect();
        if under.is_empty() {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "No such file or directory",
            ))
        } else {
            Ok(under)
        }
    }

    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.files.get(path).cloned().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory")
        })
    }

    fn key(&self, path: &Path) -> PathBuf {
        normalize(path)
    }
}

/// Lexically resolve `.` and `..` (for in-memory paths).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

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
                    span: crate::source::Span::new(source, 0, 0),
                })
            }
            Err(d) => {
                loaded.diagnostics.push(*d);
                continue;
            }
        };
        if let Some(file) = profile::decode(source, &doc, &mut loaded.diagnostics) {
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            for include in &file.includes {
                queue.push((base.join(&include.value), Some(include.clone())));
            }
            loaded.files.push(file);
        }
    }
    loaded
}

fn io_reason(e: &std::io::Error) -> String {
    // `Os { code: 2, kind: NotFound, message: "No such file or directory" }` → the message.
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s.get(..i).unwrap_or(&s).to_string(),
        None => s,
    }
}
