use crate::diagnostic::Diagnostic;
use crate::engine::entry::{L3, L7, PeerMatch};
use crate::lint::scope::cluster_dns;
use crate::lint::{Context, finding};
use crate::objects::Direction;

declare_rule! {
    /// A `rules.dns` rule aimed at a DNS server that is not the cluster's.
    ///
    /// ## What
    /// An egress rule with `rules.dns` allows DNS only to peers that are not the cluster's
    /// resolver (CoreDNS or kube-dns in `kube-system`, or the pods behind the inventory's
    /// `kube-system/kube-dns` Service): a CIDR, `world`, other pods.
    ///
    /// ## Why
    /// Pods with the default `dnsPolicy: ClusterFirst` send their lookups to the cluster's DNS
    /// Service, whose address Cilium translates to the CoreDNS pods before policy is applied:
    /// a rule towards another server neither lets those lookups through nor lets the DNS proxy
    /// see them, so `toFQDNs` rules of the pods learn nothing. A `toCIDR` to the Service's
    /// ClusterIP does not match either: policy sees the backend pod, not the Service address.
    ///
    /// ## Example
    /// ```yaml
    ///   egress:
    ///     - toCIDR: [8.8.8.8/32]
    ///       toPorts:
    ///         - ports: [{port: "53", protocol: UDP}]
    ///           rules: {dns: [{matchPattern: "*"}]}
    /// ```
    ///
    /// ## Fix
    /// Aim the rule at the cluster's resolver:
    /// ```yaml
    ///     - toEndpoints:
    ///         - matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s-app: kube-dns}
    /// ```
    /// Keep it (and acknowledge the finding) when the pods really use another server
    /// (`dnsPolicy: Default` or a custom `dnsConfig`).
    pub struct DnsToForeignResolver {
        code: "dns-to-foreign-resolver",
        id: "NP202",
        level: Warning,
        compiled: false,
    }
}

impl DnsToForeignResolver {
    pub(super) fn run(cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        let resolvers = cluster_dns(cx);
        for e in &cx.index.entries.entries {
            if e.direction != Direction::Egress || e.deny || e.l7 != Some(L7::Dns) {
                continue;
            }
            let L3::Peers(peers) = &e.l3 else { continue };
            let reaches = peers.iter().any(|p| match p {
                PeerMatch::Any => true,
                PeerMatch::Labels(s) => resolvers.iter().any(|r| s.matches(&r.labels)),
                // Unresolved peers (a Service without inventory, a group) may be the resolver.
                PeerMatch::Unresolved(_) => true,
                PeerMatch::Cidr { .. } | PeerMatch::Fqdn(_) => false,
            });
            if reaches {
                continue;
            }
            let to: Vec<String> = peers.iter().map(ToString::to_string).collect();
            out.push(finding(
                &Self::META,
                e.origin.span,
                format!(
                    "DNS is proxied only towards {}, not the cluster's resolver",
                    to.join(", ")
                ),
                "lookups to CoreDNS are not allowed or seen here",
                "aim the DNS rule at `k8s:io.kubernetes.pod.namespace: kube-system` with `k8s-app: kube-dns`; policy sees the CoreDNS pods, not the Service address",
            ));
        }
    }
}
