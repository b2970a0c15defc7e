//! What the agent serves on `--listen`: `GET /flows` (netpol flow JSONL; `?since=CURSOR`, the
//! new cursor in the `x-netpol-cursor` header), `GET /metrics` (Prometheus text) and
//! `GET /healthz`.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use netpol_compiler::flow::{Icmp, Record};
use netpol_ebpf_common::{Counter, tcp_flags};
use serde::Deserialize;

use crate::aggregate::{self, FlowTable};
use crate::clock::Clock;
use crate::dns::DnsCache;
use crate::identity::Identity;

/// Everything the agent knows, shared by its tasks.
#[derive(Debug)]
pub struct Shared {
    pub table: FlowTable,
    pub dns: DnsCache,
    pub identity: Identity,
    pub clock: Clock,
    /// Seconds since boot, for DNS TTLs.
    pub now_s: u64,
    pub kernel: Vec<(Counter, u64)>,
    pub flow_events: u64,
    pub dns_events: u64,
    /// Size of the new-flow ring buffer, for its fill ratio.
    pub ring_bytes: u32,
    pub audit: Option<crate::audit::Audit>,
    /// Records judged up to this cursor.
    pub audit_cursor: u64,
    /// `--log-flows`.
    pub log: Option<FlowLog>,
}

/// What `--log-flows` has printed: each record once (bounded: past twice the record bound the
/// memory is reset, and a record may be printed again).
#[derive(Debug, Default)]
pub struct FlowLog {
    pub cursor: u64,
    seen: rustc_hash::FxHashSet<String>,
    max: usize,
}

impl FlowLog {
    pub fn new(max_records: usize) -> Self {
        Self {
            cursor: 0,
            seen: rustc_hash::FxHashSet::default(),
            max: max_records.saturating_mul(2).max(1),
        }
    }

    /// Whether this record is printed for the first time.
    pub fn first_time(&mut self, key: String) -> bool {
        if self.seen.len() >= self.max {
            self.seen.clear();
        }
        self.seen.insert(key)
    }
}

pub type State_ = Arc<Mutex<Shared>>;

/// The lock, whatever a panicking holder left behind (the data are counters and caches).
pub fn lock(s: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn router(state: State_) -> Router {
    Router::new()
        .route("/flows", get(flows))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
struct Since {
    #[serde(default)]
    since: u64,
}

fn protocol_name(p: u8) -> String {
    match p {
        6 => "tcp".to_owned(),
        17 => "udp".to_owned(),
        132 => "sctp".to_owned(),
        1 => "icmp".to_owned(),
        58 => "icmpv6".to_owned(),
        n => n.to_string(),
    }
}

/// A table record as a netpol flow record.
pub fn record(s: &Shared, r: &aggregate::Record) -> Record {
    let icmp = matches!(r.protocol, 1 | 58);
    let flags = [
        (tcp_flags::SYN, "SYN"),
        (tcp_flags::SYN_ACK, "SYN-ACK"),
        (tcp_flags::RST, "RST"),
        (tcp_flags::FIN, "FIN"),
    ]
    .iter()
    .filter(|(bit, _)| r.tcp_flags & bit != 0)
    .map(|(_, n)| (*n).to_owned())
    .collect();
    Record {
        time: s.clock.rfc3339(r.last_seen_ns),
        first_seen: Some(s.clock.rfc3339(r.first_seen_ns)),
        protocol: protocol_name(r.protocol),
        source: end(s, r.src, r.src_as.as_deref(), r.src_port.filter(|_| !icmp)),
        destination: end(s, r.dst, r.dst_as.as_deref(), (!icmp).then_some(r.dst_port)),
        icmp: icmp.then(|| Icmp {
            kind: u8::try_from(r.dst_port).unwrap_or(0),
            code: 0,
        }),
        reply: false,
        tcp_flags: flags,
        packets: r.packets,
        bytes: r.bytes,
        connections: r.connections,
    }
}

/// A record's end: who it was when seen, else who the address is now.
fn end(
    s: &Shared,
    ip: std::net::IpAddr,
    captured: Option<&netpol_compiler::flow::RecordEndpoint>,
    port: Option<u16>,
) -> netpol_compiler::flow::RecordEndpoint {
    match captured {
        Some(e) => netpol_compiler::flow::RecordEndpoint { port, ..e.clone() },
        None => s.identity.endpoint(ip, port, s.dns.names(ip, s.now_s)),
    }
}

async fn flows(State(state): State<State_>, Query(q): Query<Since>) -> impl IntoResponse {
    let s = lock(&state);
    let (records, cursor) = s.table.records_since(q.since);
    let mut body = String::new();
    for r in &records {
        body.push_str(&serde_json::to_string(&record(&s, r)).unwrap_or_default());
        body.push('\n');
    }
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_owned()),
            (
                header::HeaderName::from_static("x-netpol-cursor"),
                cursor.to_string(),
            ),
        ],
        body,
    )
}

async fn metrics(State(state): State<State_>) -> impl IntoResponse {
    let s = lock(&state);
    let t = s.table.table_stats();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    metric(
        "netpol_observer_records",
        "gauge",
        "Flow records held.",
        t.records.to_string(),
    );
    metric(
        "netpol_observer_connections",
        "gauge",
        "Connections tracked.",
        t.connections.to_string(),
    );
    metric(
        "netpol_observer_packets_total",
        "counter",
        "Packets counted since the agent started (never decreases: evicted records keep counting here).",
        t.packets.to_string(),
    );
    metric(
        "netpol_observer_bytes_total",
        "counter",
        "Bytes counted since the agent started.",
        t.bytes.to_string(),
    );
    metric(
        "netpol_observer_flow_events_total",
        "counter",
        "New-flow events read from the kernel.",
        s.flow_events.to_string(),
    );
    metric(
        "netpol_observer_dns_events_total",
        "counter",
        "DNS answers read from the kernel.",
        s.dns_events.to_string(),
    );
    metric(
        "netpol_observer_evicted_connections_total",
        "counter",
        "Connections let go because the connection table was full (their kernel entries are deleted; one that continues is not counted again).",
        t.evicted_connections.to_string(),
    );
    metric(
        "netpol_observer_expired_connections_total",
        "counter",
        "Connections let go after the idle timeout.",
        t.expired_connections.to_string(),
    );
    metric(
        "netpol_observer_resumed_connections_total",
        "counter",
        "Connections let go that came back and continued (counted once).",
        t.resumed_connections.to_string(),
    );
    metric(
        "netpol_observer_kernel_recreated_keys_total",
        "counter",
        "Kernel flow entries of live connections evicted by the kernel's LRU map and created again (raise --max-flows if this grows).",
        t.recreated_keys.to_string(),
    );
    metric(
        "netpol_observer_evicted_records_total",
        "counter",
        "Records dropped because the record table was full (--max-records): their flows are no longer served.",
        t.evicted_records.to_string(),
    );
    metric(
        "netpol_observer_dns_cache_entries",
        "gauge",
        "Addresses in the DNS cache.",
        s.dns.len().to_string(),
    );
    for (c, v) in &s.kernel {
        if c.is_level() {
            let name = format!("netpol_observer_kernel_{}", c.name());
            metric(
                &name,
                "gauge",
                "Bytes waiting in a kernel ring buffer when last written.",
                v.to_string(),
            );
        } else {
            let name = format!("netpol_observer_kernel_{}_total", c.name());
            metric(
                &name,
                "counter",
                "Kernel-side counter (lost events, parse failures).",
                v.to_string(),
            );
        }
    }
    if let Some((_, pending)) = s
        .kernel
        .iter()
        .find(|(c, _)| *c == Counter::FlowRingPending)
    {
        #[expect(clippy::cast_precision_loss, reason = "a ratio")]
        let fill = *pending as f64 / f64::from(s.ring_bytes.max(1));
        metric(
            "netpol_observer_flow_ring_fill_ratio",
            "gauge",
            "How full the new-flow ring buffer was when last written (0 to 1).",
            format!("{fill:.4}"),
        );
    }
    if let Some(audit) = &s.audit {
        let _ = writeln!(
            out,
            "# HELP netpol_flow_verdicts_total Flow records judged against the policies (live audit).\n# TYPE netpol_flow_verdicts_total counter"
        );
        for ((verdict, ns, workload, at), n) in &audit.verdicts {
            let _ = writeln!(
                out,
                "netpol_flow_verdicts_total{{verdict=\"{verdict}\",source_namespace=\"{}\",source_workload=\"{}\",dropped_at=\"{at}\"}} {n}",
                escape(ns),
                escape(workload)
            );
        }
        let _ = writeln!(
            out,
            "# HELP netpol_policies Policies the live audit judges against.\n# TYPE netpol_policies gauge\nnetpol_policies {}",
            audit.policies
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// A Prometheus label value.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    //! The contract between the two halves of netpol: every kind of record the observer
    //! writes is read by `netpol verify` (the same reader) with the direction and meaning the
    //! observer gave it.
    #![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

    use netpol_compiler::engine::settings::DEFAULT_CLUSTER;
    use netpol_compiler::flow::Reader;
    use netpol_compiler::flow::inventory::Inventory;
    use netpol_compiler::objects::Proto;

    use super::*;

    const INVENTORY: &str = r#"{"apiVersion":"v1","kind":"List","items":[
 {"kind":"Pod","metadata":{"name":"sonarr-5d8f7c9b6-x2kq9","namespace":"media","labels":{"app.kubernetes.io/name":"sonarr"},
   "ownerReferences":[{"kind":"ReplicaSet","name":"sonarr-5d8f7c9b6","controller":true}]},
  "spec":{"serviceAccountName":"sonarr","nodeName":"n1","containers":[{"name":"app"}]},
  "status":{"podIP":"10.42.0.12","podIPs":[{"ip":"10.42.0.12"},{"ip":"fd00:42::12"}]}},
 {"kind":"Pod","metadata":{"name":"arr-postgres-1","namespace":"databases","labels":{"cnpg.io/cluster":"arr-postgres"}},
  "spec":{"nodeName":"n2","containers":[{"name":"postgres"}]},
  "status":{"podIP":"10.42.1.9","podIPs":[{"ip":"10.42.1.9"},{"ip":"fd00:42:1::9"}]}},
 {"kind":"Node","metadata":{"name":"n2"},"status":{"addresses":[{"type":"InternalIP","address":"192.168.1.12"}]}}]}"#;

    fn shared() -> Shared {
        Shared {
            table: FlowTable::new(true, 16, 16),
            dns: DnsCache::new(16),
            identity: Identity::new(
                Some(Inventory::parse(INVENTORY, DEFAULT_CLUSTER).unwrap()),
                Some("n1".to_owned()),
            ),
            clock: Clock::calibrate(),
            now_s: 0,
            kernel: Vec::new(),
            flow_events: 0,
            dns_events: 0,
            ring_bytes: 4096,
            audit: None,
            audit_cursor: 0,
            log: None,
        }
    }

    fn table_record(
        protocol: u8,
        (src, src_port): (&str, Option<u16>),
        (dst, dst_port): (&str, u16),
        flags: u8,
    ) -> aggregate::Record {
        aggregate::Record {
            protocol,
            src: src.parse().unwrap(),
            src_port,
            dst: dst.parse().unwrap(),
            dst_port,
            first_seen_ns: 1,
            last_seen_ns: 2,
            packets: 4,
            bytes: 400,
            connections: 1,
            tcp_flags: flags,
            seq: 1,
            src_as: None,
            dst_as: None,
            settled: false,
        }
    }

    #[test]
    fn every_record_kind_is_read_back_as_the_observer_meant_it() {
        let s = shared();
        let sonarr = "10.42.0.12";
        let postgres = "10.42.1.9";
        // (what, table record, protocol, destination shown, port or ICMP type)
        let kinds = [
            (
                "TCP connection, established and closed",
                table_record(
                    6,
                    (sonarr, Some(43122)),
                    (postgres, 5432),
                    tcp_flags::SYN | tcp_flags::SYN_ACK | tcp_flags::FIN,
                ),
                Proto::Tcp,
                "databases/Pod/arr-postgres-1",
                5432,
            ),
            (
                "TCP connection refused",
                table_record(
                    6,
                    (sonarr, None),
                    (postgres, 5433),
                    tcp_flags::SYN | tcp_flags::RST,
                ),
                Proto::Tcp,
                "databases/Pod/arr-postgres-1",
                5433,
            ),
            (
                "UDP request and response",
                table_record(17, (sonarr, None), (postgres, 5300), 0),
                Proto::Udp,
                "databases/Pod/arr-postgres-1",
                5300,
            ),
            (
                "ICMP echo",
                table_record(1, (sonarr, None), (postgres, 8), 0),
                Proto::Icmp,
                "databases/Pod/arr-postgres-1",
                8,
            ),
            (
                "ICMPv6 echo",
                table_record(58, ("fd00:42::12", None), ("fd00:42:1::9", 128), 0),
                Proto::Icmpv6,
                "databases/Pod/arr-postgres-1",
                128,
            ),
            (
                "TCP over IPv6",
                table_record(
                    6,
                    ("fd00:42::12", Some(50000)),
                    ("fd00:42:1::9", 5432),
                    tcp_flags::SYN | tcp_flags::SYN_ACK,
                ),
                Proto::Tcp,
                "databases/Pod/arr-postgres-1",
                5432,
            ),
            (
                "to another node",
                table_record(
                    6,
                    (sonarr, None),
                    ("192.168.1.12", 10250),
                    tcp_flags::SYN | tcp_flags::SYN_ACK,
                ),
                Proto::Tcp,
                "remote-node",
                10250,
            ),
            (
                "to the world",
                table_record(
                    6,
                    (sonarr, None),
                    ("151.101.1.1", 443),
                    tcp_flags::SYN | tcp_flags::SYN_ACK,
                ),
                Proto::Tcp,
                "world (151.101.1.1)",
                443,
            ),
        ];
        for (what, table, proto, destination, port) in kinds {
            let line = serde_json::to_string(&record(&s, &table)).unwrap();
            let mut reader = Reader::new(s.identity.inventory.as_ref(), DEFAULT_CLUSTER);
            reader
                .read_all(&mut format!("{line}\n").as_bytes(), &mut |_| {})
                .unwrap();
            assert!(
                reader.set.errors.is_empty(),
                "{what}: {:?} in {line}",
                reader.set.errors
            );
            let flow = &reader.set.flows[0];
            assert!(!flow.is_reply(), "{what}: read as a reply: {line}");
            assert_eq!(flow.proto, Some(proto), "{what}");
            assert_eq!(flow.port(), port, "{what}");
            assert_eq!(flow.src.peer.ip, Some(table.src), "{what}");
            assert_eq!(flow.dst.peer.ip, Some(table.dst), "{what}");
            assert_eq!(flow.src.display(), "media/Deployment/sonarr", "{what}");
            assert_eq!(flow.dst.display(), destination, "{what}");
            assert_eq!(flow.src.port, table.src_port, "{what}");
            assert_eq!((flow.packets, flow.bytes), (4, 400), "{what}");
        }
    }

    #[test]
    fn a_record_keeps_who_its_ends_were_when_seen() {
        use netpol_ebpf_common::{FlowKey, direction, family, ipv4_mapped};
        let mut s = shared();
        let key = FlowKey {
            src_addr: ipv4_mapped([10, 42, 0, 12]),
            dst_addr: ipv4_mapped([10, 42, 1, 9]),
            cgroup_id: 1,
            src_port: 40000,
            dst_port: 5432,
            protocol: 6,
            direction: direction::EGRESS,
            family: family::IPV4,
            _pad: 0,
        };
        let Shared {
            table,
            identity,
            dns,
            ..
        } = &mut s;
        table.new_key(&key, 1, tcp_flags::SYN, &|ip| identity.who(ip));
        table.settle(2, &mut |ip| identity.resolve(ip, dns.names(ip, 0)));
        // Both pods are deleted, and the source's address goes to a new pod.
        let reused = INVENTORY
            .replace("sonarr-5d8f7c9b6-x2kq9", "radarr-0")
            .replace(
                r#""labels":{"app.kubernetes.io/name":"sonarr"}"#,
                r#""labels":{"app.kubernetes.io/name":"radarr"}"#,
            );
        let reused = reused
            .replace("arr-postgres-1", "gone")
            .replace("10.42.1.9", "10.42.1.99");
        s.identity
            .set_inventory(Inventory::parse(&reused, DEFAULT_CLUSTER).unwrap());
        let (records, _) = s.table.records_since(0);
        let r = record(&s, &records[0]);
        assert_eq!(r.source.pod.as_deref(), Some("sonarr-5d8f7c9b6-x2kq9"));
        assert_eq!(r.source.port, Some(40000));
        assert_eq!(r.destination.pod.as_deref(), Some("arr-postgres-1"));
        assert_eq!(r.destination.port, Some(5432));
        // A record never settled is named as the address is now.
        let fresh = table_record(6, ("10.42.0.12", None), ("10.42.1.9", 5432), 0);
        assert_eq!(record(&s, &fresh).source.pod.as_deref(), Some("radarr-0"));
    }
}
