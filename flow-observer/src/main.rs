//! `netpol-observer`: the node agent (`run`) and the laptop side (`collect`, `pcap`).

use std::io::Write as _;
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

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The cgroup to attach to [default: the cgroup v2 mount].
    #[arg(long, value_name = "PATH")]
    cgroup: Option<PathBuf>,
    /// Where to serve /flows, /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:9965")]
    listen: SocketAddr,
    /// `kubectl get pods,services,endpointslices,namespaces,nodes -A -o json`, to name pods and nodes.
    #[arg(long, value_name = "FILE")]
    inventory: Option<PathBuf>,
    /// This node's name (tells `host` from `remote-node`) [env: NODE_NAME].
    #[arg(long)]
    node: Option<String>,
    /// Kernel flow map size. The connection table holds an eighth of it (a connection is up to
    /// four kernel keys), so connections are let go, and their keys deleted, before the
    /// kernel's LRU has to forget entries it has not reported.
    #[arg(long, default_value_t = 131_072)]
    max_flows: u32,
    /// Bound of the record table [default: `--max-flows`]. Records outlive their connections,
    /// so in `--per-connection` mode they fill up first: a record dropped is counted in
    /// `netpol_observer_evicted_records_total` (alert `NetpolObserverEvictingRecords`).
    #[arg(long)]
    max_records: Option<usize>,
    /// Size of the kernel's new-flow ring buffer, in bytes, a power of two (the DNS one is at
    /// most 1 MiB).
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
    /// Live audit against the CiliumNetworkPolicies, CiliumClusterwideNetworkPolicies and
    /// NetworkPolicies of the cluster (watched), when `--policies` is not given.
    #[arg(long)]
    audit_cluster: bool,
    /// The Cilium cluster name (`cluster-name` in the `cilium-config` ConfigMap, Helm
    /// `cluster.name`): the pods' identities carry it, and policies' peer selectors require it.
    #[arg(long, value_name = "NAME", default_value = "default")]
    cluster_name: String,
    /// Forget connections idle this many seconds (their records stay; the kernel's LRU map
    /// forgets on its own).
    #[arg(long, default_value_t = 300)]
    idle_timeout_s: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fetch every agent's flows through the API server and print them merged, as JSON lines
    /// (`netpol-observer collect | netpol verify --policies out --flows -`).
    ///
    /// Uses the kubeconfig (or the in-cluster config). Exit 2, printing nothing, if an agent
    /// cannot be read: never a partial view passed off as complete (`--allow-partial`: print
    /// what was read, exit 1). Agents that started within `--window`, or well after the oldest
    /// flow the others hold, are warned about (their node's earlier flows are missing); with
    /// `--strict` they make the collection incomplete too.
    Collect {
        /// The agents' namespace.
        #[arg(long, default_value = "netpol-observer")]
        namespace: String,
        /// The agents' label selector.
        #[arg(long, default_value = "app.kubernetes.io/name=netpol-observer")]
        selector: String,
        /// The agents' HTTP port.
        #[arg(long, default_value_t = 9965)]
        port: u16,
        /// The time the flows should cover (`30m`, `24h`, `7d`; `0s`: none): warn about
        /// agents that started within it.
        #[arg(long, default_value = "1h", value_parser = netpol_observer::collect::parse_duration)]
        window: Duration,
        /// When agents cannot be read (or, with `--strict`, started late), print what was read
        /// and exit 1 instead of printing nothing and exiting 2.
        #[arg(long)]
        allow_partial: bool,
        /// Agents that started within the window (or do not say when) make the collection
        /// incomplete, as agents that cannot be read do.
        #[arg(long)]
        strict: bool,
    },
    /// Attach to a cgroup v2 hierarchy and record flows until SIGTERM/SIGINT.
    Run(RunArgs),
    /// Read capture files (pcap, pcapng) and print their flows as netpol flow JSON lines
    /// (`netpol-observer pcap x.pcap | netpol verify --policies out --flows -`).
    ///
    /// All files feed one flow table. Exit 0; 1 when a file is cut short or damaged (the flows
    /// of every complete packet are printed, with a warning saying where it broke); 2 when a
    /// file is not a capture (nothing printed).
    Pcap(PcapArgs),
}

#[derive(Debug, clap::Args)]
struct PcapArgs {
    /// Capture files, read in order into one flow table.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// `kubectl get pods,services,endpointslices,namespaces,nodes -A -o json`: name pods and
    /// nodes, and aggregate by workload (without it, by address).
    #[arg(long, value_name = "FILE")]
    inventory: Option<PathBuf>,
    /// One record per connection (ports, packets and bytes each way, TCP state) instead of
    /// per (source, destination, port, protocol).
    #[arg(long)]
    per_connection: bool,
    /// Write the records here instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// A UDP exchange silent this long is over: the next packet on its tuple is another.
    #[arg(long, default_value_t = 60)]
    idle_timeout_s: u64,
    /// The Cilium cluster name the inventory's pods carry.
    #[arg(long, value_name = "NAME", default_value = "default")]
    cluster_name: String,
}

/// `collect` is one thread; the agent has two workers (the kernel does the counting), so that
/// a long `/flows` answer or refresh cannot hold up `/healthz` and `/readyz`.
fn runtime(workers: usize) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = if workers > 1 {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

/// `collect`'s flags besides where the agents are.
#[derive(Debug, Clone, Copy)]
struct CollectRules {
    window: Duration,
    allow_partial: bool,
    strict: bool,
}

fn collect(agents: netpol_observer::collect::Agents, rules: CollectRules) -> ExitCode {
    use netpol_observer::collect::{Outcome, report};
    let runtime = match runtime(1) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = runtime.block_on(async {
        let client = kube::Client::try_default().await.map_err(|e| {
            (
                format!("cannot reach the Kubernetes API: {e}"),
                "`collect` uses the kubeconfig (KUBECONFIG, ~/.kube/config) or the in-cluster config",
            )
        })?;
        netpol_observer::collect::collect(&client, &agents)
            .await
            .map_err(|e| {
                (
                    format!("{e:#}"),
                    "`--namespace` and `--selector` say where the agents are",
                )
            })
    });
    let read = match result {
        Ok(read) => read,
        Err((e, help)) => {
            eprintln!("error: {e}");
            eprintln!("  help: {help}");
            return ExitCode::from(2);
        }
    };
    let report = report(read, std::time::SystemTime::now(), rules.window);
    let outcome = report.outcome(rules.allow_partial, rules.strict);
    if outcome != Outcome::Refused {
        let mut out = std::io::stdout().lock();
        for r in &report.records {
            let line = serde_json::to_string(r).unwrap_or_default();
            if writeln!(out, "{line}").is_err() {
                break;
            }
        }
    }
    for line in report.stderr(outcome, rules.strict) {
        eprintln!("{line}");
    }
    ExitCode::from(outcome.exit_code())
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Collect {
            namespace,
            selector,
            port,
            window,
            allow_partial,
            strict,
        } => collect(
            netpol_observer::collect::Agents {
                namespace,
                selector,
                port,
            },
            CollectRules {
                window,
                allow_partial,
                strict,
            },
        ),
        Command::Run(args) => run(args),
        Command::Pcap(args) => pcap(args),
    }
}

fn pcap(a: PcapArgs) -> ExitCode {
    let inventory = match &a.inventory {
        None => None,
        Some(path) => {
            let parsed = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read `{}`: {e}", path.display()))
                .and_then(|text| {
                    netpol_compiler::flow::inventory::Inventory::parse(&text, &a.cluster_name)
                        .map_err(|e| {
                            format!("{}:{}:{}: {}", path.display(), e.line, e.column, e.message)
                        })
                });
            match parsed {
                Ok(inv) => Some(inv),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let opts = netpol_observer::capture::Options {
        files: a.files,
        inventory,
        settings: netpol_observer::capture::Settings {
            per_connection: a.per_connection,
            idle_ns: a.idle_timeout_s.saturating_mul(1_000_000_000),
            ..netpol_observer::capture::Settings::default()
        },
        progress: netpol_observer::capture::stderr_is_terminal(),
    };
    let mut err = std::io::stderr().lock();
    let code = match &a.output {
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => {
                let mut out = std::io::BufWriter::new(f);
                netpol_observer::capture::run(opts, &mut out, &mut err)
            }
            Err(e) => {
                eprintln!("error: cannot write `{}`: {e}", path.display());
                2
            }
        },
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            netpol_observer::capture::run(opts, &mut out, &mut err)
        }
    };
    ExitCode::from(code)
}

fn run(a: RunArgs) -> ExitCode {
    let opts = netpol_observer::agent::Options {
        cgroup: a.cgroup,
        listen: a.listen,
        inventory: a.inventory,
        node: a.node.or_else(|| std::env::var("NODE_NAME").ok()),
        max_flows: a.max_flows,
        max_records: a.max_records.unwrap_or(a.max_flows as usize),
        ring_bytes: a.ring_bytes,
        per_connection: a.per_connection,
        interval: Duration::from_millis(a.interval_ms.max(10)),
        policies: a.policies,
        log_flows: a.log_flows,
        audit_cluster: a.audit_cluster,
        cluster_name: a.cluster_name,
        idle_timeout: Duration::from_secs(a.idle_timeout_s),
    };
    let runtime = match runtime(2) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(netpol_observer::agent::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
