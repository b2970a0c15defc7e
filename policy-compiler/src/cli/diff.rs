//! `netpol diff`: what a change does to connectivity, between two git revisions or two
//! directories.

use std::path::{Path, PathBuf};

use clap::ValueEnum;

use super::revision::{self, Cluster, Revision};
use super::{Output, Status};
use crate::document::files::{self, Files, GitTree, POLICY_EXTENSIONS, Rooted};
use crate::flow::universe::Mentions;
use crate::report::connectivity;
use crate::report::diff::{self, Diff, Side};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Files or directories, relative to the repository's current directory: profiles
    /// (compiled), policies and workload manifests, told apart by content. A path only one
    /// revision has is empty in the other.
    #[arg(default_value = ".", value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// The revision before the change: a git revision of the repository the command runs in
    /// (`origin/main`, a commit), or a directory (a checkout of it).
    #[arg(long, value_name = "REV|DIR")]
    base: String,
    /// The revision after the change: a git revision or a directory; by default the files as
    /// they are in the working tree.
    #[arg(long, value_name = "REV|DIR")]
    head: Option<String>,
    #[command(flatten)]
    cluster: Cluster,
    /// Output format: netpol-analyzer's diff (txt, csv; the security summary goes to stderr),
    /// JSON, or Markdown for a pull-request comment.
    #[arg(long, value_enum, default_value_t = Format::Txt)]
    format: Format,
    /// Exit with status 1 when the change has one of these (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "WHAT")]
    fail_on: Vec<FailOn>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Txt,
    Csv,
    Json,
    Md,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FailOn {
    /// A workload newly reachable from the internet.
    NewWorldExposure,
    /// A workload newly allowed to reach the internet (address ranges, DNS names).
    NewEgress,
    /// A workload no longer default-deny in a direction.
    LostIsolation,
    /// A policy object Cilium would reject.
    InvalidPolicy,
    /// Any change in connectivity.
    Any,
}

/// Where a revision's files come from.
enum Tree {
    /// The working tree.
    Work,
    Dir(Rooted),
    Git(GitTree),
}

impl Tree {
    /// The files of the revision; `work` is the working tree.
    fn files<'a>(&'a self, work: &'a dyn Files) -> &'a dyn Files {
        match self {
            Self::Work => work,
            Self::Dir(d) => d,
            Self::Git(m) => m,
        }
    }
}

pub(super) fn run(args: &Args, fs: &dyn Files, out: &mut Output<'_>) -> Status {
    let Some(settings) = revision::settings(fs, &args.cluster, out) else {
        return Status::BadInput;
    };
    let base = open(&args.base, &args.paths, out);
    let head = match &args.head {
        Some(h) => open(h, &args.paths, out),
        None => Some((Tree::Work, "working tree".to_owned())),
    };
    let (Some((base_tree, base_label)), Some((head_tree, head_label))) = (base, head) else {
        return Status::BadInput;
    };
    // Paths that exist in neither revision are a mistake; in one only, the other is empty.
    let paths: Vec<PathBuf> = args
        .paths
        .iter()
        .filter(|p| {
            let here = |t: &Tree| t.files(fs).expand(p, POLICY_EXTENSIONS).is_ok();
            here(&base_tree) || here(&head_tree)
        })
        .cloned()
        .collect();
    if paths.len() < args.paths.len() {
        for p in args.paths.iter().filter(|p| !paths.contains(p)) {
            let _ = writeln!(
                out.stderr,
                "error: `{}` exists in neither `{base_label}` nor `{head_label}`\n  help: give paths relative to the current directory",
                p.display()
            );
        }
        return Status::BadInput;
    }
    let read = |tree: &Tree, label: &str, out: &mut Output<'_>| -> Option<Revision> {
        let fs = tree.files(fs);
        let present: Vec<PathBuf> = paths
            .iter()
            .filter(|p| fs.expand(p, POLICY_EXTENSIONS).is_ok())
            .cloned()
            .collect();
        let _ = writeln!(out.stderr, "{label}:");
        revision::read(fs, &present, &args.cluster, settings.clone(), out)
    };
    let Some(base) = read(&base_tree, &base_label, out) else {
        return Status::BadInput;
    };
    let Some(head) = read(&head_tree, &head_label, out) else {
        return Status::BadInput;
    };
    let d = compare(&base, &head, &base_label, &head_label);
    let text = match args.format {
        Format::Txt => diff::render(&d, diff::Format::Txt),
        Format::Csv => diff::render(&d, diff::Format::Csv),
        Format::Json => diff::render(&d, diff::Format::Json),
        Format::Md => diff::render(&d, diff::Format::Md),
    };
    if matches!(args.format, Format::Txt | Format::Csv) {
        let _ = write!(out.stderr, "{}", diff::summary_text(&d));
    }
    let written = out.write(&text);
    if written != Status::Ok {
        return written;
    }
    if failed(&d, &args.fail_on) {
        Status::Found
    } else {
        Status::Ok
    }
}

/// The diff of two revisions, over the peers both name.
pub(super) fn compare(
    base: &Revision,
    head: &Revision,
    base_label: &str,
    head_label: &str,
) -> Diff {
    let mentions: Mentions = base.mentions.union(&head.mentions);
    let mut declared = base.declared.clone();
    for d in &head.declared {
        if !declared
            .iter()
            .any(|b| b.namespace == d.namespace && b.name == d.name)
        {
            declared.push(d.clone());
        }
    }
    let connect = |r: &Revision| {
        connectivity::compute(
            &r.policies.index,
            r.policies.named_ports(),
            r.universe(&mentions, &declared),
        )
    };
    // The two revisions on two cores.
    let (b, h) = std::thread::scope(|scope| {
        let b = scope.spawn(|| connect(base));
        let h = connect(head);
        (b.join(), h)
    });
    let b = match b {
        Ok(b) => b,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    diff::compare(
        Side {
            label: base_label,
            connectivity: &b,
            invalid: &base.policies.rejected_names,
        },
        Side {
            label: head_label,
            connectivity: &h,
            invalid: &head.policies.rejected_names,
        },
    )
}

fn failed(d: &Diff, fail_on: &[FailOn]) -> bool {
    let s = &d.summary;
    fail_on.iter().any(|f| match f {
        FailOn::NewWorldExposure => !s.new_world_exposure.is_empty(),
        FailOn::NewEgress => !s.new_egress.is_empty(),
        FailOn::LostIsolation => s.lost_isolation().next().is_some(),
        FailOn::InvalidPolicy => !s.invalid_policies.is_empty(),
        FailOn::Any => !d.changes.is_empty() || !s.is_empty(),
    })
}

/// A revision argument: an existing directory, else a git revision.
fn open(arg: &str, paths: &[PathBuf], out: &mut Output<'_>) -> Option<(Tree, String)> {
    let dir = Path::new(arg);
    if dir.is_dir() {
        return Some((
            Tree::Dir(Rooted {
                root: dir.to_path_buf(),
            }),
            arg.to_owned(),
        ));
    }
    match files::git_tree(arg, paths, POLICY_EXTENSIONS) {
        Ok(memory) => Some((Tree::Git(memory), arg.to_owned())),
        Err(e) => {
            let _ = writeln!(
                out.stderr,
                "error: cannot read `{arg}`: {e}\n  help: give a git revision (`origin/main`, a commit) or a directory"
            );
            None
        }
    }
}
