//! `netpol suggest`: what the flows the policies drop need, as profile statements (a patch)
//! or CiliumNetworkPolicies.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use clap::ValueEnum;

use super::policies::{cluster_from_flows, open_flows};
use super::{Output, Status, revision};
use crate::document::files::Files;
use crate::engine::index::Evaluator;
use crate::flow::{Chunk, Decoder, Flow, Reader};
use crate::report::suggest::{self, Collector, Format, Options, Profiles};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Flow records (netpol JSONL or a Hubble export): a file, or `-` for stdin.
    #[arg(long, value_name = "FILE")]
    flows: PathBuf,
    /// The policies in force: files or directories of CiliumNetworkPolicy,
    /// CiliumClusterwideNetworkPolicy and NetworkPolicy objects, profiles (compiled) and
    /// workload manifests. None at all: every flow between pods is suggested (bootstrap).
    #[arg(long, num_args = 1.., value_name = "PATH")]
    policies: Vec<PathBuf>,
    /// Profiles (compiled and judged like `--policies`): the statements go under their
    /// services.
    #[arg(long, num_args = 1.., value_name = "DIR")]
    profiles: Vec<PathBuf>,
    #[command(flatten)]
    cluster: revision::Cluster,
    /// `profile`: a patch of the profiles (`git apply`), and CiliumNetworkPolicies for
    /// workloads no profile declares; `cnp`: CiliumNetworkPolicies only.
    #[arg(long, value_enum, default_value_t = SuggestFormat::Profile)]
    format: SuggestFormat,
    /// Broader than observed: addresses by their /24 (IPv6 /64), a port by its name (every
    /// port of the name), pods by their workload label (`app.kubernetes.io/name`, `app`, …).
    #[arg(long)]
    generalize: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SuggestFormat {
    Profile,
    Cnp,
}

pub(super) fn run(args: &Args, fs: &dyn Files, out: &mut Output<'_>) -> Status {
    // What to add before enforcing: the audit phase is judged as it will be enforced.
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
    let bootstrap = policies.accepted == 0 && policies.rejected == 0;
    let evaluator = Evaluator::new(&policies.index, policies.named_ports());
    let profiles = loaded
        .profiles
        .as_ref()
        .map(|(model, sources)| Profiles::new(model, sources))
        .unwrap_or_default();
    let format = match args.format {
        SuggestFormat::Profile => Format::Profile,
        SuggestFormat::Cnp => Format::Cnp,
    };
    let mut collector = Collector::new(evaluator, bootstrap, args.generalize);
    collector.localhost_allowed = !policies.settings.localhost_by_policy;
    if format == Format::Profile {
        // Pods no service declares in a profiled namespace become services: all their flows
        // count, the ones that pass only because nothing enforces them too.
        collector.declarable = profiles
            .namespaces
            .iter()
            .map(|p| p.namespace.clone())
            .collect();
    }
    let mut reader = Reader::new(policies.inventory.as_ref(), &policies.settings.cluster_name);
    reader.label_filter = policies.settings.identity_labels.clone();
    reader.keep_times = false;
    if let Err(status) = read_flows(&mut *input, &mut reader, &args.flows, out, &mut |flow| {
        collector.push(&flow);
    }) {
        return status;
    }
    let mut needs = collector.finish();
    // What a new service's selector must tell its pods apart from: the inventory's pods too.
    if let Some(inventory) = &policies.inventory {
        needs.pods.extend(
            inventory
                .pods
                .iter()
                .filter(|p| !p.host_network)
                .filter(|p| {
                    profiles
                        .namespaces
                        .iter()
                        .any(|n| n.namespace == p.namespace)
                })
                .map(|p| (p.namespace.clone(), suggest::pod_labels(&p.identity))),
        );
    }
    let options = Options {
        format,
        generalize: args.generalize,
    };
    let plan = suggest::plan(&needs, &profiles, &options);
    for u in &plan.unsuggested {
        let _ = writeln!(
            out.stderr,
            "warning: nothing suggested for {} -> {} {} ({}): {}",
            u.src,
            u.dst,
            u.port,
            if u.flows == 1 {
                "1 flow".to_owned()
            } else {
                format!("{} flows", u.flows)
            },
            u.why
        );
    }
    let _ = writeln!(out.stderr, "{}", suggest::headline(&needs, &plan));
    if plan.is_empty() {
        return Status::Ok;
    }
    let status = out.write(&suggest::render(&needs, &plan, &profiles, format));
    if status == Status::Ok {
        Status::Found
    } else {
        status
    }
}

/// Open the flows: a file, or stdin for `-`; `None` after reporting.
/// The flows (opened, the cluster's name read from them unless a Cilium config says it) and
/// the policies and profiles, with the audit phase judged as it will be enforced: what
/// `suggest` and `drift` both start from. `None` after reporting bad input.
pub(super) fn read_as_enforced<'f>(
    fs: &'f dyn Files,
    flows: &Path,
    paths: [&[PathBuf]; 2],
    cluster: &revision::Cluster,
    out: &mut Output<'_>,
) -> Option<(Box<dyn BufRead + Send + 'f>, revision::Revision)> {
    let mut settings = revision::settings(fs, cluster, out)?;
    settings.audit_as_enforced = true;
    let mut input = open_flows(fs, flows, out)?;
    if cluster.cilium_config.is_none() {
        cluster_from_flows(&mut *input, &mut settings, out);
    }
    let paths: Vec<PathBuf> = paths.into_iter().flatten().cloned().collect();
    let loaded = revision::read_with(
        fs,
        &paths,
        cluster,
        settings,
        revision::Warnings::Count,
        out,
    )?;
    Some((input, loaded))
}

/// How many decoded chunks (1 MB of lines each) may wait for the judging thread.
const CHUNKS_AHEAD: usize = 16;

/// Read every flow of `input` and hand it to `each`, with progress on a terminal; every bad
/// record (the first 50) is reported with its line and column, and then nothing counts. As
/// in `verify`, one thread decodes the JSON in chunks of lines while this one identifies the
/// flows and hands them on.
pub(super) fn read_flows(
    input: &mut (dyn BufRead + Send),
    reader: &mut Reader<'_>,
    path: &Path,
    out: &mut Output<'_>,
    each: &mut dyn FnMut(Flow),
) -> Result<(), Status> {
    let interactive = out.interactive;
    let started = std::time::Instant::now();
    let stderr = &mut *out.stderr;
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
    let (sender, chunks) = std::sync::mpsc::sync_channel(CHUNKS_AHEAD);
    let (done, spares) = std::sync::mpsc::sync_channel::<Chunk>(CHUNKS_AHEAD + 1);
    let read = std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut decoder = Decoder::new(None);
            while let Some(next) = decoder.next(input, spares.try_recv().ok()).transpose() {
                let failed = next.is_err();
                if sender.send(next).is_err() || failed {
                    break;
                }
            }
        });
        for chunk in chunks {
            match chunk {
                Ok(chunk) => {
                    reader.take(&chunk, &mut progress, each);
                    let _ = done.try_send(chunk);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    if interactive {
        let _ = write!(out.stderr, "\r{:60}\r", "");
    }
    if let Err(e) = read {
        let _ = writeln!(out.stderr, "error: cannot read `{}`: {e}", path.display());
        return Err(Status::BadInput);
    }
    if reader.error_count == 0 {
        return Ok(());
    }
    for e in &reader.set.errors {
        let _ = writeln!(
            out.stderr,
            "error: {}:{}:{}: {}\n  help: {}",
            path.display(),
            e.line,
            e.column,
            e.message,
            e.help
        );
    }
    if reader.error_count > reader.set.errors.len() {
        let _ = writeln!(
            out.stderr,
            "... and {} more errors",
            reader.error_count - reader.set.errors.len()
        );
    }
    let _ = writeln!(
        out.stderr,
        "error: {} bad flow records; nothing was used",
        reader.error_count
    );
    Err(Status::BadInput)
}
