use crate::diagnostic::Diagnostic;
use crate::document::Step;
use crate::engine::identity::Reserved;
use crate::engine::policy::PeerField;
use crate::engine::selector::{KeyForm, Selector};
use crate::lint::{Context, cilium_items, finding};
use crate::objects::cilium::Entity;

declare_rule! {
    /// Ingress allowed from the `world` or `all` entity: from anywhere on the internet.
    ///
    /// ## What
    /// An `ingress` item has `fromEntities` with `world` (`world-ipv4`, `world-ipv6`) or `all`,
    /// or a `fromEndpoints` selector that selects the reserved `world` label (`reserved:world`,
    /// also written `reserved.world`, which Cilium reads alike: cilium/cilium@507103c6
    /// pkg/labels/labels.go:804-822).
    ///
    /// ## Why
    /// `world` is every address outside the cluster, `all` every identity at all
    /// (cilium/cilium@507103c6 pkg/policy/api/entity.go:19-38, 93-96). Pods reachable from
    /// the internet are the first thing an attacker finds; most are meant to be reached
    /// through an Ingress or Gateway (the `ingress` entity) or a load balancer's addresses.
    ///
    /// ## Example
    /// ```yaml
    ///   ingress:
    ///     - fromEntities: [world]
    ///       toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
    /// ```
    ///
    /// ## Fix
    /// Allow the Ingress controller (`fromEntities: [ingress]`, or its pods with
    /// `fromEndpoints`) or the load balancer's `fromCIDRSet`; acknowledge the finding with
    /// `netpol.dev/lint-allow: ingress-from-world: reason` for a service that is public on
    /// purpose.
    pub struct IngressFromWorld {
        code: "ingress-from-world",
        id: "NP206",
        level: Warning,
        compiled: false,
    }
}

impl IngressFromWorld {
    pub(super) fn run(cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        for item in cilium_items(cx) {
            if item.item.section != crate::engine::policy::Section::Ingress {
                continue;
            }
            for (name, field) in &item.item.peers {
                if let PeerField::Endpoints(sels) = field {
                    for (i, sel) in sels.iter().enumerate() {
                        let selector = Selector::compile(sel, KeyForm::Cilium);
                        if selector.has_reserved() && selector.matches(&Reserved::World.labels()) {
                            out.push(finding(
                                &Self::META,
                                item.span(&[Step::Key(name), Step::Index(i)]),
                                "ingress allowed from `reserved:world`: the internet".to_owned(),
                                "open to the internet",
                                "allow the Ingress controller (`fromEntities: [ingress]`) or the load balancer's addresses instead",
                            ));
                        }
                    }
                }
                let PeerField::Entities(entities) = field else {
                    continue;
                };
                for (i, e) in entities.iter().enumerate() {
                    let what = match e {
                        Entity::World => "the internet",
                        Entity::All => "every peer, the internet included",
                        _ if matches!(e.as_str(), "world-ipv4" | "world-ipv6") => "the internet",
                        _ => continue,
                    };
                    out.push(finding(
                        &Self::META,
                        item.span(&[Step::Key(name), Step::Index(i)]),
                        format!("ingress allowed from `{}`: {what}", e.as_str()),
                        "open to the internet",
                        "allow the Ingress controller (`fromEntities: [ingress]`) or the load balancer's addresses instead",
                    ));
                }
            }
        }
    }
}
