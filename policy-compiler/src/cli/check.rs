//! `netpol check`: every problem of the profiles at once, nothing written.

use std::path::PathBuf;

use super::{Output, Status};
use crate::document::files::Files;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Profile files or directories.
    #[arg(default_value = "profiles")]
    paths: Vec<PathBuf>,
    /// Exit with 1 when there are warnings.
    #[arg(long)]
    deny_warnings: bool,
}

pub(super) fn run(args: &Args, fs: &dyn Files, out: &mut Output<'_>) -> Status {
    let result = crate::profile::compile_paths(fs, &args.paths);
    out.report(&result.diagnostics, &result.sources);
    if result.diagnostics.has_errors() {
        return Status::BadInput;
    }
    if let (Some(model), Some(objects)) = (&result.model, &result.objects) {
        let files = result.sources.files().count();
        let _ = writeln!(
            out.stderr,
            "checked {files} {}: {} workloads, {} baselines, {} policies",
            if files == 1 { "file" } else { "files" },
            model.services.len(),
            model.baselines.len(),
            objects.len()
        );
    }
    if args.deny_warnings && result.diagnostics.warning_count() > 0 {
        Status::Found
    } else {
        Status::Ok
    }
}
