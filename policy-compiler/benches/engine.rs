//! The policy engine on a generated homelab-shaped cluster (`examples/hubble_gen.rs`): 20
//! namespaces × 50 workloads, each with a CiliumNetworkPolicy (endpoint selectors on `app`,
//! ingress from endpoints of this and other namespaces, egress to endpoints, DNS to kube-dns,
//! `toFQDNs`, `toCIDRSet` with `except`, `toEntities`, some `ingressDeny`/`egressDeny`), plus
//! 10 CiliumClusterwideNetworkPolicies: 1,010 objects, 1.3 MB of YAML.
//!
//! - `index_*`: import, entries and the compiled index;
//! - `evaluate_*`: 100,000 pre-built queries through one `index::Evaluator` (items/s);
//! - `verify_*`: 100,000 Hubble jsonpb lines read and judged as `netpol verify` does (MB/s),
//!   against reading alone and bare JSON tokenizing.
//!
//! Run: `cargo bench -p netpol-compiler --bench engine`

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use divan::counter::{BytesCount, ItemsCount};
use netpol_compiler::document::files::Memory;
use netpol_compiler::engine::entry;
use netpol_compiler::engine::eval::{self, Query};
use netpol_compiler::engine::identity::{Labels, Peer, Reserved};
use netpol_compiler::engine::index::{Evaluator, Index};
use netpol_compiler::engine::policy::{self, Imported};
use netpol_compiler::engine::settings::{DEFAULT_CLUSTER, Settings};
use netpol_compiler::flow::Reader;
use netpol_compiler::objects::Proto;
use netpol_compiler::report::verify;

#[allow(dead_code, reason = "the example's `main` and file writers")]
#[path = "../examples/hubble_gen.rs"]
mod generate;

use generate::{Cluster, End, Lcg};

fn main() {
    divan::main();
}

const QUERIES: usize = 100_000;
const HUBBLE_LINES: usize = 100_000;

fn policies(cluster: &Cluster) -> Memory {
    Memory::new(
        generate::policy_files(cluster)
            .into_iter()
            .map(|(name, text)| (format!("p/{name}"), text)),
    )
}

fn import(fs: &Memory) -> Imported {
    let imported = policy::import(fs, &[PathBuf::from("p")]);
    assert!(!imported.diagnostics.has_errors());
    assert_eq!(imported.set.policies.len(), 1010);
    imported
}

fn index(cluster: &Cluster) -> Index {
    let imported = import(&policies(cluster));
    Index::new(entry::build(&imported.set, None, &Settings::default()))
}

#[divan::bench(sample_count = 20)]
fn index_build_1000_policies(bencher: divan::Bencher) {
    let fs = policies(&generate::cluster());
    bencher.bench(|| {
        let imported = policy::import(&fs, &[PathBuf::from("p")]);
        Index::new(entry::build(&imported.set, None, &Settings::default()))
    });
}

#[divan::bench(sample_count = 20)]
fn index_build_only_entries_and_index(bencher: divan::Bencher) {
    let imported = import(&policies(&generate::cluster()));
    bencher.bench(|| Index::new(entry::build(&imported.set, None, &Settings::default())));
}

#[divan::bench(sample_count = 20)]
fn index_import_only(bencher: divan::Bencher) {
    let fs = policies(&generate::cluster());
    bencher.bench(|| policy::import(&fs, &[PathBuf::from("p")]));
}

/// The generated flows as queries, with one `Arc<Labels>` per workload as the flow reader
/// interns them.
fn queries(cluster: &Cluster, count: usize) -> Vec<Query> {
    let pods: Vec<Arc<Labels>> = cluster
        .workloads
        .iter()
        .map(|w| Arc::new(generate::pod_identity(w)))
        .collect();
    let kube_dns = Arc::new(generate::kube_dns_identity());
    let world = Arc::new(Reserved::World.labels());
    let host = Arc::new(Reserved::Host.labels());
    let peer = |end: End| {
        let labels = match end {
            End::Pod { workload, .. } => pods.get(workload).cloned().unwrap_or_default(),
            End::KubeDns => kube_dns.clone(),
            End::World { .. } => world.clone(),
            End::Host { .. } => host.clone(),
        };
        let names = match end {
            End::World { name: Some(n), .. } => vec![format!("api{n}.example.com")],
            _ => Vec::new(),
        };
        Peer {
            labels,
            ip: Some(IpAddr::V4(end.ip())),
            names,
            named_ports: Arc::default(),
        }
    };
    let mut rng = Lcg(99);
    (0..count)
        .map(|_| {
            let spec = generate::flow(cluster, &mut rng);
            Query {
                src: peer(spec.src),
                dst: peer(spec.dst),
                proto: Some(if spec.udp { Proto::Udp } else { Proto::Tcp }),
                port: spec.dst_port,
            }
        })
        .collect()
}

fn judge_all(ev: &mut Evaluator<'_>, queries: &[Query]) -> usize {
    queries
        .iter()
        .filter(|q| ev.decide(divan::black_box(q)).allowed())
        .count()
}

/// The steady state: the per-identity and per-pair caches are filled by a first pass.
#[divan::bench(sample_count = 20)]
fn evaluate_flows_warm(bencher: divan::Bencher) {
    let cluster = generate::cluster();
    let index = index(&cluster);
    let queries = queries(&cluster, QUERIES);
    let mut ev = Evaluator::new(&index, &eval::NoPorts);
    let allowed = judge_all(&mut ev, &queries);
    // A realistic mix: most flows allowed, a good part dropped.
    assert!(allowed > QUERIES / 2 && allowed < QUERIES * 9 / 10);
    bencher
        .counter(ItemsCount::new(QUERIES))
        .bench_local(|| judge_all(&mut ev, &queries));
}

/// The same loop over a small working set: 1,000 distinct queries repeated 100 times, so the
/// evaluator's caches and the entries stay in the CPU caches (the cost of the code alone).
#[divan::bench(sample_count = 20)]
fn evaluate_flows_warm_1000_distinct(bencher: divan::Bencher) {
    let cluster = generate::cluster();
    let index = index(&cluster);
    let distinct = queries(&cluster, 1000);
    let queries: Vec<Query> = distinct.iter().cycle().take(QUERIES).cloned().collect();
    let mut ev = Evaluator::new(&index, &eval::NoPorts);
    judge_all(&mut ev, &queries);
    bencher
        .counter(ItemsCount::new(QUERIES))
        .bench_local(|| judge_all(&mut ev, &queries));
}

/// A fresh evaluator per pass: every identity and pair is computed once within the 100,000.
#[divan::bench(sample_count = 20)]
fn evaluate_flows_cold(bencher: divan::Bencher) {
    let cluster = generate::cluster();
    let index = index(&cluster);
    let queries = queries(&cluster, QUERIES);
    bencher
        .counter(ItemsCount::new(QUERIES))
        .with_inputs(|| Evaluator::new(&index, &eval::NoPorts))
        .bench_local_values(|mut ev| {
            let allowed = judge_all(&mut ev, &queries);
            (allowed, ev)
        });
}

fn hubble(cluster: &Cluster, lines: usize) -> String {
    let mut text = String::new();
    generate::hubble_lines(cluster, lines, |line| text.push_str(line));
    text
}

/// What `netpol verify` does after loading the policies: read the flows, judge them.
#[divan::bench(sample_count = 10)]
fn verify_hubble(bencher: divan::Bencher) {
    let cluster = generate::cluster();
    let index = index(&cluster);
    let text = hubble(&cluster, HUBBLE_LINES);
    bencher.counter(BytesCount::of_str(&text)).bench_local(|| {
        let mut reader = Reader::new(None, DEFAULT_CLUSTER);
        let read = reader.read_all(&mut text.as_bytes(), &mut |_| {});
        assert!(read.is_ok() && reader.error_count == 0);
        let mut ev = Evaluator::new(&index, &eval::NoPorts);
        let v = verify::judge(&reader.set.flows, &mut ev);
        (v.denied(), reader.set.flows.len())
    });
}

/// Reading alone (JSON parsing, label interning, `Flow` records).
#[divan::bench(sample_count = 10)]
fn verify_hubble_parse_only(bencher: divan::Bencher) {
    let text = hubble(&generate::cluster(), HUBBLE_LINES);
    bencher.counter(BytesCount::of_str(&text)).bench_local(|| {
        let mut reader = Reader::new(None, DEFAULT_CLUSTER);
        let read = reader.read_all(&mut text.as_bytes(), &mut |_| {});
        assert!(read.is_ok());
        reader.set.flows.len()
    });
}

/// Judging alone, on the flows read once (`verify::judge` with a fresh evaluator).
#[divan::bench(sample_count = 10)]
fn verify_hubble_judge_only(bencher: divan::Bencher) {
    let cluster = generate::cluster();
    let index = index(&cluster);
    let text = hubble(&cluster, HUBBLE_LINES);
    let mut reader = Reader::new(None, DEFAULT_CLUSTER);
    let read = reader.read_all(&mut text.as_bytes(), &mut |_| {});
    assert!(read.is_ok() && reader.error_count == 0);
    let flows = reader.set.flows;
    bencher
        .counter(ItemsCount::new(flows.len()))
        .bench_local(|| {
            let mut ev = Evaluator::new(&index, &eval::NoPorts);
            verify::judge(&flows, &mut ev).denied()
        });
}

/// The floor: serde_json skipping every line (`IgnoredAny`), no allocation.
#[divan::bench(sample_count = 10)]
fn verify_hubble_json_tokenize_floor(bencher: divan::Bencher) {
    let text = hubble(&generate::cluster(), HUBBLE_LINES);
    bencher.counter(BytesCount::of_str(&text)).bench_local(|| {
        text.lines()
            .filter(|l| serde_json::from_str::<serde::de::IgnoredAny>(l).is_ok())
            .count()
    });
}
