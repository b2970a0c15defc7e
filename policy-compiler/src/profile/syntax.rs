//! The profile language: its syntax tree and the decoder from YAML documents.
//!
//! The decoder checks the *shape* of each file (keys, types, the grammar of peers and ports,
//! label syntax) and reports every problem it finds; cross-file questions (does `sonarr`
//! exist? does it have a port `http`?) are answered by [`crate::profile::model`].
//! The language is documented in the README ("The profile language").

use ipnet::IpNet;

use crate::diagnostic::source::{Loc, SourceId, Span};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::document::{Fields, Node, Value, one_or_many};
use crate::objects::cilium::Entity;
use crate::objects::fqdn::{self, FqdnSelector};
use crate::objects::label;
use crate::objects::port::{self, PortRange, PortRef};

/// One profile file.
#[derive(Debug, Clone)]
pub struct ProfileFile {
    pub source: SourceId,
    pub span: Span,
    pub body: Body,
    pub templates: Vec<Template>,
    /// Other files to load, relative to this one.
    pub includes: Vec<Loc<String>>,
    /// What the file's errors may have hidden (empty when it decoded cleanly).
    pub incomplete: Incomplete,
    /// Reached only through another file's `include:` (a catalog file outside the paths given):
    /// its unused templates are not reported, a library is a menu.
    pub included: bool,
    /// The `acknowledge:` entries of its statements and services.
    pub acknowledgements: Vec<Acknowledgement>,
}

/// `acknowledge: {CODE: REASON}` on a statement or a service: a warning of that code raised
/// there is expected, for that reason (`netpol check --deny-warnings` passes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgement {
    /// The span of the statement, or of the service's name.
    pub owner: Span,
    /// The warning's code, as in `netpol::open-to-world` without the prefix.
    pub code: Loc<String>,
    /// Empty when none is given.
    pub reason: String,
}

/// What a file with errors may be missing: names other statements look for in it. Their
/// absence is the first error's consequence, not a mistake of its own, so the resolver reports
/// it in one note instead of one error per reference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Incomplete {
    /// Services, groups or templates may be missing whatever their name (an unknown or
    /// duplicate key at the top of the file, `services:` that is not a map, ...).
    pub any_name: bool,
    /// Services, groups and templates whose definition could not be read.
    pub names: Vec<String>,
    /// Services whose `ports:` or `use:` (or an unknown key beside them) had errors.
    pub services: Vec<String>,
}

impl Incomplete {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether a service, group or template of this name may be missing.
    pub fn may_lack(&self, name: &str) -> bool {
        self.any_name || self.names.iter().any(|n| n == name)
    }
}

#[derive(Debug, Clone)]
pub enum Body {
    Namespace(NamespaceProfile),
    Cluster(ClusterProfile),
    /// Only templates (and includes).
    Library,
}

#[derive(Debug, Clone)]
pub struct NamespaceProfile {
    pub namespace: Loc<String>,
    pub description: Option<String>,
    pub enforce: Option<Loc<Enforce>>,
    pub dns: Option<Loc<bool>>,
    pub services: Vec<Service>,
    pub groups: Vec<Group>,
    pub allow: Vec<Statement>,
    /// `default-deny:` every pod of the namespace, declared or not.
    pub default_deny: Option<Loc<Enforce>>,
    /// `deny:` statements for every pod of the namespace.
    pub deny: Vec<Statement>,
}

/// Which directions of a workload are default-deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Enforce {
    Both,
    Ingress,
    Egress,
    /// Neither: the policy only adds visibility (L7/DNS) and does not change the posture.
    Audit,
}

impl Enforce {
    pub fn ingress(self) -> bool {
        matches!(self, Enforce::Both | Enforce::Ingress)
    }

    pub fn egress(self) -> bool {
        matches!(self, Enforce::Both | Enforce::Egress)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Enforce::Both => "both",
            Enforce::Ingress => "ingress",
            Enforce::Egress => "egress",
            Enforce::Audit => "audit",
        }
    }
}

/// Label selector as written: ordered (key, value) pairs, ANDed.
pub type Labels = Vec<(Loc<String>, Loc<String>)>;

#[derive(Debug, Clone)]
pub struct Service {
    pub name: Loc<String>,
    pub select: Option<Loc<Labels>>,
    pub ports: Vec<NamedPort>,
    pub uses: Vec<Loc<String>>,
    pub allow: Vec<Statement>,
    pub deny: Vec<Statement>,
    /// `host-network: true`: the pods share their node's network namespace.
    pub host_network: Option<Loc<bool>>,
    pub enforce: Option<Loc<Enforce>>,
    pub dns: Option<Loc<bool>>,
    pub description: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NamedPort {
    pub name: Loc<String>,
    pub ranges: Vec<Loc<PortRange>>,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub name: Loc<String>,
    pub members: Vec<Loc<String>>,
}

#[derive(Debug, Clone)]
pub struct Template {
    pub name: Loc<String>,
    pub description: Option<String>,
    pub allow: Vec<Statement>,
    pub deny: Vec<Statement>,
}

/// `from` → `to` `on` ports, optionally restricted to HTTP requests.
#[derive(Debug, Clone)]
pub struct Statement {
    pub span: Span,
    pub from: Option<Loc<Vec<Loc<Peer>>>>,
    pub to: Option<Loc<Vec<Loc<Peer>>>>,
    /// `None`: every port and protocol.
    pub on: Option<Vec<Loc<PortRef>>>,
    pub http: Vec<Loc<HttpRule>>,
    pub description: Option<String>,
}

/// One allowed kind of HTTP request (docs/semantics.md §1.14). Fields are RE2 regexes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HttpRule {
    pub method: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    pub headers: Vec<String>,
}

/// The other side of a statement.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    Entity(Entity),
    Cidr {
        cidr: IpNet,
        except: Vec<IpNet>,
    },
    Fqdn(FqdnSelector),
    /// A service or group, of this file (`namespace: None`) or of another profile.
    Ref {
        namespace: Option<String>,
        name: String,
    },
    /// Pods of a namespace (all of them, or those matching `select`).
    Namespace {
        namespace: String,
        select: Option<Vec<(String, String)>>,
    },
}

#[derive(Debug, Clone)]
pub struct ClusterProfile {
    pub dns: Option<DnsSettings>,
    pub kubelet: Option<Loc<bool>>,
    pub baselines: Vec<Baseline>,
    /// `cluster.name`: Cilium's `cluster-name`.
    pub name: Option<Loc<String>>,
    /// `cluster.pod-cidrs`, `cluster.service-cidrs`.
    pub pod_cidrs: Vec<Loc<IpNet>>,
    pub service_cidrs: Vec<Loc<IpNet>>,
    /// `cluster.apiserver-ports`: the ports the API server listens on, as policies see them
    /// (after the `kubernetes` Service's translation: 6443 on Talos and kubeadm).
    pub apiserver_ports: Vec<Loc<u16>>,
    /// `cluster.cilium-version`: `(major, minor)`.
    pub cilium_version: Option<Loc<(u32, u32)>>,
    /// `cluster.domain`: the cluster's DNS domain (`cluster.local`).
    pub domain: Option<Loc<String>>,
}

#[derive(Debug, Clone)]
pub struct DnsSettings {
    pub span: Span,
    pub resolver: Option<Loc<Peer>>,
    pub ports: Vec<Loc<PortRange>>,
    pub queries: Option<Loc<DnsQueries>>,
}

/// Which names a workload may look up through Cilium's DNS proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsQueries {
    /// `matchPattern: "*"`: any lookup (connections are still limited by the rules).
    Any,
    /// Only the DNS names the workload connects to, plus the cluster's own suffixes.
    Declared,
}

#[derive(Debug, Clone)]
pub struct Baseline {
    pub name: Loc<String>,
    pub select: Loc<BaselineSelect>,
    pub description: Option<String>,
    pub allow: Vec<Statement>,
    pub deny: Vec<Statement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaselineSelect {
    /// Every pod of every namespace.
    All,
    /// Pods of these namespaces (all of them if empty) with these labels.
    Pods {
        namespaces: Vec<String>,
        labels: Vec<(String, String)>,
    },
}

/// The Cilium entities a profile may name (docs/semantics.md §5.2). `none` is left out: it
/// selects nothing.
pub const ENTITIES: &[(&str, Entity)] = &[
    ("all", Entity::All),
    ("world", Entity::World),
    ("cluster", Entity::Cluster),
    ("host", Entity::Host),
    ("remote-node", Entity::RemoteNode),
    ("kube-apiserver", Entity::KubeApiserver),
    ("ingress", Entity::Ingress),
    ("health", Entity::Health),
    ("init", Entity::Init),
    ("unmanaged", Entity::Unmanaged),
];

pub fn entity_named(name: &str) -> Option<Entity> {
    ENTITIES.iter().find(|(n, _)| *n == name).map(|(_, e)| *e)
}

const FILE_KEYS: &[&str] = &[
    "namespace",
    "description",
    "enforce",
    "dns",
    "services",
    "groups",
    "templates",
    "allow",
    "include",
    "cluster",
    "baselines",
    "default-deny",
    "deny",
];
const SERVICE_KEYS: &[&str] = &[
    "select",
    "ports",
    "use",
    "allow",
    "deny",
    "host-network",
    "enforce",
    "dns",
    "description",
    "acknowledge",
];
/// `port` and `on` are one key: `on` is the first spelling, which YAML 1.1 readers (PyYAML,
/// yamllint, many pre-commit hooks) read as the boolean `true`.
const STATEMENT_KEYS: &[&str] = &[
    "from",
    "to",
    "port",
    "on",
    "http",
    "description",
    "acknowledge",
];

/// The plain scalars YAML 1.1 reads as booleans, besides `true` and `false` (which YAML 1.2
/// reads as booleans too): netpol reads them as strings, other tools do not.
const YAML11_BOOLEANS: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
    "OFF",
];
const TEMPLATE_KEYS: &[&str] = &["description", "allow", "deny"];
const HTTP_KEYS: &[&str] = &["method", "path", "host", "headers"];
const PEER_KEYS: &[&str] = &[
    "entity",
    "cidr",
    "except",
    "dns",
    "namespace",
    "select",
    "service",
];
const CLUSTER_KEYS: &[&str] = &[
    "dns",
    "kubelet",
    "name",
    "pod-cidrs",
    "service-cidrs",
    "apiserver-ports",
    "cilium-version",
    "domain",
];
const DNS_KEYS: &[&str] = &["resolver", "ports", "queries"];
const BASELINE_KEYS: &[&str] = &["name", "select", "description", "allow", "deny"];
const BASELINE_SELECT_KEYS: &[&str] = &["namespace", "namespaces", "select"];

/// Decode one parsed file. Problems go to `diagnostics`; what could be read is returned, so
/// that later stages can still report their own findings about the rest of the file.
pub fn decode(source: SourceId, doc: &Node, diagnostics: &mut Diagnostics) -> Option<ProfileFile> {
    let mut d = Decoder {
        diagnostics,
        top_level: false,
        text: None,
        acknowledgements: Vec::new(),
        incomplete: Incomplete::default(),
    };
    d.file(source, doc)
}

/// [`decode`], with the file's text: names that YAML 1.1 tools would read as booleans
/// (`no`, `on`, `y`, written without quotes) are reported too.
pub fn decode_text(
    source: SourceId,
    text: &str,
    doc: &Node,
    diagnostics: &mut Diagnostics,
) -> Option<ProfileFile> {
    let mut d = Decoder {
        diagnostics,
        top_level: false,
        text: Some(text),
        acknowledgements: Vec::new(),
        incomplete: Incomplete::default(),
    };
    d.file(source, doc)
}

struct Decoder<'d> {
    diagnostics: &'d mut Diagnostics,
    /// Decoding the top-level `allow:` of a namespace profile (both sides required).
    top_level: bool,
    /// The file's text, to tell `no` from `"no"`.
    text: Option<&'d str>,
    acknowledgements: Vec<Acknowledgement>,
    /// Names the errors found so far may hide.
    incomplete: Incomplete,
}

impl Decoder<'_> {
    fn error(
        &mut self,
        code: &'static str,
        span: Span,
        message: String,
        label: &str,
        help: String,
    ) {
        self.diagnostics.push(
            Diagnostic::error(code, span, message)
                .with_label(label)
                .with_help(help),
        );
    }

    fn wrong_type(&mut self, node: &Node, expected: &str, help: &str) {
        let found = node.value.kind();
        self.error(
            "wrong-type",
            node.span,
            format!("expected {expected}, found {found}"),
            &format!("this is {found}"),
            help.to_string(),
        );
    }

    fn file(&mut self, source: SourceId, doc: &Node) -> Option<ProfileFile> {
        if matches!(doc.value, Value::Null) {
            self.error(
                "empty-profile",
                doc.span,
                "the profile is empty".to_string(),
                "nothing here",
                "start with `namespace: NAME` and a `services:` map".to_string(),
            );
            return None;
        }
        let errors = self.diagnostics.error_count();
        let fields = Fields::read(doc, "a profile", FILE_KEYS, self.diagnostics)?;
        // A misspelt `services:` (or a duplicate one) hides every name under it.
        self.incomplete.any_name |= self.diagnostics.error_count() > errors;
        let templates = fields
            .get("templates")
            .map(|n| self.templates(n))
            .unwrap_or_default();
        let includes = fields
            .get("include")
            .map(|n| self.strings(n, "a list of file paths"))
            .unwrap_or_default();
        let is_cluster = fields.has("cluster") || fields.has("baselines");
        let body = if let Some(ns) = fields.get("namespace") {
            if is_cluster {
                let span = fields
                    .key_span("cluster")
                    .or_else(|| fields.key_span("baselines"))
                    .unwrap_or(doc.span);
                self.error(
                    "mixed-profile",
                    span,
                    "cluster settings in a namespace profile".to_string(),
                    "belongs in the cluster file",
                    "move `cluster:` and `baselines:` to a file of their own without `namespace:`"
                        .to_string(),
                );
            }
            Body::Namespace(self.namespace_profile(ns, &fields)?)
        } else if is_cluster {
            for key in [
                "description",
                "enforce",
                "dns",
                "services",
                "groups",
                "allow",
                "default-deny",
                "deny",
            ] {
                if let Some(span) = fields.key_span(key) {
                    self.error(
                        "misplaced-key",
                        span,
                        format!("`{key}` belongs in a namespace profile"),
                        "not allowed in the cluster file",
                        "the cluster file holds `cluster:` and `baselines:`; put services in a file with `namespace:`"
                            .to_string(),
                    );
                }
            }
            Body::Cluster(self.cluster_profile(&fields))
        } else if fields.has("templates") {
            for key in [
                "description",
                "enforce",
                "dns",
                "services",
                "groups",
                "allow",
                "default-deny",
                "deny",
            ] {
                if let Some(span) = fields.key_span(key) {
                    self.error(
                        "missing-namespace",
                        span,
                        format!("`{key}` needs a `namespace:` in the same file"),
                        "no namespace for this",
                        "add `namespace: NAME` at the top of the file".to_string(),
                    );
                }
            }
            Body::Library
        } else {
            self.error(
                "missing-namespace",
                doc.span,
                "the profile has no `namespace:`".to_string(),
                "this file",
                "a profile starts with `namespace: NAME`; a cluster file has `cluster:` or `baselines:`"
                    .to_string(),
            );
            return None;
        };
        Some(ProfileFile {
            source,
            span: doc.span,
            body,
            templates,
            includes,
            incomplete: std::mem::take(&mut self.incomplete),
            included: false,
            acknowledgements: std::mem::take(&mut self.acknowledgements),
        })
    }

    fn namespace_profile(&mut self, ns: &Node, fields: &Fields<'_>) -> Option<NamespaceProfile> {
        let namespace = self.dns_label(ns, "namespace")?;
        let services = match fields.get("services") {
            Some(node) => self.named_map(node, "the services", |d, name, value| {
                d.service(name, value)
            }),
            None => Vec::new(),
        };
        let groups = match fields.get("groups") {
            Some(node) => self.named_map(node, "the groups", |d, name, value| {
                if entity_named(&name.value).is_some() {
                    d.error(
                        "reserved-name",
                        name.span,
                        format!("`{}` is the name of a Cilium entity", name.value),
                        "reserved name",
                        format!(
                            "peers named `{}` mean the entity; give the group another name",
                            name.value
                        ),
                    );
                    return None;
                }
                Some(Group {
                    name,
                    members: d.names(value, "a list of service names"),
                })
            }),
            None => Vec::new(),
        };
        Some(NamespaceProfile {
            namespace,
            description: fields.get("description").and_then(|n| self.text(n)),
            enforce: fields.get("enforce").and_then(|n| self.enforce(n)),
            dns: fields.get("dns").and_then(|n| self.boolean(n)),
            services,
            groups,
            allow: fields
                .get("allow")
                .map(|n| {
                    self.top_level = true;
                    let statements = self.statements(n);
                    self.top_level = false;
                    statements
                })
                .unwrap_or_default(),
            default_deny: fields.get("default-deny").and_then(|n| self.enforce(n)),
            deny: fields
                .get("deny")
                .map(|n| self.statements(n))
                .unwrap_or_default(),
        })
    }

    /// A map from names (DNS labels) to items.
    fn named_map<T>(
        &mut self,
        node: &Node,
        what: &str,
        mut item: impl FnMut(&mut Self, Loc<String>, &Node) -> Option<T>,
    ) -> Vec<T> {
        let entries = match &node.value {
            Value::Map(entries) => entries,
            Value::Null => return Vec::new(),
            _ => {
                self.wrong_type(
                    node,
                    &format!("{what} (a map of name: definition)"),
                    "write one entry per line, e.g. `sonarr: {ports: {http: 8989}}`",
                );
                self.incomplete.any_name = true;
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        let mut seen: Vec<(String, Span)> = Vec::new();
        for (key, value) in entries {
            let Some(name) = self.dns_label(key, "name") else {
                if let Some(text) = key.scalar_text() {
                    self.incomplete.names.push(text.to_ascii_lowercase());
                }
                continue;
            };
            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name.value) {
                self.diagnostics.push(
                    Diagnostic::error(
                        "duplicate-name",
                        key.span,
                        format!("`{}` is defined twice", name.value),
                    )
                    .with_label("second definition")
                    .with_related(*first, "first definition")
                    .with_help("names must be unique; merge the two definitions"),
                );
                continue;
            }
            seen.push((name.value.clone(), key.span));
            let text = name.value.clone();
            match item(self, name, value) {
                Some(v) => out.push(v),
                None => self.incomplete.names.push(text),
            }
        }
        out
    }

    fn service(&mut self, name: Loc<String>, node: &Node) -> Option<Service> {
        if let Some(entity) = entity_named(&name.value) {
            self.error(
                "reserved-name",
                name.span,
                format!("`{}` is the name of a Cilium entity", name.value),
                "reserved name",
                format!(
                    "peers named `{}` mean the `{}` entity; give the service another name",
                    name.value,
                    entity.as_str()
                ),
            );
        }
        let errors = self.diagnostics.error_count();
        let fields = Fields::read(node, "a service", SERVICE_KEYS, self.diagnostics)?;
        let key_errors = self.diagnostics.error_count() - errors;
        if let Some(n) = fields.get("acknowledge") {
            self.acknowledge(name.span, n);
        }
        let select = fields.get("select").and_then(|n| self.labels(n));
        let errors = self.diagnostics.error_count();
        let ports = fields
            .get("ports")
            .map(|n| self.named_ports(n))
            .unwrap_or_default();
        let uses = fields
            .get("use")
            .map(|n| self.names(n, "a list of template names"))
            .unwrap_or_default();
        if key_errors > 0 || self.diagnostics.error_count() > errors {
            // Its port names and templates may be missing (`prots:`, `use: {..}`).
            self.incomplete.services.push(name.value.clone());
        }
        Some(Service {
            name,
            select,
            ports,
            uses,
            allow: fields
                .get("allow")
                .map(|n| self.statements(n))
                .unwrap_or_default(),
            deny: fields
                .get("deny")
                .map(|n| self.statements(n))
                .unwrap_or_default(),
            host_network: fields.get("host-network").and_then(|n| self.boolean(n)),
            enforce: fields.get("enforce").and_then(|n| self.enforce(n)),
            dns: fields.get("dns").and_then(|n| self.boolean(n)),
            description: fields.get("description").and_then(|n| self.text(n)),
        })
    }

    fn named_ports(&mut self, node: &Node) -> Vec<NamedPort> {
        let Value::Map(entries) = &node.value else {
            if !matches!(node.value, Value::Null) {
                self.wrong_type(
                    node,
                    "a map of port names to ports",
                    "write e.g. `ports: {http: 8989, peers: [6881/tcp, 6881/udp]}`",
                );
            }
            return Vec::new();
        };
        let mut out: Vec<NamedPort> = Vec::new();
        for (key, value) in entries {
            self.yaml11_boolean(key);
            let Some(name_text) = key.scalar_text() else {
                self.wrong_type(
                    key,
                    "a port name",
                    "port names are like `http` or `metrics`",
                );
                continue;
            };
            if !port::is_port_name(&name_text) {
                self.error(
                    "invalid-port-name",
                    key.span,
                    format!("invalid port name `{name_text}`"),
                    "not a port name",
                    "a port name has 1 to 15 lowercase letters, digits and single dashes, with at least one letter (as in Kubernetes)".to_string(),
                );
                continue;
            }
            if let Some(first) = out.iter().find(|p| p.name.value == name_text) {
                self.diagnostics.push(
                    Diagnostic::error(
                        "duplicate-name",
                        key.span,
                        format!("port `{name_text}` is defined twice"),
                    )
                    .with_label("second definition")
                    .with_related(first.name.span, "first definition")
                    .with_help(
                        "list several ports under one name instead: `name: [53/udp, 53/tcp]`",
                    ),
                );
                continue;
            }
            if one_or_many(value).is_empty() {
                // A name for no port would make `port: NAME` mean every port.
                self.error(
                    "empty-ports",
                    value.span,
                    format!("port `{name_text}` has no port"),
                    "empty",
                    "give the name a port number, a range, or a list of them".to_string(),
                );
                continue;
            }
            let ranges = self.ports_of(
                value,
                "a port such as `8080` or `53/udp`",
                "a named port maps to a port number, a range, or a list of them",
                port::parse_range,
            );
            out.push(NamedPort {
                name: Loc::new(name_text, key.span),
                ranges,
            });
        }
        out
    }

    fn templates(&mut self, node: &Node) -> Vec<Template> {
        self.named_map(node, "the templates", |d, name, value| {
            let fields = Fields::read(value, "a template", TEMPLATE_KEYS, d.diagnostics)?;
            Some(Template {
                name,
                description: fields.get("description").and_then(|n| d.text(n)),
                allow: fields
                    .get("allow")
                    .map(|n| d.statements(n))
                    .unwrap_or_default(),
                deny: fields
                    .get("deny")
                    .map(|n| d.statements(n))
                    .unwrap_or_default(),
            })
        })
    }

    fn statements(&mut self, node: &Node) -> Vec<Statement> {
        let Value::Seq(items) = &node.value else {
            if !matches!(node.value, Value::Null) {
                self.wrong_type(
                    node,
                    "a list of statements",
                    "write `allow:` as a list: `- {from: traefik/traefik, to: sonarr, on: http}`",
                );
            }
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| self.statement(item))
            .collect()
    }

    fn statement(&mut self, node: &Node) -> Option<Statement> {
        let fields = Fields::read(node, "a statement", STATEMENT_KEYS, self.diagnostics)?;
        if let Some(n) = fields.get("acknowledge") {
            self.acknowledge(node.span, n);
        }
        // A side that fails to decode drops the statement (its error is already reported).
        let from = fields.get("from").map(|n| Loc::new(self.peers(n), n.span));
        let to = fields.get("to").map(|n| Loc::new(self.peers(n), n.span));
        let from = match from {
            Some(Loc { value: None, .. }) => return None,
            Some(Loc {
                value: Some(v),
                span,
            }) => Some(Loc::new(v, span)),
            None => None,
        };
        let to = match to {
            Some(Loc { value: None, .. }) => return None,
            Some(Loc {
                value: Some(v),
                span,
            }) => Some(Loc::new(v, span)),
            None => None,
        };
        if let (Some(port), Some(on)) = (fields.key_span("port"), fields.key_span("on")) {
            let (first, second) = if port < on { (port, on) } else { (on, port) };
            self.diagnostics.push(
                Diagnostic::error("duplicate-key", second, "`port` and `on` are the same key")
                    .with_label("second spelling")
                    .with_related(first, "first spelling")
                    .with_help("`on` is the first spelling of `port`; keep one of them (`port` reads the same in every YAML reader)"),
            );
        }
        let on_node = fields.get("port").or_else(|| fields.get("on"));
        let on = on_node.map(|n| self.port_refs(n));
        let http = fields
            .get("http")
            .map(|n| self.http_rules(n))
            .unwrap_or_default();
        if !self.statement_shape(node, &fields, from.as_ref(), to.as_ref(), on_node) {
            return None;
        }
        Some(Statement {
            span: node.span,
            from,
            to,
            on,
            http,
            description: fields.get("description").and_then(|n| self.text(n)),
        })
    }

    /// What a statement needs whatever its names mean: a side (both at the top level), ports
    /// when it has HTTP rules, at least one port when `port:` is given, and no DNS name as a
    /// source. `false` (after reporting) when it cannot be resolved.
    fn statement_shape(
        &mut self,
        node: &Node,
        fields: &Fields<'_>,
        from: Option<&Loc<Vec<Loc<Peer>>>>,
        to: Option<&Loc<Vec<Loc<Peer>>>>,
        on: Option<&Node>,
    ) -> bool {
        let missing = match (from, to) {
            (None, None) => Some((
                "the statement has neither `from` nor `to`",
                "this statement",
                "say who talks to whom: `from: PEER`, `to: PEER`",
            )),
            (None, Some(_)) if self.top_level => Some((
                "the statement has no `from`",
                "incomplete statement",
                "only statements under a service, a template or a baseline may leave out one side, which then means that service",
            )),
            (Some(_), None) if self.top_level => Some((
                "the statement has no `to`",
                "incomplete statement",
                "only statements under a service, a template or a baseline may leave out one side, which then means that service",
            )),
            _ => None,
        };
        if let Some((message, label, help)) = missing {
            self.error(
                "missing-peer",
                node.span,
                message.to_string(),
                label,
                help.to_string(),
            );
            return false;
        }
        if let Some(dns) = from.and_then(|side| {
            side.value.iter().find_map(|p| match &p.value {
                Peer::Fqdn(sel) => Some(sel.text().to_string()),
                _ => None,
            })
        }) {
            let span = from.map_or(node.span, |side| side.span);
            self.error(
                "dns-source",
                span,
                format!("DNS name `{dns}` cannot be a source"),
                "only a destination",
                "Cilium learns the addresses of DNS names from lookups made by the pods, so DNS names only work in `to:`; use a CIDR for incoming traffic".to_string(),
            );
            return false;
        }
        if let Some(on) = on
            && one_or_many(on).is_empty()
        {
            self.error(
                "empty-ports",
                on.span,
                "no ports given".to_string(),
                "empty",
                "leave out `port:` to allow every port and protocol, or list the ports".to_string(),
            );
            return false;
        }
        if on.is_none()
            && let Some(http) = fields.get("http")
        {
            let span = one_or_many(http).first().map_or(http.span, |n| n.span);
            self.error(
                "http-without-ports",
                span,
                "HTTP rules need ports".to_string(),
                "no `port:` in this statement",
                "Cilium applies HTTP rules to TCP ports; add `port: http` or a port number"
                    .to_string(),
            );
            return false;
        }
        true
    }

    fn port_refs(&mut self, node: &Node) -> Vec<Loc<PortRef>> {
        for item in one_or_many(node) {
            self.yaml11_boolean(item);
        }
        self.ports_of(
            node,
            "a port such as `443`, `53/udp` or `http`",
            "`port:` takes one port or a list of ports",
            port::parse_ref,
        )
    }

    /// One port or a list of ports, each parsed by `parse`; bad entries are reported and left out.
    fn ports_of<T>(
        &mut self,
        node: &Node,
        expected: &str,
        help: &str,
        parse: impl Fn(&str) -> Result<T, port::PortError>,
    ) -> Vec<Loc<T>> {
        let mut out = Vec::new();
        for item in one_or_many(node) {
            // `port: true` is no port, though `true` would read as a port name.
            let text = match item.value {
                Value::Bool(_) => None,
                _ => item.scalar_text(),
            };
            let Some(text) = text else {
                self.wrong_type(item, expected, help);
                continue;
            };
            match parse(&text) {
                Ok(value) => out.push(Loc::new(value, item.span)),
                Err(e) => self.error("invalid-port", item.span, e.message, "invalid port", e.help),
            }
        }
        out
    }

    fn http_rules(&mut self, node: &Node) -> Vec<Loc<HttpRule>> {
        let mut out = Vec::new();
        for item in one_or_many(node) {
            if matches!(item.value, Value::Null) {
                self.wrong_type(
                    item,
                    "an HTTP rule",
                    "write e.g. `{method: GET, path: \"/api/.*\"}`; `{}` allows every request",
                );
                continue;
            }
            let Some(fields) = Fields::read(item, "an HTTP rule", HTTP_KEYS, self.diagnostics)
            else {
                continue;
            };
            let mut rule = HttpRule {
                method: fields.get("method").and_then(|n| self.text(n)),
                path: fields.get("path").and_then(|n| self.text(n)),
                host: fields.get("host").and_then(|n| self.text(n)),
                headers: fields
                    .get("headers")
                    .map(|n| {
                        self.strings(n, "a list of headers")
                            .into_iter()
                            .map(|l| l.value)
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            if let Some(method) = &rule.method {
                rule.method = Some(method.to_ascii_uppercase());
            }
            if let Some(path) = &rule.path
                && !path.starts_with('/')
                && !path.starts_with('.')
                && !path.starts_with('(')
                && !path.starts_with('^')
            {
                let span = fields.get("path").map_or(item.span, |n| n.span);
                self.error(
                    "invalid-http-path",
                    span,
                    format!("HTTP path `{path}` does not start with `/`"),
                    "never matches",
                    "Cilium matches the whole request path (a regex), which always starts with `/`"
                        .to_string(),
                );
            }
            // The agent compiles `method` and `path` as regular expressions and refuses the
            // policy when one does not compile: say so here, at the profile line.
            for (key, pattern) in [("method", &rule.method), ("path", &rule.path)] {
                let Some(pattern) = pattern else { continue };
                if let Err(reason) = crate::objects::go_regex::check(pattern) {
                    let span = fields.get(key).map_or(item.span, |n| n.span);
                    self.error(
                        "invalid-http-regex",
                        span,
                        format!("HTTP {key} `{pattern}` is not a valid regular expression: {reason}"),
                        "not a regular expression",
                        "Cilium compiles HTTP methods and paths as RE2 regular expressions and refuses a policy whose regex does not compile".to_string(),
                    );
                }
            }
            out.push(Loc::new(rule, item.span));
        }
        out
    }

    /// `None` when a peer is invalid: the statement is then left out of resolution, so that
    /// one mistake is not reported again as a statement that allows nothing.
    fn peers(&mut self, node: &Node) -> Option<Vec<Loc<Peer>>> {
        let items = one_or_many(node);
        if items.is_empty() {
            self.error(
                "empty-peers",
                node.span,
                "no peers given".to_string(),
                "empty",
                "name at least one peer, e.g. `sonarr`, `world` or `api.thetvdb.com`".to_string(),
            );
            return None;
        }
        let total = items.len();
        let peers: Vec<Loc<Peer>> = items
            .into_iter()
            .filter_map(|item| self.peer(item))
            .collect();
        (peers.len() == total).then_some(peers)
    }

    fn peer(&mut self, node: &Node) -> Option<Loc<Peer>> {
        self.yaml11_boolean(node);
        match &node.value {
            Value::Str(text) => self
                .peer_text(text, node.span)
                .map(|p| Loc::new(p, node.span)),
            Value::Map(_) => self.peer_map(node).map(|p| Loc::new(p, node.span)),
            _ => {
                self.wrong_type(
                    node,
                    "a peer",
                    "a peer is a service (`sonarr`, `databases/arr-postgres`), an entity (`world`), a CIDR, a DNS name, or a map such as `{namespace: monitoring}`",
                );
                None
            }
        }
    }

    fn peer_text(&mut self, text: &str, span: Span) -> Option<Peer> {
        if let Some(entity) = entity_named(text) {
            return Some(Peer::Entity(entity));
        }
        if let Some((ns, name)) = text.split_once('/') {
            if let Ok(net) = text.parse::<IpNet>() {
                return self.cidr(net, Vec::new(), span);
            }
            if label::is_dns_label(ns) && (name == "*" || label::is_dns_label(name)) {
                return Some(if name == "*" {
                    Peer::Namespace {
                        namespace: ns.to_string(),
                        select: None,
                    }
                } else {
                    Peer::Ref {
                        namespace: Some(ns.to_string()),
                        name: name.to_string(),
                    }
                });
            }
            if ns.contains('.') || ns.contains(':') {
                self.error(
                    "invalid-cidr",
                    span,
                    format!("invalid CIDR `{text}`"),
                    "not a CIDR",
                    "write a prefix such as `10.0.0.0/8` or `fd00::/8`".to_string(),
                );
            } else {
                self.error(
                    "invalid-peer",
                    span,
                    format!("invalid peer `{text}`"),
                    "not a peer",
                    "another namespace's service is written `NAMESPACE/SERVICE` (DNS labels), all its pods `NAMESPACE/*`".to_string(),
                );
            }
            return None;
        }
        if text.parse::<std::net::IpAddr>().is_ok() {
            let suffix = if text.contains(':') { 128 } else { 32 };
            self.error(
                "invalid-cidr",
                span,
                format!("`{text}` is an address, not a CIDR"),
                "missing prefix length",
                format!("write `{text}/{suffix}` for this one address"),
            );
            return None;
        }
        if text.contains('.') || text.contains('*') {
            return match fqdn::parse(text) {
                Ok(sel) => Some(Peer::Fqdn(sel)),
                Err((message, help)) => {
                    self.error(
                        "invalid-dns-name",
                        span,
                        message,
                        "not a DNS name Cilium accepts",
                        help,
                    );
                    None
                }
            };
        }
        if label::is_dns_label(text) {
            return Some(Peer::Ref {
                namespace: None,
                name: text.to_string(),
            });
        }
        self.error(
            "invalid-peer",
            span,
            format!("invalid peer `{text}`"),
            "not a peer",
            "a peer is a service or group name (lowercase DNS label), `NAMESPACE/SERVICE`, an entity such as `world`, a CIDR, or a DNS name".to_string(),
        );
        None
    }

    fn peer_map(&mut self, node: &Node) -> Option<Peer> {
        let fields = Fields::read(node, "a peer", PEER_KEYS, self.diagnostics)?;
        let kinds: Vec<&str> = ["entity", "cidr", "dns", "service", "namespace"]
            .into_iter()
            .filter(|k| fields.has(k))
            .collect();
        let main = match kinds.as_slice() {
            [] => {
                self.error(
                    "invalid-peer",
                    node.span,
                    "the peer names nothing".to_string(),
                    "empty peer",
                    "use one of `entity`, `cidr`, `dns`, `service` or `namespace`".to_string(),
                );
                return None;
            }
            ["service", "namespace"] => "service",
            [one] => *one,
            [first, second, ..] => {
                let span = fields.key_span(second).unwrap_or(node.span);
                self.error(
                    "mixed-peer",
                    span,
                    format!("a peer cannot be both `{first}` and `{second}`"),
                    "second kind",
                    "write two peers in a list instead".to_string(),
                );
                return None;
            }
        };
        let allowed_extra: &[&str] = match main {
            "cidr" => &["except"],
            "namespace" => &["select"],
            "service" => &["namespace"],
            _ => &[],
        };
        for (key, key_node, _) in fields.iter() {
            if key != main && !allowed_extra.contains(&key) {
                self.error(
                    "misplaced-key",
                    key_node.span,
                    format!("`{key}` does not go with `{main}`"),
                    "not allowed here",
                    match main {
                        "cidr" => "a CIDR peer takes `except:`".to_string(),
                        "namespace" => "a namespace peer takes `select:`".to_string(),
                        "service" => "a service peer takes `namespace:`".to_string(),
                        _ => format!("an `{main}` peer has no other keys"),
                    },
                );
            }
        }
        let value = fields.get(main)?;
        match main {
            "entity" => {
                let text = self.string(value)?;
                match entity_named(&text.value) {
                    Some(e) => Some(Peer::Entity(e)),
                    None => {
                        let names: Vec<&str> = ENTITIES.iter().map(|(n, _)| *n).collect();
                        let help = match crate::diagnostic::spelling::closest(
                            &text.value,
                            names.iter().copied(),
                        ) {
                            Some(best) => format!("did you mean `{best}`?"),
                            None => format!("the entities are {}", crate::document::list(&names)),
                        };
                        self.error(
                            "unknown-entity",
                            text.span,
                            format!("unknown entity `{}`", text.value),
                            "not a Cilium entity",
                            help,
                        );
                        None
                    }
                }
            }
            "cidr" => {
                let text = self.string(value)?;
                let net = self.parse_cidr(&text)?;
                let mut except = Vec::new();
                if let Some(node) = fields.get("except") {
                    for item in self.strings(node, "a list of CIDRs") {
                        if let Some(e) = self.parse_cidr(&item) {
                            if !net.contains(&e) {
                                self.error(
                                    "invalid-cidr",
                                    item.span,
                                    format!("`{e}` is not inside `{net}`"),
                                    "outside the CIDR",
                                    "an `except` prefix must lie inside the CIDR (Cilium checks only its address, and a wider one excludes the whole CIDR)"
                                        .to_string(),
                                );
                            } else {
                                except.push(e);
                            }
                        }
                    }
                }
                self.cidr(net, except, text.span)
            }
            "dns" => {
                let text = self.string(value)?;
                match fqdn::parse(&text.value) {
                    Ok(sel) => Some(Peer::Fqdn(sel)),
                    Err((message, help)) => {
                        self.error(
                            "invalid-dns-name",
                            text.span,
                            message,
                            "not a DNS name Cilium accepts",
                            help,
                        );
                        None
                    }
                }
            }
            "service" => {
                let name = self.dns_label(value, "service name")?;
                if entity_named(&name.value).is_some() {
                    self.error(
                        "reserved-name",
                        name.span,
                        format!("`{}` is the name of a Cilium entity", name.value),
                        "no service has this name",
                        format!("for the entity write `{{entity: {}}}`", name.value),
                    );
                    return None;
                }
                let namespace = match fields.get("namespace") {
                    Some(n) => Some(self.dns_label(n, "namespace")?.value),
                    None => None,
                };
                Some(Peer::Ref {
                    namespace,
                    name: name.value,
                })
            }
            "namespace" => {
                let namespace = self.dns_label(value, "namespace")?.value;
                let select = match fields.get("select") {
                    Some(n) => Some(
                        self.labels(n)?
                            .value
                            .into_iter()
                            .map(|(k, v)| (k.value, v.value))
                            .collect(),
                    ),
                    None => None,
                };
                Some(Peer::Namespace { namespace, select })
            }
            _ => None,
        }
    }

    fn parse_cidr(&mut self, text: &Loc<String>) -> Option<IpNet> {
        match text.value.parse::<IpNet>() {
            Ok(net) => Some(net),
            Err(_) => {
                self.error(
                    "invalid-cidr",
                    text.span,
                    format!("invalid CIDR `{}`", text.value),
                    "not a CIDR",
                    "write a prefix such as `10.0.0.0/8` or `fd00::/8`".to_string(),
                );
                None
            }
        }
    }

    fn cidr(&mut self, net: IpNet, except: Vec<IpNet>, span: Span) -> Option<Peer> {
        if net.trunc() != net {
            self.error(
                "invalid-cidr",
                span,
                format!("`{net}` has host bits set"),
                "not a network address",
                format!("write the network address `{}`", net.trunc()),
            );
            return None;
        }
        Some(Peer::Cidr { cidr: net, except })
    }

    fn cluster_profile(&mut self, fields: &Fields<'_>) -> ClusterProfile {
        let mut profile = ClusterProfile {
            dns: None,
            kubelet: None,
            baselines: Vec::new(),
            name: None,
            pod_cidrs: Vec::new(),
            service_cidrs: Vec::new(),
            apiserver_ports: Vec::new(),
            cilium_version: None,
            domain: None,
        };
        if let Some(node) = fields.get("cluster")
            && let Some(cluster) =
                Fields::read(node, "the cluster settings", CLUSTER_KEYS, self.diagnostics)
        {
            profile.kubelet = cluster.get("kubelet").and_then(|n| self.boolean(n));
            profile.name = cluster.get("name").and_then(|n| self.string(n));
            profile.domain = cluster.get("domain").and_then(|n| self.string(n));
            for (key, out) in [
                ("pod-cidrs", &mut profile.pod_cidrs),
                ("service-cidrs", &mut profile.service_cidrs),
            ] {
                if let Some(n) = cluster.get(key) {
                    for text in self.strings(n, "a list of CIDRs, e.g. `[10.244.0.0/16]`") {
                        if let Some(net) = self.parse_cidr(&text) {
                            out.push(Loc::new(net, text.span));
                        }
                    }
                }
            }
            if let Some(n) = cluster.get("apiserver-ports") {
                profile.apiserver_ports = self.port_numbers(n);
            }
            profile.cilium_version = cluster.get("cilium-version").and_then(|n| self.version(n));
            if let Some(dns) = cluster.get("dns") {
                profile.dns = self.dns_settings(dns);
            }
        }
        if let Some(node) = fields.get("baselines") {
            match &node.value {
                Value::Seq(items) => {
                    for item in items {
                        if let Some(b) = self.baseline(item) {
                            profile.baselines.push(b);
                        }
                    }
                }
                Value::Null => {}
                _ => self.wrong_type(
                    node,
                    "a list of baselines",
                    "write `baselines:` as a list of `- name: ...` entries",
                ),
            }
        }
        profile
    }

    /// `[6443]` or `6443`: TCP port numbers.
    fn port_numbers(&mut self, node: &Node) -> Vec<Loc<u16>> {
        let items: Vec<&Node> = match &node.value {
            Value::Seq(items) => items.iter().collect(),
            _ => vec![node],
        };
        let mut out = Vec::new();
        for item in items {
            let number = match &item.value {
                Value::Int(n) => u16::try_from(*n).ok().filter(|n| *n > 0),
                Value::Str(s) => s.parse::<u16>().ok().filter(|n| *n > 0),
                _ => None,
            };
            match number {
                Some(n) => out.push(Loc::new(n, item.span)),
                None => self.error(
                    "invalid-port",
                    item.span,
                    "expected a port number".to_string(),
                    "not a port",
                    "the ports the API server listens on, e.g. `apiserver-ports: [6443]`"
                        .to_string(),
                ),
            }
        }
        out
    }

    /// `"1.18"`: a Cilium minor version.
    fn version(&mut self, node: &Node) -> Option<Loc<(u32, u32)>> {
        // A number is refused: YAML reads `1.10` as 1.1.
        let text = match &node.value {
            Value::Str(s) => s.clone(),
            _ => String::new(),
        };
        let parsed = text.split_once('.').and_then(|(a, b)| {
            let b = b.split('.').next().unwrap_or(b);
            Some((a.parse().ok()?, b.parse().ok()?))
        });
        match parsed {
            Some(v) => Some(Loc::new(v, node.span)),
            None => {
                self.error(
                    "invalid-value",
                    node.span,
                    "expected a Cilium version such as `\"1.18\"`".to_string(),
                    "not a version",
                    "write the version in quotes, major and minor: `cilium-version: \"1.18\"`"
                        .to_string(),
                );
                None
            }
        }
    }

    /// The resolver is one service of a profile (`ns/name`), pods (`{namespace, select}`) or
    /// the node (`{entity: host}`, NodeLocal DNSCache).
    fn resolver_shape(&mut self, peer: Loc<Peer>) -> Option<Loc<Peer>> {
        let ok = match &peer.value {
            Peer::Ref { namespace, .. } => namespace.is_some(),
            Peer::Namespace { select, .. } => select.is_some(),
            Peer::Entity(e) => *e == Entity::Host,
            Peer::Cidr { .. } | Peer::Fqdn(_) => false,
        };
        if ok {
            return Some(peer);
        }
        self.error(
            "invalid-resolver",
            peer.span,
            "the DNS resolver must be a service, pods or the node".to_string(),
            "not a resolver",
            "e.g. `resolver: kube-system/coredns`, `{namespace: kube-system, select: {k8s-app: kube-dns}}`, or `{entity: host}` with NodeLocal DNSCache".to_string(),
        );
        None
    }

    fn dns_settings(&mut self, node: &Node) -> Option<DnsSettings> {
        let fields = Fields::read(node, "the DNS settings", DNS_KEYS, self.diagnostics)?;
        let resolver = fields
            .get("resolver")
            .and_then(|n| self.peer(n))
            .and_then(|p| self.resolver_shape(p));
        let mut ports = Vec::new();
        if let Some(node) = fields.get("ports") {
            let ranges = self.ports_of(
                node,
                "a port such as `53/udp`",
                "the resolver's ports, e.g. `[53/udp, 53/tcp]`",
                port::parse_range,
            );
            for range in ranges {
                if range.value.first == range.value.last {
                    ports.push(range);
                } else {
                    self.error(
                        "invalid-port",
                        range.span,
                        format!("DNS port `{}` is a range", range.value),
                        "a range",
                        "Cilium's DNS rules take single ports".to_string(),
                    );
                }
            }
        }
        let queries = fields.get("queries").and_then(|n| {
            let text = self.string(n)?;
            match text.value.as_str() {
                "any" => Some(Loc::new(DnsQueries::Any, text.span)),
                "declared" => Some(Loc::new(DnsQueries::Declared, text.span)),
                other => {
                    self.error(
                        "invalid-value",
                        text.span,
                        format!("unknown DNS query mode `{other}`"),
                        "not a mode",
                        "`queries` is `any` (every lookup is allowed) or `declared` (only the names used in statements)".to_string(),
                    );
                    None
                }
            }
        });
        Some(DnsSettings {
            span: node.span,
            resolver,
            ports,
            queries,
        })
    }

    fn baseline(&mut self, node: &Node) -> Option<Baseline> {
        let fields = Fields::read(node, "a baseline", BASELINE_KEYS, self.diagnostics)?;
        let Some(name_node) = fields.get("name") else {
            self.error(
                "missing-key",
                node.span,
                "the baseline has no `name`".to_string(),
                "this baseline",
                "name it: it becomes the name of the CiliumClusterwideNetworkPolicy".to_string(),
            );
            return None;
        };
        let name = self.dns_label(name_node, "baseline name")?;
        let select = match fields.get("select") {
            Some(n) => self.baseline_select(n)?,
            None => {
                self.error(
                    "missing-key",
                    name.span,
                    format!("baseline `{}` has no `select`", name.value),
                    "which pods?",
                    "say which pods it applies to: `select: all`, `select: {namespace: media}` or `select: {select: {LABEL: VALUE}}`".to_string(),
                );
                return None;
            }
        };
        Some(Baseline {
            name,
            select,
            description: fields.get("description").and_then(|n| self.text(n)),
            allow: fields
                .get("allow")
                .map(|n| self.statements(n))
                .unwrap_or_default(),
            deny: fields
                .get("deny")
                .map(|n| self.statements(n))
                .unwrap_or_default(),
        })
    }

    fn baseline_select(&mut self, node: &Node) -> Option<Loc<BaselineSelect>> {
        if let Value::Str(s) = &node.value {
            if s == "all" {
                return Some(Loc::new(BaselineSelect::All, node.span));
            }
            self.error(
                "invalid-value",
                node.span,
                format!("invalid baseline selection `{s}`"),
                "not a selection",
                "write `all`, or a map with `namespace`, `namespaces` and/or `select`".to_string(),
            );
            return None;
        }
        let fields = Fields::read(
            node,
            "a baseline selection",
            BASELINE_SELECT_KEYS,
            self.diagnostics,
        )?;
        if fields.iter().next().is_none() {
            self.error(
                "invalid-value",
                node.span,
                "the baseline selection is empty".to_string(),
                "selects nothing in particular",
                "write `select: all` for every pod, or a map with `namespace`, `namespaces` and/or `select`".to_string(),
            );
            return None;
        }
        let mut namespaces = Vec::new();
        if let Some(n) = fields.get("namespace") {
            namespaces.push(self.dns_label(n, "namespace")?.value);
        }
        if let Some(n) = fields.get("namespaces")
            && one_or_many(n).is_empty()
        {
            self.error(
                "invalid-value",
                n.span,
                "no namespaces given".to_string(),
                "empty",
                "list the namespaces, or leave out `namespaces`".to_string(),
            );
            return None;
        }
        if let Some(n) = fields.get("namespaces") {
            for item in one_or_many(n) {
                if let Some(ns) = self.dns_label(item, "namespace") {
                    namespaces.push(ns.value);
                }
            }
        }
        let labels = match fields.get("select") {
            Some(n) => self
                .labels(n)?
                .value
                .into_iter()
                .map(|(k, v)| (k.value, v.value))
                .collect(),
            None => Vec::new(),
        };
        namespaces.sort();
        namespaces.dedup();
        Some(Loc::new(
            BaselineSelect::Pods { namespaces, labels },
            node.span,
        ))
    }

    fn labels(&mut self, node: &Node) -> Option<Loc<Labels>> {
        let Value::Map(entries) = &node.value else {
            self.wrong_type(
                node,
                "a map of pod labels",
                "write labels as `{app.kubernetes.io/name: sonarr}`",
            );
            return None;
        };
        let mut out: Labels = Vec::new();
        for (key, value) in entries {
            self.yaml11_boolean(key);
            self.yaml11_boolean(value);
            let Some(k) = key.scalar_text() else {
                self.wrong_type(
                    key,
                    "a label key",
                    "label keys are like `app.kubernetes.io/name`",
                );
                continue;
            };
            let Some(v) = value.scalar_text() else {
                self.wrong_type(
                    value,
                    "a label value",
                    "label values are strings such as `sonarr`",
                );
                continue;
            };
            if let Err((message, help)) = label::check_key(&k) {
                self.error(
                    "invalid-label",
                    key.span,
                    message,
                    "invalid label key",
                    help,
                );
                continue;
            }
            if let Some(reason) = label::filtered_from_identity(&k) {
                self.error(
                    "unselectable-label",
                    key.span,
                    format!("label `{k}` is not part of Cilium identities"),
                    "never matches",
                    format!("{reason}, so a selector on it selects nothing; use a label such as `app.kubernetes.io/name`"),
                );
                continue;
            }
            if let Err((message, help)) = label::check_value(&v) {
                self.error(
                    "invalid-label",
                    value.span,
                    message,
                    "invalid label value",
                    help,
                );
                continue;
            }
            if let Some((first, _)) = out.iter().find(|(fk, _)| fk.value == k) {
                self.diagnostics.push(
                    Diagnostic::error("duplicate-key", key.span, format!("duplicate key `{k}`"))
                        .with_label("second definition")
                        .with_related(first.span, "first definition")
                        .with_help("a label selector has one value per key"),
                );
                continue;
            }
            out.push((Loc::new(k, key.span), Loc::new(v, value.span)));
        }
        if out.is_empty() && entries.is_empty() {
            self.error(
                "empty-selector",
                node.span,
                "empty label selector".to_string(),
                "selects every pod",
                "leave out `select` to use `app.kubernetes.io/name: NAME`, or name the labels"
                    .to_string(),
            );
            return None;
        }
        Some(Loc::new(out, node.span))
    }

    fn enforce(&mut self, node: &Node) -> Option<Loc<Enforce>> {
        let text = self.string(node)?;
        let value = match text.value.as_str() {
            "both" => Enforce::Both,
            "ingress" => Enforce::Ingress,
            "egress" => Enforce::Egress,
            "audit" => Enforce::Audit,
            other => {
                let help = match crate::diagnostic::spelling::closest(
                    other,
                    ["both", "ingress", "egress", "audit"],
                ) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => "`enforce` is `both`, `ingress`, `egress` or `audit`".to_string(),
                };
                self.error(
                    "invalid-value",
                    text.span,
                    format!("unknown enforcement `{other}`"),
                    "not an enforcement mode",
                    help,
                );
                return None;
            }
        };
        Some(Loc::new(value, text.span))
    }

    fn boolean(&mut self, node: &Node) -> Option<Loc<bool>> {
        match node.value {
            Value::Bool(b) => Some(Loc::new(b, node.span)),
            Value::Str(ref s) if YAML11_BOOLEANS.contains(&s.as_str()) => {
                let truth = if matches!(s.to_ascii_lowercase().as_str(), "y" | "yes" | "on") {
                    "true"
                } else {
                    "false"
                };
                let help = format!(
                    "`{s}` is a boolean only in YAML 1.1; netpol reads YAML 1.2, where it is a string: write `{truth}`"
                );
                self.wrong_type(node, "`true` or `false`", &help);
                None
            }
            _ => {
                self.wrong_type(node, "`true` or `false`", "write `true` or `false`");
                None
            }
        }
    }

    fn string(&mut self, node: &Node) -> Option<Loc<String>> {
        match &node.value {
            Value::Str(s) => Some(Loc::new(s.clone(), node.span)),
            _ => {
                self.wrong_type(
                    node,
                    "a string",
                    "quote the value if YAML reads it as something else",
                );
                None
            }
        }
    }

    fn text(&mut self, node: &Node) -> Option<String> {
        match node.scalar_text() {
            Some(s) => Some(s),
            None => {
                self.wrong_type(
                    node,
                    "a text",
                    "write the text on one line, or as a YAML block scalar",
                );
                None
            }
        }
    }

    fn strings(&mut self, node: &Node, what: &str) -> Vec<Loc<String>> {
        let mut out = Vec::new();
        for item in one_or_many(node) {
            match item.scalar_text() {
                Some(s) => out.push(Loc::new(s, item.span)),
                None => self.wrong_type(item, what, "each entry is a string"),
            }
        }
        out
    }

    /// Names that must be DNS labels (service, group and template names).
    fn names(&mut self, node: &Node, what: &str) -> Vec<Loc<String>> {
        one_or_many(node)
            .into_iter()
            .filter_map(|item| {
                if matches!(item.value, Value::Seq(_) | Value::Map(_) | Value::Null) {
                    self.wrong_type(item, what, "each entry is a name");
                    return None;
                }
                self.dns_label(item, "name")
            })
            .collect()
    }

    /// `acknowledge: {CODE: REASON, ...}` of the statement or service at `owner`.
    fn acknowledge(&mut self, owner: Span, node: &Node) {
        let Value::Map(entries) = &node.value else {
            if !matches!(node.value, Value::Null) {
                self.wrong_type(
                    node,
                    "a map of warning codes to reasons",
                    "write e.g. `acknowledge: {open-to-world: \"the ingress controller\"}`",
                );
            }
            return;
        };
        for (key, value) in entries {
            let Some(code) = key.as_str() else {
                self.wrong_type(
                    key,
                    "a warning code",
                    "codes are the names after `netpol::` in warnings, e.g. `open-to-world`",
                );
                continue;
            };
            let reason = match &value.value {
                Value::Null => String::new(),
                Value::Str(text) => text.trim().to_string(),
                _ => {
                    self.wrong_type(
                        value,
                        "a reason (a string)",
                        "say in a few words why the warning is fine here",
                    );
                    continue;
                }
            };
            let code = code.strip_prefix("netpol::").unwrap_or(code).to_string();
            self.acknowledgements.push(Acknowledgement {
                owner,
                code: Loc::new(code, key.span),
                reason,
            });
        }
    }

    /// A warning for a plain `no`, `on`, `y`, ... that netpol reads as a string and YAML 1.1
    /// readers as a boolean.
    fn yaml11_boolean(&mut self, node: &Node) {
        let Value::Str(value) = &node.value else {
            return;
        };
        let written = self.text.and_then(|t| t.get(node.span.range()));
        if written != Some(value.as_str()) || !YAML11_BOOLEANS.contains(&written.unwrap_or("")) {
            return;
        }
        let truth = if matches!(value.to_ascii_lowercase().as_str(), "y" | "yes" | "on") {
            "true"
        } else {
            "false"
        };
        self.diagnostics.push(
            Diagnostic::warning(
                "yaml11-boolean",
                node.span,
                format!("`{value}` is a boolean in YAML 1.1"),
            )
            .with_label("quote it")
            .with_help(format!(
                "netpol reads the string `{value}`, but PyYAML, yamllint and other YAML 1.1 readers read `{truth}`; write `\"{value}\"`"
            )),
        );
    }

    fn dns_label(&mut self, node: &Node, what: &str) -> Option<Loc<String>> {
        self.yaml11_boolean(node);
        let Some(text) = node.as_str().map(str::to_string) else {
            let help = match node.scalar_text() {
                // `namespace: 2024`: YAML reads a number.
                Some(text) => format!("names are strings; quote it: `\"{text}\"`"),
                None => "names are lowercase DNS labels such as `sonarr`".to_string(),
            };
            self.wrong_type(node, &format!("a {what}"), &help);
            return None;
        };
        if label::is_dns_label(&text) {
            Some(Loc::new(text, node.span))
        } else {
            let fixed: String = text
                .to_ascii_lowercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let fixed = fixed.trim_matches('-');
            let hint = if !fixed.is_empty() && label::is_dns_label(fixed) {
                format!(
                    "a {what} is a lowercase DNS label (letters, digits, `-`, at most 63); e.g. `{fixed}`"
                )
            } else {
                format!("a {what} is a lowercase DNS label (letters, digits, `-`, at most 63)")
            };
            self.error(
                "invalid-name",
                node.span,
                format!("invalid {what} `{text}`"),
                "not a DNS label",
                hint,
            );
            None
        }
    }
}
