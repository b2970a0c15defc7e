//! Where input text comes from: the file system, or memory (tests, fuzzing, benchmarks), and
//! how a path given by the user expands into the files under it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where file contents come from: the file system, or memory (tests, fuzzing, benchmarks).
pub trait Files {
    /// Expand a path given by the user into the files it names, sorted: the path itself if it is
    /// a file, else the files under it whose extension is one of `extensions`.
    fn expand(&self, path: &Path, extensions: &[&str]) -> std::io::Result<Vec<PathBuf>>;
    fn read(&self, path: &Path) -> std::io::Result<String>;
    /// Open a file for reading line by line (large flow files are streamed, not slurped).
    fn open(&self, path: &Path) -> std::io::Result<Box<dyn std::io::BufRead + Send + '_>> {
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

    fn open(&self, path: &Path) -> std::io::Result<Box<dyn std::io::BufRead + Send + '_>> {
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

/// The reason of an I/O error, without the `(os error N)` tail.
pub fn io_reason(e: &std::io::Error) -> String {
    // `Os { code: 2, kind: NotFound, message: "No such file or directory" }` → the message.
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s.get(..i).unwrap_or(&s).to_string(),
        None => s,
    }
}
