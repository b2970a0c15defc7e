use crate::diagnostic::Diagnostic;
use crate::diagnostic::source::Span;
use crate::document::Step;
use crate::engine::entry::{L3, PeerMatch};
use crate::engine::policy::{Body, PeerField};
use crate::engine::selector::{self, KeyForm, Selector};
use crate::lint::{Context, cilium_items, finding};

declare_rule! {
    /// A peer selector (`fromEndpoints`, `toEndpoints`, `podSelector`) that matches no workload.
    ///
    /// ## What
    /// With workload manifests or `--inventory`, a peer selector matches none of the
    /// workloads they describe (after Cilium's rewrites: the policy's namespace added to a
    /// CiliumNetworkPolicy's peers). Namespaces they say nothing about are not judged, nor
    /// are peers that may be in any namespace (`namespaceSelector: {}`, cluster-wide peers).
    ///
    /// ## Why
    /// An allow whose peer matches nothing allows nothing: usually a label typo, a peer in
    /// another namespace written without `k8s:io.kubernetes.pod.namespace` (a
    /// CiliumNetworkPolicy's peers are confined to its own namespace), or a workload that was
    /// renamed.
    ///
    /// ## Example
    /// ```yaml
    /// metadata: {name: sonarr, namespace: media}
    /// spec:
    ///   endpointSelector: {matchLabels: {app: sonarr}}
    ///   ingress:
    ///     - fromEndpoints: [{matchLabels: {app: traefik}}]   # traefik runs in `traefik`
    /// ```
    ///
    /// ## Fix
    /// Add the peer's namespace (`k8s:io.kubernetes.pod.namespace: traefik`) or fix its
    /// labels.
    pub struct PeerSelectsNothing {
        code: "peer-selects-nothing",
        id: "NP220",
        level: Warning,
        compiled: true,
    }
}

fn check(cx: &Context<'_>, selector: &Selector, span: Span, out: &mut Vec<Diagnostic>) {
    if selector.requirements.is_empty() || selector.has_reserved() || !cx.knows(selector) {
        return;
    }
    if cx.selected(selector).next().is_some() {
        return;
    }
    out.push(finding(
        &PeerSelectsNothing::META,
        span,
        format!("this peer matches no workload: `{selector}` selects none"),
        "matches nothing",
        "fix the labels, or add the peer's namespace (`k8s:io.kubernetes.pod.namespace`)",
    ));
}

impl PeerSelectsNothing {
    pub(super) fn run(cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        if cx.workloads.is_none() {
            return;
        }
        let cluster = cx.settings.local_cluster_filter();
        for item in cilium_items(cx) {
            let init = item
                .rule
                .endpoint_selector
                .as_ref()
                .is_some_and(selector::selects_init);
            let ns = match item.policy.kind {
                crate::engine::policy::PolicyKind::Cnp => item.policy.namespace.as_deref(),
                _ => None,
            };
            for (name, field) in &item.item.peers {
                let PeerField::Endpoints(sels) = field else {
                    continue;
                };
                for (i, sel) in sels.iter().enumerate() {
                    let selector = Selector::compile(sel, KeyForm::Cilium).peer(ns, init, cluster);
                    check(
                        cx,
                        &selector,
                        item.span(&[Step::Key(name), Step::Index(i)]),
                        out,
                    );
                }
            }
        }
        // NetworkPolicy peers, as the engine read them (one peer per `from`/`to` item).
        for e in &cx.index.entries.entries {
            let Some(policy) = cx.policy(e.origin.policy) else {
                continue;
            };
            if !matches!(policy.body, Body::Kubernetes(_)) {
                continue;
            }
            let L3::Peers(peers) = &e.l3 else { continue };
            let key = if e.direction == crate::objects::Direction::Ingress {
                "from"
            } else {
                "to"
            };
            let Some(rest) = e.origin.path.strip_prefix("spec.") else {
                continue;
            };
            let Some((side, index)) = rest.split_once('[') else {
                continue;
            };
            let Ok(i) = index.trim_end_matches(']').parse::<usize>() else {
                continue;
            };
            let side: &'static str = if side == "ingress" {
                "ingress"
            } else {
                "egress"
            };
            for (j, p) in peers.iter().enumerate() {
                let PeerMatch::Labels(selector) = p else {
                    continue;
                };
                let span = policy.span_of(&[
                    Step::Key("spec"),
                    Step::Key(side),
                    Step::Index(i),
                    Step::Key(key),
                    Step::Index(j),
                ]);
                check(cx, selector, span, out);
            }
        }
    }
}
