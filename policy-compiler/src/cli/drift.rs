//! `netpol drift`: allow rules the flows never use, flows the policies do not declare, and
//! the window the flows cover.

use std::path::PathBuf;

use clap::ValueEnum;

use super::suggest::{read_as_enforced, read_flows};
use super::{Output, Status, revision};
use crate::document::files::Files;
use crate::engine::index::Evaluator;
use crate::flow::Reader;
use crate::report::drift::{self, Collector};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("declared").required(true).multiple(true).args(["policies", "profiles"])))]
pub(super) struct Args {
    /// Flow records (netpol JSONL or a Hubble export): a file, or `-` for stdin.
    #[arg(long, value_name = "FILE")]
    flows: PathBuf,
    /// Files or directories of policies (CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy,
    /// NetworkPolicy), profiles and workload manifests.
    #[arg(long, num_args = 1.., value_name = "PATH")]
    policies: Vec<PathBuf>,
    /// Profiles, compiled: their rules name the declarations they come from.
    #[arg(long, num_args = 1.., value_name = "DIR")]
    profiles: Vec<PathBuf>,
    #[command(flatten)]
    cluster: revision::Cluster,
    /// Report format.
    #[arg(long, value_enum, default_value_t = DriftFormat::Text)]
    format: DriftFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DriftFormat {
    Text,
    Json,
    Markdown,
}

pub(super) fn run(args: &Args, fs: &dyn Files, out: &mut Output<'_>) -> Status {
    // What is declared: the audit phase counts as the policies it will be.
    let Some((mut input, loaded)) = read_as_enforced(
        fs,
        &args.flows,
        [&args.policies, &args.profiles],
        &args.cluster,
        out,
    ) else {
        return Status::BadInput;
    };
    let policies = &loaded.policies;
    let index = &policies.index;
    let mut collector = Collector::new(Evaluator::new(index, policies.named_ports()));
    let mut reader = Reader::new(policies.inventory.as_ref(), &policies.settings.cluster_name);
    reader.label_filter = policies.settings.identity_labels.clone();
    reader.keep_times = true;
    if let Err(status) = read_flows(&mut *input, &mut reader, &args.flows, out, &mut |flow| {
        collector.push(&flow, index);
    }) {
        return status;
    }
    let report = collector.finish(index, &policies.sources);
    let text = match args.format {
        DriftFormat::Text => drift::render_text(&report),
        DriftFormat::Json => drift::render_json(&report),
        DriftFormat::Markdown => drift::render_markdown(&report),
    };
    let status = out.write(&text);
    if status != Status::Ok {
        status
    } else if report.drifted() {
        Status::Found
    } else {
        Status::Ok
    }
}
