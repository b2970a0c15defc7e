//! `netpol suggest`: the smallest additions that let the observed flows through.
//!
//! ```text
//! flows ──verify's Judge──> flows the policies drop (every flow when there is no policy)
//!   ──Collector (by identity pair, protocol and port)──> Needs {src, dst, port, side(s) to open}
//!   ──plan──> statements under the profile services the pods belong to (their own names,
//!   │         port names, group names); new services for pods of a profiled namespace no
//!   │         service selects                                 ──> unified diff (`git apply`)
//!   └─────> CiliumNetworkPolicy per workload of a namespace without a profile (or
//!           `--format cnp`)                                   ──> YAML stream
//! ```
//!
//! A new service is default-deny: the collector also keeps, for pods of profiled namespaces,
//! the flows that pass only because nothing enforces them, and the plan states them all.
//!
//! What is suggested is never broader than what was observed, unless `generalize` asks for
//! it: pods are selected by all their own labels (or named by the profile service that
//! selects them), addresses by `/32` (`/128`), ports one by one (a port name only when every
//! port of the name was seen), peers outside the cluster by the DNS name the flow carries.
//! With `generalize`: addresses become their `/24` (`/64`), a port its name (every port of the
//! name), pods their workload label (`app.kubernetes.io/name`, `app`, `k8s-app` or `name`).
//!
//! A policy that is written for a workload that already has policies changes nothing but
//! what it adds (`enableDefaultDeny: false` both ways); without any policy at all (bootstrap),
//! each workload's policy is default-deny in the directions it has rules for.

mod patch;
mod plan;

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use rustc_hash::FxHashMap;

use crate::engine::eval::{Point, Reason};
use crate::engine::identity::{Labels, NamedPort};
use crate::engine::index::Evaluator;
use crate::flow::{Endpoint, Flow};
use crate::objects::Proto;
use crate::objects::cilium::Entity;
use crate::report::verify::Judge;

pub use patch::{Insertion, apply, insertions, render_patch};
pub use plan::{
    Format, NewService, Options, Plan, ProfileNamespace, ProfileService, Profiles, Resolver,
    ServiceEdit, Statement, plan,
};

/// One end of a needed connection, as a policy can name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum End {
    /// Pods of a namespace with these labels (their own Kubernetes labels, sorted).
    Pods {
        namespace: String,
        labels: Vec<(String, String)>,
    },
    /// A reserved identity: `host`, `remote-node`, `kube-apiserver`, …
    Entity(Entity),
    /// Addresses outside the cluster.
    Cidr(IpNet),
    /// A peer outside the cluster by the DNS name the flow carries (destinations only).
    Dns(String),
}

impl End {
    /// `media/app.kubernetes.io/name=sonarr`, `host`, `203.0.113.7/32`, `api.example.com`.
    pub fn display(&self) -> String {
        match self {
            Self::Pods { namespace, labels } => {
                let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{namespace}/{}", l.join(","))
            }
            Self::Entity(e) => e.as_str().to_owned(),
            Self::Cidr(net) => net.to_string(),
            Self::Dns(name) => name.clone(),
        }
    }
}

/// Which labels name a workload, most specific first (`--generalize` keeps the first found).
const WORKLOAD_KEYS: &[&str] = &["app.kubernetes.io/name", "app", "k8s-app", "name"];

/// The end a policy names for a flow's endpoint; `Err` says why it cannot be named.
/// `source`: the endpoint opens the connection (a peer outside the cluster is then an address,
/// never a DNS name: `toFQDNs` has no `from` form).
fn end_of(e: &Endpoint, source: bool, generalize: bool) -> Result<End, String> {
    let labels = &e.peer.labels;
    if let Some(namespace) = labels.namespace() {
        let mut own = pod_labels(labels);
        if own.is_empty()
            && let Some(sa) = labels.get(Some("k8s"), SERVICE_ACCOUNT)
        {
            own.push((SERVICE_ACCOUNT.to_owned(), sa.to_owned()));
        }
        if own.is_empty() {
            return Err(format!(
                "`{}` has no labels to select it by (give --inventory, or flows with pod labels)",
                e.display()
            ));
        }
        if generalize
            && let Some(key) = WORKLOAD_KEYS
                .iter()
                .find(|k| own.iter().any(|(own, _)| own == *k))
        {
            own.retain(|(k, _)| k == key);
        }
        return Ok(End::Pods {
            namespace: namespace.to_owned(),
            labels: own,
        });
    }
    // The API server on a node carries the node's label too: it is the API server.
    for (key, entity) in [
        ("kube-apiserver", Entity::KubeApiserver),
        ("host", Entity::Host),
        ("remote-node", Entity::RemoteNode),
        ("health", Entity::Health),
        ("ingress", Entity::Ingress),
        ("init", Entity::Init),
        ("unmanaged", Entity::Unmanaged),
    ] {
        if labels.reserved(key) {
            return Ok(End::Entity(entity));
        }
    }
    if let Some(name) = e.peer.names.first().filter(|_| !source) {
        return Ok(End::Dns(name.clone()));
    }
    match e.peer.ip {
        Some(ip) => Ok(End::Cidr(address(ip, generalize))),
        None => Err(format!(
            "`{}` is outside the cluster and the flow carries no address or name",
            e.display()
        )),
    }
}

/// An address as a CIDR: itself, or with `generalize` its `/24` (IPv6: `/64`).
fn address(ip: IpAddr, generalize: bool) -> IpNet {
    let len = match (ip, generalize) {
        (IpAddr::V4(_), false) => 32,
        (IpAddr::V4(_), true) => 24,
        (IpAddr::V6(_), false) => 128,
        (IpAddr::V6(_), true) => 64,
    };
    IpNet::new(ip, len).map_or_else(|_| IpNet::from(ip), |n| n.trunc())
}

const SERVICE_ACCOUNT: &str = "io.cilium.k8s.policy.serviceaccount";

/// A pod's own Kubernetes labels, as its identity carries them: without the namespace, the
/// namespace's labels, the service account and the cluster, which Cilium adds.
pub fn pod_labels(labels: &Labels) -> Vec<(String, String)> {
    labels
        .iter()
        .filter(|l| {
            l.source == "k8s"
                && l.key != "io.kubernetes.pod.namespace"
                && !l.key.starts_with("io.cilium.k8s.")
        })
        .map(|l| (l.key.clone(), l.value.clone()))
        .collect()
}

/// What must open at one enforcement point for a flow to pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Side {
    /// Nothing: this side lets it through.
    Open,
    /// This side lets it through only because nothing enforces the direction (no policy, or
    /// none default-deny): once the pods are declared as a profile service, an allow rule.
    Unenforced,
    /// An allow rule.
    Add,
    /// A deny rule drops it: no allow can let it through.
    Denied,
    /// The allowing rules require mutual authentication the agents cannot do.
    Auth,
}

fn side(p: &Point, declarable: bool) -> Side {
    if p.allows() {
        return match p.reason {
            Some(Reason::NoPolicy | Reason::NotDefaultDeny) if declarable => Side::Unenforced,
            _ => Side::Open,
        };
    }
    match p.reason {
        Some(Reason::DeniedByRule) => Side::Denied,
        Some(Reason::AuthRequired) => Side::Auth,
        _ => Side::Add,
    }
}

/// A connection the flows need and the policies do not allow: its two ends, in the direction
/// it is opened, and the enforcement points that must allow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub src: End,
    pub dst: End,
    pub proto: Proto,
    /// The destination port, or the ICMP type.
    pub port: u16,
    /// The source's egress must allow it.
    pub egress: bool,
    /// The destination's ingress must allow it.
    pub ingress: bool,
    /// The source's egress lets it through only because nothing enforces it there (pods of a
    /// profiled namespace no service declares): declaring them as a service must allow it.
    pub egress_unenforced: bool,
    /// The same for the destination's ingress.
    pub ingress_unenforced: bool,
    /// Flow records that need it.
    pub flows: usize,
    /// How reports name the ends (`media/Deployment/sonarr`).
    pub src_name: String,
    pub dst_name: String,
    /// The destination's container ports by name, when known (for `generalize`).
    pub dst_ports: Arc<Vec<NamedPort>>,
}

/// Dropped flows that no allow can let through, or that cannot be named, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unsuggested {
    pub src: String,
    pub dst: String,
    /// `443/tcp`.
    pub port: String,
    pub why: String,
    pub flows: usize,
}

/// What the flows need.
#[derive(Debug, Clone, Default)]
pub struct Needs {
    /// Sorted by source, destination, protocol and port; each once.
    pub needs: Vec<Need>,
    pub unsuggested: Vec<Unsuggested>,
    /// Flow records read.
    pub flows: usize,
    /// Flow records the policies drop (with no policy: every flow between pods).
    pub dropped: usize,
    /// No policy at all: every flow is a need, and the policies written are default-deny.
    pub bootstrap: bool,
    /// The pods seen in the flows in the namespaces services may be declared in, by namespace
    /// and own labels (the inventory's are added by the caller): what a new service's
    /// selector must tell apart.
    pub pods: std::collections::BTreeSet<(String, Vec<(String, String)>)>,
}

/// An endpoint as a cheap key: its shared label set (by address), and, outside the cluster,
/// its address and first name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EndKey {
    labels: usize,
    ip: Option<IpAddr>,
    name: Option<String>,
}

impl EndKey {
    fn of(e: &Endpoint) -> Self {
        let pod = e.peer.labels.namespace().is_some();
        Self {
            labels: Arc::as_ptr(&e.peer.labels) as usize,
            ip: e.peer.ip.filter(|_| !pod),
            name: if pod {
                None
            } else {
                e.peer.names.first().cloned()
            },
        }
    }
}

type Key = (EndKey, EndKey, Option<Proto>, u16, Side, Side);

#[derive(Debug)]
struct Acc {
    /// Keeps the label sets whose addresses are in the key.
    _held: (Arc<Labels>, Arc<Labels>),
    ends: Result<(End, End), String>,
    proto: Option<Proto>,
    port: u16,
    port_text: String,
    sides: (Side, Side),
    flows: usize,
    src_name: String,
    dst_name: String,
    dst_ports: Arc<Vec<NamedPort>>,
}

/// Judges flows one at a time, as `verify` does, and keeps what the dropped ones need:
/// memory is bounded by the distinct connections and needs, never by the number of records.
pub struct Collector<'a> {
    judge: Judge<Evaluator<'a>>,
    bootstrap: bool,
    generalize: bool,
    /// Ingress from the local node needs no rule (`allow-localhost`, Cilium's default): the
    /// kubelet's probes are not suggested when bootstrapping.
    pub localhost_allowed: bool,
    /// Namespaces with a profile, where pods no service declares may become services: their
    /// flows that pass only because nothing enforces them are kept too (see [`Need`]).
    pub declarable: std::collections::BTreeSet<String>,
    /// Label sets of the pods seen in `declarable` namespaces (by address).
    seen: FxHashMap<usize, Arc<Labels>>,
    accs: FxHashMap<Key, Acc>,
    flows: usize,
    dropped: usize,
}

impl std::fmt::Debug for Collector<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("flows", &self.flows)
            .field("dropped", &self.dropped)
            .field("needs", &self.accs.len())
            .finish_non_exhaustive()
    }
}

impl<'a> Collector<'a> {
    /// `bootstrap`: there is no policy at all, every flow between pods is a need.
    pub fn new(evaluator: Evaluator<'a>, bootstrap: bool, generalize: bool) -> Self {
        Self {
            judge: Judge::new(evaluator),
            bootstrap,
            generalize,
            localhost_allowed: true,
            declarable: std::collections::BTreeSet::new(),
            seen: FxHashMap::default(),
            accs: FxHashMap::default(),
            flows: 0,
            dropped: 0,
        }
    }

    /// Judge one flow and keep what it needs.
    pub fn push(&mut self, flow: &Flow) {
        let (view, judged) = self.judge.judge(flow);
        self.flows += 1;
        let d = &judged.decision;
        let hairpin = d.egress.reason == Some(Reason::Hairpin);
        let sides = if hairpin {
            (Side::Open, Side::Open)
        } else if self.bootstrap {
            let pod = |e: &Endpoint| {
                if e.peer.labels.namespace().is_some() {
                    Side::Add
                } else {
                    Side::Open
                }
            };
            let from_host = self.localhost_allowed && view.src.peer.is_host();
            (
                pod(view.src),
                if from_host { Side::Open } else { pod(view.dst) },
            )
        } else {
            (
                side(&d.egress, self.is_declarable(view.src)),
                side(&d.ingress, self.is_declarable(view.dst)),
            )
        };
        if !self.declarable.is_empty() {
            for e in [view.src, view.dst] {
                if self.is_declarable(e) {
                    let labels = &e.peer.labels;
                    self.seen
                        .entry(Arc::as_ptr(labels) as usize)
                        .or_insert_with(|| labels.clone());
                }
            }
        }
        let open = |s: Side| matches!(s, Side::Open | Side::Unenforced);
        if sides == (Side::Open, Side::Open) {
            return;
        }
        if !(open(sides.0) && open(sides.1)) {
            self.dropped += 1;
        }
        let key = (
            EndKey::of(view.src),
            EndKey::of(view.dst),
            view.proto,
            view.port,
            sides.0,
            sides.1,
        );
        let generalize = self.generalize;
        let acc = self.accs.entry(key).or_insert_with(|| {
            let ends = end_of(view.src, true, generalize)
                .and_then(|s| Ok((s, end_of(view.dst, false, generalize)?)));
            Acc {
                _held: (view.src.peer.labels.clone(), view.dst.peer.labels.clone()),
                ends,
                proto: view.proto,
                port: view.port,
                port_text: view.port_text(),
                sides,
                flows: 0,
                src_name: view.src.display(),
                dst_name: view.dst.display(),
                dst_ports: view.dst.peer.named_ports.clone(),
            }
        });
        acc.flows += 1;
    }

    fn is_declarable(&self, e: &Endpoint) -> bool {
        !self.declarable.is_empty()
            && e.peer
                .labels
                .namespace()
                .is_some_and(|ns| self.declarable.contains(ns))
    }

    /// What the flows need, merged and sorted.
    pub fn finish(self) -> Needs {
        let mut needs: std::collections::BTreeMap<(End, End, Proto, u16), Need> =
            std::collections::BTreeMap::new();
        let mut unsuggested: std::collections::BTreeMap<(String, String, String, String), usize> =
            std::collections::BTreeMap::new();
        for acc in self.accs.into_values() {
            let passes = matches!(acc.sides.0, Side::Open | Side::Unenforced)
                && matches!(acc.sides.1, Side::Open | Side::Unenforced);
            let why = match (acc.sides, &acc.ends, acc.proto) {
                ((Side::Denied, _) | (_, Side::Denied), _, _) => Some(
                    "a deny rule drops it: no allow can let it through (remove the deny first)"
                        .to_owned(),
                ),
                ((Side::Auth, _) | (_, Side::Auth), _, _) => Some(
                    "the rules that allow it require mutual authentication, which the agents cannot do"
                        .to_owned(),
                ),
                (_, Err(why), _) => Some(why.clone()),
                (_, _, None | Some(Proto::Other(_))) => Some(
                    "its protocol cannot be written in a port rule (TCP, UDP, SCTP, ICMP only)"
                        .to_owned(),
                ),
                (_, _, Some(p)) if !p.is_icmp() && acc.port == 0 => {
                    Some("the flow has no destination port".to_owned())
                }
                _ => None,
            };
            if let Some(why) = why {
                if passes {
                    // It passes today: nothing to say unless its pods become a service.
                    continue;
                }
                *unsuggested
                    .entry((acc.src_name, acc.dst_name, acc.port_text, why))
                    .or_default() += acc.flows;
                continue;
            }
            let (Ok((src, dst)), Some(proto)) = (acc.ends, acc.proto) else {
                continue;
            };
            let need = needs
                .entry((src.clone(), dst.clone(), proto, acc.port))
                .or_insert_with(|| Need {
                    src,
                    dst,
                    proto,
                    port: acc.port,
                    egress: false,
                    ingress: false,
                    egress_unenforced: false,
                    ingress_unenforced: false,
                    flows: 0,
                    src_name: acc.src_name.clone(),
                    dst_name: acc.dst_name.clone(),
                    dst_ports: acc.dst_ports.clone(),
                });
            need.egress |= acc.sides.0 == Side::Add;
            need.ingress |= acc.sides.1 == Side::Add;
            need.egress_unenforced |= acc.sides.0 == Side::Unenforced;
            need.ingress_unenforced |= acc.sides.1 == Side::Unenforced;
            need.flows += acc.flows;
            // The names are the smallest of those seen, whatever the order of the input.
            need.src_name = need.src_name.clone().min(acc.src_name);
            need.dst_name = need.dst_name.clone().min(acc.dst_name);
        }
        Needs {
            needs: needs.into_values().collect(),
            unsuggested: unsuggested
                .into_iter()
                .map(|((src, dst, port, why), flows)| Unsuggested {
                    src,
                    dst,
                    port,
                    why,
                    flows,
                })
                .collect(),
            flows: self.flows,
            dropped: self.dropped,
            bootstrap: self.bootstrap,
            pods: self
                .seen
                .values()
                .filter_map(|l| Some((l.namespace()?.to_owned(), pod_labels(l))))
                .collect(),
        }
    }
}

/// `1 flow`, `3 flows`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One line: what was read, what was dropped, what is suggested.
pub fn headline(needs: &Needs, plan: &Plan) -> String {
    let dropped = if needs.bootstrap {
        format!(
            "no policy at all: {} between pods",
            count(needs.dropped, "flow", "flows")
        )
    } else {
        format!("{} would be dropped", count(needs.dropped, "flow", "flows"))
    };
    let services: std::collections::BTreeSet<usize> =
        plan.edits.iter().map(|e| e.service).collect();
    let mut parts = Vec::new();
    if !plan.new_services.is_empty() {
        parts.push(count(
            plan.new_services.len(),
            "new profile service",
            "new profile services",
        ));
    }
    if !plan.edits.is_empty() {
        parts.push(format!(
            "{} under {}",
            count(plan.statement_count(), "statement", "statements"),
            count(services.len(), "profile service", "profile services")
        ));
    }
    if !plan.policies.is_empty() {
        parts.push(count(
            plan.policies.len(),
            "CiliumNetworkPolicy",
            "CiliumNetworkPolicies",
        ));
    }
    let suggested = if parts.is_empty() {
        "nothing to suggest".to_owned()
    } else {
        format!("suggested: {}", parts.join(" and "))
    };
    format!(
        "netpol suggest: {} read, {dropped}; {suggested}",
        count(needs.flows, "flow", "flows")
    )
}

/// What `suggest` prints: a comment with the headline; with [`Format::Profile`] the unified
/// diff of the profiles (statements that cannot be placed by line follow as comments, with
/// where they go); then the CiliumNetworkPolicies as a YAML stream.
pub fn render(needs: &Needs, plan: &Plan, profiles: &Profiles, format: Format) -> String {
    use std::fmt::Write as _;
    let mut out = format!("# {}\n", headline(needs, plan));
    if format == Format::Profile {
        let (placed, unplaced) = insertions(plan, profiles);
        out.push_str(&render_patch(profiles, &plan.services, &placed));
        for u in unplaced {
            let Some(s) = plan.services.get(u.service) else {
                continue;
            };
            let file = profiles.files.get(s.file).map_or("", |f| f.name.as_str());
            if s.new {
                let _ = writeln!(out, "# {file}: add under `services:`; {}:", u.why);
            } else {
                let _ = writeln!(
                    out,
                    "# {file}: add under `allow:` of service `{}` (line {}); {}:",
                    s.name,
                    s.line + 1,
                    u.why
                );
            }
            for l in &u.lines {
                let _ = writeln!(out, "#   {l}");
            }
        }
        if !plan.policies.is_empty() {
            let _ = writeln!(
                out,
                "\n# {} for workloads no profile declares:",
                count(
                    plan.policies.len(),
                    "CiliumNetworkPolicy",
                    "CiliumNetworkPolicies"
                )
            );
        }
    }
    for (i, p) in plan.policies.iter().enumerate() {
        if i > 0 || format == Format::Profile {
            out.push_str("---\n");
        }
        let value = serde_json::to_value(p).unwrap_or_default();
        out.push_str(&crate::profile::emit::yaml(&value));
    }
    out
}
