//! `cargo xtask`: the project's own automation, in Rust so it runs wherever cargo does.
//!
//! ```text
//! cargo xtask setup       install toolchains, LLVM and bpf-linker (idempotent, fast when done)
//! cargo xtask bench-observer  measure the observer's costs (root)
//! cargo xtask bench-verify    time `netpol verify` against `jq` parsing the same Hubble export
//! cargo xtask bench-suggest   time `netpol suggest` on 1,000,000 generated Hubble flows
//! cargo xtask bench-connectivity  time `netpol connectivity` and `netpol diff`: 1,000 workloads
//! cargo xtask bench-lint    time `netpol lint` on the same 1,000 workloads and policies
//! cargo xtask bench-pcap    time `netpol-observer pcap` against tshark on a generated 1 GiB capture
//! cargo xtask soak [SECONDS]  the observer under churn: its totals against the veth's (root)
//! cargo xtask ci          setup → fmt → clippy → test: what `.ci/run` and the README call
//! cargo xtask crd-check   validate Cilium policies against the CRDs' openAPIV3Schema (dev tool)
//! cargo xtask corpus      run the policy engine over the shared corpus, compare with the CRDs
//! cargo xtask connlist    `netpol connectivity` against netpol-analyzer's golden connlists
//! cargo xtask lint-corpus `netpol lint` on every file of the shared corpus: no panic, a table
//! cargo xtask pcap-check  `netpol-observer pcap` against tshark's conversations and DNS answers
//! ```
//!
//! One module per task; each exposes `run`. The kernel programs are built by the observer's own
//! build script (`flow-observer/build.rs`, through aya-build), not by a task here.

mod bench;
mod bench_connectivity;
mod bench_pcap;
mod bench_suggest;
mod bench_verify;
mod ci;
mod connlist;
mod corpus;
mod crd;
mod lint_corpus;
mod pcap_check;
mod pcap_gen;
mod process;
mod setup;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "netpol development tasks",
    version
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install what building and testing netpol needs (rustup components, LLVM 22, bpf-linker, bpffs)
    ///
    /// Idempotent: every step checks first, so a second run takes a second or two.
    Setup,
    /// Measure the observer (root): veth throughput with and without its programs, their cost
    /// per packet, new flows per second, RSS with 100,000 connections
    BenchObserver,
    /// Time `netpol verify` on a generated Hubble export (FLOWS lines, default 200,000) against
    /// `jq` merely parsing it, and netpol's peak RSS
    BenchVerify {
        #[arg(default_value_t = 200_000)]
        flows: u32,
    },
    /// Time `netpol suggest` on a generated Hubble export (FLOWS lines, default 1,000,000) and
    /// the 1,010 policies of its cluster, and its peak RSS
    BenchSuggest {
        #[arg(default_value_t = 1_000_000)]
        flows: u32,
    },
    /// Time `netpol connectivity` and `netpol diff` on a generated repository of 1,000
    /// Deployments in 40 namespaces and 1,005 policies (the head revision changes 20)
    BenchConnectivity,
    /// Time `netpol lint` on the base revision of bench-connectivity's repository (1,000
    /// Deployments, 1,005 policies)
    BenchLint,
    /// Time `netpol-observer pcap` (decode and aggregate, on one core) against tshark's TCP
    /// and UDP conversation statistics on a generated capture of mixed TCP, UDP and DNS
    /// (default 1 GiB), and check both find the same conversations
    BenchPcap(bench_pcap::Args),
    /// The observer under churn for SECONDS (default 600, root): short and long TCP
    /// connections and UDP past many idle timeouts and table evictions; its totals against
    /// the veth's own counters (exit 1 if they differ)
    Soak {
        #[arg(default_value_t = 600)]
        seconds: u32,
    },
    /// (for bench-observer) send UDP to COUNT distinct destinations at RATE per second (0: as
    /// fast as possible)
    #[command(hide = true)]
    Flood { count: u32, rate: u32 },
    /// Run every check CI runs: setup, rustfmt, clippy, tests (fails fast)
    Ci,
    /// Validate CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy YAML against the CRD schemas
    CrdCheck(crd::Args),
    /// Import every policy of the shared corpus (comparing with the CRD schema) and judge every
    /// Hubble flow in it (dev check; needs ../shared/corpus)
    Corpus(corpus::Args),
    /// Compare `netpol connectivity` with netpol-analyzer's connlist outputs in the shared
    /// corpus; every difference must be explained (host network, Ingress analysis, ICMP)
    Connlist(connlist::Args),
    /// Run `netpol lint` on every YAML and JSON file of the shared corpus, one file at a time:
    /// no panic, and a table of the findings per code and per directory (dev check; needs
    /// ../shared/corpus)
    LintCorpus(lint_corpus::Args),
    /// Compare `netpol-observer pcap` with tshark's TCP/UDP conversations and the corpus's DNS
    /// answers on every capture of the shared corpus; every difference must be explained
    /// (needs tshark and `cargo build -p netpol-observer`)
    PcapCheck(pcap_check::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup => setup::run().map(|()| true),
        Task::BenchObserver => bench::run().map(|()| true),
        Task::BenchVerify { flows } => bench_verify::run(flows).map(|()| true),
        Task::BenchSuggest { flows } => bench_suggest::run(flows).map(|()| true),
        Task::BenchConnectivity => bench_connectivity::run().map(|()| true),
        Task::BenchLint => bench_connectivity::lint().map(|()| true),
        Task::BenchPcap(args) => bench_pcap::run(&args),
        Task::Soak { seconds } => bench::soak(seconds),
        Task::Flood { count, rate } => bench::flood(count, rate).map(|()| true),
        Task::Ci => ci::run().map(|()| true),
        Task::CrdCheck(args) => crd::run(&args),
        Task::Corpus(args) => corpus::run(&args),
        Task::Connlist(args) => connlist::run(&args),
        Task::LintCorpus(args) => lint_corpus::run(&args),
        Task::PcapCheck(args) => pcap_check::run(&args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        // The task has already said what failed.
        Ok(false) => ExitCode::FAILURE,
        // `cargo xtask crd-check … | head` is not an error (ripgrep's rule).
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The workspace root: the parent of this crate's manifest directory.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}
