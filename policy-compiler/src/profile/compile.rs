//! From the model to Cilium objects: one default-deny CiliumNetworkPolicy per workload, one
//! CiliumClusterwideNetworkPolicy per baseline.
//!
//! The emission rules follow docs/semantics.md §11: one peer kind per rule item, explicit
//! protocols, `endPort` for ranges, at most 40 ports per `toPorts` entry and 40 ICMP fields per
//! `icmps` entry, `icmps` never next to `toPorts`, DNS rules only towards the resolver.

use std::collections::{BTreeMap, BTreeSet};

use crate::diagnostic::source::SourceMap;
use crate::objects::cilium::{
    self, CidrRule, CiliumClusterwideNetworkPolicy, CiliumNetworkPolicy, DefaultDenyConfig,
    EgressRule, EndpointSelector, Entity, IcmpField, IcmpRule, IngressRule, L7Rules,
    LabelSelectorRequirement, ObjectMeta, PolicyObject, PortProtocol, PortRule, PortRuleHttp,
    SelectorOperator,
};
use crate::objects::fqdn::FqdnSelector;
use crate::objects::port::{IcmpFamily, L4, Protocol};
use crate::profile::model::{Direction, Model, Rule, Subject, Target};
use crate::profile::syntax::HttpRule;

/// Cilium's limit on `ports` per `toPorts` entry and `fields` per `icmps` entry (§1.6).
pub const MAX_PORTS: usize = 40;

/// The label every compiled object carries.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "netpol");
/// Annotation: `FILE:LINE` of the declaration the object was compiled from.
pub const SOURCE_ANNOTATION: &str = "netpol.dev/source";
/// Annotation: the enforcement mode of a workload (`both`, `ingress`, `egress`, `audit`).
pub const ENFORCE_ANNOTATION: &str = "netpol.dev/enforce";

const NAMESPACE_LABEL: &str = "k8s:io.kubernetes.pod.namespace";

/// Compile a model. Objects come sorted: cluster-wide first (by name), then namespaced (by
/// namespace and name), so output never depends on input order.
pub fn compile(model: &Model, sources: &SourceMap) -> Vec<PolicyObject> {
    let rules = RuleIndex::new(model);
    let mut out = Vec::new();
    for (index, baseline) in model.baselines.iter().enumerate() {
        let subject = Subject::Baseline(index);
        let ingress = ingress_items(model, &rules, subject);
        let egress = egress_items(model, &rules, subject);
        if ingress.is_empty() && egress.is_empty() {
            continue;
        }
        let rule = cilium::Rule {
            description: Some(baseline.description.clone().unwrap_or_else(|| {
                format!(
                    "netpol baseline {}: allows added to the selected pods, posture unchanged",
                    baseline.name
                )
            })),
            endpoint_selector: Some(pods_selector(model, &baseline.pods)),
            // Baselines add allows without switching anyone to default deny
            // (docs/semantics.md §2.3).
            enable_default_deny: Some(DefaultDenyConfig {
                ingress: Some(false),
                egress: Some(false),
            }),
            ingress: non_empty(ingress),
            egress: non_empty(egress),
            ..Default::default()
        };
        out.push(PolicyObject::Ccnp(CiliumClusterwideNetworkPolicy {
            metadata: metadata(&baseline.name, None, sources, baseline.origin, None),
            spec: Some(rule),
            ..Default::default()
        }));
    }
    for (id, service) in model.services.iter().enumerate() {
        let subject = Subject::Service(id);
        let ingress = ingress_items(model, &rules, subject);
        let egress = egress_items(model, &rules, subject);
        let enforce = service.enforce;
        // An enforced direction with nothing allowed still needs an entry to become
        // default-deny: `[{}]` allows nothing (docs/semantics.md §2.1, §2.5).
        let mut ingress = section(ingress, enforce.ingress());
        let egress = section(egress, enforce.egress());
        if ingress.is_none() && egress.is_none() {
            // `audit` with nothing to say: a rule needs one non-empty section (§1.2).
            ingress = Some(vec![IngressRule::default()]);
        }
        let rule = cilium::Rule {
            description: Some(
                service
                    .description
                    .clone()
                    .unwrap_or_else(|| format!("netpol: {}/{}", service.namespace, service.name)),
            ),
            endpoint_selector: Some(EndpointSelector {
                match_labels: Some(
                    service
                        .selector
                        .iter()
                        .map(|(k, v)| (format!("k8s:{k}"), v.clone()))
                        .collect(),
                ),
                match_expressions: None,
            }),
            enable_default_deny: Some(DefaultDenyConfig {
                ingress: Some(enforce.ingress()),
                egress: Some(enforce.egress()),
            }),
            ingress,
            egress,
            ..Default::default()
        };
        out.push(PolicyObject::Cnp(CiliumNetworkPolicy {
            metadata: metadata(
                &service.name,
                Some(&service.namespace),
                sources,
                service.origin,
                Some(enforce.as_str()),
            ),
            spec: Some(rule),
            ..Default::default()
        }));
    }
    out
}

fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

fn section<T: Default>(items: Vec<T>, enforced: bool) -> Option<Vec<T>> {
    match (items.is_empty(), enforced) {
        (false, _) => Some(items),
        (true, true) => Some(vec![T::default()]),
        (true, false) => None,
    }
}

fn metadata(
    name: &str,
    namespace: Option<&str>,
    sources: &SourceMap,
    origin: crate::diagnostic::source::Span,
    enforce: Option<&str>,
) -> ObjectMeta {
    let position = sources.position(origin);
    let mut annotations = BTreeMap::from([(
        SOURCE_ANNOTATION.to_string(),
        format!("{}:{}", position.file, position.line),
    )]);
    if let Some(enforce) = enforce {
        annotations.insert(ENFORCE_ANNOTATION.to_string(), enforce.to_string());
    }
    ObjectMeta {
        name: name.to_string(),
        namespace: namespace.map(str::to_string),
        labels: Some(BTreeMap::from([(
            MANAGED_BY.0.to_string(),
            MANAGED_BY.1.to_string(),
        )])),
        annotations: Some(annotations),
        ..Default::default()
    }
}

/// The model's rules grouped by subject and direction, built once per compilation.
struct RuleIndex<'a> {
    by_subject: std::collections::HashMap<(Subject, Direction), Vec<&'a Rule>>,
    /// The endpoint selector of every service, built once: most peers are services.
    service_peers: Vec<PeerSel>,
}

impl<'a> RuleIndex<'a> {
    fn new(model: &'a Model) -> Self {
        let mut by_subject: std::collections::HashMap<(Subject, Direction), Vec<&'a Rule>> =
            std::collections::HashMap::new();
        for rule in &model.rules {
            by_subject
                .entry((rule.subject, rule.direction))
                .or_default()
                .push(rule);
        }
        let service_peers = (0..model.services.len())
            .map(|id| PeerSel::Endpoints(pods_selector(model, &Target::Service(id))))
            .collect();
        Self {
            by_subject,
            service_peers,
        }
    }

    fn peer(&self, model: &Model, target: &Target) -> PeerSel {
        match target {
            Target::Service(id) => match self.service_peers.get(*id) {
                Some(peer) => peer.clone(),
                None => peer_sel(model, target),
            },
            _ => peer_sel(model, target),
        }
    }

    fn get(&self, subject: Subject, direction: Direction) -> &[&'a Rule] {
        self.by_subject
            .get(&(subject, direction))
            .map_or(&[], Vec::as_slice)
    }
}

/// A peer as Cilium writes it; its variant is the rule field it goes into.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum PeerSel {
    Endpoints(EndpointSelector),
    Entity(Entity),
    Cidr(CidrRule),
    Fqdn(cilium::FqdnSelector),
}

impl PeerSel {
    fn kind(&self) -> u8 {
        match self {
            PeerSel::Endpoints(_) => 0,
            PeerSel::Entity(_) => 1,
            PeerSel::Cidr(_) => 2,
            PeerSel::Fqdn(_) => 3,
        }
    }
}

/// HTTP rules and DNS names allowed on one set of ports.
type L7Allowance = (Vec<HttpRule>, BTreeSet<FqdnSelector>);

/// What one rule item allows towards its peers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Allowance {
    /// Empty: all ports and protocols.
    ports: BTreeSet<L4>,
    http: Vec<HttpRule>,
    dns: BTreeSet<FqdnSelector>,
}

/// Rule items of one subject and direction: merged per peer, then peers of one kind that allow
/// the same thing are listed in one item.
fn items(
    model: &Model,
    index: &RuleIndex<'_>,
    subject: Subject,
    direction: Direction,
) -> Vec<(Vec<PeerSel>, Allowance)> {
    let rules = index.get(subject, direction);
    // Per peer: the plain ports (None once an L3-only rule covers everything), and the L7
    // allowances, which stay separate items.
    let mut plain: BTreeMap<PeerSel, Option<BTreeSet<L4>>> = BTreeMap::new();
    let mut l7: BTreeMap<(PeerSel, BTreeSet<L4>), L7Allowance> = BTreeMap::new();
    for rule in rules.iter().copied() {
        let peer = index.peer(model, &rule.peer);
        if rule.http.is_empty() && rule.dns.is_empty() {
            let entry = plain.entry(peer).or_insert_with(|| Some(BTreeSet::new()));
            match (entry.as_mut(), rule.ports.is_empty()) {
                (_, true) => *entry = None,
                (Some(ports), false) => ports.extend(rule.ports.iter().copied()),
                (None, false) => {}
            }
        } else {
            let entry = l7.entry((peer, rule.ports.clone())).or_default();
            for h in &rule.http {
                if !entry.0.contains(h) {
                    entry.0.push(h.clone());
                }
            }
            entry.1.extend(rule.dns.iter().cloned());
        }
    }
    let mut grouped: BTreeMap<(u8, Allowance), Vec<PeerSel>> = BTreeMap::new();
    for (peer, ports) in plain {
        let allowance = Allowance {
            ports: ports.unwrap_or_default(),
            http: Vec::new(),
            dns: BTreeSet::new(),
        };
        grouped
            .entry((peer.kind(), allowance))
            .or_default()
            .push(peer);
    }
    for ((peer, ports), (mut http, dns)) in l7 {
        http.sort();
        let allowance = Allowance { ports, http, dns };
        grouped
            .entry((peer.kind(), allowance))
            .or_default()
            .push(peer);
    }
    grouped
        .into_iter()
        .map(|((_, allowance), peers)| (peers, allowance))
        .collect()
}

/// A rule item of one direction: [`IngressRule`] or [`EgressRule`], which differ only in the
/// names of their peer fields.
trait RuleItem: Default + Clone {
    fn add_peer(&mut self, peer: PeerSel);
    fn set_ports(&mut self, to_ports: Vec<PortRule>);
    fn set_icmps(&mut self, icmps: Vec<IcmpRule>);
}

impl RuleItem for IngressRule {
    fn add_peer(&mut self, peer: PeerSel) {
        match peer {
            PeerSel::Endpoints(s) => self.from_endpoints.get_or_insert_with(Vec::new).push(s),
            PeerSel::Entity(e) => self.from_entities.get_or_insert_with(Vec::new).push(e),
            PeerSel::Cidr(c) => self.from_cidr_set.get_or_insert_with(Vec::new).push(c),
            // The model never puts DNS names on ingress.
            PeerSel::Fqdn(_) => {}
        }
    }

    fn set_ports(&mut self, to_ports: Vec<PortRule>) {
        self.to_ports = Some(to_ports);
    }

    fn set_icmps(&mut self, icmps: Vec<IcmpRule>) {
        self.icmps = Some(icmps);
    }
}

impl RuleItem for EgressRule {
    fn add_peer(&mut self, peer: PeerSel) {
        match peer {
            PeerSel::Endpoints(s) => self.to_endpoints.get_or_insert_with(Vec::new).push(s),
            PeerSel::Entity(e) => self.to_entities.get_or_insert_with(Vec::new).push(e),
            PeerSel::Cidr(c) => self.to_cidr_set.get_or_insert_with(Vec::new).push(c),
            PeerSel::Fqdn(f) => self.to_fqdns.get_or_insert_with(Vec::new).push(f),
        }
    }

    fn set_ports(&mut self, to_ports: Vec<PortRule>) {
        self.to_ports = Some(to_ports);
    }

    fn set_icmps(&mut self, icmps: Vec<IcmpRule>) {
        self.icmps = Some(icmps);
    }
}

fn ingress_items(model: &Model, index: &RuleIndex<'_>, subject: Subject) -> Vec<IngressRule> {
    rule_items(model, index, subject, Direction::Ingress)
}

fn egress_items(model: &Model, index: &RuleIndex<'_>, subject: Subject) -> Vec<EgressRule> {
    rule_items(model, index, subject, Direction::Egress)
}

fn rule_items<T: RuleItem>(
    model: &Model,
    index: &RuleIndex<'_>,
    subject: Subject,
    direction: Direction,
) -> Vec<T> {
    let mut out = Vec::new();
    for (peers, allowance) in items(model, index, subject, direction) {
        let mut base = T::default();
        for peer in peers {
            base.add_peer(peer);
        }
        // `icmps` and `toPorts` cannot share an item (§1.6): one item each, same peers.
        let (to_ports, icmps) = l4_fields(&allowance);
        match (to_ports, icmps) {
            (None, None) => out.push(base),
            (to_ports, icmps) => {
                if let Some(to_ports) = to_ports {
                    let mut item = base.clone();
                    item.set_ports(to_ports);
                    out.push(item);
                }
                if let Some(icmps) = icmps {
                    let mut item = base;
                    item.set_icmps(icmps);
                    out.push(item);
                }
            }
        }
    }
    out
}

fn l4_fields(allowance: &Allowance) -> (Option<Vec<PortRule>>, Option<Vec<IcmpRule>>) {
    let ports: Vec<PortProtocol> = allowance
        .ports
        .iter()
        .filter_map(|l4| match l4 {
            L4::Port(range) => Some(PortProtocol {
                port: range.first.to_string(),
                end_port: (range.last > range.first).then_some(i32::from(range.last)),
                protocol: Some(match range.protocol {
                    Protocol::Tcp => cilium::Protocol::Tcp,
                    Protocol::Udp => cilium::Protocol::Udp,
                    Protocol::Sctp => cilium::Protocol::Sctp,
                }),
            }),
            L4::Icmp(_) => None,
        })
        .collect();
    let icmps: Vec<IcmpField> = allowance
        .ports
        .iter()
        .filter_map(|l4| match l4 {
            L4::Icmp(t) => Some(IcmpField {
                icmp_type: cilium::IcmpType::Number(t.kind),
                family: Some(match t.family {
                    IcmpFamily::V4 => cilium::IcmpFamily::IPv4,
                    IcmpFamily::V6 => cilium::IcmpFamily::IPv6,
                }),
            }),
            L4::Port(_) => None,
        })
        .collect();
    let rules = l7_rules(allowance);
    let to_ports = (!ports.is_empty()).then(|| {
        ports
            .chunks(MAX_PORTS)
            .map(|chunk| PortRule {
                ports: Some(chunk.to_vec()),
                rules: rules.clone(),
                ..Default::default()
            })
            .collect()
    });
    let icmps = (!icmps.is_empty()).then(|| {
        icmps
            .chunks(MAX_PORTS)
            .map(|chunk| IcmpRule {
                fields: Some(chunk.to_vec()),
            })
            .collect()
    });
    (to_ports, icmps)
}

fn l7_rules(allowance: &Allowance) -> Option<L7Rules> {
    if !allowance.dns.is_empty() {
        return Some(L7Rules {
            dns: Some(allowance.dns.iter().map(fqdn_selector).collect()),
            ..Default::default()
        });
    }
    if !allowance.http.is_empty() {
        return Some(L7Rules {
            http: Some(
                allowance
                    .http
                    .iter()
                    .map(|h| PortRuleHttp {
                        path: h.path.clone(),
                        method: h.method.clone(),
                        host: h.host.clone(),
                        headers: (!h.headers.is_empty()).then(|| h.headers.clone()),
                        header_matches: None,
                    })
                    .collect(),
            ),
            ..Default::default()
        });
    }
    None
}

fn fqdn_selector(sel: &FqdnSelector) -> cilium::FqdnSelector {
    match sel {
        FqdnSelector::Name(n) => cilium::FqdnSelector {
            match_name: Some(n.clone()),
            match_pattern: None,
        },
        FqdnSelector::Pattern(p) => cilium::FqdnSelector {
            match_name: None,
            match_pattern: Some(p.clone()),
        },
    }
}

fn peer_sel(model: &Model, target: &Target) -> PeerSel {
    match target {
        Target::Entity(e) => PeerSel::Entity(*e),
        Target::Cidr { cidr, except } => PeerSel::Cidr(CidrRule {
            cidr: Some(cidr.to_string()),
            except: (!except.is_empty()).then(|| except.iter().map(ToString::to_string).collect()),
            ..Default::default()
        }),
        Target::Fqdn(sel) => PeerSel::Fqdn(fqdn_selector(sel)),
        Target::Service(_) | Target::Pods { .. } => {
            PeerSel::Endpoints(pods_selector(model, target))
        }
    }
}

/// Pods as an endpoint selector. The namespace is always explicit, so the selector means the
/// same in a CNP and a CCNP (docs/semantics.md §3.3: a namespace key is left as written).
fn pods_selector(model: &Model, target: &Target) -> EndpointSelector {
    let (namespaces, labels): (Vec<String>, Vec<(String, String)>) = match target {
        Target::Service(id) => match model.services.get(*id) {
            Some(s) => (vec![s.namespace.clone()], s.selector.clone()),
            None => (Vec::new(), Vec::new()),
        },
        Target::Pods { namespaces, labels } => (namespaces.clone(), labels.clone()),
        _ => (Vec::new(), Vec::new()),
    };
    let mut match_labels: BTreeMap<String, String> = labels
        .into_iter()
        .map(|(k, v)| (format!("k8s:{k}"), v))
        .collect();
    let mut expressions = Vec::new();
    match namespaces.as_slice() {
        [] => expressions.push(LabelSelectorRequirement {
            key: NAMESPACE_LABEL.to_string(),
            operator: SelectorOperator::Exists,
            values: None,
        }),
        [one] => {
            match_labels.insert(NAMESPACE_LABEL.to_string(), one.clone());
        }
        many => expressions.push(LabelSelectorRequirement {
            key: NAMESPACE_LABEL.to_string(),
            operator: SelectorOperator::In,
            values: Some(many.to_vec()),
        }),
    }
    EndpointSelector {
        match_labels: (!match_labels.is_empty()).then_some(match_labels),
        match_expressions: (!expressions.is_empty()).then_some(expressions),
    }
}
