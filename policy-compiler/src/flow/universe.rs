//! The universe of a connectivity report: every peer that can open or receive a connection.
//!
//! ```text
//! inventory pods ──grouped by owner──┐
//! workload manifests (templates) ────┤                    ┌─ ns/name[Kind]            workloads
//! profile services (by the caller) ──┴──> Universe nodes ─┼─ a.b.c.d-w.x.y.z[External] address ranges
//! policies: CIDRs, toFQDNs, Cilium? ─────────────────────>├─ host[Entity] …            entities
//!                                                         └─ api.example.com[DNS]     DNS names
//! ```
//!
//! Workloads are named as netpol-analyzer names them: a running pod by its owner as the
//! ownerReference says (`[ReplicaSet]`, `[DaemonSet]`, …; `[Pod]` without one), a manifest by its
//! kind. External addresses are cut at every CIDR boundary the policies mention, so that every
//! range is decided alike; IPv6 ranges appear when a policy names an IPv6 CIDR. Cilium-only
//! peers: the entities `host`, `remote-node` and `kube-apiserver` when the input has Cilium
//! policies, and one peer per `toFQDNs` name or pattern (judged by name; what a CIDR rule says
//! about the address it resolves to is not known offline).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;

use crate::engine::entry::{Entries, L3, PeerMatch};
use crate::engine::identity::{NamedPort, Peer, Reserved};
use crate::engine::policy::PolicyKind;
use crate::flow::inventory::{Inventory, Pod};
use crate::objects::Direction;
use crate::objects::fqdn::FqdnSelector;

/// What a node of the universe stands for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeKind {
    /// Pods of one workload (`kind`: `Deployment`, `ReplicaSet`, `Pod`, `Profile`, …).
    Workload {
        namespace: String,
        name: String,
        kind: String,
    },
    /// Addresses outside the cluster, first to last; sources of connections into the cluster
    /// (`inbound`) or destinations of connections out of it, each cut at the CIDRs of the
    /// direction that judges them.
    External {
        first: IpAddr,
        last: IpAddr,
        inbound: bool,
    },
    /// A reserved identity.
    Entity(String),
    /// Addresses a `toFQDNs` name or pattern stands for.
    Dns(String),
}

impl NodeKind {
    pub fn is_workload(&self) -> bool {
        matches!(self, Self::Workload { .. })
    }

    /// The namespace of a workload.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Self::Workload { namespace, .. } => Some(namespace),
            _ => None,
        }
    }
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Workload {
                namespace,
                name,
                kind,
            } => write!(f, "{namespace}/{name}[{kind}]"),
            Self::External { first, last, .. } => write!(f, "{first}-{last}[External]"),
            Self::Entity(e) => write!(f, "{e}[Entity]"),
            Self::Dns(name) => write!(f, "{name}[DNS]"),
        }
    }
}

/// One peer of the universe.
#[derive(Debug, Clone)]
pub struct Node {
    pub kind: NodeKind,
    /// `kind` as reports print it.
    pub name: String,
    /// How the engine sees it.
    pub peer: Peer,
}

/// A CIDR and the CIDRs excepted from it.
pub type Cidr = (IpNet, Vec<IpNet>);

/// What the policies name that the universe must have a peer for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mentions {
    /// CIDR predicates (a CIDR and its exceptions) of ingress rules: they cut the addresses
    /// connections come from.
    pub cidrs_in: BTreeSet<Cidr>,
    /// CIDR predicates of egress rules: they cut the addresses connections go to.
    pub cidrs_out: BTreeSet<Cidr>,
    pub fqdns: BTreeSet<FqdnSelector>,
    /// Some policy is a Cilium one (CNP or CCNP): entities are peers.
    pub cilium: bool,
}

impl Mentions {
    /// What the entries of a policy set name.
    pub fn of(entries: &Entries) -> Self {
        let mut m = Self::default();
        for e in &entries.entries {
            m.cilium |= matches!(e.origin.kind, PolicyKind::Cnp | PolicyKind::Ccnp);
            let L3::Peers(peers) = &e.l3 else { continue };
            for p in peers {
                match p {
                    PeerMatch::Cidr { net, except, .. } => {
                        let cidrs = match e.direction {
                            Direction::Ingress => &mut m.cidrs_in,
                            Direction::Egress => &mut m.cidrs_out,
                        };
                        cidrs.insert((net.trunc(), except.iter().map(IpNet::trunc).collect()));
                    }
                    PeerMatch::Fqdn(s) => {
                        m.fqdns.insert(s.clone());
                    }
                    _ => {}
                }
            }
        }
        m
    }

    /// What either names (the universe of a diff covers both revisions).
    pub fn union(&self, other: &Self) -> Self {
        Self {
            cidrs_in: self.cidrs_in.union(&other.cidrs_in).cloned().collect(),
            cidrs_out: self.cidrs_out.union(&other.cidrs_out).cloned().collect(),
            fqdns: self.fqdns.union(&other.fqdns).cloned().collect(),
            cilium: self.cilium || other.cilium,
        }
    }
}

/// Every peer, sorted by name.
#[derive(Debug, Clone, Default)]
pub struct Universe {
    pub nodes: Vec<Node>,
}

/// A workload the caller knows from elsewhere (a profile's service).
#[derive(Debug, Clone)]
pub struct Declared {
    pub namespace: String,
    pub name: String,
    pub kind: String,
    /// Pod labels.
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<NamedPort>,
    /// On the host network: the node's identity (seen from elsewhere, `remote-node`).
    pub host_network: bool,
}

impl Universe {
    /// The workloads of `inventory` (running pods by owner, then the manifests' workloads that
    /// no running pod stands for), the `declared` workloads no workload of the inventory
    /// already stands for, and the peers `mentions` asks for.
    pub fn new(inventory: &Inventory, declared: &[Declared], mentions: &Mentions) -> Self {
        // Keyed by name and kind: an address range has the same name as a source and as a
        // destination.
        let mut nodes: BTreeMap<(String, NodeKind), Node> = BTreeMap::new();
        let mut add = |kind: NodeKind, peer: Peer| {
            let name = kind.to_string();
            nodes
                .entry((name.clone(), kind.clone()))
                .or_insert(Node { kind, name, peer });
        };
        // Pods are sorted by (namespace, name): the first of an owner stands for it.
        for pod in &inventory.pods {
            add(workload_kind(pod), workload_peer(inventory, pod));
        }
        let live = |selector: &BTreeMap<String, String>, namespace: &str| {
            inventory.pods.iter().any(|p| {
                p.namespace == namespace && selector.iter().all(|(k, v)| p.labels.get(k) == Some(v))
            })
        };
        for t in &inventory.templates {
            if !live(&t.selector, &t.pod.namespace) {
                add(workload_kind(&t.pod), workload_peer(inventory, &t.pod));
            }
        }
        for d in declared {
            let known = inventory
                .pods
                .iter()
                .chain(inventory.templates.iter().map(|t| &t.pod))
                .any(|p| {
                    p.namespace == d.namespace
                        && !d.labels.is_empty()
                        && d.labels.iter().all(|(k, v)| p.labels.get(k) == Some(v))
                });
            if known {
                continue;
            }
            let labels = if d.host_network {
                Reserved::RemoteNode.labels()
            } else {
                inventory.pod_identity(&d.namespace, &d.labels, Some("default"))
            };
            add(
                NodeKind::Workload {
                    namespace: d.namespace.clone(),
                    name: d.name.clone(),
                    kind: d.kind.clone(),
                },
                Peer {
                    labels: Arc::new(labels),
                    ip: None,
                    names: Vec::new(),
                    named_ports: Arc::new(d.ports.clone()),
                },
            );
        }
        let world = Arc::new(Reserved::World.labels());
        for (inbound, cidrs) in [(true, &mentions.cidrs_in), (false, &mentions.cidrs_out)] {
            for (first, last) in ranges(cidrs) {
                add(
                    NodeKind::External {
                        first,
                        last,
                        inbound,
                    },
                    Peer {
                        labels: world.clone(),
                        ip: Some(first),
                        ..Peer::default()
                    },
                );
            }
        }
        for s in &mentions.fqdns {
            add(
                NodeKind::Dns(s.text().to_owned()),
                Peer {
                    labels: world.clone(),
                    ip: None,
                    names: vec![example_name(s)],
                    ..Peer::default()
                },
            );
        }
        if mentions.cilium {
            for r in [
                Reserved::Host,
                Reserved::RemoteNode,
                Reserved::KubeApiserver,
            ] {
                add(
                    NodeKind::Entity(r.key().to_owned()),
                    Peer {
                        labels: Arc::new(r.labels()),
                        ..Peer::default()
                    },
                );
            }
        }
        Self {
            nodes: nodes.into_values().collect(),
        }
    }
}

/// The kinds of owner a pod is named by; a pod owned by anything else (a static pod's Node, a
/// custom resource) is named by itself.
const OWNER_KINDS: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ReplicationController",
];

fn workload_kind(pod: &Pod) -> NodeKind {
    let (kind, name) = pod
        .owner
        .split_once('/')
        .filter(|(kind, _)| OWNER_KINDS.contains(kind))
        .unwrap_or(("Pod", pod.name.as_str()));
    NodeKind::Workload {
        namespace: pod.namespace.clone(),
        name: name.to_owned(),
        kind: kind.to_owned(),
    }
}

/// A pod as a peer; a pod on the host network has its node's identity, seen from elsewhere:
/// `remote-node`.
fn workload_peer(inventory: &Inventory, pod: &Pod) -> Peer {
    if pod.host_network {
        return Peer {
            labels: Arc::new(Reserved::RemoteNode.labels()),
            ip: pod.ips.first().copied(),
            ..Peer::default()
        };
    }
    inventory.pod_peer(pod)
}

/// A name the selector matches: the name itself, or the pattern with every wildcard filled.
fn example_name(s: &FqdnSelector) -> String {
    match s {
        FqdnSelector::Name(n) => n.clone(),
        FqdnSelector::Pattern(p) => p.replace("**.", "x.").replace('*', "x"),
    }
}

/// The address ranges the CIDR predicates cut the IPv4 space (and the IPv6 space, when one is
/// IPv6) into: the longest ranges whose addresses are inside the same predicates (adjacent
/// pieces inside the same ones are one range, as netpol-analyzer merges them).
fn ranges(cidrs: &BTreeSet<Cidr>) -> Vec<(IpAddr, IpAddr)> {
    let mut out = Vec::new();
    for v6 in [false, true] {
        let family: Vec<&Cidr> = cidrs
            .iter()
            .filter(|(net, _)| matches!(net, IpNet::V6(_)) == v6)
            .collect();
        if v6 && family.is_empty() {
            continue;
        }
        let top: u128 = if v6 { u128::MAX } else { u128::from(u32::MAX) };
        let bounds = |n: &IpNet| -> (u128, u128) {
            match n {
                IpNet::V4(n) => (
                    u128::from(u32::from(n.network())),
                    u128::from(u32::from(n.broadcast())),
                ),
                IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
            }
        };
        // Where a piece starts: 0 and after every CIDR's end, at every CIDR's start.
        let mut starts: Vec<u128> = vec![0];
        for (net, except) in &family {
            for n in std::iter::once(net).chain(except.iter()) {
                let (a, b) = bounds(n);
                starts.push(a);
                if b < top {
                    starts.push(b + 1);
                }
            }
        }
        starts.sort_unstable();
        starts.dedup();
        let inside = |x: u128| -> Vec<bool> {
            family
                .iter()
                .map(|(net, except)| {
                    let within = |n: &IpNet| {
                        let (a, b) = bounds(n);
                        a <= x && x <= b
                    };
                    within(net) && !except.iter().any(within)
                })
                .collect()
        };
        let mut pieces: Vec<(u128, u128, Vec<bool>)> = Vec::new();
        for (i, a) in starts.iter().enumerate() {
            let last = starts.get(i + 1).map_or(top, |b| b - 1);
            let member = inside(*a);
            match pieces.last_mut() {
                Some(prev) if prev.2 == member => prev.1 = last,
                _ => pieces.push((*a, last, member)),
            }
        }
        for (a, b, _) in pieces {
            let addr = |x: u128| -> IpAddr {
                if v6 {
                    IpAddr::V6(Ipv6Addr::from(x))
                } else {
                    IpAddr::V4(Ipv4Addr::from(u32::try_from(x).unwrap_or(u32::MAX)))
                }
            };
            out.push((addr(a), addr(b)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn nets(v: &[&str]) -> BTreeSet<Cidr> {
        v.iter().map(|s| (s.parse().unwrap(), Vec::new())).collect()
    }

    #[test]
    fn external_addresses_are_cut_at_every_cidr_boundary() {
        let r = ranges(&nets(&["10.0.0.0/8", "10.1.0.0/16"]));
        let text: Vec<String> = r.iter().map(|(a, b)| format!("{a}-{b}")).collect();
        assert_eq!(
            text,
            [
                "0.0.0.0-9.255.255.255",
                "10.0.0.0-10.0.255.255",
                "10.1.0.0-10.1.255.255",
                "10.2.0.0-10.255.255.255",
                "11.0.0.0-255.255.255.255"
            ]
        );
    }

    #[test]
    fn pieces_inside_the_same_predicates_are_one_range() {
        let cidr: Cidr = (
            "0.0.0.0/0".parse().unwrap(),
            vec![
                "10.0.0.0/9".parse().unwrap(),
                "10.128.0.0/9".parse().unwrap(),
            ],
        );
        let r = ranges(&BTreeSet::from([cidr]));
        let text: Vec<String> = r.iter().map(|(a, b)| format!("{a}-{b}")).collect();
        assert_eq!(
            text,
            [
                "0.0.0.0-9.255.255.255",
                "10.0.0.0-10.255.255.255",
                "11.0.0.0-255.255.255.255"
            ]
        );
    }

    #[test]
    fn no_cidr_is_the_whole_ipv4_space_and_ipv6_only_when_named() {
        let r = ranges(&BTreeSet::new());
        assert_eq!(r.len(), 1);
        let r = ranges(&nets(&["0.0.0.0/0", "2001:db8::/32"]));
        let text: Vec<String> = r.iter().map(|(a, b)| format!("{a}-{b}")).collect();
        assert_eq!(
            text,
            [
                "0.0.0.0-255.255.255.255",
                "::-2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
                "2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
                "2001:db9::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
            ]
        );
    }

    #[test]
    fn patterns_stand_for_a_name_they_match() {
        let s = crate::objects::fqdn::parse("**.example.com").unwrap();
        assert!(s.matches(&example_name(&s)));
        let s = crate::objects::fqdn::parse("*.example.com").unwrap();
        assert!(s.matches(&example_name(&s)));
    }
}
