use crate::diagnostic::Diagnostic;
use crate::document::Step;
use crate::engine::policy::{PeerField, Section};
use crate::lint::{Context, cilium_items, finding};
use crate::objects::cilium::Entity;

declare_rule! {
    /// `ingressDeny` from `host`, `cluster` or `all`: the kubelet's probes are denied too.
    ///
    /// ## What
    /// An `ingressDeny` item has `fromEntities` with `host`, `cluster` or `all`.
    ///
    /// ## Why
    /// The kubelet probes pods from the node itself, the `host` identity. Cilium lets the
    /// local host in without any rule (`allow-localhost`), but only as an allow:
    /// `determineAllowLocalhostIngress` inserts an allow entry (cilium/cilium@507103c6
    /// pkg/policy/mapstate.go:1072-1082), and a deny entry wins over every allow. `cluster`
    /// includes `host`, `remote-node`, `init`, `ingress`, `health`, `unmanaged` and
    /// `kube-apiserver` besides the cluster's pods (pkg/policy/api/entity.go:135-146), and
    /// `all` includes everything. So liveness and readiness probes fail (on the ports the
    /// item denies, every port without `toPorts`), pods are restarted and taken out of their
    /// Services; node-local health checks and NodePort traffic through the node fail as well.
    ///
    /// ## Example
    /// ```yaml
    ///   ingressDeny:
    ///     - fromEntities: [cluster]
    /// ```
    ///
    /// ## Fix
    /// Deny the peers you mean (`fromEndpoints` with namespace selectors, `world`), or allow
    /// only what should reach the pods under ingress default deny and drop the deny rule.
    pub struct IngressDenyHost {
        code: "ingress-deny-host",
        id: "NP210",
        level: Warning,
        compiled: true,
    }
}

impl IngressDenyHost {
    pub(super) fn run(cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        for item in cilium_items(cx) {
            if item.item.section != Section::IngressDeny {
                continue;
            }
            for (name, field) in &item.item.peers {
                let PeerField::Entities(entities) = field else {
                    continue;
                };
                for (i, e) in entities.iter().enumerate() {
                    if !matches!(e, Entity::Host | Entity::Cluster | Entity::All) {
                        continue;
                    }
                    let ports = if item.item.ports.as_ref().is_some_and(|p| !p.is_empty()) {
                        "on the ports it names"
                    } else {
                        "on every port"
                    };
                    let through = if *e == Entity::Host {
                        String::new()
                    } else {
                        format!(" (`{}` includes `host`)", e.as_str())
                    };
                    out.push(finding(
                        &Self::META,
                        item.span(&[Step::Key(name), Step::Index(i)]),
                        format!("denying `{}` on ingress{through} drops the kubelet's probes {ports}", e.as_str()),
                        "the local node is denied",
                        "a deny wins over `allow-localhost`: deny the peers you mean (`world`, namespaces) instead",
                    ));
                }
            }
        }
    }
}
