//! The resolved model: every workload, and every allow expressed from one workload's side.
//!
//! Resolution turns statements between names into *rules* attached to subjects: "traefik →
//! sonarr on http" becomes an egress rule of traefik (to sonarr's pods on 8989/tcp) and an
//! ingress rule of sonarr (from traefik's pods on 8989/tcp). Names, groups, templates and
//! named ports are all resolved here; nothing downstream looks at names again.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ipnet::IpNet;

use crate::diagnostic::source::{Loc, SourceId, SourceMap, Span};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::objects::cilium::Entity;
use crate::objects::fqdn::FqdnSelector;
use crate::objects::port::{L4, PortRange, PortRef, Protocol};
use crate::profile::load::Unread;
use crate::profile::syntax::{
    Acknowledgement, Baseline, BaselineSelect, Body, ClusterProfile, DnsQueries, Enforce, HttpRule,
    Peer, ProfileFile, Statement,
};

/// A `(key, value)` pod label.
pub type Label = (String, String);

/// Identifies a workload in [`Model::services`].
pub type ServiceId = usize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// Sorted by (namespace, name).
    pub services: Vec<ServiceDef>,
    /// Namespaces with rules for every pod (`default-deny:`, namespace `deny:`), sorted.
    pub namespaces: Vec<NamespaceDef>,
    /// Sorted by name.
    pub baselines: Vec<BaselineDef>,
    pub rules: Vec<Rule>,
    pub settings: Settings,
    /// Every namespace profile (with services or not), sorted by namespace.
    pub profiles: Vec<ProfileDef>,
}

/// A namespace profile: where it is written, and its groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileDef {
    pub namespace: String,
    /// The `namespace:` value: its file.
    pub origin: Span,
    /// The default `enforce:` of its services.
    pub enforce: Enforce,
    /// Group name → its member services, sorted by group name.
    pub groups: Vec<(String, Vec<ServiceId>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDef {
    pub namespace: String,
    pub name: String,
    /// Pod labels, sorted by key.
    pub selector: Vec<(String, String)>,
    pub ports: BTreeMap<String, Vec<PortRange>>,
    pub enforce: Enforce,
    pub dns: bool,
    /// `host-network: true`: the pods have their node's identity; no policy of theirs.
    pub host_network: bool,
    pub description: Option<String>,
    pub origin: Span,
}

/// A namespace whose every pod gets a policy of its own (`default-deny:`, namespace `deny:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceDef {
    pub namespace: String,
    /// `None`: no default deny, only the namespace's deny statements.
    pub default_deny: Option<Enforce>,
    pub origin: Span,
}

/// The name of the policy a namespace's pods all get.
pub const NAMESPACE_POLICY: &str = "netpol-namespace";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineDef {
    pub name: String,
    pub pods: Target,
    pub description: Option<String>,
    pub origin: Span,
}

/// Who a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    Service(ServiceId),
    Baseline(usize),
    /// Every pod of [`Model::namespaces`]`[i]`.
    Namespace(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

/// One allow, from the subject's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub subject: Subject,
    pub direction: Direction,
    pub peer: Target,
    /// Empty: every port and protocol (an L3-only rule).
    pub ports: BTreeSet<L4>,
    pub http: Vec<HttpRule>,
    /// DNS names the subject may look up through this rule (L7 DNS; egress to the resolver).
    pub dns: BTreeSet<FqdnSelector>,
    /// A deny (`ingressDeny`/`egressDeny`): wins over every allow.
    pub deny: bool,
    /// The statement (or setting) the rule comes from.
    pub origin: Span,
}

/// The other side of a rule, as Cilium will select it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    Service(ServiceId),
    /// Pods of these namespaces (every namespace if empty) with these labels.
    Pods {
        namespaces: Vec<String>,
        labels: Vec<(String, String)>,
    },
    Entity(Entity),
    Cidr {
        cidr: IpNet,
        except: Vec<IpNet>,
    },
    Fqdn(FqdnSelector),
}

/// Cluster-wide settings (from the cluster file, or defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub resolver: Target,
    pub dns_ports: Vec<PortRange>,
    pub queries: DnsQueries,
    pub kubelet: bool,
    pub origin: Option<Span>,
    /// What the cluster file says about the cluster.
    pub cluster: ClusterFacts,
}

/// The cluster as the cluster file describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterFacts {
    pub name: Option<String>,
    pub pod_cidrs: Vec<IpNet>,
    pub service_cidrs: Vec<IpNet>,
    /// The API server's ports as policies see them; empty: not said.
    pub apiserver_ports: Vec<u16>,
    pub cilium_version: Option<(u32, u32)>,
    /// The cluster's DNS domain (`cluster.local` unless said).
    pub domain: String,
}

/// The oldest Cilium netpol compiles for: `enableDefaultDeny` is from 1.16.
pub const OLDEST_CILIUM: (u32, u32) = (1, 16);

impl Settings {
    fn defaults() -> Self {
        Self {
            resolver: Target::Pods {
                namespaces: vec!["kube-system".into()],
                labels: vec![("k8s-app".into(), "kube-dns".into())],
            },
            dns_ports: vec![
                PortRange {
                    protocol: Protocol::Udp,
                    first: 53,
                    last: 53,
                },
                PortRange {
                    protocol: Protocol::Tcp,
                    first: 53,
                    last: 53,
                },
            ],
            queries: DnsQueries::Any,
            kubelet: true,
            origin: None,
            cluster: ClusterFacts {
                domain: "cluster.local".to_string(),
                ..ClusterFacts::default()
            },
        }
    }
}

/// Resolve decoded profiles into a model. Returns `None` when there were errors (they are in
/// `diagnostics`); warnings do not stop resolution.
pub fn resolve(
    files: &[ProfileFile],
    sources: &SourceMap,
    diagnostics: &mut Diagnostics,
) -> Option<Model> {
    resolve_with(files, &[], sources, diagnostics)
}

/// [`resolve`], knowing the files that could not be read at all: what other files say about
/// them is not checked (one note per such file says how much), rather than reported as
/// errors that are only consequences of theirs.
pub fn resolve_with(
    files: &[ProfileFile],
    unread: &[Unread],
    sources: &SourceMap,
    diagnostics: &mut Diagnostics,
) -> Option<Model> {
    let before = diagnostics.error_count();
    let mut r = Resolver::new(files, sources, diagnostics);
    r.unread = unread;
    r.index();
    r.statements();
    r.warn_shadowed_http();
    r.implicit_rules();
    r.report_template_findings();
    r.warn_unused_templates();
    r.warn_dead_allows();
    r.check_acknowledgements(before);
    r.note_unchecked();
    let model = r.finish();
    (diagnostics.error_count() == before).then_some(model)
}

/// A side of a statement after name resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Service(ServiceId),
    Baseline(usize),
    /// All pods of a namespace; `managed` are the profile services of that namespace.
    Namespace {
        namespace: String,
        managed: Vec<ServiceId>,
    },
    External(Target),
}

/// The warnings that an `acknowledge:` may name: those about a statement or a service.
pub const ACKNOWLEDGEABLE: &[&str] = &[
    "open-to-world",
    "world-all-ports",
    "any-dns-name",
    "loose-dns-pattern",
    "shadowed-http",
    "foreign-statement",
    "unmanaged-pods",
    "unknown-namespace",
    "apiserver-port",
    "dead-allow",
    "enforce-overridden",
    "host-network",
];

/// Where a warning is raised: the statement being resolved and the service it belongs to
/// (their acknowledgements are in force).
#[derive(Debug, Clone, Copy)]
struct Scope {
    statement: Span,
    this: Option<ServiceId>,
}

/// A rule with HTTP rules: its index in [`Resolver::rules`], the `http:` it comes from, and
/// the acknowledgements in force there.
#[derive(Debug, Clone, Copy)]
struct HttpSite {
    rule: usize,
    http: Span,
    scope: Option<Scope>,
}

/// Whether `broad` (a rule's ports) holds every port of `narrow`.
fn covers(broad: &BTreeSet<L4>, narrow: &BTreeSet<L4>) -> bool {
    !broad.is_empty()
        && narrow.iter().all(|n| {
            broad.iter().any(|b| match (b, n) {
                (L4::Port(b), L4::Port(n)) => {
                    b.protocol == n.protocol && b.first <= n.first && n.last <= b.last
                }
                (b, n) => b == n,
            })
        })
}

/// One application of a template: which, to whom, and where the `use:` says so.
#[derive(Debug, Clone)]
struct TemplateUse {
    template: String,
    /// `media/sonarr`, or a baseline's name.
    user: String,
    span: Span,
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// Where a statement stands: which namespace bare names refer to, and what an omitted side is.
#[derive(Debug, Clone, Copy)]
struct Context<'a> {
    namespace: Option<&'a str>,
    this: Option<This>,
}

#[derive(Debug, Clone, Copy)]
enum This {
    Service(ServiceId),
    Baseline(usize),
    Namespace(usize),
}

struct Resolver<'a> {
    files: &'a [ProfileFile],
    /// Files that could not be read at all.
    unread: &'a [Unread],
    /// References not checked because the file they point into has errors, by that file.
    unchecked: BTreeMap<String, Vec<Span>>,
    /// Unused templates not reported because a file with errors may use them, by that file.
    unchecked_unused: BTreeMap<String, Vec<Span>>,
    /// Findings inside templates, with the use that raised each.
    template_findings: Vec<(Diagnostic, TemplateUse)>,
    /// Every `acknowledge:` entry of the profiles.
    acknowledgements: Vec<&'a Acknowledgement>,
    /// Acknowledgements that acknowledged a warning (by the span of their code).
    used_acknowledgements: HashSet<Span>,
    /// The statements being resolved (innermost last).
    scope: Vec<Scope>,
    /// Rules with HTTP rules, and where their statement is.
    http_sites: Vec<HttpSite>,
    sources: &'a SourceMap,
    diagnostics: &'a mut Diagnostics,
    services: Vec<ServiceDef>,
    by_name: HashMap<(String, String), ServiceId>,
    groups: HashMap<(String, String), Vec<ServiceId>>,
    namespaces: HashMap<String, Span>,
    /// The default `enforce:` of each namespace profile.
    profile_enforce: HashMap<String, Enforce>,
    templates: HashMap<String, (&'a crate::profile::syntax::Template, Span)>,
    used_templates: BTreeSet<String>,
    baselines: Vec<(BaselineDef, &'a Baseline)>,
    /// Namespaces whose every pod gets a policy, sorted by namespace.
    namespace_defs: Vec<(NamespaceDef, &'a crate::profile::syntax::NamespaceProfile)>,
    settings: Settings,
    rules: Vec<Rule>,
}

impl<'a> Resolver<'a> {
    fn new(
        files: &'a [ProfileFile],
        sources: &'a SourceMap,
        diagnostics: &'a mut Diagnostics,
    ) -> Self {
        Self {
            files,
            unread: &[],
            unchecked: BTreeMap::new(),
            unchecked_unused: BTreeMap::new(),
            template_findings: Vec::new(),
            acknowledgements: files.iter().flat_map(|f| &f.acknowledgements).collect(),
            used_acknowledgements: HashSet::new(),
            scope: Vec::new(),
            http_sites: Vec::new(),
            sources,
            diagnostics,
            services: Vec::new(),
            by_name: HashMap::new(),
            groups: HashMap::new(),
            namespaces: HashMap::new(),
            profile_enforce: HashMap::new(),
            templates: HashMap::new(),
            used_templates: BTreeSet::new(),
            baselines: Vec::new(),
            namespace_defs: Vec::new(),
            settings: Settings::defaults(),
            rules: Vec::new(),
        }
    }

    fn at(&self, span: Span) -> String {
        let p = self.sources.position(span);
        format!("{}:{}", p.file, p.line)
    }

    /// Declarations first: namespaces, services, groups, templates, cluster settings.
    fn index(&mut self) {
        let mut cluster_file: Option<Span> = None;
        // Services are numbered in (namespace, name) order so that output order never depends
        // on the order files were given in.
        let mut declared: Vec<(
            &'a crate::profile::syntax::NamespaceProfile,
            &'a crate::profile::syntax::Service,
        )> = Vec::new();
        for file in self.files {
            for template in &file.templates {
                if let Some((_, first)) = self.templates.get(&template.name.value) {
                    let first = *first;
                    let at = self.at(first);
                    self.diagnostics.push(
                        Diagnostic::error("duplicate-name", template.name.span, format!("template `{}` is defined twice", template.name.value))
                            .with_label("second definition")
                            .with_related(first, "first definition")
                            .with_help(format!("the first definition is at {at}; template names are shared by all profiles")),
                    );
                } else {
                    self.templates
                        .insert(template.name.value.clone(), (template, template.name.span));
                }
            }
            match &file.body {
                Body::Namespace(ns) => {
                    if let Some(first) = self.namespaces.get(&ns.namespace.value) {
                        let first = *first;
                        let at = self.at(first);
                        self.diagnostics.push(
                            Diagnostic::error(
                                "duplicate-namespace",
                                ns.namespace.span,
                                format!("namespace `{}` has two profiles", ns.namespace.value),
                            )
                            .with_label("second profile")
                            .with_related(first, "first profile")
                            .with_help(format!(
                                "the other profile is at {at}; keep one file per namespace"
                            )),
                        );
                        continue;
                    }
                    self.namespaces
                        .insert(ns.namespace.value.clone(), ns.namespace.span);
                    self.profile_enforce.insert(
                        ns.namespace.value.clone(),
                        ns.enforce.map_or(Enforce::Both, |e| e.value),
                    );
                    for service in &ns.services {
                        declared.push((ns, service));
                    }
                    if ns.default_deny.is_some() || !ns.deny.is_empty() {
                        self.namespace_defs.push((
                            NamespaceDef {
                                namespace: ns.namespace.value.clone(),
                                default_deny: ns.default_deny.map(|d| d.value),
                                origin: ns.default_deny.map_or(ns.namespace.span, |d| d.span),
                            },
                            ns,
                        ));
                    }
                }
                Body::Cluster(cluster) => {
                    if let Some(first) = cluster_file {
                        let at = self.at(first);
                        self.diagnostics.push(
                            Diagnostic::error("duplicate-cluster", file.span, "a second cluster file".to_string())
                                .with_label("second cluster file")
                                .with_help(format!("the cluster file is {at}; keep cluster settings and baselines in one file")),
                        );
                        continue;
                    }
                    cluster_file = Some(file.span);
                    self.cluster_settings(cluster);
                }
                Body::Library => {}
            }
        }
        declared.sort_by(|a, b| {
            (&a.0.namespace.value, &a.1.name.value).cmp(&(&b.0.namespace.value, &b.1.name.value))
        });
        self.namespace_defs
            .sort_by(|a, b| a.0.namespace.cmp(&b.0.namespace));
        for (ns, service) in &declared {
            self.declare_service(ns, service);
        }
        for file in self.files {
            if let Body::Namespace(ns) = &file.body
                && self.namespaces.get(&ns.namespace.value) == Some(&ns.namespace.span)
            {
                self.declare_groups(ns);
            }
        }
        if let Some(Body::Cluster(cluster)) = self
            .files
            .iter()
            .find(|f| Some(f.span) == cluster_file)
            .map(|f| &f.body)
        {
            self.declare_baselines(cluster);
        }
        self.check_overlapping_selectors();
    }

    fn declare_service(
        &mut self,
        ns: &crate::profile::syntax::NamespaceProfile,
        service: &crate::profile::syntax::Service,
    ) {
        let namespace = ns.namespace.value.clone();
        let mut selector: Vec<(String, String)> = match &service.select {
            Some(labels) => labels
                .value
                .iter()
                .map(|(k, v)| (k.value.clone(), v.value.clone()))
                .collect(),
            None => vec![(
                "app.kubernetes.io/name".to_string(),
                service.name.value.clone(),
            )],
        };
        selector.sort();
        let mut ports = BTreeMap::new();
        for p in &service.ports {
            ports.insert(
                p.name.value.clone(),
                p.ranges.iter().map(|r| r.value).collect(),
            );
        }
        let id = self.services.len();
        self.by_name
            .insert((namespace.clone(), service.name.value.clone()), id);
        self.services.push(ServiceDef {
            namespace,
            name: service.name.value.clone(),
            selector,
            ports,
            enforce: service
                .enforce
                .or(ns.enforce)
                .map_or(Enforce::Both, |e| e.value),
            dns: service.dns.or(ns.dns).is_none_or(|d| d.value),
            host_network: service.host_network.is_some_and(|h| h.value),
            description: service.description.clone(),
            origin: service.name.span,
        });
        if service.name.value == NAMESPACE_POLICY
            && (ns.default_deny.is_some() || !ns.deny.is_empty())
        {
            self.diagnostics.push(
                Diagnostic::error(
                    "reserved-name",
                    service.name.span,
                    format!("`{NAMESPACE_POLICY}` is the name of the namespace's own policy"),
                )
                .with_label("taken")
                .with_help("with `default-deny:` or `deny:` the namespace gets a policy of that name; rename the service"),
            );
        }
        if let Some(h) = service.host_network.filter(|h| h.value) {
            let d = Diagnostic::warning(
                    "host-network",
                    h.span,
                    format!(
                        "`{}/{}` runs on the host network: no policy of its own is enforced",
                        ns.namespace.value, service.name.value
                    ),
                )
                .with_label("the node's network")
                .with_help("its pods carry their node's identity (`host` on its node, `remote-node` elsewhere): Cilium enforces pod policies only on pods with their own network. Its peers' policies still allow it (as `host` and `remote-node` on its ports); what reaches it is the host firewall's business, off by default and node-wide");
            self.warn_in(d, None, Some(id));
        }
    }

    fn declare_groups(&mut self, ns: &'a crate::profile::syntax::NamespaceProfile) {
        for group in &ns.groups {
            let key = (ns.namespace.value.clone(), group.name.value.clone());
            if let Some(&id) = self.by_name.get(&key) {
                let at = self.at(self.services.get(id).map_or(group.name.span, |s| s.origin));
                self.diagnostics.push(
                    Diagnostic::error(
                        "duplicate-name",
                        group.name.span,
                        format!("group `{}` has the name of a service", group.name.value),
                    )
                    .with_label("group")
                    .with_help(format!("the service is at {at}; rename the group")),
                );
                continue;
            }
            let mut members = Vec::new();
            for member in &group.members {
                match self
                    .by_name
                    .get(&(ns.namespace.value.clone(), member.value.clone()))
                {
                    Some(&id) => {
                        if !members.contains(&id) {
                            members.push(id);
                        }
                    }
                    None => {
                        if let Some(file) = self.hides_name(&ns.namespace.value, &member.value) {
                            self.not_checked(file, member.span);
                            continue;
                        }
                        let d = self.unknown_service(
                            &ns.namespace.value,
                            &member.value,
                            member.span,
                            false,
                            false,
                        );
                        self.diagnostics.push(d);
                    }
                }
            }
            if group.members.is_empty() {
                self.diagnostics.push(
                    Diagnostic::warning(
                        "empty-group",
                        group.name.span,
                        format!("group `{}` is empty", group.name.value),
                    )
                    .with_label("no members")
                    .with_help("statements naming an empty group allow nothing"),
                );
            }
            self.groups.insert(key, members);
        }
    }

    fn cluster_settings(&mut self, cluster: &ClusterProfile) {
        if let Some(k) = cluster.kubelet {
            self.settings.kubelet = k.value;
        }
        let facts = &mut self.settings.cluster;
        facts.name = cluster.name.as_ref().map(|n| n.value.clone());
        facts.pod_cidrs = cluster.pod_cidrs.iter().map(|c| c.value).collect();
        facts.service_cidrs = cluster.service_cidrs.iter().map(|c| c.value).collect();
        facts.apiserver_ports = cluster.apiserver_ports.iter().map(|p| p.value).collect();
        if let Some(domain) = &cluster.domain {
            facts.domain = domain.value.trim_end_matches('.').to_ascii_lowercase();
        }
        if let Some(v) = cluster.cilium_version {
            facts.cilium_version = Some(v.value);
            if v.value < OLDEST_CILIUM {
                self.diagnostics.push(
                    Diagnostic::error(
                        "cilium-too-old",
                        v.span,
                        format!(
                            "netpol compiles for Cilium {}.{} and later",
                            OLDEST_CILIUM.0, OLDEST_CILIUM.1
                        ),
                    )
                    .with_label("too old")
                    .with_help(format!(
                        "every compiled policy sets `enableDefaultDeny`, which Cilium {}.{} does not know: its API server drops the field, so `enforce: audit` and baselines would enforce default deny; upgrade Cilium first",
                        v.value.0, v.value.1
                    )),
                );
            }
        }
        if let Some(dns) = &cluster.dns {
            self.settings.origin = Some(dns.span);
            if !dns.ports.is_empty() {
                self.settings.dns_ports = dns.ports.iter().map(|p| p.value).collect();
            }
            if let Some(q) = dns.queries {
                self.settings.queries = q.value;
            }
        }
    }

    fn declare_baselines(&mut self, cluster: &'a ClusterProfile) {
        // The resolver may name a service, which only exists once services are declared.
        if let Some(resolver) = cluster.dns.as_ref().and_then(|d| d.resolver.as_ref()) {
            let ctx = Context {
                namespace: None,
                this: None,
            };
            if let Some(ends) = self.resolve_peer(resolver, ctx) {
                match ends.as_slice() {
                    [End::Service(id)] => self.settings.resolver = Target::Service(*id),
                    [End::External(t @ (Target::Entity(_) | Target::Pods { .. } | Target::Cidr { .. }))] => {
                        self.settings.resolver = t.clone();
                    }
                    _ => self.diagnostics.push(
                        Diagnostic::error("invalid-resolver", resolver.span, "the DNS resolver must be one service, a pod selection, an entity or a CIDR".to_string())
                            .with_label("not a single resolver")
                            .with_help("e.g. `resolver: kube-system/coredns`, or `resolver: {entity: host}` with NodeLocal DNSCache"),
                    ),
                }
            }
        }
        let mut sorted: Vec<&'a Baseline> = cluster.baselines.iter().collect();
        sorted.sort_by(|a, b| a.name.value.cmp(&b.name.value));
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for baseline in sorted {
            if let Some(first) = seen.get(baseline.name.value.as_str()) {
                self.diagnostics.push(
                    Diagnostic::error(
                        "duplicate-name",
                        baseline.name.span,
                        format!("baseline `{}` is defined twice", baseline.name.value),
                    )
                    .with_label("second definition")
                    .with_related(*first, "first definition")
                    .with_help("baseline names become policy names and must be unique"),
                );
                continue;
            }
            seen.insert(&baseline.name.value, baseline.name.span);
            let pods = match &baseline.select.value {
                BaselineSelect::All => Target::Pods {
                    namespaces: Vec::new(),
                    labels: Vec::new(),
                },
                BaselineSelect::Pods { namespaces, labels } => {
                    let mut labels = labels.clone();
                    labels.sort();
                    Target::Pods {
                        namespaces: namespaces.clone(),
                        labels,
                    }
                }
            };
            self.baselines.push((
                BaselineDef {
                    name: baseline.name.value.clone(),
                    pods,
                    description: baseline.description.clone(),
                    origin: baseline.name.span,
                },
                baseline,
            ));
        }
    }

    fn check_overlapping_selectors(&mut self) {
        let mut seen: HashMap<(&str, &[Label]), ServiceId> = HashMap::new();
        let mut found = Vec::new();
        for (id, s) in self.services.iter().enumerate() {
            if let Some(&first) = seen.get(&(s.namespace.as_str(), s.selector.as_slice())) {
                found.push((first, id));
            } else {
                seen.insert((s.namespace.as_str(), s.selector.as_slice()), id);
            }
        }
        for (first, second) in found {
            let (Some(a), Some(b)) = (self.services.get(first), self.services.get(second)) else {
                continue;
            };
            let d = Diagnostic::error(
                "duplicate-selector",
                b.origin,
                format!(
                    "services `{}` and `{}` select the same pods",
                    a.name, b.name
                ),
            )
            .with_label("same selector")
            .with_related(a.origin, "same selector")
            .with_help("give each service a `select:` that matches only its own pods");
            self.diagnostics.push(d);
        }
    }

    fn statements(&mut self) {
        let files = self.files;
        for file in files {
            let Body::Namespace(ns) = &file.body else {
                continue;
            };
            if self.namespaces.get(&ns.namespace.value) != Some(&ns.namespace.span) {
                continue;
            }
            let namespace = ns.namespace.value.as_str();
            for statement in &ns.allow {
                self.statement(
                    statement,
                    Context {
                        namespace: Some(namespace),
                        this: None,
                    },
                );
            }
            if let Some(index) = self
                .namespace_defs
                .iter()
                .position(|(d, _)| d.namespace == namespace)
            {
                let ctx = Context {
                    namespace: Some(namespace),
                    this: Some(This::Namespace(index)),
                };
                for statement in &ns.deny {
                    self.deny_statement(statement, ctx);
                }
            }
            for service in &ns.services {
                let Some(&id) = self
                    .by_name
                    .get(&(namespace.to_string(), service.name.value.clone()))
                else {
                    continue;
                };
                let ctx = Context {
                    namespace: Some(namespace),
                    this: Some(This::Service(id)),
                };
                for statement in &service.allow {
                    self.statement(statement, ctx);
                }
                for statement in &service.deny {
                    self.deny_statement(statement, ctx);
                }
                for used in &service.uses {
                    self.apply_template(used, ctx);
                }
            }
        }
        let baselines: Vec<&'a Baseline> = self.baselines.iter().map(|(_, b)| *b).collect();
        for (index, baseline) in baselines.into_iter().enumerate() {
            let ctx = Context {
                namespace: None,
                this: Some(This::Baseline(index)),
            };
            for statement in &baseline.allow {
                self.statement(statement, ctx);
            }
            for statement in &baseline.deny {
                self.deny_statement(statement, ctx);
            }
        }
        self.warn_overridden_enforce();
    }

    fn apply_template(&mut self, used: &Loc<String>, ctx: Context<'_>) {
        let Some((template, _)) = self.templates.get(&used.value).copied() else {
            if let Some(file) = self.hides_template(&used.value) {
                self.not_checked(file, used.span);
                return;
            }
            let names: Vec<&str> = self.templates.keys().map(String::as_str).collect();
            let help =
                match crate::diagnostic::spelling::closest(&used.value, names.iter().copied()) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None if names.is_empty() => {
                        "no profile defines templates; add a `templates:` map".to_string()
                    }
                    None => {
                        let mut names = names;
                        names.sort();
                        format!("the templates are {}", crate::document::list(&names))
                    }
                };
            self.diagnostics.push(
                Diagnostic::error(
                    "unknown-template",
                    used.span,
                    format!("unknown template `{}`", used.value),
                )
                .with_label("not defined")
                .with_help(help),
            );
            return;
        };
        self.used_templates.insert(used.value.clone());
        let start = self.diagnostics.len();
        for statement in &template.allow {
            self.statement(statement, ctx);
        }
        for statement in &template.deny {
            self.deny_statement(statement, ctx);
        }
        // Reported once per template, with every use, by `report_template_findings`.
        let found = self.diagnostics.split_off(start);
        if !found.is_empty() {
            let user = match ctx.this {
                Some(This::Service(id)) => self
                    .services
                    .get(id)
                    .map_or_else(String::new, |s| format!("{}/{}", s.namespace, s.name)),
                Some(This::Baseline(b)) => self
                    .baselines
                    .get(b)
                    .map_or_else(String::new, |(d, _)| d.name.clone()),
                Some(This::Namespace(i)) => self
                    .namespace_defs
                    .get(i)
                    .map_or_else(String::new, |(d, _)| d.namespace.clone()),
                None => String::new(),
            };
            for d in found {
                self.template_findings.push((
                    d,
                    TemplateUse {
                        template: used.value.clone(),
                        user: user.clone(),
                        span: used.span,
                    },
                ));
            }
        }
    }

    /// Each finding inside a template once, with the uses it applies to: the uses as secondary
    /// labels (shown when in the same file) and listed in the help. When the finding reads
    /// differently per use (another receiving service), the first use's wording is kept.
    fn report_template_findings(&mut self) {
        let mut findings = std::mem::take(&mut self.template_findings);
        // Wording and order independent of the order of declarations.
        findings.sort_by(|a, b| (&a.1.user, a.1.span).cmp(&(&b.1.user, b.1.span)));
        let mut groups: Vec<(Diagnostic, Vec<String>, Vec<TemplateUse>)> = Vec::new();
        for (d, use_) in findings {
            let key = (d.severity, d.code, d.span);
            match groups
                .iter_mut()
                .find(|(g, _, _)| (g.severity, g.code, g.span) == key)
            {
                Some((_, messages, uses)) => {
                    if !messages.contains(&d.message) {
                        messages.push(d.message.clone());
                    }
                    if !uses.iter().any(|u| u.span == use_.span) {
                        uses.push(use_);
                    }
                }
                None => {
                    let message = d.message.clone();
                    groups.push((d, vec![message], vec![use_]));
                }
            }
        }
        for (mut d, messages, uses) in groups {
            let Some(first) = uses.first() else {
                continue;
            };
            let template = first.template.clone();
            if messages.len() > 1 {
                let more = uses.len().saturating_sub(1);
                d.message = format!(
                    "{} (and {more} more {} of template `{template}`)",
                    d.message,
                    if more == 1 { "use" } else { "uses" }
                );
            }
            let places: Vec<String> = uses
                .iter()
                .map(|u| format!("`{}` at {}", u.user, self.at(u.span)))
                .collect();
            let applied = format!("in template `{template}`, applied to {}", and_list(&places));
            d.help = Some(match d.help.take() {
                Some(help) => format!("{help} ({applied})"),
                None => applied,
            });
            for u in &uses {
                d = d.with_related(u.span, format!("applied to `{}`", u.user));
            }
            self.diagnostics.push(d);
        }
    }

    /// Templates nobody uses, except those of files only included (catalog libraries: a user
    /// includes a catalog file for the few templates they need).
    fn warn_unused_templates(&mut self) {
        let libraries: BTreeSet<SourceId> = self
            .files
            .iter()
            .filter(|f| f.included)
            .map(|f| f.source)
            .collect();
        let mut unused: Vec<(String, Span)> = self
            .templates
            .iter()
            .filter(|(name, _)| !self.used_templates.contains(*name))
            .filter(|(_, (_, span))| !libraries.contains(&span.source))
            .map(|(name, (_, span))| (name.clone(), *span))
            .collect();
        unused.sort();
        if let Some(file) = self.hides_uses() {
            // A `use:` of the file with errors may be what uses them.
            let spans = unused.into_iter().map(|(_, span)| span);
            self.unchecked_unused.entry(file).or_default().extend(spans);
            return;
        }
        for (name, span) in unused {
            self.diagnostics.push(
                Diagnostic::warning(
                    "unused-template",
                    span,
                    format!("template `{name}` is never used"),
                )
                .with_label("unused")
                .with_help("apply it with `use: [NAME]` on a service, or remove it"),
            );
        }
    }

    /// Resolve a statement, with the acknowledgements of the statement and of the service it
    /// belongs to in force.
    fn statement(&mut self, statement: &Statement, ctx: Context<'_>) {
        let this = match ctx.this {
            Some(This::Service(id)) => Some(id),
            _ => None,
        };
        self.scope.push(Scope {
            statement: statement.span,
            this,
        });
        self.resolve_statement(statement, ctx);
        self.scope.pop();
    }

    /// Report a warning, unless an acknowledgement covers it: one of the statement being
    /// resolved, of the service that statement belongs to, or of `subject`, the service the
    /// warning is about.
    fn warn(&mut self, d: Diagnostic, subject: Option<ServiceId>) {
        let scope = self.scope.last().copied();
        self.warn_in(d, scope, subject);
    }

    fn warn_in(&mut self, d: Diagnostic, scope: Option<Scope>, subject: Option<ServiceId>) {
        let origin = |id: ServiceId| self.services.get(id).map(|s| s.origin);
        let owners: Vec<Span> = scope
            .map(|s| s.statement)
            .into_iter()
            .chain(scope.and_then(|s| s.this).and_then(origin))
            .chain(subject.and_then(origin))
            .collect();
        let found = self
            .acknowledgements
            .iter()
            .find(|a| a.code.value == d.code && owners.contains(&a.owner))
            .map(|a| a.code.span);
        match found {
            Some(span) => {
                self.used_acknowledgements.insert(span);
                self.diagnostics.acknowledge(d);
            }
            None => self.diagnostics.push(d),
        }
    }

    /// Acknowledgements that acknowledge nothing, or give no reason, are warnings themselves.
    /// Unused ones are reported only when there is no error: an error may have kept their
    /// statement from being resolved.
    fn check_acknowledgements(&mut self, errors_before: usize) {
        let clean = self.diagnostics.error_count() == errors_before;
        let mut found = Vec::new();
        for a in &self.acknowledgements {
            let code = a.code.value.as_str();
            if !ACKNOWLEDGEABLE.contains(&code) {
                let help = match crate::diagnostic::spelling::closest(
                    code,
                    ACKNOWLEDGEABLE.iter().copied(),
                ) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => format!(
                        "the warnings that can be acknowledged are {}",
                        crate::document::list(ACKNOWLEDGEABLE)
                    ),
                };
                found.push(
                    Diagnostic::warning(
                        "unused-acknowledgement",
                        a.code.span,
                        format!("`{code}` is not a warning that can be acknowledged"),
                    )
                    .with_label("no such warning")
                    .with_help(help),
                );
            } else if a.reason.is_empty() {
                found.push(
                    Diagnostic::warning(
                        "unjustified-acknowledgement",
                        a.code.span,
                        format!("acknowledgement of `{code}` without a reason"),
                    )
                    .with_label("why?")
                    .with_help(format!(
                        "say why the warning is fine here, e.g. `acknowledge: {{{code}: \"the ingress controller\"}}`"
                    )),
                );
            } else if clean && !self.used_acknowledgements.contains(&a.code.span) {
                found.push(
                    Diagnostic::warning(
                        "unused-acknowledgement",
                        a.code.span,
                        format!("no `{code}` warning here to acknowledge"),
                    )
                    .with_label("acknowledges nothing")
                    .with_help(
                        "remove it, or move it to the statement or service the warning is about",
                    ),
                );
            }
        }
        for d in found {
            self.diagnostics.push(d);
        }
    }

    /// HTTP rules that filter nothing: another statement allows the same peer on the same
    /// ports without HTTP rules, and Cilium then lets every request through (the proxy gets an
    /// allow-all rule for that peer).
    fn warn_shadowed_http(&mut self) {
        let mut found = Vec::new();
        for site in &self.http_sites {
            let Some(rule) = self.rules.get(site.rule) else {
                continue;
            };
            let broader = self.rules.iter().find(|o| {
                o.subject == rule.subject
                    && o.direction == rule.direction
                    && o.peer == rule.peer
                    && o.http.is_empty()
                    && o.origin != rule.origin
                    && covers(&o.ports, &rule.ports)
            });
            if let Some(other) = broader {
                let subject = match rule.subject {
                    Subject::Service(id) => Some(id),
                    Subject::Baseline(_) | Subject::Namespace(_) => None,
                };
                let d = Diagnostic::warning(
                    "shadowed-http",
                    site.http,
                    "the HTTP rules of this statement filter nothing",
                )
                .with_label("never applied")
                .with_related(other.origin, "allows every request")
                .with_help(format!(
                    "the statement at {} allows the same peer on these ports without HTTP rules, so Cilium lets every request through; give that statement the HTTP rules too, or other ports",
                    self.at(other.origin)
                ));
                found.push((d, site.scope, subject));
            }
        }
        for (d, scope, subject) in found {
            self.warn_in(d, scope, subject);
        }
    }

    /// Valid statements that are probably not what was meant: every DNS name, a pattern that
    /// matches more domains than it seems to, every port of the internet, a statement under a
    /// service that is not about it.
    fn warn_statement(
        &mut self,
        statement: &Statement,
        ctx: Context<'_>,
        from: &[End],
        to: &[End],
    ) {
        for peer in statement.to.iter().flat_map(|side| &side.value) {
            if let Peer::Fqdn(FqdnSelector::Pattern(pattern)) = &peer.value {
                self.warn_dns_pattern(pattern, peer.span);
            }
        }
        if statement.on.is_none() {
            let sides = statement.from.iter().chain(&statement.to);
            for peer in sides.flat_map(|side| &side.value) {
                let open = match &peer.value {
                    Peer::Entity(e @ (Entity::World | Entity::All)) => Some(e.as_str().to_string()),
                    Peer::Cidr { cidr, except } if cidr.prefix_len() == 0 && except.is_empty() => {
                        Some(cidr.to_string())
                    }
                    _ => None,
                };
                if let Some(name) = open {
                    self.warn(
                        Diagnostic::warning(
                            "world-all-ports",
                            peer.span,
                            format!("`{name}` on every port and protocol"),
                        )
                        .with_label("no `port:` in this statement")
                        .with_help("every port of every address outside the cluster is rarely what is meant: list the ports, e.g. `port: 443`"),
                        None,
                    );
                }
            }
        }
        if let (Some(_), Some(_), Some(This::Service(id))) =
            (&statement.from, &statement.to, ctx.this)
        {
            let involves = |ends: &[End]| {
                ends.iter().any(|e| match e {
                    End::Service(s) => *s == id,
                    End::Namespace { managed, .. } => managed.contains(&id),
                    End::Baseline(_) | End::External(_) => false,
                })
            };
            if !involves(from) && !involves(to) {
                let name = self
                    .services
                    .get(id)
                    .map_or_else(String::new, |s| format!("{}/{}", s.namespace, s.name));
                self.warn(
                    Diagnostic::warning(
                        "foreign-statement",
                        statement.span,
                        format!("the statement does not involve `{name}`, the service it belongs to"),
                    )
                    .with_label(format!("neither `from` nor `to` is `{name}`"))
                    .with_help("a statement under a service leaves out the side that is the service; put statements between other peers in the namespace's top-level `allow:`"),
                    None,
                );
            }
        }
    }

    /// `*` (every name) and `*tmdb.org` (also `eviltmdb.org`).
    fn warn_dns_pattern(&mut self, pattern: &str, span: Span) {
        if pattern.bytes().all(|b| b == b'*') {
            self.warn(
                Diagnostic::warning(
                    "any-dns-name",
                    span,
                    format!("`{pattern}` matches every DNS name"),
                )
                .with_label("every name")
                .with_help("the pods may then reach every address a lookup returns; name the domains (`*.example.com`), or write `world` if every address is meant"),
                None,
            );
            return;
        }
        let (first, rest) = pattern.split_once('.').unwrap_or((pattern, ""));
        let Some(tail) = first.strip_prefix('*') else {
            return;
        };
        if rest.is_empty()
            || !tail
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            || tail.contains('*')
        {
            return;
        }
        let domain = format!("{tail}.{rest}");
        self.warn(
            Diagnostic::warning(
                "loose-dns-pattern",
                span,
                format!("`{pattern}` also matches `evil{domain}`"),
            )
            .with_label("`*` inside a label")
            .with_help(format!(
                "`*` matches any characters within a label, so any domain ending in `{domain}` matches; for the subdomains of `{domain}` write `*.{domain}`"
            )),
            None,
        );
    }

    fn resolve_statement(&mut self, statement: &Statement, ctx: Context<'_>) {
        let this_end = ctx.this.map(|t| match t {
            This::Service(id) => End::Service(id),
            This::Baseline(b) => End::Baseline(b),
            This::Namespace(i) => End::Namespace {
                namespace: self
                    .namespace_defs
                    .get(i)
                    .map(|(d, _)| d.namespace.clone())
                    .unwrap_or_default(),
                managed: Vec::new(),
            },
        });
        let (from, to) = match (&statement.from, &statement.to, &this_end) {
            (None, None, _) => {
                self.diagnostics.push(
                    Diagnostic::error(
                        "missing-peer",
                        statement.span,
                        "the statement has neither `from` nor `to`".to_string(),
                    )
                    .with_label("this statement")
                    .with_help("say who talks to whom: `from: PEER`, `to: PEER`"),
                );
                return;
            }
            (Some(_), Some(_), _) => (
                self.resolve_side(statement.from.as_ref(), ctx),
                self.resolve_side(statement.to.as_ref(), ctx),
            ),
            (None, Some(_), Some(this)) => (
                Some(vec![this.clone()]),
                self.resolve_side(statement.to.as_ref(), ctx),
            ),
            (Some(_), None, Some(this)) => (
                self.resolve_side(statement.from.as_ref(), ctx),
                Some(vec![this.clone()]),
            ),
            (f, _, None) => {
                let missing = if f.is_none() { "from" } else { "to" };
                self.diagnostics.push(
                    Diagnostic::error("missing-peer", statement.span, format!("the statement has no `{missing}`"))
                        .with_label("incomplete statement")
                        .with_help("only statements under a service, a template or a baseline may leave out one side, which then means that service"),
                );
                return;
            }
        };
        let (Some(from), Some(to)) = (from, to) else {
            return;
        };
        if to.contains(&End::External(Target::Entity(Entity::KubeApiserver))) {
            self.check_apiserver_ports(statement);
        }
        let http: Vec<HttpRule> = statement.http.iter().map(|h| h.value.clone()).collect();
        if !http.is_empty() && statement.on.is_none() {
            if let Some(first) = statement.http.first() {
                self.diagnostics.push(
                    Diagnostic::error(
                        "http-without-ports",
                        first.span,
                        "HTTP rules need ports".to_string(),
                    )
                    .with_label("no `port:` in this statement")
                    .with_help(
                        "Cilium applies HTTP rules to TCP ports; add `port: http` or a port number",
                    ),
                );
            }
            return;
        }
        self.warn_statement(statement, ctx, &from, &to);
        let errors_before = self.diagnostics.error_count();
        let mut produced = false;
        for f in &from {
            if let End::External(Target::Fqdn(sel)) = f {
                let span = statement.from.as_ref().map_or(statement.span, |l| l.span);
                self.diagnostics.push(
                    Diagnostic::error("dns-source", span, format!("DNS name `{}` cannot be a source", sel.text()))
                        .with_label("only a destination")
                        .with_help("Cilium learns the addresses of DNS names from lookups made by the pods, so DNS names only work in `to:`; use a CIDR for incoming traffic"),
                );
                return;
            }
            for t in &to {
                produced |= self.pair(statement, f, t, &http);
            }
        }
        if !produced && self.diagnostics.error_count() == errors_before {
            self.diagnostics.push(
                Diagnostic::error("no-subject", statement.span, "neither side of the statement is a service of a profile".to_string())
                    .with_label("nothing to enforce")
                    .with_help("netpol writes policies for the services profiles declare; name one of them in `from` or `to`"),
            );
        }
    }

    fn resolve_side(
        &mut self,
        side: Option<&Loc<Vec<Loc<Peer>>>>,
        ctx: Context<'_>,
    ) -> Option<Vec<End>> {
        let side = side?;
        let mut out = Vec::new();
        let mut ok = true;
        for peer in &side.value {
            match self.resolve_peer(peer, ctx) {
                Some(ends) => {
                    for e in ends {
                        if !out.contains(&e) {
                            out.push(e);
                        }
                    }
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn resolve_peer(&mut self, peer: &Loc<Peer>, ctx: Context<'_>) -> Option<Vec<End>> {
        let namespace_of_this = match ctx.this {
            Some(This::Service(id)) => self.services.get(id).map(|s| s.namespace.clone()),
            _ => None,
        };
        match &peer.value {
            Peer::Entity(e) => Some(vec![End::External(Target::Entity(*e))]),
            Peer::Cidr { cidr, except } => {
                self.check_cidr(*cidr, peer.span)?;
                Some(vec![End::External(Target::Cidr {
                    cidr: *cidr,
                    except: except.clone(),
                })])
            }
            Peer::Fqdn(sel) => {
                self.check_fqdn(sel, peer.span)?;
                Some(vec![End::External(Target::Fqdn(sel.clone()))])
            }
            Peer::Ref { namespace, name } => {
                // Bare names in templates resolve in the namespace of the service the template
                // is applied to, so that one template serves many namespaces.
                let ns = match namespace
                    .clone()
                    .or(namespace_of_this)
                    .or(ctx.namespace.map(str::to_string))
                {
                    Some(ns) => ns,
                    None => {
                        self.diagnostics.push(
                            Diagnostic::error(
                                "ambiguous-name",
                                peer.span,
                                format!("`{name}` has no namespace here"),
                            )
                            .with_label("which namespace?")
                            .with_help(format!(
                                "outside a namespace profile, write `NAMESPACE/{name}`"
                            )),
                        );
                        return None;
                    }
                };
                let key = (ns.clone(), name.clone());
                if let Some(&id) = self.by_name.get(&key) {
                    return Some(vec![End::Service(id)]);
                }
                if let Some(members) = self.groups.get(&key) {
                    return Some(members.iter().map(|&id| End::Service(id)).collect());
                }
                if let Some(file) = self.hides_name(&ns, name) {
                    self.not_checked(file, peer.span);
                    return None;
                }
                let d = self.unknown_service(&ns, name, peer.span, true, namespace.is_some());
                self.diagnostics.push(d);
                None
            }
            Peer::Namespace { namespace, select } => {
                self.warn_unknown_namespace(namespace, peer.span);
                let managed: Vec<ServiceId> = self
                    .services
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.namespace == *namespace)
                    .map(|(id, _)| id)
                    .collect();
                match select {
                    None => Some(vec![End::Namespace {
                        namespace: namespace.clone(),
                        managed,
                    }]),
                    Some(labels) => {
                        let mut labels = labels.clone();
                        labels.sort();
                        if let Some(id) = managed
                            .iter()
                            .copied()
                            .find(|&id| self.services.get(id).is_some_and(|s| s.selector == labels))
                        {
                            return Some(vec![End::Service(id)]);
                        }
                        if !managed.is_empty() {
                            self.warn(
                                Diagnostic::warning("unmanaged-pods", peer.span, format!("pods selected by labels in `{namespace}`, which has a profile"))
                                    .with_label("not a declared service")
                                    .with_help(format!("if these pods belong to a service of the `{namespace}` profile, name the service so that its own policy allows this too")),
                                None,
                            );
                        }
                        Some(vec![End::External(Target::Pods {
                            namespaces: vec![namespace.clone()],
                            labels,
                        })])
                    }
                }
            }
        }
    }

    /// A namespace no profile declares, spelt like one that a profile does: probably a typo
    /// (`meda/*`). Pods of namespaces without a profile are fine, so only a warning.
    fn warn_unknown_namespace(&mut self, ns: &str, span: Span) {
        if self.namespaces.contains_key(ns)
            || self
                .unread
                .iter()
                .any(|u| u.namespace.as_deref().is_none_or(|n| n == ns))
        {
            return;
        }
        let namespaces: Vec<&str> = self.namespaces.keys().map(String::as_str).collect();
        let Some(best) = crate::diagnostic::spelling::closest(ns, namespaces.iter().copied())
        else {
            return;
        };
        let d = Diagnostic::warning(
            "unknown-namespace",
            span,
            format!("no profile declares namespace `{ns}`"),
        )
        .with_label("no profile")
        .with_help(format!(
            "did you mean `{best}`? (if `{ns}` is a namespace without a profile, acknowledge this warning)"
        ));
        self.warn(d, None);
    }

    /// `written_ns`: the reference names its namespace (`media/sonar`), so suggestions do too.
    fn unknown_service(
        &self,
        ns: &str,
        name: &str,
        span: Span,
        groups_too: bool,
        written_ns: bool,
    ) -> Diagnostic {
        let what = if groups_too {
            "service or group"
        } else {
            "service"
        };
        let help = if self.namespaces.contains_key(ns) {
            let mut candidates = self.names_in(ns, groups_too);
            if !written_ns && groups_too {
                // `to: wrold` is a misspelt entity more often than a service.
                candidates.extend(crate::profile::syntax::ENTITIES.iter().map(|(e, _)| *e));
            }
            match crate::diagnostic::spelling::closest(name, candidates.iter().copied()) {
                Some(best) if crate::profile::syntax::entity_named(best).is_some() => {
                    format!("did you mean `{best}` (the Cilium entity)?")
                }
                Some(best) if written_ns => format!("did you mean `{ns}/{best}`?"),
                Some(best) => format!("did you mean `{best}`?"),
                None => match self.namespaces_declaring(name, groups_too).as_slice() {
                    // `to: postgres` from media, where postgres is a service of databases.
                    [other] if !written_ns && groups_too => {
                        format!("did you mean `{other}/{name}`?")
                    }
                    _ => format!("namespace `{ns}` declares no {what} `{name}`"),
                },
            }
        } else {
            let namespaces: Vec<&str> = self.namespaces.keys().map(String::as_str).collect();
            match crate::diagnostic::spelling::closest(ns, namespaces.iter().copied()) {
                Some(best_ns) => {
                    let candidates = self.names_in(best_ns, groups_too);
                    match crate::diagnostic::spelling::closest(name, candidates.iter().copied()) {
                        Some(best) => format!("did you mean `{best_ns}/{best}`?"),
                        None => format!(
                            "no profile declares namespace `{ns}`; did you mean namespace `{best_ns}`?"
                        ),
                    }
                }
                None => format!(
                    "no profile declares namespace `{ns}`; for pods without a profile write `{{namespace: {ns}, select: {{LABEL: VALUE}}}}`"
                ),
            }
        };
        Diagnostic::error(
            "unknown-service",
            span,
            format!("unknown {what} `{name}` in namespace `{ns}`"),
        )
        .with_label("not declared")
        .with_help(help)
    }

    /// The services (and groups) of a namespace.
    fn names_in(&self, ns: &str, groups_too: bool) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .by_name
            .keys()
            .filter(|(n, _)| n == ns)
            .map(|(_, s)| s.as_str())
            .collect();
        if groups_too {
            names.extend(
                self.groups
                    .keys()
                    .filter(|(n, _)| n == ns)
                    .map(|(_, g)| g.as_str()),
            );
        }
        names
    }

    /// The namespaces that declare a service (or group) `name`, sorted.
    fn namespaces_declaring(&self, name: &str, groups_too: bool) -> Vec<&str> {
        let mut found: Vec<&str> = self
            .by_name
            .keys()
            .chain(self.groups.keys().filter(|_| groups_too))
            .filter(|(_, n)| n == name)
            .map(|(ns, _)| ns.as_str())
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Rules for one (from, to) pair. Returns whether any rule was produced.
    fn pair(&mut self, statement: &Statement, from: &End, to: &End, http: &[HttpRule]) -> bool {
        let mut produced = false;
        // Receivers: the managed services whose ports resolve the statement's port names.
        match to {
            End::Namespace { namespace, managed } => {
                let numeric = statement
                    .on
                    .as_ref()
                    .is_none_or(|on| on.iter().all(|p| !matches!(p.value, PortRef::Name(_))));
                let mut resolved_any = false;
                for &m in managed {
                    let Some(ports) = self.resolve_ports(statement, Some(m), true) else {
                        continue;
                    };
                    resolved_any = true;
                    if !self.check_http(statement, &ports) {
                        return true;
                    }
                    produced |= self.add(
                        statement,
                        &End::Service(m),
                        Direction::Ingress,
                        self.target_of(from),
                        &ports,
                        http,
                    );
                    if !numeric {
                        produced |= self.add(
                            statement,
                            from,
                            Direction::Egress,
                            Target::Service(m),
                            &ports,
                            http,
                        );
                    }
                }
                if numeric {
                    if let Some(ports) = self.resolve_ports(statement, None, false) {
                        produced |= self.add(
                            statement,
                            from,
                            Direction::Egress,
                            Target::Pods {
                                namespaces: vec![namespace.clone()],
                                labels: Vec::new(),
                            },
                            &ports,
                            http,
                        );
                    }
                } else if !resolved_any {
                    self.resolve_ports(statement, None, false);
                }
            }
            _ => {
                let receiver = match to {
                    End::Service(id) => Some(*id),
                    _ => None,
                };
                let Some(ports) = self.resolve_ports(statement, receiver, false) else {
                    return true;
                };
                if !self.check_http(statement, &ports) {
                    return true;
                }
                // HTTP rules are enforced once, by the receiver's proxy when the receiver has a
                // policy of ours; the sender then allows the port plainly.
                let sender_http: &[HttpRule] = if matches!(to, End::Service(_) | End::Baseline(_)) {
                    &[]
                } else {
                    http
                };
                match from {
                    End::Namespace { managed, .. } => {
                        for &m in managed {
                            produced |= self.add(
                                statement,
                                &End::Service(m),
                                Direction::Egress,
                                self.target_of(to),
                                &ports,
                                sender_http,
                            );
                        }
                    }
                    _ => {
                        produced |= self.add(
                            statement,
                            from,
                            Direction::Egress,
                            self.target_of(to),
                            &ports,
                            sender_http,
                        )
                    }
                }
                produced |= self.add(
                    statement,
                    to,
                    Direction::Ingress,
                    self.target_of(from),
                    &ports,
                    http,
                );
            }
        }
        produced
    }

    /// What Cilium selects for this end when it is the *peer* of a rule.
    fn target_of(&self, end: &End) -> Target {
        match end {
            End::Service(id) => Target::Service(*id),
            End::Baseline(b) => self.baselines.get(*b).map_or(
                Target::Pods {
                    namespaces: Vec::new(),
                    labels: Vec::new(),
                },
                |(d, _)| d.pods.clone(),
            ),
            End::Namespace { namespace, .. } => Target::Pods {
                namespaces: vec![namespace.clone()],
                labels: Vec::new(),
            },
            End::External(t) => t.clone(),
        }
    }

    /// Add a rule if `subject` is something netpol writes a policy for.
    fn add(
        &mut self,
        statement: &Statement,
        subject: &End,
        direction: Direction,
        peer: Target,
        ports: &BTreeSet<L4>,
        http: &[HttpRule],
    ) -> bool {
        let subject = match subject {
            End::Service(id) => Subject::Service(*id),
            End::Baseline(b) => Subject::Baseline(*b),
            End::Namespace { .. } | End::External(_) => return false,
        };
        if direction == Direction::Ingress {
            if let Target::Fqdn(_) = peer {
                return false;
            }
            self.warn_open_ingress(subject, &peer, statement.span);
        }
        if let Some(first) = statement.http.first().filter(|_| !http.is_empty()) {
            self.http_sites.push(HttpSite {
                rule: self.rules.len(),
                http: first.span,
                scope: self.scope.last().copied(),
            });
        }
        self.rules.push(Rule {
            subject,
            direction,
            peer,
            ports: ports.clone(),
            http: http.to_vec(),
            dns: BTreeSet::new(),
            deny: false,
            origin: statement.span,
        });
        true
    }

    fn warn_open_ingress(&mut self, subject: Subject, peer: &Target, span: Span) {
        let open = match peer {
            Target::Entity(Entity::World | Entity::All) => true,
            Target::Cidr { cidr, except } => cidr.prefix_len() == 0 && except.is_empty(),
            _ => false,
        };
        if !open {
            return;
        }
        let name = match subject {
            Subject::Service(id) => self
                .services
                .get(id)
                .map_or(String::new(), |s| format!("{}/{}", s.namespace, s.name)),
            Subject::Baseline(b) => self
                .baselines
                .get(b)
                .map_or(String::new(), |(d, _)| d.name.clone()),
            Subject::Namespace(i) => self.namespace_defs.get(i).map_or(String::new(), |(d, _)| {
                format!("every pod of `{}`", d.namespace)
            }),
        };
        let service = match subject {
            Subject::Service(id) => Some(id),
            Subject::Baseline(_) | Subject::Namespace(_) => None,
        };
        self.warn(
            Diagnostic::warning(
                "open-to-world",
                span,
                format!("`{name}` accepts connections from the internet"),
            )
            .with_label("open to `world`")
            .with_help("fine for an ingress controller; anything else should sit behind it; if this is one, acknowledge the warning"),
            service,
        );
    }

    /// Resolve `on:` against the receiving service. `quiet`: return `None` instead of reporting
    /// names the receiver lacks (namespace-wide statements try every service).
    fn resolve_ports(
        &mut self,
        statement: &Statement,
        receiver: Option<ServiceId>,
        quiet: bool,
    ) -> Option<BTreeSet<L4>> {
        let mut out = BTreeSet::new();
        let Some(on) = &statement.on else {
            return Some(out);
        };
        let mut ok = true;
        for port in on {
            match &port.value {
                PortRef::Range(r) => {
                    out.insert(L4::Port(*r));
                }
                PortRef::Icmp(i) => {
                    out.insert(L4::Icmp(*i));
                }
                PortRef::Name(name) => {
                    let service = receiver.and_then(|id| self.services.get(id));
                    match service.and_then(|s| s.ports.get(name)) {
                        Some(ranges) => out.extend(ranges.iter().map(|r| L4::Port(*r))),
                        None if quiet => return None,
                        None => {
                            ok = false;
                            if let Some(file) = service.and_then(|s| self.hides_ports(s)) {
                                self.not_checked(file, port.span);
                                continue;
                            }
                            let d = match service {
                                Some(s) => {
                                    let names: Vec<&str> = s.ports.keys().map(String::as_str).collect();
                                    let help = match crate::diagnostic::spelling::closest(name, names.iter().copied()) {
                                        Some(best) => format!("did you mean `{best}`?"),
                                        None if names.is_empty() => format!("`{}` declares no ports; add `ports: {{{name}: NUMBER}}` to it", s.name),
                                        None => format!("`{}` has the ports {}", s.name, crate::document::list(&names)),
                                    };
                                    Diagnostic::error("unknown-port-name", port.span, format!("service `{}/{}` has no port named `{name}`", s.namespace, s.name))
                                        .with_label("unknown port name")
                                        .with_help(help)
                                }
                                None => Diagnostic::error("unknown-port-name", port.span, format!("port name `{name}` cannot be resolved here"))
                                    .with_label("no service to take it from")
                                    .with_help("port names resolve against the receiving service; for other destinations write a number such as `443`"),
                            };
                            self.diagnostics.push(d);
                        }
                    }
                }
            }
        }
        ok.then_some(out)
    }

    /// L7 HTTP rules only on TCP ports (docs/semantics.md §1.6).
    fn check_http(&mut self, statement: &Statement, ports: &BTreeSet<L4>) -> bool {
        let Some(first) = statement.http.first() else {
            return true;
        };
        if let Some(bad) = ports.iter().find(|p| {
            !matches!(
                p,
                L4::Port(PortRange {
                    protocol: Protocol::Tcp,
                    ..
                })
            )
        }) {
            self.diagnostics.push(
                Diagnostic::error("http-on-non-tcp", first.span, format!("HTTP rules on `{bad}`"))
                    .with_label("needs TCP ports only")
                    .with_help("Cilium applies HTTP rules to TCP only; move the other ports to a statement of their own"),
            );
            return false;
        }
        true
    }

    /// DNS (with the DNS proxy) and kubelet rules every workload gets.
    fn implicit_rules(&mut self) {
        let resolver = self.settings.resolver.clone();
        let dns_ports: BTreeSet<L4> = self
            .settings
            .dns_ports
            .iter()
            .map(|p| L4::Port(*p))
            .collect();
        let mut resolver_used = false;
        let mut fqdns: HashMap<ServiceId, BTreeSet<FqdnSelector>> = HashMap::new();
        for rule in &self.rules {
            if let (Subject::Service(id), Direction::Egress, Target::Fqdn(sel)) =
                (rule.subject, rule.direction, &rule.peer)
            {
                fqdns.entry(id).or_default().insert(sel.clone());
            }
        }
        for id in 0..self.services.len() {
            let Some(service) = self.services.get(id) else {
                continue;
            };
            let origin = service.origin;
            let wants_dns = service.dns;
            let names = fqdns.remove(&id).unwrap_or_default();
            // docs/semantics.md §4.1, pitfall 1: toFQDNs only works when an L7 DNS rule sends
            // the pod's lookups through the DNS proxy, so FQDN peers always bring their DNS rule.
            if wants_dns || !names.is_empty() {
                let dns = match self.settings.queries {
                    DnsQueries::Any => BTreeSet::from([FqdnSelector::Pattern("*".to_string())]),
                    DnsQueries::Declared => declared_queries(&names, &self.settings.cluster.domain),
                };
                if resolver != Target::Service(id) {
                    resolver_used = true;
                    self.rules.push(Rule {
                        subject: Subject::Service(id),
                        direction: Direction::Egress,
                        peer: resolver.clone(),
                        ports: dns_ports.clone(),
                        http: Vec::new(),
                        dns,
                        deny: false,
                        origin: self.settings.origin.unwrap_or(origin),
                    });
                }
            }
            if self.settings.kubelet {
                // docs/semantics.md §6.3: probes come from the local node (`host`). Cilium
                // allows them by default (allow-localhost); saying so keeps them working with
                // `--allow-localhost=policy` too.
                self.rules.push(Rule {
                    subject: Subject::Service(id),
                    direction: Direction::Ingress,
                    peer: Target::Entity(Entity::Host),
                    ports: BTreeSet::new(),
                    http: Vec::new(),
                    dns: BTreeSet::new(),
                    deny: false,
                    origin: self.settings.origin.unwrap_or(origin),
                });
            }
        }
        // A namespace's own policy: its pods, declared or not, may resolve names and answer the
        // kubelet's probes; nothing else (docs: namespace default deny).
        for (index, (def, _)) in self.namespace_defs.iter().enumerate() {
            let Some(enforce) = def.default_deny else {
                continue;
            };
            if enforce.egress() || enforce == Enforce::Audit {
                resolver_used = true;
                self.rules.push(Rule {
                    subject: Subject::Namespace(index),
                    direction: Direction::Egress,
                    peer: resolver.clone(),
                    ports: dns_ports.clone(),
                    http: Vec::new(),
                    dns: BTreeSet::from([FqdnSelector::Pattern("*".to_string())]),
                    deny: false,
                    origin: def.origin,
                });
            }
            if self.settings.kubelet && (enforce.ingress() || enforce == Enforce::Audit) {
                self.rules.push(Rule {
                    subject: Subject::Namespace(index),
                    direction: Direction::Ingress,
                    peer: Target::Entity(Entity::Host),
                    ports: BTreeSet::new(),
                    http: Vec::new(),
                    dns: BTreeSet::new(),
                    deny: false,
                    origin: def.origin,
                });
            }
        }
        // A resolver that is itself a workload accepts lookups from every pod.
        if let Target::Service(resolver_id) = resolver
            && resolver_used
        {
            let origin = self
                .settings
                .origin
                .or_else(|| self.services.get(resolver_id).map(|s| s.origin))
                .unwrap_or_default();
            self.rules.push(Rule {
                subject: Subject::Service(resolver_id),
                direction: Direction::Ingress,
                peer: Target::Pods {
                    namespaces: Vec::new(),
                    labels: Vec::new(),
                },
                ports: dns_ports,
                http: Vec::new(),
                dns: BTreeSet::new(),
                deny: false,
                origin,
            });
        }
    }

    /// A `deny:` statement: one side is where it sits (a service, a template's service, a
    /// namespace, a baseline), the other the peers denied; compiled to `ingressDeny` or
    /// `egressDeny` of that subject only.
    fn deny_statement(&mut self, statement: &Statement, ctx: Context<'_>) {
        let subject = match ctx.this {
            Some(This::Service(id)) => Subject::Service(id),
            Some(This::Baseline(b)) => Subject::Baseline(b),
            Some(This::Namespace(i)) => Subject::Namespace(i),
            None => return,
        };
        let (direction, side) = match (&statement.from, &statement.to) {
            (Some(_), Some(_)) | (None, None) => {
                self.diagnostics.push(
                    Diagnostic::error(
                        "deny-sides",
                        statement.span,
                        "a deny statement names one side: `to:` or `from:`".to_string(),
                    )
                    .with_label("one side only")
                    .with_help("the other side is where the statement sits (the service, the namespace or the baseline): `deny: [{to: 169.254.169.254/32}]`"),
                );
                return;
            }
            (None, Some(to)) => (Direction::Egress, to),
            (Some(from), None) => (Direction::Ingress, from),
        };
        if let Some(first) = statement.http.first() {
            self.diagnostics.push(
                Diagnostic::error("deny-http", first.span, "a deny cannot have HTTP rules".to_string())
                    .with_label("not in a deny")
                    .with_help("Cilium's deny rules are L3/L4 only; deny the port, or allow only the requests you want"),
            );
            return;
        }
        let Some(ends) = self.resolve_side(Some(side), ctx) else {
            return;
        };
        for end in ends {
            let (peer, receiver) = match &end {
                End::External(Target::Fqdn(sel)) => {
                    self.diagnostics.push(
                        Diagnostic::error("deny-dns", side.span, format!("DNS name `{}` cannot be denied", sel.text()))
                            .with_label("a DNS name")
                            .with_help("Cilium's deny rules take no `toFQDNs`: deny the addresses (a CIDR), or simply do not allow the name"),
                    );
                    continue;
                }
                End::Service(id) => (Target::Service(*id), Some(*id)),
                other => (self.target_of(other), None),
            };
            let receiver = match (direction, subject) {
                (Direction::Egress, _) => receiver,
                (Direction::Ingress, Subject::Service(id)) => Some(id),
                (Direction::Ingress, _) => None,
            };
            let Some(ports) = self.resolve_ports(statement, receiver, false) else {
                continue;
            };
            self.rules.push(Rule {
                subject,
                direction,
                peer,
                ports,
                http: Vec::new(),
                dns: BTreeSet::new(),
                deny: true,
                origin: statement.span,
            });
        }
    }

    /// `to: kube-apiserver` on a port the API server does not listen on (as policies see it,
    /// after the `kubernetes` Service's translation).
    fn check_apiserver_ports(&mut self, statement: &Statement) {
        let Some(on) = &statement.on else { return };
        let known = self.settings.cluster.apiserver_ports.clone();
        for port in on {
            let PortRef::Range(r) = &port.value else {
                continue;
            };
            let listens = |p: u16| r.first <= p && p <= r.last;
            if known.is_empty() {
                if r.first == 443 && r.last == 443 {
                    self.warn(
                        Diagnostic::warning("apiserver-port", port.span, "policies see the API server's own port, not the `kubernetes` Service's 443".to_string())
                            .with_label("likely 6443")
                            .with_help("Cilium judges the connection after the Service is translated: 6443 on Talos and kubeadm clusters; say which in the cluster file (`cluster: {apiserver-ports: [6443]}`) and write that port"), None);
                }
            } else if !known.iter().any(|p| listens(*p)) {
                let ports: Vec<String> = known.iter().map(ToString::to_string).collect();
                self.diagnostics.push(
                    Diagnostic::error("apiserver-port", port.span, format!("the API server listens on {}, not on `{}`", crate::document::list(&ports.iter().map(String::as_str).collect::<Vec<_>>()), r))
                        .with_label("not an API server port")
                        .with_help(format!("policies see the port after the `kubernetes` Service is translated (the cluster file's `apiserver-ports`); write `on: {}`", ports.first().map_or("6443", String::as_str))),
                );
            }
        }
    }

    /// A CIDR inside the pod or Service ranges never matches: CIDR rules select only addresses
    /// outside the cluster, and policies see pods, never ClusterIPs.
    fn check_cidr(&mut self, cidr: IpNet, span: Span) -> Option<()> {
        let facts = &self.settings.cluster;
        let within = |ranges: &[IpNet]| ranges.iter().find(|r| r.contains(&cidr)).copied();
        if let Some(range) = within(&facts.pod_cidrs) {
            self.diagnostics.push(
                Diagnostic::error("cidr-in-cluster", span, format!("`{cidr}` is inside the pod range `{range}`"))
                    .with_label("never matches pods")
                    .with_help("CIDR rules select addresses outside the cluster only; name the pods instead: a service (`NAMESPACE/NAME`) or `{namespace: NS, select: {LABEL: VALUE}}`"),
            );
            return None;
        }
        if let Some(range) = within(&facts.service_cidrs) {
            self.diagnostics.push(
                Diagnostic::error("cidr-in-cluster", span, format!("`{cidr}` is inside the Service range `{range}`"))
                    .with_label("never matches")
                    .with_help("policies see the pod a Service address is translated to, never the ClusterIP: name the service behind it (`NAMESPACE/NAME`)"),
            );
            return None;
        }
        Some(())
    }

    /// DNS names of the cluster's own Services never match (`toFQDNs` selects addresses outside
    /// the cluster), and `**.` needs Cilium 1.19.
    fn check_fqdn(&mut self, sel: &FqdnSelector, span: Span) -> Option<()> {
        let domain = self.settings.cluster.domain.clone();
        let text = sel.text().trim_end_matches('.');
        if text == domain || text.ends_with(&format!(".{domain}")) {
            self.diagnostics.push(
                Diagnostic::error("cluster-dns-name", span, format!("`{text}` is a name inside the cluster (`{domain}`)"))
                    .with_label("never matches")
                    .with_help("`toFQDNs` selects addresses outside the cluster; for a Service of the cluster name its workload (`NAMESPACE/NAME`)"),
            );
            return None;
        }
        if let Some(v) = self.settings.cluster.cilium_version
            && v < (1, 19)
            && text.starts_with("**.")
        {
            self.diagnostics.push(
                Diagnostic::error(
                    "too-new-for-cilium",
                    span,
                    format!(
                        "`**.` patterns need Cilium 1.19; the cluster runs {}.{}",
                        v.0, v.1
                    ),
                )
                .with_label("not in this version")
                .with_help("write `*.` (one label) per level, or upgrade Cilium"),
            );
            return None;
        }
        Some(())
    }

    /// A namespace's default deny covers every pod of it, its services included: a service
    /// that says less (`audit`, one direction) is enforced anyway.
    fn warn_overridden_enforce(&mut self) {
        let mut found = Vec::new();
        for (def, _) in &self.namespace_defs {
            let Some(ns_enforce) = def.default_deny else {
                continue;
            };
            for (id, s) in self
                .services
                .iter()
                .enumerate()
                .filter(|(_, s)| s.namespace == def.namespace)
            {
                let tighter = (ns_enforce.ingress() && !s.enforce.ingress())
                    || (ns_enforce.egress() && !s.enforce.egress());
                if tighter && !s.host_network {
                    found.push((
                        id,
                        s.origin,
                        s.name.clone(),
                        s.enforce,
                        ns_enforce,
                        def.origin,
                    ));
                }
            }
        }
        for (id, origin, name, service, namespace, ns_origin) in found {
            let d = Diagnostic::warning(
                    "enforce-overridden",
                    origin,
                    format!(
                        "`{name}` is `enforce: {}`, but the namespace's `default-deny: {}` enforces it",
                        service.as_str(),
                        namespace.as_str()
                    ),
                )
                .with_label("enforced anyway")
                .with_related(ns_origin, "the namespace's default deny")
                .with_help("the namespace policy selects every pod, this one too: use `default-deny: audit` until every service of the namespace is enforced");
            self.warn_in(d, None, Some(id));
        }
    }

    /// Allows that a deny of the same subject (or of the namespace around it) makes dead: the
    /// deny wins whatever the allow says (docs/semantics.md §2.4).
    fn warn_dead_allows(&mut self) {
        let mut found = Vec::new();
        for deny in self.rules.iter().filter(|r| r.deny) {
            for allow in self
                .rules
                .iter()
                .filter(|r| !r.deny && r.direction == deny.direction)
            {
                let same_subject = match (deny.subject, allow.subject) {
                    (a, b) if a == b => true,
                    (Subject::Namespace(i), Subject::Service(id)) => {
                        let ns = self
                            .namespace_defs
                            .get(i)
                            .map(|(d, _)| d.namespace.as_str());
                        self.services
                            .get(id)
                            .is_some_and(|s| Some(s.namespace.as_str()) == ns)
                    }
                    _ => false,
                };
                if same_subject
                    && self.covers(&deny.peer, &allow.peer)
                    && ports_cover(&deny.ports, &allow.ports)
                {
                    let this = match allow.subject {
                        Subject::Service(id) => Some(id),
                        _ => None,
                    };
                    found.push((allow.origin, deny.origin, this));
                }
            }
        }
        found.sort();
        found.dedup();
        for (allow, deny, this) in found {
            let d = Diagnostic::warning("dead-allow", allow, "this allow never takes effect: a deny covers it".to_string())
                .with_label("denied anyway")
                .with_related(deny, "the deny")
                .with_help("in Cilium a deny wins over every allow, whatever the order; narrow the deny or remove the allow");
            let scope = Scope {
                statement: allow,
                this,
            };
            self.warn_in(d, Some(scope), None);
        }
    }

    /// Whether the deny peer `deny` includes every address of the allow peer `allow`.
    fn covers(&self, deny: &Target, allow: &Target) -> bool {
        let namespace_of = |t: &Target| match t {
            Target::Service(id) => self.services.get(*id).map(|s| s.namespace.clone()),
            Target::Pods { namespaces, .. } if namespaces.len() == 1 => namespaces.first().cloned(),
            _ => None,
        };
        match (deny, allow) {
            (d, a) if d == a => true,
            (Target::Entity(Entity::All), _) => true,
            (Target::Entity(Entity::World), Target::Cidr { .. } | Target::Fqdn(_)) => true,
            (Target::Cidr { cidr, except }, Target::Cidr { cidr: inner, .. }) => {
                cidr.contains(inner)
                    && !except
                        .iter()
                        .any(|e| e.contains(inner) || inner.contains(e))
            }
            (Target::Pods { namespaces, labels }, a)
                if labels.is_empty() && namespaces.len() == 1 =>
            {
                namespace_of(a).is_some_and(|ns| namespaces.first() == Some(&ns))
            }
            (
                Target::Entity(Entity::Cluster),
                Target::Service(_)
                | Target::Pods { .. }
                | Target::Entity(Entity::Host | Entity::RemoteNode | Entity::KubeApiserver),
            ) => true,
            _ => false,
        }
    }

    /// The file whose errors may hide a service or group `name` of namespace `ns`.
    fn hides_name(&self, ns: &str, name: &str) -> Option<String> {
        for file in self.files {
            if let Body::Namespace(p) = &file.body
                && p.namespace.value == ns
                && file.incomplete.may_lack(name)
            {
                return Some(self.file_name(file));
            }
        }
        self.unread
            .iter()
            .find(|u| match &u.namespace {
                Some(declared) => declared == ns,
                None => !self.namespaces.contains_key(ns),
            })
            .map(|u| u.file.clone())
    }

    /// The file whose errors may hide a template `name`.
    fn hides_template(&self, name: &str) -> Option<String> {
        if let Some(file) = self.files.iter().find(|f| f.incomplete.may_lack(name)) {
            return Some(self.file_name(file));
        }
        self.unread
            .iter()
            .find(|u| u.may_define_template(name))
            .map(|u| u.file.clone())
    }

    /// The file whose errors may hide port names of `service`.
    fn hides_ports(&self, service: &ServiceDef) -> Option<String> {
        self.files
            .iter()
            .find(|f| {
                f.source == service.origin.source && f.incomplete.services.contains(&service.name)
            })
            .map(|f| self.file_name(f))
    }

    /// The file whose errors may hide a `use:` of a template.
    fn hides_uses(&self) -> Option<String> {
        if let Some(file) = self
            .files
            .iter()
            .find(|f| f.incomplete.any_name || !f.incomplete.services.is_empty())
        {
            return Some(self.file_name(file));
        }
        self.unread.first().map(|u| u.file.clone())
    }

    fn file_name(&self, file: &ProfileFile) -> String {
        self.sources
            .get(file.source)
            .map_or_else(String::new, |f| f.name.clone())
    }

    fn not_checked(&mut self, file: String, span: Span) {
        self.unchecked.entry(file).or_default().push(span);
    }

    /// One note per file with errors: what of the other files was not checked because of it.
    fn note_unchecked(&mut self) {
        let mut files: BTreeSet<&String> = self.unchecked.keys().collect();
        files.extend(self.unchecked_unused.keys());
        let mut notes = Vec::new();
        for file in files {
            let mut spans = self.unchecked.get(file).cloned().unwrap_or_default();
            spans.sort();
            spans.dedup();
            let unused = self.unchecked_unused.get(file).map_or(0, Vec::len);
            let also = match unused {
                0 => String::new(),
                1 => "; a template that may be unused was not reported either".to_string(),
                n => format!("; {n} templates that may be unused were not reported either"),
            };
            let note = match spans.split_first() {
                Some((first, rest)) => {
                    let n = spans.len();
                    // Places in the first one's file are labelled; the others are listed.
                    let mut places: Vec<String> = rest
                        .iter()
                        .filter(|s| s.source != first.source)
                        .map(|s| self.at(*s))
                        .collect();
                    places.dedup();
                    let mut help = format!("fix `{file}` and check again{also}");
                    if !places.is_empty() {
                        let more = places.len().saturating_sub(5);
                        places.truncate(5);
                        help.push_str(&format!("; also not checked: {}", places.join(", ")));
                        if more > 0 {
                            help.push_str(&format!(" and {more} more"));
                        }
                    }
                    let mut d = Diagnostic::note(
                        "not-checked",
                        *first,
                        format!(
                            "{n} {} to `{file}` {} not checked: that file has errors",
                            if n == 1 { "reference" } else { "references" },
                            if n == 1 { "was" } else { "were" },
                        ),
                    )
                    .with_label("not checked")
                    .with_help(help);
                    for span in rest {
                        d = d.with_related(*span, "not checked");
                    }
                    d
                }
                None => {
                    let Some(first) = self.unchecked_unused.get(file).and_then(|s| s.iter().min())
                    else {
                        continue;
                    };
                    Diagnostic::note(
                        "not-checked",
                        *first,
                        format!("unused templates were not reported: `{file}` has errors"),
                    )
                    .with_label("not checked")
                    .with_help(format!(
                        "a `use:` of `{file}` may apply them; fix that file and check again"
                    ))
                }
            };
            notes.push(note);
        }
        for note in notes {
            self.diagnostics.push(note);
        }
    }

    fn finish(self) -> Model {
        let mut profiles: Vec<ProfileDef> = self
            .namespaces
            .iter()
            .map(|(namespace, span)| {
                let mut groups: Vec<(String, Vec<ServiceId>)> = self
                    .groups
                    .iter()
                    .filter(|((ns, _), _)| ns == namespace)
                    .map(|((_, name), members)| (name.clone(), members.clone()))
                    .collect();
                groups.sort();
                ProfileDef {
                    namespace: namespace.clone(),
                    origin: *span,
                    enforce: self
                        .profile_enforce
                        .get(namespace)
                        .copied()
                        .unwrap_or(Enforce::Both),
                    groups,
                }
            })
            .collect();
        profiles.sort_by(|a, b| a.namespace.cmp(&b.namespace));
        Model {
            profiles,
            services: self.services,
            namespaces: self.namespace_defs.into_iter().map(|(d, _)| d).collect(),
            baselines: self.baselines.into_iter().map(|(d, _)| d).collect(),
            rules: self.rules,
            settings: self.settings,
        }
    }
}

/// Whether the ports of a deny include every port of an allow (no ports: every port).
fn ports_cover(deny: &BTreeSet<L4>, allow: &BTreeSet<L4>) -> bool {
    deny.is_empty() || (!allow.is_empty() && covers(deny, allow))
}

/// The lookups a workload with `queries: declared` may make: its DNS names, their search-path
/// expansions (glibc and musl try `NAME.<search domain>` first, and musl stops at the first
/// REFUSED: docs/semantics.md pitfall 2), and in-cluster service names.
fn declared_queries(names: &BTreeSet<FqdnSelector>, domain: &str) -> BTreeSet<FqdnSelector> {
    let mut out: BTreeSet<FqdnSelector> = names.clone();
    for name in names {
        let text = name.text();
        for suffix in [
            format!("*.svc.{domain}"),
            format!("svc.{domain}"),
            domain.to_string(),
        ] {
            out.insert(FqdnSelector::Pattern(format!("{text}.{suffix}")));
        }
    }
    for pattern in [format!("*.*.svc.{domain}"), format!("*.svc.{domain}")] {
        out.insert(FqdnSelector::Pattern(pattern));
    }
    out
}
