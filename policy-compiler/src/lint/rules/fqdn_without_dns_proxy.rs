use crate::diagnostic::Diagnostic;
use crate::document::Step;
use crate::engine::entry::{Entry, L3, L7, PeerMatch, Subject};
use crate::engine::identity::Labels;
use crate::lint::scope::{self, cilium_items};
use crate::lint::{Context, finding};
use crate::objects::Direction;
use crate::objects::fqdn::FqdnSelector;

declare_rule! {
    /// `toFQDNs` for pods whose DNS lookups no `rules.dns` rule lets the DNS proxy see.
    ///
    /// ## What
    /// An egress rule allows `toFQDNs` names, but no egress rule that selects the same pods
    /// has `rules.dns` (on port 53, towards the DNS server) whose patterns match those names.
    /// With workload manifests or an inventory, each selected workload is judged; without, a
    /// DNS rule counts when its `endpointSelector` may select some of the same pods.
    ///
    /// ## Why
    /// Cilium does not resolve `toFQDNs` names itself: it learns their addresses from the DNS
    /// answers its DNS proxy intercepts, and the proxy only sees lookups that a `rules.dns`
    /// rule redirects to it ("This interception is, itself, a separate policy rule governing
    /// DNS requests, and must be specified separately", cilium/cilium@507103c6
    /// Documentation/security/policy/language.rst:1036-1040). Without it the names' addresses
    /// are learned only when another pod on the node happens to look them up through the
    /// proxy, so the connections are dropped most of the time.
    ///
    /// ## Example
    /// ```yaml
    /// spec:
    ///   endpointSelector: {matchLabels: {app: sonarr}}
    ///   egress:
    ///     - toFQDNs: [{matchName: api.thetvdb.com}]
    ///       toPorts: [{ports: [{port: "443", protocol: TCP}]}]
    /// ```
    ///
    /// ## Fix
    /// Add, for the same pods, DNS to the cluster's resolver through the proxy:
    /// ```yaml
    ///     - toEndpoints:
    ///         - matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s-app: kube-dns}
    ///       toPorts:
    ///         - ports: [{port: "53", protocol: ANY}]
    ///           rules: {dns: [{matchPattern: "*"}]}
    /// ```
    pub struct FqdnWithoutDnsProxy {
        code: "fqdn-without-dns-proxy",
        id: "NP201",
        level: Warning,
        compiled: true,
    }
}

/// Whether a DNS selector of the proxy sees the lookups a `toFQDNs` selector needs.
pub(crate) fn sees(dns: &FqdnSelector, wanted: &FqdnSelector) -> bool {
    match wanted {
        FqdnSelector::Name(name) => dns.matches(name),
        // A pattern is seen when the proxy's pattern is the same, or matches an example name
        // of it (`*.example.com` → `x.example.com`).
        FqdnSelector::Pattern(p) => {
            dns.text() == p || dns.matches(&p.replace("**", "x").replace('*', "x"))
        }
    }
}

fn selects(entry: &Entry, labels: &Labels) -> bool {
    match &entry.subject {
        Subject::Endpoints(s) => s.matches(labels),
        Subject::Nodes { .. } => false,
    }
}

impl FqdnWithoutDnsProxy {
    pub(super) fn run(cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        let entries = &cx.index.entries.entries;
        let dns: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.direction == Direction::Egress && !e.deny && e.l7 == Some(L7::Dns))
            .collect();
        for item in cilium_items(cx) {
            let Some(names) = item.item.peers.iter().find_map(|(_, f)| match f {
                crate::engine::policy::PeerField::Fqdns(n) if !n.is_empty() => Some(*n),
                _ => None,
            }) else {
                continue;
            };
            let prefix = crate::engine::entry::path_text(&item.path(&[]));
            // The item's entries: its subject and its names as the engine reads them.
            let Some(entry) = entries.iter().find(|e| {
                e.origin.policy == item.index
                    && (e.origin.path == prefix || e.origin.path.starts_with(&format!("{prefix}.")))
            }) else {
                continue;
            };
            let wanted: Vec<&FqdnSelector> = match &entry.l3 {
                L3::Peers(peers) => peers
                    .iter()
                    .filter_map(|p| match p {
                        PeerMatch::Fqdn(s) => Some(s),
                        _ => None,
                    })
                    .collect(),
                _ => continue,
            };
            let Subject::Endpoints(subject) = &entry.subject else {
                continue;
            };
            let selected: Vec<_> = cx.selected(subject).collect();
            let judged_by_workloads = cx.knows(subject) && !selected.is_empty();
            let covered = |name: &FqdnSelector| -> bool {
                if judged_by_workloads {
                    selected.iter().all(|w| {
                        dns.iter().any(|d| {
                            selects(d, &w.peer.labels) && d.dns.iter().any(|s| sees(s, name))
                        })
                    })
                } else {
                    dns.iter().any(|d| {
                        scope::subjects_may_overlap(d, entry) && d.dns.iter().any(|s| sees(s, name))
                    })
                }
            };
            let any_proxy = if judged_by_workloads {
                selected
                    .iter()
                    .all(|w| dns.iter().any(|d| selects(d, &w.peer.labels)))
            } else {
                dns.iter().any(|d| scope::subjects_may_overlap(d, entry))
            };
            let unseen: Vec<String> = wanted
                .iter()
                .filter(|n| !covered(n))
                .map(|n| format!("`{}`", n.text()))
                .collect();
            if unseen.is_empty() {
                continue;
            }
            let _ = names;
            let span = item.key_span(&[Step::Key("toFQDNs")]);
            let meta = &Self::META;
            let d = if any_proxy {
                finding(
                    meta,
                    span,
                    format!(
                        "the DNS proxy does not see lookups of {}: no `rules.dns` pattern of these pods matches",
                        unseen.join(", ")
                    ),
                    "names the proxy never sees",
                    "add the names (or `matchPattern: \"*\"`) to the `rules.dns` of the pods' DNS rule",
                )
            } else {
                finding(
                    meta,
                    span,
                    "`toFQDNs` without a DNS proxy rule: no `rules.dns` rule selects these pods",
                    "addresses of these names are never learned",
                    "allow DNS to the cluster's resolver on port 53 with `rules: {dns: [{matchPattern: \"*\"}]}` for the same pods",
                )
            };
            out.push(d);
        }
    }
}
