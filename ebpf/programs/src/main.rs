//! netpol's kernel programs: one `cgroup_skb` program per direction, attached to the root of a
//! cgroup v2 hierarchy, so they see every pod's sockets.
//!
//! ```text
//! packet (starts at the IP header) ──parse IPv4 / IPv6 (+ extension headers)──> FlowKey
//!   FLOWS (LRU hash): packets, bytes, first/last seen, TCP flags seen
//!   new key ──FLOW_EVENTS (ring buffer)──> FlowEvent
//!   DNS answer (source port 53, UDP or TCP) ──DNS_EVENTS (ring buffer)──> DnsEvent (bounded copy)
//!   every failure ──COUNTERS (per-CPU array)
//! ```
//!
//! The programs never change traffic: every path returns 1 ("pass"). Packets are read with
//! `bpf_skb_load_bytes`, so every read is bounds-checked by the kernel. Types and layout come
//! from `netpol-ebpf-common`.
#![no_std]
#![no_main]

use aya_ebpf::helpers::generated::{bpf_ktime_get_boot_ns, bpf_skb_cgroup_id, bpf_skb_load_bytes};
use aya_ebpf::macros::{cgroup_skb, map};
use aya_ebpf::maps::{LruHashMap, PerCpuArray, RingBuf};
use aya_ebpf::programs::SkBuffContext;
use netpol_ebpf_common::{
    Counter, DNS_PAYLOAD_MAX, DnsEvent, FlowEvent, FlowKey, FlowStats, direction, family,
    ipv4_mapped, tcp_flags,
};

/// Flows being counted. The size is set by the observer at load time (`--max-flows`).
#[map]
static FLOWS: LruHashMap<FlowKey, FlowStats> = LruHashMap::with_max_entries(65_536, 0);

/// New flows, for the observer to pick up at once.
#[map]
static FLOW_EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// DNS answers, for the observer's IP → names cache.
#[map]
static DNS_EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// What could not be reported otherwise (lost events, unparsed packets…).
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

const ETH_P_IP: u32 = 0x0800;
const ETH_P_IPV6: u32 = 0x86DD;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_SCTP: u8 = 132;
const DNS_PORT: u16 = 53;
/// IPv6 extension headers followed at the most (hop-by-hop, routing, fragment, destination
/// options, authentication); a bounded loop for the verifier.
const MAX_EXTENSION_HEADERS: usize = 6;

#[cgroup_skb]
pub fn netpol_ingress(ctx: SkBuffContext) -> i32 {
    observe(&ctx, direction::INGRESS);
    1
}

#[cgroup_skb]
pub fn netpol_egress(ctx: SkBuffContext) -> i32 {
    observe(&ctx, direction::EGRESS);
    1
}

/// `BPF_RB_AVAIL_DATA`: bytes written to a ring buffer and not yet consumed.
const BPF_RB_AVAIL_DATA: u64 = 0;

fn level(slot: Counter, value: u64) {
    if let Some(p) = COUNTERS.get_ptr_mut(slot.index()) {
        // SAFETY: the pointer comes from the map lookup and points at this CPU's u64 slot.
        unsafe { *p = value };
    }
}

fn count(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter.index()) {
        // SAFETY: the pointer comes from the map lookup and points at this CPU's u64 slot.
        unsafe { *slot += 1 };
    }
}

/// What the parser found in a packet.
struct Parsed {
    key: FlowKey,
    /// Offset of the transport header, if the packet carries one we read.
    l4: Option<usize>,
    tcp: u8,
}

#[inline(always)]
fn observe(ctx: &SkBuffContext, dir: u8) {
    let Some(parsed) = parse(ctx, dir) else {
        count(Counter::UnparsedPackets);
        return;
    };
    // Neighbour discovery, MLD, IGMP, link-local multicast: the link's business, not a flow.
    if parsed.key.is_link_control() {
        count(Counter::LinkControlPackets);
        return;
    }
    account(ctx, &parsed);
    if dir == direction::INGRESS
        && parsed.key.src_port == DNS_PORT
        && matches!(parsed.key.protocol, IPPROTO_UDP | IPPROTO_TCP)
        && let Some(l4) = parsed.l4
    {
        copy_dns(ctx, &parsed.key, l4);
    }
}

#[inline(always)]
fn parse(ctx: &SkBuffContext, dir: u8) -> Option<Parsed> {
    let mut key = FlowKey {
        direction: dir,
        // SAFETY: a helper reading the context's own skb.
        cgroup_id: unsafe { bpf_skb_cgroup_id(ctx.skb.skb) },
        ..FlowKey::default()
    };
    // `skb->protocol` holds the big-endian EtherType in its low 16 bits.
    let protocol = u32::from(u16::from_be(ctx.skb.protocol() as u16));
    let (next, offset) = match protocol {
        ETH_P_IP => {
            let vihl: u8 = ctx.load(0).ok()?;
            if vihl >> 4 != 4 {
                return None;
            }
            let ihl = usize::from(vihl & 0x0f) * 4;
            let frag: u16 = u16::from_be(ctx.load(6).ok()?);
            let proto: u8 = ctx.load(9).ok()?;
            let src: [u8; 4] = ctx.load(12).ok()?;
            let dst: [u8; 4] = ctx.load(16).ok()?;
            key.family = family::IPV4;
            key.src_addr = ipv4_mapped(src);
            key.dst_addr = ipv4_mapped(dst);
            key.protocol = proto;
            // Not the first fragment: no transport header here.
            if frag & 0x1fff != 0 {
                return Some(Parsed {
                    key,
                    l4: None,
                    tcp: 0,
                });
            }
            (proto, ihl)
        }
        ETH_P_IPV6 => {
            let mut next: u8 = ctx.load(6).ok()?;
            key.family = family::IPV6;
            key.src_addr = ctx.load(8).ok()?;
            key.dst_addr = ctx.load(24).ok()?;
            let mut offset = 40;
            for _ in 0..MAX_EXTENSION_HEADERS {
                match next {
                    // Hop-by-hop, routing, destination options: (len + 1) * 8 bytes.
                    0 | 43 | 60 => {
                        let hdr: [u8; 2] = ctx.load(offset).ok()?;
                        next = hdr[0];
                        offset += (usize::from(hdr[1]) + 1) * 8;
                    }
                    // Fragment: 8 bytes; only the first fragment has the transport header.
                    44 => {
                        let hdr: [u8; 4] = ctx.load(offset).ok()?;
                        next = hdr[0];
                        offset += 8;
                        if u16::from_be_bytes([hdr[2], hdr[3]]) & 0xfff8 != 0 {
                            key.protocol = next;
                            return Some(Parsed {
                                key,
                                l4: None,
                                tcp: 0,
                            });
                        }
                    }
                    // Authentication header: (len + 2) * 4 bytes.
                    51 => {
                        let hdr: [u8; 2] = ctx.load(offset).ok()?;
                        next = hdr[0];
                        offset += (usize::from(hdr[1]) + 2) * 4;
                    }
                    _ => break,
                }
            }
            key.protocol = next;
            (next, offset)
        }
        _ => return None,
    };
    let mut tcp = 0;
    match next {
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP => {
            let ports: [u8; 4] = ctx.load(offset).ok()?;
            key.src_port = u16::from_be_bytes([ports[0], ports[1]]);
            key.dst_port = u16::from_be_bytes([ports[2], ports[3]]);
            if next == IPPROTO_TCP {
                let flags: u8 = ctx.load(offset + 13).ok()?;
                let (fin, syn, rst, ack) = (flags & 0x01, flags & 0x02, flags & 0x04, flags & 0x10);
                if syn != 0 && ack == 0 {
                    tcp |= tcp_flags::SYN;
                }
                if syn != 0 && ack != 0 {
                    tcp |= tcp_flags::SYN_ACK;
                }
                if rst != 0 {
                    tcp |= tcp_flags::RST;
                }
                if fin != 0 {
                    tcp |= tcp_flags::FIN;
                }
            }
        }
        // ICMP: the type in `dst_port`, the code in `src_port` (see FlowKey).
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            let tc: [u8; 2] = ctx.load(offset).ok()?;
            key.dst_port = u16::from(tc[0]);
            key.src_port = u16::from(tc[1]);
        }
        _ => return Some(Parsed { key, l4: None, tcp }),
    }
    Some(Parsed {
        key,
        l4: Some(offset),
        tcp,
    })
}

/// `BPF_NOEXIST`: create the key only if it is not there.
const BPF_NOEXIST: u64 = 1;

/// Count a packet in an existing entry; `false` if the key is not in the map.
///
/// Two CPUs updating one key at the same instant may lose an increment: the BPF target has no
/// atomic read-modify-write in stable `core`. A key is one direction of one flow at one hook of
/// one cgroup, whose packets a socket's lock (sending) or one CPU's backlog (receiving)
/// serialises, so in practice they do not race.
#[inline(always)]
fn add(key: &FlowKey, len: u64, now: u64, tcp: u8) -> bool {
    let Some(stats) = FLOWS.get_ptr_mut(key) else {
        return false;
    };
    // SAFETY: the pointer comes from the map lookup and stays valid for this program run.
    unsafe {
        // A connection attempt on a tuple whose connection ended (a port reused, TIME_WAIT
        // reuse): a new entry in place, with its own creation stamp, so the observer counts a
        // new connection.
        if tcp & tcp_flags::SYN != 0 && (*stats).tcp_flags & (tcp_flags::FIN | tcp_flags::RST) != 0
        {
            (*stats).packets = 1;
            (*stats).bytes = len;
            (*stats).first_seen_ns = now;
            (*stats).last_seen_ns = now;
            (*stats).tcp_flags = tcp;
            return true;
        }
        (*stats).packets += 1;
        (*stats).bytes += len;
        (*stats).last_seen_ns = now;
        (*stats).tcp_flags |= tcp;
    }
    true
}

#[inline(always)]
fn account(ctx: &SkBuffContext, parsed: &Parsed) {
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let len = u64::from(ctx.len());
    if add(&parsed.key, len, now, parsed.tcp) {
        return;
    }
    let stats = FlowStats {
        packets: 1,
        bytes: len,
        first_seen_ns: now,
        last_seen_ns: now,
        tcp_flags: parsed.tcp,
        _pad: [0; 7],
    };
    // Only the CPU that creates the key announces it; another CPU that created it in the
    // meantime gets this packet added to its entry instead.
    if FLOWS.insert(&parsed.key, &stats, BPF_NOEXIST).is_err() {
        if !add(&parsed.key, len, now, parsed.tcp) {
            count(Counter::FlowUpdateFailures);
        }
        return;
    }
    match FLOW_EVENTS.reserve::<FlowEvent>(0) {
        Some(mut entry) => {
            entry.write(FlowEvent {
                key: parsed.key,
                first_seen_ns: now,
                tcp_flags: parsed.tcp,
                _pad: [0; 7],
            });
            entry.submit(0);
            level(Counter::FlowRingPending, FLOW_EVENTS.query(BPF_RB_AVAIL_DATA));
        }
        None => count(Counter::LostFlowEvents),
    }
}

#[inline(always)]
fn copy_dns(ctx: &SkBuffContext, key: &FlowKey, l4: usize) {
    let start = if key.protocol == IPPROTO_UDP {
        l4 + 8
    } else {
        // TCP: after the header (data offset) and the 2-byte length prefix.
        let Ok(off) = ctx.load::<u8>(l4 + 12) else {
            return;
        };
        l4 + usize::from(off >> 4) * 4 + 2
    };
    let total = ctx.len() as usize;
    if total <= start {
        return;
    }
    let available = total - start;
    let Some(mut entry) = DNS_EVENTS.reserve::<DnsEvent>(0) else {
        count(Counter::LostDnsEvents);
        return;
    };
    let len = if available > DNS_PAYLOAD_MAX {
        count(Counter::TruncatedDnsMessages);
        DNS_PAYLOAD_MAX
    } else {
        available
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points at a reserved, exclusively owned ring buffer record of
    // `size_of::<DnsEvent>()` bytes; every field is written before submission, and the copy
    // length is bounded to 1..=DNS_PAYLOAD_MAX, the payload's size.
    unsafe {
        (*event).header.cgroup_id = key.cgroup_id;
        (*event).header.timestamp_ns = bpf_ktime_get_boot_ns();
        (*event).header.msg_len = available as u16;
        (*event).header.direction = key.direction;
        (*event).header.protocol = key.protocol;
        (*event).header._pad = [0; 2];
        let bounded = ((len.wrapping_sub(1)) & (DNS_PAYLOAD_MAX - 1)) + 1;
        let ret = bpf_skb_load_bytes(
            ctx.skb.skb.cast(),
            start as u32,
            (&raw mut (*event).payload).cast(),
            bounded as u32,
        );
        if ret != 0 {
            entry.discard(0);
            return;
        }
        (*event).header.payload_len = bounded as u16;
    }
    entry.submit(0);
    level(Counter::DnsRingPending, DNS_EVENTS.query(BPF_RB_AVAIL_DATA));
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
