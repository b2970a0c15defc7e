//! The flow table: kernel flow keys → connections → records, bounded.
//!
//! The kernel counts per (5-tuple, cgroup, direction); one TCP connection between two local
//! pods is four keys (each direction at each end). The table pairs them into one connection,
//! initiated by whoever sent the first packet (a bare SYN wins; a SYN-ACK or ICMP echo reply
//! seen first means the other side initiated), counts packets and bytes at one end only (the
//! cgroup first seen), and folds connections into records: per (source workload, destination,
//! port, protocol), or one per connection with `per_connection`. Connections and records are
//! both bounded; what is evicted is counted.

use std::net::IpAddr;

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
    pub connections: u64,
    pub tcp_flags: u8,
    /// Changes whenever the record does: `/flows?since=` serves records above a cursor.
    pub seq: u64,
}

/// Counting one direction of a connection at its home cgroup: from which hook (a packet
/// between two sockets of one cgroup passes egress and ingress: egress wins), and the
/// kernel's totals last read.
#[derive(Debug, Clone, Copy, Default)]
struct DirCount {
    /// 0: none yet; else `direction::* + 1` of the counting hook.
    source: u8,
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
}

/// The bounded flow table.
#[derive(Debug)]
pub struct FlowTable {
    per_connection: bool,
    max_connections: usize,
    max_records: usize,
    conns: FxHashMap<Tuple, Conn>,
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
    let (src, dst) = (key.src_ip(), key.dst_ip());
    let p = key.protocol;
    if is_icmp(p) {
        let kind = icmp_request(p, key.dst_port);
        ((p, src, 0, dst, kind), (p, dst, 0, src, kind))
    } else {
        (
            (p, src, key.src_port, dst, key.dst_port),
            (p, dst, key.dst_port, src, key.src_port),
        )
    }
}

impl FlowTable {
    pub fn new(per_connection: bool, max_connections: usize, max_records: usize) -> Self {
        Self {
            per_connection,
            max_connections,
            max_records,
            conns: FxHashMap::default(),
            records: Vec::new(),
            free: Vec::new(),
            by_key: FxHashMap::default(),
            seq: 0,
            stats: TableStats::default(),
        }
    }

    /// Whether a kernel key belongs to a connection the table holds.
    pub fn knows(&self, key: &FlowKey) -> bool {
        self.find(key).is_some()
    }

    /// The connection a key belongs to, and whether the key goes the initiator's way.
    fn find(&self, key: &FlowKey) -> Option<(Tuple, bool)> {
        let (forward, reverse) = tuples(key);
        if self.conns.contains_key(&forward) {
            Some((forward, true))
        } else if self.conns.contains_key(&reverse) {
            Some((reverse, false))
        } else {
            None
        }
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
        // The first packet seen decides, unless it is visibly an answer.
        let answer = (p == 6 && flags & tcp_flags::SYN_ACK != 0 && flags & tcp_flags::SYN == 0)
            || (is_icmp(p) && is_icmp_reply(p, key.dst_port));
        let tuple = if answer { reverse } else { forward };
        self.open(tuple, key.cgroup_id, first_seen_ns, who);
    }

    fn open(&mut self, tuple: Tuple, cgroup: u64, now: u64, who: &dyn Fn(IpAddr) -> Who) {
        if self.conns.len() >= self.max_connections {
            self.evict_connections();
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
            None
        } else {
            self.by_key.get(&key).copied()
        };
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
                    connections: 0,
                    tcp_flags: 0,
                    seq,
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
            r.connections += 1;
            r.seq = seq;
        }
        self.conns.insert(
            tuple,
            Conn {
                home_cgroup: cgroup,
                record: slot,
                last_seen_ns: now,
                dirs: [DirCount::default(); 2],
            },
        );
    }

    /// Counts read from the kernel map for a key.
    pub fn update(&mut self, key: &FlowKey, stats: &FlowStats, who: &dyn Fn(IpAddr) -> Who) {
        if self.find(key).is_none() {
            self.new_key(key, stats.first_seen_ns, stats.tcp_flags, who);
        }
        let Some((tuple, forward)) = self.find(key) else {
            return;
        };
        let Some(conn) = self.conns.get_mut(&tuple) else {
            return;
        };
        // Flags as the initiator sees the connection: its SYN, the responder's SYN-ACK.
        let flags = if forward {
            stats.tcp_flags & !tcp_flags::SYN_ACK
        } else {
            stats.tcp_flags & !tcp_flags::SYN
        };
        // Packets are counted at one end (the home cgroup), at one hook: a packet between two
        // sockets of that cgroup (loopback, a pod talking to itself) passes egress and ingress.
        let (mut dp, mut db) = (0i128, 0i128);
        if key.cgroup_id == conn.home_cgroup
            && let Some(dir) = conn.dirs.get_mut(usize::from(!forward))
        {
            let hook = key.direction + 1;
            let (packets, bytes) = (i128::from(stats.packets), i128::from(stats.bytes));
            let (seen_p, seen_b) = (i128::from(dir.seen.packets), i128::from(dir.seen.bytes));
            match dir.source {
                0 => {
                    dir.source = hook;
                    (dp, db) = (packets, bytes);
                    dir.seen = Seen {
                        packets: stats.packets,
                        bytes: stats.bytes,
                    };
                }
                s if s == hook => {
                    (dp, db) = (packets - seen_p, bytes - seen_b);
                    dir.seen = Seen {
                        packets: stats.packets,
                        bytes: stats.bytes,
                    };
                }
                // Egress after ingress: count the egress hook's totals instead.
                s if s == netpol_ebpf_common::direction::INGRESS + 1
                    && key.direction == netpol_ebpf_common::direction::EGRESS =>
                {
                    dir.source = hook;
                    (dp, db) = (packets - seen_p, bytes - seen_b);
                    dir.seen = Seen {
                        packets: stats.packets,
                        bytes: stats.bytes,
                    };
                }
                _ => {}
            }
        }
        conn.last_seen_ns = conn.last_seen_ns.max(stats.last_seen_ns);
        let slot = conn.record;
        if let Some(Some(r)) = self.records.get_mut(slot as usize) {
            let before = (r.packets, r.bytes, r.tcp_flags, r.last_seen_ns);
            r.packets = u64::try_from((i128::from(r.packets) + dp).max(0)).unwrap_or(u64::MAX);
            r.bytes = u64::try_from((i128::from(r.bytes) + db).max(0)).unwrap_or(u64::MAX);
            r.tcp_flags |= flags;
            r.last_seen_ns = r.last_seen_ns.max(stats.last_seen_ns);
            if before != (r.packets, r.bytes, r.tcp_flags, r.last_seen_ns) {
                self.seq += 1;
                r.seq = self.seq;
            }
        }
    }

    /// Drop the tenth of connections seen longest ago.
    fn evict_connections(&mut self) {
        let mut ages: Vec<(u64, Tuple)> = self
            .conns
            .iter()
            .map(|(t, c)| (c.last_seen_ns, *t))
            .collect();
        ages.sort_unstable_by_key(|(t, _)| *t);
        let n = (self.max_connections / 10).max(1);
        for (_, tuple) in ages.into_iter().take(n) {
            self.conns.remove(&tuple);
            self.stats.evicted_connections += 1;
        }
    }

    /// Drop the tenth of records seen longest ago (and the connections that fed them).
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
        self.conns.retain(|_, c| !gone.contains(&c.record));
    }

    /// Forget connections idle since before `cutoff_ns` (their records stay).
    pub fn expire(&mut self, cutoff_ns: u64) {
        self.conns.retain(|_, c| c.last_seen_ns >= cutoff_ns);
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

    /// Packets and bytes of every record held, without copying them.
    pub fn totals(&self) -> (u64, u64) {
        self.records
            .iter()
            .flatten()
            .fold((0, 0), |(p, b), r| (p + r.packets, b + r.bytes))
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
            first_seen_ns: t,
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
        t.update(
            &c_out,
            &stats(3, 300, tcp_flags::SYN | tcp_flags::FIN, 10),
            &by_ip,
        );
        t.update(
            &s_in,
            &stats(3, 300, tcp_flags::SYN | tcp_flags::FIN, 11),
            &by_ip,
        );
        t.update(&s_out, &stats(2, 5000, tcp_flags::SYN_ACK, 12), &by_ip);
        t.update(&c_in, &stats(2, 5000, tcp_flags::SYN_ACK, 13), &by_ip);
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
        t.update(
            &c_out,
            &stats(3, 300, tcp_flags::SYN | tcp_flags::FIN, 10),
            &by_ip,
        );
        assert!(t.records_since(cursor).0.is_empty());
        t.update(
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
            t.update(k, s, &by_ip);
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
            t.update(k, s, &by_ip);
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
        t.update(&ingress, &stats(3, 300, tcp_flags::SYN, 1), &by_ip);
        t.update(&egress, &stats(3, 300, tcp_flags::SYN, 1), &by_ip);
        t.update(&ingress, &stats(5, 500, tcp_flags::SYN, 2), &by_ip);
        t.update(&egress, &stats(5, 500, tcp_flags::SYN, 2), &by_ip);
        let (r, _) = t.records_since(0);
        assert_eq!((r[0].packets, r[0].bytes), (5, 500));
    }

    #[test]
    fn idle_connections_are_forgotten_and_their_records_stay() {
        let mut t = FlowTable::new(true, 100, 100);
        t.new_key(
            &key([10, 0, 0, 1], 1, [10, 0, 0, 2], 80, 1, direction::EGRESS),
            1_000,
            tcp_flags::SYN,
            &by_ip,
        );
        t.new_key(
            &key([10, 0, 0, 1], 2, [10, 0, 0, 2], 80, 1, direction::EGRESS),
            9_000,
            tcp_flags::SYN,
            &by_ip,
        );
        t.expire(5_000);
        let s = t.table_stats();
        assert_eq!((s.connections, s.records), (1, 2));
        // The forgotten connection, seen again, is a new connection of a new record.
        t.update(
            &key([10, 0, 0, 1], 1, [10, 0, 0, 2], 80, 1, direction::EGRESS),
            &stats(9, 900, tcp_flags::SYN, 10_000),
            &by_ip,
        );
        assert_eq!(t.table_stats().connections, 2);
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
}
