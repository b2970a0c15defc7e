//! Frames → conversations: the link layer and IP decoded, DNS answers learned, and each
//! packet counted in the observer's own flow table ([`FlowTable::packet`]), which pairs the
//! directions, counts each way and folds connections into records as it does for the live
//! agent.
//!
//! Who initiated a connection (the record's source):
//! - TCP: the sender of the SYN; a SYN-ACK seen first means its receiver. It is *established*
//!   when the SYN-ACK is seen, *refused* when the SYN is answered by a RST.
//! - ICMP: the sender of the request (an echo reply seen first means its receiver).
//! - Mid-stream (TCP without its handshake in the capture, UDP, SCTP, other protocols): the
//!   sender of the first packet seen, unless that packet comes *from* a service port *to* an
//!   ephemeral one (source port below 1024 and destination port 1024 or above, or source port
//!   below 49152 and destination port 49152 or above): then it is an answer, and its receiver
//!   initiated. A DNS answer seen without its query is the resolver's answer to the client.
//! - UDP (and any protocol without connections): a request and its responses are one
//!   exchange until the tuple is silent for the idle timeout; the next packet opens another.
//!   TCP: a bare SYN after the connection closed (FIN each way, or RST), or after that silence,
//!   opens another.

use std::net::IpAddr;

use netpol_compiler::flow::Record;
use netpol_ebpf_common::tcp_flags;

use super::link::{self, NotIp};
use super::packet::{self, Decoded, Fragments, Skip};
use crate::aggregate::{FlowTable, Packet, PacketRules, Who};
use crate::clock::Clock;
use crate::dns::DnsCache;
use crate::identity::Identity;

/// How the conversations are told apart and kept.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// One record per connection instead of per (source, destination, port, protocol).
    pub per_connection: bool,
    /// Silence after which a UDP exchange is over (and a new SYN is a new connection).
    pub idle_ns: u64,
    /// Silence after which an open TCP connection is forgotten (memory; a later packet on its
    /// tuple opens a mid-stream connection).
    pub tcp_idle_ns: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            per_connection: false,
            idle_ns: 60_000_000_000,
            tcp_idle_ns: 3_600_000_000_000,
        }
    }
}

/// What was not counted as a flow, and why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Frames of a link type that is not read, by the last such type.
    pub unknown_link: u64,
    /// Not IP (ARP, STP, LLDP…).
    pub not_ip: u64,
    /// Cut short before the ports (snaplen).
    pub truncated: u64,
    pub malformed: u64,
    pub orphan_fragments: u64,
    /// Neighbour discovery, MLD, IGMP, link-local multicast.
    pub link_control: u64,
}

/// Packets → records, through the observer's flow table and DNS cache.
#[derive(Debug)]
pub struct Conversations {
    settings: Settings,
    pub table: FlowTable,
    pub dns: DnsCache,
    identity: Identity,
    fragments: Fragments,
    pub skipped: Skipped,
    /// Link types met that are not read, with their frames.
    pub unknown_links: std::collections::BTreeMap<i32, u64>,
    pub packets: u64,
    /// The latest capture time seen.
    latest_ns: u64,
    /// When idle connections were last forgotten.
    swept_ns: u64,
}

/// Connections and records are kept until the end of the capture (records are the output);
/// connections are forgotten when idle.
const MAX: usize = usize::MAX / 4;

/// DNS names remembered at most.
const MAX_NAMES: usize = 1 << 20;

impl Conversations {
    pub fn new(settings: Settings, identity: Identity) -> Self {
        Self {
            settings,
            table: FlowTable::new(settings.per_connection, MAX, MAX),
            dns: DnsCache::new(MAX_NAMES),
            identity,
            fragments: Fragments::default(),
            skipped: Skipped::default(),
            unknown_links: std::collections::BTreeMap::new(),
            packets: 0,
            latest_ns: 0,
            swept_ns: 0,
        }
    }

    /// One captured frame of link type `linktype`, captured at `time_ns` (Unix nanoseconds).
    pub fn frame(&mut self, linktype: i32, frame: &[u8], time_ns: u64) {
        self.packets += 1;
        let ip = match link::ip_packet(linktype, frame) {
            Ok(ip) => ip,
            Err(NotIp::UnknownLinkType) => {
                self.skipped.unknown_link += 1;
                *self.unknown_links.entry(linktype).or_default() += 1;
                return;
            }
            Err(NotIp::Other) => {
                self.skipped.not_ip += 1;
                return;
            }
            Err(NotIp::Truncated) => {
                self.skipped.truncated += 1;
                return;
            }
        };
        match packet::decode(ip, time_ns, &mut self.fragments) {
            Ok(d) => self.count(&d),
            Err(Skip::Truncated) => self.skipped.truncated += 1,
            Err(Skip::Malformed) => self.skipped.malformed += 1,
            Err(Skip::OrphanFragment) => self.skipped.orphan_fragments += 1,
            Err(Skip::LinkControl) => self.skipped.link_control += 1,
        }
    }

    fn count(&mut self, d: &Decoded<'_>) {
        let p = &d.packet;
        if p.src_port == 53 && matches!(p.protocol, 6 | 17) && !d.payload.is_empty() {
            self.learn_dns(p.protocol, d.payload, p.time_ns);
        }
        let identity = &self.identity;
        let who = |ip: IpAddr| identity.who(ip);
        let rules = PacketRules {
            idle_ns: self.settings.idle_ns,
        };
        self.table.packet(p, answer(p), rules, &who);
        self.latest_ns = self.latest_ns.max(p.time_ns);
        // Forget idle connections once per idle period of capture time.
        if self.latest_ns.saturating_sub(self.swept_ns) > self.settings.idle_ns {
            self.swept_ns = self.latest_ns;
            self.table.forget_idle(
                self.latest_ns.saturating_sub(self.settings.idle_ns),
                self.latest_ns.saturating_sub(self.settings.tcp_idle_ns),
            );
        }
    }

    /// A DNS response: over UDP the payload is the message; over TCP each message has a
    /// two-byte length first (messages split across segments are not reassembled).
    fn learn_dns(&mut self, protocol: u8, payload: &[u8], time_ns: u64) {
        let now_s = time_ns / 1_000_000_000;
        if protocol == 17 {
            self.dns.learn(payload, now_s);
            return;
        }
        let mut rest = payload;
        while let Some((len, tail)) = rest.split_first_chunk::<2>() {
            let len = usize::from(u16::from_be_bytes(*len));
            let Some(message) = tail.get(..len) else {
                break;
            };
            self.dns.learn(message, now_s);
            rest = tail.get(len..).unwrap_or(&[]);
        }
    }

    /// The records, sorted by first packet: names of world addresses as the DNS answers of
    /// the capture gave them, as of each record's first packet.
    pub fn records(&self) -> Vec<Record> {
        let clock = Clock::unix();
        let (records, _) = self.table.records_since(0);
        records
            .iter()
            .map(|r| {
                let now_s = r.first_seen_ns / 1_000_000_000;
                crate::export::record_of(&clock, &self.identity, &self.dns, now_s, r)
            })
            .collect()
    }

    /// How a record's ends are grouped (for tests and reports).
    pub fn who(&self, ip: IpAddr) -> Who {
        self.identity.who(ip)
    }
}

/// Whether a packet, were it the first of its connection, is the responder's (module docs).
pub fn answer(p: &Packet) -> bool {
    match p.protocol {
        6 if p.tcp_flags & tcp_flags::SYN != 0 => false,
        6 if p.tcp_flags & tcp_flags::SYN_ACK != 0 => true,
        1 => p.dst_port == 0,
        58 => p.dst_port == 129,
        _ => {
            let (s, d) = (p.src_port, p.dst_port);
            (s < 1024 && d >= 1024) || (s < 49152 && d >= 49152)
        }
    }
}
