//! `netpol explain`: one flow, decided step by step, with every rule that could apply and why
//! it matched or not (the reference evaluator's trace, docs/semantics.md §10).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use crate::diagnostic::source::SourceMap;
use crate::engine::entry::{Entries, L3, PeerMatch};
use crate::engine::eval::{self, NamedPorts, Query, Trace};
use crate::engine::identity::{self, Label, Labels, Peer, Reserved};
use crate::engine::selector::Selector;
use crate::objects::port::{self, PortRef};
use crate::objects::{Direction, Proto};
use crate::report::verify::{PointReport, RuleRef};
use crate::report::workload::{Workload, Workloads};

/// A flow end as the user names it.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub peer: Peer,
    pub display: String,
    /// The workload the REF names (a pod, a profile's service, a workload of the cluster),
    /// whose port names `--port` may use.
    pub workload: Option<Workload>,
}

/// Resolve a REF: `ns/name` (a pod of the inventory, a profile's service, a workload of the
/// manifests or the inventory), `ns:media,app=sonarr[,sa:NAME]`, an IP, an entity (`world`,
/// `host`, …) or a DNS name; a label set is a pod of the cluster the workloads are in.
pub fn resolve(text: &str, workloads: &Workloads<'_>) -> Result<Resolved, String> {
    let text = text.trim();
    let inventory = workloads.inventory();
    let cluster = workloads.cluster();
    if let Some(r) = Reserved::parse(text) {
        return Ok(Resolved {
            peer: Peer {
                labels: Arc::new(r.labels()),
                ..Peer::default()
            },
            display: text.to_owned(),
            workload: None,
        });
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        if let Some(peer) = inventory.and_then(|inv| inv.classify(ip, None)) {
            let pod = inventory.and_then(|inv| inv.pod_by_ip(ip));
            let display = pod.map_or_else(
                || format!("{ip} ({})", peer.labels),
                |p| format!("{}/{} ({ip})", p.namespace, p.name),
            );
            let workload = pod.map(|p| Workload {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                kind: "Pod".to_owned(),
                peer: peer.clone(),
                ports: p.ports.to_vec(),
            });
            return Ok(Resolved {
                peer,
                display,
                workload,
            });
        }
        return Ok(Resolved {
            peer: Peer {
                labels: Arc::new(Reserved::World.labels()),
                ip: Some(ip),
                ..Peer::default()
            },
            display: format!("world ({ip})"),
            workload: None,
        });
    }
    if text.contains('=') || text.starts_with("ns:") {
        let mut namespace = None;
        let mut sa = None;
        let mut labels = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if let Some(ns) = part.strip_prefix("ns:") {
                namespace = Some(ns.to_owned());
            } else if let Some(s) = part.strip_prefix("sa:") {
                sa = Some(s.to_owned());
            } else if let Some((k, v)) = part.split_once('=') {
                labels.insert(k.to_owned(), v.to_owned());
            } else {
                return Err(format!(
                    "cannot read `{part}` in `{text}`: expected `key=value`, `ns:NAMESPACE` or `sa:SERVICEACCOUNT`"
                ));
            }
        }
        let Some(ns) = namespace else {
            return Err(format!("`{text}` names no namespace: add `ns:NAMESPACE`"));
        };
        let identity = match inventory {
            Some(inv) => inv.pod_identity(&ns, &labels, sa.as_deref()),
            None => identity::pod_labels(&ns, &labels, sa.as_deref(), None, cluster),
        };
        return Ok(Resolved {
            peer: Peer {
                labels: Arc::new(identity),
                ..Peer::default()
            },
            display: text.to_owned(),
            workload: None,
        });
    }
    if let Some((ns, name)) = text.split_once('/') {
        let workload = workloads.find(ns, name)?;
        let display = match workload.kind.as_str() {
            "Pod" => workload.display(),
            kind => format!("{} ({kind})", workload.display()),
        };
        return Ok(Resolved {
            peer: workload.peer.clone(),
            display,
            workload: Some(workload),
        });
    }
    if text.contains('.') && crate::objects::fqdn::parse(text).is_ok() {
        return Ok(Resolved {
            peer: Peer {
                labels: Arc::new(Reserved::World.labels()),
                names: vec![crate::objects::fqdn::normalize(text)],
                ..Peer::default()
            },
            display: format!("world ({text})"),
            workload: None,
        });
    }
    Err(format!(
        "cannot tell what `{text}` is: use `ns/name`, `ns:NAMESPACE,key=value`, an IP, a DNS name or an entity ({})",
        Reserved::ALL
            .iter()
            .map(|r| r.key())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// `443/tcp`, `53/udp`, `8080` (TCP), `icmp/8`, `icmpv6/128`.
pub fn parse_port(text: &str) -> Result<(Proto, u16), String> {
    let (a, b) = text.split_once('/').unwrap_or((text, "tcp"));
    let (port, proto) = match (Proto::parse(a), Proto::parse(b)) {
        (Some(p), _) if p.is_icmp() => (b, p),
        (_, Some(p)) => (a, p),
        _ => {
            return Err(format!(
                "cannot read port `{text}`: write `443/tcp`, `53/udp` or `icmp/8`"
            ));
        }
    };
    let port = port.parse::<u16>().map_err(|_| {
        format!("cannot read port `{text}`: `{port}` is not a number from 0 to 65535")
    })?;
    Ok((proto, port))
}

/// The port of `--port` for a flow to `to`: a number ([`parse_port`]), an ICMP type by name
/// (`icmp/echo-request`), or a port name of the destination (`postgresql`, `dns/udp`),
/// resolved through its profile service's named ports or its pods' container ports.
pub fn resolve_port(text: &str, to: &Resolved) -> Result<(Proto, u16), String> {
    let text = text.trim();
    let numeric = parse_port(text);
    if numeric.is_ok() {
        return numeric;
    }
    let (name, protocol) = match text.split_once('/') {
        Some((name, proto)) => (name, Proto::parse(proto)),
        None => (text, None),
    };
    if let Some(family) = Proto::parse(name).filter(|p| p.is_icmp())
        && let Ok(PortRef::Icmp(t)) = port::parse_ref(text)
    {
        return Ok((family, u16::from(t.kind)));
    }
    let protocol_ok = text.split_once('/').is_none() || protocol.is_some();
    if !port::is_port_name(&name.to_ascii_lowercase()) || !protocol_ok {
        return numeric;
    }
    match &to.workload {
        Some(w) => w.port_named(name, protocol),
        None => Err(format!(
            "`{name}` is a port name, and `{}` is no workload whose ports are known
  help: name the destination as `namespace/name` (a pod, a profile's service, a workload of the manifests), or write the port as a number: `443/tcp`, `53/udp`, `icmp/8`",
            to.display
        )),
    }
}

fn why_not(m: &PeerMatch, peer: &Peer) -> String {
    match m {
        PeerMatch::Labels(sel) => match first_failure(sel, &peer.labels) {
            Some(req) => format!("{m}: `{req}` does not hold"),
            None => format!("{m}"),
        },
        PeerMatch::Cidr { nodes: false, .. } if !peer.is_world() => format!(
            "{m}: CIDR rules select only world-class peers, not {}",
            peer.labels
        ),
        PeerMatch::Cidr { nodes: true, .. } if !peer.is_world() && !peer.is_node() => format!(
            "{m}: CIDR rules select only world-class peers and nodes, not {}",
            peer.labels
        ),
        PeerMatch::Cidr { .. } if peer.ip.is_none() => format!("{m}: the peer's IP is unknown"),
        PeerMatch::Fqdn(_) if !peer.is_world() => {
            format!("{m}: toFQDNs selects only world-class peers")
        }
        PeerMatch::Fqdn(_) if peer.names.is_empty() => {
            format!("{m}: no DNS name is known for the peer")
        }
        other => format!("{other}: no match"),
    }
}

fn first_failure<'a>(
    sel: &'a Selector,
    labels: &Labels,
) -> Option<&'a crate::engine::selector::Requirement> {
    sel.requirements.iter().find(|r| !r.matches(labels))
}

/// The explanation, as text. Returns it and whether the flow is allowed.
#[expect(
    clippy::too_many_arguments,
    reason = "the flow and everything it is judged against"
)]
pub fn explain(
    entries: &Entries,
    index: &crate::engine::index::Index,
    sources: &SourceMap,
    from: &Resolved,
    to: &Resolved,
    proto: Proto,
    port: u16,
    cluster: &dyn NamedPorts,
) -> (String, bool) {
    let q = Query {
        src: from.peer.clone(),
        dst: to.peer.clone(),
        proto: Some(proto),
        port,
    };
    let mut trace: Vec<Trace> = Vec::new();
    let decision = eval::reference(entries, &q, cluster, Some(&mut trace));
    let mut out = String::new();
    let port_text = if proto.is_icmp() {
        format!("{proto}/{port}")
    } else {
        format!("{port}/{proto}")
    };
    let _ = writeln!(out, "flow: {} -> {} {port_text}", from.display, to.display);
    let _ = writeln!(out, "  source identity:      {}", label_list(&from.peer));
    let _ = writeln!(out, "  destination identity: {}", label_list(&to.peer));
    for (step, (direction, endpoint, other, point, who)) in [
        (
            Direction::Egress,
            &q.src,
            &q.dst,
            &decision.egress,
            &from.display,
        ),
        (
            Direction::Ingress,
            &q.dst,
            &q.src,
            &decision.ingress,
            &to.display,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let _ = writeln!(out, "\n{}. {direction} at {who}", step + 1);
        let report = PointReport::new(index, sources, point);
        if !index.entries.enforces(endpoint) {
            let _ = writeln!(
                out,
                "   not a Cilium endpoint: no {direction} policy applies here"
            );
            continue;
        }
        let selecting: Vec<&Trace> = trace
            .iter()
            .filter(|t| t.direction == direction && t.selects)
            .collect();
        if selecting.is_empty() {
            let _ = writeln!(
                out,
                "   no rule selects it for {direction}: not enforced, allowed"
            );
            continue;
        }
        let dd = selecting
            .iter()
            .filter_map(|t| entries.entries.get(t.entry as usize))
            .any(|e| e.default_deny);
        let _ = writeln!(
            out,
            "   {} rule(s) select it; {}",
            selecting.len(),
            if dd {
                "default deny"
            } else {
                "no rule is default-deny (enableDefaultDeny: false)"
            }
        );
        for t in &selecting {
            let Some(e) = entries.entries.get(t.entry as usize) else {
                continue;
            };
            let at = RuleRef::new(index, sources, t.entry)
                .map(|r| r.to_string())
                .unwrap_or_default();
            let verdict = if e.deny { "deny " } else { "allow" };
            let mark = if t.l3 && t.l4 { "✓" } else { "✗" };
            let _ = writeln!(out, "   {mark} {verdict} {at}");
            match &e.l3 {
                L3::Nothing => {
                    let _ = writeln!(out, "       peers: an empty list selects nothing");
                }
                L3::Wildcard if e.l4.is_none() => {
                    let _ = writeln!(
                        out,
                        "       peers: none given and no ports: the item allows nothing (it only makes the direction default-deny)"
                    );
                }
                L3::Wildcard => {
                    let _ = writeln!(out, "       peers: any (no peer field, ports given)");
                }
                L3::Peers(peers) if t.l3 => {
                    let _ = writeln!(
                        out,
                        "       peers: matched ({})",
                        peers
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    );
                }
                L3::Peers(peers) => {
                    for m in peers {
                        let _ = writeln!(out, "       peer ✗ {}", why_not(m, other));
                    }
                }
            }
            if t.l3 {
                let ports = match &e.l4 {
                    None => "all protocols and ports".to_owned(),
                    Some(p) => p
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                };
                let _ = writeln!(
                    out,
                    "       ports {}: {ports}",
                    if t.l4 { "✓" } else { "✗" }
                );
            }
        }
        let _ = writeln!(
            out,
            "   => {}: {}",
            report.verdict.to_uppercase(),
            report.summary()
        );
        for n in &report.notes {
            let _ = writeln!(out, "   note: {n}");
        }
    }
    let allowed = decision.allowed();
    let _ = writeln!(
        out,
        "\nverdict: {}",
        match decision.dropped_at() {
            None => "ALLOWED".to_owned(),
            Some(d) if decision.egress.audited || decision.ingress.audited => {
                format!("AUDIT at {d} (policy audit mode: the packet passes, Hubble shows AUDIT)")
            }
            Some(d) => format!("DROPPED at {d}"),
        }
    );
    (out, allowed)
}

fn label_list(peer: &Peer) -> String {
    let mut s: Vec<String> = peer.labels.iter().map(Label::to_string).collect();
    if let Some(ip) = peer.ip {
        s.push(format!("ip={ip}"));
    }
    for n in &peer.names {
        s.push(format!("dns={n}"));
    }
    s.join(", ")
}
