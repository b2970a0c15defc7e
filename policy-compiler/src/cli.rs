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
    /// Judge recorded flows against policies, as Cilium would: which would be dropped, and why.
    ///
    /// Policies: CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and NetworkPolicy objects
    /// in YAML or JSON files (directories are searched recursively; other kinds are skipped).
    /// Flows: netpol flow JSONL or Hubble exports (`hubble observe -o jsonpb`), auto-detected.
    /// Exit 0 if nothing would be dropped, 1 if something would (or a policy is invalid and
    /// ignored, as Cilium ignores it), 2 on bad input.
    Verify {
        /// Policy files or directories.
        #[arg(long, required = true, num_args = 1.., value_name = "PATH")]
        policies: Vec<PathBuf>,
        /// Flow records: a file, or `-` for stdin.
        #[arg(long, value_name = "FILE")]
        flows: PathBuf,
        /// `kubectl get pods,services,namespaces,nodes -A -o json`: resolves IPs, named ports,
        /// namespace labels and `toServices`.
        #[arg(long, value_name = "FILE")]
        inventory: Option<PathBuf>,
        /// Report format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Explain how Cilium decides one flow, rule by rule.
    ///
    /// REF is a pod (`ns/name`, needs --inventory), a label set (`ns:media,app=sonarr`, add
    /// `sa:NAME` for the service account), an IP, a DNS name or an entity (`world`, `host`,
    /// `remote-node`, `kube-apiserver`, …). Exit 0 if allowed, 1 if dropped, 2 on bad input.
    Explain {
        /// Policy files or directories.
        #[arg(long, required = true, num_args = 1.., value_name = "PATH")]
        policies: Vec<PathBuf>,
        /// The client.
        #[arg(long, value_name = "REF")]
        from: String,
        /// The server.
        #[arg(long, value_name = "REF")]
        to: String,
        /// Port and protocol: `443/tcp`, `53/udp`, `8080` (TCP), `icmp/8`.
        #[arg(long, value_name = "PORT")]
        port: String,
        /// Inventory, as for `verify`.
        #[arg(long, value_name = "FILE")]
        inventory: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReportFormat {
    Text,
    Json,
    Markdown,
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
    let interactive = std::io::stderr().is_terminal();
    let status = run(&cli, &Disk, &mut stdout, &mut stderr, color, interactive);
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
        Ok(cli) => run(&cli, fs, stdout, stderr, false, false),
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

/// Run a parsed command. `interactive`: stderr is a terminal (progress may be shown).
pub fn run(
    cli: &Cli,
    fs: &dyn Files,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    color: bool,
    interactive: bool,
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
        Command::Verify {
            policies,
            flows,
            inventory,
            format,
        } => {
            let Some(engine) = load_engine(fs, policies, inventory.as_deref(), stderr, &report)
            else {
                return Status::BadInput;
            };
            let mut reader = crate::flow::Reader::new(engine.inventory.as_ref());
            let started = std::time::Instant::now();
            let mut progress = |bytes: u64| {
                if interactive {
                    let secs = started.elapsed().as_secs_f64().max(0.001);
                    #[expect(clippy::cast_precision_loss, reason = "progress display")]
                    let mb = bytes as f64 / 1e6;
                    let _ = write!(
                        stderr,
                        "\rreading flows: {mb:.0} MB ({:.0} MB/s)   ",
                        mb / secs
                    );
                }
            };
            let read = if flows.as_os_str() == "-" {
                reader.read_all(&mut std::io::stdin().lock(), &mut progress)
            } else {
                match fs.open(flows) {
                    Ok(mut input) => reader.read_all(&mut input, &mut progress),
                    Err(e) => Err(e),
                }
            };
            if interactive {
                let _ = write!(stderr, "\r{:60}\r", "");
            }
            if let Err(e) = read {
                let _ = writeln!(stderr, "error: cannot read `{}`: {e}", flows.display());
                return Status::BadInput;
            }
            if reader.error_count > 0 {
                for e in &reader.set.errors {
                    let _ = writeln!(
                        stderr,
                        "error: {}:{}:{}: {}\n  help: {}",
                        flows.display(),
                        e.line,
                        e.column,
                        e.message,
                        e.help
                    );
                }
                if reader.error_count > reader.set.errors.len() {
                    let _ = writeln!(
                        stderr,
                        "... and {} more errors",
                        reader.error_count - reader.set.errors.len()
                    );
                }
                let _ = writeln!(
                    stderr,
                    "error: {} bad flow records; nothing was judged",
                    reader.error_count
                );
                return Status::BadInput;
            }
            let set = reader.set;
            let cluster: &dyn crate::eval::NamedPorts = match &engine.inventory {
                Some(inv) => inv,
                None => &crate::eval::NoPorts,
            };
            let mut evaluator = crate::index::Evaluator::new(&engine.index, cluster);
            let verification = crate::verify::judge(&set.flows, &mut evaluator);
            let policies = engine.policies;
            let args = (
                &verification,
                &set,
                &engine.index,
                &engine.sources,
                policies,
            );
            let status = match format {
                ReportFormat::Text => write_out(
                    stdout,
                    &crate::verify::render_text(args.0, args.1, args.2, args.3, args.4),
                ),
                ReportFormat::Markdown => write_out(
                    stdout,
                    &crate::verify::render_markdown(args.0, args.1, args.2, args.3, args.4),
                ),
                ReportFormat::Json => {
                    let mut out = std::io::BufWriter::with_capacity(1 << 16, &mut *stdout);
                    let written = crate::verify::render_json(
                        &mut out, args.0, args.1, args.2, args.3, args.4,
                    )
                    .and_then(|()| out.flush());
                    match written {
                        Ok(()) => Status::Ok,
                        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Status::Ok,
                        Err(_) => Status::BadInput,
                    }
                }
            };
            if status != Status::Ok {
                return status;
            }
            if verification.denied() > 0 || engine.rejected > 0 {
                Status::Found
            } else {
                Status::Ok
            }
        }
        Command::Explain {
            policies,
            from,
            to,
            port,
            inventory,
        } => {
            let Some(engine) = load_engine(fs, policies, inventory.as_deref(), stderr, &report)
            else {
                return Status::BadInput;
            };
            let inv = engine.inventory.as_ref();
            let resolved = (
                crate::explain::resolve(from, inv),
                crate::explain::resolve(to, inv),
                crate::explain::parse_port(port),
            );
            let (from, to, (proto, port)) = match resolved {
                (Ok(f), Ok(t), Ok(p)) => (f, t, p),
                (f, t, p) => {
                    for e in [f.err(), t.err(), p.err()].into_iter().flatten() {
                        let _ = writeln!(stderr, "error: {e}");
                    }
                    return Status::BadInput;
                }
            };
            let cluster: &dyn crate::eval::NamedPorts = match inv {
                Some(inv) => inv,
                None => &crate::eval::NoPorts,
            };
            let (text, allowed) = crate::explain::explain(
                &engine.index.entries,
                &engine.index,
                &engine.sources,
                &from,
                &to,
                proto,
                port,
                cluster,
            );
            let status = write_out(stdout, &text);
            if status != Status::Ok {
                status
            } else if allowed {
                Status::Ok
            } else {
                Status::Found
            }
        }
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

/// Policies imported and indexed, with the inventory.
struct Engine {
    sources: SourceMap,
    index: crate::index::Index,
    inventory: Option<crate::inventory::Inventory>,
    policies: usize,
    rejected: usize,
}

/// Import policies and the inventory; `None` (after reporting) when the input is unusable:
/// unreadable files, YAML syntax errors, a broken inventory, or no policy at all.
fn load_engine(
    fs: &dyn Files,
    policies: &[PathBuf],
    inventory: Option<&std::path::Path>,
    stderr: &mut dyn Write,
    report: &dyn Fn(&Diagnostics, &SourceMap, &mut dyn Write),
) -> Option<Engine> {
    let imported = crate::policy::import(fs, policies);
    report(&imported.diagnostics, &imported.sources, stderr);
    let fatal = imported
        .diagnostics
        .iter()
        .any(|d| d.is_error() && matches!(d.code, "io" | "yaml-syntax"));
    if fatal {
        return None;
    }
    let stats = &imported.set.stats;
    if imported.set.policies.is_empty() && stats.rejected == 0 {
        let _ = writeln!(
            stderr,
            "error: no policies found in {} files\n  help: give CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy or NetworkPolicy objects (YAML or JSON)",
            stats.files
        );
        return None;
    }
    if stats.rejected > 0 {
        let _ = writeln!(
            stderr,
            "warning: {} invalid policy objects are ignored, as Cilium ignores them",
            stats.rejected
        );
    }
    let accepted: Vec<String> = stats
        .accepted
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    let mut summary = format!("read {} from {} files", accepted.join(", "), stats.files);
    if !stats.ignored.is_empty() {
        let ignored: Vec<String> = stats
            .ignored
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        summary.push_str(&format!("; skipped {}", ignored.join(", ")));
    }
    let _ = writeln!(stderr, "{summary}");
    let inventory = match inventory {
        None => None,
        Some(path) => match fs.read(path) {
            Ok(text) => match crate::inventory::Inventory::parse(&text) {
                Ok(inv) => Some(inv),
                Err(e) => {
                    let _ = writeln!(
                        stderr,
                        "error: {}:{}:{}: {}\n  help: give the output of `kubectl get pods,services,namespaces,nodes -A -o json`",
                        path.display(),
                        e.line,
                        e.column,
                        e.message
                    );
                    return None;
                }
            },
            Err(e) => {
                let _ = writeln!(stderr, "error: cannot read `{}`: {e}", path.display());
                return None;
            }
        },
    };
    let entries = crate::entry::build(&imported.set, inventory.as_ref());
    Some(Engine {
        sources: imported.sources,
        index: crate::index::Index::new(entries),
        inventory,
        policies: imported.set.policies.len(),
        rejected: stats.rejected,
    })
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
