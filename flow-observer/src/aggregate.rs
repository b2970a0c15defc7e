//! The flow table: kernel flow keys → connections → records, bounded.
//!
//! The kernel counts per (5-tuple, cgroup, direction); one TCP connection between two local
//! pods is four keys (each direction at each end). The table pairs them into one connection,
//! initiated by whoever sent the first packet (a bare SYN wins; a SYN-ACK or ICMP echo reply
//! seen first means the other side initiated), counts packets and bytes at one end only (the
//! cgroup first seen), and folds connections into records: per (source workload, destination,
//! port, protocol), or one per connection with `per_connection`. Connections and records are
//! both bounded; what is evicted is counted.
//!
//! A connection is counted once for its whole life. The kernel's totals per key only grow, so
//! the table counts what each key added since its last read. When the table lets a connection
//! go (idle past the timeout, or evicted), it is *retired*: at the next read of the kernel map
//! its keys are counted one last time and deleted from the map (the agent does that), so a key
//! the kernel still holds is never opened again with its whole history. A retired tuple is
//! remembered (bounded): if it comes back (a keep-alive after a long silence), it is the same
//! connection continuing — its packets count, the connection does not count again. A key the
//! kernel's LRU evicted and re-created starts from zero (its first-seen stamp changes): its new
//! totals are added, never subtracted.

use std::net::IpAddr;
use std::sync::Arc;

use netpol_compiler::flow::RecordEndpoint;
use netpol_ebpf_common::{FlowKey, FlowStats, tcp_flags};
use rustc_hash::FxHashMap;

const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// A connection's address: `(protocol, initiator ip, initiator port, responder ip, port)`;
/// for ICMP the ports are `(0, request type)`.
pub type Tuple = (u8, IpAddr, u16, IpAddr, u16);

/// Who an address is, as far as aggregation is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Who {
    /// A pod: `namespace/workload`.
    Workload(String),
    /// Anything else, by address.
    Ip(IpAddr),
}

/// One aggregated record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub protocol: u8,
    pub src: IpAddr,
    /// Only kept per connection (ephemeral otherwise).
    pub src_port: Option<u16>,
    pub dst: IpAddr,
    /// Destination port, or the ICMP type.
    pub dst_port: u16,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    pub packets: u64,
    pub bytes: u64,
    /// Of `packets` and `bytes`, those the responder sent.
    pub reply_packets: u64,
    pub reply_bytes: u64,
    pub connections: u64,
    pub tcp_flags: u8,
    /// Changes whenever the record does: `/flows?since=` serves records above a cursor.
    pub seq: u64,
    /// Who the source and the destination were when the record was seen (without ports),
    /// from [`FlowTable::settle`]; `None` until then.
    pub src_as: Option<Arc<RecordEndpoint>>,
    pub dst_as: Option<Arc<RecordEndpoint>>,
    /// Both ends are known for good (pods or nodes), or the record is too old to learn more.
    pub settled: bool,
    /// Changes when `src_as` or `dst_as` does.
    pub identity_version: u32,
    /// The live audit's verdict: under which policy generation, for which identity version.
    pub judged: Option<Judged>,
}

/// A record's verdict in the live audit, and what it was judged with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judged {
    pub policies: u32,
    pub identity: u32,
    pub verdict: crate::audit::Verdict,
}

/// How long a record's unknown ends are asked again: the watch may lag a new pod, a DNS
/// answer may be read after the connection it named.
pub const SETTLE_NS: u64 = 60_000_000_000;

/// Counting one direction of a connection at its home cgroup: from which hook (a packet
/// between two sockets of one cgroup passes egress and ingress: egress wins), and the
/// kernel's totals last read.
#[derive(Debug, Clone, Copy, Default)]
struct DirCount {
    /// 0: none yet; else `direction::* + 1` of the counting hook.
    source: u8,
    /// The kernel entry's creation stamp: another one means the entry was evicted and created
    /// again, its totals starting from zero.
    kernel_first_ns: u64,
    seen: Seen,
}

/// A connection: small, because there are many (the tuple is the map's key).
#[derive(Debug, Clone)]
struct Conn {
    home_cgroup: u64,
    /// Index of its record in [`FlowTable::records`].
    record: u32,
    last_seen_ns: u64,
    /// Initiator → responder, responder → initiator.
    dirs: [DirCount; 2],
    /// Its record was evicted: nothing more is counted for it.
    orphan: bool,
    /// TCP flags seen each way (initiator → responder, back): a connection with a FIN each
    /// way, or a RST, is over and cannot come back (a new SYN is a new connection).
    flags: [u8; 2],
}

impl Conn {
    fn closed(&self) -> bool {
        let [there, back] = self.flags;
        (there | back) & tcp_flags::RST != 0
            || (there & tcp_flags::FIN != 0 && back & tcp_flags::FIN != 0)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    packets: u64,
    bytes: u64,
}

type RecordKey = (u8, Who, Option<u16>, Who, u16);

/// Counters of the table, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStats {
    pub connections: usize,
    pub records: usize,
    pub evicted_connections: u64,
    pub evicted_records: u64,
    /// Connections let go after `--idle-timeout-s` without a packet.
    pub expired_connections: u64,
    /// Retired connections that came back and continued (not counted as new connections).
    pub resumed_connections: u64,
    /// Kernel entries of live connections found re-created (evicted by the kernel's LRU).
    pub recreated_keys: u64,
    /// Every packet and byte counted since the start: only ever goes up, whatever is evicted.
    pub packets: u64,
    pub bytes: u64,
}

/// What the caller does with a kernel key after [`FlowTable::update`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum KeyFate {
    /// Keep it: its connection is live.
    Keep,
    /// Delete it from the kernel map: its connection is retired and has been counted.
    Delete,
}

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Live,
    /// Let go since the current read of the kernel map began: its keys are deleted at the next.
    Retired,
    /// Let go before the current read began: counted a last time, its keys deleted.
    Draining,
}

/// The bounded flow table.
#[derive(Debug)]
pub struct FlowTable {
    per_connection: bool,
    max_connections: usize,
    max_records: usize,
    conns: FxHashMap<Tuple, Conn>,
    /// Connections let go since the last read of the kernel map began.
    retired: FxHashMap<Tuple, Conn>,
    /// Connections let go before the current read began, counted one last time in it.
    draining: FxHashMap<Tuple, Conn>,
    /// Connections retired and deleted from the kernel, oldest first (bounded by
    /// `max_connections`): one that comes back continues where it stopped.
    gone: FxHashMap<Tuple, (u64, Conn)>,
    /// Oldest first, with the stamp each was remembered under: an entry resumed and let go
    /// again is remembered anew, and its older place in the queue forgets nothing.
    gone_order: std::collections::VecDeque<(Tuple, u64)>,
    gone_stamp: u64,
    /// Records by slot; freed slots are reused.
    records: Vec<Option<Record>>,
    free: Vec<u32>,
    by_key: FxHashMap<RecordKey, u32>,
    seq: u64,
    pub stats: TableStats,
}

fn is_icmp(p: u8) -> bool {
    p == ICMP || p == ICMPV6
}

/// Echo reply (v4 0, v6 129) → the request type; other types stand for themselves.
fn icmp_request(p: u8, kind: u16) -> u16 {
    match (p, kind) {
        (ICMP, 0) => 8,
        (ICMPV6, 129) => 128,
        (_, k) => k,
    }
}

fn is_icmp_reply(p: u8, kind: u16) -> bool {
    matches!((p, kind), (ICMP, 0) | (ICMPV6, 129))
}

/// The connection tuples a kernel key may belong to: as the key goes, and reversed.
fn tuples(key: &FlowKey) -> (Tuple, Tuple) {
    tuples_of(
        key.protocol,
        key.src_ip(),
        key.src_port,
        key.dst_ip(),
        key.dst_port,
    )
}

/// The connection tuples of a packet (or kernel key) going from `src` to `dst`: as it goes,
/// and reversed. For ICMP `dst_port` is the type.
fn tuples_of(p: u8, src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16) -> (Tuple, Tuple) {
    if is_icmp(p) {
        let kind = icmp_request(p, dst_port);
        ((p, src, 0, dst, kind), (p, dst, 0, src, kind))
    } else {
        (
            (p, src, src_port, dst, dst_port),
            (p, dst, dst_port, src, src_port),
        )
    }
}

/// One packet as a capture file shows it: the table's source-neutral input (the kernel's
/// keys come with their totals instead, [`FlowTable::update`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub protocol: u8,
    pub src: IpAddr,
    pub src_port: u16,
    pub dst: IpAddr,
    /// Destination port, or the ICMP type.
    pub dst_port: u16,
    /// The IP packet's length (headers included), as the kernel counts `skb->len`.
    pub bytes: u32,
    /// [`tcp_flags`] bits of this packet.
    pub tcp_flags: u8,
    pub time_ns: u64,
}

/// How [`FlowTable::packet`] tells one connection from the next on the same tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketRules {
    /// A UDP/ICMP/SCTP exchange silent this long is over: the next packet opens another.
    /// A TCP connection silent this long, then a new SYN, is another one too.
    pub idle_ns: u64,
}

impl FlowTable {
    pub fn new(per_connection: bool, max_connections: usize, max_records: usize) -> Self {
        Self {
            per_connection,
            max_connections,
            max_records,
            conns: FxHashMap::default(),
            retired: FxHashMap::default(),
            draining: FxHashMap::default(),
            gone: FxHashMap::default(),
            gone_order: std::collections::VecDeque::new(),
            gone_stamp: 0,
            records: Vec::new(),
            free: Vec::new(),
            by_key: FxHashMap::default(),
            seq: 0,
            stats: TableStats::default(),
        }
    }

    /// Whether a kernel key belongs to a connection the table holds (live or retired).
    pub fn knows(&self, key: &FlowKey) -> bool {
        self.find(key).is_some()
    }

    /// The connection a key belongs to, whether the key goes the initiator's way, and where
    /// the connection is.
    fn find(&self, key: &FlowKey) -> Option<(Tuple, bool, Place)> {
        let (forward, reverse) = tuples(key);
        for (map, place) in [
            (&self.conns, Place::Live),
            (&self.draining, Place::Draining),
            (&self.retired, Place::Retired),
        ] {
            if map.contains_key(&forward) {
                return Some((forward, true, place));
            }
            if map.contains_key(&reverse) {
                return Some((reverse, false, place));
            }
        }
        None
    }

    /// A new kernel key (from the ring buffer, or found when reading the map). `who` names an
    /// address for aggregation.
    pub fn new_key(
        &mut self,
        key: &FlowKey,
        first_seen_ns: u64,
        flags: u8,
        who: &dyn Fn(IpAddr) -> Who,
    ) {
        if self.find(key).is_some() {
            return;
        }
        let (forward, reverse) = tuples(key);
        let p = key.protocol;
        // A connection the table let go, back: the same one continuing (a key created after
        // its keys were deleted, or one the deletion missed: its kernel stamps say which), at
        // the same home, unless a SYN sent after it went quiet says the tuple is reused.
        for tuple in [forward, reverse] {
            if let Some((_, conn)) = self.gone.remove(&tuple) {
                let reused =
                    p == 6 && flags & tcp_flags::SYN != 0 && first_seen_ns > conn.last_seen_ns;
                if !reused {
                    self.stats.resumed_connections += 1;
                    self.open(tuple, conn.home_cgroup, first_seen_ns, who, Some(conn));
                    return;
                }
            }
        }
        // The first packet seen decides, unless it is visibly an answer.
        let answer = (p == 6 && flags & tcp_flags::SYN_ACK != 0 && flags & tcp_flags::SYN == 0)
            || (is_icmp(p) && is_icmp_reply(p, key.dst_port));
        let tuple = if answer { reverse } else { forward };
        self.open(tuple, key.cgroup_id, first_seen_ns, who, None);
    }

    /// Whether the record in `slot` is still the one a retired connection of `tuple` fed (a
    /// slot is reused once its record is evicted). Only asked in per-connection mode, where
    /// the record is the tuple; aggregated records are found again by their key.
    fn holds(&self, slot: u32, tuple: Tuple) -> bool {
        let (p, a, a_port, b, b_port) = tuple;
        self.per_connection
            && matches!(
                self.records.get(slot as usize),
                Some(Some(r)) if (r.protocol, r.src, r.src_port, r.dst, r.dst_port)
                    == (p, a, Some(a_port), b, b_port)
            )
    }

    /// Open a connection. `resumed`: it is one retired earlier, continuing: it is not counted
    /// as a connection again, keeps what it read of its kernel keys, and feeds its record again
    /// if that is still held.
    fn open(
        &mut self,
        tuple: Tuple,
        cgroup: u64,
        now: u64,
        who: &dyn Fn(IpAddr) -> Who,
        resumed: Option<Conn>,
    ) {
        // The bound is kept after each read of the kernel map ([`FlowTable::trim`]); between
        // reads a burst of new connections may overshoot it, up to twice.
        if self.conns.len() >= self.max_connections.saturating_mul(2) {
            self.evict_connections(self.max_connections / 10);
        }
        let (p, a, a_port, b, b_port) = tuple;
        let key = if self.per_connection {
            (p, Who::Ip(a), Some(a_port), Who::Ip(b), b_port)
        } else {
            (p, who(a), None, who(b), b_port)
        };
        if !self.by_key.contains_key(&key) && self.held() >= self.max_records {
            self.evict_records();
        }
        self.seq += 1;
        let seq = self.seq;
        // One record per connection needs no lookup by key: the connection holds its slot.
        let existing = if self.per_connection {
            resumed
                .as_ref()
                .map(|c| c.record)
                .filter(|slot| self.holds(*slot, tuple))
        } else {
            self.by_key.get(&key).copied()
        };
        let counts_connection = resumed.is_none();
        let (dirs, resumed_flags) =
            resumed.map_or(([DirCount::default(); 2], [0; 2]), |c| (c.dirs, c.flags));
        let slot = match existing {
            Some(slot) => slot,
            None => {
                let record = Record {
                    protocol: p,
                    src: a,
                    src_port: self.per_connection.then_some(a_port),
                    dst: b,
                    dst_port: b_port,
                    first_seen_ns: now,
                    last_seen_ns: now,
                    packets: 0,
                    bytes: 0,
                    reply_packets: 0,
                    reply_bytes: 0,
                    connections: 0,
                    tcp_flags: 0,
                    seq,
                    src_as: None,
                    dst_as: None,
                    settled: false,
                    identity_version: 0,
                    judged: None,
                };
                let slot = match self.free.pop() {
                    Some(slot) => {
                        if let Some(s) = self.records.get_mut(slot as usize) {
                            *s = Some(record);
                        }
                        slot
                    }
                    None => {
                        self.records.push(Some(record));
                        u32::try_from(self.records.len() - 1).unwrap_or(u32::MAX)
                    }
                };
                if !self.per_connection {
                    self.by_key.insert(key, slot);
                }
                slot
            }
        };
        if let Some(Some(r)) = self.records.get_mut(slot as usize) {
            if counts_connection {
                r.connections += 1;
            }
            r.seq = seq;
        }
        self.conns.insert(
            tuple,
            Conn {
                home_cgroup: cgroup,
                record: slot,
                last_seen_ns: now,
                dirs,
                orphan: false,
                flags: resumed_flags,
            },
        );
    }

    /// Counts read from the kernel map for a key, between [`FlowTable::begin_scan`] and
    /// [`FlowTable::end_scan`]. A key of a connection let go before the read began is counted
    /// one last time, and is to be deleted from the map ([`KeyFate::Delete`]).
    pub fn update(
        &mut self,
        key: &FlowKey,
        stats: &FlowStats,
        who: &dyn Fn(IpAddr) -> Who,
    ) -> KeyFate {
        if self.find(key).is_none() {
            self.new_key(key, stats.first_seen_ns, stats.tcp_flags, who);
        }
        let Some((tuple, forward, place)) = self.find(key) else {
            return KeyFate::Keep;
        };
        let (conns, fate) = match place {
            Place::Live => (&mut self.conns, KeyFate::Keep),
            Place::Retired => (&mut self.retired, KeyFate::Keep),
            Place::Draining => (&mut self.draining, KeyFate::Delete),
        };
        let Some(conn) = conns.get_mut(&tuple) else {
            return fate;
        };
        // Flags as the initiator sees the connection: its SYN, the responder's SYN-ACK.
        let flags = if forward {
            stats.tcp_flags & !tcp_flags::SYN_ACK
        } else {
            stats.tcp_flags & !tcp_flags::SYN
        };
        // Packets are counted at one end (the home cgroup), at one hook: a packet between two
        // sockets of that cgroup (loopback, a pod talking to itself) passes egress and ingress.
        let mut added = Seen::default();
        let mut reopened = false;
        let closed = conn.closed();
        if key.cgroup_id == conn.home_cgroup
            && let Some(dir) = conn.dirs.get_mut(usize::from(!forward))
        {
            let hook = key.direction + 1;
            let now = Seen {
                packets: stats.packets,
                bytes: stats.bytes,
            };
            let counting = match dir.source {
                0 => true,
                s if s == hook => true,
                // Egress after ingress: count the egress hook's totals instead.
                s => {
                    s == netpol_ebpf_common::direction::INGRESS + 1
                        && key.direction == netpol_ebpf_common::direction::EGRESS
                }
            };
            if counting {
                let recreated = dir.source == hook && dir.kernel_first_ns != stats.first_seen_ns;
                added = if dir.source == 0 || recreated {
                    now
                } else {
                    Seen {
                        packets: now.packets.saturating_sub(dir.seen.packets),
                        bytes: now.bytes.saturating_sub(dir.seen.bytes),
                    }
                };
                if recreated {
                    self.stats.recreated_keys += 1;
                    // The kernel starts a new entry for a SYN on a tuple whose connection
                    // ended: a new connection on the same tuple (a port reused).
                    if forward && stats.tcp_flags & tcp_flags::SYN != 0 && closed {
                        reopened = true;
                    }
                }
                dir.source = hook;
                dir.kernel_first_ns = stats.first_seen_ns;
                dir.seen = now;
            }
        }
        conn.last_seen_ns = conn.last_seen_ns.max(stats.last_seen_ns);
        if reopened {
            conn.flags = [0; 2];
        }
        if let Some(f) = conn.flags.get_mut(usize::from(!forward)) {
            *f |= stats.tcp_flags;
        }
        if conn.orphan {
            return fate;
        }
        let slot = conn.record;
        self.stats.packets += added.packets;
        self.stats.bytes += added.bytes;
        if let Some(Some(r)) = self.records.get_mut(slot as usize) {
            if reopened {
                r.connections += 1;
            }
            let before = (r.packets, r.bytes, r.tcp_flags, r.last_seen_ns);
            r.packets += added.packets;
            r.bytes += added.bytes;
            if !forward {
                r.reply_packets += added.packets;
                r.reply_bytes += added.bytes;
            }
            r.tcp_flags |= flags;
            r.last_seen_ns = r.last_seen_ns.max(stats.last_seen_ns);
            if before != (r.packets, r.bytes, r.tcp_flags, r.last_seen_ns) {
                self.seq += 1;
                r.seq = self.seq;
            }
        }
        fate
    }

    /// A packet of a capture file, counted on its connection, which it opens if it is the
    /// first. `answer`: the packet, were it the first, would be the responder's (a SYN-ACK, an
    /// echo reply, a reply from a service port; `capture::conversation` decides). On one tuple
    /// a connection ends and the next begins at a bare SYN after the connection closed (FIN
    /// each way, or RST) or was silent for `rules.idle_ns`; not TCP, at any packet after such a
    /// silence. Each packet is counted once, in its direction.
    pub fn packet(
        &mut self,
        pk: &Packet,
        answer: bool,
        rules: PacketRules,
        who: &dyn Fn(IpAddr) -> Who,
    ) {
        let (forward, reverse) = tuples_of(pk.protocol, pk.src, pk.src_port, pk.dst, pk.dst_port);
        let tcp = pk.protocol == 6;
        let syn = tcp && pk.tcp_flags & tcp_flags::SYN != 0;
        for (tuple, is_forward) in [(forward, true), (reverse, false)] {
            if let Some(conn) = self.conns.get_mut(&tuple) {
                let idle = pk.time_ns.saturating_sub(conn.last_seen_ns) > rules.idle_ns;
                let next = if tcp {
                    syn && (idle || conn.closed())
                } else {
                    idle
                };
                if !next {
                    count_packet(
                        conn,
                        is_forward,
                        pk,
                        &mut self.records,
                        &mut self.stats,
                        &mut self.seq,
                    );
                    return;
                }
                self.conns.remove(&tuple);
                break;
            }
        }
        let tuple = if answer { reverse } else { forward };
        self.open(tuple, 0, pk.time_ns, who, None);
        // Connections evicted from a full table have no kernel keys to drain.
        if !self.retired.is_empty() {
            self.retired.clear();
        }
        if let Some(conn) = self.conns.get_mut(&tuple) {
            count_packet(
                conn,
                !answer,
                pk,
                &mut self.records,
                &mut self.stats,
                &mut self.seq,
            );
        }
    }

    /// Forget the connections of a capture silent since before `cutoff_ns` (open TCP
    /// connections: since before `open_tcp_cutoff_ns`), to bound the table; their records
    /// stay, and a later packet on the tuple opens another connection.
    pub fn forget_idle(&mut self, cutoff_ns: u64, open_tcp_cutoff_ns: u64) {
        self.conns.retain(|(p, ..), c| {
            let open_tcp = *p == 6 && !c.closed();
            c.last_seen_ns
                >= if open_tcp {
                    open_tcp_cutoff_ns
                } else {
                    cutoff_ns
                }
        });
    }

    /// Before a read of the whole kernel map: the connections let go so far are counted a last
    /// time in it, and their keys deleted.
    pub fn begin_scan(&mut self) {
        let retired = std::mem::take(&mut self.retired);
        self.draining.extend(retired);
    }

    /// After a read of the whole kernel map (whose keys of drained connections the caller
    /// deleted): those connections are remembered as gone, so that one coming back continues
    /// (not those that closed: they cannot come back). Twice as many as the table holds are
    /// remembered.
    pub fn end_scan(&mut self) {
        let drained = std::mem::take(&mut self.draining);
        for (tuple, conn) in drained {
            if conn.closed() {
                continue;
            }
            self.gone_stamp += 1;
            self.gone.insert(tuple, (self.gone_stamp, conn));
            self.gone_order.push_back((tuple, self.gone_stamp));
        }
        let bound = self.max_connections.saturating_mul(2);
        while self.gone.len() > bound {
            let Some((old, stamp)) = self.gone_order.pop_front() else {
                break;
            };
            if self.gone.get(&old).is_some_and(|(s, _)| *s == stamp) {
                self.gone.remove(&old);
            }
        }
        // Places left by entries that came back: dropped once they outnumber the live ones.
        if self.gone_order.len() > bound.saturating_mul(2) {
            let gone = &self.gone;
            self.gone_order
                .retain(|(t, stamp)| gone.get(t).is_some_and(|(s, _)| s == stamp));
        }
    }

    fn retire(&mut self, tuple: Tuple) {
        if let Some(conn) = self.conns.remove(&tuple) {
            self.retired.insert(tuple, conn);
        }
    }

    /// Let go of the tenth of connections seen longest ago.
    fn evict_connections(&mut self, n: usize) {
        let mut ages: Vec<(u64, Tuple)> = self
            .conns
            .iter()
            .map(|(t, c)| (c.last_seen_ns, *t))
            .collect();
        ages.sort_unstable_by_key(|(t, _)| *t);
        let n = n.max(1);
        for (_, tuple) in ages.into_iter().take(n) {
            self.retire(tuple);
            self.stats.evicted_connections += 1;
        }
    }

    /// Drop the tenth of records seen longest ago; the connections that fed them are let go
    /// without counting more.
    fn evict_records(&mut self) {
        let mut ages: Vec<(u64, u32)> = self
            .records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((r.as_ref()?.last_seen_ns, u32::try_from(i).ok()?)))
            .collect();
        ages.sort_unstable_by_key(|(t, _)| *t);
        let n = (self.max_records / 10).max(1);
        let mut gone = rustc_hash::FxHashSet::default();
        for (_, slot) in ages.into_iter().take(n) {
            if let Some(r) = self.records.get_mut(slot as usize) {
                *r = None;
            }
            self.free.push(slot);
            gone.insert(slot);
            self.stats.evicted_records += 1;
        }
        self.by_key.retain(|_, slot| !gone.contains(slot));
        let orphans: Vec<Tuple> = self
            .conns
            .iter()
            .filter(|(_, c)| gone.contains(&c.record))
            .map(|(t, _)| *t)
            .collect();
        for tuple in orphans {
            self.retire(tuple);
        }
        for conn in self.retired.values_mut().chain(self.draining.values_mut()) {
            conn.orphan |= gone.contains(&conn.record);
        }
    }

    /// After a read of the kernel map: over the bound, let go of the connections seen longest
    /// ago, down to nine tenths of it (their keys are taken at the next read, as idle ones').
    pub fn trim(&mut self) {
        if self.conns.len() > self.max_connections {
            let keep = self.max_connections - self.max_connections / 10;
            self.evict_connections(self.conns.len() - keep);
        }
    }

    /// Let go of connections idle since before `cutoff_ns` (their records stay).
    pub fn expire(&mut self, cutoff_ns: u64) {
        let idle: Vec<Tuple> = self
            .conns
            .iter()
            .filter(|(_, c)| c.last_seen_ns < cutoff_ns)
            .map(|(t, _)| *t)
            .collect();
        self.stats.expired_connections += idle.len() as u64;
        for tuple in idle {
            self.retire(tuple);
        }
    }

    /// Capture who the ends of unsettled records are: `resolve` gives an address's endpoint and
    /// whether it is final. A record settles when both ends are final, or [`SETTLE_NS`] after
    /// it was first seen (`now_ns`, boot time); a changed end changes the record's cursor.
    pub fn settle(
        &mut self,
        now_ns: u64,
        resolve: &mut dyn FnMut(IpAddr) -> (Arc<RecordEndpoint>, bool),
    ) {
        for r in self.records.iter_mut().flatten() {
            if r.settled {
                continue;
            }
            let (src, src_final) = resolve(r.src);
            let (dst, dst_final) = resolve(r.dst);
            let changed = r.src_as.as_deref() != Some(&*src) || r.dst_as.as_deref() != Some(&*dst);
            r.src_as = Some(src);
            r.dst_as = Some(dst);
            r.settled =
                (src_final && dst_final) || now_ns.saturating_sub(r.first_seen_ns) > SETTLE_NS;
            if changed {
                self.seq += 1;
                r.seq = self.seq;
                r.identity_version = r.identity_version.wrapping_add(1);
            }
        }
    }

    /// The records the live audit has not judged under policy generation `policies` with
    /// their current ends.
    pub fn unjudged(&mut self, policies: u32) -> impl Iterator<Item = &mut Record> {
        self.records.iter_mut().flatten().filter(move |r| {
            r.judged
                .is_none_or(|j| j.policies != policies || j.identity != r.identity_version)
        })
    }

    /// Records changed after `since` (a previous cursor), and the new cursor.
    pub fn records_since(&self, since: u64) -> (Vec<Record>, u64) {
        let mut v: Vec<Record> = self
            .records
            .iter()
            .flatten()
            .filter(|r| r.seq > since)
            .cloned()
            .collect();
        v.sort_by_key(|r| (r.first_seen_ns, r.seq));
        (v, self.seq)
    }

    /// Records held.
    fn held(&self) -> usize {
        self.records.len() - self.free.len()
    }

    pub fn table_stats(&self) -> TableStats {
        TableStats {
            connections: self.conns.len(),
            records: self.held(),
            ..self.stats
        }
    }
}

/// Count one packet of a capture on its connection (`forward`: the initiator's) and record.
fn count_packet(
    conn: &mut Conn,
    forward: bool,
    pk: &Packet,
    records: &mut [Option<Record>],
    stats: &mut TableStats,
    seq: &mut u64,
) {
    let way = usize::from(!forward);
    let bytes = u64::from(pk.bytes);
    if let Some(dir) = conn.dirs.get_mut(way) {
        dir.seen.packets += 1;
        dir.seen.bytes += bytes;
    }
    if let Some(f) = conn.flags.get_mut(way) {
        *f |= pk.tcp_flags;
    }
    conn.last_seen_ns = conn.last_seen_ns.max(pk.time_ns);
    if conn.orphan {
        return;
    }
    stats.packets += 1;
    stats.bytes += bytes;
    // Flags as the initiator sees the connection: its SYN, the responder's SYN-ACK.
    let flags = if forward {
        pk.tcp_flags & !tcp_flags::SYN_ACK
    } else {
        pk.tcp_flags & !tcp_flags::SYN
    };
    if let Some(Some(r)) = records.get_mut(conn.record as usize) {
        r.packets += 1;
        r.bytes += bytes;
        if !forward {
            r.reply_packets += 1;
            r.reply_bytes += bytes;
        }
        r.tcp_flags |= flags;
        r.first_seen_ns = r.first_seen_ns.min(pk.time_ns);
        r.last_seen_ns = r.last_seen_ns.max(pk.time_ns);
        *seq += 1;
        r.seq = *seq;
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;
    use netpol_ebpf_common::{direction, family, ipv4_mapped};

    fn key(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, cg: u64, dir: u8) -> FlowKey {
        FlowKey {
            src_addr: ipv4_mapped(src),
            dst_addr: ipv4_mapped(dst),
            cgroup_id: cg,
            src_port: sp,
            dst_port: dp,
            protocol: 6,
            direction: dir,
            family: family::IPV4,
            _pad: 0,
        }
    }

    fn stats(packets: u64, bytes: u64, flags: u8, t: u64) -> FlowStats {
        FlowStats {
            packets,
            bytes,
            // One kernel entry keeps its creation stamp; tests that re-create one set it.
            first_seen_ns: 1,
            last_seen_ns: t,
            tcp_flags: flags,
            _pad: [0; 7],
        }
    }

    fn by_ip(ip: IpAddr) -> Who {
        Who::Ip(ip)
    }

    #[test]
    fn four_kernel_keys_of_one_local_connection_make_one_record_counted_once() {
        let mut t = FlowTable::new(true, 100, 100);
        let c = [10, 0, 0, 1];
        let s = [10, 0, 0, 2];
        let c_out = key(c, 40000, s, 80, 1, direction::EGRESS);
        let s_in = key(c, 40000, s, 80, 2, direction::INGRESS);
        let s_out = key(s, 80, c, 40000, 2, direction::EGRESS);
        let c_in = key(s, 80, c, 40000, 1, direction::INGRESS);
        let _ = t.update(
            &c_out,
            &stats(3, 300, tcp_flags::SYN | tcp_flags::FIN, 10),
            &by_ip,
        );
        let _ = t.update(
            &s_in,
            &stats(3, 300, tcp_flags::SYN | tcp_flags::FIN, 11),
            &by_ip,
        );
        let _ = t.update(&s_out, &stats(2, 5000, tcp_flags::SYN_ACK, 12), &by_ip);
        let _ = t.update(&c_in, &stats(2, 5000, tcp_flags::SYN_ACK, 13), &by_ip);
        let (records, cursor) = t.records_since(0);
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(
            (r.src, r.dst_port, r.src_port),
            ("10.0.0.1".parse().unwrap(), 80, Some(40000))
        );
        assert_eq!((r.packets, r.bytes, r.connections), (5, 5300, 1));
        assert_eq!(
            r.tcp_flags,
            tcp_flags::SYN | tcp_flags::SYN_ACK | tcp_flags::FIN
        );
        // Reading the same counts again changes nothing; the cursor moves only on change.
        let _ = t.update(
            &c_out,
            &stats(3, 300, tcp_flags::SYN | tcp_flags::FIN, 10),
            &by_ip,
        );
        assert!(t.records_since(cursor).0.is_empty());
        let _ = t.update(
            &c_out,
            &stats(4, 400, tcp_flags::SYN | tcp_flags::FIN, 20),
            &by_ip,
        );
        assert_eq!(t.records_since(cursor).0.len(), 1);
    }

    #[test]
    fn loopback_packets_seen_twice_in_one_cgroup_count_once() {
        let mut t = FlowTable::new(true, 100, 100);
        let lo = [127, 0, 0, 1];
        let keys = [
            (
                key(lo, 50000, lo, 8080, 7, direction::EGRESS),
                stats(3, 300, tcp_flags::SYN, 1),
            ),
            (
                key(lo, 50000, lo, 8080, 7, direction::INGRESS),
                stats(3, 300, tcp_flags::SYN, 1),
            ),
            (
                key(lo, 8080, lo, 50000, 7, direction::EGRESS),
                stats(2, 200, tcp_flags::SYN_ACK, 2),
            ),
            (
                key(lo, 8080, lo, 50000, 7, direction::INGRESS),
                stats(2, 200, tcp_flags::SYN_ACK, 2),
            ),
        ];
        // Announced first (ring buffer), counted next (map read).
        for (k, s) in &keys {
            t.new_key(k, 0, s.tcp_flags, &by_ip);
        }
        for (k, s) in &keys {
            let _ = t.update(k, s, &by_ip);
        }
        // Read again, ingress before egress this time, with more packets: still counted once.
        let more = [
            (
                key(lo, 50000, lo, 8080, 7, direction::INGRESS),
                stats(4, 400, tcp_flags::SYN, 3),
            ),
            (
                key(lo, 50000, lo, 8080, 7, direction::EGRESS),
                stats(4, 400, tcp_flags::SYN, 3),
            ),
        ];
        for (k, s) in &more {
            let _ = t.update(k, s, &by_ip);
        }
        let (r, _) = t.records_since(0);
        assert_eq!((r[0].packets, r[0].bytes), (6, 600));
        assert_eq!(r[0].tcp_flags, tcp_flags::SYN | tcp_flags::SYN_ACK);
        assert_eq!((r[0].src_port, r[0].dst_port), (Some(50000), 8080));
    }

    #[test]
    fn an_ingress_hook_read_before_the_egress_one_is_replaced_by_it() {
        let mut t = FlowTable::new(true, 100, 100);
        let lo = [127, 0, 0, 1];
        let ingress = key(lo, 50000, lo, 8080, 7, direction::INGRESS);
        let egress = key(lo, 50000, lo, 8080, 7, direction::EGRESS);
        let _ = t.update(&ingress, &stats(3, 300, tcp_flags::SYN, 1), &by_ip);
        let _ = t.update(&egress, &stats(3, 300, tcp_flags::SYN, 1), &by_ip);
        let _ = t.update(&ingress, &stats(5, 500, tcp_flags::SYN, 2), &by_ip);
        let _ = t.update(&egress, &stats(5, 500, tcp_flags::SYN, 2), &by_ip);
        let (r, _) = t.records_since(0);
        assert_eq!((r[0].packets, r[0].bytes), (5, 500));
    }

    /// The kernel map as the agent reads it: every key, then the retired ones deleted.
    fn scan(t: &mut FlowTable, kernel: &mut Vec<(FlowKey, FlowStats)>) {
        t.begin_scan();
        let mut delete = Vec::new();
        for (k, s) in kernel.iter() {
            if t.update(k, s, &by_ip) == KeyFate::Delete {
                delete.push(*k);
            }
        }
        kernel.retain(|(k, _)| !delete.contains(k));
        t.end_scan();
        t.trim();
    }

    #[test]
    fn a_connection_idle_past_the_timeout_that_continues_is_counted_once() {
        let mut t = FlowTable::new(false, 100, 100);
        let out = key(
            [10, 0, 0, 1],
            40000,
            [10, 0, 0, 2],
            80,
            1,
            direction::EGRESS,
        );
        let back = key(
            [10, 0, 0, 2],
            80,
            [10, 0, 0, 1],
            40000,
            1,
            direction::INGRESS,
        );
        let mut kernel = vec![
            (out, stats(3, 300, tcp_flags::SYN, 1_000)),
            (back, stats(2, 200, tcp_flags::SYN_ACK, 1_001)),
        ];
        scan(&mut t, &mut kernel);
        t.expire(5_000);
        assert_eq!(t.table_stats().connections, 0);
        // The next read counts what came since (one packet) and deletes the keys.
        kernel[0].1 = stats(4, 400, tcp_flags::SYN, 1_000);
        scan(&mut t, &mut kernel);
        assert!(
            kernel.is_empty(),
            "the retired connection's keys are deleted"
        );
        // Read again: nothing is opened again, nothing counted twice.
        scan(&mut t, &mut kernel);
        let (r, _) = t.records_since(0);
        assert_eq!((r[0].packets, r[0].connections), (6, 1));
        // A keep-alive much later: the kernel creates the key again, from zero, without SYN.
        t.new_key(&back, 9_000, 0, &by_ip);
        kernel.push((
            back,
            FlowStats {
                first_seen_ns: 9_000,
                ..stats(1, 60, 0, 9_000)
            },
        ));
        scan(&mut t, &mut kernel);
        let (r, _) = t.records_since(0);
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].src_port, r[0].dst_port, r[0].packets, r[0].bytes),
            (None, 80, 7, 660),
            "the reply direction is still the responder's; counts add"
        );
        assert_eq!(r[0].connections, 1, "the same connection continuing");
        let s = t.table_stats();
        assert_eq!((s.resumed_connections, s.packets, s.bytes), (1, 7, 660));
    }

    #[test]
    fn keys_the_deletion_missed_continue_their_connection_and_count_nothing_twice() {
        let mut t = FlowTable::new(false, 100, 100);
        let c_out = key(
            [10, 0, 0, 1],
            40000,
            [10, 0, 0, 2],
            80,
            1,
            direction::EGRESS,
        );
        let s_in = key(
            [10, 0, 0, 1],
            40000,
            [10, 0, 0, 2],
            80,
            2,
            direction::INGRESS,
        );
        let mut kernel = vec![(c_out, stats(5, 500, tcp_flags::SYN, 1_000))];
        scan(&mut t, &mut kernel);
        t.expire(5_000);
        scan(&mut t, &mut kernel);
        // The server's key of the same packets (with the SYN), missed by the last read.
        kernel.push((s_in, stats(5, 500, tcp_flags::SYN, 1_000)));
        scan(&mut t, &mut kernel);
        let (r, _) = t.records_since(0);
        assert_eq!((r[0].connections, r[0].packets), (1, 5), "{r:?}");
    }

    #[test]
    fn a_port_reused_while_the_closed_connection_is_held_is_a_new_connection() {
        let mut t = FlowTable::new(false, 100, 100);
        let out = key(
            [10, 0, 0, 1],
            40000,
            [10, 0, 0, 2],
            80,
            1,
            direction::EGRESS,
        );
        let back = key(
            [10, 0, 0, 2],
            80,
            [10, 0, 0, 1],
            40000,
            1,
            direction::INGRESS,
        );
        let mut kernel = vec![
            (out, stats(4, 400, tcp_flags::SYN | tcp_flags::FIN, 1_000)),
            (
                back,
                stats(3, 300, tcp_flags::SYN_ACK | tcp_flags::FIN, 1_001),
            ),
        ];
        scan(&mut t, &mut kernel);
        // The same port again: the kernel starts the entry anew at the SYN.
        kernel[0].1 = FlowStats {
            first_seen_ns: 2_000,
            ..stats(2, 200, tcp_flags::SYN, 2_001)
        };
        kernel[1].1 = stats(5, 500, tcp_flags::SYN_ACK | tcp_flags::FIN, 2_002);
        scan(&mut t, &mut kernel);
        let (r, _) = t.records_since(0);
        assert_eq!((r[0].connections, r[0].packets), (2, 11));
        // Read again: the same connection, not a third.
        scan(&mut t, &mut kernel);
        assert_eq!(t.records_since(0).0[0].connections, 2);
    }

    #[test]
    fn a_tuple_reused_with_a_new_syn_is_a_new_connection() {
        let mut t = FlowTable::new(false, 100, 100);
        let out = key(
            [10, 0, 0, 1],
            40000,
            [10, 0, 0, 2],
            80,
            1,
            direction::EGRESS,
        );
        let mut kernel = vec![(out, stats(3, 300, tcp_flags::SYN, 1_000))];
        scan(&mut t, &mut kernel);
        t.expire(5_000);
        scan(&mut t, &mut kernel);
        kernel.push((
            out,
            FlowStats {
                first_seen_ns: 9_000,
                ..stats(2, 120, tcp_flags::SYN, 9_000)
            },
        ));
        t.new_key(&out, 9_000, tcp_flags::SYN, &by_ip);
        scan(&mut t, &mut kernel);
        let (r, _) = t.records_since(0);
        assert_eq!((r[0].connections, r[0].packets), (2, 5));
    }

    #[test]
    fn a_kernel_entry_evicted_and_created_again_adds_its_new_counts() {
        let mut t = FlowTable::new(true, 100, 100);
        let out = key(
            [10, 0, 0, 1],
            40000,
            [10, 0, 0, 2],
            80,
            1,
            direction::EGRESS,
        );
        let mut kernel = vec![(out, stats(10, 1000, tcp_flags::SYN, 1_000))];
        scan(&mut t, &mut kernel);
        // The LRU dropped the entry; the next packets made a new one (new first-seen stamp).
        kernel[0].1 = FlowStats {
            first_seen_ns: 2_000,
            ..stats(3, 300, 0, 2_500)
        };
        scan(&mut t, &mut kernel);
        let (r, _) = t.records_since(0);
        assert_eq!((r[0].packets, r[0].bytes), (13, 1300), "never subtracted");
        assert_eq!(t.table_stats().recreated_keys, 1);
    }

    #[test]
    fn an_evicted_connection_is_counted_to_the_end_and_its_keys_deleted() {
        let mut t = FlowTable::new(false, 10, 100);
        let mut kernel = Vec::new();
        for port in 0..10u16 {
            let k = key(
                [10, 0, 0, 1],
                40000 + port,
                [10, 0, 0, 2],
                80,
                1,
                direction::EGRESS,
            );
            t.new_key(&k, u64::from(port), tcp_flags::SYN, &by_ip);
            kernel.push((k, stats(2, 200, tcp_flags::SYN, u64::from(port))));
        }
        scan(&mut t, &mut kernel);
        // An eleventh connection: after the read, the table is trimmed to nine tenths of its
        // bound, the two seen longest ago let go.
        let k = key(
            [10, 0, 0, 1],
            50000,
            [10, 0, 0, 2],
            80,
            1,
            direction::EGRESS,
        );
        t.new_key(&k, 100, tcp_flags::SYN, &by_ip);
        kernel.push((k, stats(1, 100, tcp_flags::SYN, 100)));
        scan(&mut t, &mut kernel);
        assert_eq!(t.table_stats().evicted_connections, 2);
        // One of them still counts until the next read, which takes its key.
        kernel[0].1 = stats(5, 500, tcp_flags::SYN, 0);
        scan(&mut t, &mut kernel);
        assert_eq!(kernel.len(), 9, "the evicted connections' keys are deleted");
        for _ in 0..3 {
            scan(&mut t, &mut kernel);
        }
        let (r, _) = t.records_since(0);
        assert_eq!((r[0].connections, r[0].packets), (11, 24));
        let s = t.table_stats();
        assert_eq!((s.evicted_connections, s.packets), (2, 24));
    }

    #[test]
    fn totals_only_go_up_when_records_are_evicted() {
        let mut t = FlowTable::new(true, 100, 2);
        let mut kernel = Vec::new();
        for port in 0..5u16 {
            let k = key(
                [10, 0, 0, 1],
                40000 + port,
                [10, 0, 0, 2],
                80,
                1,
                direction::EGRESS,
            );
            kernel.push((k, stats(1, 100, tcp_flags::SYN, u64::from(port))));
            scan(&mut t, &mut kernel);
        }
        let s = t.table_stats();
        assert!(s.records <= 2 && s.evicted_records >= 3, "{s:?}");
        assert_eq!((s.packets, s.bytes), (5, 500));
        // The orphaned connections' keys are deleted (the last one at the next read): nothing
        // is opened or counted again.
        scan(&mut t, &mut kernel);
        assert!(kernel.len() <= 2, "{}", kernel.len());
        assert_eq!(t.table_stats().packets, 5);
    }

    #[test]
    fn a_syn_ack_seen_first_means_the_peer_initiated() {
        let mut t = FlowTable::new(true, 100, 100);
        t.new_key(
            &key(
                [10, 0, 0, 2],
                80,
                [10, 0, 0, 1],
                40000,
                2,
                direction::EGRESS,
            ),
            1,
            tcp_flags::SYN_ACK,
            &by_ip,
        );
        let (r, _) = t.records_since(0);
        assert_eq!((r[0].src, r[0].dst_port), ("10.0.0.1".parse().unwrap(), 80));
    }

    #[test]
    fn aggregation_folds_connections_and_the_table_stays_bounded() {
        let mut t = FlowTable::new(false, 10, 3);
        let who = |ip: IpAddr| {
            if ip.to_string().starts_with("10.0.0.") {
                Who::Workload("ns/app".into())
            } else {
                Who::Ip(ip)
            }
        };
        for port in 0..25u16 {
            t.new_key(
                &key(
                    [10, 0, 0, 1],
                    40000 + port,
                    [10, 0, 0, 9],
                    443,
                    1,
                    direction::EGRESS,
                ),
                u64::from(port),
                tcp_flags::SYN,
                &who,
            );
        }
        let (r, _) = t.records_since(0);
        assert_eq!(r.len(), 1, "one workload pair and port");
        assert_eq!(r[0].connections, 25);
        assert!(
            t.table_stats().connections <= 20,
            "at most twice the bound between reads"
        );
        t.trim();
        let s = t.table_stats();
        assert!(s.connections <= 10 && s.evicted_connections >= 15, "{s:?}");
        for i in 0..10u8 {
            t.new_key(
                &key([10, 0, 0, 1], 1, [192, 0, 2, i], 443, 1, direction::EGRESS),
                100 + u64::from(i),
                tcp_flags::SYN,
                &who,
            );
        }
        let s = t.table_stats();
        assert!(s.records <= 3 && s.evicted_records > 0, "{s:?}");
    }

    #[test]
    fn records_are_judged_again_under_new_policies_or_with_new_ends() {
        let mut t = FlowTable::new(false, 100, 100);
        t.new_key(
            &key([10, 0, 0, 1], 1, [10, 0, 0, 2], 80, 1, direction::EGRESS),
            1,
            tcp_flags::SYN,
            &by_ip,
        );
        let world = Arc::new(RecordEndpoint {
            entity: Some("world".to_owned()),
            ..RecordEndpoint::default()
        });
        t.settle(2, &mut |_| (world.clone(), false));
        for r in t.unjudged(1) {
            r.judged = Some(Judged {
                policies: 1,
                identity: r.identity_version,
                verdict: crate::audit::Verdict::Allowed,
            });
        }
        assert_eq!(t.unjudged(1).count(), 0);
        assert_eq!(t.unjudged(2).count(), 1, "new policies");
        // The watch caught up: the destination is a pod now.
        let pod = Arc::new(RecordEndpoint {
            namespace: Some("media".to_owned()),
            ..RecordEndpoint::default()
        });
        t.settle(3, &mut |_| (pod.clone(), true));
        assert_eq!(t.unjudged(1).count(), 1, "new ends");
    }
}

#[cfg(test)]
mod model {
    //! The table against a model of the kernel map: random traffic on connections whose two
    //! ends share a cgroup (each packet passes both hooks), random read orders, idle expiry,
    //! eviction, keys taken and created again. Every packet sent is counted once.
    #![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;
    use netpol_ebpf_common::{direction, family, ipv4_mapped};

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn keys(conn: u16) -> [[FlowKey; 2]; 2] {
        let k = |src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, dir: u8| FlowKey {
            src_addr: ipv4_mapped(src),
            dst_addr: ipv4_mapped(dst),
            cgroup_id: 7,
            src_port: sp,
            dst_port: dp,
            protocol: 6,
            direction: dir,
            family: family::IPV4,
            _pad: 0,
        };
        let (c, s, port) = ([10, 0, 0, 1], [10, 0, 0, 2], 30000 + conn);
        [
            // Client → server: the client's egress, the server's ingress.
            [
                k(c, port, s, 80, direction::EGRESS),
                k(c, port, s, 80, direction::INGRESS),
            ],
            [
                k(s, 80, c, port, direction::EGRESS),
                k(s, 80, c, port, direction::INGRESS),
            ],
        ]
    }

    #[test]
    fn every_packet_is_counted_once_through_expiry_eviction_and_recreation() {
        for seed in 1..200u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut t = FlowTable::new(false, 8, 1000);
            let mut kernel: Vec<(FlowKey, FlowStats)> = Vec::new();
            let mut events: Vec<(FlowKey, u64, u8)> = Vec::new();
            let mut sent = 0u64;
            let mut now = 1_000u64;
            // No more than the table remembers of the connections it let go (twice its bound).
            let conns = 16u16;
            let mut started = std::collections::BTreeSet::new();
            for _step in 0..400 {
                now += 1 + rng.below(50);
                match rng.below(10) {
                    // A packet on a connection, one way: both hooks count it.
                    0..=6 => {
                        let c = u16::try_from(rng.below(u64::from(conns))).unwrap();
                        let way = usize::try_from(rng.below(2)).unwrap();
                        // The handshake's flags only on the connection's first packets.
                        let first = way == 0 && started.insert(c);
                        if way == 1 && !started.contains(&c) {
                            continue;
                        }
                        let flags = match (first, way) {
                            (true, _) => tcp_flags::SYN,
                            (false, 1) if !started.contains(&(c + 1000)) => {
                                started.insert(c + 1000);
                                tcp_flags::SYN_ACK
                            }
                            _ => 0,
                        };
                        sent += 1;
                        let mut hooks = keys(c)[way];
                        if rng.below(2) == 0 {
                            hooks.reverse();
                        }
                        for key in hooks {
                            match kernel.iter_mut().find(|(k, _)| *k == key) {
                                Some((_, s)) => {
                                    s.packets += 1;
                                    s.bytes += 100;
                                    s.last_seen_ns = now;
                                    s.tcp_flags |= flags;
                                }
                                None => {
                                    kernel.push((
                                        key,
                                        FlowStats {
                                            packets: 1,
                                            bytes: 100,
                                            first_seen_ns: now,
                                            last_seen_ns: now,
                                            tcp_flags: flags,
                                            _pad: [0; 7],
                                        },
                                    ));
                                    events.push((key, now, flags));
                                }
                            }
                        }
                    }
                    // New-flow events read (some of them).
                    7 => {
                        let n = usize::try_from(rng.below(events.len() as u64 + 1)).unwrap();
                        for (key, first, flags) in events.drain(..n) {
                            t.new_key(&key, first, flags, &|ip| Who::Ip(ip));
                        }
                    }
                    // A read of the whole map, in a random order; the taken keys deleted.
                    _ => {
                        for i in (1..kernel.len()).rev() {
                            let j = usize::try_from(rng.below(i as u64 + 1)).unwrap();
                            kernel.swap(i, j);
                        }
                        t.begin_scan();
                        let mut delete = Vec::new();
                        for (k, s) in &kernel {
                            if t.update(k, s, &|ip| Who::Ip(ip)) == KeyFate::Delete {
                                delete.push(*k);
                            }
                        }
                        for k in &delete {
                            let i = kernel.iter().position(|(x, _)| x == k).unwrap();
                            let (key, stats) = kernel.remove(i);
                            let _ = t.update(&key, &stats, &|ip| Who::Ip(ip));
                        }
                        t.end_scan();
                        t.expire(now.saturating_sub(300));
                        t.trim();
                    }
                }
            }
            // Everything read, several times.
            for (key, first, flags) in events.drain(..) {
                t.new_key(&key, first, flags, &|ip| Who::Ip(ip));
            }
            for _ in 0..3 {
                t.begin_scan();
                let mut delete = Vec::new();
                for (k, s) in &kernel {
                    if t.update(k, s, &|ip| Who::Ip(ip)) == KeyFate::Delete {
                        delete.push(*k);
                    }
                }
                kernel.retain(|(k, _)| !delete.contains(k));
                t.end_scan();
            }
            assert_eq!(t.table_stats().packets, sent, "seed {seed}");
            let (records, _) = t.records_since(0);
            let counted: u64 = records.iter().map(|r| r.connections).sum();
            let opened = started.iter().filter(|c| **c < 1000).count() as u64;
            assert_eq!(counted, opened, "seed {seed} {:?}", t.table_stats());
        }
    }
}
