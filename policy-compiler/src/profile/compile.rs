//! From the model to Cilium objects: one default-deny CiliumNetworkPolicy per workload, one
//! CiliumClusterwideNetworkPolicy per baseline.
//!
//! The emission rules follow docs/semantics.md §11: one peer kind per rule item, explicit
//! protocols, `endPort` for ranges, at most 40 ports per `toPorts` entry and 40 ICMP fields per
//! `icmps` entry, `icmps` never next to `toPorts`, DNS rules only towards the resolver.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::diagnostic::source::{SourceMap, Span};
use crate::objects::cilium::{
    self, CidrRule, CiliumClusterwideNetworkPolicy, CiliumNetworkPolicy, DefaultDenyConfig,
    EgressDenyRule, EgressRule, EndpointSelector, Entity, IcmpField, IcmpRule, IngressDenyRule,
    IngressRule, L7Rules, LabelSelectorRequirement, ObjectMeta, PolicyObject, PortDenyRule,
    PortProtocol, PortRule, PortRuleHttp, SelectorOperator,
};
use crate::objects::fqdn::FqdnSelector;
use crate::objects::port::{IcmpFamily, L4, Protocol};
use crate::profile::model::{
    Direction, Model, NAMESPACE_POLICY, NamespaceDef, Rule, Subject, Target,
};
use crate::profile::syntax::Enforce;
use crate::profile::syntax::HttpRule;

/// Cilium's limit on `ports` per `toPorts` entry and `fields` per `icmps` entry (§1.6).
pub const MAX_PORTS: usize = 40;

/// The label every compiled object carries.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "netpol");
/// Annotation: `FILE:LINE` of the declaration the object was compiled from.
pub const SOURCE_ANNOTATION: &str = "netpol.dev/source";
/// Annotation: per rule item (`egress[1]`), the `FILE:LINE,LINE` of the statements it merges.
pub const RULE_SOURCES_ANNOTATION: &str = "netpol.dev/rule-sources";
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
        let sections = Sections::of(model, &rules, subject);
        if sections.is_empty() {
            continue;
        }
        let rule_sources = sections.sources(sources);
        let (ingress, egress, ingress_deny, egress_deny) = sections.into_rules();
        let rule = cilium::Rule {
            description: Some(baseline.description.clone().unwrap_or_else(|| {
                let what = match (
                    ingress.is_empty() && egress.is_empty(),
                    ingress_deny.is_some() || egress_deny.is_some(),
                ) {
                    (false, false) => "allows",
                    (true, _) => "denies",
                    (false, true) => "allows and denies",
                };
                format!(
                    "netpol baseline {}: {what} added to the selected pods, posture unchanged",
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
            ingress_deny,
            egress_deny,
            ..Default::default()
        };
        out.push(PolicyObject::Ccnp(CiliumClusterwideNetworkPolicy {
            metadata: metadata(
                &baseline.name,
                None,
                sources,
                baseline.origin,
                None,
                rule_sources,
            ),
            spec: Some(rule),
            ..Default::default()
        }));
    }
    for (index, def) in model.namespaces.iter().enumerate() {
        out.push(namespace_policy(model, &rules, index, def, sources));
    }
    for (id, service) in model.services.iter().enumerate() {
        if service.host_network {
            // Its pods carry the node's identity: no pod policy applies to them.
            continue;
        }
        let subject = Subject::Service(id);
        let sections = Sections::of(model, &rules, subject);
        let rule_sources = sections.sources(sources);
        let (ingress, egress, ingress_deny, egress_deny) = sections.into_rules();
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
            ingress_deny,
            egress_deny,
            ..Default::default()
        };
        out.push(PolicyObject::Cnp(CiliumNetworkPolicy {
            metadata: metadata(
                &service.name,
                Some(&service.namespace),
                sources,
                service.origin,
                Some(enforce.as_str()),
                rule_sources,
            ),
            spec: Some(rule),
            ..Default::default()
        }));
    }
    out
}

/// The policy every pod of a namespace gets: default deny (both ways, one, or `audit`: none),
/// DNS to the resolver and the kubelet's probes, and the namespace's deny statements.
fn namespace_policy(
    model: &Model,
    rules: &RuleIndex<'_>,
    index: usize,
    def: &NamespaceDef,
    sources: &SourceMap,
) -> PolicyObject {
    let subject = Subject::Namespace(index);
    let enforce = def.default_deny;
    let ingress_enforced = enforce.is_some_and(|e| e.ingress());
    let egress_enforced = enforce.is_some_and(|e| e.egress());
    let sections = Sections::of(model, rules, subject);
    let rule_sources = sections.sources(sources);
    let (ingress, egress, ingress_deny, egress_deny) = sections.into_rules();
    let mut ingress = section(ingress, ingress_enforced);
    let egress = section(egress, egress_enforced);
    if ingress.is_none() && egress.is_none() && ingress_deny.is_none() && egress_deny.is_none() {
        // A rule needs one non-empty section (§1.2).
        ingress = Some(vec![IngressRule::default()]);
    }
    let what = match enforce {
        Some(Enforce::Audit) => "default deny in audit (nothing enforced)".to_string(),
        Some(e) => format!("default deny ({})", e.as_str()),
        None => "deny statements".to_string(),
    };
    let rule = cilium::Rule {
        description: Some(format!(
            "netpol: every pod of namespace {}, declared or not: {what}; DNS and the kubelet's probes allowed",
            def.namespace
        )),
        endpoint_selector: Some(EndpointSelector::default()),
        enable_default_deny: Some(DefaultDenyConfig {
            ingress: Some(ingress_enforced),
            egress: Some(egress_enforced),
        }),
        ingress,
        egress,
        ingress_deny,
        egress_deny,
        ..Default::default()
    };
    PolicyObject::Cnp(CiliumNetworkPolicy {
        metadata: metadata(
            NAMESPACE_POLICY,
            Some(&def.namespace),
            sources,
            def.origin,
            enforce.map(Enforce::as_str),
            rule_sources,
        ),
        spec: Some(rule),
        ..Default::default()
    })
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
    origin: Span,
    enforce: Option<&str>,
    rule_sources: Option<String>,
) -> ObjectMeta {
    let position = sources.position(origin);
    let mut annotations = BTreeMap::from([(
        SOURCE_ANNOTATION.to_string(),
        format!("{}:{}", position.file, position.line),
    )]);
    if let Some(enforce) = enforce {
        annotations.insert(ENFORCE_ANNOTATION.to_string(), enforce.to_string());
    }
    if let Some(rule_sources) = rule_sources {
        annotations.insert(RULE_SOURCES_ANNOTATION.to_string(), rule_sources);
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
    by_subject: std::collections::HashMap<(Subject, Direction, bool), Vec<&'a Rule>>,
    /// The peer selectors of every service, built once: most peers are services.
    service_peers: Vec<Vec<PeerSel>>,
}

impl<'a> RuleIndex<'a> {
    fn new(model: &'a Model) -> Self {
        let mut by_subject: std::collections::HashMap<(Subject, Direction, bool), Vec<&'a Rule>> =
            std::collections::HashMap::new();
        for rule in &model.rules {
            by_subject
                .entry((rule.subject, rule.direction, rule.deny))
                .or_default()
                .push(rule);
        }
        let service_peers = (0..model.services.len())
            .map(|id| peer_sels(model, &Target::Service(id)))
            .collect();
        Self {
            by_subject,
            service_peers,
        }
    }

    fn peers(&self, model: &Model, target: &Target) -> Vec<PeerSel> {
        match target {
            Target::Service(id) => match self.service_peers.get(*id) {
                Some(peers) => peers.clone(),
                None => peer_sels(model, target),
            },
            _ => peer_sels(model, target),
        }
    }

    fn get(&self, subject: Subject, direction: Direction, deny: bool) -> &[&'a Rule] {
        self.by_subject
            .get(&(subject, direction, deny))
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
    deny: bool,
) -> Vec<(Vec<PeerSel>, Allowance, Origins)> {
    let rules = index.get(subject, direction, deny);
    // Per peer: the plain ports (None once an L3-only rule covers everything), and the L7
    // allowances, which stay separate items; each with the statements it comes from.
    let mut plain: BTreeMap<PeerSel, Option<BTreeSet<L4>>> = BTreeMap::new();
    let mut l7: BTreeMap<(PeerSel, BTreeSet<L4>), L7Allowance> = BTreeMap::new();
    let mut origins: BTreeMap<(PeerSel, Option<BTreeSet<L4>>), Origins> = BTreeMap::new();
    for rule in rules.iter().copied() {
        for peer in index.peers(model, &rule.peer) {
            let key = if rule.http.is_empty() && rule.dns.is_empty() {
                None
            } else {
                Some(rule.ports.clone())
            };
            origins
                .entry((peer.clone(), key))
                .or_default()
                .insert(rule.origin);
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
    }
    let mut grouped: BTreeMap<(u8, Allowance), (Vec<PeerSel>, Origins)> = BTreeMap::new();
    for (peer, ports) in plain {
        let allowance = Allowance {
            ports: ports.unwrap_or_default(),
            http: Vec::new(),
            dns: BTreeSet::new(),
        };
        let from = origins.remove(&(peer.clone(), None)).unwrap_or_default();
        let entry = grouped.entry((peer.kind(), allowance)).or_default();
        entry.0.push(peer);
        entry.1.extend(from);
    }
    for ((peer, ports), (mut http, dns)) in l7 {
        http.sort();
        let from = origins
            .remove(&(peer.clone(), Some(ports.clone())))
            .unwrap_or_default();
        let allowance = Allowance { ports, http, dns };
        let entry = grouped.entry((peer.kind(), allowance)).or_default();
        entry.0.push(peer);
        entry.1.extend(from);
    }
    grouped
        .into_iter()
        .map(|((_, allowance), (peers, origins))| (peers, allowance, origins))
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

/// The statements (spans in the profiles) a rule item comes from.
type Origins = BTreeSet<Span>;

/// The four sections of a subject's rule, each item with the statements it comes from.
struct Sections {
    ingress: Vec<(IngressRule, Origins)>,
    egress: Vec<(EgressRule, Origins)>,
    ingress_deny: Vec<(IngressRule, Origins)>,
    egress_deny: Vec<(EgressRule, Origins)>,
}

impl Sections {
    fn of(model: &Model, index: &RuleIndex<'_>, subject: Subject) -> Self {
        Self {
            ingress: rule_items(model, index, subject, Direction::Ingress, false),
            egress: rule_items(model, index, subject, Direction::Egress, false),
            ingress_deny: rule_items(model, index, subject, Direction::Ingress, true),
            egress_deny: rule_items(model, index, subject, Direction::Egress, true),
        }
    }

    fn is_empty(&self) -> bool {
        self.ingress.is_empty()
            && self.egress.is_empty()
            && self.ingress_deny.is_empty()
            && self.egress_deny.is_empty()
    }

    /// The value of [`RULE_SOURCES_ANNOTATION`]: one line per rule item, `egress[1]:
    /// profiles/media.yaml:41,44 profiles/databases.yaml:12`, in the order of the object.
    fn sources(&self, sources: &SourceMap) -> Option<String> {
        let mut out = String::new();
        let mut section = |name: &str, items: &mut dyn Iterator<Item = &Origins>| {
            for (i, origins) in items.enumerate() {
                let mut by_file: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
                for span in origins {
                    let position = sources.position(*span);
                    by_file
                        .entry(position.file.to_string())
                        .or_default()
                        .insert(position.line);
                }
                if by_file.is_empty() {
                    continue;
                }
                let _ = write!(out, "{name}[{i}]:");
                for (file, lines) in by_file {
                    let lines: Vec<String> = lines.iter().map(usize::to_string).collect();
                    let _ = write!(out, " {file}:{}", lines.join(","));
                }
                out.push('\n');
            }
        };
        section("ingress", &mut self.ingress.iter().map(|(_, o)| o));
        section("ingressDeny", &mut self.ingress_deny.iter().map(|(_, o)| o));
        section("egress", &mut self.egress.iter().map(|(_, o)| o));
        section("egressDeny", &mut self.egress_deny.iter().map(|(_, o)| o));
        (!out.is_empty()).then_some(out)
    }

    /// The items without their origins: allows, then denies (`None` when there are none).
    fn into_rules(self) -> Rules {
        (
            self.ingress.into_iter().map(|(item, _)| item).collect(),
            self.egress.into_iter().map(|(item, _)| item).collect(),
            non_empty(
                self.ingress_deny
                    .into_iter()
                    .map(|(item, _)| ingress_deny(item))
                    .collect(),
            ),
            non_empty(
                self.egress_deny
                    .into_iter()
                    .map(|(item, _)| egress_deny(item))
                    .collect(),
            ),
        )
    }
}

type Rules = (
    Vec<IngressRule>,
    Vec<EgressRule>,
    Option<Vec<IngressDenyRule>>,
    Option<Vec<EgressDenyRule>>,
);

/// Deny items have the peers and ports of allow items, without L7 (a deny has none).
fn deny_ports(to_ports: Option<Vec<PortRule>>) -> Option<Vec<PortDenyRule>> {
    to_ports.map(|rules| {
        rules
            .into_iter()
            .map(|r| PortDenyRule { ports: r.ports })
            .collect()
    })
}

fn ingress_deny(r: IngressRule) -> IngressDenyRule {
    IngressDenyRule {
        from_endpoints: r.from_endpoints,
        from_cidr: r.from_cidr,
        from_cidr_set: r.from_cidr_set,
        from_entities: r.from_entities,
        from_nodes: r.from_nodes,
        from_requires: r.from_requires,
        from_groups: r.from_groups,
        to_ports: deny_ports(r.to_ports),
        icmps: r.icmps,
    }
}

fn egress_deny(r: EgressRule) -> EgressDenyRule {
    EgressDenyRule {
        to_endpoints: r.to_endpoints,
        to_cidr: r.to_cidr,
        to_cidr_set: r.to_cidr_set,
        to_entities: r.to_entities,
        to_nodes: r.to_nodes,
        to_requires: r.to_requires,
        to_groups: r.to_groups,
        to_ports: deny_ports(r.to_ports),
        icmps: r.icmps,
        ..Default::default()
    }
}

fn rule_items<T: RuleItem>(
    model: &Model,
    index: &RuleIndex<'_>,
    subject: Subject,
    direction: Direction,
    deny: bool,
) -> Vec<(T, Origins)> {
    let mut out = Vec::new();
    for (peers, allowance, origins) in items(model, index, subject, direction, deny) {
        let mut base = T::default();
        for peer in peers {
            base.add_peer(peer);
        }
        // `icmps` and `toPorts` cannot share an item (§1.6): one item each, same peers.
        let (to_ports, icmps) = l4_fields(&allowance);
        match (to_ports, icmps) {
            (None, None) => out.push((base, origins)),
            (to_ports, icmps) => {
                if let Some(to_ports) = to_ports {
                    let mut item = base.clone();
                    item.set_ports(to_ports);
                    out.push((item, origins.clone()));
                }
                if let Some(icmps) = icmps {
                    let mut item = base;
                    item.set_icmps(icmps);
                    out.push((item, origins));
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

/// The peer selectors of a target: one, or for a service on the host network the node
/// entities its traffic carries (`host` on its own node, `remote-node` from elsewhere).
fn peer_sels(model: &Model, target: &Target) -> Vec<PeerSel> {
    if let Target::Service(id) = target
        && model.services.get(*id).is_some_and(|s| s.host_network)
    {
        return vec![
            PeerSel::Entity(Entity::Host),
            PeerSel::Entity(Entity::RemoteNode),
        ];
    }
    vec![peer_sel(model, target)]
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
