//! The resolved model: every workload, and every allow expressed from one workload's side.
//!
//! Resolution turns statements between names into *rules* attached to subjects: "traefik →
//! sonarr on http" becomes an egress rule of traefik (to sonarr's pods on 8989/tcp) and an
//! ingress rule of sonarr (from traefik's pods on 8989/tcp). Names, groups, templates and
//! named ports are all resolved here; nothing downstream looks at names again.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ipnet::IpNet;

use crate::diagnostic::source::{Loc, SourceId, SourceMap, Span};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::objects::cilium::Entity;
use crate::objects::fqdn::FqdnSelector;
use crate::objects::port::{L4, PortRange, PortRef, Protocol};
use crate::profile::syntax::{
    Baseline, BaselineSelect, Body, ClusterProfile, DnsQueries, Enforce, HttpRule, Peer,
    ProfileFile, Statement,
};

/// A `(key, value)` pod label.
pub type Label = (String, String);

/// Identifies a workload in [`Model::services`].
pub type ServiceId = usize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// Sorted by (namespace, name).
    pub services: Vec<ServiceDef>,
    /// Sorted by name.
    pub baselines: Vec<BaselineDef>,
    pub rules: Vec<Rule>,
    pub settings: Settings,
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
    pub description: Option<String>,
    pub origin: Span,
}

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
}

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
    let before = diagnostics.error_count();
    let mut r = Resolver::new(files, sources, diagnostics);
    r.index();
    r.statements();
    r.implicit_rules();
    r.warn_unused_templates();
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
}

struct Resolver<'a> {
    files: &'a [ProfileFile],
    sources: &'a SourceMap,
    diagnostics: &'a mut Diagnostics,
    services: Vec<ServiceDef>,
    by_name: HashMap<(String, String), ServiceId>,
    groups: HashMap<(String, String), Vec<ServiceId>>,
    namespaces: HashMap<String, Span>,
    templates: HashMap<String, (&'a crate::profile::syntax::Template, Span)>,
    used_templates: BTreeSet<String>,
    baselines: Vec<(BaselineDef, &'a Baseline)>,
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
            sources,
            diagnostics,
            services: Vec::new(),
            by_name: HashMap::new(),
            groups: HashMap::new(),
            namespaces: HashMap::new(),
            templates: HashMap::new(),
            used_templates: BTreeSet::new(),
            baselines: Vec::new(),
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
                    for service in &ns.services {
                        declared.push((ns, service));
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
            description: service.description.clone(),
            origin: service.name.span,
        });
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
                        let d = self.unknown_service(
                            &ns.namespace.value,
                            &member.value,
                            member.span,
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
        }
    }

    fn apply_template(&mut self, used: &Loc<String>, ctx: Context<'_>) {
        let Some((template, _)) = self.templates.get(&used.value).copied() else {
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
        for statement in &template.allow {
            self.statement(statement, ctx);
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

    fn statement(&mut self, statement: &Statement, ctx: Context<'_>) {
        let this_end = ctx.this.map(|t| match t {
            This::Service(id) => End::Service(id),
            This::Baseline(b) => End::Baseline(b),
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
        let http: Vec<HttpRule> = statement.http.iter().map(|h| h.value.clone()).collect();
        if !http.is_empty() && statement.on.is_none() {
            if let Some(first) = statement.http.first() {
                self.diagnostics.push(
                    Diagnostic::error(
                        "http-without-ports",
                        first.span,
                        "HTTP rules need ports".to_string(),
                    )
                    .with_label("no `on:` in this statement")
                    .with_help(
                        "Cilium applies HTTP rules to TCP ports; add `on: http` or a port number",
                    ),
                );
            }
            return;
        }
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
            Peer::Cidr { cidr, except } => Some(vec![End::External(Target::Cidr {
                cidr: *cidr,
                except: except.clone(),
            })]),
            Peer::Fqdn(sel) => Some(vec![End::External(Target::Fqdn(sel.clone()))]),
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
                let d = self.unknown_service(&ns, name, peer.span, true);
                self.diagnostics.push(d);
                None
            }
            Peer::Namespace { namespace, select } => {
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
                            self.diagnostics.push(
                                Diagnostic::warning("unmanaged-pods", peer.span, format!("pods selected by labels in `{namespace}`, which has a profile"))
                                    .with_label("not a declared service")
                                    .with_help(format!("if these pods belong to a service of the `{namespace}` profile, name the service so that its own policy allows this too")),
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

    fn unknown_service(&self, ns: &str, name: &str, span: Span, groups_too: bool) -> Diagnostic {
        let mut candidates: Vec<&str> = self
            .by_name
            .keys()
            .filter(|(n, _)| n == ns)
            .map(|(_, s)| s.as_str())
            .collect();
        if groups_too {
            candidates.extend(
                self.groups
                    .keys()
                    .filter(|(n, _)| n == ns)
                    .map(|(_, g)| g.as_str()),
            );
        }
        let what = if groups_too {
            "service or group"
        } else {
            "service"
        };
        let help = if !self.namespaces.contains_key(ns) {
            format!(
                "no profile declares namespace `{ns}`; for pods without a profile write `{{namespace: {ns}, select: {{LABEL: VALUE}}}}`"
            )
        } else {
            match crate::diagnostic::spelling::closest(name, candidates.iter().copied()) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!("namespace `{ns}` declares no {what} `{name}`"),
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
        self.rules.push(Rule {
            subject,
            direction,
            peer,
            ports: ports.clone(),
            http: http.to_vec(),
            dns: BTreeSet::new(),
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
        };
        self.diagnostics.push(
            Diagnostic::warning(
                "open-to-world",
                span,
                format!("`{name}` accepts connections from the internet"),
            )
            .with_label("open to `world`")
            .with_help("fine for an ingress controller; anything else should sit behind it"),
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
                    DnsQueries::Declared => declared_queries(&names),
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
                    origin: self.settings.origin.unwrap_or(origin),
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
                origin,
            });
        }
    }

    fn finish(self) -> Model {
        Model {
            services: self.services,
            baselines: self.baselines.into_iter().map(|(d, _)| d).collect(),
            rules: self.rules,
            settings: self.settings,
        }
    }
}

/// The lookups a workload with `queries: declared` may make: its DNS names, their search-path
/// expansions (glibc and musl try `NAME.<search domain>` first, and musl stops at the first
/// REFUSED: docs/semantics.md pitfall 2), and in-cluster service names.
fn declared_queries(names: &BTreeSet<FqdnSelector>) -> BTreeSet<FqdnSelector> {
    let mut out: BTreeSet<FqdnSelector> = names.clone();
    for name in names {
        let text = name.text();
        for suffix in ["*.svc.cluster.local", "svc.cluster.local", "cluster.local"] {
            out.insert(FqdnSelector::Pattern(format!("{text}.{suffix}")));
        }
    }
    for pattern in ["*.*.svc.cluster.local", "*.svc.cluster.local"] {
        out.insert(FqdnSelector::Pattern(pattern.to_string()));
    }
    out
}
