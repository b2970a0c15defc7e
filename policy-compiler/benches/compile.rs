//! `netpol compile` on a generated homelab-shaped cluster: 1,000 services in 10 namespaces and
//! 10,000 allow statements (service→service on named ports, DNS names, entities, CIDRs).
//!
//! Run: `cargo bench -p netpol-compiler --bench compile`

use std::path::PathBuf;

use netpol_compiler::document::files::Memory;
use netpol_compiler::profile::{compile_paths, emit};

fn main() {
    divan::main();
}

const NAMESPACES: usize = 10;
const SERVICES_PER_NAMESPACE: usize = 100;
const STATEMENTS: usize = 10_000;

/// A tiny deterministic generator (the benchmark must measure the same input every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % bound
    }
}

fn profiles() -> Memory {
    let mut rng = Lcg(42);
    let mut files: Vec<(String, String)> = Vec::new();
    let per_ns = STATEMENTS / NAMESPACES;
    for ns in 0..NAMESPACES {
        let mut text = format!("namespace: ns{ns}\nservices:\n");
        for s in 0..SERVICES_PER_NAMESPACE {
            text.push_str(&format!(
                "  svc{s}:\n    ports: {{http: {}, metrics: {}/tcp, udp: {}/udp}}\n",
                8000 + s,
                9000 + s,
                10000 + s
            ));
        }
        text.push_str("allow:\n");
        for _ in 0..per_ns {
            let from = rng.next(SERVICES_PER_NAMESPACE);
            let kind = rng.next(10);
            let line = match kind {
                0 => format!(
                    "  - from: svc{from}\n    to: api{}.example.com\n    on: 443\n",
                    rng.next(50)
                ),
                1 => format!("  - from: svc{from}\n    to: world\n    on: [80, 443]\n"),
                2 => format!(
                    "  - from: svc{from}\n    to: 10.{}.0.0/16\n    on: 5432\n",
                    rng.next(200)
                ),
                _ => {
                    let to_ns = rng.next(NAMESPACES);
                    let to = rng.next(SERVICES_PER_NAMESPACE);
                    let port = ["http", "metrics", "udp"]
                        .get(rng.next(3))
                        .copied()
                        .unwrap_or("http");
                    format!("  - from: svc{from}\n    to: ns{to_ns}/svc{to}\n    on: {port}\n")
                }
            };
            text.push_str(&line);
        }
        files.push((format!("p/ns{ns}.yaml"), text));
    }
    Memory::new(files)
}

#[divan::bench(sample_count = 20)]
fn compile_1000_services_10000_allows(bencher: divan::Bencher) {
    let fs = profiles();
    let paths = [PathBuf::from("p")];
    bencher.bench(|| {
        let c = compile_paths(&fs, &paths);
        assert!(!c.diagnostics.has_errors());
        c.objects
    });
}

#[divan::bench(sample_count = 20)]
fn compile_and_emit_yaml(bencher: divan::Bencher) {
    let fs = profiles();
    let paths = [PathBuf::from("p")];
    bencher.bench(|| {
        let c = compile_paths(&fs, &paths);
        emit::stream(&c.objects.unwrap_or_default(), emit::Format::Yaml).map(|s| s.len())
    });
}

#[divan::bench(sample_count = 10)]
fn phase_load(bencher: divan::Bencher) {
    let fs = profiles();
    let paths = [PathBuf::from("p")];
    bencher.bench(|| netpol_compiler::profile::load(&fs, &paths).files.len());
}

#[divan::bench(sample_count = 10)]
fn phase_resolve(bencher: divan::Bencher) {
    let fs = profiles();
    let paths = [PathBuf::from("p")];
    let loaded = netpol_compiler::profile::load(&fs, &paths);
    bencher.bench(|| {
        let mut d = netpol_compiler::diagnostic::Diagnostics::new();
        netpol_compiler::profile::model::resolve(&loaded.files, &loaded.sources, &mut d)
            .map(|m| m.rules.len())
    });
}

#[divan::bench(sample_count = 10)]
fn phase_yaml_only(bencher: divan::Bencher) {
    let fs = profiles();
    let texts: Vec<String> = fs.files.values().cloned().collect();
    bencher.bench(|| {
        texts
            .iter()
            .filter(|t| {
                netpol_compiler::document::parse(
                    netpol_compiler::diagnostic::source::SourceId(0),
                    t,
                )
                .is_ok()
            })
            .count()
    });
}
