use crate::diagnostic::{Diagnostic, Severity};
use crate::document::Step;
use crate::engine::policy::{PeerField, Section};
use crate::lint::{Context, cilium_items, finding};
use crate::objects::cilium::Entity;
use crate::objects::port::RulePort;

declare_rule! {
    /// `kube-apiserver` on a port the API server does not listen on (443 where it is 6443).
    ///
    /// ## What
    /// An egress item allows `toEntities: [kube-apiserver]` on ports that are not those of
    /// the `default/kubernetes` EndpointSlice (from `--inventory` or the manifests): an
    /// error. Without the EndpointSlice, an item that allows only port 443 is a warning.
    ///
    /// ## Why
    /// Cilium judges a connection after the Service address is translated: a pod connecting
    /// to `kubernetes.default:443` is seen going to the API server's own address and port,
    /// 6443 on kubeadm, k3s, Talos and most self-managed clusters (443 on some managed
    /// ones). A rule on 443 then allows nothing, and operators, controllers and Ingress
    /// controllers lose the API server.
    ///
    /// ## Example
    /// ```yaml
    ///   egress:
    ///     - toEntities: [kube-apiserver]
    ///       toPorts: [{ports: [{port: "443", protocol: TCP}]}]
    /// ```
    ///
    /// ## Fix
    /// Write the port of `kubectl get endpointslice -n default -l kubernetes.io/service-name=kubernetes`
    /// (usually `6443`), or both 443 and 6443 for policies shared by several clusters.
    pub struct ApiserverPort {
        code: "apiserver-port",
        id: "NP211",
        level: Warning,
        compiled: false,
    }
}

impl ApiserverPort {
    pub(super) fn run(cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        let listening: Option<Vec<u16>> = cx.inventory.and_then(|inv| {
            inv.endpoints
                .get(&("default".to_owned(), "kubernetes".to_owned()))
                .map(|e| e.ports.iter().map(|(_, port, _)| *port).collect())
                .filter(|p: &Vec<u16>| !p.is_empty())
        });
        for item in cilium_items(cx) {
            if item.item.section != Section::Egress {
                continue;
            }
            let apiserver = item.item.peers.iter().any(|(_, f)| {
                matches!(f, PeerField::Entities(es) if es.contains(&Entity::KubeApiserver))
            });
            let Some(port_items) = item.item.ports.as_ref().filter(|p| !p.is_empty()) else {
                continue;
            };
            if !apiserver {
                continue;
            }
            // The numeric ranges the item allows.
            let mut ranges = Vec::new();
            for pv in port_items {
                for p in pv.ports.unwrap_or_default() {
                    match RulePort::parse(&p.port) {
                        Ok(RulePort::Number(0)) => ranges.push((0u16, u16::MAX)),
                        Ok(RulePort::Number(n)) => {
                            let end = p
                                .end_port
                                .and_then(|e| u16::try_from(e).ok())
                                .filter(|e| *e > n)
                                .unwrap_or(n);
                            ranges.push((n, end));
                        }
                        // A named port: nothing to compare.
                        _ => ranges.push((0, u16::MAX)),
                    }
                }
            }
            if ranges.is_empty() {
                continue;
            }
            let span = item.span(&[Step::Key("toPorts")]);
            match &listening {
                Some(ports) => {
                    if ports
                        .iter()
                        .any(|p| ranges.iter().any(|(a, b)| a <= p && p <= b))
                    {
                        continue;
                    }
                    let list: Vec<String> = ports.iter().map(|p| format!("`{p}`")).collect();
                    let mut d = finding(
                        &Self::META,
                        span,
                        format!(
                            "the API server listens on {}, which this rule does not allow",
                            list.join(", ")
                        ),
                        "not the API server's port",
                        format!(
                            "policies see the port after the `kubernetes` Service is translated (EndpointSlice `default/kubernetes`); write `port: \"{}\"`",
                            ports.first().copied().unwrap_or(6443)
                        ),
                    );
                    d.severity = Severity::Error;
                    out.push(d);
                }
                None if ranges.iter().all(|r| *r == (443, 443)) => {
                    out.push(finding(
                        &Self::META,
                        span,
                        "`kube-apiserver` on 443 only: policies see the API server's own port, often 6443",
                        "443 is the Service's port",
                        "check `kubectl get endpointslice -n default -l kubernetes.io/service-name=kubernetes` and write its port (or give --inventory)",
                    ));
                }
                None => {}
            }
        }
    }
}
