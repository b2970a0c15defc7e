//! Policy entries: every item of every rule, normalized (docs/semantics.md §2.1, §10.2).
//!
//! One entry = subject × direction × verdict × peers (L3) × ports (L4) × L7, with the
//! provenance of the item (policy, path, span). CNP, CCNP and KNP all become entries of the
//! same shape, so that allows union and denies win across kinds (§2.4, §8).

use std::fmt;

use ipnet::IpNet;

use crate::diagnostic::source::Span;
use crate::document::Step;
use crate::engine::identity::{self, Peer, Reserved};
use crate::engine::policy::{
    self, Body, PeerField, Policy, PolicyKind, PolicySet, PortView, Section,
};
use crate::engine::selector::{self, KeyForm, Op, Requirement, Selector};
use crate::engine::settings::{Enforcement, Settings};
use crate::objects::cilium::{
    AuthenticationMode, CidrRule, EndpointSelector, Entity, IcmpFamily, IcmpType, PortProtocol,
    Protocol, Rule,
};
use crate::objects::fqdn::FqdnSelector;
use crate::objects::kubernetes::{
    IntOrString, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec, PolicyType,
};
use crate::objects::port::RulePort;
use crate::objects::{Direction, Proto, ProtoSet};

/// Index of an entry in [`Entries::entries`].
pub type EntryId = u32;

/// Where an entry comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Index of the policy in the set.
    pub policy: usize,
    pub kind: PolicyKind,
    pub name: String,
    pub namespace: Option<String>,
    /// `spec.ingress[0]`, `specs[1].egressDeny[2].toPorts[0]`.
    pub path: String,
    pub span: Span,
    /// For a compiled policy, where its rule comes from in the profiles: the statements
    /// (`profiles/media.yaml:41,44`, annotation `netpol.dev/rule-sources`), else the
    /// declaration (`netpol.dev/source`).
    pub profile: Option<String>,
}

impl Origin {
    /// `cnp/media/sonarr spec.egress[1]`.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{ns}/{} {}", self.kind.short(), self.name, self.path),
            None => format!("{}/{} {}", self.kind.short(), self.name, self.path),
        }
    }
}

/// Which endpoints an entry applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// Endpoints whose identity matches; for a CNP/KNP the namespace is part of the selector.
    Endpoints(Selector),
    /// Host endpoints (`nodeSelector`): the nodes whose host labels match, and only with the
    /// host firewall on (`host_firewall`); off, Cilium's default, such entries never apply.
    Nodes {
        selector: Selector,
        host_firewall: bool,
    },
}

/// One peer predicate (docs/semantics.md §10.2 step 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerMatch {
    /// Any identity at all (entity `all`, KNP rules without peers).
    Any,
    /// Identities whose labels match (endpoint selectors after rewrites, entities).
    Labels(Selector),
    /// World-class peers whose IP is inside `net` and outside every `except` (§1.7, §5.3);
    /// with `nodes` (`policy-cidr-match-mode: nodes`), node addresses too.
    Cidr {
        net: IpNet,
        except: Vec<IpNet>,
        nodes: bool,
    },
    /// World-class peers with a DNS name the selector matches, seen by the DNS proxy (§4.3).
    Fqdn(FqdnSelector),
    /// Something netpol cannot resolve offline (cloud groups, CIDR groups, Services without an
    /// inventory); never matches, and says why.
    Unresolved(String),
}

impl fmt::Display for PeerMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any peer"),
            Self::Labels(s) => write!(f, "identities {s}"),
            Self::Cidr { net, except, .. } if except.is_empty() => write!(f, "CIDR {net}"),
            Self::Cidr { net, except, .. } => {
                let ex: Vec<String> = except.iter().map(ToString::to_string).collect();
                write!(f, "CIDR {net} except {}", ex.join(", "))
            }
            Self::Fqdn(s) => write!(f, "DNS {}", s.text()),
            Self::Unresolved(why) => write!(f, "unresolved ({why})"),
        }
    }
}

/// The L3 part of an entry (docs/semantics.md §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L3 {
    /// No peer field: with ports, every identity; without ports, nothing.
    Wildcard,
    /// A peer field given as an empty list: selects nothing.
    Nothing,
    Peers(Vec<PeerMatch>),
}

/// One port match: protocols × an inclusive port interval, or a named port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMatch {
    pub protocols: ProtoSet,
    pub first: u16,
    pub last: u16,
    /// A named port, resolved when a flow is judged (docs/semantics.md §1.13).
    pub name: Option<String>,
}

impl fmt::Display for PortMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = match (&self.name, self.first, self.last) {
            (Some(name), _, _) => name.clone(),
            (None, 0, 65535) => "*".to_owned(),
            (None, a, b) if a == b => a.to_string(),
            (None, a, b) => format!("{a}-{b}"),
        };
        write!(f, "{port}/{}", self.protocols)
    }
}

/// The L4 part: `None` = every protocol and port (including ICMP).
pub type L4 = Option<Vec<PortMatch>>;

/// What an allow entry asks of the L7 proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L7 {
    Http,
    Kafka,
    Dns,
    Generic,
    /// TLS interception or an Envoy listener without L7 rules.
    Proxy,
}

/// One normalized policy entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub origin: Origin,
    pub subject: Subject,
    /// For CNP/KNP: the namespace the subject is restricted to (a fast filter).
    pub namespace: Option<String>,
    pub direction: Direction,
    pub deny: bool,
    /// Whether this entry switches its direction to default deny (§2.2, §2.3).
    pub default_deny: bool,
    pub l3: L3,
    pub l4: L4,
    pub l7: Option<L7>,
    /// `rules.dns` selectors: the DNS queries this entry lets the proxy see (§4.1).
    pub dns: Vec<FqdnSelector>,
    /// `authentication.mode` of the item: what the allow needs before traffic passes.
    pub auth: Auth,
    /// The item's `fromRequires`/`toRequires` (Cilium 1.18 and older): selectors that every
    /// `fromEndpoints`/`toEndpoints` peer of the subject's entries of the same direction and
    /// verdict must match too, whichever rule they come from (§1.11).
    pub requires: Vec<Selector>,
    /// The L3 peers come from `fromEndpoints`/`toEndpoints`: the requirements apply to them.
    pub endpoint_peers: bool,
}

/// The authentication an allow entry asks for (`authentication.mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Auth {
    /// No `authentication`.
    #[default]
    Unset,
    /// `mode: disabled`, explicitly.
    Disabled,
    /// `mode: required` (or `test-always-fail`) and the agent can authenticate (mutual auth
    /// configured): traffic passes once the identities are authenticated.
    Authenticated,
    /// `mode: required` without a mutual-auth backend, or `test-always-fail`: the datapath drops
    /// with `AUTH_REQUIRED` (189) for good.
    Drops,
}

/// All entries of a policy set, and what could not be resolved.
#[derive(Debug, Clone, Default)]
pub struct Entries {
    pub entries: Vec<Entry>,
    /// `enable-policy` of the agents the entries are judged for.
    pub enforcement: Enforcement,
    /// `allow-localhost: policy`: ingress from the local host needs a rule like any other.
    pub localhost_by_policy: bool,
    /// `policy-audit-mode`: policy drops pass and are logged as audited.
    pub audit_mode: bool,
    /// `policy-cidr-match-mode: nodes`: CIDR selectors select node addresses too.
    pub cidr_selects_nodes: bool,
    /// `enable-host-firewall`: the nodes' host endpoints enforce their `nodeSelector` rules.
    pub host_firewall: bool,
}

impl Entries {
    /// Whether policy is enforced at this end of a flow: a Cilium endpoint, or with the host
    /// firewall a node's host endpoint (the local host, or a remote node's own host).
    pub fn enforces(&self, peer: &Peer) -> bool {
        peer.is_endpoint() || (self.host_firewall && peer.is_node())
    }
}

/// The pods behind the Services that `toServices` names (docs/semantics.md §1.9): what the
/// cluster knows, not the policies. The inventory of the flow layer implements it.
pub trait ServiceBackends {
    /// The peers a `toServices` item stands for: the selected pods, or the endpoint addresses
    /// of a Service without a selector; none when no Service matches.
    fn service_peers(&self, service: &crate::objects::cilium::Service) -> Vec<PeerMatch>;
}

/// Build the entries of every policy, as the agent configured by `settings` would;
/// `services` resolves `toServices` (without it, such items are unresolved and never match).
pub fn build(
    set: &PolicySet,
    services: Option<&dyn ServiceBackends>,
    settings: &Settings,
) -> Entries {
    let mut out = Entries {
        enforcement: settings.enforcement,
        localhost_by_policy: settings.localhost_by_policy,
        audit_mode: settings.audit_mode,
        cidr_selects_nodes: settings.cidr_selects_nodes,
        host_firewall: settings.host_firewall,
        ..Entries::default()
    };
    let ctx = Context {
        services,
        groups: &set.cidr_groups,
        cluster: &settings.cluster_name,
        local_cluster: settings.local_cluster_filter(),
        multi_label_patterns: settings.cilium() >= crate::engine::settings::Version(1, 19),
        mutual_auth: settings.mutual_auth,
        default_deny_forced: settings.default_deny_forced,
        audit_as_enforced: settings.audit_as_enforced,
        host_firewall: settings.host_firewall,
        node_selector_labels: settings.node_selector_labels,
    };
    for (index, policy) in set.policies.iter().enumerate() {
        match &policy.body {
            Body::Cilium(rules) => {
                for (rule, path) in rules {
                    cilium_rule(&mut out, index, policy, rule, path, &ctx);
                }
            }
            Body::Kubernetes(spec) => knp(&mut out, index, policy, spec, ctx.local_cluster),
        }
    }
    if settings.cidr_selects_nodes {
        // Node addresses carry CIDR labels in this mode, so every CIDR selector (ipBlock and
        // `toServices` endpoints included) selects them (docs/semantics.md §5.3).
        for e in &mut out.entries {
            if let L3::Peers(peers) = &mut e.l3 {
                for m in peers {
                    if let PeerMatch::Cidr { nodes, .. } = m {
                        *nodes = true;
                    }
                }
            }
        }
    }
    out
}

/// What peers are resolved against.
struct Context<'a> {
    services: Option<&'a dyn ServiceBackends>,
    groups: &'a std::collections::BTreeMap<String, policy::CidrGroup>,
    /// The local cluster's name (the `cluster` entity).
    cluster: &'a str,
    /// The cluster peer selectors that name no cluster are confined to, if any.
    local_cluster: Option<&'a str>,
    /// Cilium 1.19 reads a leading `**.` (two or more stars) in `matchPattern` as one or more
    /// labels; before, as one label (`*.`).
    multi_label_patterns: bool,
    /// The agents can authenticate identities (mutual auth configured).
    mutual_auth: bool,
    /// `enable-non-default-deny-policies: false`.
    default_deny_forced: bool,
    /// Audit-phase policies judged as enforced.
    audit_as_enforced: bool,
    /// `enable-host-firewall`.
    host_firewall: bool,
    /// `enable-node-selector-labels`.
    node_selector_labels: bool,
}

/// `spec.egress[0].toPorts[1]`: the path of [`Origin::path`].
pub fn path_text(steps: &[Step<'_>]) -> String {
    let mut s = String::new();
    for step in steps {
        match step {
            Step::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn origin(index: usize, policy: &Policy, steps: &[Step<'_>]) -> Origin {
    let path = path_text(steps);
    Origin {
        policy: index,
        kind: policy.kind,
        name: policy.name.clone(),
        namespace: policy.namespace.clone(),
        profile: policy.profile_of(&path),
        path,
        span: policy.span_of(steps),
    }
}

fn cilium_rule(
    out: &mut Entries,
    index: usize,
    policy: &Policy,
    rule: &Rule,
    base: &[Step<'static>],
    ctx: &Context<'_>,
) {
    let namespace = match policy.kind {
        PolicyKind::Cnp => policy.namespace.clone(),
        _ => None,
    };
    let subject = match (&rule.endpoint_selector, &rule.node_selector) {
        (Some(sel), _) => Subject::Endpoints(match &namespace {
            Some(ns) => Selector::compile_in(sel, KeyForm::Cilium, ns),
            None => Selector::compile(sel, KeyForm::Cilium),
        }),
        (None, Some(sel)) => Subject::Nodes {
            selector: Selector::compile(sel, KeyForm::Cilium),
            host_firewall: ctx.host_firewall,
        },
        (None, None) => return,
    };
    // CCNP peers get `namespace Exists` unless the subject is the init identity (§3.3).
    let init_subject = rule
        .endpoint_selector
        .as_ref()
        .is_some_and(selector::selects_init);
    let dd = rule.enable_default_deny.as_ref();
    for item in policy::items(rule) {
        let direction = item.section.direction();
        let default_deny = match direction {
            Direction::Ingress => dd.and_then(|d| d.ingress),
            Direction::Egress => dd.and_then(|d| d.egress),
        }
        .unwrap_or(true)
            || ctx.default_deny_forced
            || (ctx.audit_as_enforced && policy.audit_phase);
        let l3 = l3_of(
            &item.peers,
            item.section.is_deny(),
            namespace.as_deref(),
            init_subject,
            ctx,
        );
        let requires: Vec<Selector> = item
            .requires
            .into_iter()
            .flatten()
            .map(|s| {
                Selector::compile(s, KeyForm::Cilium).peer(namespace.as_deref(), init_subject, None)
            })
            .collect();
        let endpoint_peers = item
            .peers
            .iter()
            .any(|(_, f)| matches!(f, PeerField::Endpoints(v) if !v.is_empty()));
        let item_path: Vec<Step<'static>> = base.iter().copied().chain(item.path()).collect();
        // Without a mutual-auth backend nobody ever writes the auth map, so `required` drops
        // (cilium/cilium@507103c6 bpf/bpf_lxc.c:855-878, pkg/auth/mutual_authhandler.go:65-75).
        let auth = match item.authentication.map(|a| a.mode) {
            None => Auth::Unset,
            Some(AuthenticationMode::Disabled) => Auth::Disabled,
            Some(AuthenticationMode::Required) if ctx.mutual_auth => Auth::Authenticated,
            Some(AuthenticationMode::Required | AuthenticationMode::TestAlwaysFail) => Auth::Drops,
        };
        let make =
            |l4: L4, l7: Option<L7>, dns: Vec<FqdnSelector>, steps: &[Step<'static>]| Entry {
                origin: origin(index, policy, steps),
                subject: subject.clone(),
                namespace: namespace.clone(),
                direction,
                deny: item.section.is_deny(),
                default_deny,
                l3: l3.clone(),
                l4,
                l7,
                dns,
                auth,
                requires: requires.clone(),
                endpoint_peers,
            };
        match (&item.ports, item.icmps) {
            (Some(ports), _) if !ports.is_empty() => {
                for (i, pv) in ports.iter().enumerate() {
                    let steps: Vec<Step<'static>> = item_path
                        .iter()
                        .copied()
                        .chain([Step::Key("toPorts"), Step::Index(i)])
                        .collect();
                    let (l7, dns) = l7_of(pv, ctx.multi_label_patterns);
                    out.entries
                        .push(make(Some(port_matches(pv.ports)), l7, dns, &steps));
                }
            }
            (_, Some(icmps)) if !icmps.is_empty() => {
                for (i, rule) in icmps.iter().enumerate() {
                    let steps: Vec<Step<'static>> = item_path
                        .iter()
                        .copied()
                        .chain([Step::Key("icmps"), Step::Index(i)])
                        .collect();
                    let l4 = rule
                        .fields
                        .iter()
                        .flatten()
                        .filter_map(|f| {
                            let (proto, family) = match f.family {
                                Some(IcmpFamily::IPv6) => {
                                    (Proto::Icmpv6, crate::objects::port::IcmpFamily::V6)
                                }
                                _ => (Proto::Icmp, crate::objects::port::IcmpFamily::V4),
                            };
                            let kind = match &f.icmp_type {
                                IcmpType::Number(n) => Some(*n),
                                IcmpType::Name(name) => {
                                    crate::objects::port::icmp_type_named(family, name)
                                }
                            }?;
                            Some(PortMatch {
                                protocols: ProtoSet::of(proto),
                                first: u16::from(kind),
                                last: u16::from(kind),
                                name: None,
                            })
                        })
                        .collect();
                    out.entries.push(make(Some(l4), None, Vec::new(), &steps));
                }
            }
            // `toPorts: []` and no ports at all: L3 only.
            _ => out.entries.push(make(None, None, Vec::new(), &item_path)),
        }
    }
}

/// The L3 of an item from its peer fields. An empty `fromEndpoints`/`toEndpoints`, nodes,
/// entities, CIDR or CIDR-set list makes the item select nothing, even beside another field;
/// an empty `toFQDNs`, `toServices` or groups list is as if absent; an item with no peer left
/// is a wildcard, which matches only with ports (cilium/cilium@507103c6
/// pkg/policy/utils/parserules.go:140-158, pkg/policy/rule.go:348-367, pkg/policy/l4.go:964-970).
///
/// `toServices` is a rewrite of egress items into the selected Services' pods (or endpoint
/// CIDRs): when no Service matches, nothing is added and the item has no peer; under
/// `egressDeny` it is never rewritten at all (pkg/policy/k8s/service.go:236-257, 439-467).
fn l3_of(
    fields: &[(&str, PeerField<'_>)],
    deny: bool,
    namespace: Option<&str>,
    init_subject: bool,
    ctx: &Context<'_>,
) -> L3 {
    let cancels = |f: &PeerField<'_>| {
        f.is_empty()
            && matches!(
                f,
                PeerField::Endpoints(_)
                    | PeerField::Nodes(_)
                    | PeerField::Entities(_)
                    | PeerField::Cidr(_)
                    | PeerField::CidrSet(_)
            )
    };
    if fields.iter().any(|(_, f)| cancels(f)) {
        return L3::Nothing;
    }
    // The peers of each field that contributes any.
    let contributed: Vec<Vec<PeerMatch>> = fields
        .iter()
        .filter(|(_, f)| !f.is_empty())
        .filter_map(|(_, f)| match f {
            PeerField::Services(_) if deny => None,
            PeerField::Services(_) => {
                let peers = peers(*f, namespace, init_subject, ctx);
                (!peers.is_empty()).then_some(peers)
            }
            _ => Some(peers(*f, namespace, init_subject, ctx)),
        })
        .collect();
    if contributed.is_empty() {
        L3::Wildcard
    } else {
        L3::Peers(contributed.into_iter().flatten().collect())
    }
}

/// A `matchName`/`matchPattern` selector, normalized (lowercase, no trailing dot).
///
/// A leading run of two or more `*` before a `.` is one or more labels from Cilium 1.19 on
/// (written `**.` here) and a single label (`*.`) before (cilium/cilium@507103c6
/// pkg/fqdn/matchpattern/matchpattern.go; the 1.19 change is 4ef872ef).
fn fqdn_selector(
    s: &crate::objects::cilium::FqdnSelector,
    multi_label: bool,
) -> Option<FqdnSelector> {
    s.match_name
        .as_deref()
        .map(|n| FqdnSelector::Name(crate::objects::fqdn::normalize(n)))
        .or_else(|| {
            s.match_pattern.as_deref().map(|p| {
                let p = crate::objects::fqdn::normalize(p);
                let stars = p.bytes().take_while(|b| *b == b'*').count();
                let p = match p.get(stars..) {
                    Some(rest) if stars >= 2 && rest.starts_with('.') => {
                        format!("{}{rest}", if multi_label { "**" } else { "*" })
                    }
                    _ => p,
                };
                FqdnSelector::Pattern(p)
            })
        })
}

/// The proxy an item redirects to. As Cilium picks the parser, a family counts only with at
/// least one rule (`http: []` is no HTTP rule) and `l7proto` only when not empty
/// (cilium/cilium@507103c6 pkg/policy/l4.go:1004-1025); TLS settings or a listener alone
/// still redirect.
fn l7_of(pv: &PortView<'_>, multi_label: bool) -> (Option<L7>, Vec<FqdnSelector>) {
    if let Some(rules) = pv.rules {
        if let Some(dns) = rules.dns.as_ref().filter(|d| !d.is_empty()) {
            let sels = dns
                .iter()
                .filter_map(|s| fqdn_selector(s, multi_label))
                .collect();
            return (Some(L7::Dns), sels);
        }
        if rules.http.as_ref().is_some_and(|h| !h.is_empty()) {
            return (Some(L7::Http), Vec::new());
        }
        if rules.kafka.as_ref().is_some_and(|k| !k.is_empty()) {
            return (Some(L7::Kafka), Vec::new());
        }
        if rules.l7proto.as_ref().is_some_and(|p| !p.is_empty()) {
            return (Some(L7::Generic), Vec::new());
        }
    }
    if pv.server_names.is_some_and(|n| !n.is_empty())
        || pv.terminating_tls
        || pv.originating_tls
        || pv.listener.is_some()
    {
        return (Some(L7::Proxy), Vec::new());
    }
    (None, Vec::new())
}

/// `ports[]` of a `toPorts` item (docs/semantics.md §1.13): no protocol or `ANY` = TCP, UDP
/// and SCTP; `"0"` = every port; `endPort` above `port` = a range.
///
/// A `toPorts` item without ports (only `rules`, `{}`, `ports: []`) matches nothing, in allow
/// and deny rules alike: Cilium makes one filter per listed port and none for the item, while
/// the item still keeps the rule from being L3-only (cilium/cilium@507103c6
/// pkg/policy/rule.go:361-413, pkg/policy/api/l4.go:345-366). The entry stays, so the rule
/// still turns on default deny.
pub fn port_matches(ports: Option<&[PortProtocol]>) -> Vec<PortMatch> {
    let Some(ports) = ports.filter(|p| !p.is_empty()) else {
        return Vec::new();
    };
    ports
        .iter()
        .map(|p| {
            let protocols = match p.protocol {
                None | Some(Protocol::Any) => ProtoSet::ANY,
                Some(Protocol::Tcp) => ProtoSet::of(Proto::Tcp),
                Some(Protocol::Udp) => ProtoSet::of(Proto::Udp),
                Some(Protocol::Sctp) => ProtoSet::of(Proto::Sctp),
                Some(Protocol::Vrrp) => ProtoSet::of(Proto::Other(112)),
                Some(Protocol::Igmp) => ProtoSet::of(Proto::Other(2)),
            };
            if p.port.is_empty() {
                return PortMatch {
                    protocols,
                    first: 0,
                    last: 65535,
                    name: None,
                };
            }
            // `endPort` above the port makes a range; `port: "0"` is every port unless an
            // `endPort` below 65535 bounds it (0..endPort); a named port's range starts at the
            // number the name resolves to (cilium/cilium@507103c6 pkg/policy/portrange.go:32-45,
            // pkg/policy/l4.go:716-730).
            let end = p.end_port.and_then(|e| u16::try_from(e).ok());
            match RulePort::parse(&p.port) {
                Ok(RulePort::Number(0)) => PortMatch {
                    protocols,
                    first: 0,
                    last: end.filter(|e| *e > 0).unwrap_or(65535),
                    name: None,
                },
                Ok(RulePort::Number(n)) => PortMatch {
                    protocols,
                    first: n,
                    last: end.filter(|e| *e > n).unwrap_or(n),
                    name: None,
                },
                Ok(RulePort::Name(name)) => PortMatch {
                    protocols,
                    first: 0,
                    last: end.unwrap_or(0),
                    name: Some(name),
                },
                // Rejected by validation; nothing to match.
                Err(_) => PortMatch {
                    protocols: ProtoSet::NONE,
                    first: 0,
                    last: 0,
                    name: None,
                },
            }
        })
        .collect()
}

fn peers(
    field: PeerField<'_>,
    namespace: Option<&str>,
    init_subject: bool,
    ctx: &Context<'_>,
) -> Vec<PeerMatch> {
    match field {
        PeerField::Endpoints(sels) => sels
            .iter()
            .map(|s| {
                PeerMatch::Labels(Selector::compile(s, KeyForm::Cilium).peer(
                    namespace,
                    init_subject,
                    ctx.local_cluster,
                ))
            })
            .collect(),
        PeerField::Entities(entities) => entities
            .iter()
            .flat_map(|e| entity(*e, ctx.cluster))
            .collect(),
        PeerField::Cidr(cidrs) => cidrs
            .iter()
            .filter_map(|c| policy::parse_cidr(c))
            .map(|net| PeerMatch::Cidr {
                net,
                except: Vec::new(),
                nodes: false,
            })
            .collect(),
        PeerField::CidrSet(rules) => rules.iter().flat_map(|r| cidr_rule(r, ctx)).collect(),
        PeerField::Fqdns(sels) => sels
            .iter()
            .filter_map(|s| fqdn_selector(s, ctx.multi_label_patterns))
            .map(PeerMatch::Fqdn)
            .collect(),
        // Remote nodes by their Node labels (`node:` in their identities), never the local
        // host (cilium/cilium@507103c6 pkg/k8s/apis/cilium.io/utils/utils.go:170-178, 276-284:
        // `reserved:remote-node Exists` is added).
        PeerField::Nodes(sels) if ctx.node_selector_labels => sels
            .iter()
            .map(|sel| {
                PeerMatch::Labels(Selector::compile(sel, KeyForm::Cilium).with(Requirement {
                    source: Some("reserved".to_owned()),
                    key: "remote-node".to_owned(),
                    op: Op::Exists,
                }))
            })
            .collect(),
        PeerField::Nodes(_) => vec![PeerMatch::Unresolved(
            "node selectors need `--enable-node-selector-labels`".to_owned(),
        )],
        PeerField::Groups(_) => vec![PeerMatch::Unresolved(
            "cloud provider groups are resolved by the Cilium operator".to_owned(),
        )],
        // An item with neither `k8sService` nor `k8sServiceSelector` matches no Service
        // (cilium/cilium@507103c6 pkg/policy/k8s/service.go:439-469): no peer, resolved or not.
        PeerField::Services(services) => services
            .iter()
            .filter(|s| s.k8s_service.is_some() || s.k8s_service_selector.is_some())
            .flat_map(|s| match ctx.services {
                Some(backends) => backends.service_peers(s),
                None => vec![PeerMatch::Unresolved(
                    "`toServices` needs `--inventory` to find the Service's pods".to_owned(),
                )],
            })
            .collect(),
    }
}

fn cidr_rule(r: &CidrRule, ctx: &Context<'_>) -> Vec<PeerMatch> {
    let except: Vec<IpNet> = r
        .except
        .iter()
        .flatten()
        .filter_map(|e| policy::parse_cidr(e))
        .collect();
    let of_groups = |groups: Vec<&policy::CidrGroup>| -> Vec<PeerMatch> {
        groups
            .into_iter()
            .flat_map(|g| g.cidrs.iter())
            .map(|net| PeerMatch::Cidr {
                net: *net,
                except: except.clone(),
                nodes: false,
            })
            .collect()
    };
    if let Some(c) = &r.cidr {
        return vec![match policy::parse_cidr(c) {
            Some(net) => PeerMatch::Cidr {
                net,
                except,
                nodes: false,
            },
            None => PeerMatch::Unresolved(format!("invalid CIDR `{c}`")),
        }];
    }
    if let Some(name) = &r.cidr_group_ref {
        return match ctx.groups.get(name) {
            Some(g) => of_groups(vec![g]),
            None => vec![PeerMatch::Unresolved(format!(
                "CiliumCIDRGroup `{name}` is not among the imported objects"
            ))],
        };
    }
    if let Some(sel) = &r.cidr_group_selector {
        let sel = Selector::compile(sel, KeyForm::CidrGroup);
        let groups: Vec<&policy::CidrGroup> = ctx
            .groups
            .values()
            .filter(|g| {
                let labels = identity::Labels::new(
                    g.labels
                        .iter()
                        .map(|(k, v)| identity::Label::new("cidrgroup", k, v))
                        .collect(),
                );
                sel.matches(&labels)
            })
            .collect();
        if groups.is_empty() {
            return vec![PeerMatch::Unresolved(
                "no imported CiliumCIDRGroup matches `cidrGroupSelector`".to_owned(),
            )];
        }
        return of_groups(groups);
    }
    Vec::new()
}

/// Entities as identity predicates (docs/semantics.md §5.2); `cluster` is the local
/// cluster's name (the `cluster` entity is its pods plus the reserved identities).
pub fn entity(e: Entity, cluster: &str) -> Vec<PeerMatch> {
    let reserved = |r: Reserved| {
        PeerMatch::Labels(Selector::default().with(Requirement::exists(Some("reserved"), r.key())))
    };
    match e {
        Entity::All => vec![PeerMatch::Any],
        Entity::None => Vec::new(),
        Entity::World => ["world", "world-ipv4", "world-ipv6"]
            .into_iter()
            .map(|k| {
                PeerMatch::Labels(
                    Selector::default().with(Requirement::exists(Some("reserved"), k)),
                )
            })
            .collect(),
        Entity::Cluster => {
            let mut v: Vec<PeerMatch> = [
                Reserved::Host,
                Reserved::RemoteNode,
                Reserved::Init,
                Reserved::Ingress,
                Reserved::Health,
                Reserved::Unmanaged,
                Reserved::KubeApiserver,
            ]
            .into_iter()
            .map(reserved)
            .collect();
            v.push(PeerMatch::Labels(Selector::default().with(
                Requirement::equals(Some("k8s"), identity::CLUSTER, cluster),
            )));
            v
        }
        Entity::Host => vec![reserved(Reserved::Host)],
        Entity::RemoteNode => vec![reserved(Reserved::RemoteNode)],
        Entity::KubeApiserver => vec![reserved(Reserved::KubeApiserver)],
        Entity::Ingress => vec![reserved(Reserved::Ingress)],
        Entity::Health => vec![reserved(Reserved::Health)],
        Entity::Init => vec![reserved(Reserved::Init)],
        Entity::Unmanaged => vec![reserved(Reserved::Unmanaged)],
    }
}

/// A Kubernetes NetworkPolicy as entries (docs/semantics.md §8).
fn knp(
    out: &mut Entries,
    index: usize,
    policy: &Policy,
    spec: &NetworkPolicySpec,
    cluster: Option<&str>,
) {
    let Some(ns) = policy.namespace.as_deref() else {
        return;
    };
    let subject = Subject::Endpoints(Selector::compile_in(
        &spec.pod_selector,
        KeyForm::Kubernetes,
        ns,
    ));
    // The API server defaults a missing or empty `policyTypes` to `Ingress`, plus `Egress` when
    // there are egress rules (kubernetes/kubernetes@030880a5 pkg/apis/networking/v1/defaults.go:
    // 38-46). Cilium then turns every rule of both lists into entries whatever the types say;
    // the types only decide the default-deny entry of a direction without rules: ingress when
    // `Ingress` is listed or `Egress` is not, egress when `Egress` is listed
    // (cilium/cilium@507103c6 pkg/k8s/network_policy.go:158-274).
    let types = spec.policy_types.as_deref().filter(|ts| !ts.is_empty());
    let has = |t: PolicyType| match types {
        Some(ts) => ts.contains(&t),
        None => match t {
            PolicyType::Ingress => true,
            PolicyType::Egress => spec.egress.as_ref().is_some_and(|e| !e.is_empty()),
        },
    };
    let ingress_default = has(PolicyType::Ingress) || !has(PolicyType::Egress);
    let egress_default = has(PolicyType::Egress);
    for (direction, default_when_empty, key) in [
        (Direction::Ingress, ingress_default, "ingress"),
        (Direction::Egress, egress_default, "egress"),
    ] {
        type Rules<'a> = Vec<(
            Option<&'a [NetworkPolicyPeer]>,
            Option<&'a [NetworkPolicyPort]>,
        )>;
        let rules: Rules<'_> = match direction {
            Direction::Ingress => spec
                .ingress
                .iter()
                .flatten()
                .map(|r| (r.from.as_deref(), r.ports.as_deref()))
                .collect(),
            Direction::Egress => spec
                .egress
                .iter()
                .flatten()
                .map(|r| (r.to.as_deref(), r.ports.as_deref()))
                .collect(),
        };
        let entry = |l3: L3, l4: L4, steps: &[Step<'_>]| Entry {
            origin: origin(index, policy, steps),
            subject: subject.clone(),
            namespace: Some(ns.to_owned()),
            direction,
            deny: false,
            default_deny: true,
            l3,
            l4,
            l7: None,
            dns: Vec::new(),
            auth: Auth::Unset,
            requires: Vec::new(),
            endpoint_peers: false,
        };
        if rules.is_empty() {
            if default_when_empty {
                // Default deny for the direction, allowing nothing.
                let steps = [Step::Key("spec"), Step::Key("policyTypes")];
                out.entries.push(entry(L3::Nothing, None, &steps));
            }
            continue;
        }
        for (i, (peers, ports)) in rules.into_iter().enumerate() {
            let steps = [Step::Key("spec"), Step::Key(key), Step::Index(i)];
            let l3 = match peers {
                None | Some([]) => L3::Peers(vec![PeerMatch::Any]),
                Some(peers) => L3::Peers(peers.iter().map(|p| knp_peer(p, ns, cluster)).collect()),
            };
            let l4 = match ports {
                None | Some([]) => None,
                Some(ports) => Some(ports.iter().map(knp_port).collect()),
            };
            out.entries.push(entry(l3, l4, &steps));
        }
    }
}

fn knp_peer(peer: &NetworkPolicyPeer, namespace: &str, cluster: Option<&str>) -> PeerMatch {
    if let Some(block) = &peer.ip_block {
        return match policy::parse_cidr(&block.cidr) {
            Some(net) => PeerMatch::Cidr {
                net,
                except: block
                    .except
                    .iter()
                    .flatten()
                    .filter_map(|e| policy::parse_cidr(e))
                    .collect(),
                nodes: false,
            },
            None => PeerMatch::Unresolved(format!("invalid CIDR `{}`", block.cidr)),
        };
    }
    let mut sel = match (&peer.pod_selector, &peer.namespace_selector) {
        (Some(s), None) => Selector::compile_in(s, KeyForm::Kubernetes, namespace),
        (None, None) => {
            Selector::compile_in(&EndpointSelector::default(), KeyForm::Kubernetes, namespace)
        }
        (Some(s), Some(_)) => Selector::compile(s, KeyForm::Kubernetes),
        (None, Some(_)) => Selector::default(),
    };
    match &peer.namespace_selector {
        None => {}
        Some(ns_sel) => {
            let ns = Selector::compile(ns_sel, KeyForm::Kubernetes);
            if ns.requirements.is_empty() {
                sel = sel.with(Requirement::exists(Some("k8s"), identity::NAMESPACE));
            }
            for mut r in ns.requirements {
                r.source = Some("k8s".to_owned());
                r.key = format!("{}{}", identity::NAMESPACE_LABELS, r.key);
                sel = sel.with(r);
            }
        }
    }
    // The local cluster, unless the pod selector names one (pkg/k8s/network_policy.go:61-95).
    match cluster {
        Some(c) if !sel.has_key(identity::CLUSTER) => {
            PeerMatch::Labels(sel.with(Requirement::equals(Some("k8s"), identity::CLUSTER, c)))
        }
        _ => PeerMatch::Labels(sel),
    }
}

fn knp_port(p: &NetworkPolicyPort) -> PortMatch {
    let proto = match p.protocol.as_deref() {
        Some("UDP") => Proto::Udp,
        Some("SCTP") => Proto::Sctp,
        _ => Proto::Tcp,
    };
    let protocols = ProtoSet::of(proto);
    match &p.port {
        None => PortMatch {
            protocols,
            first: 0,
            last: 65535,
            name: None,
        },
        Some(IntOrString::Int(n)) => {
            let first = u16::try_from(*n).unwrap_or(0);
            let last = p
                .end_port
                .and_then(|e| u16::try_from(e).ok())
                .filter(|e| *e >= first)
                .unwrap_or(first);
            PortMatch {
                protocols,
                first,
                last,
                name: None,
            }
        }
        Some(IntOrString::String(name)) => PortMatch {
            protocols,
            first: 0,
            last: 0,
            name: Some(name.to_ascii_lowercase()),
        },
    }
}

impl Section {
    /// The direction of the section.
    pub fn direction(self) -> Direction {
        if self.is_ingress() {
            Direction::Ingress
        } else {
            Direction::Egress
        }
    }
}
