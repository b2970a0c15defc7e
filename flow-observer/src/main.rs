//! `netpol-observer`: the node agent.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "netpol-observer",
    version,
    about = "Record every pod's traffic with eBPF and serve it as netpol flow records"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Attach to a cgroup v2 hierarchy and record flows until SIGTERM/SIGINT.
    Run {
        /// The cgroup to attach to [default: the cgroup v2 mount].
        #[arg(long, value_name = "PATH")]
        cgroup: Option<PathBuf>,
        /// Where to serve /flows, /metrics and /healthz.
        #[arg(long, default_value = "0.0.0.0:9965")]
        listen: SocketAddr,
        /// `kubectl get pods,services,namespaces,nodes -A -o json`, to name pods and nodes.
        #[arg(long, value_name = "FILE")]
        inventory: Option<PathBuf>,
        /// This node's name (tells `host` from `remote-node`) [env: NODE_NAME].
        #[arg(long)]
        node: Option<String>,
        /// Kernel flow map size and connection table bound.
        #[arg(long, default_value_t = 131_072)]
        max_flows: u32,
        /// Bound of the record table.
        #[arg(long, default_value_t = 100_000)]
        max_records: usize,
        /// Size of each kernel ring buffer (new flows, DNS answers), in bytes; a power of two.
        #[arg(long, default_value_t = 1 << 23)]
        ring_bytes: u32,
        /// One record per connection instead of per (workload, destination, port).
        #[arg(long)]
        per_connection: bool,
        /// How often the kernel's counters are read, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Live audit: judge every new flow against the policies in this directory (CNP,
        /// CCNP, NetworkPolicy), count verdicts, log would-be drops.
        #[arg(long, value_name = "DIR")]
        policies: Option<PathBuf>,
        /// Print one JSON line (a netpol flow record) per new flow on stdout, for Loki.
        #[arg(long)]
        log_flows: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Run {
        cgroup,
        listen,
        inventory,
        node,
        max_flows,
        max_records,
        ring_bytes,
        per_connection,
        interval_ms,
        policies,
        log_flows,
    } = cli.command;
    let opts = netpol_observer::agent::Options {
        cgroup,
        listen,
        inventory,
        node: node.or_else(|| std::env::var("NODE_NAME").ok()),
        max_flows,
        max_records,
        ring_bytes,
        per_connection,
        interval: Duration::from_millis(interval_ms.max(10)),
        policies,
        log_flows,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(netpol_observer::agent::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
