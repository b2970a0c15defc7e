//! Property tests over generated profile sets: whatever the profiles, the compiled policies
//! allow every declared statement, keep every workload default-deny as configured, pair every
//! FQDN rule with its DNS rule, respect Cilium's structural limits, read back identically, and
//! do not depend on the order of declarations.
//!
//! The checks read the compiled objects with a small matcher written here, independent of the
//! compiler's grouping logic.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use netpol_compiler::document::files::Memory;
use netpol_compiler::objects::cilium::{
    EgressRule, EndpointSelector, Entity, IcmpRule, IngressRule, PolicyObject, PortRule, Protocol,
    SelectorOperator,
};
use netpol_compiler::objects::fqdn;
use netpol_compiler::profile::{compile_paths, emit};
use proptest::prelude::*;

const NAMESPACES: &[&str] = &["media", "databases", "web"];

#[derive(Debug, Clone)]
struct GenService {
    name: String,
    /// port name → (port, protocol)
    ports: Vec<(String, u16, &'static str)>,
    enforce: &'static str,
}

#[derive(Debug, Clone)]
enum GenPeer {
    Service { ns: usize, index: usize },
    Entity(&'static str),
    Cidr(&'static str),
    Fqdn(String),
}

#[derive(Debug, Clone)]
enum GenPort {
    Number(u16, &'static str),
    Range(u16, u16, &'static str),
    Name(String),
    Icmp(u8),
}

#[derive(Debug, Clone)]
struct GenStatement {
    /// The namespace whose profile holds the statement.
    home: usize,
    from: GenPeer,
    to: GenPeer,
    on: Vec<GenPort>,
}

#[derive(Debug, Clone)]
struct GenSet {
    services: Vec<Vec<GenService>>,
    statements: Vec<GenStatement>,
}

fn protocol() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["tcp", "tcp", "udp", "sctp"])
}

fn service(index: usize) -> impl Strategy<Value = GenService> {
    (
        prop::collection::vec((1024u16..60000, protocol()), 1..3),
        prop::sample::select(vec!["both", "both", "ingress", "egress", "audit"]),
    )
        .prop_map(move |(ports, enforce)| GenService {
            name: format!("svc{index}"),
            ports: ports
                .into_iter()
                .enumerate()
                .map(|(i, (p, proto))| (format!("port{i}"), p, proto))
                .collect(),
            enforce,
        })
}

fn services() -> impl Strategy<Value = Vec<Vec<GenService>>> {
    prop::collection::vec(1usize..4, NAMESPACES.len()).prop_flat_map(|counts| {
        counts
            .into_iter()
            .map(|n| (0..n).map(service).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    })
}

fn gen_set() -> impl Strategy<Value = GenSet> {
    services().prop_flat_map(|services| {
        let all: Vec<(usize, usize)> = services
            .iter()
            .enumerate()
            .flat_map(|(ns, list)| (0..list.len()).map(move |i| (ns, i)))
            .collect();
        let svc = prop::sample::select(all.clone())
            .prop_map(|(ns, index)| GenPeer::Service { ns, index });
        let external = prop_oneof![
            prop::sample::select(vec![
                "world",
                "host",
                "remote-node",
                "kube-apiserver",
                "cluster"
            ])
            .prop_map(GenPeer::Entity),
            prop::sample::select(vec!["10.0.0.0/8", "192.168.1.0/24", "fd00::/8"])
                .prop_map(GenPeer::Cidr),
            (0u8..5).prop_map(|i| GenPeer::Fqdn(format!("api{i}.example.com"))),
            Just(GenPeer::Fqdn("*.tmdb.org".to_string())),
        ];
        let ports = prop_oneof![
            (1u16..65535, protocol()).prop_map(|(p, proto)| GenPort::Number(p, proto)),
            (1u16..60000, 1u16..500, protocol()).prop_map(|(p, w, proto)| GenPort::Range(
                p,
                p + w,
                proto
            )),
            (0u8..16).prop_map(GenPort::Icmp),
        ];
        let many_ports = prop_oneof![
            8 => prop::collection::vec(ports.clone(), 0..4),
            1 => prop::collection::vec(ports, 41..60),
        ];
        let statement = (
            svc.clone(),
            prop_oneof![2 => svc.clone(), 1 => external],
            any::<bool>(),
            many_ports,
            any::<bool>(),
        )
            .prop_map(|(service, other, service_is_source, mut on, use_name)| {
                let (from, to) = if service_is_source || matches!(other, GenPeer::Fqdn(_)) {
                    (service.clone(), other)
                } else {
                    (other, service.clone())
                };
                if use_name && matches!(to, GenPeer::Service { .. }) {
                    on.push(GenPort::Name("port0".to_string()));
                }
                let home = match service {
                    GenPeer::Service { ns, .. } => ns,
                    _ => 0,
                };
                GenStatement { home, from, to, on }
            });
        (Just(services), prop::collection::vec(statement, 1..12)).prop_map(
            |(services, statements)| GenSet {
                services,
                statements,
            },
        )
    })
}

fn peer_text(set: &GenSet, peer: &GenPeer) -> String {
    match peer {
        GenPeer::Service { ns, index } => {
            format!("{}/{}", NAMESPACES[*ns], set.services[*ns][*index].name)
        }
        GenPeer::Entity(e) => (*e).to_string(),
        GenPeer::Cidr(c) => (*c).to_string(),
        GenPeer::Fqdn(f) => format!("\"{f}\""),
    }
}

fn port_text(port: &GenPort) -> String {
    match port {
        GenPort::Number(p, proto) => format!("{p}/{proto}"),
        GenPort::Range(a, b, proto) => format!("{a}-{b}/{proto}"),
        GenPort::Name(n) => n.clone(),
        GenPort::Icmp(t) => format!("icmp/{t}"),
    }
}

/// The profile files of a set; `reverse` lists services and statements in reverse order.
fn render(set: &GenSet, reverse: bool) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    for (ns, services) in set.services.iter().enumerate() {
        let mut text = format!("namespace: {}\nservices:\n", NAMESPACES[ns]);
        let mut order: Vec<&GenService> = services.iter().collect();
        if reverse {
            order.reverse();
        }
        for s in order {
            text.push_str(&format!(
                "  {}:\n    enforce: {}\n    ports:\n",
                s.name, s.enforce
            ));
            for (name, port, proto) in &s.ports {
                text.push_str(&format!("      {name}: {port}/{proto}\n"));
            }
        }
        let mut statements: Vec<&GenStatement> =
            set.statements.iter().filter(|st| st.home == ns).collect();
        if reverse {
            statements.reverse();
        }
        if !statements.is_empty() {
            text.push_str("allow:\n");
        }
        for st in statements {
            let on: Vec<String> = st.on.iter().map(port_text).collect();
            text.push_str(&format!(
                "  - from: {}\n    to: {}\n",
                peer_text(set, &st.from),
                peer_text(set, &st.to)
            ));
            if !on.is_empty() {
                text.push_str(&format!("    on: [{}]\n", on.join(", ")));
            }
        }
        files.push((PathBuf::from(format!("p/{}.yaml", NAMESPACES[ns])), text));
    }
    files
}

fn compile(files: Vec<(PathBuf, String)>) -> Vec<PolicyObject> {
    let fs = Memory::new(files);
    let c = compile_paths(&fs, &[PathBuf::from("p")]);
    assert!(!c.diagnostics.has_errors(), "{:?}", c.diagnostics);
    c.objects.unwrap()
}

fn policy_of<'a>(
    objects: &'a [PolicyObject],
    ns: &str,
    name: &str,
) -> &'a netpol_compiler::objects::cilium::Rule {
    objects
        .iter()
        .find(|o| o.namespace() == Some(ns) && o.name() == name)
        .and_then(|o| o.rules().next())
        .unwrap_or_else(|| panic!("no policy for {ns}/{name}"))
}

/// Identity labels of a generated service's pods, as Cilium writes them.
fn pod_labels(set: &GenSet, ns: usize, index: usize) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "k8s:app.kubernetes.io/name".to_string(),
            set.services[ns][index].name.clone(),
        ),
        (
            "k8s:io.kubernetes.pod.namespace".to_string(),
            NAMESPACES[ns].to_string(),
        ),
    ])
}

fn selector_matches(sel: &EndpointSelector, labels: &BTreeMap<String, String>) -> bool {
    sel.match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v))
        && sel
            .match_expressions
            .iter()
            .flatten()
            .all(|e| match e.operator {
                SelectorOperator::Exists => labels.contains_key(&e.key),
                SelectorOperator::DoesNotExist => !labels.contains_key(&e.key),
                SelectorOperator::In => labels
                    .get(&e.key)
                    .is_some_and(|v| e.values.iter().flatten().any(|x| x == v)),
                SelectorOperator::NotIn => !labels
                    .get(&e.key)
                    .is_some_and(|v| e.values.iter().flatten().any(|x| x == v)),
            })
}

/// Does an item's L4 part allow this port?
fn l4_allows(
    to_ports: &Option<Vec<PortRule>>,
    icmps: &Option<Vec<IcmpRule>>,
    port: &GenPort,
    receiver: Option<&GenService>,
) -> bool {
    if to_ports.is_none() && icmps.is_none() {
        return true;
    }
    let want: Vec<(u16, u16, &str)> = match port {
        GenPort::Number(p, proto) => vec![(*p, *p, proto)],
        GenPort::Range(a, b, proto) => vec![(*a, *b, proto)],
        GenPort::Name(n) => receiver
            .unwrap()
            .ports
            .iter()
            .filter(|(name, _, _)| name == n)
            .map(|(_, p, proto)| (*p, *p, *proto))
            .collect(),
        GenPort::Icmp(t) => {
            return icmps
                .iter()
                .flatten()
                .flat_map(|r| r.fields.iter().flatten())
                .any(|f| f.icmp_type == netpol_compiler::objects::cilium::IcmpType::Number(*t));
        }
    };
    want.iter().all(|(first, last, proto)| {
        to_ports
            .iter()
            .flatten()
            .flat_map(|r| r.ports.iter().flatten())
            .any(|p| {
                let start: u16 = p.port.parse().unwrap();
                let end = p.end_port.map_or(start, |e| u16::try_from(e).unwrap());
                let proto_ok = matches!(
                    (p.protocol, *proto),
                    (Some(Protocol::Tcp), "tcp")
                        | (Some(Protocol::Udp), "udp")
                        | (Some(Protocol::Sctp), "sctp")
                );
                proto_ok && start <= *first && *last <= end
            })
    })
}

fn entity(name: &str) -> Entity {
    Entity::ALL
        .into_iter()
        .find(|e| e.as_str() == name)
        .unwrap()
}

fn egress_allows(set: &GenSet, items: &[EgressRule], peer: &GenPeer, port: &GenPort) -> bool {
    let receiver = match peer {
        GenPeer::Service { ns, index } => Some(&set.services[*ns][*index]),
        _ => None,
    };
    items.iter().any(|item| {
        let peer_ok = match peer {
            GenPeer::Service { ns, index } => {
                let labels = pod_labels(set, *ns, *index);
                item.to_endpoints
                    .iter()
                    .flatten()
                    .any(|s| selector_matches(s, &labels))
            }
            GenPeer::Entity(e) => item.to_entities.iter().flatten().any(|x| *x == entity(e)),
            GenPeer::Cidr(c) => item
                .to_cidr_set
                .iter()
                .flatten()
                .any(|r| r.cidr.as_deref() == Some(*c)),
            GenPeer::Fqdn(name) => item.to_fqdns.iter().flatten().any(|f| {
                f.match_name.as_deref() == Some(name.as_str())
                    || f.match_pattern.as_deref() == Some(name.as_str())
            }),
        };
        peer_ok && l4_allows(&item.to_ports, &item.icmps, port, receiver)
    })
}

fn ingress_allows(
    set: &GenSet,
    items: &[IngressRule],
    peer: &GenPeer,
    port: &GenPort,
    receiver: &GenService,
) -> bool {
    items.iter().any(|item| {
        let peer_ok = match peer {
            GenPeer::Service { ns, index } => {
                let labels = pod_labels(set, *ns, *index);
                item.from_endpoints
                    .iter()
                    .flatten()
                    .any(|s| selector_matches(s, &labels))
            }
            GenPeer::Entity(e) => item.from_entities.iter().flatten().any(|x| *x == entity(e)),
            GenPeer::Cidr(c) => item
                .from_cidr_set
                .iter()
                .flatten()
                .any(|r| r.cidr.as_deref() == Some(*c)),
            GenPeer::Fqdn(_) => false,
        };
        peer_ok && l4_allows(&item.to_ports, &item.icmps, port, Some(receiver))
    })
}

/// "All ports" for statements without `on:`.
const ANY_PORT: GenPort = GenPort::Number(4242, "tcp");

fn check_statements(set: &GenSet, objects: &[PolicyObject]) -> Result<(), TestCaseError> {
    for st in &set.statements {
        let ports: Vec<GenPort> = if st.on.is_empty() {
            vec![ANY_PORT]
        } else {
            st.on.clone()
        };
        if let GenPeer::Service { ns, index } = st.from {
            let s = &set.services[ns][index];
            let rule = policy_of(objects, NAMESPACES[ns], &s.name);
            let egress = rule.egress.clone().unwrap_or_default();
            for port in &ports {
                prop_assert!(
                    egress_allows(set, &egress, &st.to, port),
                    "egress of {} misses {:?} on {:?}",
                    s.name,
                    st.to,
                    port
                );
            }
        }
        if let GenPeer::Service { ns, index } = st.to {
            let s = &set.services[ns][index];
            let rule = policy_of(objects, NAMESPACES[ns], &s.name);
            let ingress = rule.ingress.clone().unwrap_or_default();
            for port in &ports {
                prop_assert!(
                    ingress_allows(set, &ingress, &st.from, port, s),
                    "ingress of {} misses {:?} on {:?}",
                    s.name,
                    st.from,
                    port
                );
            }
        }
    }
    Ok(())
}

fn check_structure(set: &GenSet, objects: &[PolicyObject]) -> Result<(), TestCaseError> {
    for (ns, services) in set.services.iter().enumerate() {
        for s in services {
            let rule = policy_of(objects, NAMESPACES[ns], &s.name);
            let dd = rule.enable_default_deny.clone().unwrap();
            let (ingress, egress) = match s.enforce {
                "both" => (true, true),
                "ingress" => (true, false),
                "egress" => (false, true),
                _ => (false, false),
            };
            prop_assert_eq!(dd.ingress, Some(ingress));
            prop_assert_eq!(dd.egress, Some(egress));
            // An enforced direction needs a non-empty section to be default-deny at all.
            if ingress {
                prop_assert!(rule.ingress.as_ref().is_some_and(|i| !i.is_empty()));
            }
            if egress {
                prop_assert!(rule.egress.as_ref().is_some_and(|e| !e.is_empty()));
            }
        }
    }
    for object in objects {
        for rule in object.rules() {
            for item in rule.ingress.iter().flatten() {
                let kinds = [
                    item.from_endpoints.is_some(),
                    item.from_cidr.is_some(),
                    item.from_cidr_set.is_some(),
                    item.from_entities.is_some(),
                    item.from_nodes.is_some(),
                    item.from_groups.is_some(),
                ];
                prop_assert!(
                    kinds.iter().filter(|k| **k).count() <= 1,
                    "mixed peer kinds in {:?}",
                    item
                );
                prop_assert!(!(item.to_ports.is_some() && item.icmps.is_some()));
                check_limits(&item.to_ports, &item.icmps)?;
            }
            let egress = rule.egress.clone().unwrap_or_default();
            for item in &egress {
                let kinds = [
                    item.to_endpoints.is_some(),
                    item.to_cidr.is_some(),
                    item.to_cidr_set.is_some(),
                    item.to_entities.is_some(),
                    item.to_services.is_some(),
                    item.to_fqdns.is_some(),
                    item.to_nodes.is_some(),
                    item.to_groups.is_some(),
                ];
                prop_assert!(
                    kinds.iter().filter(|k| **k).count() <= 1,
                    "mixed peer kinds in {:?}",
                    item
                );
                prop_assert!(!(item.to_ports.is_some() && item.icmps.is_some()));
                check_limits(&item.to_ports, &item.icmps)?;
                // Every FQDN has a DNS rule whose patterns cover it (docs/semantics.md §4.1).
                for f in item.to_fqdns.iter().flatten() {
                    let name = f
                        .match_name
                        .clone()
                        .or(f.match_pattern.clone())
                        .unwrap()
                        .replace('*', "x");
                    let covered = egress.iter().any(|d| {
                        d.to_ports.iter().flatten().any(|p| {
                            p.ports.iter().flatten().any(|pp| pp.port == "53")
                                && p.rules.as_ref().and_then(|r| r.dns.as_ref()).is_some_and(
                                    |dns| {
                                        dns.iter().any(|sel| {
                                            let pattern = sel
                                                .match_name
                                                .clone()
                                                .or(sel.match_pattern.clone())
                                                .unwrap();
                                            fqdn::parse(&pattern).unwrap().matches(&name)
                                        })
                                    },
                                )
                        })
                    });
                    prop_assert!(covered, "no DNS rule covers {name}");
                }
            }
        }
    }
    Ok(())
}

fn check_limits(
    to_ports: &Option<Vec<PortRule>>,
    icmps: &Option<Vec<IcmpRule>>,
) -> Result<(), TestCaseError> {
    for p in to_ports.iter().flatten() {
        prop_assert!(
            p.ports
                .as_ref()
                .is_some_and(|v| !v.is_empty() && v.len() <= 40)
        );
    }
    for i in icmps.iter().flatten() {
        prop_assert!(
            i.fields
                .as_ref()
                .is_some_and(|v| !v.is_empty() && v.len() <= 40)
        );
    }
    Ok(())
}

fn without_sources(objects: &[PolicyObject]) -> Vec<serde_json::Value> {
    objects
        .iter()
        .map(|o| {
            let mut v = serde_json::to_value(o).unwrap();
            let annotations = v["metadata"]["annotations"].as_object_mut().unwrap();
            annotations.remove("netpol.dev/source");
            annotations.remove("netpol.dev/rule-sources");
            v
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn compiled_policies_keep_every_promise(set in gen_set()) {
        let objects = compile(render(&set, false));
        check_statements(&set, &objects)?;
        check_structure(&set, &objects)?;

        // Deterministic: the same input gives the same bytes, and the order of declarations
        // does not matter.
        let yaml = emit::stream(&objects, emit::Format::Yaml).unwrap();
        prop_assert_eq!(&yaml, &emit::stream(&compile(render(&set, false)), emit::Format::Yaml).unwrap());
        prop_assert_eq!(without_sources(&objects), without_sources(&compile(render(&set, true))));

        // Emitted YAML reads back, through the typed models, as the same objects.
        let docs: Vec<serde_json::Value> = serde_saphyr::from_str_multiple(&yaml).unwrap();
        let back: Vec<PolicyObject> = docs.into_iter().map(|d| serde_json::from_value(d).unwrap()).collect();
        prop_assert_eq!(back, objects);
    }
}
