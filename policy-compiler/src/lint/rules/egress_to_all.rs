use crate::diagnostic::Diagnostic;
use crate::document::Step;
use crate::engine::policy::{PeerField, Section};
use crate::lint::{Context, cilium_items, finding};
use crate::objects::cilium::Entity;

declare_rule! {
    /// Egress allowed to the `all` entity: to every peer, inside the cluster and out.
    ///
    /// ## What
    /// An `egress` item has `toEntities: [all]`.
    ///
    /// ## Why
    /// `all` selects every identity (cilium/cilium@507103c6 pkg/policy/api/entity.go:19-20,
    /// 93): with ports it opens those ports everywhere, without it undoes egress default deny
    /// for the pods entirely. It is rarely what a reviewer reads it as ("all the cluster").
    ///
    /// ## Example
    /// ```yaml
    ///   egress:
    ///     - toEntities: [all]
    /// ```
    ///
    /// ## Fix
    /// Name the peers: `cluster` for everything in the cluster, `world` with `toFQDNs` or
    /// `toCIDRSet` for the outside, `kube-apiserver` for the API server.
    pub struct EgressToAll {
        code: "egress-to-all",
        id: "NP207",
        level: Warning,
        compiled: false,
    }
}

impl EgressToAll {
    pub(super) fn run(cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        for item in cilium_items(cx) {
            if item.item.section != Section::Egress {
                continue;
            }
            for (name, field) in &item.item.peers {
                let PeerField::Entities(entities) = field else {
                    continue;
                };
                for (i, e) in entities.iter().enumerate() {
                    if *e != Entity::All {
                        continue;
                    }
                    let scope = if item.item.ports.as_ref().is_some_and(|p| !p.is_empty()) {
                        "on these ports to every peer"
                    } else {
                        "to every peer on every port"
                    };
                    out.push(finding(
                        &Self::META,
                        item.span(&[Step::Key(name), Step::Index(i)]),
                        format!("egress allowed to `all`: {scope}, inside the cluster and out"),
                        "every identity",
                        "name the peers: `cluster`, `kube-apiserver`, `world` with `toFQDNs`/`toCIDRSet`",
                    ));
                }
            }
        }
    }
}
