//! Hubble flows: `hubble observe -o jsonpb` (`{"flow": {...}, "node_name", "time"}`), and bare
//! `Flow` objects (`-o json` of older CLIs, exporter files) — cilium-semantics.md §7.3, §10.8.
//!
//! The peers are identified by the labels Hubble carries (`k8s:app=web`, `reserved:world`),
//! else by the numeric reserved identity, else by the inventory (IP, namespace/pod), else
//! they are world. Lines that carry no flow (`node_status`, `lost_events`) are counted.

use std::sync::Arc;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{Endpoint, Flow, FlowError, Reader, hubble_labels, json_error};
use crate::eval::Proto;
use crate::identity::{Reserved, pod_labels};

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    flow: Option<HFlow>,
    #[serde(default)]
    node_status: Option<IgnoredAny>,
    #[serde(default)]
    lost_events: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
struct HFlow {
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    verdict: Option<String>,
    #[serde(default, rename = "IP")]
    ip: Option<Ip>,
    #[serde(default)]
    l4: Option<L4>,
    #[serde(default)]
    source: Option<HEndpoint>,
    #[serde(default)]
    destination: Option<HEndpoint>,
    #[serde(default)]
    is_reply: Option<bool>,
    /// Deprecated spelling of `is_reply` in older exports.
    #[serde(default)]
    reply: Option<bool>,
    #[serde(default)]
    source_names: Vec<String>,
    #[serde(default)]
    destination_names: Vec<String>,
    #[serde(default)]
    node_name: Option<String>,
}

#[derive(Deserialize, Default)]
struct Ip {
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    destination: Option<String>,
}

#[derive(Deserialize, Default)]
#[allow(non_snake_case, reason = "Hubble's JSON keys")]
struct L4 {
    #[serde(default)]
    TCP: Option<Ports>,
    #[serde(default)]
    UDP: Option<Ports>,
    #[serde(default)]
    SCTP: Option<Ports>,
    #[serde(default)]
    ICMPv4: Option<IcmpFields>,
    #[serde(default)]
    ICMPv6: Option<IcmpFields>,
}

#[derive(Deserialize, Default)]
struct Ports {
    #[serde(default)]
    source_port: Option<u16>,
    #[serde(default)]
    destination_port: Option<u16>,
    #[serde(default)]
    flags: Option<Flags>,
}

#[derive(Deserialize, Default)]
#[allow(non_snake_case, reason = "Hubble's JSON keys")]
struct Flags {
    #[serde(default)]
    SYN: bool,
    #[serde(default)]
    ACK: bool,
}

#[derive(Deserialize, Default)]
struct IcmpFields {
    #[serde(default, rename = "type")]
    kind: Option<u8>,
}

#[derive(Deserialize, Default)]
struct HEndpoint {
    #[serde(default)]
    identity: Option<u64>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    pod_name: Option<String>,
    #[serde(default)]
    workloads: Vec<Workload>,
}

#[derive(Deserialize, Default)]
struct Workload {
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
}

/// One line of a Hubble export.
pub(super) fn line(reader: &mut Reader<'_>, text: &str) -> Result<Option<Flow>, FlowError> {
    let expected = "a Hubble flow (`hubble observe -o jsonpb` or `-o json`)";
    let parsed: Line = serde_json::from_str(text).map_err(|e| json_error(&e, expected))?;
    let flow = match parsed {
        Line {
            flow: Some(flow), ..
        } => flow,
        Line {
            node_status: Some(_),
            ..
        } => {
            *reader
                .set
                .skipped
                .entry("node_status".to_owned())
                .or_default() += 1;
            return Ok(None);
        }
        Line {
            lost_events: Some(_),
            ..
        } => {
            *reader
                .set
                .skipped
                .entry("lost_events".to_owned())
                .or_default() += 1;
            return Ok(None);
        }
        // A bare Flow.
        Line { .. } => serde_json::from_str::<HFlow>(text).map_err(|e| json_error(&e, expected))?,
    };
    if flow.ip.is_none() && flow.l4.is_none() && flow.source.is_none() {
        *reader.set.skipped.entry("no flow".to_owned()).or_default() += 1;
        return Ok(None);
    }
    let (proto, ports, icmp_type) = match flow.l4 {
        Some(L4 { TCP: Some(p), .. }) => (Some(Proto::Tcp), Some(p), None),
        Some(L4 { UDP: Some(p), .. }) => (Some(Proto::Udp), Some(p), None),
        Some(L4 { SCTP: Some(p), .. }) => (Some(Proto::Sctp), Some(p), None),
        Some(L4 {
            ICMPv4: Some(i), ..
        }) => (Some(Proto::Icmp), None, i.kind),
        Some(L4 {
            ICMPv6: Some(i), ..
        }) => (Some(Proto::Icmpv6), None, i.kind),
        _ => (None, None, None),
    };
    let ip = flow.ip.unwrap_or_default();
    let parse_ip = |s: &Option<String>| s.as_deref().and_then(|s| s.parse().ok());
    let node = flow
        .node_name
        .as_deref()
        .map(|n| n.rsplit('/').next().unwrap_or(n).to_owned());
    let src = endpoint(
        reader,
        flow.source.unwrap_or_default(),
        parse_ip(&ip.source),
        ports.as_ref().and_then(|p| p.source_port),
        flow.source_names,
        node.as_deref(),
    );
    let dst = endpoint(
        reader,
        flow.destination.unwrap_or_default(),
        parse_ip(&ip.destination),
        ports.as_ref().and_then(|p| p.destination_port),
        flow.destination_names,
        node.as_deref(),
    );
    let flags = ports.and_then(|p| p.flags).unwrap_or_default();
    Ok(Some(Flow {
        index: 0,
        line: 0,
        time: flow.time,
        proto,
        src,
        dst,
        icmp_type,
        reply: flow.is_reply.or(flow.reply),
        syn: flags.SYN,
        ack: flags.ACK,
        packets: 1,
        bytes: 0,
        connections: 1,
        observed: flow.verdict,
        service: None,
    }))
}

fn endpoint(
    reader: &mut Reader<'_>,
    e: HEndpoint,
    ip: Option<std::net::IpAddr>,
    port: Option<u16>,
    names: Vec<String>,
    node: Option<&str>,
) -> Endpoint {
    let mut out = Endpoint {
        port,
        namespace: e.namespace.clone().filter(|n| !n.is_empty()),
        pod: e.pod_name.clone().filter(|n| !n.is_empty()),
        workload: e
            .workloads
            .first()
            .map(|w| format!("{}/{}", w.kind, w.name)),
        ..Endpoint::default()
    };
    let inventory = reader.inventory;
    let labels = if !e.labels.is_empty() {
        reader.intern(e.labels, hubble_labels)
    } else if let Some(labels) = e.identity.and_then(Reserved::from_numeric) {
        Arc::new(labels)
    } else if let Some(ns) = out.namespace.clone() {
        // Namespace and pod name only: the inventory knows the labels; without it, only the
        // namespace is known.
        match (inventory, out.pod.as_deref()) {
            (Some(inv), Some(pod)) if inv.pod(&ns, pod).is_some() => {
                let pod = inv.pod(&ns, pod);
                pod.map(|p| {
                    out.peer.named_ports = p.ports.clone();
                    p.identity.clone()
                })
                .unwrap_or_default()
            }
            _ => {
                let ns_labels = inventory.and_then(|inv| inv.namespaces.get(&ns).cloned());
                reader.intern(vec![format!("\0ns={ns}")], |_| {
                    pod_labels(&ns, &Default::default(), None, ns_labels.as_ref())
                })
            }
        }
    } else if let Some(peer) = ip.and_then(|ip| inventory.and_then(|inv| inv.classify(ip, node))) {
        if let Some(pod) = ip.and_then(|ip| inventory.and_then(|inv| inv.pod_by_ip(ip))) {
            out.namespace = Some(pod.namespace.clone());
            out.pod = Some(pod.name.clone());
            out.workload = Some(pod.workload.clone());
        }
        out.peer.named_ports = peer.named_ports.clone();
        peer.labels
    } else {
        Arc::new(Reserved::World.labels())
    };
    if out.namespace.is_none() {
        out.entity = labels
            .iter()
            .find(|l| l.source == "reserved")
            .map(|l| l.key.clone());
    }
    // Pods named in labels but not the endpoint fields: take the namespace from the labels.
    if out.namespace.is_none() && out.entity.is_none() {
        out.namespace = labels.namespace().map(str::to_owned);
    }
    if out.workload.is_none()
        && out.namespace.is_some()
        && let (Some(inv), Some(ns), Some(pod)) =
            (inventory, out.namespace.as_deref(), out.pod.as_deref())
        && let Some(p) = inv.pod(ns, pod)
    {
        out.workload = Some(p.workload.clone());
        out.peer.named_ports = p.ports.clone();
    }
    out.peer.labels = labels;
    out.peer.ip = ip;
    if out.peer.is_world() {
        out.peer.names = names.iter().map(|n| crate::fqdn::normalize(n)).collect();
    }
    out
}
