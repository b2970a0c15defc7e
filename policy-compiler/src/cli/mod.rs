//! The `netpol` command line: arguments, one file per subcommand, exit statuses.
//!
//! Exit codes: 0 ok · 1 the run worked and found something (`check --deny-warnings` with
//! warnings) · 2 bad input or usage. Diagnostics go to stderr, results to stdout; a closed
//! pipe on stdout ends the run quietly.
//!
//! Each subcommand's file parses nothing itself: it receives its clap `Args`, calls the library
//! (a report, the compiler) and chooses the exit status. The command line may use every folder.

mod check;
mod compile;
mod connectivity;
mod diff;
mod drift;
mod explain;
mod lint;
mod policies;
mod revision;
mod schema;
mod suggest;
mod verify;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::diagnostic::source::SourceMap;
use crate::diagnostic::{self, Diagnostics, Style};
use crate::document::files::{Disk, Files};

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
    Compile(compile::Args),
    /// Check profiles and report every problem, without writing anything.
    Check(check::Args),
    /// Print the JSON Schema of the profile format (for editors: yaml-language-server).
    Schema,
    /// Find what is legal but broken, dangerous or surprising in policies and profiles.
    ///
    /// PATHs hold policies (CNP, CCNP, NetworkPolicy), profiles (compiled first) and workload
    /// manifests; with manifests or `--inventory`, the rules that need to know the workloads
    /// run too. Output as text, json or sarif (GitHub code scanning). `--explain` lists the
    /// rules, `--explain CODE` prints one's documentation. Exit 0 without errors (warnings
    /// too with `--deny-warnings`), 1 with, 2 on bad input.
    Lint(lint::Args),
    /// Judge recorded flows against policies, as Cilium would: which would be dropped, and why.
    ///
    /// Policies: CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and NetworkPolicy objects
    /// in YAML or JSON files (directories are searched recursively), and profiles (compiled);
    /// the workload manifests among them (Deployments, Services, …) describe the cluster,
    /// other kinds are skipped. Flows: netpol flow JSONL or Hubble exports (`hubble observe -o
    /// jsonpb`), auto-detected. Exit 0 if nothing would be dropped, 1 if something would (with
    /// `--expect`: a drop no entry expects, or an expectation the flows contradict; or a
    /// policy is invalid and ignored, as Cilium ignores it), 2 on bad input.
    Verify(verify::Args),
    /// Explain how Cilium decides one flow, rule by rule.
    ///
    /// REF is `ns/name` (a pod of the inventory, a profile's service, a workload of the
    /// manifests), a label set (`ns:media,app=sonarr`, add `sa:NAME` for the service account),
    /// an IP, a DNS name or an entity (`world`, `host`, `remote-node`, `kube-apiserver`, …).
    /// `--port` may name a port of the destination (`postgresql`). Exit 0 if allowed, 1 if
    /// dropped, 2 on bad input.
    Explain(explain::Args),
    /// List every connection the policies allow between workloads, and to and from the
    /// outside.
    ///
    /// PATHs hold profiles, policies (CNP, CCNP, NetworkPolicy) and workload manifests, told
    /// apart by content. For what both tools express, the txt, json, csv and md formats are
    /// netpol-analyzer's connlist formats: `ns/name[Kind] => ns/name[Kind] : TCP 8080,UDP 53`.
    /// Cilium-only peers: `host[Entity]`, `remote-node[Entity]`, `kube-apiserver[Entity]` and
    /// `toFQDNs` names as `name[DNS]`; ICMP as `ICMP` (every type) or `ICMP 8`.
    Connectivity(connectivity::Args),
    /// Draw the allowed connectivity: Mermaid or Graphviz DOT, one box per namespace.
    Graph(connectivity::GraphArgs),
    /// Report the connectivity a change adds, removes and changes, and what matters for
    /// security.
    ///
    /// Both revisions are read (profiles compiled, policies imported, manifests read) and
    /// compared over the peers either names. txt and csv are netpol-analyzer's diff formats
    /// (the security summary goes to stderr); md is a pull-request comment (first line
    /// `<!-- netpol-diff -->`). Exit 1 when `--fail-on` finds what it names, 2 on bad input.
    Diff(diff::Args),
    /// Suggest the smallest additions that let the flows the policies drop through.
    ///
    /// As statements under the profile services the pods belong to (a patch for `git apply`),
    /// and CiliumNetworkPolicies for workloads no profile declares (`--format cnp`: only
    /// those). Never broader than observed unless `--generalize`. Exit 0 when there is nothing
    /// to suggest, 1 when something is suggested, 2 on bad input.
    Suggest(suggest::Args),
    /// Report the allow rules the flows never use and the flows the policies do not declare.
    ///
    /// Hits per rule item (`cnp/media/sonarr spec.ingress[0]`) and per profile declaration
    /// (`netpol.dev/source`); flows dropped, and flows allowed only by a broad rule (world,
    /// all, cluster, 0.0.0.0/0); the window the flows cover (first and last flow, nodes).
    /// Exit 0 when nothing drifted, 1 when something did, 2 on bad input.
    Drift(drift::Args),
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
    let mut out = Output {
        stdout,
        stderr,
        error_format: cli.error_format,
        color,
        interactive,
    };
    match &cli.command {
        Command::Compile(args) => compile::run(args, fs, &mut out),
        Command::Check(args) => check::run(args, fs, &mut out),
        Command::Schema => schema::run(&mut out),
        Command::Lint(args) => lint::run(args, fs, &mut out),
        Command::Verify(args) => verify::run(args, fs, &mut out),
        Command::Explain(args) => explain::run(args, fs, &mut out),
        Command::Connectivity(args) => connectivity::run(args, fs, &mut out),
        Command::Graph(args) => connectivity::run_graph(args, fs, &mut out),
        Command::Diff(args) => diff::run(args, fs, &mut out),
        Command::Suggest(args) => suggest::run(args, fs, &mut out),
        Command::Drift(args) => drift::run(args, fs, &mut out),
    }
}

/// Where a subcommand writes: results to stdout, diagnostics and progress to stderr.
struct Output<'a> {
    stdout: &'a mut dyn Write,
    stderr: &'a mut dyn Write,
    error_format: ErrorFormat,
    color: bool,
    /// stderr is a terminal: progress may be shown.
    interactive: bool,
}

impl Output<'_> {
    /// Print diagnostics on stderr, in the format the user chose.
    fn report(&mut self, diagnostics: &Diagnostics, sources: &SourceMap) {
        let text = match self.error_format {
            ErrorFormat::Json => diagnostic::render_json(diagnostics, sources),
            ErrorFormat::Human => {
                let style = if self.color {
                    Style::Color
                } else {
                    Style::Plain
                };
                diagnostic::render_human(diagnostics, sources, style)
            }
        };
        let _ = self.stderr.write_all(text.as_bytes());
    }

    /// Write results; a reader that went away (`netpol compile | head`) is not an error.
    fn write(&mut self, text: &str) -> Status {
        match self
            .stdout
            .write_all(text.as_bytes())
            .and_then(|()| self.stdout.flush())
        {
            Ok(()) => Status::Ok,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Status::Ok,
            Err(_) => Status::BadInput,
        }
    }
}
