//! `netpol connectivity` and `netpol graph`: every connection the policies allow between the
//! workloads (and the peers outside them), as a list or a picture.

use std::path::PathBuf;

use clap::ValueEnum;

use super::revision::{self, Cluster};
use super::{Output, Status};
use crate::document::files::Files;
use crate::report::connectivity::{self, Connectivity};
use crate::report::graph;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Files or directories: profiles (compiled), policies (CiliumNetworkPolicy,
    /// CiliumClusterwideNetworkPolicy, NetworkPolicy) and workload manifests, told apart by
    /// what they hold. Render Helm charts with `helm template` first.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    cluster: Cluster,
    /// Output format: netpol-analyzer's connlist formats (txt, json, csv, md) or a picture
    /// (dot, mermaid).
    #[arg(long, value_enum, default_value_t = ListFormat::Txt)]
    format: ListFormat,
    /// Only the connections of this workload (`name` or `namespace/name`).
    #[arg(long, value_name = "WORKLOAD")]
    focus_workload: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(super) struct GraphArgs {
    /// Files or directories, as for `netpol connectivity`.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    cluster: Cluster,
    /// Picture format: Mermaid (GitHub renders it in Markdown) or Graphviz DOT. Compact by
    /// default: everything outside the cluster is one `world` node, and `host` reaching
    /// workloads on every port is left out (a comment says so).
    #[arg(long, value_enum, default_value_t = PictureFormat::Mermaid)]
    format: PictureFormat,
    /// Only the connections of this workload (`name` or `namespace/name`).
    #[arg(long, value_name = "WORKLOAD")]
    focus_workload: Option<String>,
    /// Only the connections of the workloads in these namespaces.
    #[arg(long, value_name = "NAMESPACE", num_args = 1..)]
    namespace: Vec<String>,
    /// Draw every peer: each address range and DNS name (not one `world` node), and `host`
    /// reaching workloads on every port (the kubelet's probes).
    #[arg(long)]
    full: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ListFormat {
    Txt,
    Json,
    Csv,
    Md,
    Dot,
    Mermaid,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PictureFormat {
    Mermaid,
    Dot,
}

pub(super) fn run(args: &Args, fs: &dyn Files, out: &mut Output<'_>) -> Status {
    let Some(c) = compute(
        fs,
        &args.paths,
        &args.cluster,
        args.focus_workload.as_deref(),
        out,
    ) else {
        return Status::BadInput;
    };
    let text = match args.format {
        ListFormat::Txt => connectivity::render(&c, connectivity::Format::Txt),
        ListFormat::Json => connectivity::render(&c, connectivity::Format::Json),
        ListFormat::Csv => connectivity::render(&c, connectivity::Format::Csv),
        ListFormat::Md => connectivity::render(&c, connectivity::Format::Md),
        ListFormat::Dot => graph::render(&c, graph::Format::Dot, false),
        ListFormat::Mermaid => graph::render(&c, graph::Format::Mermaid, false),
    };
    out.write(&text)
}

pub(super) fn run_graph(args: &GraphArgs, fs: &dyn Files, out: &mut Output<'_>) -> Status {
    let focus = args.focus_workload.as_deref();
    let Some(mut c) = compute(fs, &args.paths, &args.cluster, focus, out) else {
        return Status::BadInput;
    };
    if !args.namespace.is_empty() && !c.namespaces(&args.namespace) {
        let names: Vec<String> = args.namespace.iter().map(|n| format!("`{n}`")).collect();
        let _ = writeln!(
            out.stderr,
            "error: no workload in namespace {}",
            names.join(", ")
        );
        return Status::BadInput;
    }
    let format = match args.format {
        PictureFormat::Mermaid => graph::Format::Mermaid,
        PictureFormat::Dot => graph::Format::Dot,
    };
    out.write(&graph::render(&c, format, !args.full))
}

fn compute(
    fs: &dyn Files,
    paths: &[PathBuf],
    cluster: &Cluster,
    focus: Option<&str>,
    out: &mut Output<'_>,
) -> Option<Connectivity> {
    let settings = revision::settings(fs, cluster, out)?;
    let rev = revision::read(fs, paths, cluster, settings, out)?;
    let universe = rev.universe(&rev.mentions, &rev.declared);
    let mut c = connectivity::compute(&rev.policies.index, rev.policies.named_ports(), universe);
    if let Some(focus) = focus
        && !c.focus(focus)
    {
        let names: Vec<String> = c
            .universe
            .nodes
            .iter()
            .filter_map(|n| match &n.kind {
                crate::flow::universe::NodeKind::Workload { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        let hint = crate::diagnostic::spelling::closest(focus, names.iter().map(String::as_str))
            .map_or_else(
                || "give a workload's name or `namespace/name`".to_owned(),
                |s| format!("did you mean `{s}`?"),
            );
        let _ = writeln!(
            out.stderr,
            "error: no workload `{focus}` in the universe\n  help: {hint}"
        );
        return None;
    }
    Some(c)
}
