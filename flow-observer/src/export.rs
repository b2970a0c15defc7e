//! What the agent serves on `--listen`: `GET /flows` (netpol flow JSONL; `?since=CURSOR`, the
//! new cursor in the `x-netpol-cursor` header; when the agent started in `x-netpol-agent-start`,
//! RFC 3339 UTC, and its node in `x-netpol-node`), `GET /metrics` (Prometheus text), `GET /healthz`
//! (liveness: the process serves) and `GET /readyz` (readiness: the identity data, and the
//! live audit's policies, have synced once; 503 with the reason until then).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use netpol_compiler::flow::{Icmp, Record};
use netpol_ebpf_common::{Counter, tcp_flags};
use serde::Deserialize;

use crate::aggregate::{self, FlowTable};
use crate::clock::Clock;
use crate::dns::DnsCache;
use crate::health::Health;
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
    /// Keys in the kernel's flow map at the last read, and its size (`--max-flows`).
    pub kernel_flows: (u64, u32),
    pub audit: Option<crate::audit::Audit>,
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
///
/// A task that waits here holds its worker thread: on the agent's multi-thread runtime the
/// worker first hands its other tasks (the probes among them) to another thread, so a long
/// `/flows` or refresh holding the lock delays only the tasks that need it.
pub fn lock(s: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    match s.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => {
            let wait = || s.lock().unwrap_or_else(PoisonError::into_inner);
            let multi_thread = tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
            if multi_thread {
                tokio::task::block_in_place(wait)
            } else {
                wait()
            }
        }
    }
}

/// What the handlers share: the agent's state (behind the lock) and its health (lock-free).
#[derive(Debug, Clone)]
pub struct Served {
    pub state: State_,
    pub health: Arc<Health>,
}

pub fn router(state: State_, health: Arc<Health>) -> Router {
    Router::new()
        .route("/flows", get(flows))
        .route("/metrics", get(metrics))
        // Liveness: reads nothing shared, so no lock holder can delay it.
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(Served { state, health })
}

async fn readyz(State(served): State<Served>) -> impl IntoResponse {
    match served.health.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
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
    record_of(&s.clock, &s.identity, &s.dns, s.now_s, r)
}

/// [`record`] from the parts of [`Shared`] it reads.
pub fn record_of(
    clock: &Clock,
    identity: &Identity,
    dns: &DnsCache,
    now_s: u64,
    r: &aggregate::Record,
) -> Record {
    let end = |ip, captured: Option<&netpol_compiler::flow::RecordEndpoint>, port| match captured {
        // Who the end was when seen, else who the address is now.
        Some(e) => netpol_compiler::flow::RecordEndpoint { port, ..e.clone() },
        None => identity.endpoint(ip, port, dns.names(ip, now_s)),
    };
    let icmp = matches!(r.protocol, 1 | 58);
    let per_connection = r.src_port.is_some();
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
        time: clock.rfc3339(r.last_seen_ns),
        first_seen: Some(clock.rfc3339(r.first_seen_ns)),
        protocol: protocol_name(r.protocol),
        source: end(r.src, r.src_as.as_deref(), r.src_port.filter(|_| !icmp)),
        destination: end(r.dst, r.dst_as.as_deref(), (!icmp).then_some(r.dst_port)),
        icmp: icmp.then(|| Icmp {
            kind: u8::try_from(r.dst_port).unwrap_or(0),
            code: 0,
        }),
        reply: false,
        tcp_flags: flags,
        packets: r.packets,
        bytes: r.bytes,
        connections: r.connections,
        // One connection's record (`--per-connection`) says how much came back and, for TCP,
        // how far the connection got.
        reply_packets: per_connection.then_some(r.reply_packets),
        reply_bytes: per_connection.then_some(r.reply_bytes),
        tcp_state: (per_connection && r.protocol == 6).then(|| tcp_state(r.tcp_flags).to_owned()),
    }
}

/// A TCP connection's state from the flags seen (the initiator's SYN, the responder's
/// SYN-ACK): `attempted` (a SYN, no answer yet), `refused` (a SYN answered by RST),
/// `established`, then `closed` (FIN) or `reset` (RST), or `midstream` (no handshake seen:
/// a capture that began after it).
pub fn tcp_state(flags: u8) -> &'static str {
    let (syn, syn_ack) = (flags & tcp_flags::SYN != 0, flags & tcp_flags::SYN_ACK != 0);
    let (rst, fin) = (flags & tcp_flags::RST != 0, flags & tcp_flags::FIN != 0);
    match (syn, syn_ack) {
        (_, true) if rst => "reset",
        (_, true) if fin => "closed",
        (_, true) => "established",
        (true, false) if rst => "refused",
        (true, false) => "attempted",
        (false, false) => "midstream",
    }
}

/// `/flows` header: when the agent started, RFC 3339 UTC with milliseconds (as record times):
/// it has seen nothing before.
pub const AGENT_START: &str = "x-netpol-agent-start";
/// `/flows` header: the agent's node (`--node`), when it knows it.
pub const AGENT_NODE: &str = "x-netpol-node";

async fn flows(State(served): State<Served>, Query(q): Query<Since>) -> impl IntoResponse {
    // Named under the lock, written out after it.
    let (records, cursor) = {
        let s = lock(&served.state);
        let (records, cursor) = s.table.records_since(q.since);
        let records: Vec<Record> = records.iter().map(|r| record(&s, r)).collect();
        (records, cursor)
    };
    let mut body = String::new();
    for r in &records {
        body.push_str(&serde_json::to_string(r).unwrap_or_default());
        body.push('\n');
    }
    let mut headers = header::HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert(
        header::HeaderName::from_static("x-netpol-cursor"),
        header::HeaderValue::from(cursor),
    );
    if let Ok(start) = header::HeaderValue::from_str(&served.health.started_rfc3339()) {
        headers.insert(header::HeaderName::from_static(AGENT_START), start);
    }
    if let Some(node) = served
        .health
        .node
        .as_deref()
        .and_then(|n| header::HeaderValue::from_str(n).ok())
    {
        headers.insert(header::HeaderName::from_static(AGENT_NODE), node);
    }
    (headers, body)
}

/// The agent's own metrics, from [`Health`] (no lock).
fn health_metrics(out: &mut String, health: &Health, now: tokio::time::Instant) {
    let mut metric = |name: &str, kind: &str, help: &str, series: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in series {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let one = |value: String| [(String::new(), value)];
    metric(
        "netpol_observer_start_time_seconds",
        "gauge",
        "When the agent started, in Unix seconds.",
        &one(format!("{:.3}", health.started_unix_s())),
    );
    metric(
        "netpol_observer_ready",
        "gauge",
        "1 once the identity data (and the live audit's policies) have synced once, as /readyz.",
        &one(u8::from(health.readiness().is_ok()).to_string()),
    );
    let (source, age) = health.identity_age(now);
    metric(
        "netpol_observer_identity_age_seconds",
        "gauge",
        "How old the identity data may be: since the inventory file was loaded (source=file); from the cluster, 0 while every watch works, else since the first failure of a failing one (since the start before the first sync).",
        &[(
            format!("{{source=\"{source}\"}}"),
            format!("{:.3}", age.as_secs_f64()),
        )],
    );
    let errors = health.api_errors();
    if !errors.is_empty() {
        let series: Vec<(String, String)> = errors
            .iter()
            .map(|(resource, n)| {
                (
                    format!("{{resource=\"{}\"}}", escape(resource)),
                    n.to_string(),
                )
            })
            .collect();
        metric(
            "netpol_observer_api_errors_total",
            "counter",
            "Errors of the agent's watches of the Kubernetes API, by resource.",
            &series,
        );
    }
}

async fn metrics(State(served): State<Served>) -> impl IntoResponse {
    let mut out = String::new();
    health_metrics(&mut out, &served.health, tokio::time::Instant::now());
    let s = lock(&served.state);
    let t = s.table.table_stats();
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
    metric(
        "netpol_observer_kernel_flows",
        "gauge",
        "Entries in the kernel's flow map at the last read.",
        s.kernel_flows.0.to_string(),
    );
    #[expect(clippy::cast_precision_loss, reason = "a ratio")]
    let flow_fill = s.kernel_flows.0 as f64 / f64::from(s.kernel_flows.1.max(1));
    metric(
        "netpol_observer_kernel_flow_fill_ratio",
        "gauge",
        "How full the kernel's flow map was at the last read (0 to 1): near 1, its LRU forgets entries the agent has not read (raise --max-flows).",
        format!("{flow_fill:.4}"),
    );
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
            kernel_flows: (0, 16),
            audit: None,
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
            reply_packets: 0,
            reply_bytes: 0,
            connections: 1,
            tcp_flags: flags,
            seq: 1,
            src_as: None,
            dst_as: None,
            settled: false,
            identity_version: 0,
            judged: None,
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

    fn health(identity: crate::health::Source) -> Arc<Health> {
        Arc::new(Health {
            started: std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_773_600),
            started_at: tokio::time::Instant::now(),
            node: Some("n1".to_owned()),
            identity,
            policies: None,
        })
    }

    /// Serve `router` on a local port.
    async fn serve(router: Router) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(axum::serve(listener, router).into_future());
        addr
    }

    /// `(status line, headers, body)`, read on a thread of its own: a client on the runtime
    /// would wait for the workers it is meant to test.
    async fn get(addr: std::net::SocketAddr, path: &'static str) -> (String, String, String) {
        tokio::task::spawn_blocking(move || get_blocking(addr, path))
            .await
            .unwrap()
    }

    fn get_blocking(addr: std::net::SocketAddr, path: &str) -> (String, String, String) {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
        (status.to_owned(), headers.to_owned(), body.to_owned())
    }

    #[tokio::test]
    async fn readyz_says_why_until_the_identity_has_synced() {
        let watches = Arc::new(crate::cluster::Watches::new());
        watches.register("pods");
        let state = Arc::new(Mutex::new(shared()));
        let addr = serve(router(
            state,
            health(crate::health::Source::Watched(watches)),
        ))
        .await;
        let (status, _, body) = get(addr, "/readyz").await;
        assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
        assert_eq!(
            body,
            "not ready: identity: waiting for the first list of pods\n"
        );
        let (status, _, body) = get(addr, "/healthz").await;
        assert_eq!(
            (status.as_str(), body.as_str()),
            ("HTTP/1.1 200 OK", "ok\n")
        );

        let loaded = tokio::time::Instant::now();
        let state = Arc::new(Mutex::new(shared()));
        let addr = serve(router(
            state,
            health(crate::health::Source::File { loaded }),
        ))
        .await;
        let (status, _, body) = get(addr, "/readyz").await;
        assert_eq!(
            (status.as_str(), body.as_str()),
            ("HTTP/1.1 200 OK", "ready\n")
        );
    }

    /// Regression: on one thread, a `/flows` answer holding the lock for 186 ms held up
    /// `/healthz` as long. Here the lock is held for two seconds while `/flows` and `/metrics`
    /// wait for it on both workers; the probes still answer at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn probes_answer_while_the_lock_is_held() {
        let state = Arc::new(Mutex::new(shared()));
        let loaded = tokio::time::Instant::now();
        let addr = serve(router(
            state.clone(),
            health(crate::health::Source::File { loaded }),
        ))
        .await;
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let _guard = lock(&state);
            held_tx.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_secs(2));
        });
        held_rx.recv().unwrap();
        // Everything from here on runs on threads of its own, timed by the wall clock: a
        // stalled runtime cannot stall the measurement.
        let waiting: Vec<_> = ["/flows", "/metrics"]
            .into_iter()
            .map(|path| std::thread::spawn(move || get_blocking(addr, path)))
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let asked = std::time::Instant::now();
        let (status, _, body) = get_blocking(addr, "/healthz");
        let (ready, _, _) = get_blocking(addr, "/readyz");
        let took = asked.elapsed();
        assert_eq!(
            (status.as_str(), body.as_str()),
            ("HTTP/1.1 200 OK", "ok\n")
        );
        assert_eq!(ready, "HTTP/1.1 200 OK");
        assert!(
            took < std::time::Duration::from_millis(500),
            "the probes took {took:?} while the lock was held"
        );
        for w in waiting {
            let (status, _, _) = w.join().unwrap();
            assert_eq!(status, "HTTP/1.1 200 OK");
        }
        holder.join().unwrap();
    }

    #[tokio::test]
    async fn metrics_tell_start_readiness_identity_age_and_api_errors() {
        let watches = Arc::new(crate::cluster::Watches::new());
        let pods = watches.register("pods");
        watches.register("nodes");
        pods.errors
            .fetch_add(3, std::sync::atomic::Ordering::Relaxed);
        let addr = serve(router(
            Arc::new(Mutex::new(shared())),
            health(crate::health::Source::Watched(watches)),
        ))
        .await;
        let (_, _, body) = get(addr, "/metrics").await;
        let lines: Vec<&str> = body.lines().filter(|l| !l.starts_with('#')).collect();
        for expected in [
            "netpol_observer_start_time_seconds 1795773600.000",
            "netpol_observer_ready 0",
            "netpol_observer_api_errors_total{resource=\"pods\"} 3",
            "netpol_observer_api_errors_total{resource=\"nodes\"} 0",
        ] {
            assert!(lines.contains(&expected), "{expected} in\n{body}");
        }
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("netpol_observer_identity_age_seconds{source=\"cluster\"} ")),
            "{body}"
        );
        assert!(body.contains("# TYPE netpol_observer_api_errors_total counter\n"));
        // Still the table's metrics after them.
        assert!(lines.contains(&"netpol_observer_records 0"), "{body}");

        let loaded = tokio::time::Instant::now();
        let addr = serve(router(
            Arc::new(Mutex::new(shared())),
            health(crate::health::Source::File { loaded }),
        ))
        .await;
        let (_, _, body) = get(addr, "/metrics").await;
        assert!(body.contains("\nnetpol_observer_ready 1\n"), "{body}");
        assert!(
            body.contains("\nnetpol_observer_identity_age_seconds{source=\"file\"} "),
            "{body}"
        );
        assert!(
            !body.contains("api_errors"),
            "no watches, no series: {body}"
        );
    }

    #[tokio::test]
    async fn flows_say_when_the_agent_started_and_on_which_node() {
        let loaded = tokio::time::Instant::now();
        let addr = serve(router(
            Arc::new(Mutex::new(shared())),
            health(crate::health::Source::File { loaded }),
        ))
        .await;
        let (status, headers, body) = get(addr, "/flows").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(body.is_empty());
        for expected in [
            "content-type: application/x-ndjson",
            "x-netpol-cursor: 0",
            "x-netpol-agent-start: 2026-11-27T10:00:00.000Z",
            "x-netpol-node: n1",
        ] {
            assert!(
                headers.lines().any(|l| l == expected),
                "{expected} in\n{headers}"
            );
        }
    }
}
