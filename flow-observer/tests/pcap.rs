//! `netpol-observer pcap` on captures these tests write themselves (a small pcap/pcapng
//! writer below): every link type and encapsulation, both pcap byte orders and resolutions,
//! pcapng sections/interfaces/block kinds, IPv4 fragments, IPv6 extension headers, TCP states
//! and directions, UDP pairing, DNS over UDP and TCP, truncation, cut and corrupt files, files
//! that are not captures, and the pipe into `netpol verify --flows -`.
#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use netpol_compiler::flow::Record;
use netpol_observer::capture::{self, Options, Settings};

// ---------------------------------------------------------------- packets

const SYN: u8 = 0x02;
const SYN_ACK: u8 = 0x12;
const ACK: u8 = 0x10;
const RST: u8 = 0x04;
const RST_ACK: u8 = 0x14;
const FIN_ACK: u8 = 0x11;
const PSH_ACK: u8 = 0x18;

fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend(sport.to_be_bytes());
    t.extend(dport.to_be_bytes());
    t.extend([0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend(payload);
    t
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend(sport.to_be_bytes());
    u.extend(dport.to_be_bytes());
    u.extend(u16::try_from(8 + payload.len()).unwrap().to_be_bytes());
    u.extend([0, 0]);
    u.extend(payload);
    u
}

/// An IPv4 packet; `frag`: the flags/offset field, `id` the identification.
fn ipv4_frag(src: [u8; 4], dst: [u8; 4], proto: u8, id: u16, frag: u16, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0];
    p.extend(u16::try_from(20 + l4.len()).unwrap().to_be_bytes());
    p.extend(id.to_be_bytes());
    p.extend(frag.to_be_bytes());
    p.extend([64, proto, 0, 0]);
    p.extend(src);
    p.extend(dst);
    p.extend(l4);
    p
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    ipv4_frag(src, dst, proto, 1, 0, l4)
}

fn v6(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0xfd;
    a[15] = last;
    a
}

/// An IPv6 packet with extension headers (`(type, bytes)` in order; each header's first
/// byte, its next-header field, is filled in here) before the transport header.
fn ipv6_ext(src: [u8; 16], dst: [u8; 16], proto: u8, ext: &[(u8, Vec<u8>)], l4: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (_, bytes)) in ext.iter().enumerate() {
        let mut h = bytes.clone();
        h[0] = ext.get(i + 1).map_or(proto, |(t, _)| *t);
        body.extend(h);
    }
    body.extend(l4);
    let mut p = vec![0x60, 0, 0, 0];
    p.extend(u16::try_from(body.len()).unwrap().to_be_bytes());
    p.push(ext.first().map_or(proto, |(t, _)| *t));
    p.push(64);
    p.extend(src);
    p.extend(dst);
    p.extend(body);
    p
}

fn ipv6(src: [u8; 16], dst: [u8; 16], proto: u8, l4: &[u8]) -> Vec<u8> {
    ipv6_ext(src, dst, proto, &[], l4)
}

fn ethertype_of(ip: &[u8]) -> [u8; 2] {
    if ip[0] >> 4 == 6 {
        [0x86, 0xdd]
    } else {
        [0x08, 0x00]
    }
}

fn eth(ip: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    f.extend(ethertype_of(ip));
    f.extend(ip);
    f
}

/// Ethernet with VLAN tags (outer first): `(tpid, vlan id)`.
fn eth_tagged(tags: &[(u16, u16)], ip: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    for (tpid, vid) in tags {
        f.extend(tpid.to_be_bytes());
        f.extend(vid.to_be_bytes());
    }
    f.extend(ethertype_of(ip));
    f.extend(ip);
    f
}

fn eth_mpls(labels: &[u32], ip: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0x47];
    for (i, l) in labels.iter().enumerate() {
        let bottom = u32::from(i + 1 == labels.len());
        f.extend(((l << 12) | (bottom << 8) | 64).to_be_bytes());
    }
    f.extend(ip);
    f
}

fn sll(ip: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    f.extend(ethertype_of(ip));
    f.extend(ip);
    f
}

fn sll2(ip: &[u8]) -> Vec<u8> {
    let mut f = ethertype_of(ip).to_vec();
    f.extend([0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
    f.extend(ip);
    f
}

fn null(family: u32, big_endian: bool, ip: &[u8]) -> Vec<u8> {
    let mut f = if big_endian {
        family.to_be_bytes().to_vec()
    } else {
        family.to_le_bytes().to_vec()
    };
    f.extend(ip);
    f
}

// ---------------------------------------------------------------- files

const ETHERNET: u32 = 1;
const RAW: u32 = 101;
const NULL: u32 = 0;
const LOOP: u32 = 108;
const SLL: u32 = 113;
const SLL2: u32 = 276;

/// A pcap file: `(time ns, frame, captured length if cut)`.
fn pcap(
    linktype: u32,
    big_endian: bool,
    nanos: bool,
    frames: &[(u64, Vec<u8>, Option<usize>)],
) -> Vec<u8> {
    let u32b = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u16b = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut f = Vec::new();
    f.extend(u32b(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    f.extend(u16b(2));
    f.extend(u16b(4));
    f.extend(u32b(0));
    f.extend(u32b(0));
    f.extend(u32b(65535));
    f.extend(u32b(linktype));
    for (t, frame, cut) in frames {
        let caplen = cut.unwrap_or(frame.len()).min(frame.len());
        let sub = if nanos {
            t % 1_000_000_000
        } else {
            t % 1_000_000_000 / 1000
        };
        f.extend(u32b(u32::try_from(t / 1_000_000_000).unwrap()));
        f.extend(u32b(u32::try_from(sub).unwrap()));
        f.extend(u32b(u32::try_from(caplen).unwrap()));
        f.extend(u32b(u32::try_from(frame.len()).unwrap()));
        f.extend(&frame[..caplen]);
    }
    f
}

/// A pcapng block builder in one byte order.
struct Ng {
    big_endian: bool,
    out: Vec<u8>,
}

impl Ng {
    fn u32(&self, v: u32) -> [u8; 4] {
        if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn u16(&self, v: u16) -> [u8; 2] {
        if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn block(&mut self, kind: u32, mut body: Vec<u8>) {
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let len = u32::try_from(body.len() + 12).unwrap();
        let (k, l) = (self.u32(kind), self.u32(len));
        self.out.extend(k);
        self.out.extend(l);
        self.out.extend(body);
        self.out.extend(l);
    }
    fn section(&mut self) {
        let mut b = self.u32(0x1a2b_3c4d).to_vec();
        b.extend(self.u16(1));
        b.extend(self.u16(0));
        b.extend([0xff; 8]);
        self.block(0x0a0d_0d0a, b);
    }
    /// An interface; `tsresol`: the `if_tsresol` option (9: nanoseconds).
    fn interface(&mut self, linktype: u16, tsresol: Option<u8>) {
        let mut b = self.u16(linktype).to_vec();
        b.extend(self.u16(0));
        b.extend(self.u32(0));
        if let Some(r) = tsresol {
            b.extend(self.u16(9));
            b.extend(self.u16(1));
            b.extend([r, 0, 0, 0]);
            b.extend(self.u16(0));
            b.extend(self.u16(0));
        }
        self.block(1, b);
    }
    fn ts(&self, units: u64) -> Vec<u8> {
        let mut b = self.u32(u32::try_from(units >> 32).unwrap()).to_vec();
        b.extend(self.u32(u32::try_from(units & 0xffff_ffff).unwrap()));
        b
    }
    fn enhanced(&mut self, iface: u32, units: u64, frame: &[u8]) {
        let mut b = self.u32(iface).to_vec();
        b.extend(self.ts(units));
        let len = u32::try_from(frame.len()).unwrap();
        b.extend(self.u32(len));
        b.extend(self.u32(len));
        b.extend(frame);
        self.block(6, b);
    }
    fn simple(&mut self, frame: &[u8]) {
        let mut b = self.u32(u32::try_from(frame.len()).unwrap()).to_vec();
        b.extend(frame);
        self.block(3, b);
    }
    fn obsolete(&mut self, iface: u16, units: u64, frame: &[u8]) {
        let mut b = self.u16(iface).to_vec();
        b.extend(self.u16(0));
        b.extend(self.ts(units));
        let len = u32::try_from(frame.len()).unwrap();
        b.extend(self.u32(len));
        b.extend(self.u32(len));
        b.extend(frame);
        self.block(2, b);
    }
}

// ---------------------------------------------------------------- running

const T0: u64 = 1_700_000_000_000_000_000;
const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

struct Out {
    code: u8,
    records: Vec<Record>,
    stderr: String,
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn run_files(files: Vec<PathBuf>, per_connection: bool, inventory: Option<&str>) -> Out {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let opts = Options {
        files,
        inventory: inventory
            .map(|i| netpol_compiler::flow::inventory::Inventory::parse(i, "default").unwrap()),
        settings: Settings {
            per_connection,
            ..Settings::default()
        },
        progress: false,
    };
    let code = capture::run(opts, &mut out, &mut err);
    let records = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    Out {
        code,
        records,
        stderr: String::from_utf8(err).unwrap(),
    }
}

fn run_bytes(bytes: &[u8], per_connection: bool) -> Out {
    let dir = tempfile::tempdir().unwrap();
    run_files(
        vec![write(dir.path(), "x.pcap", bytes)],
        per_connection,
        None,
    )
}

/// `(protocol, source ip, source port, destination ip, destination port)` of a record.
fn ends(r: &Record) -> (String, String, Option<u16>, String, Option<u16>) {
    (
        r.protocol.clone(),
        r.source.ip.clone().unwrap(),
        r.source.port,
        r.destination.ip.clone().unwrap(),
        r.destination.port,
    )
}

const C4: [u8; 4] = [10, 0, 0, 1];
const S4: [u8; 4] = [10, 0, 0, 2];

/// A TCP handshake, a data packet each way: client 10.0.0.1:40000 → server 10.0.0.2:80.
fn handshake_v4() -> Vec<Vec<u8>> {
    vec![
        ipv4(C4, S4, 6, &tcp(40000, 80, SYN, &[])),
        ipv4(S4, C4, 6, &tcp(80, 40000, SYN_ACK, &[])),
        ipv4(
            C4,
            S4,
            6,
            &tcp(40000, 80, PSH_ACK, b"GET / HTTP/1.0\r\n\r\n"),
        ),
        ipv4(
            S4,
            C4,
            6,
            &tcp(80, 40000, PSH_ACK, b"HTTP/1.0 200 OK\r\n\r\n"),
        ),
    ]
}

fn handshake_v6() -> Vec<Vec<u8>> {
    vec![
        ipv6(v6(1), v6(2), 6, &tcp(40000, 443, SYN, &[])),
        ipv6(v6(2), v6(1), 6, &tcp(443, 40000, SYN_ACK, &[])),
        ipv6(v6(1), v6(2), 6, &tcp(40000, 443, ACK, &[])),
    ]
}

fn timed(frames: Vec<Vec<u8>>) -> Vec<(u64, Vec<u8>, Option<usize>)> {
    frames
        .into_iter()
        .zip(0u64..)
        .map(|(f, i)| (T0 + i * MS, f, None))
        .collect()
}

fn established_v4(out: &Out, what: &str) {
    assert_eq!(out.code, 0, "{what}: {}", out.stderr);
    assert_eq!(out.records.len(), 1, "{what}: {:?}", out.records);
    let r = &out.records[0];
    assert_eq!(
        ends(r),
        (
            "tcp".into(),
            "10.0.0.1".into(),
            Some(40000),
            "10.0.0.2".into(),
            Some(80)
        ),
        "{what}"
    );
    assert_eq!(
        (r.packets, r.reply_packets, r.tcp_state.as_deref()),
        (4, Some(2), Some("established")),
        "{what}"
    );
    assert_eq!(r.bytes, 40 + 40 + 58 + 59, "{what}: IP lengths");
}

// ---------------------------------------------------------------- tests

/// A link layer around an IP packet.
type Wrap = fn(&[u8]) -> Vec<u8>;
type Port = Option<u16>;

#[test]
fn every_link_type_and_encapsulation_gives_the_same_connection() {
    let wrap: Vec<(&str, u32, Wrap)> = vec![
        ("ethernet", ETHERNET, eth),
        ("802.1Q", ETHERNET, |ip| eth_tagged(&[(0x8100, 10)], ip)),
        ("QinQ", ETHERNET, |ip| {
            eth_tagged(&[(0x88a8, 100), (0x8100, 10)], ip)
        }),
        ("QinQ 0x9100", ETHERNET, |ip| {
            eth_tagged(&[(0x9100, 0), (0x8100, 0)], ip)
        }),
        ("MPLS", ETHERNET, |ip| eth_mpls(&[16, 17], ip)),
        ("VLAN then MPLS", ETHERNET, |ip| {
            let mut f = vec![
                2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x81, 0, 0, 5, 0x88, 0x47,
            ];
            f.extend(((16u32 << 12) | (1 << 8) | 64).to_be_bytes());
            f.extend(ip);
            f
        }),
        ("SLL", SLL, sll),
        ("SLL2", SLL2, sll2),
        ("raw", RAW, <[u8]>::to_vec),
        ("null little-endian", NULL, |ip| null(2, false, ip)),
        ("null big-endian", NULL, |ip| null(2, true, ip)),
        ("loop", LOOP, |ip| null(2, true, ip)),
    ];
    for (what, linktype, f) in wrap {
        let frames: Vec<Vec<u8>> = handshake_v4().iter().map(|ip| f(ip)).collect();
        established_v4(
            &run_bytes(&pcap(linktype, false, false, &timed(frames)), true),
            what,
        );
    }
    // IPv6 on raw, NULL (each system's AF_INET6), SLL2, Ethernet.
    let v6s: Vec<(&str, u32, Wrap)> = vec![
        ("raw v6", RAW, <[u8]>::to_vec),
        ("null v6 (linux)", NULL, |ip| null(10, false, ip)),
        ("null v6 (freebsd)", NULL, |ip| null(28, false, ip)),
        ("null v6 (macos, big-endian)", NULL, |ip| null(30, true, ip)),
        ("ethernet v6", ETHERNET, eth),
        ("SLL2 v6", SLL2, sll2),
    ];
    for (what, linktype, f) in v6s {
        let frames: Vec<Vec<u8>> = handshake_v6().iter().map(|ip| f(ip)).collect();
        let out = run_bytes(&pcap(linktype, false, false, &timed(frames)), true);
        assert_eq!(out.code, 0, "{what}");
        let r = &out.records[0];
        assert_eq!(
            ends(r),
            (
                "tcp".into(),
                "fd00::1".into(),
                Some(40000),
                "fd00::2".into(),
                Some(443)
            ),
            "{what}"
        );
        assert_eq!(
            (r.packets, r.tcp_state.as_deref()),
            (3, Some("established")),
            "{what}"
        );
    }
}

#[test]
fn pcap_in_both_byte_orders_and_both_resolutions_reads_the_same() {
    for big_endian in [false, true] {
        for nanos in [false, true] {
            let mut frames = timed(handshake_v4().iter().map(|ip| eth(ip)).collect());
            frames[0].0 = T0 - S + 123_456_789;
            frames[3].0 = T0 + 2 * S + 987_654_321;
            let out = run_bytes(&pcap(ETHERNET, big_endian, nanos, &frames), true);
            let what = format!("big-endian {big_endian}, nanoseconds {nanos}");
            established_v4(&out, &what);
            let r = &out.records[0];
            assert_eq!(
                r.first_seen.as_deref(),
                Some("2023-11-14T22:13:19.123Z"),
                "{what}"
            );
            assert_eq!(r.time, "2023-11-14T22:13:22.987Z", "{what}");
        }
    }
}

#[test]
fn pcapng_sections_interfaces_and_every_packet_block_kind() {
    let mut first = Ng {
        big_endian: false,
        out: Vec::new(),
    };
    first.section();
    first.interface(1, None); // Ethernet, microseconds
    first.interface(101, Some(9)); // raw IP, nanoseconds
    let hs = handshake_v4();
    let us = T0 / 1000;
    first.enhanced(0, us, &eth(&hs[0]));
    first.enhanced(1, T0 + MS, &hs[1]);
    first.simple(&eth(&hs[2]));
    first.obsolete(1, T0 + 3 * MS, &hs[3]);
    // A second section, big-endian: its own interfaces (SLL2 as interface 0).
    let mut second = Ng {
        big_endian: true,
        out: Vec::new(),
    };
    second.section();
    second.interface(276, None);
    second.interface(1, Some(0x80 | 10)); // 2^-10 s
    for (i, ip) in handshake_v6().iter().enumerate() {
        let i = u64::try_from(i).unwrap();
        second.enhanced(0, us + 10_000 + i, &sll2(ip));
    }
    second.enhanced(
        1,
        (T0 / S + 20) << 10,
        &eth(&ipv4(C4, [10, 0, 0, 3], 17, &udp(5000, 6000, b"x"))),
    );
    let mut file = first.out;
    file.extend(second.out);
    let out = run_bytes(&file, true);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.records.len(), 3, "{:?}", out.records);
    established_v4(
        &Out {
            code: 0,
            records: vec![out.records[0].clone()],
            stderr: String::new(),
        },
        "section 1",
    );
    assert_eq!(out.records[1].source.ip.as_deref(), Some("fd00::1"));
    assert_eq!(out.records[1].packets, 3);
    assert_eq!(out.records[2].destination.port, Some(6000));
    assert_eq!(
        out.records[2].time, "2023-11-14T22:13:40.000Z",
        "binary resolution"
    );
}

#[test]
fn ipv4_fragments_are_attributed_to_the_first() {
    let udp_whole = udp(40000, 5353, &[7; 40]);
    let frames = vec![
        ipv4_frag(C4, S4, 17, 99, 0x2000, &udp_whole[..24]),
        ipv4_frag(C4, S4, 17, 99, 0x2003, &udp_whole[24..40]),
        ipv4_frag(C4, S4, 17, 99, 5, &udp_whole[40..]),
        // A later fragment of a datagram whose first was never seen.
        ipv4_frag(C4, S4, 17, 100, 5, &[1; 8]),
    ];
    let out = run_bytes(&pcap(RAW, false, false, &timed(frames)), true);
    assert_eq!(out.records.len(), 1, "{:?}", out.records);
    let r = &out.records[0];
    assert_eq!(
        (r.source.port, r.destination.port, r.packets),
        (Some(40000), Some(5353), 3)
    );
    assert_eq!(r.bytes, 44 + 36 + 28);
}

#[test]
fn ipv6_extension_headers_and_fragments_are_followed() {
    let hop = (0u8, vec![0, 0, 1, 4, 0, 0, 0, 0]);
    let dest = (60u8, vec![0, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let routing = (43u8, vec![0, 0, 0, 0, 0, 0, 0, 0]);
    let ah = (51u8, vec![0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]);
    let whole = tcp(40000, 443, SYN, &[0; 24]);
    let frag = |offset: u16, more: bool| {
        let mut h = vec![0, 0];
        h.extend(((offset << 3) | u16::from(more)).to_be_bytes());
        h.extend(77u32.to_be_bytes());
        (44u8, h)
    };
    let frames = vec![
        ipv6_ext(
            v6(1),
            v6(2),
            6,
            &[hop.clone(), dest.clone(), routing, ah],
            &tcp(40000, 443, SYN, &[]),
        ),
        ipv6_ext(
            v6(2),
            v6(1),
            6,
            &[hop, dest],
            &tcp(443, 40000, SYN_ACK, &[]),
        ),
        ipv6_ext(v6(1), v6(2), 6, &[frag(0, true)], &whole[..24]),
        ipv6_ext(v6(1), v6(2), 6, &[frag(3, false)], &whole[24..]),
    ];
    let out = run_bytes(&pcap(RAW, false, false, &timed(frames)), true);
    assert_eq!(out.records.len(), 1, "{:?}", out.records);
    let r = &out.records[0];
    assert_eq!(
        (r.destination.port, r.packets, r.reply_packets),
        (Some(443), 4, Some(1))
    );
    assert_eq!(r.tcp_state.as_deref(), Some("established"));
}

#[test]
fn tcp_direction_and_state_come_from_the_handshake() {
    let s = |sp, dp, f| ipv4(S4, C4, 6, &tcp(sp, dp, f, &[]));
    let c = |sp, dp, f| ipv4(C4, S4, 6, &tcp(sp, dp, f, &[]));
    let frames = vec![
        // Refused: SYN answered by RST.
        c(40001, 81, SYN),
        s(81, 40001, RST_ACK),
        // Attempted: a SYN, no answer.
        c(40002, 82, SYN),
        // A SYN-ACK seen first: its receiver initiated.
        s(83, 40003, SYN_ACK),
        // Mid-stream: the server's packet first, from its service port.
        s(443, 40004, PSH_ACK),
        c(40004, 443, ACK),
        // Closed: FIN each way, then the port reused: a new connection.
        c(40005, 84, SYN),
        s(84, 40005, SYN_ACK),
        c(40005, 84, FIN_ACK),
        s(84, 40005, FIN_ACK),
        c(40005, 84, SYN),
        // Reset after it was established.
        c(40006, 85, SYN),
        s(85, 40006, SYN_ACK),
        c(40006, 85, RST),
    ];
    let out = run_bytes(&pcap(RAW, false, false, &timed(frames.clone())), true);
    let state: Vec<(Option<u16>, Option<u16>, Option<&str>)> = out
        .records
        .iter()
        .map(|r| (r.source.port, r.destination.port, r.tcp_state.as_deref()))
        .collect();
    assert_eq!(
        state,
        [
            (Some(40001), Some(81), Some("refused")),
            (Some(40002), Some(82), Some("attempted")),
            (Some(40003), Some(83), Some("established")),
            (Some(40004), Some(443), Some("midstream")),
            (Some(40005), Some(84), Some("closed")),
            (Some(40005), Some(84), Some("attempted")),
            (Some(40006), Some(85), Some("reset")),
        ]
    );
    assert!(
        out.records
            .iter()
            .all(|r| r.source.ip.as_deref() == Some("10.0.0.1"))
    );
    // Aggregated: the reused port is a second connection to port 84.
    let out = run_bytes(&pcap(RAW, false, false, &timed(frames)), false);
    let to_84 = out
        .records
        .iter()
        .find(|r| r.destination.port == Some(84))
        .unwrap();
    assert_eq!(
        (
            to_84.connections,
            to_84.source.port,
            to_84.tcp_state.as_ref()
        ),
        (2, None, None)
    );
}

#[test]
fn udp_requests_and_responses_pair_until_the_idle_timeout() {
    let q = ipv4(C4, S4, 17, &udp(40000, 123, &[1; 48]));
    let a = ipv4(S4, C4, 17, &udp(123, 40000, &[2; 48]));
    let frames = vec![
        (T0, q.clone(), None),
        (T0 + MS, a.clone(), None),
        (T0 + 30 * S, q.clone(), None),
        // Past the 60 s timeout after the last packet: another exchange.
        (T0 + 100 * S, q, None),
        (T0 + 100 * S + MS, a, None),
        // A response seen without its request: from the service port, so the client initiated.
        (
            T0 + 101 * S,
            ipv4(S4, C4, 17, &udp(53, 41000, &[0; 12])),
            None,
        ),
    ];
    let bytes = pcap(RAW, false, false, &frames);
    let out = run_bytes(&bytes, true);
    let got: Vec<(Port, Port, u64, Option<u64>)> = out
        .records
        .iter()
        .map(|r| {
            (
                r.source.port,
                r.destination.port,
                r.packets,
                r.reply_packets,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (Some(40000), Some(123), 3, Some(1)),
            (Some(40000), Some(123), 2, Some(1)),
            (Some(41000), Some(53), 1, Some(1)),
        ]
    );
    let out = run_bytes(&bytes, false);
    assert_eq!(out.records[0].connections, 2);
}

/// A DNS response for `api.example.com` (CNAME `mid.example.net`, CNAME `edge.cdn.net`,
/// then `answers` of type 1 (A) or 28 (AAAA) for it), with name compression.
fn dns_response(answers: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1];
    m.extend(u16::try_from(2 + answers.len()).unwrap().to_be_bytes());
    m.extend([0, 0, 0, 0]);
    let labels = |names: &[&str]| {
        let mut v = Vec::new();
        for n in names {
            v.push(u8::try_from(n.len()).unwrap());
            v.extend(n.as_bytes());
        }
        v
    };
    // Question at 12: api.example.com (`example.com` at 16).
    m.extend(labels(&["api", "example", "com"]));
    m.push(0);
    m.extend([0, 1, 0, 1]);
    let rr = |m: &mut Vec<u8>, name: &[u8], kind: u16, rdata: &[u8]| {
        m.extend(name);
        m.extend(kind.to_be_bytes());
        m.extend([0, 1, 0, 0, 0x0e, 0x10]);
        m.extend(u16::try_from(rdata.len()).unwrap().to_be_bytes());
        m.extend(rdata);
    };
    // api.example.com (pointer to 12) CNAME mid.example.net.
    let mid_at = m.len() + 2 + 10;
    let mut mid = labels(&["mid", "example", "net"]);
    mid.push(0);
    rr(&mut m, &[0xc0, 12], 5, &mid);
    // mid.example.net (pointer) CNAME edge.cdn (+ pointer to "net" of mid.example.net).
    let net_at = u8::try_from(mid_at + 4 + 8).unwrap();
    let edge_at = m.len() + 2 + 10;
    let mut edge = labels(&["edge", "cdn"]);
    edge.extend([0xc0, net_at]);
    rr(&mut m, &[0xc0, u8::try_from(mid_at).unwrap()], 5, &edge);
    for (kind, rdata) in answers {
        rr(
            &mut m,
            &[0xc0, u8::try_from(edge_at).unwrap()],
            *kind,
            rdata,
        );
    }
    m
}

#[test]
fn dns_answers_over_udp_and_tcp_name_the_flows_to_their_addresses() {
    let resolver = [10, 0, 0, 53];
    let web4 = [203, 0, 113, 7];
    let web6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
    let over_udp = dns_response(&[(1, web4.to_vec())]);
    let msg6 = dns_response(&[(28, web6.to_vec())]);
    let mut over_tcp = u16::try_from(msg6.len()).unwrap().to_be_bytes().to_vec();
    over_tcp.extend(&msg6);
    let frames = vec![
        ipv4(C4, resolver, 17, &udp(40000, 53, b"query")),
        ipv4(resolver, C4, 17, &udp(53, 40000, &over_udp)),
        ipv4(C4, resolver, 6, &tcp(40001, 53, SYN, &[])),
        ipv4(resolver, C4, 6, &tcp(53, 40001, SYN_ACK, &[])),
        ipv4(resolver, C4, 6, &tcp(53, 40001, PSH_ACK, &over_tcp)),
        ipv4(C4, web4, 6, &tcp(40002, 443, SYN, &[])),
        ipv6(v6(1), web6, 6, &tcp(40003, 443, SYN, &[])),
    ];
    let out = run_bytes(&pcap(RAW, false, false, &timed(frames)), false);
    let names = |ip: &str| {
        out.records
            .iter()
            .find(|r| r.destination.ip.as_deref() == Some(ip))
            .map(|r| r.destination.names.clone())
            .unwrap()
    };
    assert_eq!(names("203.0.113.7"), ["api.example.com", "edge.cdn.net"]);
    assert_eq!(names("2001:db8::7"), ["api.example.com", "edge.cdn.net"]);
    assert!(names("10.0.0.53").is_empty());
}

#[test]
fn packets_cut_by_the_snapshot_length_give_the_headers_present() {
    let hs = handshake_v4();
    let frames = vec![
        // Cut inside the TCP header, after the ports (14 + 20 + 4): no flags.
        (T0, eth(&hs[0]), Some(38)),
        // Cut after the flags.
        (T0 + MS, eth(&hs[1]), Some(14 + 20 + 14)),
        // Cut before the ports: not a flow.
        (T0 + 2 * MS, eth(&hs[2]), Some(14 + 20 + 2)),
        (T0 + 3 * MS, eth(&hs[3]), Some(60)),
    ];
    let out = run_bytes(&pcap(ETHERNET, false, false, &frames), true);
    assert_eq!(out.code, 0);
    let r = &out.records[0];
    assert_eq!(
        ends(r),
        (
            "tcp".into(),
            "10.0.0.1".into(),
            Some(40000),
            "10.0.0.2".into(),
            Some(80)
        )
    );
    assert_eq!(
        (r.packets, r.tcp_flags.clone()),
        (3, vec!["SYN-ACK".to_owned()])
    );
    assert_eq!(
        r.bytes,
        40 + 40 + 59,
        "the IP header's lengths, not the bytes captured"
    );
}

#[test]
fn a_file_cut_in_the_middle_gives_the_complete_packets_and_where_it_broke() {
    let frames = timed(handshake_v4().iter().map(|ip| eth(ip)).collect());
    let whole = pcap(ETHERNET, false, false, &frames);
    let third = 24 + (16 + 54) * 2;
    let cut = &whole[..third + 16 + 10];
    let out = run_bytes(cut, true);
    assert_eq!(out.code, 1);
    assert_eq!(out.records[0].packets, 2);
    assert!(
        out.stderr.contains(&format!(
            "breaks at byte {third}: the file ends inside a block"
        )),
        "{}",
        out.stderr
    );
    // pcapng cut inside a block, and one with a damaged block length.
    let mut ng = Ng {
        big_endian: false,
        out: Vec::new(),
    };
    ng.section();
    ng.interface(101, None);
    for ip in handshake_v4() {
        ng.enhanced(0, T0 / 1000, &ip);
    }
    let whole = ng.out;
    let out = run_bytes(&whole[..whole.len() - 7], true);
    assert_eq!((out.code, out.records[0].packets), (1, 3), "{}", out.stderr);
    let mut damaged = whole.clone();
    // The last block (28 bytes of header and fields, 60 of data, 4 of trailer) says it is 16
    // bytes long: its trailer does not match.
    let last_block = whole.len() - (28 + 60 + 4);
    damaged[last_block + 4] = 16;
    let out = run_bytes(&damaged, true);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("breaks at byte"), "{}", out.stderr);
}

#[test]
fn a_file_that_is_not_a_capture_is_refused_and_nothing_printed() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.pcap",
        &pcap(RAW, false, false, &timed(handshake_v4())),
    );
    for (name, bytes) in [
        (
            "text.pcap",
            b"not a capture at all, just some text\n".as_slice(),
        ),
        ("empty.pcap", b"".as_slice()),
    ] {
        let bad = write(dir.path(), name, bytes);
        let out = run_files(vec![good.clone(), bad], false, None);
        assert_eq!(out.code, 2, "{name}");
        assert!(out.records.is_empty());
        assert!(
            out.stderr
                .starts_with(&format!("error: `{}`", dir.path().join(name).display())),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn unknown_link_types_are_counted_and_reported_not_fatal() {
    let out = run_bytes(&pcap(147, false, false, &timed(handshake_v4())), false);
    assert_eq!(out.code, 0);
    assert!(out.records.is_empty());
    assert!(
        out.stderr
            .contains("4 packets of link type 147 were skipped"),
        "{}",
        out.stderr
    );
}

#[test]
fn icmp_echo_and_sctp_are_flows_and_neighbour_discovery_is_not() {
    let echo = |kind: u8| vec![kind, 0, 0, 0, 0, 1, 0, 1];
    let frames = vec![
        ipv4(C4, S4, 1, &echo(8)),
        ipv4(S4, C4, 1, &echo(0)),
        ipv6(v6(1), v6(2), 58, &echo(128)),
        ipv6(v6(2), v6(1), 58, &echo(129)),
        ipv6(
            v6(1),
            [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 2],
            58,
            &echo(135),
        ),
        ipv4(
            C4,
            S4,
            132,
            &[0x9c, 0x41, 0x0b, 0x59, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
    ];
    let out = run_bytes(&pcap(RAW, false, false, &timed(frames)), true);
    let got: Vec<(String, Option<u8>, u64)> = out
        .records
        .iter()
        .map(|r| (r.protocol.clone(), r.icmp.map(|i| i.kind), r.packets))
        .collect();
    assert_eq!(
        got,
        [
            ("icmp".to_owned(), Some(8), 2),
            ("icmpv6".to_owned(), Some(128), 2),
            ("sctp".to_owned(), None, 1),
        ]
    );
    assert_eq!(out.records[2].destination.port, Some(2905));
}

const INVENTORY: &str = r#"{"apiVersion":"v1","kind":"List","items":[
 {"kind":"Namespace","metadata":{"name":"media"}},
 {"kind":"Pod","metadata":{"name":"sonarr-5d8f7c9b6-x2kq9","namespace":"media","labels":{"app.kubernetes.io/name":"sonarr"},
   "ownerReferences":[{"kind":"ReplicaSet","name":"sonarr-5d8f7c9b6","controller":true}]},
  "spec":{"serviceAccountName":"sonarr","nodeName":"n1","containers":[{"name":"app"}]},
  "status":{"podIP":"10.0.0.1","podIPs":[{"ip":"10.0.0.1"}]}},
 {"kind":"Pod","metadata":{"name":"sonarr-5d8f7c9b6-abcde","namespace":"media","labels":{"app.kubernetes.io/name":"sonarr"},
   "ownerReferences":[{"kind":"ReplicaSet","name":"sonarr-5d8f7c9b6","controller":true}]},
  "spec":{"serviceAccountName":"sonarr","nodeName":"n1","containers":[{"name":"app"}]},
  "status":{"podIP":"10.0.0.9","podIPs":[{"ip":"10.0.0.9"}]}},
 {"kind":"Pod","metadata":{"name":"postgres-0","namespace":"media","labels":{"app":"postgres"},
   "ownerReferences":[{"kind":"StatefulSet","name":"postgres","controller":true}]},
  "spec":{"nodeName":"n1","containers":[{"name":"db","ports":[{"containerPort":5432}]}]},
  "status":{"podIP":"10.0.0.2","podIPs":[{"ip":"10.0.0.2"}]}}]}"#;

/// Two sonarr pods each open a connection to postgres: one record with an inventory (by
/// workload), two without (by address).
fn two_pods_to_postgres() -> Vec<u8> {
    let frames = vec![
        ipv4(C4, S4, 6, &tcp(40000, 5432, SYN, &[])),
        ipv4(S4, C4, 6, &tcp(5432, 40000, SYN_ACK, &[])),
        ipv4([10, 0, 0, 9], S4, 6, &tcp(40000, 5432, SYN, &[])),
        ipv4(S4, [10, 0, 0, 9], 6, &tcp(5432, 40000, SYN_ACK, &[])),
    ];
    pcap(RAW, false, false, &timed(frames))
}

#[test]
fn aggregated_records_group_by_workload_with_an_inventory_else_by_address() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "x.pcap", &two_pods_to_postgres());
    let out = run_files(vec![file.clone()], false, Some(INVENTORY));
    assert_eq!(out.records.len(), 1, "{:?}", out.records);
    let r = &out.records[0];
    assert_eq!((r.connections, r.packets), (2, 4));
    assert_eq!(r.source.workload.as_deref(), Some("Deployment/sonarr"));
    assert_eq!(r.destination.pod.as_deref(), Some("postgres-0"));
    let out = run_files(vec![file], false, None);
    assert_eq!(out.records.len(), 2);
}

fn observer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_netpol-observer"))
}

#[test]
fn the_command_line_writes_to_a_file_and_exits_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "x.pcap", &two_pods_to_postgres());
    let out_path = dir.path().join("flows.jsonl");
    let out = observer()
        .args(["pcap", "--per-connection", "-o"])
        .arg(&out_path)
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "quiet");
    assert_eq!(
        std::fs::read_to_string(&out_path).unwrap().lines().count(),
        2
    );
    let text = write(dir.path(), "notes.txt", b"hello");
    let out = observer().arg("pcap").arg(&text).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let out = observer().arg("pcap").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "usage");
}

/// The `netpol` binary next to this one, built if it is not there yet.
fn netpol() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_BIN_EXE_netpol-observer"));
    let bin = here.with_file_name(format!("netpol{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "netpol-compiler", "--bin", "netpol"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "cargo build of netpol failed");
    }
    bin
}

#[test]
fn a_capture_piped_into_netpol_verify_is_judged() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "x.pcap", &two_pods_to_postgres());
    let inventory = write(dir.path(), "inventory.json", INVENTORY.as_bytes());
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    // postgres admits sonarr on 5432 only.
    std::fs::write(
        policies.join("postgres.yaml"),
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: postgres\n  namespace: media\nspec:\n  endpointSelector:\n    matchLabels:\n      app: postgres\n  ingress:\n  - fromEndpoints:\n    - matchLabels:\n        app.kubernetes.io/name: sonarr\n    toPorts:\n    - ports:\n      - port: \"5432\"\n        protocol: TCP\n",
    )
    .unwrap();
    let verify = |policy_port: &str| {
        let text = std::fs::read_to_string(policies.join("postgres.yaml")).unwrap();
        std::fs::write(
            policies.join("postgres.yaml"),
            text.replace("port: \"5432\"", &format!("port: \"{policy_port}\""))
                .replace("port: \"5433\"", &format!("port: \"{policy_port}\"")),
        )
        .unwrap();
        let mut pcap = observer()
            .args(["pcap", "--inventory"])
            .arg(&inventory)
            .arg(&file)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let verify = Command::new(netpol())
            .args(["verify", "--policies"])
            .arg(&policies)
            .arg("--inventory")
            .arg(&inventory)
            .args(["--flows", "-"])
            .stdin(pcap.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(pcap.wait().unwrap().success());
        (
            verify.status.code(),
            String::from_utf8_lossy(&verify.stdout).into_owned()
                + &String::from_utf8_lossy(&verify.stderr),
        )
    };
    let (code, text) = verify("5432");
    assert_eq!(code, Some(0), "allowed: {text}");
    let (code, text) = verify("5433");
    assert_eq!(code, Some(1), "dropped: {text}");
    assert!(text.contains("postgres"), "{text}");
}

/// A capture becomes profile statements: `netpol-observer pcap | netpol suggest --profiles`
/// writes, under the service that opened the connections, the statement they need, in the
/// profile's own names.
#[test]
fn a_capture_piped_into_netpol_suggest_becomes_profile_statements() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "x.pcap", &two_pods_to_postgres());
    let inventory = write(dir.path(), "inventory.json", INVENTORY.as_bytes());
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap();
    std::fs::write(
        profiles.join("media.yaml"),
        "namespace: media\ndefault-deny: both\nservices:\n  sonarr:\n    ports: {}\n  postgres:\n    select: {app: postgres}\n    ports: {postgresql: 5432}\n",
    )
    .unwrap();
    let mut pcap = observer()
        .args(["pcap", "--inventory"])
        .arg(&inventory)
        .arg(&file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let suggest = Command::new(netpol())
        .args(["suggest", "--profiles", "profiles", "--inventory"])
        .arg(&inventory)
        .args(["--flows", "-"])
        .current_dir(dir.path())
        .stdin(pcap.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(pcap.wait().unwrap().success());
    let stdout = String::from_utf8_lossy(&suggest.stdout);
    assert_eq!(
        suggest.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&suggest.stderr)
    );
    assert!(
        stdout.contains("+++ b/profiles/media.yaml\n")
            && stdout.contains("   sonarr:\n     ports: {}\n+    allow:\n+      - to: postgres\n+        port: postgresql\n"),
        "{stdout}"
    );
}

// ---------------------------------------------------------------- any input

mod any_input {
    use proptest::prelude::*;

    use super::*;

    /// The first four bytes of the captures pcap-parser reads: pcap (micro, nano, modified)
    /// in either byte order, and pcapng's section header.
    fn capture_magic(bytes: &[u8]) -> bool {
        let Some(m) = bytes.get(..4) else {
            return false;
        };
        let m = u32::from_le_bytes(m.try_into().unwrap());
        [0xa1b2_c3d4u32, 0xa1b2_3c4d, 0xa1b2_cd34]
            .iter()
            .any(|&magic| m == magic || m == magic.swap_bytes())
            || m == 0x0a0d_0d0a
    }

    /// Ethernet frames of a handshake and a DNS answer, as pcap (either byte order and
    /// resolution) or pcapng; with the length of the headers before the first packet and the
    /// offsets where each packet's block ends.
    fn valid(kind: u8) -> (Vec<u8>, usize, Vec<usize>) {
        let mut frames: Vec<Vec<u8>> = handshake_v4().iter().map(|ip| eth(ip)).collect();
        let answer = dns_response(&[(1, vec![93, 184, 216, 34])]);
        frames.push(eth(&ipv4(S4, C4, 17, &udp(53, 40001, &answer))));
        if kind < 4 {
            let file = pcap(
                ETHERNET,
                kind & 1 != 0,
                kind & 2 != 0,
                &timed(frames.clone()),
            );
            let mut at = 24;
            let ends = frames
                .iter()
                .map(|f| {
                    at += 16 + f.len();
                    at
                })
                .collect();
            (file, 24, ends)
        } else {
            let mut ng = Ng {
                big_endian: kind & 1 != 0,
                out: Vec::new(),
            };
            ng.section();
            ng.interface(1, Some(9));
            let header = ng.out.len();
            let mut ends = Vec::new();
            for (i, f) in (0u64..).zip(&frames) {
                ng.enhanced(0, T0 + i * MS, f);
                ends.push(ng.out.len());
            }
            (ng.out, header, ends)
        }
    }

    fn packets(out: &Out) -> u64 {
        out.records.iter().map(|r| r.packets).sum()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Any bytes: no panic, records that are records; not a capture, exit 2 and nothing
        /// printed.
        #[test]
        fn any_bytes_are_refused_or_read(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
            let out = run_bytes(&bytes, true);
            prop_assert!(out.code <= 2);
            if !capture_magic(&bytes) {
                prop_assert_eq!(out.code, 2);
            }
            if out.code == 2 {
                prop_assert!(out.records.is_empty());
            }
        }

        /// Any bytes after a valid pcap header: read (exit 0 or 1), never refused.
        #[test]
        fn any_packets_after_a_valid_header_are_read(
            kind in 0u8..4,
            body in prop::collection::vec(any::<u8>(), 0..2048),
        ) {
            let (mut file, header, _) = valid(kind);
            file.truncate(header);
            file.extend(body);
            let out = run_bytes(&file, kind & 1 == 0);
            prop_assert!(out.code <= 1, "{}", out.stderr);
        }

        /// A valid capture cut anywhere: before its header is complete, not a capture;
        /// at a block's end, read completely; elsewhere, the complete packets and exit 1.
        #[test]
        fn a_valid_capture_cut_anywhere_gives_its_complete_packets(kind in 0u8..6, cut in 0usize..2048) {
            let (file, header, ends) = valid(kind);
            let cut = cut % (file.len() + 1);
            let out = run_bytes(&file[..cut], true);
            let complete = ends.iter().filter(|e| **e <= cut).count() as u64;
            if cut < 24 {
                prop_assert_eq!(out.code, 2);
            } else if cut >= header {
                let expected = u8::from(cut != header && !ends.contains(&cut));
                prop_assert_eq!(out.code, expected, "cut at {} of {}: {}", cut, file.len(), out.stderr);
                prop_assert_eq!(packets(&out), complete);
            }
        }

        /// Bytes of a valid capture changed anywhere: no panic; refused only when the file
        /// header changed, and then nothing printed.
        #[test]
        fn a_valid_capture_with_bytes_changed_is_read_or_refused(
            kind in 0u8..6,
            changes in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let (mut file, _, _) = valid(kind);
            // What pcap-parser reads to tell the format: pcap's header, pcapng's section header.
            let first = if kind < 4 { 24 } else { 28 };
            let mut header_changed = false;
            for (at, byte) in changes {
                let at = at.index(file.len());
                header_changed |= at < first && file[at] != byte;
                file[at] = byte;
            }
            let out = run_bytes(&file, kind & 1 == 0);
            prop_assert!(out.code <= 2);
            if out.code == 2 {
                prop_assert!(header_changed, "{}", out.stderr);
                prop_assert!(out.records.is_empty());
            }
        }
    }
}
