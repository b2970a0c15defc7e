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
        // `.`, `./profiles`, `profiles/`: the files under the path, however it is spelt.
        let path = normalize(path);
        if self.files.contains_key(&path) {
            return Ok(vec![path]);
        }
        let under: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| normalize(p).starts_with(&path) && has_extension(p, extensions))
            .filter(|p| {
                // Hidden files and folders are skipped, as on disk.
                !p.components().any(|c| {
                    c.as_os_str().to_string_lossy().starts_with('.')
                        && c != std::path::Component::CurDir
                })
            })
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
        // `profiles/../catalog/x.yaml` (an include outside the profile tree) is `catalog/x.yaml`.
        self.files
            .get(path)
            .or_else(|| self.files.get(&normalize(path)))
            .cloned()
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory")
            })
    }

    fn key(&self, path: &Path) -> PathBuf {
        normalize(path)
    }
}

/// Lexically resolve `.` and `..`: `profiles/../catalog/a.yaml` is `catalog/a.yaml`; a `..`
/// with nothing before it to undo stays (`../catalog`).
pub fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(c),
            },
            other => out.push(other),
        }
    }
    out.iter().collect()
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

/// A directory standing for the current one: paths are read under `root` and reported as
/// given (a checkout of another revision reads like the working tree).
#[derive(Debug, Clone)]
pub struct Rooted {
    pub root: PathBuf,
}

impl Files for Rooted {
    fn expand(&self, path: &Path, extensions: &[&str]) -> std::io::Result<Vec<PathBuf>> {
        let files = Disk.expand(&self.root.join(path), extensions)?;
        Ok(files
            .into_iter()
            .map(|f| {
                f.strip_prefix(&self.root)
                    .map_or(f.clone(), Path::to_path_buf)
            })
            .collect())
    }

    fn read(&self, path: &Path) -> std::io::Result<String> {
        Disk.read(&self.root.join(path))
    }

    fn key(&self, path: &Path) -> PathBuf {
        Disk.key(&self.root.join(path))
    }
}

/// The files of a git revision: those under the paths given, read at once by [`git_tree`], and
/// any other file of the revision on demand — a profile's `include:` may name a file outside the
/// paths given (`../catalog/traefik.yaml`).
#[derive(Debug, Clone)]
pub struct GitTree {
    pub listed: Memory,
    rev: String,
    /// The current directory relative to the repository's root (`git rev-parse --show-prefix`).
    prefix: String,
}

impl GitTree {
    /// A file outside the listed paths, read with `git cat-file`.
    fn read_unlisted(&self, path: &Path) -> std::io::Result<String> {
        let not_found =
            || std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        // Relative to the repository's root, lexically; a path leaving the repository is absent.
        let mut inside: Vec<String> = Vec::new();
        for c in Path::new(&self.prefix).join(path).components() {
            match c {
                std::path::Component::Normal(part) => {
                    inside.push(part.to_string_lossy().into_owned());
                }
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    inside.pop().ok_or_else(not_found)?;
                }
                std::path::Component::RootDir | std::path::Component::Prefix(_) => {
                    return Err(not_found());
                }
            }
        }
        let object = format!("{}:{}", self.rev, inside.join("/"));
        let blob = git(&["cat-file", "blob", &object]).map_err(|_| not_found())?;
        String::from_utf8(blob).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the file is not UTF-8 text",
            )
        })
    }
}

impl Files for GitTree {
    fn expand(&self, path: &Path, extensions: &[&str]) -> std::io::Result<Vec<PathBuf>> {
        self.listed.expand(path, extensions)
    }

    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.listed.read(path).or_else(|_| self.read_unlisted(path))
    }

    fn key(&self, path: &Path) -> PathBuf {
        self.listed.key(path)
    }
}

/// Run `git` in the current directory: its stdout, or its stderr as the error.
fn git(args: &[&str]) -> Result<Vec<u8>, String> {
    let out = std::process::Command::new("git")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `git`: {}", io_reason(&e)))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// The files under `paths` (relative to the current directory) at the git revision `rev` of
/// the repository the current directory is in, with one of `extensions`, read with the `git`
/// command; keyed by their path relative to the current directory. Other files of the revision
/// are read when asked for. `Err` says why not.
pub fn git_tree(rev: &str, paths: &[PathBuf], extensions: &[&str]) -> Result<GitTree, String> {
    use std::io::{Read as _, Write as _};
    use std::process::{Command, Stdio};
    let commit = format!("{rev}^{{commit}}");
    let id = git(&["rev-parse", "--verify", "--quiet", &commit]).map_err(|e| {
        if e.contains("not a git repository") {
            "not inside a git repository".to_owned()
        } else {
            format!("`{rev}` is no revision of this repository")
        }
    })?;
    let prefix = String::from_utf8_lossy(&git(&["rev-parse", "--show-prefix"])?)
        .trim()
        .to_owned();
    let mut args: Vec<String> = ["ls-tree", "-r", "-z", "--full-name", rev, "--"]
        .iter()
        .map(ToString::to_string)
        .collect();
    args.extend(paths.iter().map(|p| p.to_string_lossy().into_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let listing = git(&args)?;
    // `<mode> <type> <object>\t<path>`, NUL-terminated.
    let mut blobs: Vec<(String, PathBuf)> = Vec::new();
    for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let entry = String::from_utf8_lossy(entry);
        let Some((meta, path)) = entry.split_once('\t') else {
            continue;
        };
        let mut meta = meta.split(' ');
        let (Some(_), Some("blob"), Some(oid)) = (meta.next(), meta.next(), meta.next()) else {
            continue;
        };
        let local = path.strip_prefix(prefix.as_str()).unwrap_or(path);
        let local = PathBuf::from(local);
        if has_extension(&local, extensions) {
            blobs.push((oid.to_owned(), local));
        }
    }
    let mut child = Command::new("git")
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run `git`: {}", io_reason(&e)))?;
    let mut input = String::new();
    for (oid, _) in &blobs {
        input.push_str(oid);
        input.push('\n');
    }
    let mut stdin = child.stdin.take().ok_or("cannot write to `git cat-file`")?;
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut output = Vec::new();
    child
        .stdout
        .take()
        .ok_or("cannot read `git cat-file`")?
        .read_to_end(&mut output)
        .map_err(|e| io_reason(&e))?;
    let _ = writer.join();
    let _ = child.wait();
    // `<object> blob <size>\n<contents>\n` per object.
    let mut files = BTreeMap::new();
    let mut rest = output.as_slice();
    for (_, path) in blobs {
        let Some(eol) = rest.iter().position(|b| *b == b'\n') else {
            return Err("`git cat-file` ended early".to_owned());
        };
        let header = String::from_utf8_lossy(rest.get(..eol).unwrap_or_default()).into_owned();
        let size: usize = header
            .rsplit(' ')
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("unexpected `git cat-file` output `{header}`"))?;
        let body = rest
            .get(eol + 1..eol + 1 + size)
            .ok_or("`git cat-file` ended early")?;
        files.insert(path, String::from_utf8_lossy(body).into_owned());
        rest = rest.get(eol + 2 + size..).unwrap_or_default();
    }
    Ok(GitTree {
        listed: Memory { files },
        rev: String::from_utf8_lossy(&id).trim().to_owned(),
        prefix,
    })
}

#[cfg(test)]
mod tests {
    use super::normalize;
    use std::path::Path;

    #[test]
    fn normalize_undoes_parent_steps_it_can() {
        let n = |p: &str| normalize(Path::new(p)).display().to_string();
        assert_eq!(n("profiles/../catalog/a.yaml"), "catalog/a.yaml");
        assert_eq!(n("./profiles/./a.yaml"), "profiles/a.yaml");
        assert_eq!(n("../catalog"), "../catalog");
        assert_eq!(n("a/../../b"), "../b");
        assert_eq!(n("/a/../../b"), "/b");
    }
}
