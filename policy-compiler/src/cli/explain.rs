//! `netpol explain`: one flow, rule by rule.

use super::{Output, Status, policies, revision};
use crate::document::files::Files;
use crate::report::explain;
use crate::report::workload::Workloads;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    inputs: policies::Inputs,
    /// The client: `ns/name` (a pod, a profile's service, a workload), `ns:NS,key=value`, an
    /// IP, a DNS name or an entity.
    #[arg(long, value_name = "REF")]
    from: String,
    /// The server, as `--from`.
    #[arg(long, value_name = "REF")]
    to: String,
    /// Port and protocol: `443/tcp`, `53/udp`, `8080` (TCP), `icmp/8`, or a port name of the
    /// server (`postgresql`, `dns/udp`).
    #[arg(long, value_name = "PORT")]
    port: String,
}

pub(super) fn run(args: &Args, fs: &dyn Files, out: &mut Output<'_>) -> Status {
    let Some(settings) = policies::settings(fs, &args.inputs, out) else {
        return Status::BadInput;
    };
    let inputs = &args.inputs;
    let Some(rev) = revision::read_with(
        fs,
        &inputs.policies,
        &inputs.cluster,
        settings,
        revision::Warnings::Count,
        out,
    ) else {
        return Status::BadInput;
    };
    let loaded = &rev.policies;
    let workloads = Workloads::new(
        loaded.inventory.as_ref(),
        &rev.declared,
        &loaded.settings.cluster_name,
    );
    let (from, to) = (
        explain::resolve(&args.from, &workloads),
        explain::resolve(&args.to, &workloads),
    );
    let port = match &to {
        Ok(to) => Some(explain::resolve_port(&args.port, to)),
        // The port is read once the destination is known (it may be one of its names).
        Err(_) => explain::parse_port(&args.port).ok().map(Ok),
    };
    let (from, to, (proto, port)) = match (from, to, port) {
        (Ok(f), Ok(t), Some(Ok(p))) => (f, t, p),
        (f, t, p) => {
            for e in [f.err(), t.err(), p.and_then(Result::err)]
                .into_iter()
                .flatten()
            {
                let _ = writeln!(out.stderr, "error: {e}");
            }
            return Status::BadInput;
        }
    };
    let (text, allowed) = explain::explain(
        &loaded.index.entries,
        &loaded.index,
        &loaded.sources,
        &from,
        &to,
        proto,
        port,
        loaded.named_ports(),
    );
    let text = format!("judged with: {}\n{text}", loaded.settings.describe());
    let status = out.write(&text);
    if status != Status::Ok {
        status
    } else if allowed {
        Status::Ok
    } else {
        Status::Found
    }
}
