//! Deciding a flow like Cilium (docs/semantics.md §10): the decision types, the predicates
//! both evaluators share, and the naive reference evaluator.
//!
//! ```text
//! Query {src, dst, proto, port}
//!   egress point  (src is an endpoint): entries selecting src, egress  ─┐  deny > allow >
//!   ingress point (dst is an endpoint): entries selecting dst, ingress ─┴─ default (§10.5)
//!   allowed = egress allows AND ingress allows (§10.6)
//! ```
//!
//! [`reference()`] scans every entry for every flow and records why each entry matched or not;
//! it is the executable specification that `explain` prints and that property tests hold the
//! compiled [`crate::engine::index::Index`] to.

use crate::engine::entry::{Auth, Entries, Entry, EntryId, L3, L7, PeerMatch, PortMatch, Subject};
use crate::engine::identity::{NamedPort, Peer};
use crate::engine::selector::Selector;
use crate::engine::settings::Enforcement;
use crate::objects::{Direction, Proto};

/// One flow to decide: the connection-initiating direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Query {
    pub src: Peer,
    pub dst: Peer,
    pub proto: Option<Proto>,
    /// Destination port; the ICMP type for ICMP.
    pub port: u16,
}

/// A flow by reference: what the evaluators read of it.
#[derive(Debug, Clone, Copy)]
pub struct FlowKey<'a> {
    pub src: &'a Peer,
    pub dst: &'a Peer,
    pub proto: Option<Proto>,
    pub port: u16,
}

impl Query {
    pub fn key(&self) -> FlowKey<'_> {
        FlowKey {
            src: &self.src,
            dst: &self.dst,
            proto: self.proto,
            port: self.port,
        }
    }
}

/// Named ports known cluster-wide, for egress rules (docs/semantics.md §1.13).
pub trait NamedPorts {
    /// The unique number of a port name across all pods; `None` if unknown or ambiguous.
    fn resolve(&self, name: &str, proto: Proto) -> Option<u16>;
}

/// No inventory: no cluster-wide port names.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPorts;

impl NamedPorts for NoPorts {
    fn resolve(&self, _name: &str, _proto: Proto) -> Option<u16> {
        None
    }
}

/// Why a point decided as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The peer on this side is not a Cilium endpoint (world, host, remote node): no point.
    NotAnEndpoint,
    /// No rule selects the endpoint in this direction: not enforced (§2.2).
    NoPolicy,
    /// A pod label `host` disables enforcement (pitfall 18).
    HostLabel,
    /// Policy enforcement is off (`enable-policy: never`).
    PolicyDisabled,
    /// A pod reaching itself through its own Service: the datapath skips policy.
    Hairpin,
    /// An allow entry matched.
    AllowedByRule,
    /// Ingress from the local node is always allowed (`allow-localhost`, §5.4).
    AllowedLocalhost,
    /// Enforced, but no rule is default-deny: everything not denied passes (§2.3).
    NotDefaultDeny,
    /// A deny entry matched (`POLICY_DENY`, 181).
    DeniedByRule,
    /// Allowed by rules that require mutual authentication, and the agent cannot authenticate
    /// (`AUTH_REQUIRED`, 189).
    AuthRequired,
    /// Enforced with default deny and no allow matched (`POLICY_DENIED`, 133).
    DefaultDeny,
}

impl Reason {
    pub fn allows(self) -> bool {
        !matches!(
            self,
            Self::DeniedByRule | Self::DefaultDeny | Self::AuthRequired
        )
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::NotAnEndpoint => "not a Cilium endpoint, no policy here",
            Self::NoPolicy => "no policy selects it in this direction: not enforced",
            Self::HostLabel => "pod label `host` makes Cilium skip enforcement",
            Self::PolicyDisabled => "policy enforcement is off (`enable-policy: never`)",
            Self::Hairpin => "a pod reaching itself through its own Service: Cilium skips policy",
            Self::AllowedByRule => "allowed by",
            Self::AllowedLocalhost => {
                "ingress from the local node is always allowed (allow-localhost)"
            }
            Self::NotDefaultDeny => "no selecting rule is default-deny: allowed",
            Self::DeniedByRule => "denied by",
            Self::AuthRequired => {
                "the allowing rules require mutual authentication and no auth backend is configured (AUTH_REQUIRED)"
            }
            Self::DefaultDeny => "default deny: no rule allows it",
        }
    }
}

/// The decision at one enforcement point.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Point {
    pub reason: Option<Reason>,
    /// Allow entries that matched (all of them).
    pub allowed_by: Vec<EntryId>,
    /// Deny entries that matched (all of them).
    pub denied_by: Vec<EntryId>,
    /// Entries that select the endpoint in this direction.
    pub selecting: usize,
    /// Things the user should know: L7 redirects, unresolved names, …
    pub notes: Vec<String>,
    /// Policy drops it, but the agent is in audit mode: the packet passes and Hubble shows
    /// `AUDIT` (`policy-audit-mode`).
    pub audited: bool,
}

impl Point {
    pub fn allows(&self) -> bool {
        self.reason.is_none_or(Reason::allows)
    }
}

/// The end-to-end decision of a flow (docs/semantics.md §10.6). The points are shared: the
/// index hands out the same decision for every flow of a (pair, port).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    pub egress: std::sync::Arc<Point>,
    pub ingress: std::sync::Arc<Point>,
}

impl Decision {
    /// The decision for a pod reaching itself through its own Service (hairpin): Cilium's
    /// datapath skips policy for it (cilium/cilium@507103c6 bpf/bpf_lxc.c:1369-1376).
    pub fn hairpin() -> Self {
        let point = std::sync::Arc::new(Point {
            reason: Some(Reason::Hairpin),
            ..Point::default()
        });
        Self {
            egress: point.clone(),
            ingress: point,
        }
    }

    pub fn allowed(&self) -> bool {
        self.egress.allows() && self.ingress.allows()
    }

    /// Where it is dropped first (egress is checked first, at the source).
    pub fn dropped_at(&self) -> Option<Direction> {
        if !self.egress.allows() {
            Some(Direction::Egress)
        } else if !self.ingress.allows() {
            Some(Direction::Ingress)
        } else {
            None
        }
    }
}

/// Does `entry` apply to the endpoint with these labels? (§10.3 step 3)
pub fn selects(entry: &Entry, endpoint: &Peer) -> bool {
    match &entry.subject {
        Subject::Endpoints(sel) => {
            if let Some(ns) = &entry.namespace
                && endpoint.labels.namespace() != Some(ns.as_str())
            {
                return false;
            }
            // Never a node's host endpoint, even `{}` (pkg/policy/rule.go, `rule.matches`).
            !endpoint.is_node() && sel.matches(&endpoint.labels)
        }
        // Host policies select the host endpoints of the nodes whose labels match, only with
        // the host firewall on (cilium/cilium@507103c6 pkg/policy/rule.go, `rule.matches`: a
        // node selector matches only the host identity, an endpoint selector never does).
        Subject::Nodes {
            selector,
            host_firewall,
        } => *host_firewall && endpoint.is_node() && selector.matches(&endpoint.labels),
    }
}

/// The outcome of matching one peer predicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerOutcome {
    Match,
    NoMatch,
    /// Would match, but something is missing; the string says what.
    Blocked(String),
}

/// Does a peer predicate hold? `dns_visible(name)` tells whether the subject's DNS rules let the
/// proxy see a name (§4.3 step 2).
pub fn peer_matches(m: &PeerMatch, peer: &Peer, dns_visible: &dyn Fn(&str) -> bool) -> PeerOutcome {
    let yes = |b: bool| {
        if b {
            PeerOutcome::Match
        } else {
            PeerOutcome::NoMatch
        }
    };
    match m {
        PeerMatch::Any => PeerOutcome::Match,
        PeerMatch::Labels(sel) => yes(sel.matches(&peer.labels)),
        // CIDR rules select only world-class peers (§5.3), and nodes in
        // `policy-cidr-match-mode: nodes`.
        PeerMatch::Cidr { net, except, nodes } => yes((peer.is_world()
            || (*nodes && peer.is_node()))
            && peer
                .ip
                .is_some_and(|ip| net.contains(&ip) && !except.iter().any(|e| e.contains(&ip)))),
        PeerMatch::Fqdn(sel) => {
            if !peer.is_world() {
                return PeerOutcome::NoMatch;
            }
            let mut named = peer.names.iter().filter(|n| sel.matches(n)).peekable();
            if named.peek().is_none() {
                return PeerOutcome::NoMatch;
            }
            if named.any(|n| dns_visible(n)) {
                PeerOutcome::Match
            } else {
                PeerOutcome::Blocked(format!(
                    "the peer's DNS name matches `toFQDNs` `{}`, but no DNS rule (`rules.dns`) of the source lets Cilium's DNS proxy see that name, so the IP never gets the FQDN identity",
                    sel.text()
                ))
            }
        }
        PeerMatch::Unresolved(_) => PeerOutcome::NoMatch,
    }
}

/// Does a port match hold for `(proto, port)`? `Err` explains an unresolvable named port.
pub fn port_matches(
    pm: &PortMatch,
    proto: Proto,
    port: u16,
    destination_ports: &[NamedPort],
    cluster: &dyn NamedPorts,
    direction: Direction,
) -> Result<bool, String> {
    if !pm.protocols.contains(proto) {
        return Ok(false);
    }
    let Some(name) = &pm.name else {
        return Ok(pm.first <= port && port <= pm.last);
    };
    // Ingress: the subject's own container port. Egress: the cluster-wide map of every
    // endpoint's named ports, never the destination's own; a name with two numbers there
    // resolves to nothing (cilium/cilium@507103c6 pkg/endpoint/policy.go:51-89,
    // pkg/types/portmap.go:164-219). An `endPort` above the resolved number makes a range.
    let resolved = match direction {
        Direction::Ingress => destination_ports
            .iter()
            .find(|np| np.name == *name && np.protocol == proto)
            .map(|np| np.port),
        Direction::Egress => cluster.resolve(name, proto),
    };
    match resolved {
        Some(n) => Ok(port == n || (pm.last > n && n <= port && port <= pm.last)),
        None => Err(match direction {
            Direction::Ingress => format!(
                "named port `{name}` is unknown for the destination (give `--inventory` or the workload manifests so netpol can read its container ports)"
            ),
            Direction::Egress => format!(
                "named port `{name}` is unknown or ambiguous cluster-wide (egress named ports resolve against every pod's ports; give `--inventory` or the workload manifests)"
            ),
        }),
    }
}

/// Does the L4 part of an entry match? (`None` = every protocol and port, §2.1)
pub fn l4_matches(
    entry: &Entry,
    q: &FlowKey<'_>,
    cluster: &dyn NamedPorts,
    notes: &mut Vec<String>,
) -> bool {
    let Some(ports) = &entry.l4 else {
        return true;
    };
    let Some(proto) = q.proto else {
        return false;
    };
    ports.iter().any(|pm| {
        match port_matches(
            pm,
            proto,
            q.port,
            &q.dst.named_ports,
            cluster,
            entry.direction,
        ) {
            Ok(b) => b,
            Err(note) => {
                notes.push(note);
                false
            }
        }
    })
}

/// The DNS names the entries let the proxy see (for `toFQDNs`, §4.1).
pub fn dns_visible(entries: &[&Entry], name: &str) -> bool {
    entries
        .iter()
        .filter(|e| e.direction == Direction::Egress && !e.deny && e.l7 == Some(L7::Dns))
        .any(|e| e.dns.iter().any(|s| s.matches(name)))
}

/// The `fromRequires`/`toRequires` in force for entries of this verdict (`deny`), from all the
/// entries that select the subject in one direction: Cilium 1.18 and older merge them across
/// every rule selecting the endpoint (cilium/cilium v1.18 pkg/policy/rules.go,
/// `resolveL4IngressPolicy`/`resolveL4EgressPolicy`; docs/semantics.md §1.11).
pub fn requirements<'e>(
    selecting: impl IntoIterator<Item = &'e Entry>,
    deny: bool,
) -> Vec<&'e Selector> {
    selecting
        .into_iter()
        .filter(|e| e.deny == deny)
        .flat_map(|e| &e.requires)
        .collect()
}

/// Whether `peer` meets the requirements where they apply: to `fromEndpoints`/`toEndpoints`
/// peers only (`GetSourceEndpointSelectorsWithRequirements` ANDs them into those selectors).
pub fn meets_requirements(entry: &Entry, peer: &Peer, requires: &[&Selector]) -> bool {
    !entry.endpoint_peers || requires.iter().all(|r| r.matches(&peer.labels))
}

/// The L3 part: a wildcard without ports matches nothing (§2.1, `ingress: [{}]`).
pub fn l3_matches(
    entry: &Entry,
    peer: &Peer,
    visible: &dyn Fn(&str) -> bool,
    notes: &mut Vec<String>,
) -> bool {
    match &entry.l3 {
        L3::Nothing => false,
        L3::Wildcard => entry.l4.is_some(),
        L3::Peers(peers) => {
            let mut matched = false;
            for m in peers {
                match peer_matches(m, peer, visible) {
                    PeerOutcome::Match => {
                        matched = true;
                        break;
                    }
                    PeerOutcome::NoMatch => {}
                    PeerOutcome::Blocked(note) => notes.push(note),
                }
            }
            matched
        }
    }
}

/// Combine matched entries at a point (§10.3, §10.5). `selecting` are the entries that select
/// the endpoint in this direction; `matched` those whose L3 and L4 hold.
#[expect(clippy::too_many_arguments, reason = "the inputs of §10.5, named")]
pub fn decide(
    entries: &Entries,
    direction: Direction,
    endpoint: &Peer,
    other: &Peer,
    selecting: &[EntryId],
    default_deny: bool,
    matched: &[EntryId],
    mut notes: Vec<String>,
) -> Point {
    let get = |id: &EntryId| entries.entries.get(*id as usize);
    let mut point = Point {
        selecting: selecting.len(),
        ..Point::default()
    };
    // Any label with the key `host` (any source) comes first and turns enforcement off, before
    // `init` and `enable-policy`, unless the host firewall is on (cilium/cilium@507103c6
    // pkg/policy/repository.go:360-418, `computePolicyEnforcementAndRules`;
    // pkg/labels/array.go:148-153 matches the key in every source).
    if endpoint.labels.has(None, "host") && !entries.host_firewall {
        point.reason = Some(Reason::HostLabel);
        return point;
    }
    if entries.enforcement == Enforcement::Never {
        point.reason = Some(Reason::PolicyDisabled);
        return point;
    }
    // `enable-policy: always`, and the init identity, enforce default deny both ways whether
    // a rule selects the endpoint or not (pkg/policy/repository.go:416-437).
    let forced = endpoint.labels.has(None, "init") || entries.enforcement == Enforcement::Always;
    if selecting.is_empty() && !forced {
        point.reason = Some(Reason::NoPolicy);
        return point;
    }
    let default_deny = forced || default_deny;
    point.denied_by = matched
        .iter()
        .copied()
        .filter(|id| get(id).is_some_and(|e| e.deny))
        .collect();
    point.allowed_by = matched
        .iter()
        .copied()
        .filter(|id| get(id).is_some_and(|e| !e.deny))
        .collect();
    point.reason = Some(if !point.denied_by.is_empty() {
        Reason::DeniedByRule
    } else if direction == Direction::Ingress && other.is_host() && !entries.localhost_by_policy {
        Reason::AllowedLocalhost
    } else if !point.allowed_by.is_empty() {
        for e in point.allowed_by.iter().filter_map(get) {
            match e.l7 {
                Some(L7::Http) if default_deny => notes.push(format!(
                    "HTTP requests are filtered by the L7 rules of {} (the connection goes through the proxy)",
                    e.origin.describe()
                )),
                Some(L7::Kafka | L7::Generic) if default_deny => notes.push(format!(
                    "requests are filtered by the L7 rules of {}",
                    e.origin.describe()
                )),
                _ => {}
            }
            if e.auth == Auth::Authenticated {
                notes.push(format!(
                    "{} requires mutual authentication: the flow passes once the identities are authenticated",
                    e.origin.describe()
                ));
            }
        }
        // An allow that needs authentication the agent cannot give drops, unless one of the
        // matching allows says `disabled` explicitly (approximating Cilium's inheritance of
        // the auth type from broader entries, pkg/policy/mapstate.go:978-1040).
        let allows = || point.allowed_by.iter().filter_map(get);
        if allows().any(|e| e.auth == Auth::Drops) && !allows().any(|e| e.auth == Auth::Disabled) {
            Reason::AuthRequired
        } else {
            Reason::AllowedByRule
        }
    } else if default_deny {
        Reason::DefaultDeny
    } else {
        Reason::NotDefaultDeny
    });
    // Audit mode turns every policy drop of this point into a pass that is logged: default
    // deny, deny rules and missing authentication alike (cilium/cilium@507103c6
    // bpf/lib/policy.h, `policy_can_ingress`/`policy_can_egress` under POLICY_AUDIT_MODE).
    point.audited = entries.audit_mode && !point.allows();
    notes.sort();
    notes.dedup();
    point.notes = notes;
    point
}

/// One step of the reference evaluation of an entry, for `explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub entry: EntryId,
    pub direction: Direction,
    pub selects: bool,
    pub l3: bool,
    pub l4: bool,
}

/// The naive reference evaluator: every entry, every time (docs/semantics.md §10.9).
pub fn reference(
    entries: &Entries,
    q: &Query,
    cluster: &dyn NamedPorts,
    mut trace: Option<&mut Vec<Trace>>,
) -> Decision {
    let mut decision = Decision::default();
    for (direction, endpoint, other) in [
        (Direction::Egress, &q.src, &q.dst),
        (Direction::Ingress, &q.dst, &q.src),
    ] {
        let point = if entries.enforces(endpoint) {
            let all: Vec<(EntryId, &Entry)> = entries
                .entries
                .iter()
                .enumerate()
                .filter_map(|(i, e)| u32::try_from(i).ok().map(|i| (i, e)))
                .collect();
            let selecting: Vec<EntryId> = all
                .iter()
                .filter(|(_, e)| e.direction == direction && selects(e, endpoint))
                .map(|(i, _)| *i)
                .collect();
            // DNS visibility comes from the source's egress rules, whatever the direction.
            let source_entries: Vec<&Entry> = all
                .iter()
                .filter(|(_, e)| e.direction == Direction::Egress && selects(e, &q.src))
                .map(|(_, e)| *e)
                .collect();
            let visible = |name: &str| dns_visible(&source_entries, name);
            let mut notes = Vec::new();
            let mut matched = Vec::new();
            let selected = || {
                selecting
                    .iter()
                    .filter_map(|id| entries.entries.get(*id as usize))
            };
            let (requires_allow, requires_deny) = (
                requirements(selected(), false),
                requirements(selected(), true),
            );
            for (id, e) in &all {
                if e.direction != direction {
                    continue;
                }
                let sel = selecting.contains(id);
                let (l3, l4) = if sel {
                    let requires = if e.deny {
                        &requires_deny
                    } else {
                        &requires_allow
                    };
                    let l3 = l3_matches(e, other, &visible, &mut notes)
                        && meets_requirements(e, other, requires);
                    let l4 = l3 && l4_matches(e, &q.key(), cluster, &mut notes);
                    (l3, l4)
                } else {
                    (false, false)
                };
                if l3 && l4 {
                    matched.push(*id);
                }
                if let Some(t) = trace.as_deref_mut() {
                    t.push(Trace {
                        entry: *id,
                        direction,
                        selects: sel,
                        l3,
                        l4,
                    });
                }
            }
            let default_deny = selecting
                .iter()
                .filter_map(|id| entries.entries.get(*id as usize))
                .any(|e| e.default_deny);
            decide(
                entries,
                direction,
                endpoint,
                other,
                &selecting,
                default_deny,
                &matched,
                notes,
            )
        } else {
            Point {
                reason: Some(Reason::NotAnEndpoint),
                ..Point::default()
            }
        };
        match direction {
            Direction::Egress => decision.egress = std::sync::Arc::new(point),
            Direction::Ingress => decision.ingress = std::sync::Arc::new(point),
        }
    }
    decision
}
