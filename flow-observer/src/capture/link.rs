//! Link layers → the IP packet they carry.
//!
//! Ethernet (802.1Q, 802.1ad and QinQ tags, MPLS label stacks with or without a pseudowire
//! control word, PPPoE sessions), Linux cooked captures v1 and v2, raw IPv4/IPv6, BSD
//! loopback (`DLT_NULL`, either byte order, and OpenBSD's `DLT_LOOP`) and Linux NFLOG.
//! Anything else is an unknown link type: the caller counts it.

/// Link-layer types (`LINKTYPE_*` of tcpdump.org) this module reads.
pub mod linktype {
    pub const NULL: i32 = 0;
    pub const ETHERNET: i32 = 1;
    /// `DLT_RAW` as most systems number it in files written without translation.
    pub const RAW_DLT12: i32 = 12;
    /// `DLT_RAW` on OpenBSD.
    pub const RAW_DLT14: i32 = 14;
    pub const RAW: i32 = 101;
    pub const LOOP: i32 = 108;
    pub const LINUX_SLL: i32 = 113;
    pub const IPV4: i32 = 228;
    pub const IPV6: i32 = 229;
    pub const NFLOG: i32 = 239;
    pub const LINUX_SLL2: i32 = 276;
}

/// Why a frame carries no IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotIp {
    /// ARP, LLDP, STP, IPX…: not IP, not an error.
    Other,
    /// The frame ends inside the link-layer headers (snaplen).
    Truncated,
    /// The link type is not one this module reads.
    UnknownLinkType,
}

/// Whether frames of `linktype` can be read.
pub fn supported(linktype: i32) -> bool {
    use linktype::*;
    matches!(
        linktype,
        NULL | ETHERNET
            | RAW_DLT12
            | RAW_DLT14
            | RAW
            | LOOP
            | LINUX_SLL
            | IPV4
            | IPV6
            | NFLOG
            | LINUX_SLL2
    )
}

/// The IP packet (v4 or v6, its first byte says which) inside a frame.
pub fn ip_packet(linktype: i32, frame: &[u8]) -> Result<&[u8], NotIp> {
    use linktype::*;
    match linktype {
        ETHERNET => ethernet(frame, 0),
        LINUX_SLL => {
            let protocol = be16(frame, 14).ok_or(NotIp::Truncated)?;
            ethertype(protocol, frame.get(16..).ok_or(NotIp::Truncated)?, 0)
        }
        LINUX_SLL2 => {
            let protocol = be16(frame, 0).ok_or(NotIp::Truncated)?;
            ethertype(protocol, frame.get(20..).ok_or(NotIp::Truncated)?, 0)
        }
        RAW | RAW_DLT12 | RAW_DLT14 | IPV4 | IPV6 => by_version(frame),
        // The address family in the capturing host's byte order (DLT_LOOP: network order):
        // AF_INET is 2 everywhere, AF_INET6 is 10, 24, 28 or 30 depending on the system. The
        // packet's version nibble says the same more simply.
        NULL | LOOP => {
            let le = u32::from_le_bytes(array4(frame, 0).ok_or(NotIp::Truncated)?);
            let family = if le > 0xffff { le.swap_bytes() } else { le };
            match family {
                2 | 10 | 24 | 28 | 30 => by_version(frame.get(4..).ok_or(NotIp::Truncated)?),
                _ => Err(NotIp::Other),
            }
        }
        NFLOG => nflog(frame),
        _ => Err(NotIp::UnknownLinkType),
    }
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn array4(data: &[u8], at: usize) -> Option<[u8; 4]> {
    data.get(at..at + 4)?.try_into().ok()
}

/// A packet that is IP by its version nibble.
fn by_version(data: &[u8]) -> Result<&[u8], NotIp> {
    match data.first().map(|b| b >> 4) {
        Some(4 | 6) => Ok(data),
        Some(_) => Err(NotIp::Other),
        None => Err(NotIp::Truncated),
    }
}

/// Nested encapsulations followed at most (tags, labels, pseudowires).
const MAX_DEPTH: u8 = 16;

fn ethernet(frame: &[u8], depth: u8) -> Result<&[u8], NotIp> {
    let kind = be16(frame, 12).ok_or(NotIp::Truncated)?;
    ethertype(kind, frame.get(14..).ok_or(NotIp::Truncated)?, depth)
}

/// What follows an EtherType (Ethernet, SLL, SLL2, a VLAN tag).
fn ethertype(kind: u16, rest: &[u8], depth: u8) -> Result<&[u8], NotIp> {
    if depth > MAX_DEPTH {
        return Err(NotIp::Other);
    }
    match kind {
        0x0800 | 0x86dd => by_version(rest),
        // 802.1Q, 802.1ad, and the pre-standard QinQ tags: 2 bytes of tag, then the type.
        0x8100 | 0x88a8 | 0x9100 | 0x9200 => {
            let inner = be16(rest, 2).ok_or(NotIp::Truncated)?;
            ethertype(inner, rest.get(4..).ok_or(NotIp::Truncated)?, depth + 1)
        }
        0x8847 | 0x8848 => mpls(rest, depth + 1),
        // PPPoE session: 6 bytes, then the PPP protocol (IPv4 0x0021, IPv6 0x0057).
        0x8864 => match be16(rest, 6).ok_or(NotIp::Truncated)? {
            0x0021 | 0x0057 => by_version(rest.get(8..).ok_or(NotIp::Truncated)?),
            _ => Err(NotIp::Other),
        },
        _ => Err(NotIp::Other),
    }
}

/// An MPLS label stack (4 bytes a label, the last with the bottom-of-stack bit), then IP by
/// its version nibble, or a pseudowire: a 4-byte control word (first nibble 0) and Ethernet.
fn mpls(mut data: &[u8], depth: u8) -> Result<&[u8], NotIp> {
    for _ in 0..MAX_DEPTH {
        let [_, _, bits, _] = array4(data, 0).ok_or(NotIp::Truncated)?;
        let bottom = bits & 1 != 0;
        data = data.get(4..).ok_or(NotIp::Truncated)?;
        if bottom {
            return match data.first().map(|b| b >> 4) {
                Some(4 | 6) => Ok(data),
                Some(0) => ethernet(data.get(4..).ok_or(NotIp::Truncated)?, depth + 1),
                Some(_) => Err(NotIp::Other),
                None => Err(NotIp::Truncated),
            };
        }
    }
    Err(NotIp::Other)
}

/// Linux NFLOG: family, version, resource id, then TLVs (length and type in the capturing
/// host's byte order, little-endian in practice; padded to 4 bytes); type 9 is the packet.
fn nflog(frame: &[u8]) -> Result<&[u8], NotIp> {
    let mut at = 4;
    if frame.len() < at {
        return Err(NotIp::Truncated);
    }
    while let Some([l0, l1, k0, k1]) = array4(frame, at) {
        let len = usize::from(u16::from_le_bytes([l0, l1]));
        let kind = u16::from_le_bytes([k0, k1]);
        if len < 4 {
            return Err(NotIp::Other);
        }
        if kind == 9 {
            let end = (at + len).min(frame.len());
            return by_version(frame.get(at + 4..end).ok_or(NotIp::Truncated)?);
        }
        at += len.div_ceil(4) * 4;
    }
    Err(NotIp::Truncated)
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    const IP: [u8; 4] = [0x45, 0, 0, 20];

    #[test]
    fn tags_labels_and_cooked_headers_lead_to_the_ip_packet() {
        let mut eth = vec![0u8; 12];
        eth.extend([0x88, 0xa8, 0, 1, 0x81, 0x00, 0, 2, 0x08, 0x00]);
        eth.extend(IP);
        assert_eq!(ip_packet(linktype::ETHERNET, &eth).unwrap(), IP);
        let mut mpls = vec![0u8; 12];
        mpls.extend([0x88, 0x47, 0, 0x10, 0, 64, 0, 0x20, 1, 64]);
        mpls.extend(IP);
        assert_eq!(ip_packet(linktype::ETHERNET, &mpls).unwrap(), IP);
        let mut null = 30u32.to_be_bytes().to_vec();
        null.extend([0x60, 0, 0, 0]);
        assert_eq!(ip_packet(linktype::NULL, &null).unwrap(), [0x60, 0, 0, 0]);
        assert_eq!(
            ip_packet(linktype::ETHERNET, &[0; 13]),
            Err(NotIp::Truncated)
        );
        assert_eq!(ip_packet(147, &[0; 40]), Err(NotIp::UnknownLinkType));
        let mut arp = vec![0u8; 12];
        arp.extend([0x08, 0x06, 0, 1]);
        assert_eq!(ip_packet(linktype::ETHERNET, &arp), Err(NotIp::Other));
    }
}
