//! What rules look at: the items of the policies with their places, the workloads of the
//! cluster, and which of them a selector selects.

use crate::diagnostic::source::Span;
use crate::document::Step;
use crate::engine::entry::{Entry, Subject};
use crate::engine::identity::{self, Peer};
use crate::engine::policy::{self, Body, Item, Policy};
use crate::engine::selector::{Op, Selector};
use crate::flow::inventory::Inventory;
use crate::flow::universe::{Declared, Mentions, NodeKind, Universe};
use crate::lint::Context;
use crate::objects::cilium::Rule;

/// A workload of the cluster: its pods' identity and named ports.
#[derive(Debug, Clone)]
pub struct Workload {
    pub namespace: String,
    pub name: String,
    /// `Deployment`, `Pod`, … or `Profile`.
    pub kind: String,
    pub peer: Peer,
}

impl Workload {
    /// `media/sonarr`.
    pub fn display(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The workloads of `inventory` and the profiles' `declared` services: the Cilium
    /// endpoints among them (host-network pods are the node's).
    pub fn all(inventory: &Inventory, declared: &[Declared]) -> Vec<Workload> {
        let universe = Universe::new(inventory, declared, &Mentions::default());
        universe
            .nodes
            .into_iter()
            .filter(|n| n.peer.is_endpoint())
            .filter_map(|n| match n.kind {
                NodeKind::Workload {
                    namespace,
                    name,
                    kind,
                } => Some(Workload {
                    namespace,
                    name,
                    kind,
                    peer: n.peer,
                }),
                _ => None,
            })
            .collect()
    }
}

/// One item of a Cilium rule, with where it is.
#[derive(Debug, Clone)]
pub struct CiliumItem<'a> {
    /// Index of the policy in the set.
    pub index: usize,
    pub policy: &'a Policy,
    pub rule: &'a Rule,
    /// The rule's path in the object (`spec`, `specs[1]`).
    pub base: &'a [Step<'static>],
    pub item: Item<'a>,
}

impl CiliumItem<'_> {
    /// The path of `rest` below the item.
    pub fn path(&self, rest: &[Step<'static>]) -> Vec<Step<'static>> {
        self.base
            .iter()
            .copied()
            .chain(self.item.path())
            .chain(rest.iter().copied())
            .collect()
    }

    /// The span of the value at `rest` below the item.
    pub fn span(&self, rest: &[Step<'static>]) -> Span {
        self.policy.span_of(&self.path(rest))
    }

    /// The span of the key of the last step of `rest` (`toFQDNs` rather than its list).
    pub fn key_span(&self, rest: &[Step<'static>]) -> Span {
        self.policy.node.at(&self.path(rest), true).span
    }
}

/// Every item of every Cilium rule of the set, in order.
pub fn cilium_items<'a>(cx: &Context<'a>) -> impl Iterator<Item = CiliumItem<'a>> + use<'a> {
    let policies = &cx.set.policies;
    policies.iter().enumerate().flat_map(|(index, policy)| {
        let rules: &'a [(Rule, Vec<Step<'static>>)] = match &policy.body {
            Body::Cilium(rules) => rules,
            Body::Kubernetes(_) => &[],
        };
        rules.iter().flat_map(move |(rule, base)| {
            policy::items(rule).into_iter().map(move |item| CiliumItem {
                index,
                policy,
                rule,
                base,
                item,
            })
        })
    })
}

/// The namespaces a selector confines its identities to (`k8s:io.kubernetes.pod.namespace`
/// in some values), or `None` when it may select in any.
pub fn namespaces(selector: &Selector) -> Option<Vec<&str>> {
    selector.requirements.iter().find_map(|r| {
        let namespace =
            r.key == identity::NAMESPACE && r.source.as_deref().is_none_or(|s| s == "k8s");
        match &r.op {
            Op::In(values) if namespace => Some(values.iter().map(String::as_str).collect()),
            _ => None,
        }
    })
}

impl<'a> Context<'a> {
    /// The workloads `selector` selects (none without workloads).
    pub fn selected<'s>(
        &'s self,
        selector: &'s Selector,
    ) -> impl Iterator<Item = &'a Workload> + 's {
        let all = self.workloads.unwrap_or_default();
        let candidates: Vec<usize> = match namespaces(selector) {
            Some(ns) => ns
                .iter()
                .flat_map(|n| self.by_namespace.get(*n).into_iter().flatten().copied())
                .collect(),
            None => (0..all.len()).collect(),
        };
        candidates
            .into_iter()
            .filter_map(move |i| all.get(i))
            .filter(move |w| selector.matches(&w.peer.labels))
    }

    /// Whether the workloads of the selector's namespaces are known: a selector confined to a
    /// namespace the manifests say nothing about cannot be judged, nor one that may select in
    /// any namespace (manifests rarely describe every namespace: CoreDNS's, say).
    pub fn knows(&self, selector: &Selector) -> bool {
        match namespaces(selector) {
            Some(ns) => ns.iter().all(|n| self.by_namespace.contains_key(*n)),
            None => false,
        }
    }
}

/// Whether some identity may be selected by both `a` and `b`: no requirement of one
/// contradicts one of the other on the same key (different namespaces, disjoint values,
/// `Exists` against `DoesNotExist`).
pub fn may_overlap(a: &Selector, b: &Selector) -> bool {
    !a.requirements.iter().any(|ra| {
        b.requirements.iter().any(|rb| {
            let same_key = ra.key == rb.key
                && (ra.source.is_none() || rb.source.is_none() || ra.source == rb.source);
            same_key && contradicts(&ra.op, &rb.op)
        })
    })
}

fn contradicts(a: &Op, b: &Op) -> bool {
    match (a, b) {
        (Op::In(x), Op::In(y)) => !x.iter().any(|v| y.contains(v)),
        (Op::In(_) | Op::Exists, Op::DoesNotExist) | (Op::DoesNotExist, Op::In(_) | Op::Exists) => {
            true
        }
        (Op::In(x), Op::NotIn(y)) | (Op::NotIn(y), Op::In(x)) => x.iter().all(|v| y.contains(v)),
        _ => false,
    }
}

/// Whether the entries may apply to a common endpoint ([`may_overlap`] of their subjects).
pub fn subjects_may_overlap(a: &Entry, b: &Entry) -> bool {
    match (&a.subject, &b.subject) {
        (Subject::Endpoints(x), Subject::Endpoints(y)) => may_overlap(x, y),
        _ => false,
    }
}

/// The identities the cluster's DNS server may have: CoreDNS or kube-dns in `kube-system`,
/// labelled as the usual installations label it, OpenShift's `dns-default` in `openshift-dns`,
/// the node (NodeLocal DNSCache) and the pods behind the inventory's `kube-system/kube-dns` Service.
pub fn cluster_dns(cx: &Context<'_>) -> Vec<Peer> {
    let cluster = &cx.settings.cluster_name;
    let mut out: Vec<Peer> = [
        ("kube-system", ("k8s-app", "kube-dns")),
        ("kube-system", ("k8s-app", "coredns")),
        ("kube-system", ("app.kubernetes.io/name", "coredns")),
        ("kube-system", ("app.kubernetes.io/name", "kube-dns")),
        (
            "openshift-dns",
            ("dns.operator.openshift.io/daemonset-dns", "default"),
        ),
    ]
    .iter()
    .map(|(namespace, label)| super::pod_peer(namespace, &[*label], cluster))
    .collect();
    // NodeLocal DNSCache listens on the node (host network, a link-local address).
    out.push(Peer {
        labels: std::sync::Arc::new(identity::Reserved::Host.labels()),
        ..Peer::default()
    });
    if let Some(inv) = cx.inventory {
        for s in inv.services.iter().filter(|s| {
            s.namespace == "kube-system" && (s.name == "kube-dns" || s.name == "coredns")
        }) {
            let Some(selector) = &s.selector else {
                continue;
            };
            for p in inv.pods.iter().filter(|p| {
                p.namespace == s.namespace
                    && selector.iter().all(|(k, v)| p.labels.get(k) == Some(v))
            }) {
                out.push(inv.pod_peer(p));
            }
        }
    }
    out
}
