//! `cargo xtask bench-observer` (root): what the observer costs, on this machine.
//!
//! Two network namespaces joined by a veth pair, the traffic's processes in a test cgroup:
//! 1. TCP throughput (iperf3, 5 s) without the agent, then with its programs attached: the loss;
//! 2. the programs' cost per packet, from `kernel.bpf_stats_enabled` (run_time_ns / run_cnt);
//! 3. new flows per second without loss: UDP to 230,000 distinct destinations, paced at
//!    200,000/s and then as fast as two sender threads go, and the kernel's lost-event counter;
//! 4. the agent's RSS holding 100,000 live connections.
//!
//! Figures go to the README's performance section, with this command.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::{process, workspace_root};

const ID: &str = "npbench";

fn sh(cmd: &str) -> Result<String> {
    process::stdout(Command::new("sh").arg("-c").arg(cmd))
}

struct Lab {
    cgroup: PathBuf,
    children: Vec<Child>,
}

impl Lab {
    fn new() -> Result<Self> {
        let cgroup = PathBuf::from("/sys/fs/cgroup/unified").join(ID);
        let cgroup = if cgroup.parent().is_some_and(Path::exists) {
            cgroup
        } else {
            PathBuf::from("/sys/fs/cgroup").join(ID)
        };
        let lab = Self {
            cgroup,
            children: Vec::new(),
        };
        lab.cleanup();
        std::fs::create_dir_all(&lab.cgroup)?;
        sh(&format!(
            "ip netns add {ID}a && ip netns add {ID}b && \
             ip link add {ID}va netns {ID}a type veth peer name {ID}vb netns {ID}b && \
             ip -n {ID}a addr add 10.202.0.1/24 dev {ID}va && ip -n {ID}b addr add 10.202.0.2/24 dev {ID}vb && \
             ip -n {ID}a link set {ID}va up && ip -n {ID}b link set {ID}vb up && \
             ip -n {ID}a link set lo up && ip -n {ID}b link set lo up"
        ))?;
        Ok(lab)
    }

    fn command(&self, ns: &str, cmd: &str) -> Command {
        let procs = self.cgroup.join("cgroup.procs");
        let mut c = Command::new("sh");
        c.arg("-c").arg(format!(
            "echo $$ > {} && exec ip netns exec {ID}{ns} {cmd}",
            procs.display()
        ));
        c
    }

    fn spawn(&mut self, ns: &str, cmd: &str) -> Result<()> {
        let child = self
            .command(ns, cmd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.children.push(child);
        Ok(())
    }

    fn run(&self, ns: &str, cmd: &str) -> Result<String> {
        process::stdout(&mut self.command(ns, cmd))
    }

    fn cleanup(&self) {
        for ns in ["a", "b"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &format!("{ID}{ns}")])
                .status();
        }
        let _ = std::fs::remove_dir(&self.cgroup);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        std::thread::sleep(Duration::from_millis(200));
        self.cleanup();
    }
}

fn iperf(lab: &Lab) -> Result<f64> {
    let out = lab.run("a", "iperf3 -c 10.202.0.2 -t 5 -J")?;
    let v: serde_json::Value = serde_json::from_str(&out).context("iperf3 JSON")?;
    v.pointer("/end/sum_received/bits_per_second")
        .and_then(serde_json::Value::as_f64)
        .context("iperf3 result")
}

struct Agent(Child, u16);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

fn agent(lab: &Lab, extra: &[&str]) -> Result<Agent> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let bin = workspace_root().join("target/release/netpol-observer");
    let child = Command::new(bin)
        .args(["run", "--cgroup"])
        .arg(&lab.cgroup)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(20) {
            bail!("the agent did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Agent(child, port))
}

/// The body of the agent's answer to `GET path`.
fn get(port: u16, path: &str) -> Result<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    std::io::Write::write_all(
        &mut s,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    Ok(answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned())
}

fn metric(port: u16, name: &str) -> Result<u64> {
    get(port, "/metrics")?
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .with_context(|| format!("no metric {name}"))
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("VmRSS")
}

/// `run_time_ns / run_cnt` of our two programs, from bpftool.
fn ns_per_packet() -> Result<(u64, u64)> {
    let out = sh("bpftool prog show -j")?;
    let progs: serde_json::Value = serde_json::from_str(&out)?;
    let (mut time, mut count) = (0, 0);
    for p in progs.as_array().into_iter().flatten() {
        let field = |k: &str| p.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        if p.get("name")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|n| n.starts_with("netpol_"))
        {
            time += field("run_time_ns");
            count += field("run_cnt");
        }
    }
    Ok((time, count))
}

/// `cargo xtask flood COUNT RATE` (run by the benchmark inside a network namespace): UDP
/// datagrams to COUNT distinct (10.202.x.2, port) pairs at RATE per second; prints the rate
/// achieved.
pub fn flood(count: u32, rate: u32) -> Result<()> {
    // Two senders (this machine has two cores): one core's sendto rate is the limit otherwise.
    const SENDERS: u32 = 2;
    let started = Instant::now();
    let handles: Vec<_> = (0..SENDERS)
        .map(|k| {
            std::thread::spawn(move || -> std::io::Result<()> {
                let socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
                let mine = (0..count).filter(|i| i % SENDERS == k);
                for (n, i) in mine.enumerate() {
                    let net = u8::try_from(1 + i / 60_000).unwrap_or(4);
                    let port = u16::try_from(1024 + i % 60_000).unwrap_or(1024);
                    // A closed port answers with ICMP; a full socket buffer is no failure here.
                    let _ =
                        socket.send_to(b"x", std::net::SocketAddr::from(([10, 202, net, 2], port)));
                    let n = u32::try_from(n).unwrap_or(u32::MAX);
                    if rate > 0 && n % 1000 == 999 {
                        let due = Duration::from_secs_f64(
                            f64::from(n + 1) * f64::from(SENDERS) / f64::from(rate),
                        );
                        if let Some(wait) = due.checked_sub(started.elapsed()) {
                            std::thread::sleep(wait);
                        }
                    }
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("a sender panicked"))??;
    }
    println!("{:.0}", f64::from(count) / started.elapsed().as_secs_f64());
    Ok(())
}

/// The release build of the agent both measurements run.
fn build_agent() -> Result<()> {
    process::run(
        Command::new(process::cargo())
            .args(["build", "--release", "-p", "netpol-observer"])
            .current_dir(workspace_root()),
    )
}

pub fn run() -> Result<()> {
    build_agent()?;
    let mut lab = Lab::new()?;
    // Destinations for the flood: the peer answers on several /24s, so that 200,000 flows can
    // be distinct 5-tuples (ports × addresses).
    for net in 1..=4u8 {
        sh(&format!(
            "ip -n {ID}b addr add 10.202.{net}.2/24 dev {ID}vb && ip -n {ID}a route add 10.202.{net}.0/24 dev {ID}va"
        ))?;
    }
    lab.spawn("b", "iperf3 -s")?;
    std::thread::sleep(Duration::from_millis(500));

    let without = iperf(&lab)?;
    let _ = sh("sysctl -qw kernel.bpf_stats_enabled=1");
    let agent1 = agent(&lab, &["--per-connection"])?;
    let (t0, c0) = ns_per_packet()?;
    let with = iperf(&lab)?;
    let (t1, c1) = ns_per_packet()?;
    let _ = sh("sysctl -qw kernel.bpf_stats_enabled=0");
    drop(agent1);
    let loss = (1.0 - with / without) * 100.0;
    println!(
        "TCP over veth, iperf3 5 s: {:.2} Gbit/s without, {:.2} Gbit/s with the programs: {loss:.1}% less",
        without / 1e9,
        with / 1e9
    );
    let per = if c1 > c0 { (t1 - t0) / (c1 - c0) } else { 0 };
    println!("programs' cost: {per} ns per packet ({} runs)", c1 - c0);

    let xtask = std::env::current_exe()?;
    for target in [200_000u32, 0] {
        let flood = agent(
            &lab,
            &[
                "--per-connection",
                "--max-flows",
                "262144",
                "--max-records",
                "262144",
            ],
        )?;
        let rate = lab.run("a", &format!("{} flood 230000 {target}", xtask.display()))?;
        std::thread::sleep(Duration::from_secs(3));
        let lost = metric(flood.1, "netpol_observer_kernel_lost_flow_events_total")?;
        let events = metric(flood.1, "netpol_observer_flow_events_total")?;
        println!(
            "new flows: 230,000 sent at {:.0}/s ({}); {events} flow events read, {lost} lost",
            rate.trim().parse::<f64>().unwrap_or(0.0),
            if target > 0 {
                "paced at 200,000/s"
            } else {
                "as fast as two senders go"
            }
        );
        drop(flood);
    }

    // The defaults, filled: a connection table of 16,384 and 131,072 records (per connection,
    // the worst case: one record each).
    let held = agent(&lab, &["--per-connection"])?;
    lab.run("a", &format!("{} flood 140000 0", xtask.display()))?;
    std::thread::sleep(Duration::from_secs(3));
    let connections = metric(held.1, "netpol_observer_connections")?;
    let records = metric(held.1, "netpol_observer_records")?;
    let rss = rss_kib(held.0.id())?;
    println!(
        "agent RSS with the default tables full ({connections} connections, {records} records): {:.1} MiB",
        rss as f64 / 1024.0
    );
    Ok(())
}

/// The soak's traffic, run in namespace a: for SECONDS, short TCP connections (a steady
/// churn), long connections that go quiet past the idle timeout and continue, and UDP
/// exchanges that come back after silences. Every client reads to the end before closing
/// (a TIME_WAIT socket's last ACK passes no cgroup hook). Prints the TCP connections opened.
const SOAK_TRAFFIC: &str = r#"python3 -c "
import socket, threading, time, random, sys
end = time.time() + float(sys.argv[1]); opened = [0]; lock = threading.Lock()
def done(c):
    while c.recv(65536): pass
    c.close()
def churn(k):
    r = random.Random(k)
    while time.time() < end:
        c = socket.create_connection(('10.202.0.2', 8080)); c.sendall(b'c' * r.randrange(1, 20000)); c.shutdown(socket.SHUT_WR); done(c)
        with lock: opened[0] += 1
        time.sleep(r.uniform(0, 0.01))
def long(k):
    r = random.Random(100 + k)
    while time.time() < end:
        c = socket.create_connection(('10.202.0.2', 8080))
        with lock: opened[0] += 1
        for _ in range(r.randrange(2, 5)):
            c.sendall(b'l' * r.randrange(1, 50000)); time.sleep(r.uniform(6, 14))
        c.shutdown(socket.SHUT_WR); done(c)
def udp(k):
    r = random.Random(200 + k); u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)
    while time.time() < end:
        for _ in range(r.randrange(1, 20)):
            u.sendto(b'u' * r.randrange(1, 1200), ('10.202.0.2', 5300))
            try: u.recvfrom(2048)
            except OSError: pass
        time.sleep(r.uniform(0, 12))
threads = [threading.Thread(target=f, args=(k,)) for f, n in ((churn, 4), (long, 20), (udp, 8)) for k in range(n)]
for t in threads: t.start()
for t in threads: t.join()
print(opened[0])
" "#;

/// The soak's servers, in namespace b: TCP on 8080 (a thread per connection, reads to the end,
/// answers and closes) and a UDP echo on 5300.
const SOAK_SERVERS: &str = r#"python3 -c "
import socket, threading
def serve(c):
    while c.recv(65536): pass
    c.sendall(b'ok'); c.close()
def tcp():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', 8080)); s.listen(512)
    while True:
        c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
def udp():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('0.0.0.0', 5300))
    while True:
        d, a = u.recvfrom(2048); u.sendto(d, a)
threading.Thread(target=udp, daemon=True).start()
tcp()
""#;

/// Packets and IP bytes through namespace a's veth (the counters include 14 bytes of
/// Ethernet header per packet).
fn veth_a() -> Result<(u64, u64)> {
    let read = |what: &str| -> Result<u64> {
        let out = sh(&format!(
            "ip netns exec {ID}a cat /sys/class/net/{ID}va/statistics/{what}"
        ))?;
        out.trim().parse().context("veth counter")
    };
    let packets = read("rx_packets")? + read("tx_packets")?;
    Ok((
        packets,
        read("rx_bytes")? + read("tx_bytes")? - 14 * packets,
    ))
}

/// CPU seconds a process has used (user + system).
fn cpu_s(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("stat")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 =
        f.get(11).context("utime")?.parse::<u64>()? + f.get(12).context("stime")?.parse::<u64>()?;
    #[expect(clippy::cast_precision_loss, reason = "seconds")]
    Ok(ticks as f64 / 100.0)
}

fn flows_to(port: u16, dst_port: u16) -> Result<u64> {
    let body = get(port, "/flows")?;
    let mut connections = 0;
    for line in body.lines().filter(|l| l.starts_with('{')) {
        let r: serde_json::Value = serde_json::from_str(line)?;
        if r.pointer("/destination/port")
            .and_then(serde_json::Value::as_u64)
            == Some(u64::from(dst_port))
        {
            connections += r
                .get("connections")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
        }
    }
    Ok(connections)
}

/// `cargo xtask soak [SECONDS]` (root): traffic with churn past many idle timeouts and table
/// evictions; the agent's totals against the veth's own counters, packet for packet.
pub fn soak(seconds: u32) -> Result<bool> {
    build_agent()?;
    let mut lab = Lab::new()?;
    // Only the traffic's own packets on the veth: no IPv6 (router solicitations, MLD), no ARP.
    let mac = |ns: &str, dev: &str| -> Result<String> {
        let out = sh(&format!("ip -n {ID}{ns} -br link show {dev}"))?;
        out.split_whitespace()
            .nth(2)
            .map(str::to_owned)
            .context("MAC address")
    };
    let (mac_a, mac_b) = (mac("a", &format!("{ID}va"))?, mac("b", &format!("{ID}vb"))?);
    for (ns, dev, peer, peer_mac) in [
        ("a", format!("{ID}va"), "10.202.0.2", &mac_b),
        ("b", format!("{ID}vb"), "10.202.0.1", &mac_a),
    ] {
        sh(&format!(
            "ip netns exec {ID}{ns} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.{dev}.disable_ipv6=1 && \
             ip -n {ID}{ns} neigh replace {peer} lladdr {peer_mac} dev {dev} nud permanent"
        ))?;
    }
    // The churn outlasts the ephemeral ports' TIME_WAIT: ports are reused, so tuples come back
    // as new connections.
    sh(&format!(
        "ip netns exec {ID}a sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range='1024 65535'"
    ))?;
    lab.spawn("b", SOAK_SERVERS)?;
    std::thread::sleep(Duration::from_millis(500));
    // Idle after 5 s; a table of 2,048 connections (an eighth of the kernel map), which the
    // churn (a few hundred connections a second, each remembered until idle) overflows.
    let agent = agent(&lab, &["--idle-timeout-s", "5", "--max-flows", "16384"])?;
    let before = veth_a()?;
    let started = Instant::now();
    let opened: u64 = lab
        .run("a", &format!("{SOAK_TRAFFIC} {seconds}"))?
        .trim()
        .parse()
        .context("the traffic's count")?;
    let elapsed = started.elapsed();
    // Let the last reads happen (100 ms apart by default: 1 s here).
    std::thread::sleep(Duration::from_secs(3));
    let after = veth_a()?;
    let (sent_packets, sent_bytes) = (after.0 - before.0, after.1 - before.1);
    let m = |name: &str| metric(agent.1, name);
    let (packets, bytes) = (
        m("netpol_observer_packets_total ")?,
        m("netpol_observer_bytes_total ")?,
    );
    let counted = flows_to(agent.1, 8080)?;
    println!(
        "soak: {:.0} s of traffic; {opened} TCP connections opened, {counted} counted in the records",
        elapsed.as_secs_f64()
    );
    println!(
        "packets through the veth {sent_packets}, counted {packets}; bytes {sent_bytes}, counted {bytes}"
    );
    println!(
        "connections expired {}, evicted {}, resumed after going idle {}; kernel entries re-created {}; records evicted {}",
        m("netpol_observer_expired_connections_total ")?,
        m("netpol_observer_evicted_connections_total ")?,
        m("netpol_observer_resumed_connections_total ")?,
        m("netpol_observer_kernel_recreated_keys_total ")?,
        m("netpol_observer_evicted_records_total ")?
    );
    println!(
        "kernel: {} packets unparsed, {} flow updates failed, {} new-flow events lost",
        m("netpol_observer_kernel_unparsed_packets_total ")?,
        m("netpol_observer_kernel_flow_update_failures_total ")?,
        m("netpol_observer_kernel_lost_flow_events_total ")?
    );
    let pid = agent.0.id();
    println!(
        "agent: {:.1} MiB RSS, {:.1} CPU seconds ({:.1}% of one core)",
        rss_kib(pid)? as f64 / 1024.0,
        cpu_s(pid)?,
        cpu_s(pid)? / elapsed.as_secs_f64() * 100.0
    );
    let equal = (packets, bytes, counted) == (sent_packets, sent_bytes, opened);
    println!(
        "{}",
        if equal {
            "totals equal what was sent"
        } else {
            "TOTALS DIFFER"
        }
    );
    Ok(equal)
}
