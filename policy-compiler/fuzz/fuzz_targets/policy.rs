//! Any bytes as a policy file (CNP, CCNP, KNP; YAML or JSON): import must answer with
//! diagnostics or policies, never panic; rendering the diagnostics must not panic; and the
//! compiled index must decide a few fixed flows exactly as the reference evaluator does.
#![no_main]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use netpol_compiler::engine::settings::{DEFAULT_CLUSTER, Settings};
use netpol_compiler::diagnostic::{self, Diagnostics, Style};
use netpol_compiler::engine::eval::{self, NoPorts, Query};
use netpol_compiler::objects::Proto;
use netpol_compiler::engine::identity::{Peer, Reserved, pod_labels};
use netpol_compiler::engine::index::{Evaluator, Index};
use netpol_compiler::diagnostic::source::{SourceFile, SourceMap};
use netpol_compiler::engine::{entry, policy};

fn pod(namespace: &str, labels: &[(&str, &str)], ip: &str) -> Peer {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Peer {
        labels: Arc::new(pod_labels(namespace, &labels, Some("default"), None, DEFAULT_CLUSTER)),
        ip: ip.parse::<IpAddr>().ok(),
        ..Peer::default()
    }
}

fn entity(r: Reserved, ip: Option<&str>, names: &[&str]) -> Peer {
    Peer {
        labels: Arc::new(r.labels()),
        ip: ip.and_then(|ip| ip.parse::<IpAddr>().ok()),
        names: names.iter().map(|n| (*n).to_owned()).collect(),
        ..Peer::default()
    }
}

fn queries() -> Vec<Query> {
    let sonarr = pod("media", &[("app", "sonarr")], "10.0.1.2");
    let traefik = pod(
        "traefik",
        &[("app.kubernetes.io/name", "traefik")],
        "10.0.2.3",
    );
    let coredns = pod("kube-system", &[("k8s-app", "kube-dns")], "10.0.0.10");
    let tvdb = entity(Reserved::World, Some("1.2.3.4"), &["api.thetvdb.com"]);
    let private = entity(Reserved::World, Some("192.168.1.20"), &[]);
    let host = entity(Reserved::Host, Some("10.0.0.1"), &[]);
    let q = |src: &Peer, dst: &Peer, proto, port| Query {
        src: src.clone(),
        dst: dst.clone(),
        proto: Some(proto),
        port,
    };
    vec![
        q(&sonarr, &tvdb, Proto::Tcp, 443),
        q(&sonarr, &private, Proto::Tcp, 445),
        q(&sonarr, &coredns, Proto::Udp, 53),
        q(&traefik, &sonarr, Proto::Tcp, 8989),
        q(&tvdb, &sonarr, Proto::Tcp, 8989),
        q(&host, &sonarr, Proto::Tcp, 8989),
        q(&sonarr, &tvdb, Proto::Icmp, 8),
        Query {
            proto: None,
            ..q(&sonarr, &traefik, Proto::Tcp, 0)
        },
    ]
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut sources = SourceMap::new();
    let id = sources.add(SourceFile::new(Path::new("fuzz.yaml"), text));
    let mut diags = Diagnostics::new();
    let mut set = policy::PolicySet::default();
    policy::import_text(id, text, &mut diags, &mut set);
    let _ = diagnostic::render_human(&diags, &sources, Style::Plain);
    let _ = diagnostic::render_json(&diags, &sources);

    let entries = entry::build(&set, None, &Settings::default());
    let index = Index::new(entries);
    let mut evaluator = Evaluator::new(&index, &NoPorts);
    for q in queries() {
        let compiled = evaluator.decide(&q);
        let reference = eval::reference(&index.entries, &q, &NoPorts, None);
        assert_eq!(compiled, reference, "query {q:?}");
    }
});
