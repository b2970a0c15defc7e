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

use super::{Endpoint, Flow, FlowError, Reader, Seen, json_error};
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

/// A string of a decoded line: where it is in its chunk, or its unescaped copy when the JSON
/// escaped it. Decoded lines hold no borrow, so that they can cross to the thread that
/// identifies and judges them.
#[derive(Debug)]
enum Text {
    At(usize, usize),
    Owned(Box<str>),
}

impl Text {
    fn of(s: Cow<'_, str>, chunk: &str) -> Self {
        match s {
            Cow::Borrowed(b) => Self::span(b, chunk),
            Cow::Owned(o) => Self::Owned(o.into_boxed_str()),
        }
    }

    /// `s`, a slice of `chunk`, by its place.
    fn span(s: &str, chunk: &str) -> Self {
        let start = (s.as_ptr() as usize).saturating_sub(chunk.as_ptr() as usize);
        Self::At(start, start + s.len())
    }

    fn get<'c>(&'c self, chunk: &'c str) -> &'c str {
        match self {
            Self::At(start, end) => chunk.get(*start..*end).unwrap_or_default(),
            Self::Owned(o) => o,
        }
    }
}

/// A Hubble line decoded, before its peers are identified.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "almost every line is a flow, and chunks reuse their lines' storage"
)]
pub(super) enum Decoded {
    Flow(Parsed),
    /// A line that carries no flow, by kind (`node_status`, `lost_events`, `no flow`).
    Skipped(&'static str),
}

/// The fields of a Hubble flow that `verdict` reads.
#[derive(Debug)]
pub(super) struct Parsed {
    time: Option<Text>,
    /// Names are numbers of the decoder's [`Seen`] names.
    verdict: Option<usize>,
    proto: Option<Proto>,
    icmp_type: Option<u8>,
    reply: Option<bool>,
    syn: bool,
    ack: bool,
    /// The node's name without its cluster (`homelab/k3s-node-1` → `k3s-node-1`).
    node: Option<Text>,
    source: Peer,
    destination: Peer,
}

/// One end of a decoded Hubble flow.
#[derive(Debug, Default)]
struct Peer {
    ip: Option<std::net::IpAddr>,
    port: Option<u16>,
    identity: Option<u64>,
    namespace: Option<usize>,
    /// The `labels` list, by the number of its JSON text, and where that starts in the line.
    labels: Option<(usize, usize)>,
    pod: Option<usize>,
    /// The first workload, `Deployment/web`.
    workload: Option<usize>,
    /// The DNS names, normalized.
    names: Vec<String>,
}

impl Peer {
    fn of(
        e: Option<HEndpoint<'_>>,
        ip: Option<&Cow<'_, str>>,
        port: Option<u16>,
        names: Vec<Cow<'_, str>>,
        line: &str,
        seen: &mut Seen,
    ) -> Self {
        let e = e.unwrap_or_default();
        Self {
            ip: ip.and_then(|s| s.parse().ok()),
            port,
            identity: e.identity,
            namespace: e
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .map(|n| seen.name(n)),
            labels: e.labels.map(|raw| {
                let offset = (raw.get().as_ptr() as usize).saturating_sub(line.as_ptr() as usize);
                (seen.list(raw.get()), offset)
            }),
            pod: e
                .pod_name
                .as_deref()
                .filter(|n| !n.is_empty())
                .map(|n| seen.name(n)),
            workload: e.workloads.first().map(|w| seen.workload(&w.kind, &w.name)),
            names: names
                .iter()
                .map(|n| crate::objects::fqdn::normalize(n))
                .collect(),
        }
    }
}

/// Decode one line of a Hubble export, `text`, a slice of `chunk`. Needs no reader: this is
/// the part of reading that runs apart from identifying and judging.
pub(super) fn decode(chunk: &str, text: &str, seen: &mut Seen) -> Result<Decoded, FlowError> {
    let expected = "a Hubble flow (`hubble observe -o jsonpb` or `-o json`)";
    let parsed: Line = serde_json::from_str(text).map_err(|e| json_error(&e, expected))?;
    let flow = match parsed {
        Line {
            flow: Some(flow), ..
        } => flow,
        Line {
            node_status: Some(_),
            ..
        } => return Ok(Decoded::Skipped("node_status")),
        Line {
            lost_events: Some(_),
            ..
        } => return Ok(Decoded::Skipped("lost_events")),
        // A bare Flow.
        Line { .. } => serde_json::from_str::<HFlow>(text).map_err(|e| json_error(&e, expected))?,
    };
    if flow.ip.is_none() && flow.l4.is_none() && flow.source.is_none() {
        return Ok(Decoded::Skipped("no flow"));
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
    let node = flow.node_name.map(|n| match n {
        Cow::Borrowed(b) => Text::span(b.rsplit('/').next().unwrap_or(b), chunk),
        Cow::Owned(o) => Text::Owned(Box::from(o.rsplit('/').next().unwrap_or(&o))),
    });
    let source = Peer::of(
        flow.source,
        ip.source.as_ref(),
        ports.as_ref().and_then(|p| p.source_port),
        flow.source_names,
        text,
        seen,
    );
    let destination = Peer::of(
        flow.destination,
        ip.destination.as_ref(),
        ports.as_ref().and_then(|p| p.destination_port),
        flow.destination_names,
        text,
        seen,
    );
    let flags = ports.and_then(|p| p.flags).unwrap_or_default();
    Ok(Decoded::Flow(Parsed {
        time: flow.time.map(|t| Text::of(t, chunk)),
        verdict: flow.verdict.as_deref().map(|v| seen.name(v)),
        proto,
        icmp_type,
        reply: flow.is_reply.or(flow.reply),
        syn: flags.SYN,
        ack: flags.ACK,
        node,
        source,
        destination,
    }))
}

/// The flow of a decoded line of `chunk`, its peers identified.
pub(super) fn flow(
    reader: &mut Reader<'_>,
    chunk: &str,
    parsed: &Parsed,
) -> Result<Flow, FlowError> {
    let node = parsed.node.as_ref().map(|n| n.get(chunk));
    let src = endpoint(reader, &parsed.source, node)?;
    let dst = endpoint(reader, &parsed.destination, node)?;
    Ok(Flow {
        index: 0,
        line: 0,
        time: parsed
            .time
            .as_ref()
            .filter(|_| reader.keep_times)
            .map(|t| t.get(chunk).to_owned()),
        proto: parsed.proto,
        src,
        dst,
        icmp_type: parsed.icmp_type,
        reply: parsed.reply,
        syn: parsed.syn,
        ack: parsed.ack,
        packets: 1,
        bytes: 0,
        connections: 1,
        observed: parsed.verdict.and_then(|v| reader.numbered(v)),
        service: None,
        hairpin: false,
        node: node.map(|n| reader.text(n)),
    })
}

fn endpoint(reader: &mut Reader<'_>, e: &Peer, node: Option<&str>) -> Result<Endpoint, FlowError> {
    let ip = e.ip;
    let mut out = Endpoint {
        port: e.port,
        namespace: e.namespace.and_then(|n| reader.numbered(n)),
        pod: e.pod.and_then(|n| reader.numbered(n)),
        workload: e.workload.and_then(|n| reader.numbered(n)),
        ..Endpoint::default()
    };
    let inventory = reader.inventory;
    let listed = match e.labels {
        Some((list, offset)) => reader.numbered_labels(list, |raw| {
            let texts: Vec<Cow<'_, str>> = serde_json::from_str(raw).map_err(|err| {
                // The column in the line, not in the list.
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
                Some(node) => reader.node_labels(&labels, node),
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
        out.peer.names.clone_from(&e.names);
    }
    Ok(out)
}
