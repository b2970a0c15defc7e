use crate::diagnostic::Diagnostic;
use crate::diagnostic::source::Span;
use crate::document::Step;
use crate::engine::entry::{self, PortMatch};
use crate::engine::eval::NamedPorts;
use crate::engine::policy::{Body, PolicyKind};
use crate::engine::selector::{KeyForm, Selector};
use crate::lint::{Context, Workload, cilium_items, finding};
use crate::objects::kubernetes::IntOrString;
use crate::objects::{Direction, Proto, ProtoSet};

declare_rule! {
    /// A named port (`port: http`) that resolves to no number.
    ///
    /// ## What
    /// With workload manifests or `--inventory`, a `toPorts` port (or a NetworkPolicy port)
    /// written as a name that Cilium cannot turn into a number:
    ///
    /// - on **ingress**, some workload the policy selects has no container port of that name
    ///   and protocol (`ports[].name` of its pod template): Cilium resolves an ingress name
    ///   against the selected endpoint's own ports, one endpoint at a time;
    /// - on **egress**, no workload defines the name, or workloads define it with different
    ///   numbers: Cilium resolves an egress name against the ports of every pod of the
    ///   cluster, never the destination's own, and a name with two numbers resolves to
    ///   nothing.
    ///
    /// Selected workloads that name the port with different numbers are fine on ingress: each
    /// endpoint opens its own number.
    ///
    /// ## Why
    /// A name that resolves to nothing is skipped: the port allows (or denies) nothing, and
    /// the agent only logs `Skipping named port` (cilium/cilium@507103c6
    /// pkg/endpoint/policy.go:51-89; the cluster-wide map, pkg/types/portmap.go:183-219).
    /// The policy looks right and the traffic drops, or a deny does not deny.
    ///
    /// ## Example
    /// ```yaml
    /// metadata: {name: api, namespace: shop}
    /// spec:
    ///   endpointSelector: {matchLabels: {app: api}}
    ///   ingress:
    ///     - toPorts: [{ports: [{port: http, protocol: TCP}]}]   # the container port is `web`
    /// ```
    ///
    /// ## Fix
    /// Use the name the pod template gives the port (`containers[].ports[].name`), give every
    /// workload that serves the name the same number, or write the number.
    pub struct NamedPort {
        code: "named-port",
        id: "NP218",
        level: Warning,
        compiled: true,
    }
}

const PORT_HELP: &str =
    "use the name of a container port (`ports[].name` in the pod template), or write the number";

/// How a port name resolves across the cluster, for egress.
enum ClusterWide {
    Resolved,
    Unknown,
    /// `(number, workload)` pairs of the workloads that define the name.
    Ambiguous(Vec<(u16, String)>),
}

impl NamedPort {
    pub(super) fn run(cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        if cx.workloads.is_none() {
            return;
        }
        for item in cilium_items(cx) {
            let Some(sel) = &item.rule.endpoint_selector else {
                continue;
            };
            let subject = match (item.policy.kind, item.policy.namespace.as_deref()) {
                (PolicyKind::Cnp, Some(ns)) => Selector::compile_in(sel, KeyForm::Cilium, ns),
                _ => Selector::compile(sel, KeyForm::Cilium),
            };
            let direction = item.item.section.direction();
            for (i, pv) in item.item.ports.iter().flatten().enumerate() {
                let ports = pv.ports.unwrap_or_default();
                for (j, pm) in entry::port_matches(Some(ports)).iter().enumerate() {
                    let path = [
                        Step::Key("toPorts"),
                        Step::Index(i),
                        Step::Key("ports"),
                        Step::Index(j),
                        Step::Key("port"),
                    ];
                    check(cx, &subject, direction, pm, item.span(&path), out);
                }
            }
        }
        for policy in &cx.set.policies {
            let (Body::Kubernetes(spec), Some(ns)) = (&policy.body, policy.namespace.as_deref())
            else {
                continue;
            };
            let subject = Selector::compile_in(&spec.pod_selector, KeyForm::Kubernetes, ns);
            let ingress = spec.ingress.iter().flatten().map(|r| r.ports.as_deref());
            let egress = spec.egress.iter().flatten().map(|r| r.ports.as_deref());
            for (direction, key, rules) in [
                (Direction::Ingress, "ingress", ingress.collect::<Vec<_>>()),
                (Direction::Egress, "egress", egress.collect()),
            ] {
                for (i, ports) in rules.iter().enumerate() {
                    for (j, p) in ports.iter().copied().flatten().enumerate() {
                        let Some(IntOrString::String(name)) = &p.port else {
                            continue;
                        };
                        // The API server defaults the protocol to TCP.
                        let proto = match p.protocol.as_deref() {
                            Some("UDP") => Proto::Udp,
                            Some("SCTP") => Proto::Sctp,
                            _ => Proto::Tcp,
                        };
                        let pm = PortMatch {
                            protocols: ProtoSet::of(proto),
                            first: 0,
                            last: 0,
                            name: Some(name.to_ascii_lowercase()),
                        };
                        let path = [
                            Step::Key("spec"),
                            Step::Key(key),
                            Step::Index(i),
                            Step::Key("ports"),
                            Step::Index(j),
                            Step::Key("port"),
                        ];
                        check(cx, &subject, direction, &pm, policy.span_of(&path), out);
                    }
                }
            }
        }
    }
}

/// The protocols of a port, among those a container port can have.
fn protocols(pm: &PortMatch) -> Vec<Proto> {
    [Proto::Tcp, Proto::Udp, Proto::Sctp]
        .into_iter()
        .filter(|p| pm.protocols.contains(*p))
        .collect()
}

/// Whether `w` has a container port `name` of one of `protos`.
fn defines(w: &Workload, name: &str, protos: &[Proto]) -> bool {
    w.peer
        .named_ports
        .iter()
        .any(|np| np.name == name && protos.contains(&np.protocol))
}

fn check(
    cx: &Context<'_>,
    subject: &Selector,
    direction: Direction,
    pm: &PortMatch,
    span: Span,
    out: &mut Vec<Diagnostic>,
) {
    let Some(name) = &pm.name else { return };
    let protos = protocols(pm);
    if protos.is_empty() {
        return;
    }
    let proto_text = if pm.protocols == ProtoSet::ANY {
        String::new()
    } else {
        format!(
            "{} ",
            protos
                .iter()
                .map(|p| p.as_str().to_ascii_uppercase())
                .collect::<Vec<_>>()
                .join("/")
        )
    };
    match direction {
        Direction::Ingress => {
            if subject.has_reserved() || !cx.knows(subject) {
                return;
            }
            let selected: Vec<&Workload> = cx.selected(subject).collect();
            let missing: Vec<String> = selected
                .iter()
                .filter(|w| !defines(w, name, &protos))
                .map(|w| format!("`{}`", w.display()))
                .collect();
            if missing.is_empty() {
                return;
            }
            let message = if missing.len() == selected.len() {
                format!(
                    "no selected workload ({}) has a {proto_text}container port named `{name}`: this port matches nothing",
                    list(&missing)
                )
            } else {
                format!(
                    "{} ({} of {} selected workloads) {} no {proto_text}container port named `{name}`: Cilium resolves an ingress name on each endpoint, so this port matches nothing there",
                    list(&missing),
                    missing.len(),
                    selected.len(),
                    if missing.len() == 1 { "has" } else { "have" }
                )
            };
            out.push(finding(
                &NamedPort::META,
                span,
                message,
                format!("no container port `{name}`"),
                PORT_HELP,
            ));
        }
        Direction::Egress => {
            let Some(inventory) = cx.inventory else {
                return;
            };
            match cluster_wide(cx, inventory, name, &protos) {
                ClusterWide::Resolved => {}
                ClusterWide::Unknown => out.push(finding(
                    &NamedPort::META,
                    span,
                    format!(
                        "no workload has a {proto_text}container port named `{name}`: Cilium resolves an egress name against every pod's ports, so this port matches nothing"
                    ),
                    format!("no container port `{name}`"),
                    PORT_HELP,
                )),
                ClusterWide::Ambiguous(defs) => {
                    let defs: Vec<String> = defs
                        .iter()
                        .map(|(n, w)| format!("{n} in `{w}`"))
                        .collect();
                    out.push(finding(
                        &NamedPort::META,
                        span,
                        format!(
                            "named port `{name}` has several numbers in the cluster ({}): Cilium resolves an egress name against every pod's ports, and a name with two numbers matches nothing",
                            list(&defs)
                        ),
                        format!("`{name}` is ambiguous"),
                        "give the name one number in every workload, or write the number",
                    ));
                }
            }
        }
    }
}

/// How `name` resolves for egress: the inventory's cluster-wide map (the engine's), with the
/// workloads that define it for the message.
fn cluster_wide(
    cx: &Context<'_>,
    inventory: &dyn NamedPorts,
    name: &str,
    protos: &[Proto],
) -> ClusterWide {
    if protos.iter().any(|p| inventory.resolve(name, *p).is_some()) {
        return ClusterWide::Resolved;
    }
    let mut defs: Vec<(u16, String)> = Vec::new();
    for w in cx.workloads.unwrap_or_default() {
        for np in w.peer.named_ports.iter() {
            if np.name == name && protos.contains(&np.protocol) {
                defs.push((np.port, w.display()));
            }
        }
    }
    defs.sort();
    defs.dedup();
    if defs.is_empty() {
        return ClusterWide::Unknown;
    }
    // One entry per number (the first workload by name) keeps the message short.
    defs.dedup_by(|a, b| a.0 == b.0);
    if defs.len() < 2 {
        // Ambiguous among pods the workloads do not show (or not resolvable at all): say
        // nothing rather than something unproven.
        return ClusterWide::Resolved;
    }
    ClusterWide::Ambiguous(defs)
}

/// At most three items, then how many more.
fn list(items: &[String]) -> String {
    let shown: Vec<&str> = items.iter().take(3).map(String::as_str).collect();
    match items.len().saturating_sub(3) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}
