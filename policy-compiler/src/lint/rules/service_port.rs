use crate::diagnostic::Diagnostic;
use crate::engine::entry::{Entry, L3, PeerMatch, Subject};
use crate::flow::inventory::TargetPort;
use crate::lint::{Context, Workload, finding};
use crate::objects::Direction;

declare_rule! {
    /// A Service's port where policies see the pods' port (`targetPort`).
    ///
    /// ## What
    /// With Service manifests or `--inventory`: an allow rule names port P for the pods of a
    /// Service (its subject on ingress, its peers on egress) whose port P forwards to a
    /// different `targetPort` T, and the rule does not allow T as well.
    ///
    /// ## Why
    /// Cilium applies policy after the Service address is translated to a backend pod, so
    /// both ends see the container port T, never the Service's P. A rule on P allows nothing
    /// for traffic through the Service (docs/semantics.md §1.9).
    ///
    /// ## Example
    /// A Service `api` with `port: 80, targetPort: 8080`, and:
    /// ```yaml
    ///   endpointSelector: {matchLabels: {app: api}}
    ///   ingress:
    ///     - toPorts: [{ports: [{port: "80", protocol: TCP}]}]
    /// ```
    ///
    /// ## Fix
    /// Write the container port (`8080`), or its name (`http`) as the pod spec declares it.
    pub struct ServicePort {
        code: "service-port",
        id: "NP212",
        level: Error,
        compiled: true,
    }
}

/// The workloads an allow entry's ports are opened on: its subject's pods (ingress) or the
/// peers it selects (egress).
fn pods<'a>(cx: &Context<'a>, e: &Entry) -> Vec<&'a Workload> {
    match e.direction {
        Direction::Ingress => match &e.subject {
            Subject::Endpoints(s) => cx.selected(s).collect(),
            Subject::Nodes { .. } => Vec::new(),
        },
        Direction::Egress => match &e.l3 {
            L3::Peers(peers) => peers
                .iter()
                .flat_map(|p| match p {
                    PeerMatch::Labels(s) if !s.requirements.is_empty() => cx.selected(s).collect(),
                    _ => Vec::new(),
                })
                .collect(),
            _ => Vec::new(),
        },
    }
}

impl ServicePort {
    pub(super) fn run(cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        let (Some(inv), Some(_)) = (cx.inventory, cx.workloads) else {
            return;
        };
        if inv.services.is_empty() {
            return;
        }
        for e in &cx.index.entries.entries {
            if e.deny {
                continue;
            }
            let Some(ports) = &e.l4 else { continue };
            let allowed = |n: u16| {
                ports
                    .iter()
                    .any(|p| p.name.is_none() && p.first <= n && n <= p.last)
            };
            let single: Vec<u16> = ports
                .iter()
                .filter(|p| p.name.is_none() && p.first == p.last && p.first != 0)
                .map(|p| p.first)
                .collect();
            if single.is_empty() {
                continue;
            }
            let pods = pods(cx, e);
            if pods.is_empty() {
                continue;
            }
            for s in &inv.services {
                let Some(selector) = &s.selector else {
                    continue;
                };
                let backs = pods.iter().any(|w| {
                    w.namespace == s.namespace
                        && selector
                            .iter()
                            .all(|(k, v)| w.peer.labels.get(Some("k8s"), k) == Some(v.as_str()))
                });
                if !backs {
                    continue;
                }
                for (port, _, target) in &s.ports {
                    let TargetPort::Number(target) = target else {
                        continue;
                    };
                    if target == port || !single.contains(port) || allowed(*target) {
                        continue;
                    }
                    out.push(finding(
                        &Self::META,
                        e.origin.span,
                        format!(
                            "port {port} is the port of Service `{}/{}`; its pods listen on {target}, which is what policies see",
                            s.namespace, s.name
                        ),
                        "the Service's port",
                        format!("write the container port `{target}` (or its name): policy applies after the Service is translated"),
                    ));
                }
            }
        }
    }
}
