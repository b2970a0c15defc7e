use crate::diagnostic::Diagnostic;
use crate::diagnostic::source::Span;
use crate::document::Step;
use crate::engine::policy::{Body, PeerField, parse_cidr};
use crate::lint::{Context, cilium_items, finding};

declare_rule! {
    /// A CIDR of every address: `0.0.0.0/0` or `::/0`.
    ///
    /// ## What
    /// `fromCIDR`, `toCIDR`, `fromCIDRSet`, `toCIDRSet` or a NetworkPolicy `ipBlock` names a
    /// prefix of length 0: on ingress always, on egress when it has no `except`.
    ///
    /// ## Why
    /// A zero-length prefix is the whole internet (Cilium gives it the `world` identity;
    /// with `policy-cidr-match-mode: nodes` the nodes too). Ingress from it exposes the pods;
    /// egress to it without exceptions lets a compromised pod send data anywhere. Egress to
    /// `0.0.0.0/0` with `except` of the private ranges is the usual "internet only" rule and
    /// is not reported.
    ///
    /// ## Example
    /// ```yaml
    ///   egress:
    ///     - toCIDR: [0.0.0.0/0]
    /// ```
    ///
    /// ## Fix
    /// Name the destinations (`toFQDNs`, narrower prefixes), or exclude what must stay
    /// unreachable with `toCIDRSet: [{cidr: 0.0.0.0/0, except: [10.0.0.0/8, …]}]`.
    pub struct OpenCidr {
        code: "open-cidr",
        id: "NP208",
        level: Warning,
        compiled: false,
    }
}

fn open(cidr: &str) -> bool {
    parse_cidr(cidr).is_some_and(|n| n.prefix_len() == 0)
}

impl OpenCidr {
    fn push(out: &mut Vec<Diagnostic>, span: Span, cidr: &str, ingress: bool) {
        let (message, help) = if ingress {
            (
                format!("ingress allowed from `{cidr}`: from every address"),
                "allow the load balancer's or clients' prefixes, or the Ingress controller",
            )
        } else {
            (
                format!("egress allowed to `{cidr}` with no `except`: to every address"),
                "name the destinations (`toFQDNs`, narrower prefixes) or add `except` for the private ranges",
            )
        };
        out.push(finding(
            &OpenCidr::META,
            span,
            message,
            "every address",
            help,
        ));
    }

    pub(super) fn run(cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        for item in cilium_items(cx) {
            let ingress = item.item.section.is_ingress();
            if item.item.section.is_deny() {
                continue;
            }
            for (name, field) in &item.item.peers {
                match field {
                    PeerField::Cidr(cidrs) => {
                        for (i, c) in cidrs.iter().enumerate() {
                            if open(c) {
                                Self::push(
                                    out,
                                    item.span(&[Step::Key(name), Step::Index(i)]),
                                    c,
                                    ingress,
                                );
                            }
                        }
                    }
                    PeerField::CidrSet(rules) => {
                        for (i, r) in rules.iter().enumerate() {
                            let Some(c) = r.cidr.as_deref().filter(|c| open(c)) else {
                                continue;
                            };
                            if ingress || r.except.as_ref().is_none_or(Vec::is_empty) {
                                let span = item.span(&[
                                    Step::Key(name),
                                    Step::Index(i),
                                    Step::Key("cidr"),
                                ]);
                                Self::push(out, span, c, ingress);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        for policy in &cx.set.policies {
            let Body::Kubernetes(spec) = &policy.body else {
                continue;
            };
            let sides = [
                (
                    "ingress",
                    "from",
                    spec.ingress
                        .iter()
                        .flatten()
                        .map(|r| r.from.as_deref())
                        .collect::<Vec<_>>(),
                ),
                (
                    "egress",
                    "to",
                    spec.egress
                        .iter()
                        .flatten()
                        .map(|r| r.to.as_deref())
                        .collect(),
                ),
            ];
            for (key, peers_key, rules) in sides {
                for (i, peers) in rules.into_iter().enumerate() {
                    for (j, peer) in peers.unwrap_or_default().iter().enumerate() {
                        let Some(block) = peer.ip_block.as_ref().filter(|b| open(&b.cidr)) else {
                            continue;
                        };
                        let ingress = key == "ingress";
                        if ingress || block.except.as_ref().is_none_or(Vec::is_empty) {
                            let span = policy.span_of(&[
                                Step::Key("spec"),
                                Step::Key(key),
                                Step::Index(i),
                                Step::Key(peers_key),
                                Step::Index(j),
                                Step::Key("ipBlock"),
                                Step::Key("cidr"),
                            ]);
                            Self::push(out, span, &block.cidr, ingress);
                        }
                    }
                }
            }
        }
    }
}
