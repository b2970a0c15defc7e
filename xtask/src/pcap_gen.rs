//! A large, realistic capture for `bench-pcap`: an Ethernet pcap of a cluster's traffic,
//! deterministic (seeded), cut at the size asked (as a capture stopped by `-C` is: the last
//! connections unfinished).
//!
//! Sessions run interleaved (1,024 at a time, each packet from one picked at random):
//! - TCP to an internal service (45 %): the handshake, 1–6 requests (half 30–150 bytes of
//!   payload, half 200–1,200) each answered by a response of 100 B–64 KB (log-uniform; 1 % are
//!   downloads of 256 KB–4 MB) in segments (most full, some 1,000–1,448 bytes), an ACK every
//!   second segment, then FIN each way (5 % end with a RST; 2 % are refused: SYN, RST);
//! - a DNS lookup followed by a TCP connection to the answered address on 443 (25 %): A or
//!   AAAA, one or two addresses, a third of the answers through a CNAME;
//! - UDP request/response exchanges (15 %): NTP, an application protocol on 7000–7099,
//!   one-way syslog;
//! - a DNS lookup alone (15 %), a tenth of them answered NXDOMAIN.
//!
//! 4,000 client pods, 400 services, 5,000 external names (each its own address); 12 % of the
//! sessions are over IPv6, 10 % are VLAN-tagged. Clients' ephemeral ports count up per client,
//! so every connection is its own 4-tuple.

use std::io::{self, Write};

/// splitmix64: small, fast, good enough for a benchmark's traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    /// Log-uniform in `lo..=hi`.
    fn log_uniform(&mut self, lo: u64, hi: u64) -> u64 {
        let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((a + (b - a) * u).exp() as u64).clamp(lo, hi)
    }
}

const CLIENTS: u32 = 4_000;
const SERVICES: u32 = 400;
const EXTERNAL: u32 = 5_000;
const ACTIVE: usize = 1_024;
/// TCP payload of a full segment (Ethernet MTU 1500, 20-byte IP and TCP headers; over IPv6 a
/// 1,514-byte frame carries 1,440).
const MSS4: u32 = 1_460;
const MSS6: u32 = 1_440;
const SERVICE_PORTS: [u16; 8] = [80, 443, 8080, 5432, 6379, 9090, 3306, 8443];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Addr {
    V4([u8; 4]),
    V6([u8; 16]),
}

fn client(i: u32, v6: bool) -> Addr {
    let [_, _, hi, lo] = i.to_be_bytes();
    if v6 {
        Addr::V6([0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, hi, lo])
    } else {
        Addr::V4([10, 1, (i / 250) as u8, (i % 250) as u8 + 1])
    }
}

fn service(i: u32, v6: bool) -> Addr {
    let [_, _, hi, lo] = i.to_be_bytes();
    if v6 {
        Addr::V6([0xfd, 0, 0, 0x96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, hi, lo])
    } else {
        Addr::V4([10, 96, 1 + (i / 250) as u8, (i % 250) as u8 + 1])
    }
}

fn external(i: u32, second: bool, v6: bool) -> Addr {
    let n = i * 2 + u32::from(second);
    let [_, a, b, c] = n.to_be_bytes();
    if v6 {
        Addr::V6([0x26, 0, 0x1f, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, a, b, c])
    } else {
        Addr::V4([34, a.wrapping_add(16), b, c])
    }
}

const RESOLVER4: [u8; 4] = [10, 96, 0, 10];
const RESOLVER6: [u8; 16] = [0xfd, 0, 0, 0x96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a];

const WORDS: [&str; 10] = [
    "www",
    "api",
    "cdn",
    "img",
    "auth",
    "login",
    "static",
    "telemetry",
    "updates",
    "events",
];
const DOMAINS: [&str; 6] = [
    "example.com",
    "example.net",
    "example.org",
    "shop.example",
    "cloud.example",
    "video.example",
];

fn name(i: u32) -> String {
    format!(
        "{}{}.{}",
        WORDS.get((i % 10) as usize).unwrap_or(&"www"),
        i,
        DOMAINS.get((i / 10 % 6) as usize).unwrap_or(&"example.com")
    )
}

/// One packet of a session, built when it is written.
#[derive(Clone)]
enum Step {
    Tcp {
        /// From the initiator.
        forward: bool,
        flags: u8,
        seq: u32,
        ack: u32,
        len: u32,
    },
    Udp {
        forward: bool,
        payload: Vec<u8>,
    },
    /// Gap before the next packet, as if the client thought (µs).
    Pause(u64),
}

struct Session {
    vlan: Option<u16>,
    client: Addr,
    server: Addr,
    client_port: u16,
    server_port: u16,
    /// Packets in order; `Some((resolver, client port))` for a DNS lookup before the
    /// connection.
    steps: std::collections::VecDeque<(Option<(Addr, u16)>, Step)>,
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// What the generated file holds.
#[derive(Debug, Default)]
pub struct Mix {
    pub bytes: u64,
    pub frames: u64,
    pub tcp: u64,
    pub udp: u64,
    pub dns: u64,
    pub ipv6: u64,
    pub vlan: u64,
    /// Frames of 54–200 bytes, and of 1,000 bytes or more.
    pub small: u64,
    pub large: u64,
    pub sessions: u64,
}

struct Gen<W: Write> {
    rng: Rng,
    out: W,
    mix: Mix,
    limit: u64,
    time_us: u64,
    next_port: Vec<u16>,
    frame: Vec<u8>,
    filler: Vec<u8>,
}

/// Write about `bytes` bytes (cut at a frame) of capture to `out`.
pub fn write(out: impl Write, bytes: u64, seed: u64) -> io::Result<Mix> {
    let mut rng = Rng(seed);
    let next_port = (0..CLIENTS)
        .map(|_| rng.range(32_768, 50_000) as u16)
        .collect();
    let filler = (0..2_048).map(|_| rng.next() as u8).collect();
    let mut g = Gen {
        rng,
        out,
        mix: Mix::default(),
        limit: bytes,
        time_us: 1_700_000_000_000_000,
        next_port,
        frame: Vec::with_capacity(2_048),
        filler,
    };
    // The file header: pcap, microseconds, little-endian, snaplen 262144, Ethernet.
    let mut header = Vec::new();
    header.extend(0xa1b2_c3d4u32.to_le_bytes());
    header.extend(2u16.to_le_bytes());
    header.extend(4u16.to_le_bytes());
    header.extend([0; 8]);
    header.extend(262_144u32.to_le_bytes());
    header.extend(1u32.to_le_bytes());
    g.out.write_all(&header)?;
    g.mix.bytes = header.len() as u64;
    let mut active: Vec<Session> = (0..ACTIVE).map(|_| g.session()).collect();
    while g.mix.bytes < g.limit {
        let i = (g.rng.next() % ACTIVE as u64) as usize;
        let Some(s) = active.get_mut(i) else { break };
        match s.steps.pop_front() {
            None => {
                let fresh = g.session();
                if let Some(slot) = active.get_mut(i) {
                    *slot = fresh;
                }
            }
            Some((_, Step::Pause(us))) => g.time_us += us / ACTIVE as u64,
            Some((via, step)) => {
                g.time_us += g.rng.range(1, 40);
                if !g.emit(s, via, &step)? {
                    break;
                }
            }
        }
    }
    g.out.flush()?;
    Ok(g.mix)
}

impl<W: Write> Gen<W> {
    fn port(&mut self, c: u32) -> u16 {
        let p = self.next_port.get_mut(c as usize);
        match p {
            Some(p) => {
                *p = if *p >= 60_999 { 32_768 } else { *p + 1 };
                *p
            }
            None => 40_000,
        }
    }

    fn session(&mut self) -> Session {
        self.mix.sessions += 1;
        let r = &mut self.rng;
        let v6 = r.chance(12);
        let vlan = r.chance(10).then(|| r.range(2, 4_000) as u16);
        let c = r.range(0, u64::from(CLIENTS) - 1) as u32;
        let kind = r.range(0, 99);
        let client = client(c, v6);
        let resolver = if v6 {
            Addr::V6(RESOLVER6)
        } else {
            Addr::V4(RESOLVER4)
        };
        let mut s = Session {
            vlan,
            client,
            server: resolver,
            client_port: 0,
            server_port: 53,
            steps: Default::default(),
        };
        if kind < 45 {
            let svc = r.range(0, u64::from(SERVICES) - 1) as u32;
            s.server = service(svc, v6);
            s.server_port = SERVICE_PORTS.get((svc % 8) as usize).copied().unwrap_or(80);
            s.client_port = self.port(c);
            self.tcp(&mut s);
        } else if kind < 70 {
            let n = r.range(0, u64::from(EXTERNAL) - 1) as u32;
            let two = r.chance(30);
            let cname = r.chance(33);
            let dns_port = self.port(c);
            let (query, answer) = self.dns(n, v6, two, cname, false);
            s.steps.push_back((
                Some((resolver, dns_port)),
                Step::Udp {
                    forward: true,
                    payload: query,
                },
            ));
            s.steps.push_back((
                Some((resolver, dns_port)),
                Step::Udp {
                    forward: false,
                    payload: answer,
                },
            ));
            s.server = external(n, false, v6);
            s.server_port = 443;
            s.client_port = self.port(c);
            self.tcp(&mut s);
        } else if kind < 85 {
            self.udp(&mut s, c, v6);
        } else {
            let n = self.rng.range(0, u64::from(EXTERNAL) - 1) as u32;
            let nx = self.rng.chance(10);
            let cname = self.rng.chance(33);
            s.client_port = self.port(c);
            let (query, answer) = self.dns(n, v6, false, cname, nx);
            s.steps.push_back((
                None,
                Step::Udp {
                    forward: true,
                    payload: query,
                },
            ));
            s.steps.push_back((
                None,
                Step::Udp {
                    forward: false,
                    payload: answer,
                },
            ));
        }
        s
    }

    /// A TCP connection's packets.
    fn tcp(&mut self, s: &mut Session) {
        let r = &mut self.rng;
        let mss = if matches!(s.client, Addr::V6(_)) {
            MSS6
        } else {
            MSS4
        };
        let mut push = |step: Step| s.steps.push_back((None, step));
        let (mut cs, mut ss) = (r.next() as u32, r.next() as u32);
        push(segment(true, SYN, cs, 0, 0));
        if r.chance(2) {
            push(segment(false, RST | ACK, 0, cs.wrapping_add(1), 0));
            return;
        }
        push(segment(false, SYN | ACK, ss, cs.wrapping_add(1), 0));
        cs = cs.wrapping_add(1);
        ss = ss.wrapping_add(1);
        push(segment(true, ACK, cs, ss, 0));
        for _ in 0..r.range(1, 6) {
            let req = if r.chance(50) {
                r.range(30, 150)
            } else {
                r.range(200, 1_200)
            } as u32;
            push(segment(true, PSH | ACK, cs, ss, req));
            cs = cs.wrapping_add(req);
            let mut left = if r.chance(1) {
                r.log_uniform(256 << 10, 4 << 20)
            } else {
                r.log_uniform(100, 64 << 10)
            } as u32;
            let mut unacked = 0;
            while left > 0 {
                let full = if r.chance(85) {
                    mss
                } else {
                    r.range(1_000, u64::from(mss)) as u32
                };
                let len = left.min(full);
                left -= len;
                let flags = if left == 0 { PSH | ACK } else { ACK };
                push(segment(false, flags, ss, cs, len));
                ss = ss.wrapping_add(len);
                unacked += 1;
                if unacked == 2 || left == 0 {
                    push(segment(true, ACK, cs, ss, 0));
                    unacked = 0;
                }
            }
            push(Step::Pause(r.range(1_000, 200_000)));
        }
        if r.chance(5) {
            push(segment(true, RST | ACK, cs, ss, 0));
            return;
        }
        push(segment(true, FIN | ACK, cs, ss, 0));
        push(segment(false, FIN | ACK, ss, cs.wrapping_add(1), 0));
        push(segment(
            true,
            ACK,
            cs.wrapping_add(1),
            ss.wrapping_add(1),
            0,
        ));
    }

    /// UDP exchanges: NTP, an application protocol, or one-way syslog.
    fn udp(&mut self, s: &mut Session, c: u32, v6: bool) {
        let svc = self.rng.range(0, u64::from(SERVICES) - 1) as u32;
        s.server = service(svc, v6);
        s.client_port = self.port(c);
        let r = &mut self.rng;
        let filler = &self.filler;
        let bytes = |n: u64| filler.get(..n as usize).unwrap_or_default().to_vec();
        match r.range(0, 2) {
            0 => {
                s.server_port = 123;
                for _ in 0..r.range(1, 4) {
                    s.steps.push_back((
                        None,
                        Step::Udp {
                            forward: true,
                            payload: bytes(48),
                        },
                    ));
                    s.steps.push_back((
                        None,
                        Step::Udp {
                            forward: false,
                            payload: bytes(48),
                        },
                    ));
                }
            }
            1 => {
                s.server_port = 7_000 + (svc % 100) as u16;
                for _ in 0..r.range(1, 20) {
                    let (q, a) = (r.range(20, 300), r.range(40, 1_400));
                    s.steps.push_back((
                        None,
                        Step::Udp {
                            forward: true,
                            payload: bytes(q),
                        },
                    ));
                    s.steps.push_back((
                        None,
                        Step::Udp {
                            forward: false,
                            payload: bytes(a),
                        },
                    ));
                }
            }
            _ => {
                s.server_port = 514;
                for _ in 0..r.range(1, 30) {
                    let n = r.range(60, 900);
                    s.steps.push_back((
                        None,
                        Step::Udp {
                            forward: true,
                            payload: bytes(n),
                        },
                    ));
                }
            }
        }
    }

    /// A DNS query for external name `n` and its answer: A or AAAA (`v6`), one or two
    /// addresses, through a CNAME or not, or NXDOMAIN.
    fn dns(&mut self, n: u32, v6: bool, two: bool, cname: bool, nx: bool) -> (Vec<u8>, Vec<u8>) {
        let id = self.rng.next() as u16;
        let qtype: u16 = if v6 { 28 } else { 1 };
        let mut question = Vec::with_capacity(48);
        labels(&mut question, &name(n));
        question.extend(qtype.to_be_bytes());
        question.extend([0, 1]);
        let header = |flags: u16, answers: u16| {
            let mut h = Vec::with_capacity(512);
            h.extend(id.to_be_bytes());
            h.extend(flags.to_be_bytes());
            h.extend([0, 1]);
            h.extend(answers.to_be_bytes());
            h.extend([0, 0, 0, 0]);
            h.extend(&question);
            h
        };
        let q = header(0x0100, 0);
        if nx {
            return (q, header(0x8183, 0));
        }
        let addresses = 1 + u16::from(two);
        let mut a = header(0x8180, addresses + u16::from(cname));
        // The owner of the address records: the question (offset 12), or the CNAME's target.
        let mut owner = 12u16;
        if cname {
            let mut target = Vec::new();
            labels(&mut target, &format!("edge{}.cdn-{}.example.net", n, n % 7));
            a.extend([0xc0, 12, 0, 5, 0, 1, 0, 0, 0x0e, 0x10]);
            a.extend((target.len() as u16).to_be_bytes());
            owner = a.len() as u16;
            a.extend(target);
        }
        for second in [false, true].into_iter().take(usize::from(addresses)) {
            a.extend((0xc000 | owner).to_be_bytes());
            a.extend(qtype.to_be_bytes());
            a.extend([0, 1, 0, 0, 0, 60]);
            match external(n, second, v6) {
                Addr::V4(ip) => {
                    a.extend([0, 4]);
                    a.extend(ip);
                }
                Addr::V6(ip) => {
                    a.extend([0, 16]);
                    a.extend(ip);
                }
            }
        }
        (q, a)
    }

    /// Write one packet of `s`; false once the file is as large as asked.
    fn emit(&mut self, s: &Session, via: Option<(Addr, u16)>, step: &Step) -> io::Result<bool> {
        // A lookup before the connection: to the resolver, from its own port.
        let (server, server_port, client_port) = match via {
            Some((resolver, port)) => (resolver, 53, port),
            None => (s.server, s.server_port, s.client_port),
        };
        let forward = match step {
            Step::Tcp { forward, .. } | Step::Udp { forward, .. } => *forward,
            Step::Pause(_) => return Ok(true),
        };
        let (src, sp, dst, dp) = if forward {
            (s.client, client_port, server, server_port)
        } else {
            (server, server_port, s.client, client_port)
        };
        let f = &mut self.frame;
        f.clear();
        // Ethernet: the client's and the gateway's MACs.
        f.extend([0x02, 0, 0, 0, 0, if forward { 1 } else { 2 }]);
        f.extend([0x02, 0, 0, 0, 0, if forward { 2 } else { 1 }]);
        if let Some(vid) = s.vlan {
            f.extend([0x81, 0x00]);
            f.extend(vid.to_be_bytes());
            self.mix.vlan += 1;
        }
        let l4_len = match step {
            Step::Tcp { len, .. } => 20 + *len as usize,
            Step::Udp { payload, .. } => 8 + payload.len(),
            Step::Pause(_) => 0,
        };
        let proto = if matches!(step, Step::Tcp { .. }) {
            6
        } else {
            17
        };
        match (src, dst) {
            (Addr::V4(a), Addr::V4(b)) => {
                f.extend([0x08, 0x00]);
                let [l0, l1] = ((20 + l4_len) as u16).to_be_bytes();
                let [i0, i1] = (self.rng.next() as u16).to_be_bytes();
                let mut h = [0x45, 0, l0, l1, i0, i1, 0x40, 0, 64, proto, 0, 0];
                let header: Vec<u8> = h.iter().chain(&a).chain(&b).copied().collect();
                [h[10], h[11]] = checksum(&header).to_be_bytes();
                f.extend(h);
                f.extend(a);
                f.extend(b);
            }
            (a, b) => {
                let bytes = |x: Addr| match x {
                    Addr::V6(o) => o,
                    Addr::V4([o0, o1, o2, o3]) => {
                        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, o0, o1, o2, o3]
                    }
                };
                f.extend([0x86, 0xdd, 0x60, 0, 0, 0]);
                f.extend((l4_len as u16).to_be_bytes());
                f.extend([proto, 64]);
                f.extend(bytes(a));
                f.extend(bytes(b));
                self.mix.ipv6 += 1;
            }
        }
        f.extend(sp.to_be_bytes());
        f.extend(dp.to_be_bytes());
        match step {
            Step::Tcp {
                flags,
                seq,
                ack,
                len,
                ..
            } => {
                f.extend(seq.to_be_bytes());
                f.extend(ack.to_be_bytes());
                f.extend([0x50, *flags, 0xfa, 0xf0, 0, 0, 0, 0]);
                let mut left = *len as usize;
                while left > 0 {
                    let n = left.min(self.filler.len());
                    f.extend_from_slice(self.filler.get(..n).unwrap_or_default());
                    left -= n;
                }
                self.mix.tcp += 1;
            }
            Step::Udp { payload, .. } => {
                f.extend(((8 + payload.len()) as u16).to_be_bytes());
                f.extend([0, 0]);
                f.extend(payload);
                self.mix.udp += 1;
                if sp == 53 || dp == 53 {
                    self.mix.dns += 1;
                }
            }
            Step::Pause(_) => {}
        }
        let len = f.len() as u32;
        if self.mix.bytes + 16 + u64::from(len) > self.limit {
            return Ok(false);
        }
        let ts = self.time_us;
        self.out
            .write_all(&((ts / 1_000_000) as u32).to_le_bytes())?;
        self.out
            .write_all(&((ts % 1_000_000) as u32).to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(f)?;
        self.mix.bytes += 16 + u64::from(len);
        self.mix.frames += 1;
        if len <= 200 {
            self.mix.small += 1;
        } else if len >= 1_000 {
            self.mix.large += 1;
        }
        Ok(true)
    }
}

fn segment(forward: bool, flags: u8, seq: u32, ack: u32, len: u32) -> Step {
    Step::Tcp {
        forward,
        flags,
        seq,
        ack,
        len,
    }
}

/// A DNS name as labels, uncompressed.
fn labels(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.') {
        out.push(label.len() as u8);
        out.extend(label.as_bytes());
    }
    out.push(0);
}

fn checksum(header: &[u8]) -> u16 {
    let mut sum = 0u32;
    for pair in header.chunks(2) {
        let hi = u32::from(pair.first().copied().unwrap_or(0));
        let lo = u32::from(pair.get(1).copied().unwrap_or(0));
        sum += (hi << 8) | lo;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
