//! Hubble flows: `hubble observe -o jsonpb` (`{"flow": {...}, "node_name", "time"}`), and bare
//! `Flow` objects (`-o json` of older CLIs, exporter files) — docs/semantics.md §7.3, §10.8.
//!
//! The peers are identified by the labels Hubble carries (`k8s:app=web`, `reserved:world`),
//! else by the numeric reserved identity, else by the inventory (IP, namespace/pod), else
//! they are world. Lines that carry no flow (`node_status`, `lost_events`) are counted.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use super::{Endpoint, Flow, FlowError, Reader, json_error};
use crate::engine::identity::{Reserved, pod_labels};
use crate::objects::Proto;

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(default, borrow)]
    flow: Option<HFlow<'a>>,
    #[serde(default)]
    node_status: Option<IgnoredAny>,
    #[serde(default)]
    lost_events: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
struct HFlow<'a> {
    #[serde(default, borrow)]
    time: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    verdict: Option<Cow<'a, str>>,
    #[serde(default, rename = "IP", borrow)]
    ip: Option<Ip<'a>>,
    #[serde(default)]
    l4: Option<L4>,
    #[serde(default, borrow)]
    source: Option<HEndpoint<'a>>,
    #[serde(default, borrow)]
    destination: Option<HEndpoint<'a>>,
    #[serde(default)]
    is_reply: Option<bool>,
    /// Deprecated spelling of `is_reply` in older exports.
    #[serde(default)]
    reply: Option<bool>,
    #[serde(default, borrow)]
    source_names: Vec<Cow<'a, str>>,
    #[serde(default, borrow)]
    destination_names: Vec<Cow<'a, str>>,
    #[serde(default, borrow)]
    node_name: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct Ip<'a> {
    #[serde(default, borrow)]
    source: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    destination: Option<Cow<'a, str>>,
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
struct HEndpoint<'a> {
    #[serde(default)]
    identity: Option<u64>,
    #[serde(default, borrow)]
    namespace: Option<Cow<'a, str>>,
    /// The label texts, as written: a label set is read once, and found again by its text.
    #[serde(default, borrow)]
    labels: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pod_name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    workloads: Vec<Workload<'a>>,
}

#[derive(Deserialize, Default)]
struct Workload<'a> {
    #[serde(default, borrow)]
    name: Cow<'a, str>,
    #[serde(default, borrow)]
    kind: Cow<'a, str>,
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
    let parse_ip = |s: &Option<Cow<'_, str>>| s.as_deref().and_then(|s| s.parse().ok());
    let node = flow
        .node_name
        .as_deref()
        .map(|n| n.rsplit('/').next().unwrap_or(n).to_owned());
    let src = endpoint(
        reader,
        text,
        flow.source.unwrap_or_default(),
        parse_ip(&ip.source),
        ports.as_ref().and_then(|p| p.source_port),
        flow.source_names,
        node.as_deref(),
    )?;
    let dst = endpoint(
        reader,
        text,
        flow.destination.unwrap_or_default(),
        parse_ip(&ip.destination),
        ports.as_ref().and_then(|p| p.destination_port),
        flow.destination_names,
        node.as_deref(),
    )?;
    let flags = ports.and_then(|p| p.flags).unwrap_or_default();
    Ok(Some(Flow {
        index: 0,
        line: 0,
        time: flow.time.map(Cow::into_owned),
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
        observed: flow.verdict.as_deref().map(|v| reader.text(v)),
        service: None,
        hairpin: false,
    }))
}

fn endpoint(
    reader: &mut Reader<'_>,
    line: &str,
    e: HEndpoint<'_>,
    ip: Option<std::net::IpAddr>,
    port: Option<u16>,
    names: Vec<Cow<'_, str>>,
    node: Option<&str>,
) -> Result<Endpoint, FlowError> {
    let mut out = Endpoint {
        port,
        namespace: e
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .map(|n| reader.text(n)),
        pod: e
            .pod_name
            .as_deref()
            .filter(|n| !n.is_empty())
            .map(|n| reader.text(n)),
        workload: e
            .workloads
            .first()
            .map(|w| reader.text(&format!("{}/{}", w.kind, w.name))),
        ..Endpoint::default()
    };
    let inventory = reader.inventory;
    let listed = match e.labels {
        Some(raw) => reader.intern_raw(raw.get(), |raw| {
            let texts: Vec<Cow<'_, str>> = serde_json::from_str(raw).map_err(|err| {
                // The column in the line, not in the list.
                let offset = (raw.as_ptr() as usize).saturating_sub(line.as_ptr() as usize);
                FlowError {
                    column: offset + err.column(),
                    ..json_error(&err, "`labels`: a list of `source:key=value` texts")
                }
            })?;
            Ok(texts)
        })?,
        None => None,
    };
    let labels = if let Some(labels) = listed {
        labels
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
                let ns_labels = inventory.and_then(|inv| inv.namespaces.get(&*ns).cloned());
                let cluster = reader.cluster.clone();
                reader.intern(&[format!("\0ns={ns}")], || {
                    pod_labels(&ns, &Default::default(), None, ns_labels.as_ref(), &cluster)
                })
            }
        }
    } else if let Some(peer) = ip.and_then(|ip| inventory.and_then(|inv| inv.classify(ip, node))) {
        if let Some(pod) = ip.and_then(|ip| inventory.and_then(|inv| inv.pod_by_ip(ip))) {
            out.namespace = Some(reader.text(&pod.namespace));
            out.pod = Some(reader.text(&pod.name));
            out.workload = Some(reader.text(&pod.workload));
        }
        out.peer.named_ports = peer.named_ports.clone();
        peer.labels
    } else {
        Arc::new(Reserved::World.labels())
    };
    // A node's labels, as the host endpoint and the remote-node identity have them (Hubble's
    // `reserved:host` carries none of them).
    let labels = match (inventory, ip) {
        (Some(inv), Some(ip))
            if !inv.node_labels.is_empty()
                && (labels.reserved(Reserved::Host.key())
                    || labels.reserved(Reserved::RemoteNode.key())) =>
        {
            match inv.node_by_ip(ip) {
                Some(node) => {
                    let key = [format!("\0node={node}"), labels.to_string()];
                    reader.intern(&key, || inv.with_node_labels(&labels, node))
                }
                None => labels,
            }
        }
        _ => labels,
    };
    if out.namespace.is_none() {
        out.entity = labels
            .iter()
            .find(|l| l.source == "reserved")
            .map(|l| reader.text(&l.key));
    }
    // Pods named in labels but not the endpoint fields: take the namespace from the labels.
    if out.namespace.is_none() && out.entity.is_none() {
        out.namespace = labels.namespace().map(|n| reader.text(n));
    }
    // The inventory's pod, by name or by IP: its workload and its container port names
    // (named ports of ingress rules resolve against them, docs/semantics.md §1.13).
    let known = inventory.and_then(|inv| {
        match (out.namespace.as_deref(), out.pod.as_deref()) {
            (Some(ns), Some(pod)) => inv.pod(ns, pod),
            _ => None,
        }
        .or_else(|| ip.and_then(|ip| inv.pod_by_ip(ip)))
    });
    if let Some(p) = known.filter(|p| out.namespace.as_deref() == Some(p.namespace.as_str())) {
        if out.workload.is_none() {
            out.workload = Some(reader.text(&p.workload));
        }
        out.peer.named_ports = p.ports.clone();
    }
    out.peer.labels = labels;
    out.peer.ip = ip;
    if out.peer.is_world() {
        out.peer.names = names
            .iter()
            .map(|n| crate::objects::fqdn::normalize(n))
            .collect();
    }
    Ok(out)
}
