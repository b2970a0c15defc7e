//! Flow records: netpol's own JSON lines format, and Hubble's exports.
//!
//! ```text
//! JSONL (netpol | hubble -o json | hubble -o jsonpb) ──read (auto-detect, per line)──> Flow
//! Flow + Inventory ──peers (identity labels, IP, DNS names)──> eval::Query
//! ```
//!
//! # netpol flow JSONL
//!
//! One JSON object per line; `netpol-observer` writes it and `netpol verify --flows` reads it.
//! Field reference (also in the README):
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `time` | RFC 3339 string | when the flow was (last) seen — required |
//! | `first_seen` | RFC 3339 string | first packet, for aggregated records |
//! | `protocol` | `tcp` `udp` `sctp` `icmp` `icmpv6` or a protocol number | required |
//! | `source`, `destination` | endpoint | required, see below |
//! | `icmp` | `{type, code}` | ICMP type and code |
//! | `reply` | bool | the record is the reply direction of a connection (default `false`) |
//! | `tcp_flags` | list of `SYN` `SYN-ACK` `ACK` `PSH` `URG` `FIN` `RST` | TCP flags seen (informational: `reply` says the direction) |
//! | `packets`, `bytes`, `connections` | integers | counters (default 0, 0, 1) |
//! | `reply_packets`, `reply_bytes` | integers | of `packets`/`bytes`, those the destination sent back (per-connection records) |
//! | `tcp_state` | `attempted` `refused` `established` `closed` `reset` `midstream` | a TCP connection's state as last seen (per-connection records; informational) |
//!
//! An endpoint has `ip`, `port`, and what is known of it: a pod (`namespace`, `pod`,
//! `workload` such as `Deployment/sonarr`, `labels` (the pod's Kubernetes labels),
//! `service_account`, `namespace_labels`, `node`), or an `entity` (`world`, `host`,
//! `remote-node`, `kube-apiserver`, `health`, `ingress`, `unmanaged`, `init`), plus `names`:
//! the DNS names the IP was resolved from.
//!
//! # The inventory
//!
//! [`inventory`] is the universe flows are resolved against (pods, Services, namespaces,
//! nodes from `kubectl … -o json`). This folder stands on [`crate::engine`] (identities, the
//! protocol types) and implements the engine's cluster traits for the inventory.

mod hubble;
pub mod inventory;
pub mod universe;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::engine::identity::{self, Label, Labels, Peer, Reserved};
use crate::flow::inventory::{Backend, Inventory};
use crate::objects::Proto;

/// One end of a flow, with what a report shows about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    pub peer: Peer,
    pub port: Option<u16>,
    pub namespace: Option<Arc<str>>,
    pub pod: Option<Arc<str>>,
    pub workload: Option<Arc<str>>,
    /// A reserved identity's name (`world`, `host`, …) when the endpoint is not a pod.
    pub entity: Option<Arc<str>>,
    /// The host-network pod a node address stands for (`monitoring/DaemonSet/node-exporter`),
    /// found by the port it listens on.
    pub host_pod: Option<Arc<str>>,
}

impl Endpoint {
    /// How reports name the endpoint: `media/Deployment/sonarr`, `world (api.thetvdb.com)`.
    pub fn display(&self) -> String {
        if let Some(ns) = &self.namespace {
            if let Some(w) = &self.workload {
                return format!("{ns}/{w}");
            }
            if let Some(p) = &self.pod {
                return format!("{ns}/{}", workload_of_pod(p));
            }
            // Labels only: the usual application labels name it.
            for key in ["app.kubernetes.io/name", "app", "k8s-app", "name"] {
                if let Some(v) = self.peer.labels.get(Some("k8s"), key) {
                    return format!("{ns}/{key}={v}");
                }
            }
            return format!("{ns}/(unknown pod)");
        }
        let what = self.entity.as_deref().unwrap_or("world").to_owned();
        if let Some(pod) = &self.host_pod {
            return format!("{what} ({pod}, host network)");
        }
        match (self.peer.names.first(), self.peer.ip) {
            (Some(name), _) => format!("{what} ({name})"),
            (None, Some(ip)) if what == "world" => format!("world ({ip})"),
            _ => what,
        }
    }
}

/// How reports name a peer that is no pod: its reserved identity, `kube-apiserver` first (an
/// API server on a node carries the node's label too).
fn entity_name(labels: &Labels) -> Option<&str> {
    if labels.reserved(Reserved::KubeApiserver.key()) {
        return Some(Reserved::KubeApiserver.key());
    }
    labels
        .iter()
        .find(|l| l.source == "reserved")
        .map(|l| l.key.as_str())
}

/// The workload part of a pod name when nothing better is known: `web-7f9c6d5b4-8m2lp` →
/// `web` (Deployment pods: ReplicaSet hash and pod suffix), `node-agent-x7k2p` → `node-agent`
/// (DaemonSet and Job pods). StatefulSet pods (`db-0`) keep their name.
pub fn workload_of_pod(pod: &str) -> &str {
    let alnum = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    let is_suffix = |s: &str, lens: &[usize]| {
        lens.contains(&s.len())
            && alnum(s)
            && (lens == [5] || s.bytes().any(|b| b.is_ascii_digit()))
    };
    let Some((rest, last)) = pod.rsplit_once('-') else {
        return pod;
    };
    if !is_suffix(last, &[5]) {
        return pod;
    }
    match rest.rsplit_once('-') {
        Some((base, hash)) if is_suffix(hash, &[8, 9, 10]) => base,
        _ => rest,
    }
}

/// The first port of Linux's default ephemeral range (`net.ipv4.ip_local_port_range`): clients
/// connect from here and above.
pub const EPHEMERAL_PORTS: u16 = 32768;

/// The TCP flags a netpol record may list. `SYN` is the initiator's SYN, `SYN-ACK` the
/// responder's answer (what the observer writes); the others are informational. The direction
/// of a record is its `reply` field, never its flags.
pub const TCP_FLAGS: &[&str] = &["SYN", "SYN-ACK", "ACK", "PSH", "URG", "FIN", "RST"];

/// A label set and the container ports a workload manifest gives its pods.
type TemplatePorts = (Arc<Labels>, Arc<Vec<identity::NamedPort>>);

/// One flow record, normalized from any input format.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flow {
    /// 0-based position among the flow records of the input.
    pub index: usize,
    /// 1-based line in the input.
    pub line: usize,
    pub time: Option<String>,
    pub proto: Option<Proto>,
    pub src: Endpoint,
    pub dst: Endpoint,
    /// ICMP type, for ICMP flows.
    pub icmp_type: Option<u8>,
    /// `Some(true)`: reply direction; `None`: unknown.
    pub reply: Option<bool>,
    pub syn: bool,
    pub ack: bool,
    pub packets: u64,
    pub bytes: u64,
    pub connections: u64,
    /// What the input says happened (Hubble `verdict`), for comparison.
    pub observed: Option<Arc<str>>,
    /// The destination was a Service address, translated to a backend: `shop/web 10.96.0.20:80`.
    pub service: Option<String>,
    /// The Service's backend is the source itself (hairpin).
    pub hairpin: bool,
    /// The node that recorded the flow: Hubble's `node_name`; for netpol records the source's
    /// `node`, else the destination's.
    pub node: Option<Arc<str>>,
}

impl Flow {
    /// The destination port, or the ICMP type.
    pub fn port(&self) -> u16 {
        match self.proto {
            Some(p) if p.is_icmp() => self.icmp_type.map_or(0, u16::from),
            _ => self.dst.port.unwrap_or(0),
        }
    }

    /// Whether this record is the reply direction of a connection (docs/semantics.md §10.1
    /// step 1). What the input says always wins: netpol records always say it (`reply`), Hubble
    /// says it with `is_reply`. Only a per-packet record that leaves it out is read from its
    /// packet: a TCP SYN is a request and a SYN-ACK a reply; otherwise a packet from a port
    /// below the ephemeral range to one in it ([`EPHEMERAL_PORTS`]) is a reply (a server
    /// answering its client), anything else a request.
    pub fn is_reply(&self) -> bool {
        if let Some(reply) = self.reply {
            return reply;
        }
        if self.proto == Some(Proto::Tcp) && self.syn {
            return self.ack;
        }
        let ports = matches!(self.proto, Some(Proto::Tcp | Proto::Udp | Proto::Sctp));
        match (self.src.port, self.dst.port) {
            (Some(src), Some(dst)) if ports => src < EPHEMERAL_PORTS && dst >= EPHEMERAL_PORTS,
            _ => false,
        }
    }
}

/// An input problem, at a line of a flow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowError {
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub help: String,
}

/// The flows of an input, and what was skipped.
#[derive(Debug, Clone, Default)]
pub struct FlowSet {
    /// The flows read, with [`Reader::read_all`] (none with [`Reader::read_each`]).
    pub flows: Vec<Flow>,
    /// Flow records read (each one's [`Flow::index`] is its position among them).
    pub count: usize,
    /// Lines that are not flows (Hubble `node_status`, `lost_events`, …), by kind.
    pub skipped: BTreeMap<String, usize>,
    pub format: Option<Format>,
    pub errors: Vec<FlowError>,
    pub bytes: u64,
}

/// The input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Netpol,
    Hubble,
}

/// How many errors are kept; more are counted.
const MAX_ERRORS: usize = 50;

/// A node's identity as read, and with its Node's labels.
type NodeLabels = (Arc<Labels>, Arc<Labels>);

/// A label set and the texts it was read from.
type Interned = (Vec<Box<str>>, Arc<Labels>);

/// Reads flows line by line, interning label sets.
#[derive(Debug)]
pub struct Reader<'i> {
    pub inventory: Option<&'i Inventory>,
    /// Label sets by the hash of their texts (collisions resolved by comparing).
    labels: rustc_hash::FxHashMap<u64, Vec<Interned>>,
    /// What the numbers of the chunks' decoder stand for.
    numbered: Numbered,
    /// Names of namespaces, pods, workloads…: one allocation each, however many flows.
    strings: rustc_hash::FxHashSet<Arc<str>>,
    pub set: FlowSet,
    pub error_count: usize,
    /// The agents' identity label filter, when the `labels` setting adds entries: applied to
    /// the pod labels of netpol records (Hubble's labels are already filtered by the agent).
    pub label_filter: Option<crate::engine::settings::LabelFilter>,
    /// Keep each Hubble flow's `time` (only reports that list flows show it).
    pub keep_times: bool,
    /// A node's identity with its Node labels, by the address of the identity read and the
    /// node's name (found once, however many flows the node has); the identity read is kept
    /// beside it, so that its address stays its own.
    with_node_labels: rustc_hash::FxHashMap<(usize, &'i str), NodeLabels>,
    /// The local cluster's name, for identities netpol builds from pod labels.
    cluster: Arc<str>,
    /// Container ports from the workload manifests, by label set (the label set is kept so
    /// that its address, the key, stays unique).
    template_ports: rustc_hash::FxHashMap<usize, Option<TemplatePorts>>,
}

impl<'i> Reader<'i> {
    /// A reader of flows of the cluster named `cluster`, resolved against `inventory`.
    pub fn new(inventory: Option<&'i Inventory>, cluster: &str) -> Self {
        Self {
            inventory,
            cluster: Arc::from(cluster),
            template_ports: rustc_hash::FxHashMap::default(),
            labels: rustc_hash::FxHashMap::default(),
            numbered: Numbered::default(),
            strings: rustc_hash::FxHashSet::default(),
            set: FlowSet::default(),
            error_count: 0,
            label_filter: None,
            keep_times: true,
            with_node_labels: rustc_hash::FxHashMap::default(),
        }
    }

    /// Read every line of `input` into [`FlowSet::flows`]; `progress` is called with the
    /// bytes read so far.
    pub fn read_all(
        &mut self,
        input: &mut dyn BufRead,
        progress: &mut dyn FnMut(u64),
    ) -> std::io::Result<()> {
        let mut flows = std::mem::take(&mut self.set.flows);
        let read = self.read_each(input, progress, &mut |flow| flows.push(flow));
        self.set.flows = flows;
        read
    }

    /// Read every line of `input`, handing each flow to `each` as soon as it is read and
    /// keeping none: memory stays bounded by what `each` keeps, however long the input.
    pub fn read_each(
        &mut self,
        input: &mut dyn BufRead,
        progress: &mut dyn FnMut(u64),
        each: &mut dyn FnMut(Flow),
    ) -> std::io::Result<()> {
        let mut decoder = Decoder::new(self.set.format);
        let mut spare = None;
        while let Some(chunk) = decoder.next(input, spare.take())? {
            self.take(&chunk, progress, each);
            spare = Some(chunk);
        }
        progress(self.set.bytes);
        Ok(())
    }

    /// The flows of a chunk of decoded lines (chunks in the order [`Decoder::next`] made
    /// them), each handed to `each`; `progress` is called with the bytes read so far now and
    /// then.
    pub fn take(
        &mut self,
        chunk: &Chunk,
        progress: &mut dyn FnMut(u64),
        each: &mut dyn FnMut(Flow),
    ) {
        if self.set.format.is_none() {
            self.set.format = chunk.format;
        }
        if self.numbered.decoder != chunk.decoder {
            self.numbered = Numbered {
                decoder: chunk.decoder,
                ..Numbered::default()
            };
        }
        for name in &chunk.names {
            let shared = self.text(name);
            self.numbered.names.push(shared);
        }
        self.numbered.lists.extend(chunk.lists.iter().cloned());
        self.numbered.labels.resize(self.numbered.lists.len(), None);
        let mut start = 0;
        for (number, line) in (chunk.first_line..).zip(&chunk.lines) {
            self.set.bytes += (line.end - start) as u64;
            start = line.end;
            if number % 65_536 == 0 {
                progress(self.set.bytes);
            }
            let text = chunk.text.get(line.text.0..line.text.1).unwrap_or_default();
            if let Some(flow) = self.read_line(number, &chunk.text, text, &line.decoded) {
                each(flow);
            }
        }
    }

    fn error(&mut self, e: FlowError) {
        self.error_count += 1;
        if self.set.errors.len() < MAX_ERRORS {
            self.set.errors.push(e);
        }
    }

    /// One line of input, kept in [`FlowSet::flows`].
    pub fn line(&mut self, number: usize, text: &str) {
        let mut decoder = Decoder::new(self.set.format);
        let chunk = decoder.single(number, text);
        let mut flows = std::mem::take(&mut self.set.flows);
        // One line given by the caller is no input read: its bytes are not counted.
        let bytes = self.set.bytes;
        self.take(&chunk, &mut |_| {}, &mut |flow| flows.push(flow));
        self.set.bytes = bytes;
        self.set.flows = flows;
    }

    /// One decoded line of input (`text`, in `chunk`): its flow, if it is one (errors and
    /// skipped lines are counted).
    fn read_line(
        &mut self,
        number: usize,
        chunk: &str,
        text: &str,
        decoded: &Result<Decoded, FlowError>,
    ) -> Option<Flow> {
        let result = match decoded {
            Ok(Decoded::Empty) => return None,
            Ok(Decoded::Netpol) => self.netpol_line(text),
            Ok(Decoded::Hubble(hubble::Decoded::Flow(parsed))) => {
                hubble::flow(self, chunk, parsed).map(Some)
            }
            Ok(Decoded::Hubble(hubble::Decoded::Skipped(kind))) => {
                *self.set.skipped.entry((*kind).to_owned()).or_default() += 1;
                Ok(None)
            }
            Err(e) => Err(e.clone()),
        };
        match result {
            Ok(Some(mut flow)) => {
                self.translate_service(&mut flow);
                let proto = flow.proto;
                self.host_network_pod(&mut flow.src, proto);
                self.host_network_pod(&mut flow.dst, proto);
                self.template_ports(&mut flow.src);
                self.template_ports(&mut flow.dst);
                flow.index = self.set.count;
                flow.line = number;
                self.set.count += 1;
                Some(flow)
            }
            Ok(None) => None,
            Err(e) => {
                self.error(FlowError { line: number, ..e });
                None
            }
        }
    }

    /// Name the host-network pod a node address stands for, by the port it listens on.
    fn host_network_pod(&mut self, e: &mut Endpoint, proto: Option<Proto>) {
        let (Some(inv), Some(ip), Some(port), Some(proto)) =
            (self.inventory, e.peer.ip, e.port, proto)
        else {
            return;
        };
        if e.host_pod.is_some() || !e.peer.is_node() {
            return;
        }
        if let Some(pod) = inv.host_network_pod(ip, port, proto) {
            e.host_pod = Some(self.text(&format!("{}/{}", pod.namespace, pod.workload)));
        }
    }

    /// The container ports of a pod that no live inventory describes, from the workload
    /// manifest whose selector its labels satisfy (once per label set).
    fn template_ports(&mut self, e: &mut Endpoint) {
        let (Some(inv), Some(ns)) = (self.inventory, &e.namespace) else {
            return;
        };
        if !e.peer.named_ports.is_empty() || inv.templates.is_empty() {
            return;
        }
        let key = Arc::as_ptr(&e.peer.labels) as usize;
        let ports = self
            .template_ports
            .entry(key)
            .or_insert_with(|| {
                inv.template_of(ns, &e.peer.labels)
                    .map(|t| (e.peer.labels.clone(), t.pod.ports.clone()))
            })
            .as_ref()
            .map(|(_, ports)| ports.clone());
        if let Some(ports) = ports {
            e.peer.named_ports = ports;
        }
    }

    /// Replace a Service cluster IP destination by a backend pod and its target port.
    fn translate_service(&mut self, flow: &mut Flow) {
        let (Some(inv), Some(ip), Some(proto)) = (self.inventory, flow.dst.peer.ip, flow.proto)
        else {
            return;
        };
        if !flow.dst.peer.is_world() {
            return;
        }
        let Some((svc, backend, port)) = inv.service_backend(ip, flow.dst.port, proto) else {
            return;
        };
        flow.service = Some(match flow.dst.port {
            Some(p) => format!("{}/{} {ip}:{p}", svc.namespace, svc.name),
            None => format!("{}/{} {ip}", svc.namespace, svc.name),
        });
        // The source's node tells `host` from `remote-node` for a node address.
        let src_node = match (&flow.src.namespace, &flow.src.pod) {
            (Some(ns), Some(src)) => inv.pod(ns, src).and_then(|p| p.node.as_deref()),
            _ => None,
        };
        flow.dst = match backend {
            // A host-network backend has its node's identity (`host` on the source's node,
            // else `remote-node`), not a pod's.
            Backend::Pod(pod) if pod.host_network => {
                let mut e = self.address_endpoint(inv, pod.ips.first().copied(), src_node, port);
                e.host_pod = Some(self.text(&format!("{}/{}", pod.namespace, pod.workload)));
                e
            }
            Backend::Pod(pod) => {
                let mut peer = inv.pod_peer(pod);
                peer.ip = pod.ips.first().copied();
                flow.hairpin = flow.src.peer.ip.is_some_and(|ip| pod.ips.contains(&ip));
                Endpoint {
                    peer,
                    port,
                    namespace: Some(self.text(&pod.namespace)),
                    pod: Some(self.text(&pod.name)),
                    workload: Some(self.text(&pod.workload)),
                    entity: None,
                    host_pod: None,
                }
            }
            Backend::Address(address) => self.address_endpoint(inv, Some(address), src_node, port),
        };
    }

    /// The endpoint an address stands for, seen from a source on `node`: a node (`host` or
    /// `remote-node`), the API server, else world.
    fn address_endpoint(
        &mut self,
        inv: &Inventory,
        address: Option<IpAddr>,
        node: Option<&str>,
        port: Option<u16>,
    ) -> Endpoint {
        let peer = address
            .and_then(|ip| inv.classify(ip, node))
            .unwrap_or_else(|| Peer {
                labels: Arc::new(Reserved::World.labels()),
                ip: address,
                ..Peer::default()
            });
        let entity = entity_name(&peer.labels).map(str::to_owned);
        Endpoint {
            peer,
            port,
            entity: entity.map(|e| self.text(&e)),
            ..Endpoint::default()
        }
    }

    /// A label set read as texts, built once per distinct list of texts.
    fn intern<T: AsRef<str>>(
        &mut self,
        texts: &[T],
        build: impl FnOnce() -> Labels,
    ) -> Arc<Labels> {
        use std::hash::{Hash, Hasher};
        let mut h = rustc_hash::FxHasher::default();
        for t in texts {
            t.as_ref().hash(&mut h);
        }
        let key = h.finish();
        let same = |k: &Vec<Box<str>>| {
            k.len() == texts.len() && k.iter().zip(texts).all(|(a, b)| **a == *b.as_ref())
        };
        if let Some((_, l)) = self
            .labels
            .get(&key)
            .and_then(|b| b.iter().find(|(k, _)| same(k)))
        {
            return l.clone();
        }
        let labels = Arc::new(build());
        let stored: Vec<Box<str>> = texts.iter().map(|t| Box::from(t.as_ref())).collect();
        self.labels
            .entry(key)
            .or_default()
            .push((stored, labels.clone()));
        labels
    }

    /// The name numbered `n` by the decoder.
    fn numbered(&self, n: usize) -> Option<Arc<str>> {
        self.numbered.names.get(n).cloned()
    }

    /// The label set of a Hubble endpoint's `labels` list, by the number of its JSON text
    /// (`None`: an empty list): `texts` reads the list until it has been read without error.
    fn numbered_labels(
        &mut self,
        n: usize,
        texts: impl for<'t> FnOnce(&'t str) -> Result<Vec<std::borrow::Cow<'t, str>>, FlowError>,
    ) -> Result<Option<Arc<Labels>>, FlowError> {
        if let Some(Some(labels)) = self.numbered.labels.get(n) {
            return Ok(labels.clone());
        }
        let raw = self.numbered.lists.get(n).cloned().unwrap_or_default();
        let texts = texts(&raw)?;
        let labels = if texts.is_empty() {
            None
        } else {
            let cluster = self.cluster.clone();
            Some(self.intern(&texts, || hubble_labels(&texts, &cluster)))
        };
        if let Some(slot) = self.numbered.labels.get_mut(n) {
            *slot = Some(labels.clone());
        }
        Ok(labels)
    }

    /// `labels` of a node's address with the labels of its Node, `node` (see
    /// [`Inventory::with_node_labels`]).
    pub(super) fn node_labels(&mut self, labels: &Arc<Labels>, node: &'i str) -> Arc<Labels> {
        let key = (Arc::as_ptr(labels) as usize, node);
        if let Some((_, found)) = self.with_node_labels.get(&key) {
            return found.clone();
        }
        let Some(inv) = self.inventory else {
            return labels.clone();
        };
        let texts = [format!("\0node={node}"), labels.to_string()];
        let found = self.intern(&texts, || inv.with_node_labels(labels, node));
        // INVARIANT: the address is a key only while its label set lives: kept in the value.
        self.with_node_labels
            .insert(key, (labels.clone(), found.clone()));
        found
    }

    /// A shared copy of a name.
    pub fn text(&mut self, s: &str) -> Arc<str> {
        if let Some(t) = self.strings.get(s) {
            return t.clone();
        }
        let t: Arc<str> = Arc::from(s);
        self.strings.insert(t.clone());
        t
    }

    fn netpol_line(&mut self, text: &str) -> Result<Option<Flow>, FlowError> {
        let record: Record = serde_json::from_str(text).map_err(|e| {
            json_error(
                &e,
                "a netpol flow record: see the flow format in the README",
            )
        })?;
        let proto = Proto::parse(&record.protocol).ok_or_else(|| FlowError {
            line: 0,
            column: 1,
            message: format!("unknown protocol `{}`", record.protocol),
            help: "use `tcp`, `udp`, `sctp`, `icmp`, `icmpv6` or a protocol number".to_owned(),
        })?;
        if let Some(unknown) = record
            .tcp_flags
            .iter()
            .find(|f| !TCP_FLAGS.iter().any(|known| known.eq_ignore_ascii_case(f)))
        {
            return Err(FlowError {
                line: 0,
                column: 1,
                message: format!("unknown TCP flag `{unknown}`"),
                help: format!(
                    "`tcp_flags` lists {}; the direction of a record is `reply`, not its flags",
                    TCP_FLAGS.join(", ")
                ),
            });
        }
        let src_node = record.source.node.clone();
        let dst_node = record.destination.node.clone();
        let src = self.netpol_endpoint(record.source, dst_node.as_deref())?;
        let dst = self.netpol_endpoint(record.destination, src_node.as_deref())?;
        let flag = |f: &str| record.tcp_flags.iter().any(|x| x.eq_ignore_ascii_case(f));
        Ok(Some(Flow {
            index: 0,
            line: 0,
            time: Some(record.time),
            proto: Some(proto),
            src,
            dst,
            icmp_type: record.icmp.map(|i| i.kind),
            reply: Some(record.reply),
            syn: flag("SYN"),
            ack: flag("ACK"),
            packets: record.packets,
            bytes: record.bytes,
            connections: record.connections,
            observed: None,
            service: None,
            hairpin: false,
            node: src_node.or(dst_node).map(|n| self.text(&n)),
        }))
    }

    fn netpol_endpoint(
        &mut self,
        e: RecordEndpoint,
        other_node: Option<&str>,
    ) -> Result<Endpoint, FlowError> {
        let ip = match &e.ip {
            Some(text) => Some(text.parse::<IpAddr>().map_err(|_| FlowError {
                line: 0,
                column: 1,
                message: format!("invalid IP address `{text}`"),
                help: "write an IPv4 or IPv6 address such as `10.42.0.12`".to_owned(),
            })?),
            None => None,
        };
        let names: Vec<String> = e
            .names
            .iter()
            .map(|n| crate::objects::fqdn::normalize(n))
            .collect();
        let mut out = Endpoint {
            port: e.port,
            namespace: e.namespace.as_deref().map(|t| self.text(t)),
            pod: e.pod.as_deref().map(|t| self.text(t)),
            workload: e.workload.as_deref().map(|t| self.text(t)),
            entity: e.entity.as_deref().map(|t| self.text(t)),
            ..Endpoint::default()
        };
        let labels = if let Some(entity) = &e.entity {
            let Some(r) = Reserved::parse(entity) else {
                return Err(FlowError {
                    line: 0,
                    column: 1,
                    message: format!("unknown entity `{entity}`"),
                    help: "use one of `world`, `host`, `remote-node`, `kube-apiserver`, `health`, `ingress`, `unmanaged`, `init`".to_owned(),
                });
            };
            let mut labels = r.labels();
            // A node address the inventory knows as the API server's (an endpoint of
            // `default/kubernetes`) carries `kube-apiserver` too, as in Cilium's ipcache.
            if matches!(r, Reserved::Host | Reserved::RemoteNode)
                && ip.is_some_and(|ip| self.inventory.is_some_and(|inv| inv.is_apiserver(ip)))
            {
                labels = if r == Reserved::Host {
                    let mut l = labels;
                    l.insert(Label::new("reserved", Reserved::KubeApiserver.key(), ""));
                    l
                } else {
                    Reserved::KubeApiserver.labels()
                };
            }
            Arc::new(labels)
        } else if let Some(ns) = &e.namespace {
            // A live pod, else the manifest of its workload (`Deployment/sonarr`).
            let inv_pod = match (self.inventory, &e.pod, &e.workload) {
                (Some(inv), Some(pod), _) if inv.pod(ns, pod).is_some() => inv.pod(ns, pod),
                (Some(inv), _, Some(workload)) => inv.template(ns, workload).map(|t| &t.pod),
                _ => None,
            };
            match (&e.labels, inv_pod) {
                (None, Some(pod)) => {
                    out.peer.named_ports = pod.ports.clone();
                    if out.workload.is_none() {
                        out.workload = Some(self.text(&pod.workload));
                    }
                    pod.identity.clone()
                }
                (labels, pod) => {
                    if let Some(pod) = pod {
                        out.peer.named_ports = pod.ports.clone();
                    }
                    let labels = labels.clone().unwrap_or_default();
                    let ns_labels = e.namespace_labels.clone().or_else(|| {
                        self.inventory
                            .and_then(|inv| inv.namespaces.get(ns).cloned())
                    });
                    let mut key: Vec<String> =
                        labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    key.push(format!("\0ns={ns}"));
                    key.push(format!(
                        "\0sa={}",
                        e.service_account.as_deref().unwrap_or("")
                    ));
                    for (k, v) in ns_labels.iter().flatten() {
                        key.push(format!("\0nsl={k}={v}"));
                    }
                    let sa = e.service_account.clone();
                    let cluster = self.cluster.clone();
                    let filter = self.label_filter.clone();
                    self.intern(&key, || {
                        identity::filtered_pod_labels(
                            ns,
                            &labels,
                            sa.as_deref(),
                            ns_labels.as_ref(),
                            &cluster,
                            filter.as_ref(),
                        )
                    })
                }
            }
        } else if let Some(ip) = ip {
            match self.inventory.and_then(|inv| inv.classify(ip, other_node)) {
                Some(peer) => {
                    out.peer.named_ports = peer.named_ports.clone();
                    if let Some(pod) = self.inventory.and_then(|inv| inv.pod_by_ip(ip)) {
                        out.namespace = Some(self.text(&pod.namespace));
                        out.pod = Some(self.text(&pod.name));
                        out.workload = Some(self.text(&pod.workload));
                    } else if let Some(entity) = entity_name(&peer.labels) {
                        out.entity = Some(self.text(entity));
                    }
                    peer.labels
                }
                None => Arc::new(Reserved::World.labels()),
            }
        } else {
            return Err(FlowError {
                line: 0,
                column: 1,
                message: "an endpoint needs `ip`, `namespace` or `entity`".to_owned(),
                help: "say who the endpoint is: a pod (`namespace`, `pod`, `labels`), an `entity`, or at least its `ip`".to_owned(),
            });
        };
        out.peer.labels = labels;
        out.peer.ip = ip;
        if out.peer.is_world() {
            out.peer.names = names;
        }
        Ok(out)
    }
}

/// How many bytes of whole lines a [`Chunk`] holds (the last line may take it past).
const CHUNK_BYTES: usize = 1 << 20;

/// Whole lines of input, decoded as far as they can be without a [`Reader`] (JSON syntax and
/// types, the format): the part of reading that can run on a thread of its own, while
/// [`Reader::take`] identifies the peers and hands on the flows.
#[derive(Debug)]
pub struct Chunk {
    text: String,
    /// The 1-based number of the first line.
    first_line: usize,
    lines: Vec<ChunkLine>,
    /// The input's format, once a line has told it.
    format: Option<Format>,
    /// The decoder that made the chunk ([`Decoder::serial`]).
    decoder: u64,
    /// Names and label lists first seen in this chunk, in the order numbered.
    names: Vec<Box<str>>,
    lists: Vec<Box<str>>,
}

#[derive(Debug)]
struct ChunkLine {
    /// Where the line ends in the chunk, newline included.
    end: usize,
    /// The line without the white space around it.
    text: (usize, usize),
    /// `line` 0 in errors: the reader numbers them.
    decoded: Result<Decoded, FlowError>,
}

#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "almost every line is a flow, and chunks reuse their lines' storage"
)]
enum Decoded {
    Empty,
    /// A netpol record, read by the reader (its endpoints are few and small).
    Netpol,
    Hubble(hubble::Decoded),
}

/// Splits input into [`Chunk`]s of decoded lines, detecting the format on the first line.
#[derive(Debug)]
pub struct Decoder {
    format: Option<Format>,
    lines: usize,
    /// Tells this decoder's numbers from another's.
    serial: u64,
    seen: Seen,
}

/// Names (namespaces, pods, workloads, verdicts) and label lists, numbered in the order first
/// seen: the thread that decodes hashes their texts, the reader finds them by number.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    names: rustc_hash::FxHashMap<Box<str>, usize>,
    lists: rustc_hash::FxHashMap<Box<str>, usize>,
    /// First seen since the last chunk.
    fresh_names: Vec<Box<str>>,
    fresh_lists: Vec<Box<str>>,
    scratch: String,
}

impl Seen {
    fn number(
        map: &mut rustc_hash::FxHashMap<Box<str>, usize>,
        fresh: &mut Vec<Box<str>>,
        text: &str,
    ) -> usize {
        if let Some(n) = map.get(text) {
            return *n;
        }
        let n = map.len();
        map.insert(Box::from(text), n);
        fresh.push(Box::from(text));
        n
    }

    fn name(&mut self, text: &str) -> usize {
        Self::number(&mut self.names, &mut self.fresh_names, text)
    }

    /// A workload's name, `Deployment/web`.
    fn workload(&mut self, kind: &str, name: &str) -> usize {
        let mut text = std::mem::take(&mut self.scratch);
        text.clear();
        text.push_str(kind);
        text.push('/');
        text.push_str(name);
        let n = self.name(&text);
        self.scratch = text;
        n
    }

    /// A label list, by its JSON text.
    fn list(&mut self, text: &str) -> usize {
        Self::number(&mut self.lists, &mut self.fresh_lists, text)
    }
}

/// What a decoder's numbers stand for, on the reader's side.
#[derive(Debug, Default)]
struct Numbered {
    decoder: u64,
    names: Vec<Arc<str>>,
    lists: Vec<Box<str>>,
    /// The label sets of the lists read (`Some(None)`: empty), `None` until read without error.
    labels: Vec<Option<Option<Arc<Labels>>>>,
}

/// The serial number of the next decoder (0 is no decoder's).
static DECODERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Decoder {
    /// A decoder of an input in `format`, or of a format to detect.
    pub fn new(format: Option<Format>) -> Self {
        Self {
            format,
            lines: 0,
            serial: DECODERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            seen: Seen::default(),
        }
    }

    /// The next chunk of `input`, `None` at its end; `spare`, a chunk done with, lends its
    /// buffers.
    pub fn next(
        &mut self,
        input: &mut dyn BufRead,
        spare: Option<Chunk>,
    ) -> std::io::Result<Option<Chunk>> {
        let (mut bytes, lines) = match spare {
            Some(chunk) => {
                let mut lines = chunk.lines;
                lines.clear();
                let mut bytes = chunk.text.into_bytes();
                bytes.clear();
                (bytes, lines)
            }
            None => (Vec::with_capacity(CHUNK_BYTES + (1 << 12)), Vec::new()),
        };
        while bytes.len() < CHUNK_BYTES {
            if input.read_until(b'\n', &mut bytes)? == 0 {
                break;
            }
        }
        if bytes.is_empty() {
            return Ok(None);
        }
        // `BufRead::read_line`'s error, which this reading replaces.
        let text = String::from_utf8(bytes).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            )
        })?;
        Ok(Some(self.chunk(self.lines + 1, text, lines)))
    }

    /// The lines of `text`, the first of them numbered `first_line`, decoded.
    fn chunk(&mut self, first_line: usize, text: String, mut lines: Vec<ChunkLine>) -> Chunk {
        let mut end = 0;
        for raw in text.split_inclusive('\n') {
            let start = end;
            end += raw.len();
            lines.push(self.line(&text, start, end));
        }
        self.lines = first_line + lines.len() - 1;
        self.finish(first_line, text, lines)
    }

    /// `text` as one line numbered `number`, whatever it holds.
    fn single(&mut self, number: usize, text: &str) -> Chunk {
        let text = text.to_owned();
        let line = self.line(&text, 0, text.len());
        self.finish(number, text, vec![line])
    }

    /// The line `start..end` of `chunk`, decoded.
    fn line(&mut self, chunk: &str, start: usize, end: usize) -> ChunkLine {
        let raw = chunk.get(start..end).unwrap_or_default();
        let trimmed = raw.trim_start();
        let from = start + (raw.len() - trimmed.len());
        let trimmed = trimmed.trim_end();
        ChunkLine {
            end,
            text: (from, from + trimmed.len()),
            decoded: self.decode(chunk, trimmed),
        }
    }

    fn finish(&mut self, first_line: usize, text: String, lines: Vec<ChunkLine>) -> Chunk {
        Chunk {
            first_line,
            lines,
            format: self.format,
            decoder: self.serial,
            names: std::mem::take(&mut self.seen.fresh_names),
            lists: std::mem::take(&mut self.seen.fresh_lists),
            text,
        }
    }

    fn decode(&mut self, chunk: &str, text: &str) -> Result<Decoded, FlowError> {
        if text.is_empty() {
            return Ok(Decoded::Empty);
        }
        let format = match self.format {
            Some(f) => f,
            None => {
                let f = detect(text)?;
                self.format = Some(f);
                f
            }
        };
        match format {
            Format::Netpol => Ok(Decoded::Netpol),
            Format::Hubble => hubble::decode(chunk, text, &mut self.seen).map(Decoded::Hubble),
        }
    }
}

/// Which format a first line is in.
fn detect(text: &str) -> Result<Format, FlowError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        json_error(
            &e,
            "one JSON object per line: netpol flow records or Hubble flows",
        )
    })?;
    let Some(obj) = value.as_object() else {
        return Err(FlowError {
            line: 0,
            column: 1,
            message: "expected a JSON object".to_owned(),
            help: "flow files hold one JSON object per line".to_owned(),
        });
    };
    let hubble = [
        "flow",
        "node_status",
        "lost_events",
        "IP",
        "l4",
        "Type",
        "verdict",
        "event_type",
    ];
    if hubble.iter().any(|k| obj.contains_key(*k)) {
        Ok(Format::Hubble)
    } else if obj.contains_key("protocol") && obj.contains_key("source") {
        Ok(Format::Netpol)
    } else {
        Err(FlowError {
            line: 0,
            column: 1,
            message: "not a flow record: neither netpol's format nor Hubble's".to_owned(),
            help: "give `hubble observe -o jsonpb` output or netpol flow JSONL (`time`, `protocol`, `source`, `destination`)".to_owned(),
        })
    }
}

fn json_error(e: &serde_json::Error, expected: &str) -> FlowError {
    FlowError {
        line: 0,
        column: e.column(),
        message: format!("invalid flow record: {e}"),
        help: format!("expected {expected}"),
    }
}

/// A netpol flow record as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    pub protocol: String,
    pub source: RecordEndpoint,
    pub destination: RecordEndpoint,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp: Option<Icmp>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reply: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp_flags: Vec<String>,
    #[serde(default)]
    pub packets: u64,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default = "one")]
    pub connections: u64,
    /// Of `packets` and `bytes`, those the destination sent back (per-connection records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_packets: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_bytes: Option<u64>,
    /// A TCP connection's state as last seen (per-connection records): `attempted`,
    /// `refused`, `established`, `closed`, `reset` or `midstream`; informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_state: Option<String>,
}

fn one() -> u64 {
    1
}

/// `icmp` of a record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Icmp {
    #[serde(rename = "type")]
    pub kind: u8,
    #[serde(default)]
    pub code: u8,
}

/// One end of a netpol flow record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordEndpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

/// Labels as Hubble prints them, with the cluster label Cilium's pods always carry added when
/// an export left it out (peer selectors require it, docs/semantics.md §3.5): the export is
/// of the local cluster `cluster`.
fn hubble_labels<T: AsRef<str>>(texts: &[T], cluster: &str) -> Labels {
    let mut labels = Labels::new(texts.iter().map(|t| Label::parse(t.as_ref())).collect());
    if labels.namespace().is_some() && !labels.has(Some("k8s"), identity::CLUSTER) {
        labels.insert(Label::new("k8s", identity::CLUSTER, cluster));
    }
    labels
}
