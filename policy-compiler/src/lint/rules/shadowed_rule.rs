use crate::diagnostic::Diagnostic;
use crate::diagnostic::source::Span;
use crate::engine::entry::{self, Entry, L3, L7, PeerMatch, PortMatch};
use crate::engine::policy::PolicyKind;
use crate::engine::selector::{Op, Selector};
use crate::lint::{Context, cilium_items, finding};
use crate::objects::Proto;

declare_rule! {
    /// An allow item that another allow item of the same endpoints already covers.
    ///
    /// ## What
    /// Every peer, port and protocol an `ingress` or `egress` item allows is allowed by one
    /// other item of a Cilium policy with the same subject (the same `endpointSelector`, as
    /// Cilium binds it), in the same direction: the shadowed item adds nothing. Only what is
    /// certain is reported:
    ///
    /// - peers are compared as written: a selector covers another one that has all of its
    ///   requirements (and more), `all` and items without peers cover every peer, `cluster`
    ///   covers `host`, `remote-node` and the pods of the local cluster, `world` covers CIDRs
    ///   (unless `policy-cidr-match-mode: nodes`), a CIDR covers the CIDRs inside it and
    ///   outside its `except`s;
    /// - ports by range: `ANY` covers TCP, UDP and SCTP, an item without ports every port and
    ///   protocol;
    /// - an item with L7 rules never covers one without (the L7 rules restrict); an item
    ///   without L7 rules covers an item with HTTP, Kafka or generic L7 rules only for the
    ///   very same peers and ports: Cilium merges the two into one filter and adds an
    ///   allow-all L7 rule, so every request passes (cilium/cilium@507103c6
    ///   pkg/policy/rule.go:155-183, 265-278, and `appendL7WildcardRule` at 55-97). DNS rules
    ///   (which the DNS proxy needs for `toFQDNs`) and TLS or listener items are never
    ///   reported;
    /// - both items have the same `authentication`, neither has `fromRequires`/`toRequires`,
    ///   and the covering one keeps default deny on when the shadowed one does.
    ///
    /// Deny items and NetworkPolicies are not judged. When two items cover each other, the
    /// later one is reported.
    ///
    /// ## Why
    /// A shadowed item is dead weight at best. At worst it misleads: its L7 rules look like a
    /// restriction that the broader item voids, or a reviewer tightens it believing it is the
    /// item that lets the traffic in.
    ///
    /// ## Example
    /// ```yaml
    ///   ingress:
    ///     - fromEntities: [cluster]
    ///       toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
    ///     - fromEndpoints: [{matchLabels: {app: web}}]       # already allowed above
    ///       toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
    /// ```
    ///
    /// ## Fix
    /// Remove the shadowed item, or narrow the covering one if the shadowed item says what
    /// was meant (its L7 rules, its peers).
    pub struct ShadowedRule {
        code: "shadowed-rule",
        id: "NP221",
        level: Warning,
        compiled: true,
    }
}

/// One allow item of a Cilium rule: its entries (one per `toPorts` or `icmps` item).
struct Item<'a> {
    policy: usize,
    audit: bool,
    path: String,
    span: Span,
    entries: Vec<&'a Entry>,
}

impl ShadowedRule {
    pub(super) fn run(cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        let cidr_nodes = cx.settings.cidr_selects_nodes;
        let mut items: Vec<Item<'_>> = cilium_items(cx)
            .filter(|i| !i.item.section.is_deny())
            .map(|i| Item {
                policy: i.index,
                audit: i.policy.audit_phase,
                path: entry::path_text(&i.path(&[])),
                span: i.span(&[]),
                entries: Vec::new(),
            })
            .collect();
        for e in &cx.index.entries.entries {
            if e.deny || e.origin.kind == PolicyKind::Knp {
                continue;
            }
            let path = item_path(&e.origin.path);
            if let Some(item) = items
                .iter_mut()
                .find(|i| i.policy == e.origin.policy && i.path == path)
            {
                item.entries.push(e);
            }
        }
        items.retain(|i| !i.entries.is_empty());
        for (xi, x) in items.iter().enumerate() {
            if !judged(x) {
                continue;
            }
            let cover = items.iter().enumerate().find(|(yi, y)| {
                *yi != xi
                    && compatible(x, y)
                    && covers(y, x, cidr_nodes)
                    && (*yi < xi || !covers(x, y, cidr_nodes))
            });
            let Some((_, y)) = cover else { continue };
            let same_policy = x.policy == y.policy;
            let other = cx.policy(y.policy).filter(|_| !same_policy);
            let (covering, related) = match other {
                Some(p) => (
                    format!("`{}` of {}", y.path, p.display_name()),
                    format!("covered by this item of {}", p.display_name()),
                ),
                None => (format!("`{}`", y.path), "covered by this item".to_owned()),
            };
            let l7 = x.entries.iter().any(|e| e.l7.is_some());
            let (message, help) = if l7 {
                (
                    format!(
                        "the L7 rules of `{}` restrict nothing: {covering} allows the same peers on the same ports without L7 rules, and Cilium then lets every request through",
                        x.path
                    ),
                    "remove the item without L7 rules (or its ports) if requests should be filtered, else drop the L7 rules",
                )
            } else {
                (
                    format!(
                        "`{}` allows nothing more than {covering} already does",
                        x.path
                    ),
                    "remove the shadowed item, or narrow the one that covers it",
                )
            };
            out.push(
                finding(&Self::META, x.span, message, "shadowed", help)
                    .with_related(y.span, related),
            );
        }
    }
}

/// `spec.ingress[0]` of `spec.ingress[0].toPorts[1]` (or `.icmps[1]`).
fn item_path(path: &str) -> &str {
    for suffix in [".toPorts[", ".icmps["] {
        if let Some(at) = path.rfind(suffix) {
            return path.get(..at).unwrap_or(path);
        }
    }
    path
}

/// Whether an item can be judged at all: it allows something definite.
fn judged(x: &Item<'_>) -> bool {
    x.entries.iter().all(|e| {
        let peers = match &e.l3 {
            L3::Wildcard => true,
            L3::Nothing => false,
            L3::Peers(p) => {
                !p.is_empty() && !p.iter().any(|m| matches!(m, PeerMatch::Unresolved(_)))
            }
        };
        let ports = e.l4.as_ref().is_none_or(|p| !p.is_empty());
        let l7 = matches!(e.l7, None | Some(L7::Http | L7::Kafka | L7::Generic));
        peers && ports && l7 && e.requires.is_empty()
    })
}

/// Whether `y` may cover `x` at all: same endpoints, direction, authentication and audit
/// phase, no `requires`, and default deny kept.
fn compatible(x: &Item<'_>, y: &Item<'_>) -> bool {
    x.audit == y.audit
        && x.entries.iter().all(|a| {
            y.entries.iter().all(|b| {
                a.subject == b.subject
                    && a.direction == b.direction
                    && a.auth == b.auth
                    && b.requires.is_empty()
                    && (b.default_deny || !a.default_deny)
            })
        })
}

/// Whether every (peer, port) of `x` is allowed by some entry of `y`.
fn covers(y: &Item<'_>, x: &Item<'_>, cidr_nodes: bool) -> bool {
    x.entries
        .iter()
        .all(|a| covers_entry(&y.entries, a, cidr_nodes))
}

fn covers_entry(ys: &[&Entry], x: &Entry, cidr_nodes: bool) -> bool {
    let atoms: Vec<Option<&PeerMatch>> = match &x.l3 {
        L3::Wildcard => vec![None],
        L3::Nothing => return false,
        L3::Peers(p) => p.iter().map(Some).collect(),
    };
    let ports: Vec<Option<&PortMatch>> = match &x.l4 {
        None => vec![None],
        Some(p) => p.iter().map(Some).collect(),
    };
    atoms.iter().all(|atom| {
        ports.iter().all(|port| {
            ys.iter().any(|y| match x.l7 {
                None => {
                    y.l7.is_none()
                        && peer_covered(&y.l3, *atom, cidr_nodes)
                        && port_covered(y.l4.as_ref(), *port)
                }
                // The same selector on the same port: one filter, and an allow-all L7 rule.
                Some(_) => {
                    y.l7.is_none() && same_peer(&y.l3, *atom) && same_port(y.l4.as_ref(), *port)
                }
            })
        })
    })
}

/// Whether the peers `y` allows include `atom` (`None`: every identity).
fn peer_covered(y: &L3, atom: Option<&PeerMatch>, cidr_nodes: bool) -> bool {
    let ys = match y {
        L3::Wildcard => return true,
        L3::Nothing => return false,
        L3::Peers(p) => p,
    };
    if ys.iter().any(|m| matches!(m, PeerMatch::Any)) {
        return true;
    }
    let Some(atom) = atom else { return false };
    match atom {
        PeerMatch::Labels(a) => ys
            .iter()
            .any(|m| matches!(m, PeerMatch::Labels(b) if broader(b, a))),
        PeerMatch::Cidr { net, except, nodes } => {
            let by_cidr = ys.iter().any(|m| match m {
                PeerMatch::Cidr {
                    net: n,
                    except: ex,
                    nodes: yn,
                } => {
                    n.contains(net)
                        && (*yn || !*nodes)
                        && ex.iter().all(|e| {
                            !(e.contains(net) || net.contains(e))
                                || except.iter().any(|x| x.contains(e))
                        })
                }
                _ => false,
            });
            // CIDR peers are world identities (without `policy-cidr-match-mode: nodes`):
            // the `world` entity (all of its labels) covers them.
            let by_world = !nodes
                && !cidr_nodes
                && ["world", "world-ipv4", "world-ipv6"].iter().all(|w| {
                    ys.iter().any(|m| {
                        matches!(m, PeerMatch::Labels(b) if b.requirements.len() == 1
                            && b.requirements.iter().all(|r| r.source.as_deref() == Some("reserved")
                                && r.key == *w
                                && r.op == Op::Exists))
                    })
                });
            by_cidr || by_world
        }
        PeerMatch::Fqdn(f) => ys.iter().any(|m| matches!(m, PeerMatch::Fqdn(g) if g == f)),
        PeerMatch::Any | PeerMatch::Unresolved(_) => false,
    }
}

/// `b` selects everything `a` selects: each requirement of `b` is one of `a`'s.
fn broader(b: &Selector, a: &Selector) -> bool {
    b.requirements.iter().all(|r| a.requirements.contains(r))
}

/// Whether `y` names exactly this peer (`None`: no peer field).
fn same_peer(y: &L3, atom: Option<&PeerMatch>) -> bool {
    match (y, atom) {
        (L3::Wildcard, None) => true,
        (L3::Peers(p), Some(atom)) => p.contains(atom),
        _ => false,
    }
}

const PROTOCOLS: [Proto; 7] = [
    Proto::Tcp,
    Proto::Udp,
    Proto::Sctp,
    Proto::Icmp,
    Proto::Icmpv6,
    Proto::Other(2),
    Proto::Other(112),
];

fn protocols_covered(y: &PortMatch, x: &PortMatch) -> bool {
    PROTOCOLS
        .iter()
        .all(|p| !x.protocols.contains(*p) || y.protocols.contains(*p))
}

/// Whether `y`'s ports include `port` (`None`: every port and protocol).
fn port_covered(y: Option<&Vec<PortMatch>>, port: Option<&PortMatch>) -> bool {
    let Some(ys) = y else { return true };
    let Some(x) = port else { return false };
    ys.iter().any(|y| {
        protocols_covered(y, x)
            && match (&y.name, &x.name) {
                (None, None) => y.first <= x.first && x.last <= y.last,
                (None, Some(_)) => y.first == 0 && y.last == 65535,
                (Some(a), Some(b)) => a == b && y.last == x.last,
                (Some(_), None) => false,
            }
    })
}

/// Whether `y` lists this very port (its protocols included).
fn same_port(y: Option<&Vec<PortMatch>>, port: Option<&PortMatch>) -> bool {
    let (Some(ys), Some(x)) = (y, port) else {
        return false;
    };
    ys.iter().any(|y| {
        protocols_covered(y, x) && y.first == x.first && y.last == x.last && y.name == x.name
    })
}
