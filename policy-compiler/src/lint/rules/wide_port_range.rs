use crate::diagnostic::Diagnostic;
use crate::diagnostic::source::Span;
use crate::document::Step;
use crate::engine::policy::Body;
use crate::lint::{Context, cilium_items, finding};
use crate::objects::kubernetes::IntOrString;
use crate::objects::port::RulePort;

/// Ranges wider than this many ports are reported.
pub const WIDEST: u32 = 1024;

declare_rule! {
    /// A port range of more than 1,024 ports (`endPort`), or every port (`port: "0"`).
    ///
    /// ## What
    /// A `toPorts` port (or a NetworkPolicy port) with `endPort` spanning more than 1,024
    /// ports, or a Cilium port `"0"` (every port) with a protocol.
    ///
    /// ## Why
    /// A range that wide is usually a way around not knowing the real port; it opens every
    /// service the peer runs in that range (debug endpoints, admin ports, databases). Cilium
    /// applies `endPort` only above `port`, and `"0"` means every port
    /// (cilium/cilium@507103c6 pkg/policy/api/l4.go, `PortProtocol`).
    ///
    /// ## Example
    /// ```yaml
    ///       toPorts:
    ///         - ports: [{port: "1024", endPort: 65535, protocol: TCP}]
    /// ```
    ///
    /// ## Fix
    /// List the ports the service really uses (named container ports help), or acknowledge
    /// the finding for passive FTP, RTP and the like.
    pub struct WidePortRange {
        code: "wide-port-range",
        id: "NP209",
        level: Warning,
        compiled: false,
    }
}

fn push(out: &mut Vec<Diagnostic>, span: Span, first: i64, last: i64) {
    let message = if first == 0 && last == 0 {
        "every port is allowed (`port: \"0\"`)".to_owned()
    } else {
        format!(
            "port range {first}-{last} spans {} ports",
            last.saturating_sub(first).saturating_add(1)
        )
    };
    out.push(finding(
        &WidePortRange::META,
        span,
        message,
        "wide range",
        "list the ports the service uses",
    ));
}

impl WidePortRange {
    pub(super) fn run(cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        for item in cilium_items(cx) {
            if item.item.section.is_deny() {
                continue;
            }
            for (i, pv) in item.item.ports.iter().flatten().enumerate() {
                for (j, p) in pv.ports.unwrap_or_default().iter().enumerate() {
                    let Ok(RulePort::Number(first)) = RulePort::parse(&p.port) else {
                        continue;
                    };
                    let path = [
                        Step::Key("toPorts"),
                        Step::Index(i),
                        Step::Key("ports"),
                        Step::Index(j),
                    ];
                    let first = i64::from(first);
                    match p.end_port.map(i64::from) {
                        Some(end) if end > first && end - first + 1 > i64::from(WIDEST) => {
                            push(out, item.span(&path), first, end);
                        }
                        _ if first == 0 && p.protocol.is_some() => {
                            push(out, item.span(&path), 0, 0)
                        }
                        _ => {}
                    }
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
                    spec.ingress
                        .iter()
                        .flatten()
                        .map(|r| r.ports.as_deref())
                        .collect::<Vec<_>>(),
                ),
                (
                    "egress",
                    spec.egress
                        .iter()
                        .flatten()
                        .map(|r| r.ports.as_deref())
                        .collect(),
                ),
            ];
            for (key, rules) in sides {
                for (i, ports) in rules.into_iter().enumerate() {
                    for (j, p) in ports.unwrap_or_default().iter().enumerate() {
                        let (Some(IntOrString::Int(first)), Some(end)) = (&p.port, p.end_port)
                        else {
                            continue;
                        };
                        let end = i64::from(end);
                        if end > *first && end - *first + 1 > i64::from(WIDEST) {
                            let span = policy.span_of(&[
                                Step::Key("spec"),
                                Step::Key(key),
                                Step::Index(i),
                                Step::Key("ports"),
                                Step::Index(j),
                            ]);
                            push(out, span, *first, end);
                        }
                    }
                }
            }
        }
    }
}
