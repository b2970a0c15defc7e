//! `netpol compile`: profiles in, a YAML (or JSON) stream or a directory of files out.

use std::path::PathBuf;

use clap::ValueEnum;

use super::{Output, Status};
use crate::document::files::Files;
use crate::profile::emit::{self, Format};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Profile files or directories (searched recursively for *.yaml, *.yml).
    #[arg(default_value = "profiles")]
    paths: Vec<PathBuf>,
    /// Write one file per object into this directory.
    #[arg(short, long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Yaml)]
    format: OutputFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutputFormat {
    Yaml,
    Json,
}

pub(super) fn run(args: &Args, fs: &dyn Files, out: &mut Output<'_>) -> Status {
    let result = crate::profile::compile_paths(fs, &args.paths);
    out.report(&result.diagnostics, &result.sources);
    // `compile_paths` gives no objects when there is an error: never partial output.
    let Some(objects) = result.objects else {
        return Status::BadInput;
    };
    let format = match args.format {
        OutputFormat::Yaml => Format::Yaml,
        OutputFormat::Json => Format::Json,
    };
    match &args.output {
        None => match emit::stream(&objects, format) {
            Ok(text) => out.write(&text),
            Err(e) => {
                let _ = writeln!(out.stderr, "error: {e}");
                Status::BadInput
            }
        },
        Some(dir) => {
            let written = emit::files(&objects, format).and_then(|files| {
                emit::write_dir(dir, &files)?;
                Ok(files.len())
            });
            match written {
                Ok(n) => {
                    let _ = writeln!(out.stderr, "wrote {n} files to {}", dir.display());
                    Status::Ok
                }
                Err(e) => {
                    let _ = writeln!(out.stderr, "error: {e}");
                    Status::BadInput
                }
            }
        }
    }
}
