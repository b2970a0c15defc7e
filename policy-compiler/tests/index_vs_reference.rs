//! Property: the compiled index decides every flow exactly as the naive reference evaluator
//! (docs/semantics.md §10), over generated CNP/CCNP/KNP sets and flows — with one evaluator
//! reused across all flows, so its per-identity caches are exercised too. And the reach of a
//! pair (what `netpol connectivity` lists) holds exactly the ports the reference allows.
#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use netpol_compiler::document::files::Memory;
use netpol_compiler::engine::entry;
use netpol_compiler::engine::eval::{self, NoPorts, Query};
use netpol_compiler::engine::identity::{self, Peer, Reserved};
use netpol_compiler::engine::index::{Evaluator, Index};
use netpol_compiler::engine::policy;
use netpol_compiler::engine::settings::{DEFAULT_CLUSTER, Settings};
use netpol_compiler::objects::Proto;
use proptest::prelude::*;

const NAMESPACES: &[&str] = &["a", "b"];
const APPS: &[&str] = &["x", "y", "z"];
const ENTITIES: &[&str] = &[
    "world",
    "cluster",
    "host",
    "remote-node",
    "all",
    "kube-apiserver",
    "none",
];
const PORTS: &[u16] = &[53, 80, 443, 8080];

fn peer_field(ingress: bool) -> impl Strategy<Value = String> {
    let (ep, ent, cidr) = if ingress {
        ("fromEndpoints", "fromEntities", "fromCIDRSet")
    } else {
        ("toEndpoints", "toEntities", "toCIDRSet")
    };
    let fqdn = if ingress { 0 } else { 1 };
    prop_oneof![
        3 => (0..APPS.len(), proptest::option::of(0..NAMESPACES.len())).prop_map(move |(app, ns)| match ns {
            Some(ns) => format!("{ep}: [{{matchLabels: {{app: {}, \"k8s:io.kubernetes.pod.namespace\": {}}}}}]", APPS[app], NAMESPACES[ns]),
            None => format!("{ep}: [{{matchLabels: {{app: {}}}}}]", APPS[app]),
        }),
        1 => Just(format!("{ep}: [{{}}]")),
        1 => Just(format!("{ep}: []")),
        2 => (0..ENTITIES.len()).prop_map(move |i| format!("{ent}: [{}]", ENTITIES[i])),
        1 => (0u8..4, proptest::bool::ANY).prop_map(move |(n, except)| if except {
            format!("{cidr}: [{{cidr: 10.{n}.0.0/16, except: [10.{n}.1.0/24]}}]")
        } else {
            format!("{cidr}: [{{cidr: 10.{n}.0.0/16}}]")
        }),
        fqdn => (0u8..3).prop_map(|n| format!("toFQDNs: [{{matchPattern: \"*.s{n}.com\"}}]")),
        1 => Just(String::new()),
    ]
}

fn ports() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => Just(String::new()),
        3 => (0..PORTS.len(), prop_oneof![Just("TCP"), Just("UDP"), Just("ANY")])
            .prop_map(|(p, proto)| format!("toPorts: [{{ports: [{{port: \"{}\", protocol: {proto}}}]}}]", PORTS[p])),
        1 => Just("toPorts: [{ports: [{port: \"50\", endPort: 100, protocol: TCP}]}]".to_owned()),
        1 => Just("icmps: [{fields: [{type: 8}]}]".to_owned()),
    ]
}

fn item(ingress: bool) -> impl Strategy<Value = String> {
    (peer_field(ingress), ports()).prop_map(|(peer, ports)| {
        let mut s = String::from("{");
        let parts: Vec<&str> = [peer.as_str(), ports.as_str()]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        s.push_str(&parts.join(", "));
        s.push('}');
        s
    })
}

#[derive(Debug, Clone)]
struct Spec {
    kind: u8,
    namespace: usize,
    subject: Option<usize>,
    sections: Vec<(usize, Vec<String>)>,
    default_deny: Option<(bool, bool)>,
}

fn spec() -> impl Strategy<Value = Spec> {
    let section =
        (0usize..4).prop_flat_map(|s| (Just(s), proptest::collection::vec(item(s < 2), 1..3)));
    (
        0u8..3,
        0..NAMESPACES.len(),
        proptest::option::of(0..APPS.len()),
        proptest::collection::vec(section, 1..3),
        proptest::option::of((proptest::bool::ANY, proptest::bool::ANY)),
    )
        .prop_map(|(kind, namespace, subject, sections, default_deny)| Spec {
            kind,
            namespace,
            subject,
            sections,
            default_deny,
        })
}

const SECTIONS: [&str; 4] = ["ingress", "ingressDeny", "egress", "egressDeny"];

fn yaml(specs: &[Spec]) -> String {
    let mut out = String::new();
    // The DNS visibility rule FQDN rules depend on (§4.1).
    out.push_str("apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: dns}\nspec:\n  endpointSelector: {matchLabels: {app: x}}\n  enableDefaultDeny: {egress: false}\n  egress:\n    - toEntities: [cluster]\n      toPorts: [{ports: [{port: \"53\", protocol: ANY}], rules: {dns: [{matchPattern: \"*.s1.com\"}]}}]\n");
    for (i, s) in specs.iter().enumerate() {
        let subject = s.subject.map_or("{}".to_owned(), |a| {
            format!("{{matchLabels: {{app: {}}}}}", APPS[a])
        });
        if s.kind == 2 {
            // A Kubernetes NetworkPolicy from the ingress/egress sections (no denies in KNP).
            let _ = write!(
                out,
                "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: k{i}, namespace: {}}}\nspec:\n  podSelector: {subject}\n  policyTypes: [Ingress, Egress]\n",
                NAMESPACES[s.namespace]
            );
            let mut seen = [false; 2];
            for (sec, items) in &s.sections {
                let (key, peer) = if *sec < 2 {
                    ("ingress", "from")
                } else {
                    ("egress", "to")
                };
                if std::mem::replace(&mut seen[usize::from(*sec >= 2)], true) {
                    continue;
                }
                let _ = writeln!(out, "  {key}:");
                for (j, _) in items.iter().enumerate() {
                    let app = APPS[(i + j) % APPS.len()];
                    match j % 3 {
                        0 => {
                            let _ = writeln!(
                                out,
                                "    - {peer}: [{{podSelector: {{matchLabels: {{app: {app}}}}}}}]"
                            );
                        }
                        1 => {
                            let _ = writeln!(
                                out,
                                "    - {peer}: [{{namespaceSelector: {{}}}}]\n      ports: [{{port: 80}}]"
                            );
                        }
                        _ => {
                            let _ = writeln!(
                                out,
                                "    - {peer}: [{{ipBlock: {{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}}}]"
                            );
                        }
                    }
                }
            }
            continue;
        }
        let (kind, meta) = if s.kind == 0 {
            (
                "CiliumNetworkPolicy",
                format!("{{name: p{i}, namespace: {}}}", NAMESPACES[s.namespace]),
            )
        } else {
            ("CiliumClusterwideNetworkPolicy", format!("{{name: c{i}}}"))
        };
        let _ = write!(
            out,
            "---\napiVersion: cilium.io/v2\nkind: {kind}\nmetadata: {meta}\nspec:\n  endpointSelector: {subject}\n"
        );
        if let Some((i, e)) = s.default_deny {
            let _ = writeln!(out, "  enableDefaultDeny: {{ingress: {i}, egress: {e}}}");
        }
        let mut seen = [false; 4];
        for (sec, items) in &s.sections {
            if std::mem::replace(&mut seen[*sec], true) {
                continue;
            }
            let _ = writeln!(out, "  {}:", SECTIONS[*sec]);
            for it in items {
                // Deny items may not carry FQDNs (§1.5).
                let it = if SECTIONS[*sec].ends_with("Deny") && it.contains("toFQDNs") {
                    "{toEntities: [world]}".to_owned()
                } else {
                    it.clone()
                };
                let _ = writeln!(out, "    - {it}");
            }
        }
    }
    out
}

fn peers() -> Vec<Peer> {
    let mut v = Vec::new();
    for ns in NAMESPACES {
        for app in APPS {
            let labels = BTreeMap::from([("app".to_owned(), (*app).to_owned())]);
            v.push(Peer {
                labels: Arc::new(identity::pod_labels(
                    ns,
                    &labels,
                    None,
                    None,
                    DEFAULT_CLUSTER,
                )),
                ..Peer::default()
            });
        }
    }
    for r in [
        Reserved::Host,
        Reserved::RemoteNode,
        Reserved::KubeApiserver,
        Reserved::Health,
    ] {
        v.push(Peer {
            labels: Arc::new(r.labels()),
            ..Peer::default()
        });
    }
    for (ip, name) in [
        ("10.0.0.1", "a.s0.com"),
        ("10.1.1.1", "a.s1.com"),
        ("10.2.0.9", "b.s2.com"),
        ("8.8.8.8", "a.s1.com"),
    ] {
        v.push(Peer {
            labels: Arc::new(Reserved::World.labels()),
            ip: Some(ip.parse().unwrap()),
            names: vec![name.to_owned()],
            ..Peer::default()
        });
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn index_agrees_with_reference(specs in proptest::collection::vec(spec(), 1..6)) {
        let text = yaml(&specs);
        let fs = Memory::new([(PathBuf::from("p/gen.yaml"), text.clone())]);
        let imported = policy::import(&fs, &[PathBuf::from("p")]);
        prop_assert_eq!(imported.set.stats.rejected, 0, "generated policies must be valid:\n{}\n{:?}", text, imported.diagnostics);
        let index = Index::new(entry::build(&imported.set, None, &Settings::default()));
        prop_assert!(!index.entries.entries.is_empty());
        let mut ev = Evaluator::new(&index, &NoPorts);
        let peers = peers();
        let mut decided = 0;
        for src in &peers {
            for dst in &peers {
                for (proto, port) in [(Proto::Tcp, 80), (Proto::Udp, 53), (Proto::Tcp, 443), (Proto::Tcp, 70), (Proto::Icmp, 8), (Proto::Tcp, 8080)] {
                    let q = Query { src: src.clone(), dst: dst.clone(), proto: Some(proto), port };
                    let reference = eval::reference(&index.entries, &q, &NoPorts, None);
                    let indexed = ev.decide(&q);
                    prop_assert_eq!(&indexed, &reference, "policies:\n{}\nflow: {} -> {} {}/{}", text, src.labels, dst.labels, port, proto);
                    decided += 1;
                }
            }
        }
        prop_assert!(decided > 0);
    }

    #[test]
    fn reach_agrees_with_reference(specs in proptest::collection::vec(spec(), 1..6)) {
        let text = yaml(&specs);
        let fs = Memory::new([(PathBuf::from("p/gen.yaml"), text.clone())]);
        let imported = policy::import(&fs, &[PathBuf::from("p")]);
        prop_assert_eq!(imported.set.stats.rejected, 0, "generated policies must be valid:\n{}\n{:?}", text, imported.diagnostics);
        let index = Index::new(entry::build(&imported.set, None, &Settings::default()));
        // One evaluator for every pair, as a connectivity report uses it.
        let mut ev = Evaluator::new(&index, &NoPorts);
        let peers = peers();
        for src in &peers {
            for dst in &peers {
                let reach = ev.reach(src, dst);
                // ICMP: types (0-255), as reach has them.
                let ports: &[u16] = &[1, 8, 49, 50, 53, 70, 80, 100, 101, 443, 8080, 65535];
                let types: &[u16] = &[0, 3, 8, 255];
                for (proto, ports) in [(Proto::Tcp, ports), (Proto::Udp, ports), (Proto::Sctp, ports), (Proto::Icmp, types)] {
                    for &port in ports {
                        let q = Query { src: src.clone(), dst: dst.clone(), proto: Some(proto), port };
                        let reference = eval::reference(&index.entries, &q, &NoPorts, None);
                        prop_assert_eq!(reach.allows(proto, port), reference.allowed(), "policies:\n{}\nflow: {} -> {} {}/{}", text, src.labels, dst.labels, port, proto);
                    }
                }
            }
        }
    }
}
