//! `netpol explain`: one flow, rule by rule.

use super::{Output, Status, policies};
use crate::document::files::Files;
use crate::report::explain;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    inputs: policies::Inputs,
    /// The client.
    #[arg(long, value_name = "REF")]
    from: String,
    /// The server.
    #[arg(long, value_name = "REF")]
    to: String,
    /// Port and protocol: `443/tcp`, `53/udp`, `8080` (TCP), `icmp/8`.
    #[arg(long, value_name = "PORT")]
    port: String,
}

pub(super) fn run(args: &Args, fs: &dyn Files, out: &mut Output<'_>) -> Status {
    let Some(settings) = policies::settings(fs, &args.inputs, out) else {
        return Status::BadInput;
    };
    let Some(loaded) = policies::load(fs, &args.inputs, settings, out) else {
        return Status::BadInput;
    };
    let cluster = loaded.settings.cluster_name.as_str();
    let inventory = loaded.inventory.as_ref();
    let resolved = (
        explain::resolve(&args.from, inventory, cluster),
        explain::resolve(&args.to, inventory, cluster),
        explain::parse_port(&args.port),
    );
    let (from, to, (proto, port)) = match resolved {
        (Ok(f), Ok(t), Ok(p)) => (f, t, p),
        (f, t, p) => {
            for e in [f.err(), t.err(), p.err()].into_iter().flatten() {
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
