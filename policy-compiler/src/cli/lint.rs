//! `netpol lint`: what is legal but broken, dangerous or surprising in policies and profiles.

use std::path::PathBuf;

use clap::ValueEnum;

use super::{Output, Status, revision};
use crate::diagnostic::{Diagnostic, Style};
use crate::document::files::Files;
use crate::lint::{self, Config, Context, Workload, output};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Files or directories of policies (CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy,
    /// NetworkPolicy), profiles (compiled first) and workload manifests.
    #[arg(required_unless_present = "explain", value_name = "PATH")]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    cluster: revision::Cluster,
    /// Output format: text (like `netpol check`), json, or sarif (GitHub code scanning).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Print the documentation of a rule (a code such as `fqdn-without-dns-proxy` or a number
    /// such as `NP201`); without a code, list every rule.
    #[arg(long, value_name = "CODE", num_args = 0..=1, default_missing_value = "")]
    explain: Option<String>,
    /// Do not run this rule (repeatable).
    #[arg(long, value_name = "CODE")]
    allow: Vec<String>,
    /// Report this rule's findings as errors (repeatable).
    #[arg(long, value_name = "CODE")]
    deny: Vec<String>,
    /// Exit with 1 when there are warnings.
    #[arg(long)]
    deny_warnings: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
    Sarif,
}

pub(super) fn run(args: &Args, fs: &dyn Files, out: &mut Output<'_>) -> Status {
    if let Some(code) = &args.explain {
        return explain(code, out);
    }
    let Some(config) = config(args, out) else {
        return Status::BadInput;
    };
    let Some(settings) = revision::settings(fs, &args.cluster, out) else {
        return Status::BadInput;
    };
    let Some(rev) = revision::read_with(
        fs,
        &args.paths,
        &args.cluster,
        settings,
        revision::Warnings::Collect,
        out,
    ) else {
        return Status::BadInput;
    };
    let policies = &rev.policies;
    let mut sources = policies.sources.clone();
    let mut findings: Vec<Diagnostic> = policies.diagnostics.iter().cloned().collect();
    if let Some((diagnostics, files)) = &rev.profile_diagnostics {
        let offset = sources.append(files.clone());
        findings.extend(diagnostics.iter().map(|d| d.clone().moved(offset)));
    }
    // What selectors select is judged only against a description of the cluster.
    let workloads = policies
        .inventory
        .as_ref()
        .map(|inv| Workload::all(inv, &rev.declared));
    let inventory = policies.inventory.as_ref();
    let cx = Context::new(
        &sources,
        &policies.set,
        &policies.index,
        &policies.settings,
        inventory,
        workloads.as_deref(),
    );
    findings.extend(lint::run(&cx, &config));
    lint::sort(&sources, &mut findings);
    findings.dedup();
    let text = match args.format {
        Format::Text => {
            let style = if out.color {
                Style::Color
            } else {
                Style::Plain
            };
            output::text(&findings, &sources, style)
        }
        Format::Json => output::json(&findings, &sources),
        Format::Sarif => {
            let base = std::env::current_dir().ok();
            lint::sarif::render(&findings, &sources, base.as_deref())
        }
    };
    if out.write(&text) != Status::Ok {
        return Status::BadInput;
    }
    let counts = output::Counts::of(&findings);
    if counts.errors > 0 || (args.deny_warnings && counts.warnings > 0) {
        Status::Found
    } else {
        Status::Ok
    }
}

/// `--allow` and `--deny` as codes; `None` after reporting an unknown one.
fn config(args: &Args, out: &mut Output<'_>) -> Option<Config> {
    let mut config = Config::default();
    let mut ok = true;
    for (list, codes) in [
        (&args.allow, &mut config.allow),
        (&args.deny, &mut config.deny),
    ] {
        for code in list {
            match lint::find(code) {
                Some(rule) => {
                    codes.insert(rule.meta().code);
                }
                None => {
                    ok = false;
                    let _ = writeln!(out.stderr, "error: unknown lint rule `{code}`");
                    let known: Vec<&str> = lint::rules().iter().map(|r| r.meta().code).collect();
                    match crate::diagnostic::spelling::closest(code, known.iter().copied()) {
                        Some(close) => {
                            let _ = writeln!(out.stderr, "  help: did you mean `{close}`?");
                        }
                        None => {
                            let _ = writeln!(
                                out.stderr,
                                "  help: `netpol lint --explain` lists the rules"
                            );
                        }
                    }
                }
            }
        }
    }
    ok.then_some(config)
}

/// `--explain`: every rule on one line each, or one rule's documentation.
fn explain(code: &str, out: &mut Output<'_>) -> Status {
    if code.is_empty() {
        let mut text = String::new();
        for rule in lint::rules() {
            let m = rule.meta();
            let level = match m.level {
                crate::diagnostic::Severity::Error => "error",
                crate::diagnostic::Severity::Warning => "warning",
                crate::diagnostic::Severity::Note => "note",
            };
            text.push_str(&format!(
                "{}  {:<28} {:<8} {}\n",
                m.id,
                m.code,
                level,
                m.summary()
            ));
        }
        return out.write(&text);
    }
    match lint::find(code) {
        Some(rule) => {
            let m = rule.meta();
            out.write(&format!("# {} ({})\n\n{}", m.code, m.id, m.documentation()))
        }
        None => {
            let _ = writeln!(
                out.stderr,
                "error: unknown lint rule `{code}`\n  help: `netpol lint --explain` lists the rules"
            );
            Status::BadInput
        }
    }
}
