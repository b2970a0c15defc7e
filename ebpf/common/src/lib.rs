//! The types netpol's kernel programs and the flow observer share, byte for byte.
//!
//! ```text
//! cgroup_skb ingress + egress (one program per direction, on the cgroup v2 root)
//!   packet ──parse──> FlowKey ──LRU hash FLOWS──> FlowStats        (read periodically)
//!                        └─ first packet of a key ──ring buffer──> FlowEvent  (new flows)
//!   UDP/TCP port 53 answer ──ring buffer──> DnsEvent (header + first DNS_PAYLOAD_MAX bytes)
//!   anything dropped or lost ──per-CPU array──> Counter                (read periodically)
//! ```
//!
//! Every type is `#[repr(C)]` with its padding spelled out as `_pad` fields and a compile-time
//! size assertion, so the kernel (which hashes every byte of a map key) and userspace agree on
//! the layout and no byte is ever uninitialised. Kernel code must zero the padding.
//!
//! Conventions: addresses are in network byte order, IPv4 as IPv4-mapped IPv6 (`::ffff:a.b.c.d`)
//! with [`FlowKey::family`] telling which the packet was; ports are in host byte order; times
//! are nanoseconds of `CLOCK_BOOTTIME` (`bpf_ktime_get_boot_ns`), which keeps counting through
//! suspend.
//!
//! Feature `user`: the userspace side implements `aya::Pod` for the map types (the only decoding
//! of map memory allowed: no `transmute`, no `repr(packed)`); ring buffer records are decoded
//! from bytes by [`FlowEvent::from_bytes`] and [`DnsEvent::from_bytes`], without `unsafe`.
#![no_std]

#[cfg(test)]
extern crate std;

use core::net::{IpAddr, Ipv6Addr};

/// Which hook saw the packet: [`FlowKey::direction`], [`DnsEvent::direction`].
pub mod direction {
    /// cgroup_skb/ingress: the packet is arriving at a local socket.
    pub const INGRESS: u8 = 0;
    /// cgroup_skb/egress: the packet is leaving a local socket.
    pub const EGRESS: u8 = 1;
}

/// The packet's IP version: [`FlowKey::family`].
pub mod family {
    pub const IPV4: u8 = 4;
    pub const IPV6: u8 = 6;
}

/// Bits of [`FlowStats::tcp_flags`] and [`FlowEvent::tcp_flags`]: which kinds of TCP segment
/// were seen. A flow whose first segment was not a bare `SYN` was already open when the
/// observer started, or its start was missed.
pub mod tcp_flags {
    /// `SYN` without `ACK`: a connection attempt.
    pub const SYN: u8 = 1 << 0;
    /// `SYN` + `ACK`: the peer accepted.
    pub const SYN_ACK: u8 = 1 << 1;
    /// `RST`: refused or aborted.
    pub const RST: u8 = 1 << 2;
    /// `FIN`: closed in an orderly way.
    pub const FIN: u8 = 1 << 3;
}

/// A flow as one hook sees it: the key of the `FLOWS` LRU hash map.
///
/// Addresses and ports are the packet's own (source, destination), so the two directions of a
/// connection are two keys; pairing them is the observer's job.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Source address, network byte order; IPv4 is IPv4-mapped ([`ipv4_mapped`]).
    pub src_addr: [u8; 16],
    /// Destination address, same encoding as `src_addr`.
    pub dst_addr: [u8; 16],
    /// The cgroup v2 id of the local socket (`bpf_skb_cgroup_id`): which pod.
    pub cgroup_id: u64,
    /// Source port in host byte order; the code for ICMP/ICMPv6; 0 for other protocols
    /// without ports.
    pub src_port: u16,
    /// Destination port in host byte order; the type for ICMP/ICMPv6; 0 for other protocols
    /// without ports.
    pub dst_port: u16,
    /// IANA protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, 132 SCTP).
    pub protocol: u8,
    /// [`direction::INGRESS`] or [`direction::EGRESS`].
    pub direction: u8,
    /// [`family::IPV4`] or [`family::IPV6`].
    pub family: u8,
    /// Zero.
    pub _pad: u8,
}

const _: () = assert!(size_of::<FlowKey>() == 48);
const _: () = assert!(align_of::<FlowKey>() == 8);

impl FlowKey {
    /// Whether the packet is the link's own control traffic rather than a flow of the pod:
    /// ICMPv6 neighbour and router discovery, redirects, MLD and multicast router discovery
    /// (types 130-137, 141-143, 148-153; the type is in `dst_port`), IGMP, and anything sent
    /// to link-local multicast (`ffx2::/16`, `224.0.0.0/24`). The kernel sends most of it on
    /// its own; policy never sees it as a connection.
    #[must_use]
    pub fn is_link_control(&self) -> bool {
        const ICMPV6: u8 = 58;
        const IGMP: u8 = 2;
        let [d0, d1, ..] = self.dst_addr;
        let [.., a, b, c, _] = self.dst_addr;
        match self.family {
            family::IPV4 => self.protocol == IGMP || (a == 224 && b == 0 && c == 0),
            _ => {
                (self.protocol == ICMPV6
                    && matches!(self.dst_port, 130..=137 | 141..=143 | 148..=153))
                    || (d0 == 0xff && d1 & 0x0f == 0x02)
            }
        }
    }

    /// The source address as the packet carried it (IPv4 for an IPv4 packet).
    #[must_use]
    pub fn src_ip(&self) -> IpAddr {
        address(self.family, self.src_addr)
    }

    /// The destination address as the packet carried it.
    #[must_use]
    pub fn dst_ip(&self) -> IpAddr {
        address(self.family, self.dst_addr)
    }
}

/// `a.b.c.d` as the 16 bytes of `::ffff:a.b.c.d`, the encoding of IPv4 in [`FlowKey`].
#[must_use]
pub const fn ipv4_mapped(octets: [u8; 4]) -> [u8; 16] {
    let [a, b, c, d] = octets;
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d]
}

/// IPv4 for an IPv4 packet's mapped address; anything else (including a malformed IPv4 key,
/// which the kernel never writes) stays the IPv6 address the bytes spell.
fn address(family: u8, bytes: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(bytes);
    match v6.to_ipv4_mapped() {
        Some(v4) if family == family::IPV4 => IpAddr::V4(v4),
        _ => IpAddr::V6(v6),
    }
}

/// What the kernel has counted for one [`FlowKey`]: the value of the `FLOWS` map.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub packets: u64,
    /// IP packet bytes (`skb->len`), headers included.
    pub bytes: u64,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    /// [`tcp_flags`] bits of every segment seen so far.
    pub tcp_flags: u8,
    /// Zero.
    pub _pad: [u8; 7],
}

const _: () = assert!(size_of::<FlowStats>() == 40);
const _: () = assert!(align_of::<FlowStats>() == 8);

/// A flow the kernel had not seen before (or that the LRU had evicted): one record of the
/// `FLOW_EVENTS` ring buffer. Counts come later from the `FLOWS` map.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowEvent {
    pub key: FlowKey,
    pub first_seen_ns: u64,
    /// [`tcp_flags`] bits of the first segment (a bare `SYN` means the flow's real start).
    pub tcp_flags: u8,
    /// Zero.
    pub _pad: [u8; 7],
}

const _: () = assert!(size_of::<FlowEvent>() == 64);
const _: () = assert!(align_of::<FlowEvent>() == 8);

/// How many bytes of a DNS message a [`DnsEvent`] carries: the classic UDP limit (RFC 1035).
/// Longer (EDNS0, TCP) messages are cut; [`DnsEventHeader::msg_len`] tells.
pub const DNS_PAYLOAD_MAX: usize = 512;

/// The fixed part of a [`DnsEvent`].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DnsEventHeader {
    /// The cgroup v2 id of the local socket (the pod that asked, for an answer on ingress).
    pub cgroup_id: u64,
    pub timestamp_ns: u64,
    /// The DNS message's full length (without TCP's 2-byte length prefix).
    pub msg_len: u16,
    /// How many bytes of [`DnsEvent::payload`] are the message: `min(msg_len, DNS_PAYLOAD_MAX)`.
    pub payload_len: u16,
    /// [`direction::INGRESS`] or [`direction::EGRESS`].
    pub direction: u8,
    /// 17 (UDP) or 6 (TCP).
    pub protocol: u8,
    /// Zero.
    pub _pad: [u8; 2],
}

const _: () = assert!(size_of::<DnsEventHeader>() == 24);
const _: () = assert!(align_of::<DnsEventHeader>() == 8);

/// One record of the `DNS_EVENTS` ring buffer: a DNS message from or to port 53, for the
/// observer's IP → name cache. Fixed size, because `bpf_ringbuf_reserve` needs a constant.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsEvent {
    pub header: DnsEventHeader,
    /// The message's first `header.payload_len` bytes; the rest is unspecified.
    pub payload: [u8; DNS_PAYLOAD_MAX],
}

const _: () = assert!(size_of::<DnsEvent>() == 24 + DNS_PAYLOAD_MAX);
const _: () = assert!(align_of::<DnsEvent>() == 8);

impl DnsEvent {
    /// All zero: what the kernel starts from (arrays this long have no `Default`).
    pub const ZEROED: Self = Self {
        header: DnsEventHeader {
            cgroup_id: 0,
            timestamp_ns: 0,
            msg_len: 0,
            payload_len: 0,
            direction: 0,
            protocol: 0,
            _pad: [0; 2],
        },
        payload: [0; DNS_PAYLOAD_MAX],
    };

    /// The DNS message bytes this event carries (never more than the payload holds).
    #[must_use]
    pub fn message(&self) -> &[u8] {
        let len = usize::from(self.header.payload_len).min(DNS_PAYLOAD_MAX);
        self.payload.get(..len).unwrap_or_default()
    }
}

// SAFETY: both types are `#[repr(C)]`, contain only integers and byte arrays with their padding
// spelled out as fields (asserted sizes above), so every bit pattern is a valid value and no
// byte is uninitialised.
#[cfg(feature = "user")]
#[expect(unsafe_code, reason = "aya reads map keys and values as plain bytes")]
unsafe impl aya::Pod for FlowKey {}
#[cfg(feature = "user")]
#[expect(unsafe_code, reason = "aya reads map keys and values as plain bytes")]
unsafe impl aya::Pod for FlowStats {}

/// Little-endian integers at a position of a record, for decoding ring buffer bytes.
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

impl FlowKey {
    /// Decode the 48 bytes of a key (layout above; the kernel is little-endian `bpfel`).
    #[must_use]
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        Some(Self {
            src_addr: b.get(0..16)?.try_into().ok()?,
            dst_addr: b.get(16..32)?.try_into().ok()?,
            cgroup_id: u64_at(b, 32)?,
            src_port: u16_at(b, 40)?,
            dst_port: u16_at(b, 42)?,
            protocol: *b.get(44)?,
            direction: *b.get(45)?,
            family: *b.get(46)?,
            _pad: 0,
        })
    }
}

impl FlowEvent {
    /// Decode a `FLOW_EVENTS` record.
    #[must_use]
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() < size_of::<Self>() {
            return None;
        }
        Some(Self {
            key: FlowKey::from_bytes(b.get(..48)?)?,
            first_seen_ns: u64_at(b, 48)?,
            tcp_flags: *b.get(56)?,
            _pad: [0; 7],
        })
    }
}

impl DnsEvent {
    /// Decode a `DNS_EVENTS` record.
    #[must_use]
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() < size_of::<Self>() {
            return None;
        }
        let mut event = Self::ZEROED;
        event.header.cgroup_id = u64_at(b, 0)?;
        event.header.timestamp_ns = u64_at(b, 8)?;
        event.header.msg_len = u16_at(b, 16)?;
        event.header.payload_len = u16_at(b, 18)?.min(DNS_PAYLOAD_MAX as u16);
        event.header.direction = *b.get(20)?;
        event.header.protocol = *b.get(21)?;
        let len = usize::from(event.header.payload_len);
        event
            .payload
            .get_mut(..len)?
            .copy_from_slice(b.get(24..24 + len)?);
        Some(event)
    }
}

/// Slots of the `COUNTERS` per-CPU array (`u64` each): what the kernel could not report
/// otherwise. The observer sums the CPUs and exports each as a Prometheus counter.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counter {
    /// `FLOW_EVENTS` was full: a new flow was counted in `FLOWS` but not announced.
    LostFlowEvents = 0,
    /// `DNS_EVENTS` was full: a DNS message was not copied.
    LostDnsEvents = 1,
    /// Inserting into `FLOWS` failed (the LRU evicts, so this should stay at zero).
    FlowUpdateFailures = 2,
    /// Packets too short or too odd to parse (not IPv4/IPv6, truncated headers).
    UnparsedPackets = 3,
    /// DNS messages longer than [`DNS_PAYLOAD_MAX`], sent cut.
    TruncatedDnsMessages = 4,
    /// Not a counter: the bytes waiting in `FLOW_EVENTS` when a new flow was last written
    /// (`BPF_RB_AVAIL_DATA`), for the ring's fill level. Userspace takes the largest over CPUs.
    FlowRingPending = 5,
    /// The same for `DNS_EVENTS`.
    DnsRingPending = 6,
    /// Packets of the link's own control traffic, not recorded as flows: IPv6 neighbour and
    /// router discovery, MLD, IGMP, and anything to link-local multicast (`ff02::/16`,
    /// `224.0.0.0/24`).
    LinkControlPackets = 7,
}

impl Counter {
    /// Every counter, in slot order.
    pub const ALL: [Self; 8] = [
        Self::LostFlowEvents,
        Self::LostDnsEvents,
        Self::FlowUpdateFailures,
        Self::UnparsedPackets,
        Self::TruncatedDnsMessages,
        Self::FlowRingPending,
        Self::DnsRingPending,
        Self::LinkControlPackets,
    ];
    /// The number of slots the `COUNTERS` array needs.
    pub const COUNT: u32 = Self::ALL.len() as u32;

    /// The slot in the `COUNTERS` array.
    #[must_use]
    pub const fn index(self) -> u32 {
        self as u32
    }

    /// Whether the slot is a level (a gauge: the largest over CPUs), not a count (summed).
    #[must_use]
    pub const fn is_level(self) -> bool {
        matches!(self, Self::FlowRingPending | Self::DnsRingPending)
    }

    /// A stable snake_case name, for metrics.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::LostFlowEvents => "lost_flow_events",
            Self::LostDnsEvents => "lost_dns_events",
            Self::FlowUpdateFailures => "flow_update_failures",
            Self::UnparsedPackets => "unparsed_packets",
            Self::TruncatedDnsMessages => "truncated_dns_messages",
            Self::FlowRingPending => "flow_ring_pending_bytes",
            Self::LinkControlPackets => "link_control_packets",
            Self::DnsRingPending => "dns_ring_pending_bytes",
        }
    }
}

#[cfg(test)]
mod tests {
    use core::mem::{align_of, size_of, size_of_val};
    use core::net::Ipv4Addr;
    use std::collections::HashSet;

    use super::*;

    #[test]
    #[expect(clippy::unwrap_used, reason = "test inputs")]
    fn link_control_traffic_is_not_a_flow() {
        let v6 = |dst: &str, protocol: u8, icmp_type: u16| FlowKey {
            family: family::IPV6,
            dst_addr: dst.parse::<Ipv6Addr>().unwrap().octets(),
            protocol,
            dst_port: icmp_type,
            ..FlowKey::default()
        };
        let v4 = |dst: [u8; 4], protocol: u8| FlowKey {
            family: family::IPV4,
            dst_addr: Ipv4Addr::from(dst).to_ipv6_mapped().octets(),
            protocol,
            ..FlowKey::default()
        };
        // Neighbour solicitation to a unicast neighbour, router solicitation, MLDv2 report.
        assert!(v6("fd00::2", 58, 135).is_link_control());
        assert!(v6("ff02::2", 58, 133).is_link_control());
        assert!(v6("ff02::16", 58, 143).is_link_control());
        // mDNS to ff02::fb, all-hosts 224.0.0.1, IGMP.
        assert!(v6("ff02::fb", 17, 5353).is_link_control());
        assert!(v4([224, 0, 0, 1], 1).is_link_control());
        assert!(v4([239, 1, 1, 1], 2).is_link_control());
        // Flows: echo requests, site-scope multicast, a pod's UDP.
        assert!(!v6("fd00::2", 58, 128).is_link_control());
        assert!(!v6("ff05::1:3", 17, 547).is_link_control());
        assert!(!v4([10, 0, 0, 5], 17).is_link_control());
        assert!(!v4([239, 1, 1, 1], 17).is_link_control());
    }

    /// The sum of the fields' sizes equals the struct's size: `repr(C)` added no hidden padding,
    /// so every byte is a named field that the kernel writes.
    macro_rules! assert_no_hidden_padding {
        ($value:expr, $ty:ty { $($field:ident),+ $(,)? }) => {{
            let value: $ty = $value;
            let fields = 0 $(+ size_of_val(&value.$field))+;
            assert_eq!(fields, size_of::<$ty>(), stringify!($ty));
        }};
    }

    #[test]
    fn every_byte_is_a_named_field() {
        assert_no_hidden_padding!(
            FlowKey::default(),
            FlowKey {
                src_addr,
                dst_addr,
                cgroup_id,
                src_port,
                dst_port,
                protocol,
                direction,
                family,
                _pad,
            }
        );
        assert_no_hidden_padding!(
            FlowStats::default(),
            FlowStats {
                packets,
                bytes,
                first_seen_ns,
                last_seen_ns,
                tcp_flags,
                _pad,
            }
        );
        assert_no_hidden_padding!(
            FlowEvent::default(),
            FlowEvent {
                key,
                first_seen_ns,
                tcp_flags,
                _pad,
            }
        );
        assert_no_hidden_padding!(
            DnsEventHeader::default(),
            DnsEventHeader {
                cgroup_id,
                timestamp_ns,
                msg_len,
                payload_len,
                direction,
                protocol,
                _pad,
            }
        );
        assert_no_hidden_padding!(DnsEvent::ZEROED, DnsEvent { header, payload });
    }

    #[test]
    fn sizes_and_alignments_are_the_abi() {
        assert_eq!((size_of::<FlowKey>(), align_of::<FlowKey>()), (48, 8));
        assert_eq!((size_of::<FlowStats>(), align_of::<FlowStats>()), (40, 8));
        assert_eq!((size_of::<FlowEvent>(), align_of::<FlowEvent>()), (64, 8));
        assert_eq!(
            (size_of::<DnsEventHeader>(), align_of::<DnsEventHeader>()),
            (24, 8)
        );
        assert_eq!((size_of::<DnsEvent>(), align_of::<DnsEvent>()), (536, 8));
        // Ring buffer records are 8-byte aligned; a size that is a multiple of 8 wastes nothing.
        assert_eq!(size_of::<FlowEvent>() % 8, 0);
        assert_eq!(size_of::<DnsEvent>() % 8, 0);
    }

    #[test]
    fn field_offsets_are_fixed() {
        use core::mem::offset_of;
        assert_eq!(offset_of!(FlowKey, dst_addr), 16);
        assert_eq!(offset_of!(FlowKey, cgroup_id), 32);
        assert_eq!(offset_of!(FlowKey, src_port), 40);
        assert_eq!(offset_of!(FlowKey, dst_port), 42);
        assert_eq!(offset_of!(FlowKey, protocol), 44);
        assert_eq!(offset_of!(FlowKey, direction), 45);
        assert_eq!(offset_of!(FlowKey, family), 46);
        assert_eq!(offset_of!(FlowEvent, first_seen_ns), 48);
        assert_eq!(offset_of!(DnsEventHeader, msg_len), 16);
        assert_eq!(offset_of!(DnsEvent, payload), 24);
    }

    #[test]
    fn addresses_read_back_in_the_packets_family() {
        let key = FlowKey {
            src_addr: ipv4_mapped([10, 0, 0, 1]),
            dst_addr: ipv4_mapped([192, 0, 2, 7]),
            family: family::IPV4,
            ..FlowKey::default()
        };
        assert_eq!(key.src_ip(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(key.dst_ip(), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));

        let v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        let key = FlowKey {
            src_addr: v6.octets(),
            dst_addr: ipv4_mapped([10, 0, 0, 1]),
            family: family::IPV6,
            ..FlowKey::default()
        };
        assert_eq!(key.src_ip(), IpAddr::V6(v6));
        // An IPv6 packet keeps its (odd) mapped address as IPv6.
        assert_eq!(
            key.dst_ip(),
            IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped())
        );
    }

    #[test]
    fn dns_message_is_the_valid_prefix_even_when_the_length_lies() {
        let mut event = DnsEvent::ZEROED;
        event
            .payload
            .iter_mut()
            .zip([1, 2, 3])
            .for_each(|(byte, value)| *byte = value);
        event.header.payload_len = 3;
        assert_eq!(event.message(), &[1, 2, 3]);
        event.header.payload_len = u16::MAX;
        assert_eq!(event.message().len(), DNS_PAYLOAD_MAX);
    }

    #[test]
    fn counters_have_distinct_dense_slots_and_names() {
        for (slot, counter) in Counter::ALL.iter().enumerate() {
            assert_eq!(counter.index() as usize, slot);
        }
        let names: HashSet<&str> = Counter::ALL.iter().map(|counter| counter.name()).collect();
        assert_eq!(names.len(), Counter::COUNT as usize);
    }

    #[test]
    fn tcp_flag_bits_are_distinct() {
        let bits = [
            tcp_flags::SYN,
            tcp_flags::SYN_ACK,
            tcp_flags::RST,
            tcp_flags::FIN,
        ];
        assert_eq!(bits.iter().fold(0, |all, bit| all | bit).count_ones(), 4);
        assert_ne!(direction::INGRESS, direction::EGRESS);
    }
}
