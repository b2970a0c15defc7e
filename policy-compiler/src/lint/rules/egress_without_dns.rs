use std::collections::BTreeMap;

use crate::diagnostic::Diagnostic;
use crate::engine::entry::{Entry, L3, PeerMatch, Subject};
use crate::engine::eval::{NamedPorts, NoPorts, Query};
use crate::engine::index::Evaluator;
use crate::lint::scope::{self, cluster_dns};
use crate::lint::{Context, finding};
use crate::objects::{Direction, Proto};

declare_rule! {
    /// Pods under egress default deny that may not reach the cluster's DNS.
    ///
    /// ## What
    /// A rule puts pods under egress default deny, and no egress rule selecting them allows
    /// UDP port 53 to the cluster's resolver (CoreDNS or kube-dns in `kube-system`). With
    /// workload manifests or an inventory, each selected workload is judged by the policy
    /// engine; without, a DNS rule counts when its `endpointSelector` may select some of the
    /// same pods (so that what is reported is sure, not what is merely unproven).
    ///
    /// ## Why
    /// Under egress default deny everything not allowed is dropped, DNS included: every name
    /// lookup of the pods times out, and so does every connection by name, even to peers the
    /// policies allow (docs/semantics.md §2.2; Cilium's "Locking down external access" guide
    /// allows kube-dns first for this reason).
    ///
    /// ## Example
    /// ```yaml
    /// spec:
    ///   endpointSelector: {matchLabels: {app: api}}
    ///   egress:
    ///     - toEndpoints: [{matchLabels: {app: db}}]
    /// ```
    ///
    /// ## Fix
    /// ```yaml
    ///     - toEndpoints:
    ///         - matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s-app: kube-dns}
    ///       toPorts:
    ///         - ports: [{port: "53", protocol: ANY}]
    ///           rules: {dns: [{matchPattern: "*"}]}
    /// ```
    pub struct EgressWithoutDns {
        code: "egress-without-dns",
        id: "NP203",
        level: Warning,
        compiled: true,
    }
}

/// Whether an allow entry lets `subject`'s pods send UDP 53 to a resolver.
fn allows_dns(e: &Entry, resolvers: &[crate::engine::identity::Peer]) -> bool {
    let port = match &e.l4 {
        None => true,
        Some(ports) => ports.iter().any(|p| {
            p.name.is_none() && p.protocols.contains(Proto::Udp) && p.first <= 53 && 53 <= p.last
        }),
    };
    let peer = match &e.l3 {
        L3::Wildcard => e.l4.is_some(),
        L3::Nothing => false,
        L3::Peers(peers) => peers.iter().any(|p| match p {
            PeerMatch::Any | PeerMatch::Unresolved(_) => true,
            PeerMatch::Labels(s) => resolvers.iter().any(|r| s.matches(&r.labels)),
            PeerMatch::Cidr { .. } | PeerMatch::Fqdn(_) => false,
        }),
    };
    port && peer
}

impl EgressWithoutDns {
    pub(super) fn run(cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        let resolvers = cluster_dns(cx);
        let entries = &cx.index.entries.entries;
        // The rules that turn on egress default deny: (policy, rule) → its first entry.
        let mut rules: BTreeMap<(usize, String), &Entry> = BTreeMap::new();
        for e in entries {
            if e.direction != Direction::Egress
                || !e.default_deny
                || !matches!(e.subject, Subject::Endpoints(_))
            {
                continue;
            }
            let rule = e
                .origin
                .path
                .split('.')
                .next()
                .unwrap_or_default()
                .to_owned();
            rules.entry((e.origin.policy, rule)).or_insert(e);
        }
        let dns_allows: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.direction == Direction::Egress && !e.deny && allows_dns(e, &resolvers))
            .collect();
        let ports: &dyn NamedPorts = match cx.inventory {
            Some(inv) => inv,
            None => &NoPorts,
        };
        let mut evaluator = Evaluator::new(cx.index, ports);
        for rep in rules.values() {
            let Subject::Endpoints(subject) = &rep.subject else {
                continue;
            };
            let selected: Vec<_> = cx.selected(subject).collect();
            let message = if cx.knows(subject) && !selected.is_empty() {
                let blocked: Vec<String> = selected
                    .iter()
                    .filter(|w| {
                        evaluator.isolated(&w.peer, Direction::Egress)
                            && resolvers.iter().all(|r| {
                                let q = Query {
                                    src: w.peer.clone(),
                                    dst: r.clone(),
                                    proto: Some(Proto::Udp),
                                    port: 53,
                                };
                                !evaluator.decide(&q).egress.allows()
                            })
                    })
                    .map(|w| format!("`{}`", w.display()))
                    .collect();
                if blocked.is_empty() {
                    continue;
                }
                format!(
                    "egress default deny without DNS: {} may not reach the cluster's DNS on UDP 53",
                    blocked.join(", ")
                )
            } else {
                if dns_allows
                    .iter()
                    .any(|d| scope::subjects_may_overlap(d, rep))
                {
                    continue;
                }
                "egress default deny without DNS: no rule lets these pods reach the cluster's DNS on UDP 53".to_owned()
            };
            out.push(finding(
                &Self::META,
                rep.origin.span,
                message,
                "egress default deny from this rule",
                "allow UDP (and TCP) 53 to `k8s:io.kubernetes.pod.namespace: kube-system, k8s-app: kube-dns`, with `rules: {dns: [{matchPattern: \"*\"}]}` if the pods use `toFQDNs`",
            ));
        }
    }
}
