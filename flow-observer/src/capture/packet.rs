//! IP packets → the flow table's [`Packet`]: IPv4 (fragments: the first carries the ports,
//! the others are attributed to it) and IPv6 with extension headers (hop-by-hop, routing,
//! destination options, fragment, AH, mobility, HIP, shim6); TCP, UDP, SCTP ports, TCP flags,
//! ICMP/ICMPv6 types; and the transport payload present in the capture (for DNS).
//!
//! A packet cut short by the snapshot length gives what its headers that are present say: the
//! addresses and ports, the TCP flags if they are there. Counts are the IP packet's own length
//! (its header says it), as the kernel counts `skb->len`, not the bytes captured.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netpol_ebpf_common::{FlowKey, family, tcp_flags};
use rustc_hash::FxHashMap;

use crate::aggregate::Packet;

const TCP: u8 = 6;
const UDP: u8 = 17;
const SCTP: u8 = 132;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// A packet decoded: the table's input and the transport payload captured.
#[derive(Debug, Clone, Copy)]
pub struct Decoded<'a> {
    pub packet: Packet,
    pub payload: &'a [u8],
}

/// Why an IP packet makes no flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The capture ends inside the IP header, or before the ports.
    Truncated,
    /// Not a valid IP header (bad version or header length).
    Malformed,
    /// A later fragment whose first fragment was not seen (before it).
    OrphanFragment,
    /// Neighbour discovery, MLD, IGMP, link-local multicast: not a flow (as the live agent).
    LinkControl,
}

/// First fragments' ports, until their last fragment: `(src, dst, identification, protocol)`.
#[derive(Debug, Default)]
pub struct Fragments {
    firsts: FxHashMap<(IpAddr, IpAddr, u32, u8), (u16, u16)>,
}

/// Fragmented datagrams remembered at most (a capture of fragments whose last is lost).
const MAX_FRAGMENTED: usize = 65_536;

impl Fragments {
    fn first(&mut self, key: (IpAddr, IpAddr, u32, u8), ports: (u16, u16)) {
        if self.firsts.len() >= MAX_FRAGMENTED {
            self.firsts.clear();
        }
        self.firsts.insert(key, ports);
    }

    fn later(&mut self, key: (IpAddr, IpAddr, u32, u8), last: bool) -> Option<(u16, u16)> {
        if last {
            self.firsts.remove(&key)
        } else {
            self.firsts.get(&key).copied()
        }
    }
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// Where the transport header is, and whether this is a fragment.
struct Network<'a> {
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    /// The IP packet's length, from its header.
    length: u32,
    /// From the transport header to the packet's end (or the capture's).
    l4: &'a [u8],
    /// `(identification, first, last)` of a fragment.
    fragment: Option<(u32, bool, bool)>,
}

fn ipv4(data: &[u8]) -> Result<Network<'_>, Skip> {
    let b0 = *data.first().ok_or(Skip::Truncated)?;
    let ihl = usize::from(b0 & 0x0f) * 4;
    if b0 >> 4 != 4 || ihl < 20 {
        return Err(Skip::Malformed);
    }
    let header = data.get(..20).ok_or(Skip::Truncated)?;
    let total = usize::from(be16(header, 2).ok_or(Skip::Truncated)?);
    // TSO/GSO captures may say 0: then what was captured is the packet.
    let total = if total >= ihl { total } else { data.len() };
    let frag = be16(header, 6).ok_or(Skip::Truncated)?;
    let (offset, more) = (frag & 0x1fff, frag & 0x2000 != 0);
    let id = u32::from(be16(header, 4).ok_or(Skip::Truncated)?);
    let protocol = *header.get(9).ok_or(Skip::Truncated)?;
    let src = <[u8; 4]>::try_from(header.get(12..16).ok_or(Skip::Truncated)?)
        .map_err(|_| Skip::Truncated)?;
    let dst = <[u8; 4]>::try_from(header.get(16..20).ok_or(Skip::Truncated)?)
        .map_err(|_| Skip::Truncated)?;
    let end = total.min(data.len());
    let l4 = data.get(ihl..end).unwrap_or(&[]);
    Ok(Network {
        src: IpAddr::V4(Ipv4Addr::from(src)),
        dst: IpAddr::V4(Ipv4Addr::from(dst)),
        protocol,
        length: u32::try_from(total).unwrap_or(u32::MAX),
        l4,
        fragment: (offset != 0 || more).then_some((id, offset == 0, !more)),
    })
}

/// Extension headers followed at most.
const MAX_EXTENSIONS: usize = 16;

fn ipv6(data: &[u8]) -> Result<Network<'_>, Skip> {
    let header = data.get(..40).ok_or(Skip::Truncated)?;
    let payload = usize::from(be16(header, 4).ok_or(Skip::Truncated)?);
    let mut next = *header.get(6).ok_or(Skip::Truncated)?;
    let src: [u8; 16] = header
        .get(8..24)
        .and_then(|s| s.try_into().ok())
        .ok_or(Skip::Truncated)?;
    let dst: [u8; 16] = header
        .get(24..40)
        .and_then(|s| s.try_into().ok())
        .ok_or(Skip::Truncated)?;
    // A jumbogram says 0: then what was captured is the packet.
    let total = if payload == 0 {
        data.len()
    } else {
        40 + payload
    };
    let end = total.min(data.len());
    let mut at = 40;
    let mut fragment = None;
    for _ in 0..MAX_EXTENSIONS {
        match next {
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6: (len + 1) * 8.
            0 | 43 | 60 | 135 | 139 | 140 => {
                next = *data.get(at).ok_or(Skip::Truncated)?;
                at += (usize::from(*data.get(at + 1).ok_or(Skip::Truncated)?) + 1) * 8;
            }
            44 => {
                next = *data.get(at).ok_or(Skip::Truncated)?;
                let off_m = be16(data, at + 2).ok_or(Skip::Truncated)?;
                let id = be32(data, at + 4).ok_or(Skip::Truncated)?;
                let (offset, more) = (off_m >> 3, off_m & 1 != 0);
                fragment = (offset != 0 || more).then_some((id, offset == 0, !more));
                at += 8;
                if offset != 0 {
                    break;
                }
            }
            // Authentication header: (len + 2) * 4.
            51 => {
                next = *data.get(at).ok_or(Skip::Truncated)?;
                at += (usize::from(*data.get(at + 1).ok_or(Skip::Truncated)?) + 2) * 4;
            }
            _ => break,
        }
    }
    Ok(Network {
        src: IpAddr::V6(Ipv6Addr::from(src)),
        dst: IpAddr::V6(Ipv6Addr::from(dst)),
        protocol: next,
        length: u32::try_from(total).unwrap_or(u32::MAX),
        l4: data.get(at..end).unwrap_or(&[]),
        fragment,
    })
}

/// The packet's flow, or why it has none. `time_ns`: when it was captured.
pub fn decode<'a>(
    ip: &'a [u8],
    time_ns: u64,
    fragments: &mut Fragments,
) -> Result<Decoded<'a>, Skip> {
    let net = match ip.first().map(|b| b >> 4) {
        Some(4) => ipv4(ip)?,
        Some(6) => ipv6(ip)?,
        Some(_) => return Err(Skip::Malformed),
        None => return Err(Skip::Truncated),
    };
    let mut packet = Packet {
        protocol: net.protocol,
        src: net.src,
        src_port: 0,
        dst: net.dst,
        dst_port: 0,
        bytes: net.length,
        tcp_flags: 0,
        time_ns,
    };
    let key = (net.src, net.dst, 0, net.protocol);
    if let Some((id, first, last)) = net.fragment
        && !first
    {
        let (src_port, dst_port) = fragments
            .later((key.0, key.1, id, key.3), last)
            .ok_or(Skip::OrphanFragment)?;
        packet.src_port = src_port;
        packet.dst_port = dst_port;
        return Ok(Decoded {
            packet,
            payload: &[],
        });
    }
    let l4 = net.l4;
    let mut payload: &[u8] = &[];
    match net.protocol {
        TCP | UDP | SCTP => {
            packet.src_port = be16(l4, 0).ok_or(Skip::Truncated)?;
            packet.dst_port = be16(l4, 2).ok_or(Skip::Truncated)?;
            if net.protocol == TCP {
                if let Some(&raw) = l4.get(13) {
                    packet.tcp_flags = flags(raw);
                }
                if let Some(&off) = l4.get(12) {
                    payload = l4.get(usize::from(off >> 4) * 4..).unwrap_or(&[]);
                }
            } else if net.protocol == UDP {
                payload = l4.get(8..).unwrap_or(&[]);
            }
        }
        ICMP | ICMPV6 => {
            packet.dst_port = u16::from(*l4.first().ok_or(Skip::Truncated)?);
        }
        _ => {}
    }
    if let Some((id, _, _)) = net.fragment {
        fragments.first(
            (key.0, key.1, id, key.3),
            (packet.src_port, packet.dst_port),
        );
    }
    if link_control(&packet) {
        return Err(Skip::LinkControl);
    }
    Ok(Decoded { packet, payload })
}

/// The kernel's flag bits of a TCP header's flags byte.
fn flags(raw: u8) -> u8 {
    let (fin, syn, rst, ack) = (raw & 0x01, raw & 0x02, raw & 0x04, raw & 0x10);
    let mut f = 0;
    if syn != 0 {
        f |= if ack == 0 {
            tcp_flags::SYN
        } else {
            tcp_flags::SYN_ACK
        };
    }
    if rst != 0 {
        f |= tcp_flags::RST;
    }
    if fin != 0 {
        f |= tcp_flags::FIN;
    }
    f
}

/// The live agent's rule ([`FlowKey::is_link_control`]), on a packet.
fn link_control(p: &Packet) -> bool {
    let (fam, dst_addr) = match p.dst {
        IpAddr::V4(a) => (family::IPV4, a.to_ipv6_mapped().octets()),
        IpAddr::V6(a) => (family::IPV6, a.octets()),
    };
    FlowKey {
        dst_addr,
        protocol: p.protocol,
        dst_port: p.dst_port,
        family: fam,
        ..FlowKey::default()
    }
    .is_link_control()
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;

    fn v4(proto: u8, frag: u16, id: u16, l4: &[u8]) -> Vec<u8> {
        let total = u16::try_from(20 + l4.len()).unwrap();
        let mut p = vec![0x45, 0];
        p.extend(total.to_be_bytes());
        p.extend(id.to_be_bytes());
        p.extend(frag.to_be_bytes());
        p.extend([64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        p.extend(l4);
        p
    }

    #[test]
    fn later_fragments_take_the_first_ones_ports() {
        let mut f = Fragments::default();
        let udp = [0x9c, 0x40, 0, 53, 0, 16, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        let first = v4(UDP, 0x2000, 7, &udp);
        let d = decode(&first, 1, &mut f).unwrap();
        assert_eq!((d.packet.src_port, d.packet.dst_port), (40000, 53));
        let last = v4(UDP, 2, 7, &[9; 8]);
        let d = decode(&last, 2, &mut f).unwrap();
        assert_eq!(
            (d.packet.src_port, d.packet.dst_port, d.packet.bytes),
            (40000, 53, 28)
        );
        assert_eq!(decode(&last, 3, &mut f).unwrap_err(), Skip::OrphanFragment);
    }

    #[test]
    fn a_header_cut_short_gives_what_is_there() {
        let mut f = Fragments::default();
        let tcp = v4(TCP, 0, 0, &[0x9c, 0x40, 0, 80, 0, 0, 0, 1]);
        let d = decode(&tcp, 1, &mut f).unwrap();
        assert_eq!((d.packet.dst_port, d.packet.tcp_flags), (80, 0));
        assert_eq!(decode(&tcp[..22], 1, &mut f).unwrap_err(), Skip::Truncated);
        assert_eq!(decode(&tcp[..10], 1, &mut f).unwrap_err(), Skip::Truncated);
    }
}
