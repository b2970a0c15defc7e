//! From needs to additions: statements under profile services, or CiliumNetworkPolicies.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ipnet::IpNet;

use super::{End, Need, Needs, Unsuggested, WORKLOAD_KEYS};
use crate::diagnostic::source::SourceMap;
use crate::engine::identity::NamedPort;
use crate::objects::Proto;
use crate::objects::cilium::{
    CiliumNetworkPolicy, DefaultDenyConfig, EgressRule, EndpointSelector, FqdnSelector, IcmpFamily,
    IcmpField, IcmpRule, IcmpType, IngressRule, L7Rules, ObjectMeta, PortProtocol, PortRule,
    Protocol, Rule,
};
use crate::profile::emit::scalar_string;
use crate::profile::model::{Model, Target};
use crate::profile::syntax::Enforce;

/// How additions are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Statements under the profile services the pods belong to; CiliumNetworkPolicies for
    /// workloads no profile declares.
    Profile,
    /// CiliumNetworkPolicies only.
    Cnp,
}

/// What `plan` is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub format: Format,
    /// Broader than observed: addresses by `/24`, ports by name, pods by workload label.
    pub generalize: bool,
}

/// The pods of the cluster's DNS resolver: where the DNS rule of a `toFQDNs` suggestion goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolver {
    pub namespace: String,
    pub labels: Vec<(String, String)>,
}

impl Default for Resolver {
    /// Kubernetes' and Talos' CoreDNS: `kube-system` pods `k8s-app: kube-dns`.
    fn default() -> Self {
        Self {
            namespace: "kube-system".to_owned(),
            labels: vec![("k8s-app".to_owned(), "kube-dns".to_owned())],
        }
    }
}

/// A service of a profile, where statements can be added.
#[derive(Debug, Clone)]
pub struct ProfileService {
    pub namespace: String,
    pub name: String,
    /// Pod labels the service selects.
    pub selector: Vec<(String, String)>,
    /// Named ports: name, protocol, first and last port.
    pub ports: Vec<(String, Proto, u16, u16)>,
    /// Index into [`Profiles::files`].
    pub file: usize,
    /// 0-based line of the service's name.
    pub line: usize,
    pub host_network: bool,
    /// Its policy enforces nothing (`enforce: audit`): statements still add to it.
    pub audit: bool,
    /// Declared by the plan, not yet in the file: written whole at the end of `services:`.
    pub new: bool,
}

/// A namespace profile, where services can be declared.
#[derive(Debug, Clone)]
pub struct ProfileNamespace {
    pub namespace: String,
    /// Index into [`Profiles::files`].
    pub file: usize,
    /// Group name → member services (indices into [`Profiles::services`]), by name.
    pub groups: Vec<(String, Vec<usize>)>,
}

/// A profile file, as a patch names it.
#[derive(Debug, Clone)]
pub struct ProfileFileText {
    /// The path as the user gave it (`profiles/media.yaml`).
    pub name: String,
    pub text: Arc<str>,
}

/// The profiles' services, their files and the cluster's resolver.
#[derive(Debug, Clone, Default)]
pub struct Profiles {
    pub services: Vec<ProfileService>,
    /// Every namespace profile, by namespace.
    pub namespaces: Vec<ProfileNamespace>,
    pub files: Vec<ProfileFileText>,
    pub resolver: Resolver,
    /// The cluster's pod and Service ranges: an address inside them is no peer for a CIDR rule.
    pub cluster_cidrs: Vec<IpNet>,
}

impl Profiles {
    /// The services of a resolved model, with the text of their files.
    pub fn new(model: &Model, sources: &SourceMap) -> Self {
        let mut files: Vec<ProfileFileText> = Vec::new();
        let mut file_of: BTreeMap<u32, usize> = BTreeMap::new();
        let mut services = Vec::new();
        let mut index_of: BTreeMap<usize, usize> = BTreeMap::new();
        let mut file_index = |files: &mut Vec<ProfileFileText>,
                              span: crate::diagnostic::source::Span| {
            let source = sources.get(span.source)?;
            Some((
                *file_of.entry(span.source.0).or_insert_with(|| {
                    files.push(ProfileFileText {
                        name: source.name.clone(),
                        text: source.text.clone(),
                    });
                    files.len() - 1
                }),
                source,
            ))
        };
        for (id, s) in model.services.iter().enumerate() {
            let Some((file, source)) = file_index(&mut files, s.origin) else {
                continue;
            };
            index_of.insert(id, services.len());
            let (line, _) = source.line_col(s.origin.offset as usize);
            services.push(ProfileService {
                namespace: s.namespace.clone(),
                name: s.name.clone(),
                selector: s.selector.clone(),
                ports: s
                    .ports
                    .iter()
                    .flat_map(|(name, ranges)| {
                        ranges.iter().map(|r| {
                            let proto = match r.protocol {
                                crate::objects::port::Protocol::Tcp => Proto::Tcp,
                                crate::objects::port::Protocol::Udp => Proto::Udp,
                                crate::objects::port::Protocol::Sctp => Proto::Sctp,
                            };
                            (name.clone(), proto, r.first, r.last)
                        })
                    })
                    .collect(),
                file,
                line: line.saturating_sub(1),
                host_network: s.host_network,
                audit: s.enforce == Enforce::Audit,
                new: false,
            });
        }
        let namespaces = model
            .profiles
            .iter()
            .filter_map(|p| {
                let (file, _) = file_index(&mut files, p.origin)?;
                Some(ProfileNamespace {
                    namespace: p.namespace.clone(),
                    file,
                    groups: p
                        .groups
                        .iter()
                        .map(|(name, members)| {
                            (
                                name.clone(),
                                members
                                    .iter()
                                    .filter_map(|m| index_of.get(m).copied())
                                    .collect(),
                            )
                        })
                        .collect(),
                })
            })
            .collect();
        let resolver = match &model.settings.resolver {
            Target::Pods { namespaces, labels } => match namespaces.as_slice() {
                [ns] => Resolver {
                    namespace: ns.clone(),
                    labels: labels.clone(),
                },
                _ => Resolver::default(),
            },
            Target::Service(id) => {
                model
                    .services
                    .get(*id)
                    .map_or_else(Resolver::default, |s| Resolver {
                        namespace: s.namespace.clone(),
                        labels: s.selector.clone(),
                    })
            }
            _ => Resolver::default(),
        };
        let facts = &model.settings.cluster;
        Self {
            services,
            namespaces,
            files,
            resolver,
            cluster_cidrs: facts
                .pod_cidrs
                .iter()
                .chain(&facts.service_cidrs)
                .copied()
                .collect(),
        }
    }

    /// The service that selects pods of `namespace` with `labels`: the one with the most
    /// selector labels (the most specific), then the first by name. Host-network services
    /// select no pod identity.
    pub fn service_of(&self, namespace: &str, labels: &[(String, String)]) -> Option<usize> {
        self.services
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.namespace == namespace
                    && !s.host_network
                    && !s.selector.is_empty()
                    && s.selector.iter().all(|sel| labels.contains(sel))
            })
            .max_by(|(_, a), (_, b)| {
                a.selector
                    .len()
                    .cmp(&b.selector.len())
                    .then_with(|| b.name.cmp(&a.name))
            })
            .map(|(i, _)| i)
    }

    fn end_service(&self, end: &End) -> Option<usize> {
        match end {
            End::Pods { namespace, labels } => self.service_of(namespace, labels),
            _ => None,
        }
    }
}

/// One statement to add under a service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Statement {
    /// `to:` (egress of the service) or `from:` (its ingress).
    pub to: bool,
    /// Peers as YAML (flow style): `databases/arr-postgres`, `"203.0.113.7/32"`,
    /// `{namespace: x, select: {app: y}}`.
    pub peers: Vec<String>,
    /// Ports as YAML: `http`, `443`, `53/udp`, `icmp/8`, `6881-6889/udp`.
    pub ports: Vec<String>,
    /// Flow records that need it.
    pub flows: usize,
}

impl Statement {
    /// The statement's lines, its `-` at `indent` spaces.
    pub fn lines(&self, indent: usize) -> Vec<String> {
        let list = |items: &[String]| match items {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let pad = " ".repeat(indent);
        vec![
            format!(
                "{pad}- {}: {}",
                if self.to { "to" } else { "from" },
                list(&self.peers)
            ),
            format!("{pad}  port: {}", list(&self.ports)),
        ]
    }
}

/// The statements to add under one service.
#[derive(Debug, Clone)]
pub struct ServiceEdit {
    /// Index into [`Profiles::services`].
    pub service: usize,
    pub statements: Vec<Statement>,
}

/// A service the plan declares: pods of a profiled namespace that no service selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewService {
    /// Index into [`Plan::services`].
    pub service: usize,
    /// Index into [`Profiles::namespaces`].
    pub profile: usize,
    /// How reports name the pods (`media/Deployment/flaresolverr`).
    pub seen: String,
}

/// What to add.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The profiles' services, then the new ones ([`ProfileService::new`]).
    pub services: Vec<ProfileService>,
    /// Services to declare, by namespace and name.
    pub new_services: Vec<NewService>,
    /// By file and line of the service (new services last, by name).
    pub edits: Vec<ServiceEdit>,
    /// By namespace and name.
    pub policies: Vec<CiliumNetworkPolicy>,
    /// Needs nothing can be suggested for, and dropped flows no allow lets through.
    pub unsuggested: Vec<Unsuggested>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.edits.is_empty() && self.policies.is_empty() && self.new_services.is_empty()
    }

    pub fn statement_count(&self) -> usize {
        self.edits.iter().map(|e| e.statements.len()).sum()
    }
}

/// A port set: protocol and port (ICMP: type).
type Ports = BTreeSet<(Proto, u16)>;

/// What one workload no profile declares needs, by direction and peer.
#[derive(Debug, Default)]
struct PolicyAcc {
    name: String,
    flows: usize,
    egress: BTreeMap<End, Ports>,
    ingress: BTreeMap<End, Ports>,
}

/// What each workload no profile declares needs, by namespace and pod labels.
type Policies = BTreeMap<(String, Vec<(String, String)>), PolicyAcc>;

/// Statements of one service: by direction and peer, the ports, the service that receives
/// (whose port names the ports may use) and the flows.
type StatementAcc = BTreeMap<(usize, bool, String), (Ports, Option<usize>, usize)>;

/// The additions the needs call for.
pub fn plan(needs: &Needs, profiles: &Profiles, options: &Options) -> Plan {
    let mut statements: StatementAcc = BTreeMap::new();
    let mut policies: Policies = BTreeMap::new();
    let mut unsuggested = needs.unsuggested.clone();
    let profile = options.format == Format::Profile;
    let (profiles, new_services) = if profile {
        declare(needs, profiles, options.generalize)
    } else {
        (profiles.clone(), Vec::new())
    };
    let profiles = &profiles;
    let is_new = |end: &End| {
        profiles
            .end_service(end)
            .and_then(|i| profiles.services.get(i))
            .is_some_and(|s| s.new)
    };
    for need in &needs.needs {
        // A new service is default-deny: what passed unenforced needs its rule now.
        let need = &Need {
            egress: need.egress || (need.egress_unenforced && is_new(&need.src)),
            ingress: need.ingress || (need.ingress_unenforced && is_new(&need.dst)),
            ..need.clone()
        };
        if !need.egress && !need.ingress {
            continue;
        }
        if let Some(why) = outside_rules(need, profiles) {
            unsuggested.push(Unsuggested {
                src: need.src_name.clone(),
                dst: need.dst_name.clone(),
                port: port_text(need.proto, need.port),
                why,
                flows: need.flows,
            });
            continue;
        }
        let mut ports: Ports = BTreeSet::from([(need.proto, need.port)]);
        let (src_service, dst_service) = if profile {
            (
                profiles.end_service(&need.src),
                profiles.end_service(&need.dst),
            )
        } else {
            (None, None)
        };
        if options.generalize {
            let named: Vec<(String, Proto, u16, u16)> = match dst_service {
                Some(d) => profiles
                    .services
                    .get(d)
                    .map(|s| s.ports.clone())
                    .unwrap_or_default(),
                None => container_ports(&need.dst_ports),
            };
            ports = widen(&ports, &named);
        }
        let mut ingress_done = false;
        let unplaced = |owner: &End, what: &str| Unsuggested {
            src: need.src_name.clone(),
            dst: need.dst_name.clone(),
            port: port_text(need.proto, need.port),
            why: format!(
                "its {what} is `{}`, for which no policy can be written",
                owner.display()
            ),
            flows: need.flows,
        };
        if need.egress {
            match src_service {
                Some(s) => {
                    let peer = profile_peer(profiles, s, &need.dst);
                    let acc = statements.entry((s, true, peer)).or_insert((
                        BTreeSet::new(),
                        dst_service,
                        0,
                    ));
                    acc.0.extend(&ports);
                    acc.2 += need.flows;
                    // The statement gives a declared destination its ingress rule too.
                    ingress_done = dst_service.is_some();
                }
                None => match &need.src {
                    End::Pods { namespace, labels } => {
                        let acc = policy_acc(&mut policies, namespace, labels);
                        acc.flows += need.flows;
                        acc.egress
                            .entry(need.dst.clone())
                            .or_default()
                            .extend(&ports);
                    }
                    other => unsuggested.push(unplaced(other, "source")),
                },
            }
        }
        if need.ingress && !ingress_done {
            match dst_service {
                Some(d) => {
                    let peer = profile_peer(profiles, d, &need.src);
                    let acc =
                        statements
                            .entry((d, false, peer))
                            .or_insert((BTreeSet::new(), Some(d), 0));
                    acc.0.extend(&ports);
                    acc.2 += need.flows;
                }
                None => match &need.dst {
                    End::Pods { namespace, labels } => {
                        let acc = policy_acc(&mut policies, namespace, labels);
                        acc.flows += need.flows;
                        acc.ingress
                            .entry(need.src.clone())
                            .or_default()
                            .extend(&ports);
                    }
                    other => unsuggested.push(unplaced(other, "destination")),
                },
            }
        }
    }
    unsuggested.sort();
    Plan {
        services: profiles.services.clone(),
        new_services,
        edits: edits(statements, profiles, options.generalize),
        policies: policies
            .into_iter()
            .map(|((namespace, labels), acc)| {
                policy(
                    &namespace,
                    &labels,
                    &acc,
                    needs.bootstrap,
                    &profiles.resolver,
                )
            })
            .collect(),
        unsuggested,
    }
}

/// Why a need cannot be written as a rule, if it cannot: an address inside the cluster's
/// ranges (CIDR rules never select pods or Services).
fn outside_rules(need: &Need, profiles: &Profiles) -> Option<String> {
    [&need.src, &need.dst].into_iter().find_map(|end| match end {
        End::Cidr(net) if profiles.cluster_cidrs.iter().any(|c| c.contains(net)) => Some(format!(
            "`{net}` is inside the cluster's pod or Service range, where CIDR rules select nothing: give --inventory so that the flows name the pod behind it"
        )),
        _ => None,
    })
}

fn policy_acc<'p>(
    policies: &'p mut Policies,
    namespace: &str,
    labels: &[(String, String)],
) -> &'p mut PolicyAcc {
    policies
        .entry((namespace.to_owned(), labels.to_vec()))
        .or_insert_with(|| PolicyAcc {
            name: workload_name(labels),
            ..PolicyAcc::default()
        })
}

/// A peer as a statement under `owner` writes it: a service or group by its name (bare in its
/// own namespace), other pods by their labels, entities, CIDRs and DNS names as themselves.
fn profile_peer(profiles: &Profiles, owner: usize, end: &End) -> String {
    let owner_ns = profiles.services.get(owner).map(|s| s.namespace.as_str());
    match end {
        End::Pods { namespace, labels } => {
            if let Some(s) = profiles
                .service_of(namespace, labels)
                .and_then(|i| profiles.services.get(i))
            {
                return if owner_ns == Some(namespace.as_str()) {
                    scalar_string(&s.name)
                } else {
                    format!("{namespace}/{}", s.name)
                };
            }
            let select: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{}: {}", scalar_string(k), scalar_string(v)))
                .collect();
            format!(
                "{{namespace: {}, select: {{{}}}}}",
                scalar_string(namespace),
                select.join(", ")
            )
        }
        End::Entity(e) => e.as_str().to_owned(),
        End::Cidr(net) => scalar_string(&net.to_string()),
        End::Dns(name) => scalar_string(name),
    }
}

/// Container ports by name, as named ports of a workload.
fn container_ports(ports: &[NamedPort]) -> Vec<(String, Proto, u16, u16)> {
    ports
        .iter()
        .map(|p| (p.name.clone(), p.protocol, p.port, p.port))
        .collect()
}

/// `ports` and every port of each name one of them has (`--generalize`).
fn widen(ports: &Ports, named: &[(String, Proto, u16, u16)]) -> Ports {
    let mut out = ports.clone();
    for (name, ..) in named
        .iter()
        .filter(|(_, p, a, b)| ports.iter().any(|(q, n)| q == p && a <= n && n <= b))
    {
        for (_, p, a, b) in named.iter().filter(|(n, ..)| n == name) {
            // A named range wider than a few ports is left as it is: that is no longer a port.
            if b.saturating_sub(*a) < 64 {
                out.extend((*a..=*b).map(|n| (*p, n)));
            }
        }
    }
    out
}

/// `443/tcp`, `icmp/8`.
fn port_text(proto: Proto, port: u16) -> String {
    if proto.is_icmp() {
        format!("{proto}/{port}")
    } else {
        format!("{port}/{proto}")
    }
}

/// The statements of each service, peers with the same ports in one statement, sorted by
/// file and line.
fn edits(statements: StatementAcc, profiles: &Profiles, generalize: bool) -> Vec<ServiceEdit> {
    type ByPorts = BTreeMap<(bool, Vec<String>), (Vec<String>, usize)>;
    let mut by_service: BTreeMap<usize, ByPorts> = BTreeMap::new();
    for ((service, to, peer), (ports, receiver, flows)) in statements {
        // A new service's ports are written by number: what was seen, in its own words.
        let named = receiver
            .and_then(|r| profiles.services.get(r))
            .filter(|s| !s.new)
            .map(|s| s.ports.as_slice())
            .unwrap_or_default();
        let texts = port_texts(&ports, named, generalize);
        let entry = by_service
            .entry(service)
            .or_default()
            .entry((to, texts))
            .or_default();
        entry.0.push(peer);
        entry.1 += flows;
    }
    let mut out: Vec<ServiceEdit> = by_service
        .into_iter()
        .map(|(service, by_ports)| {
            let mut statements: Vec<Statement> = by_ports
                .into_iter()
                .map(|((to, ports), (peers, flows))| {
                    let owner = profiles
                        .services
                        .get(service)
                        .map_or("", |s| s.namespace.as_str());
                    let peers = with_groups(peers, owner, profiles);
                    Statement {
                        to,
                        peers,
                        ports,
                        flows,
                    }
                })
                .collect();
            // Egress first, then by peers.
            statements
                .sort_by(|a, b| (!a.to, &a.peers, &a.ports).cmp(&(!b.to, &b.peers, &b.ports)));
            ServiceEdit {
                service,
                statements,
            }
        })
        .collect();
    out.sort_by_key(|e| {
        profiles
            .services
            .get(e.service)
            .map(|s| (s.new, s.file, s.line, e.service))
            .unwrap_or_default()
    });
    out
}

/// The pods a new service may be declared for: a label set of a profiled namespace that no
/// service selects, and where it was seen.
type Candidates = BTreeMap<PodsKey, String>;

/// Pods by namespace and own labels.
type PodsKey = (String, Vec<(String, String)>);

/// The profiles with a new service for each workload of a profiled namespace that no service
/// declares and that the dropped flows involve (and, in turn, for those its flows involve:
/// a new service is default-deny, so every flow of its pods gets a statement, and a peer of a
/// statement in a profiled namespace is named by its service).
fn declare(needs: &Needs, profiles: &Profiles, generalize: bool) -> (Profiles, Vec<NewService>) {
    let profile_of = |ns: &str| profiles.namespaces.iter().position(|p| p.namespace == ns);
    let mut candidates: Candidates = BTreeMap::new();
    for need in &needs.needs {
        for (end, seen) in [(&need.src, &need.src_name), (&need.dst, &need.dst_name)] {
            if let End::Pods { namespace, labels } = end
                && profile_of(namespace).is_some()
                && profiles.service_of(namespace, labels).is_none()
            {
                let at = candidates
                    .entry((namespace.clone(), labels.clone()))
                    .or_insert_with(|| seen.clone());
                if seen < at {
                    at.clone_from(seen);
                }
            }
        }
    }
    // The selector of each: the fewest labels that tell its pods apart from every other pod
    // known in the namespace (seen in the flows, or in the inventory).
    let mut selectors: BTreeMap<PodsKey, Vec<(String, String)>> = BTreeMap::new();
    for (namespace, labels) in candidates.keys() {
        let others: Vec<&Vec<(String, String)>> = needs
            .pods
            .iter()
            .filter(|(ns, other)| {
                ns == namespace
                    && if generalize {
                        profiles.service_of(ns, other).is_some()
                            || candidates.keys().any(|(n, c)| {
                                n == ns && c != labels && c.iter().all(|l| other.contains(l))
                            })
                    } else {
                        other != labels
                    }
            })
            .map(|(_, l)| l)
            .collect();
        let tells_apart =
            |sel: &[(String, String)]| !others.iter().any(|o| sel.iter().all(|l| o.contains(l)));
        let found = ["app.kubernetes.io/name", "app"]
            .iter()
            .filter_map(|k| labels.iter().find(|(key, _)| key == k))
            .map(|l| vec![l.clone()])
            .chain(std::iter::once(labels.clone()))
            .find(|sel| tells_apart(sel));
        if let Some(sel) = found {
            selectors.insert((namespace.clone(), labels.clone()), sel);
        }
    }
    // Those the flows need: the ends of every statement, until none is added.
    let mut chosen: BTreeSet<PodsKey> = BTreeSet::new();
    loop {
        let before = chosen.len();
        for need in &needs.needs {
            let key = |end: &End| match end {
                End::Pods { namespace, labels } => Some((namespace.clone(), labels.clone())),
                _ => None,
            };
            let (src, dst) = (key(&need.src), key(&need.dst));
            let chosen_end = |k: &Option<PodsKey>| k.as_ref().is_some_and(|k| chosen.contains(k));
            let stated = need.egress
                || need.ingress
                || (need.egress_unenforced && chosen_end(&src))
                || (need.ingress_unenforced && chosen_end(&dst));
            if stated {
                for k in [src, dst].into_iter().flatten() {
                    if selectors.contains_key(&k) {
                        chosen.insert(k);
                    }
                }
            }
        }
        if chosen.len() == before {
            break;
        }
    }
    let mut out = profiles.clone();
    let mut new_services = Vec::new();
    for key in chosen {
        let (Some(selector), Some(seen), Some(profile)) = (
            selectors.get(&key),
            candidates.get(&key),
            profile_of(&key.0),
        ) else {
            continue;
        };
        let (namespace, labels) = key;
        let Some(file) = profiles.namespaces.get(profile).map(|p| p.file) else {
            continue;
        };
        let base = workload_name(&[(String::new(), seen_name(seen, &labels))]);
        let taken = |name: &str| {
            out.services
                .iter()
                .any(|s| s.namespace == namespace && s.name == name)
                || profiles
                    .namespaces
                    .get(profile)
                    .is_some_and(|p| p.groups.iter().any(|(g, _)| g == name))
                || crate::objects::cilium::Entity::ALL
                    .iter()
                    .any(|e| e.as_str() == name)
                || ["all", "world", "netpol-namespace"].contains(&name)
        };
        let name = (1..)
            .map(|n| {
                if n == 1 {
                    base.clone()
                } else {
                    format!("{base}-{n}")
                }
            })
            .find(|n| !taken(n))
            .unwrap_or_else(|| base.clone());
        // The ports it was seen receiving, by protocol and number, named as its containers
        // name them (else `tcp-8191`).
        let end = End::Pods {
            namespace: namespace.clone(),
            labels: labels.clone(),
        };
        let received: BTreeMap<(Proto, u16), Option<String>> = needs
            .needs
            .iter()
            .filter(|n| n.dst == end && matches!(n.proto, Proto::Tcp | Proto::Udp | Proto::Sctp))
            .map(|n| {
                let named = n
                    .dst_ports
                    .iter()
                    .find(|p| p.protocol == n.proto && p.port == n.port)
                    .map(|p| p.name.clone())
                    .filter(|name| port_name_ok(name));
                ((n.proto, n.port), named)
            })
            .collect();
        let mut names: BTreeSet<String> = BTreeSet::new();
        let ports = received
            .into_iter()
            .map(|((p, n), named)| {
                let name = named
                    .filter(|name| !names.contains(name))
                    .unwrap_or_else(|| format!("{p}-{n}"));
                names.insert(name.clone());
                (name, p, n, n)
            })
            .collect();
        new_services.push(NewService {
            service: out.services.len(),
            profile,
            seen: seen.clone(),
        });
        out.services.push(ProfileService {
            namespace: namespace.clone(),
            name,
            selector: selector.clone(),
            ports,
            file,
            line: usize::MAX,
            host_network: false,
            audit: false,
            new: true,
        });
    }
    (out, new_services)
}

/// A Kubernetes port name, as profiles accept it: 1 to 15 lowercase letters, digits and
/// single dashes, at least one letter, no dash at either end.
fn port_name_ok(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.chars().any(|c| c.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// The workload's name in `media/Deployment/flaresolverr` (`flaresolverr`), `media/app=x`
/// (`x`) or a pod's; else its first label's value.
fn seen_name(seen: &str, labels: &[(String, String)]) -> String {
    let rest = seen.split_once('/').map_or(seen, |(_, r)| r);
    let name = rest
        .rsplit_once('/')
        .map(|(_, n)| n)
        .or_else(|| rest.split_once('=').map(|(_, v)| v))
        .unwrap_or(rest);
    if name.is_empty() || name.starts_with('(') {
        workload_name(labels)
    } else {
        name.to_owned()
    }
}

/// Peers as a statement under a service of `owner` (a namespace) writes them, the members of
/// a declared group replaced by the group's name (`arr`, `media/arr`), larger groups first;
/// sorted.
fn with_groups(mut peers: Vec<String>, owner: &str, profiles: &Profiles) -> Vec<String> {
    let mut groups: Vec<(String, Vec<String>)> = profiles
        .namespaces
        .iter()
        .flat_map(|p| {
            let written = move |name: &str| {
                if p.namespace == owner {
                    scalar_string(name)
                } else {
                    format!("{}/{name}", p.namespace)
                }
            };
            p.groups.iter().filter_map(move |(name, members)| {
                let members: Option<Vec<String>> = members
                    .iter()
                    .map(|m| profiles.services.get(*m).map(|s| written(&s.name)))
                    .collect();
                let members = members?;
                (members.len() >= 2).then(|| (written(name), members))
            })
        })
        .collect();
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    for (group, members) in groups {
        if members.iter().all(|m| peers.contains(m)) {
            peers.retain(|p| !members.contains(p));
            peers.push(group);
        }
    }
    peers.sort();
    peers
}

/// Ports as a statement writes them: a name of the receiving service when every port of the
/// name is needed (with `generalize`, when one is), then the others by number, consecutive
/// ones as a range.
fn port_texts(ports: &Ports, named: &[(String, Proto, u16, u16)], generalize: bool) -> Vec<String> {
    let mut left = ports.clone();
    let mut out = Vec::new();
    let names: BTreeSet<&str> = named.iter().map(|(n, ..)| n.as_str()).collect();
    for name in names {
        let of_name: Vec<(Proto, u16, u16)> = named
            .iter()
            .filter(|(n, ..)| n == name)
            .map(|(_, p, a, b)| (*p, *a, *b))
            .collect();
        let covered =
            |set: &Ports, p: Proto, a: u16, b: u16| (a..=b).all(|n| set.contains(&(p, n)));
        let touches = of_name
            .iter()
            .any(|(p, a, b)| left.iter().any(|(q, n)| q == p && a <= n && n <= b));
        let whole = of_name.iter().all(|(p, a, b)| covered(ports, *p, *a, *b));
        if touches && (whole || generalize) {
            out.push(scalar_string(name));
            for (p, a, b) in of_name {
                for n in a..=b {
                    left.remove(&(p, n));
                }
            }
        }
    }
    for (proto, first, last) in ranges(&left) {
        let port = if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        };
        out.push(match proto {
            Proto::Tcp => port,
            p if p.is_icmp() => format!("{p}/{port}"),
            p => format!("{port}/{p}"),
        });
    }
    out
}

/// Consecutive ports of a protocol as ranges (ICMP types stay one by one).
fn ranges(ports: &Ports) -> Vec<(Proto, u16, u16)> {
    let mut out: Vec<(Proto, u16, u16)> = Vec::new();
    for &(p, n) in ports {
        match out.last_mut() {
            Some((q, _, last))
                if *q == p && !p.is_icmp() && u32::from(*last) + 1 == u32::from(n) =>
            {
                *last = n;
            }
            _ => out.push((p, n, n)),
        }
    }
    out
}

/// A policy name from the workload's labels: its workload label's value, else its first
/// label's, as a DNS label.
fn workload_name(labels: &[(String, String)]) -> String {
    let value = WORKLOAD_KEYS
        .iter()
        .find_map(|k| labels.iter().find(|(key, _)| key == k))
        .or_else(|| labels.first())
        .map_or("workload", |(_, v)| v.as_str());
    let mut name: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(40);
    let name = name.trim_matches('-').to_owned();
    if name.is_empty() {
        "workload".to_owned()
    } else {
        name
    }
}

/// 64-bit FNV-1a: a short, stable name suffix.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn selector(namespace: Option<&str>, labels: &[(String, String)]) -> EndpointSelector {
    let mut m: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (format!("k8s:{k}"), v.clone()))
        .collect();
    if let Some(ns) = namespace {
        m.insert("k8s:io.kubernetes.pod.namespace".to_owned(), ns.to_owned());
    }
    EndpointSelector {
        match_labels: Some(m),
        match_expressions: None,
    }
}

/// `toPorts` (at most 40 ports each) and `icmps` (at most 40 types each) of a port set.
fn l4(ports: &Ports) -> (Vec<PortRule>, Vec<IcmpRule>) {
    let mut tcp_like = Vec::new();
    let mut icmp = Vec::new();
    for (proto, first, last) in ranges(ports) {
        let protocol = match proto {
            Proto::Tcp => Protocol::Tcp,
            Proto::Udp => Protocol::Udp,
            Proto::Sctp => Protocol::Sctp,
            Proto::Icmp | Proto::Icmpv6 => {
                icmp.push(IcmpField {
                    icmp_type: IcmpType::Number(u8::try_from(first).unwrap_or(u8::MAX)),
                    family: Some(if proto == Proto::Icmp {
                        IcmpFamily::IPv4
                    } else {
                        IcmpFamily::IPv6
                    }),
                });
                continue;
            }
            Proto::Other(_) => continue,
        };
        tcp_like.push(PortProtocol {
            port: first.to_string(),
            end_port: (last > first).then_some(i32::from(last)),
            protocol: Some(protocol),
        });
    }
    let to_ports = tcp_like
        .chunks(40)
        .map(|c| PortRule {
            ports: Some(c.to_vec()),
            ..PortRule::default()
        })
        .collect();
    let icmps = icmp
        .chunks(40)
        .map(|c| IcmpRule {
            fields: Some(c.to_vec()),
        })
        .collect();
    (to_ports, icmps)
}

/// Peers of one kind with the same ports: one rule item (two when ICMP is among the ports).
type Items = BTreeMap<(u8, Vec<(Proto, u16)>), Vec<End>>;

fn group(peers: &BTreeMap<End, Ports>) -> Items {
    let mut items: Items = BTreeMap::new();
    for (end, ports) in peers {
        let kind = match end {
            End::Pods { .. } => 0,
            End::Entity(_) => 1,
            End::Cidr(_) => 2,
            End::Dns(_) => 3,
        };
        items
            .entry((kind, ports.iter().copied().collect()))
            .or_default()
            .push(end.clone());
    }
    items
}

fn policy(
    namespace: &str,
    labels: &[(String, String)],
    acc: &PolicyAcc,
    bootstrap: bool,
    resolver: &Resolver,
) -> CiliumNetworkPolicy {
    let mut ingress = Vec::new();
    for ((_, ports), ends) in group(&acc.ingress) {
        let (to_ports, icmps) = l4(&ports.into_iter().collect());
        let mut base = IngressRule::default();
        for end in &ends {
            match end {
                End::Pods { namespace, labels } => base
                    .from_endpoints
                    .get_or_insert_with(Vec::new)
                    .push(selector(Some(namespace), labels)),
                End::Entity(e) => base.from_entities.get_or_insert_with(Vec::new).push(*e),
                End::Cidr(net) => base
                    .from_cidr
                    .get_or_insert_with(Vec::new)
                    .push(net.to_string()),
                // A name is no source: sources outside the cluster are addresses.
                End::Dns(_) => {}
            }
        }
        if !to_ports.is_empty() {
            ingress.push(IngressRule {
                to_ports: Some(to_ports),
                ..base.clone()
            });
        }
        if !icmps.is_empty() {
            ingress.push(IngressRule {
                icmps: Some(icmps),
                ..base
            });
        }
    }
    let mut egress = Vec::new();
    let mut names: BTreeSet<String> = BTreeSet::new();
    for ((_, ports), ends) in group(&acc.egress) {
        let (to_ports, icmps) = l4(&ports.into_iter().collect());
        let mut base = EgressRule::default();
        for end in &ends {
            match end {
                End::Pods { namespace, labels } => base
                    .to_endpoints
                    .get_or_insert_with(Vec::new)
                    .push(selector(Some(namespace), labels)),
                End::Entity(e) => base.to_entities.get_or_insert_with(Vec::new).push(*e),
                End::Cidr(net) => base
                    .to_cidr
                    .get_or_insert_with(Vec::new)
                    .push(net.to_string()),
                End::Dns(name) => {
                    names.insert(name.clone());
                    base.to_fqdns
                        .get_or_insert_with(Vec::new)
                        .push(FqdnSelector {
                            match_name: Some(name.clone()),
                            match_pattern: None,
                        });
                }
            }
        }
        if !to_ports.is_empty() {
            egress.push(EgressRule {
                to_ports: Some(to_ports),
                ..base.clone()
            });
        }
        if !icmps.is_empty() {
            egress.push(EgressRule {
                icmps: Some(icmps),
                ..base
            });
        }
    }
    if !names.is_empty() {
        // `toFQDNs` matches only names Cilium's DNS proxy saw: a DNS rule towards the
        // resolver, for those names (docs/semantics.md §4.3).
        egress.push(EgressRule {
            to_endpoints: Some(vec![selector(Some(&resolver.namespace), &resolver.labels)]),
            to_ports: Some(vec![PortRule {
                ports: Some(vec![
                    PortProtocol {
                        port: "53".to_owned(),
                        end_port: None,
                        protocol: Some(Protocol::Udp),
                    },
                    PortProtocol {
                        port: "53".to_owned(),
                        end_port: None,
                        protocol: Some(Protocol::Tcp),
                    },
                ]),
                rules: Some(L7Rules {
                    dns: Some(
                        names
                            .iter()
                            .map(|n| FqdnSelector {
                                match_name: Some(n.clone()),
                                match_pattern: None,
                            })
                            .collect(),
                    ),
                    ..L7Rules::default()
                }),
                ..PortRule::default()
            }]),
            ..EgressRule::default()
        });
    }
    let flows = if acc.flows == 1 {
        "1 flow".to_owned()
    } else {
        format!("{} flows", acc.flows)
    };
    let spec = Rule {
        description: Some(format!(
            "netpol suggest: what {flows} needed{}",
            if bootstrap {
                ""
            } else {
                "; adds allows only, changes no default deny"
            }
        )),
        endpoint_selector: Some(selector(None, labels)),
        // Additions to a workload that already has policies change nothing but what they
        // allow; without any policy, each direction with rules becomes default-deny.
        enable_default_deny: Some(DefaultDenyConfig {
            ingress: Some(bootstrap && !ingress.is_empty()),
            egress: Some(bootstrap && !egress.is_empty()),
        }),
        ingress: (!ingress.is_empty()).then_some(ingress),
        egress: (!egress.is_empty()).then_some(egress),
        ..Rule::default()
    };
    let text = serde_json::to_string(&(namespace, &spec)).unwrap_or_default();
    CiliumNetworkPolicy {
        metadata: ObjectMeta {
            name: format!("{}-suggested-{:08x}", acc.name, fnv(&text) >> 32),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        ..CiliumNetworkPolicy::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_names_are_used_only_when_every_port_of_the_name_is_needed() {
        let named = vec![
            ("dns".to_owned(), Proto::Udp, 53, 53),
            ("dns".to_owned(), Proto::Tcp, 53, 53),
            ("http".to_owned(), Proto::Tcp, 8080, 8080),
        ];
        let ports: Ports = [(Proto::Udp, 53), (Proto::Tcp, 8080), (Proto::Tcp, 9000)].into();
        assert_eq!(
            port_texts(&ports, &named, false),
            ["http", "9000", "53/udp"]
        );
        assert_eq!(port_texts(&ports, &named, true), ["dns", "http", "9000"]);
        let ports: Ports = [(Proto::Tcp, 80), (Proto::Tcp, 81), (Proto::Icmp, 8)].into();
        assert_eq!(port_texts(&ports, &[], false), ["80-81", "icmp/8"]);
    }

    #[test]
    fn peers_that_make_up_a_group_are_named_by_the_group() {
        let service = |ns: &str, name: &str| ProfileService {
            namespace: ns.to_owned(),
            name: name.to_owned(),
            selector: Vec::new(),
            ports: Vec::new(),
            file: 0,
            line: 0,
            host_network: false,
            audit: false,
            new: false,
        };
        let profiles = Profiles {
            services: vec![
                service("media", "radarr"),
                service("media", "sonarr"),
                service("media", "lidarr"),
            ],
            namespaces: vec![ProfileNamespace {
                namespace: "media".to_owned(),
                file: 0,
                groups: vec![("arr".to_owned(), vec![0, 1])],
            }],
            ..Profiles::default()
        };
        let peers = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            with_groups(peers(&["sonarr", "radarr", "lidarr"]), "media", &profiles),
            ["arr", "lidarr"]
        );
        assert_eq!(
            with_groups(
                peers(&["media/radarr", "media/sonarr"]),
                "traefik",
                &profiles
            ),
            ["media/arr"]
        );
        assert_eq!(
            with_groups(peers(&["radarr"]), "media", &profiles),
            ["radarr"]
        );
    }

    #[test]
    fn workload_names_are_dns_labels() {
        let l = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        assert_eq!(workload_name(&l("app", "Web_Front")), "web-front");
        assert_eq!(workload_name(&l("x", "--")), "workload");
    }
}
