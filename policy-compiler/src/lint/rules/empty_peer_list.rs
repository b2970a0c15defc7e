use crate::diagnostic::Diagnostic;
use crate::document::Step;
use crate::engine::policy::{Body, PeerField};
use crate::lint::{Context, cilium_items, finding, is_empty_list};

declare_rule! {
    /// A peer list written empty (`fromEndpoints: []`, `toFQDNs: []`, NetworkPolicy `from: []`).
    ///
    /// ## What
    /// A peer field of a rule item is an explicitly empty list.
    ///
    /// ## Why
    /// Empty lists mean different things depending on the field, none of them what a reader
    /// expects. An empty `fromEndpoints`, `toEndpoints`, `fromEntities`, `toEntities`,
    /// `fromCIDR`, `toCIDR`, `fromCIDRSet`, `toCIDRSet`, `fromNodes` or `toNodes` makes the
    /// whole item select nothing, even beside another field; an empty `toFQDNs`,
    /// `toServices` or `fromGroups`/`toGroups` is as if absent, so an item with nothing else
    /// allows every peer on its ports (cilium/cilium@507103c6
    /// pkg/policy/utils/parserules.go:140-158, pkg/policy/rule.go:348-367). In a Kubernetes
    /// NetworkPolicy, `from: []` and `to: []` allow every peer.
    ///
    /// ## Example
    /// ```yaml
    ///   ingress:
    ///     - fromEndpoints: []
    ///       toPorts: [{ports: [{port: "80", protocol: TCP}]}]
    /// ```
    ///
    /// ## Fix
    /// Remove the item if it should allow nothing; write the peers it should allow; use
    /// `fromEntities: [all]` (or omit `from`) if every peer is meant.
    pub struct EmptyPeerList {
        code: "empty-peer-list",
        id: "NP213",
        level: Warning,
        compiled: true,
    }
}

impl EmptyPeerList {
    pub(super) fn run(cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        for item in cilium_items(cx) {
            let others = item
                .item
                .peers
                .iter()
                .filter(|(_, f)| !f.is_empty())
                .count();
            for (name, field) in &item.item.peers {
                if !field.is_empty() {
                    continue;
                }
                let path = item.path(&[Step::Key(name)]);
                if !is_empty_list(item.policy.node.at(&path, false)) {
                    continue;
                }
                let effect = match field {
                    PeerField::Fqdns(_) | PeerField::Services(_) | PeerField::Groups(_) => {
                        if others > 0 {
                            "is ignored".to_owned()
                        } else if item.item.ports.as_ref().is_some_and(|p| !p.is_empty()) {
                            "is as if absent: the item applies to every peer on its ports"
                                .to_owned()
                        } else {
                            "is as if absent: the item has no peer and matches nothing".to_owned()
                        }
                    }
                    _ => "makes the whole item select nothing".to_owned(),
                };
                out.push(finding(
                    &Self::META,
                    item.key_span(&[Step::Key(name)]),
                    format!("empty `{name}` {effect}"),
                    "empty list",
                    "write the peers, or remove the item (or the field)",
                ));
            }
        }
        for policy in &cx.set.policies {
            let Body::Kubernetes(_) = &policy.body else {
                continue;
            };
            for (key, peers) in [("ingress", "from"), ("egress", "to")] {
                let list = policy.node.at(&[Step::Key("spec"), Step::Key(key)], false);
                let crate::document::Value::Seq(rules) = &list.value else {
                    continue;
                };
                for (i, _) in rules.iter().enumerate() {
                    let path = [
                        Step::Key("spec"),
                        Step::Key(key),
                        Step::Index(i),
                        Step::Key(peers),
                    ];
                    let node = policy.node.at(&path, false);
                    // `at` stops at the deepest node it finds: make sure it is the list.
                    if !is_empty_list(node) || policy.node.at(&path, true).span == node.span {
                        continue;
                    }
                    out.push(finding(
                        &Self::META,
                        policy.node.at(&path, true).span,
                        format!("empty `{peers}` allows every peer, as if `{peers}` were absent"),
                        "every peer",
                        "write the peers, or omit the field to say every peer on purpose",
                    ));
                }
            }
        }
    }
}
