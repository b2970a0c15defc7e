//! The `netpol` command line.
//!
//! Exit codes: 0 ok · 1 the run worked and found something (`check --deny-warnings` with
//! warnings) · 2 bad input or usage. Diagnostics go to stderr, results to stdout; a closed
//! pipe on stdout ends the run quietly.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::diagnostic::{self, Diagnostics, Style};
use crate::emit::{self, Format};
use crate::input::{Disk, Files};
use crate::source::SourceMap;

#[derive(Debug, Parser)]
#[command(
    name = "netpol",
    version,
    about = "Compile who-talks-to-whom profiles into default-deny Cilium network policies",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,

    /// How to print errors and warnings.
    #[arg(long, global = true, value_enum, default_value_t = ErrorFormat::Human)]
    error_format: ErrorFormat,

    /// Colours in human-readable diagnostics.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    color: Color,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compile profiles into CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy objects.
    ///
    /// Without `-o`, one multi-document YAML stream goes to stdout. With `-o DIR`, one file per
    /// object plus a kustomization.yaml (ready for Flux or Argo CD); files an earlier run wrote
    /// there and that are no longer produced are removed.
    Compile {
        /// Profile files or directories (searched recursively for *.yaml, *.yml).
        #[arg(default_value = "profiles")]
        paths: Vec<PathBuf>,
        /// Write one file per object into this directory.
        #[arg(short, long, value_name = "DIR")]
        output: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Yaml)]
        format: OutputFormat,
    },
    /// Check profiles and report every problem, without writing anything.
    Check {
        /// Profile files or directories.
        #[arg(default_value = "profiles")]
        paths: Vec<PathBuf>,
        /// Exit with 1 when there are warnings.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Print the JSON Schema of the profile format (for editors: yaml-language-server).
    Schema,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ErrorFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutputFormat {
    Yaml,
    Json,
}

/// Exit statuses (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    Found = 1,
    BadInput = 2,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Help and version are successes; everything else is a usage error.
            return ExitCode::from(if e.use_stderr() {
                Status::BadInput as u8
            } else {
                0
            });
        }
    };
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let color = match cli.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let status = run(&cli, &Disk, &mut stdout, &mut stderr, color);
    ExitCode::from(status as u8)
}

/// Parse arguments (the first one is the program name) and run, writing to the given streams.
pub fn run_args<I, T>(
    args: I,
    fs: &dyn Files,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Status
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => run(&cli, fs, stdout, stderr, false),
        Err(e) => {
            let _ = write!(stderr, "{e}");
            if e.use_stderr() {
                Status::BadInput
            } else {
                Status::Ok
            }
        }
    }
}

pub fn run(
    cli: &Cli,
    fs: &dyn Files,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    color: bool,
) -> Status {
    let report = |diagnostics: &Diagnostics, sources: &SourceMap, stderr: &mut dyn Write| {
        let text = match cli.error_format {
            ErrorFormat::Json => diagnostic::render_json(diagnostics, sources),
            ErrorFormat::Human => {
                let style = if color { Style::Color } else { Style::Plain };
                diagnostic::render_human(diagnostics, sources, style)
            }
        };
        let _ = stderr.write_all(text.as_bytes());
    };
    match &cli.command {
        Command::Schema => write_out(stdout, crate::schema::PROFILE_SCHEMA),
        Command::Check {
            paths,
            deny_warnings,
        } => {
            let result = crate::compile_paths(fs, paths);
            report(&result.diagnostics, &result.sources, stderr);
            if result.diagnostics.has_errors() {
                return Status::BadInput;
            }
            if let (Some(model), Some(objects)) = (&result.model, &result.objects) {
                let files = result.sources.files().count();
                let _ = writeln!(
                    stderr,
                    "checked {files} {}: {} workloads, {} baselines, {} policies",
                    if files == 1 { "file" } else { "files" },
                    model.services.len(),
                    model.baselines.len(),
                    objects.len()
                );
            }
            if *deny_warnings && result.diagnostics.warning_count() > 0 {
                Status::Found
            } else {
                Status::Ok
            }
        }
        Command::Compile {
            paths,
            output,
            format,
        } => {
            let result = crate::compile_paths(fs, paths);
            report(&result.diagnostics, &result.sources, stderr);
            // `compile_paths` gives no objects when there is an error: never partial output.
            let Some(objects) = result.objects else {
                return Status::BadInput;
            };
            let format = match format {
                OutputFormat::Yaml => Format::Yaml,
                OutputFormat::Json => Format::Json,
            };
            match output {
                None => match emit::stream(&objects, format) {
                    Ok(text) => write_out(stdout, &text),
                    Err(e) => {
                        let _ = writeln!(stderr, "error: {e}");
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
                            let _ = writeln!(stderr, "wrote {n} files to {}", dir.display());
                            Status::Ok
                        }
                        Err(e) => {
                            let _ = writeln!(stderr, "error: {e}");
                            Status::BadInput
                        }
                    }
                }
            }
        }
    }
}

/// Write results; a reader that went away (`netpol compile | head`) is not an error.
fn write_out(stdout: &mut dyn Write, text: &str) -> Status {
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Status::Ok,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Status::Ok,
        Err(_) => Status::BadInput,
    }
}
