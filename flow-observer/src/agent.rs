//! `netpol-observer run`: attach, read the kernel's events and counters, serve, and detach
//! cleanly on SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use netpol_compiler::engine::settings::Settings;
use netpol_ebpf_common::{DnsEvent, FlowEvent};
use tokio::io::unix::AsyncFd;

use crate::aggregate::{FlowTable, KeyFate};
use crate::clock::Clock;
use crate::dns::DnsCache;
use crate::ebpf::{self, Programs};
use crate::export::{self, Shared, lock};
use crate::health::{Health, Source};
use crate::identity::Identity;

/// The agent's settings.
#[derive(Debug, Clone)]
pub struct Options {
    pub cgroup: Option<PathBuf>,
    pub listen: SocketAddr,
    pub inventory: Option<PathBuf>,
    pub node: Option<String>,
    pub max_flows: u32,
    pub max_records: usize,
    /// Size of each ring buffer, in bytes (a power of two).
    pub ring_bytes: u32,
    pub per_connection: bool,
    pub interval: Duration,
    /// Judge every new record against these policies (live audit).
    pub policies: Option<PathBuf>,
    /// Print one JSON line per new record on stdout (for Loki through Alloy).
    pub log_flows: bool,
    /// Live audit against the policies in the cluster (watched), instead of `policies`.
    pub audit_cluster: bool,
    /// The Cilium cluster name, in the identities of the cluster's pods.
    pub cluster_name: String,
    /// Connections idle this long are forgotten (their records stay).
    pub idle_timeout: Duration,
}

/// Seconds since boot (`/proc/uptime`), for DNS TTLs.
fn uptime_s() -> u64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|t| t.split('.').next().and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

pub async fn run(opts: Options) -> Result<()> {
    let started = std::time::SystemTime::now();
    let started_at = tokio::time::Instant::now();
    let mut inventory_file = opts.inventory.clone().map(InventoryFile::new);
    let inventory = match &mut inventory_file {
        Some(file) => Some(file.load(&opts.cluster_name)?),
        None => None,
    };
    let settings = Settings {
        cluster_name: opts.cluster_name.clone(),
        ..Settings::default()
    };
    let audit = match (&opts.policies, opts.audit_cluster) {
        (Some(dir), _) => Some(crate::audit::Audit::load(
            dir,
            inventory.as_ref(),
            settings,
        )?),
        (None, true) => Some(crate::audit::Audit::empty(settings)),
        (None, false) => None,
    };
    let cgroup = match &opts.cgroup {
        Some(c) => c.clone(),
        None => ebpf::find_cgroup_root()?,
    };
    let mut programs = Programs::attach(&cgroup, opts.max_flows, opts.ring_bytes)?;
    let flow_ring = register(programs.ring("FLOW_EVENTS")?)?;
    let dns_ring = register(programs.ring("DNS_EVENTS")?)?;
    let state = Arc::new(Mutex::new(Shared {
        // A connection is up to four kernel keys (each end, each way), and the keys of the
        // connections let go stay until the next read: the table holds an eighth of the map,
        // and lets connections go (deleting their keys) before the kernel's LRU has to forget
        // entries it has not reported.
        table: FlowTable::new(
            opts.per_connection,
            (opts.max_flows as usize / 8).max(1),
            opts.max_records,
        ),
        dns: DnsCache::new(65_536),
        identity: {
            let mut identity = Identity::new(inventory, opts.node.clone());
            identity.set_local(crate::identity::local_addresses());
            identity
        },
        clock: Clock::calibrate(),
        now_s: uptime_s(),
        kernel: Vec::new(),
        flow_events: 0,
        dns_events: 0,
        ring_bytes: opts.ring_bytes,
        kernel_flows: (0, opts.max_flows),
        audit,
        log: opts
            .log_flows
            .then(|| export::FlowLog::new(opts.max_records)),
    }));
    let watch_policies = opts.audit_cluster && opts.policies.is_none();
    let (watched_identity, watched_policies) = if opts.inventory.is_none() || watch_policies {
        watch_cluster(
            &state,
            opts.inventory.is_none(),
            watch_policies,
            &opts.cluster_name,
        )
        .await
    } else {
        (None, None)
    };
    // The files were loaded before the programs were attached: their age counts from the start.
    let file = Source::File { loaded: started_at };
    let health = Arc::new(Health {
        started,
        started_at,
        node: opts.node.clone(),
        identity: watched_identity.unwrap_or_else(|| file.clone()),
        policies: match (&opts.policies, watched_policies) {
            (Some(_), _) => Some(file),
            (None, watched) => watched,
        },
    });
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    eprintln!(
        "netpol-observer: attached to {}, serving http://{}/flows",
        cgroup.display(),
        listener.local_addr().unwrap_or(opts.listen)
    );
    let server =
        tokio::spawn(axum::serve(listener, export::router(state.clone(), health)).into_future());
    let flows_task = tokio::spawn(read_flow_events(flow_ring, state.clone()));
    let dns_task = tokio::spawn(read_dns_events(dns_ring, state.clone()));
    let mut tick = tokio::time::interval(opts.interval);
    // Addresses come and go (a VIP moves, an interface is added): read them again now and then.
    let mut addresses = tokio::time::interval(Duration::from_secs(10));
    // An inventory file rewritten (by a sidecar, by hand) is read again.
    let mut reread = tokio::time::interval(Duration::from_secs(1));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tick.tick() => refresh(&mut programs, &state, opts.idle_timeout),
            _ = addresses.tick() => {
                let local = crate::identity::local_addresses();
                lock(&state).identity.set_local(local);
            }
            _ = reread.tick() => {
                if let Some(file) = &mut inventory_file
                    && file.changed()
                {
                    match file.load(&opts.cluster_name) {
                        Ok(inventory) => {
                            lock(&state).identity.set_inventory(inventory);
                            eprintln!("netpol-observer: read `{}` again", file.path.display());
                        }
                        Err(e) => eprintln!("netpol-observer: {e:#}; the previous inventory stays"),
                    }
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    server.abort();
    flows_task.abort();
    dns_task.abort();
    // Dropping the programs detaches them from the cgroup.
    drop(programs);
    eprintln!("netpol-observer: detached, exiting");
    Ok(())
}

/// `--inventory`: the file, and the modification time it was last read at.
#[derive(Debug)]
struct InventoryFile {
    path: PathBuf,
    read: Option<std::time::SystemTime>,
}

impl InventoryFile {
    fn new(path: PathBuf) -> Self {
        Self { path, read: None }
    }

    fn modified(&self) -> Option<std::time::SystemTime> {
        std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok()
    }

    /// Whether the file changed since it was last read (a file gone is no change).
    fn changed(&self) -> bool {
        self.modified().is_some_and(|m| Some(m) != self.read)
    }

    fn load(&mut self, cluster_name: &str) -> Result<netpol_compiler::flow::inventory::Inventory> {
        let modified = self.modified();
        let path = &self.path;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        // Marked read even if broken: one complaint per change, not one per second.
        self.read = modified;
        netpol_compiler::flow::inventory::Inventory::parse(&text, cluster_name).map_err(|e| {
            anyhow::anyhow!("{}:{}:{}: {}", path.display(), e.line, e.column, e.message)
        })
    }
}

/// From the cluster (in-cluster config or kubeconfig): the identity index (without
/// `--inventory`) and the policies of the live audit (`--audit-cluster`). Returns where each
/// of the two asked for comes from: their watches, or why there is no API.
async fn watch_cluster(
    state: &Arc<Mutex<Shared>>,
    identity: bool,
    policies: bool,
    cluster_name: &str,
) -> (Option<Source>, Option<Source>) {
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(e) => {
            let why = crate::cluster::api_error(&e);
            eprintln!(
                "netpol-observer: no Kubernetes API ({why}); addresses stay unnamed (run in the cluster, or give --inventory)"
            );
            let unavailable = || Source::Unavailable(why.clone());
            return (identity.then(unavailable), policies.then(unavailable));
        }
    };
    let debounce = Duration::from_millis(500);
    let mut sources = (None, None);
    if identity {
        let changed = Arc::new(crate::cluster::Watches::new());
        sources.0 = Some(Source::Watched(changed.clone()));
        let (stores, run) = crate::cluster::watch(&client, changed.clone());
        tokio::spawn(run);
        let state = state.clone();
        tokio::spawn(crate::cluster::publish(
            stores,
            cluster_name.to_owned(),
            changed,
            debounce,
            move |inventory| {
                lock(&state).identity.set_inventory(inventory);
            },
        ));
        eprintln!("netpol-observer: watching pods, services, nodes and namespaces");
    }
    if policies {
        let changed = Arc::new(crate::cluster::Watches::new());
        sources.1 = Some(Source::Watched(changed.clone()));
        let (stores, run) = crate::cluster::watch_policies(&client, changed.clone());
        tokio::spawn(run);
        let state = state.clone();
        tokio::spawn(crate::cluster::debounced(changed, debounce, move || {
            let documents = stores.documents();
            let mut s = lock(&state);
            let Shared {
                audit, identity, ..
            } = &mut *s;
            if let Some(audit) = audit
                && let Err(e) = audit.reload(documents, identity.inventory.as_ref())
            {
                eprintln!("netpol-observer: {e:#}");
            }
        }));
        eprintln!("netpol-observer: live audit against the cluster's policies");
    }
    sources
}

/// A ring buffer, readable with tokio.
#[expect(
    unsafe_code,
    reason = "tokio's fd registration is unsafe since tokio#8587"
)]
fn register(ring: RingBuf<MapData>) -> Result<AsyncFd<RingBuf<MapData>>> {
    // SAFETY: the ring buffer owns its file descriptor (aya's `MapData` holds an `OwnedFd`) and
    // the `AsyncFd` owns the ring buffer, so the descriptor stays open exactly as long as it is
    // registered, and nothing else closes or replaces it.
    unsafe { AsyncFd::register(ring) }
        .map_err(|e| anyhow::anyhow!("cannot watch a ring buffer: {}", e.into_parts().1))
}

/// Read the kernel's flow counts and counters into the table; delete the keys of the
/// connections the table let go since the last read (counted one last time here).
fn refresh(programs: &mut Programs, state: &Mutex<Shared>, idle: Duration) {
    let counters = programs.counters();
    let mut s = lock(state);
    s.now_s = uptime_s();
    let now = s.now_s;
    let Shared {
        table,
        identity,
        dns,
        kernel,
        kernel_flows,
        ..
    } = &mut *s;
    // Keys the table does not know yet are opened oldest first: the map is read in hash order,
    // and a connection is the initiator's way round only if its first packet opens it.
    let mut unknown = Vec::new();
    let mut delete = Vec::new();
    table.begin_scan();
    let mut keys = 0u64;
    let scanned = programs.for_each_flow(|key, stats| {
        keys += 1;
        if table.knows(key) {
            if table.update(key, stats, &|ip| identity.who(ip)) == KeyFate::Delete {
                delete.push(*key);
            }
        } else {
            unknown.push((*key, *stats));
        }
    });
    unknown.sort_by_key(|(_, stats)| stats.first_seen_ns);
    for (key, stats) in &unknown {
        if table.update(key, stats, &|ip| identity.who(ip)) == KeyFate::Delete {
            delete.push(*key);
        }
    }
    // Only after a whole read: a drained connection's keys not seen were evicted already.
    if scanned.is_ok() {
        // Their last counts, read as they are deleted.
        match programs.take_flows(&delete) {
            Ok(taken) => {
                for (key, stats) in &taken {
                    let _ = table.update(key, stats, &|ip| identity.who(ip));
                }
            }
            Err(e) => eprintln!("netpol-observer: {e:#}"),
        }
        table.end_scan();
        kernel_flows.0 = keys;
    }
    if let Ok(c) = counters {
        *kernel = c;
    }
    let now_ns = now.saturating_mul(1_000_000_000);
    table.settle(now_ns, &mut |ip| identity.resolve(ip, dns.names(ip, now)));
    dns.expire(now);
    // Kernel stamps are boot-time nanoseconds, like `now` (seconds since boot).
    let idle_ns = u64::try_from(idle.as_nanos()).unwrap_or(u64::MAX);
    table.expire(now.saturating_mul(1_000_000_000).saturating_sub(idle_ns));
    table.trim();
    audit(&mut s);
    log_new_flows(&mut s);
}

/// `--log-flows`: each record once, when it first appears.
fn log_new_flows(s: &mut Shared) {
    let Some(log) = &s.log else { return };
    let (records, cursor) = s.table.records_since(log.cursor);
    let lines: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            let record = export::record(s, r);
            let key = format!(
                "{}|{}|{:?}|{}|{:?}",
                record.protocol, r.src, r.src_port, r.dst, r.dst_port
            );
            (key, serde_json::to_string(&record).unwrap_or_default())
        })
        .collect();
    if let Some(log) = &mut s.log {
        log.cursor = cursor;
        let mut out = std::io::stdout().lock();
        for (key, line) in lines {
            if log.first_time(key) {
                let _ = std::io::Write::write_all(&mut out, line.as_bytes());
                let _ = std::io::Write::write_all(&mut out, b"\n");
            }
        }
        let _ = std::io::Write::flush(&mut out);
    }
}

/// Judge what has not been judged with the current policies and ends; log new would-be drops.
fn audit(s: &mut Shared) {
    let Shared {
        table,
        audit,
        identity,
        dns,
        clock,
        now_s,
        ..
    } = s;
    let Some(audit) = audit else { return };
    let generation = audit.generation;
    let mut pending: Vec<&mut crate::aggregate::Record> = table.unjudged(generation).collect();
    if pending.is_empty() {
        return;
    }
    let records: Vec<netpol_compiler::flow::Record> = pending
        .iter()
        .map(|r| export::record_of(clock, identity, dns, *now_s, r))
        .collect();
    let previous: Vec<_> = pending
        .iter()
        .map(|r| r.judged.map(|j| j.verdict))
        .collect();
    let (verdicts, logs) = audit.judge(&records, &previous, identity.inventory.as_ref());
    for (r, verdict) in pending.iter_mut().zip(verdicts) {
        if let Some(verdict) = verdict {
            r.judged = Some(crate::aggregate::Judged {
                policies: generation,
                identity: r.identity_version,
                verdict,
            });
        }
    }
    for line in logs {
        eprintln!("{line}");
    }
}

async fn read_flow_events(mut ring: AsyncFd<RingBuf<MapData>>, state: Arc<Mutex<Shared>>) {
    loop {
        let Ok(mut guard) = ring.readable_mut().await else {
            return;
        };
        let events: Vec<FlowEvent> = {
            let rb = guard.get_inner_mut();
            let mut v = Vec::new();
            while let Some(item) = rb.next() {
                if let Some(e) = FlowEvent::from_bytes(&item) {
                    v.push(e);
                }
            }
            // CPUs reserve ring space independently: the oldest first packet opens first.
            v.sort_by_key(|e| e.first_seen_ns);
            v
        };
        guard.clear_ready();
        let mut s = lock(&state);
        let Shared {
            table,
            identity,
            flow_events,
            ..
        } = &mut *s;
        for e in &events {
            *flow_events += 1;
            table.new_key(&e.key, e.first_seen_ns, e.tcp_flags, &|ip| identity.who(ip));
        }
    }
}

async fn read_dns_events(mut ring: AsyncFd<RingBuf<MapData>>, state: Arc<Mutex<Shared>>) {
    loop {
        let Ok(mut guard) = ring.readable_mut().await else {
            return;
        };
        let messages: Vec<Vec<u8>> = {
            let rb = guard.get_inner_mut();
            let mut v = Vec::new();
            while let Some(item) = rb.next() {
                if let Some(e) = DnsEvent::from_bytes(&item) {
                    v.push(e.message().to_vec());
                }
            }
            v
        };
        guard.clear_ready();
        let mut s = lock(&state);
        let now = uptime_s();
        for m in &messages {
            s.dns_events += 1;
            s.dns.learn(m, now);
        }
    }
}
