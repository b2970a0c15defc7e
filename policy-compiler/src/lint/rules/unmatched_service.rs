use crate::diagnostic::Diagnostic;
use crate::document::Step;
use crate::engine::entry::ServiceBackends;
use crate::engine::policy::{PeerField, Section};
use crate::lint::{Context, cilium_items, finding};

declare_rule! {
    /// A `toServices` item that matches no Service of the inventory or the manifests.
    ///
    /// ## What
    /// With `--inventory` or Service manifests, a `toServices` entry (`k8sService` or
    /// `k8sServiceSelector`) matches no Service they describe.
    ///
    /// ## Why
    /// Cilium rewrites `toServices` into the selected Services' pods (or their endpoint
    /// addresses). When nothing matches, nothing is added, and an item left with no peer
    /// applies to every peer on its ports (cilium/cilium@507103c6
    /// pkg/policy/k8s/service.go:236-257, 439-467): a typo can open egress wide.
    ///
    /// ## Example
    /// ```yaml
    ///   egress:
    ///     - toServices:
    ///         - k8sService: {serviceName: postgress, namespace: db}
    /// ```
    ///
    /// ## Fix
    /// Name an existing Service (`kubectl get svc -A`), or allow its pods with `toEndpoints`.
    pub struct UnmatchedService {
        code: "unmatched-service",
        id: "NP217",
        level: Warning,
        compiled: true,
    }
}

impl UnmatchedService {
    pub(super) fn run(cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        let Some(inv) = cx.inventory else { return };
        if inv.services.is_empty() {
            return;
        }
        for item in cilium_items(cx) {
            if item.item.section != Section::Egress {
                continue;
            }
            for (name, field) in &item.item.peers {
                let PeerField::Services(services) = field else {
                    continue;
                };
                for (i, s) in services.iter().enumerate() {
                    if !inv.service_peers(s).is_empty() {
                        continue;
                    }
                    out.push(finding(
                        &Self::META,
                        item.span(&[Step::Key(name), Step::Index(i)]),
                        "this `toServices` entry matches no Service of the cluster",
                        "no such Service",
                        "name an existing Service (`kubectl get svc -A`); an item left without peers applies to every peer on its ports",
                    ));
                }
            }
        }
    }
}
